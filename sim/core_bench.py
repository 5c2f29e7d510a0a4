"""cocotb side of a simulated training run: the host driver against the simulated core.

Loaded by the simulator (see :func:`bitprop.sim.session.simulate`). The whole host program
(:func:`bitprop.sim.session.run_host`: the golden model, the :class:`~bitprop.boards.driver.
Device` driver and the comparisons) runs as ordinary blocking code in a cocotb *bridge*
thread; its port, :class:`SimPort`, hands each message to a coroutine that drives the core's
command stream and collects the reply words. So the driver code is the one a board uses.
"""

import json
import os
import time

import cocotb
from cocotb.task import bridge, resume
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge

PERIOD_NS = 10


class SimPort:
    """``exchange(words, n_reply)`` on the simulated core (the driver's port interface)."""

    def __init__(self, dut):
        self.dut = dut
        self.cycles = 0

    async def _exchange(self, words, n_reply):
        dut = self.dut
        clk = dut.clk
        out = []
        dut.rsp__ready.value = 1
        for w in words:
            dut.cmd__valid.value = 1
            dut.cmd__payload.value = int(w)
            while True:
                await ReadOnly()
                ready = int(dut.cmd__ready.value)
                if int(dut.rsp__valid.value):
                    out.append(int(dut.rsp__payload.value) & 0xFFFF_FFFF)
                await RisingEdge(clk)
                if ready:
                    break
        dut.cmd__valid.value = 0
        while len(out) < n_reply:
            await ReadOnly()
            if int(dut.rsp__valid.value):
                out.append(int(dut.rsp__payload.value) & 0xFFFF_FFFF)
                await RisingEdge(clk)
            else:
                await RisingEdge(dut.rsp__valid)
        if len(out) > n_reply:
            raise AssertionError(f"the core sent {len(out)} reply words, {n_reply} expected")
        return out

    def exchange(self, words, n_reply):
        return resume(self._exchange)(list(words), n_reply)


@cocotb.test()
async def host_session(dut):
    """Run the host program described by ``BITPROP_SESSION`` against the core."""
    from bitprop.sim.session import run_host

    spec = json.loads(os.environ["BITPROP_SESSION"])
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    dut.cmd__valid.value = 0
    dut.rsp__ready.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    port = SimPort(dut)
    t0 = time.perf_counter()
    ns0 = get_sim_time("ns")
    result = await bridge(run_host)(port, spec)
    wall = time.perf_counter() - t0
    cycles = (get_sim_time("ns") - ns0) / PERIOD_NS
    result["sim_cycles"] = int(cycles)
    result["sim_seconds"] = wall
    result["sim_cycles_per_second"] = cycles / wall if wall > 0 else 0.0
    with open(spec["result"], "w") as f:
        json.dump(result, f, indent=1)
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatching hidden weights"
    assert result["prediction_mismatches"] == 0
