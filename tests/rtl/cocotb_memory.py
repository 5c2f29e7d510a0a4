"""cocotb test of the weight memories: random access sequences against a dictionary."""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, Timer

from tests.rtl.cocotb_streams import params, read, start
from tests.rtl.memory_cases import BinaryModel, HiddenModel, binary_ops, hidden_ops


@cocotb.test()
async def memories_match_model(dut):
    p = params()
    await start(dut, ["h_addr", "h_r_en", "h_w_en", "h_w_data", "b_r_addr", "b_r_en",
                      "b_w_addr", "b_w_en", "b_w_data"])
    rng = np.random.default_rng(p["seed"])
    width = p["lanes"] * p["hidden_bits"]
    model = HiddenModel()
    for op in hidden_ops(rng, p["hidden_depth"], width, p["cycles"], hot=p["hot"]):
        dut.h_r_en.value = int(op[0] == "r")
        dut.h_w_en.value = int(op[0] == "w")
        if op[0] != "idle":
            dut.h_addr.value = op[1]
        if op[0] == "w":
            dut.h_w_data.value = op[2]
        want = model.step(op)
        await FallingEdge(dut.clk)
        await Timer(1, unit="ns")
        if want is not None:
            got = read(dut.h_r_data)
            assert got == want, f"hidden {op}: {got:#x} != {want:#x}"
    dut.h_r_en.value = dut.h_w_en.value = 0
    gran = p["granularity"] or p["width"]
    model = BinaryModel(p["width"], p["granularity"])
    for ra, wa, en, data in binary_ops(rng, p["depth"], p["width"], p["width"] // gran,
                                       p["cycles"]):
        dut.b_r_en.value = int(ra is not None)
        dut.b_r_addr.value = ra or 0
        dut.b_w_en.value = en
        dut.b_w_addr.value = wa or 0
        dut.b_w_data.value = data
        want = model.step(ra, wa, en, data)
        await FallingEdge(dut.clk)
        await Timer(1, unit="ns")
        if want is not None:
            got = read(dut.b_r_data)
            assert got == want, f"binary {ra, wa}: {got:#x} != {want:#x}"
