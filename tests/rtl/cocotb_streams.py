"""cocotb helpers shared by RTL-B's cocotb modules: clock/reset, struct packing, streams.

Inputs are set at the falling edge and outputs read 1 ns later, so every value read is the
one the design samples at the next rising edge: a stream transfer is recorded exactly when
the design sees ``valid & ready``.
"""

import json
import os
import random

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer

__all__ = ["params", "start", "pack", "unpack", "read", "transfer"]


def params():
    """Return the test parameters the pytest side passed as JSON in ``BITPROP_TEST``."""
    return json.loads(os.environ.get("BITPROP_TEST", "{}"))


async def start(dut, inputs=()):
    """Start a 10 ns clock, zero ``inputs`` and hold reset for three cycles."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in inputs:
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def pack(layout, fields):
    """Return the integer of a ``StructLayout`` value given as a dict."""
    return layout.const(fields).as_value().value


def unpack(layout, value):
    """Return a ``data.Const`` view (field access) of an integer of ``layout``."""
    return layout.from_bits(int(value))


def read(signal):
    """Return a signal's value as an unsigned int (1-bit ports read as ``Logic``)."""
    value = signal.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


async def transfer(dut, *, send=None, recv=None, words=(), count=0, seed=0, p_idle=0.0,
                   p_stall=0.0, other=None, timeout=200_000):
    """Send ``words`` on stream prefix ``send`` and take ``count`` words from ``recv``.

    Returns the received payload integers. ``other(cycle)`` is called each cycle after the
    stream inputs are set (for extra inputs). Raises AssertionError on timeout.
    """
    rng = random.Random(seed)
    words = list(words)
    got = []
    i = 0
    cycles = 0
    while i < len(words) or len(got) < count:
        await FallingEdge(dut.clk)
        if send:
            if i < len(words) and not (p_idle and rng.random() < p_idle):
                getattr(dut, f"{send}__valid").value = 1
                getattr(dut, f"{send}__payload").value = words[i]
                offered = True
            else:
                getattr(dut, f"{send}__valid").value = 0
                offered = False
        if recv:
            ready = int(not (p_stall and rng.random() < p_stall))
            getattr(dut, f"{recv}__ready").value = ready
        if other:
            other(cycles)
        await Timer(1, unit="ns")
        if send and offered and read(getattr(dut, f"{send}__ready")):
            i += 1
        if recv and ready and read(getattr(dut, f"{recv}__valid")):
            got.append(read(getattr(dut, f"{recv}__payload")))
        cycles += 1
        if cycles > timeout:
            raise AssertionError(f"timeout after {cycles} cycles: sent {i}/{len(words)}, "
                                 f"received {len(got)}/{count}")
    await FallingEdge(dut.clk)
    if send:
        getattr(dut, f"{send}__valid").value = 0
    if recv:
        getattr(dut, f"{recv}__ready").value = 0
    return got
