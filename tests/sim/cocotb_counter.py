"""cocotb test of the flow's tiny counter (driven by tests/sim/test_flow.py).

Environment: ``BITPROP_TEST`` holds JSON ``{"steps": int, "offset": int, "width": int}``; a
non-zero offset makes the expectation wrong on purpose, so the flow must report a failure.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


@cocotb.test()
async def counter_counts(dut):
    """Count enabled cycles and compare with the expectation."""
    params = json.loads(os.environ["BITPROP_TEST"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    dut.en.value = 1
    await ClockCycles(dut.clk, params["steps"])
    dut.en.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    got = dut.count.value.to_unsigned()
    assert got == (params["steps"] + params["offset"]) % (1 << params["width"]), f"count {got}"
