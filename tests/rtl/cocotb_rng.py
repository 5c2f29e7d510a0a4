"""cocotb test of DrawGenerator: keys, hashes and events of several sweeps, restarts included."""

import cocotb
from amaranth.lib import data
from cocotb.triggers import FallingEdge, Timer

from tests.rtl.cocotb_streams import params, read, start, transfer
from tests.rtl.rng_cases import check_sweep, generator_cases

OUT = data.StructLayout({"hash": 64, "events": 4})


@cocotb.test()
async def generator_matches_model(dut):
    p = params()
    await start(dut, ["seed", "step", "layer", "threshold", "start", "o__ready"])
    for n, case in enumerate(generator_cases(p["seed"], p["step_width"], p["layer_width"])):
        for name in ("seed", "step", "layer", "threshold"):
            getattr(dut, name).value = case[name]
        if n % 2:
            # Restart in the middle of a sweep: leave some words of the last one unread.
            await FallingEdge(dut.clk)
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        words = await transfer(dut, recv="o", count=case["words"], seed=n, p_stall=0.3)
        await Timer(1, unit="ns")
        assert read(dut.key_valid) == 1
        key = read(dut.key)
        values = [OUT.from_bits(w) for w in words]
        check_sweep(case, key, [int(v.hash) for v in values], [int(v.events) for v in values])
