"""Cycle driver shared by the cocotb modules (inputs set and outputs read at falling edges)."""

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from tests.rtl.vectors import read


async def reset(dut, inputs):
    """Start the clock, zero ``inputs`` and hold reset for three cycles."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in inputs:
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def drive(dut, cycles, *, inputs, outputs, strobe="out_valid"):
    """Apply one input dict per cycle; return (cycle index, {output: int}) when ``strobe``.

    Cycle ``i``'s inputs are set at the falling edge in cycle ``i`` and sampled at the rising
    edge that ends it; outputs read at that falling edge (before setting) are those visible
    in cycle ``i``, the same indexing as ``tests/rtl/amaranth_run.simulate``.
    """
    seen = []
    for i, cycle in enumerate(cycles):
        await FallingEdge(dut.clk)
        if read(getattr(dut, strobe)):
            seen.append((i, {n: read(getattr(dut, n)) for n in outputs}))
        for name in inputs:
            getattr(dut, name).value = cycle.get(name, 0)
    return seen
