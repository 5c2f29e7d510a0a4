"""Amaranth-simulator helpers shared by the RTL tests: drive and drain ``lib.stream`` ports.

``send`` and ``drain`` are meant to run as two concurrent testbenches, with random idle
cycles on the producer side and random back-pressure on the consumer side, so that every
block is checked under stalls as well as at full rate.
"""

import random

from amaranth.sim import Simulator

__all__ = ["send", "drain", "simulate"]


async def send(ctx, port, payloads, *, rng=None, p_idle=0.0):
    """Put each payload on stream ``port`` (valid/ready), idling with probability ``p_idle``."""
    rng = rng or random.Random(0)
    for payload in payloads:
        while p_idle and rng.random() < p_idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def drain(ctx, port, count, *, rng=None, p_stall=0.0, timeout=100_000):
    """Take ``count`` words from stream ``port``, stalling with probability ``p_stall``."""
    rng = rng or random.Random(1)
    out = []
    cycles = 0
    while len(out) < count:
        ready = not (p_stall and rng.random() < p_stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        cycles += 1
        if cycles > timeout:
            raise AssertionError(f"timeout: {len(out)} of {count} words after {cycles} cycles")
        if ready and valid:
            out.append(payload)
    ctx.set(port.ready, 0)
    return out


def simulate(dut, *testbenches, monitors=(), vcd=None):
    """Run ``testbenches`` (async functions of ``ctx``) against ``dut`` with a 1 MHz clock.

    ``monitors`` run in the background (forever loops); the run ends with the testbenches.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in monitors:
        sim.add_testbench(tb, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
