# amaranth: UnusedElaboratable=no
"""BackProjection against bits.project_back followed by ops.sign."""

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from bitprop.rtl.backproject import BackProjection
from bitprop.sim import flow
from tests.rtl import vectors
from tests.rtl.amaranth_run import port, simulate


def _run(dut, cases, seed):
    rng = np.random.default_rng(seed)
    segments, expected = [], []
    for _ in range(cases):
        case = vectors.backproject_case(rng, simd=dut.simd, max_rows=dut.max_rows)
        cycles, exp = vectors.backproject_stream(case, rng, simd=dut.simd)
        segments.append(({}, cycles + vectors.idle(dut.latency + 1)))
        expected.append(exp)
    results = simulate(dut, segments, outputs=["sums", "sign"])
    assert len(results) == len(expected)
    sum_width = dut.max_rows.bit_length() + 1
    for exp, seen in zip(expected, results):
        got = [(i, *vectors.backproject_decode(out, simd=dut.simd, sum_width=sum_width))
               for i, out in seen]
        vectors.backproject_check(exp, got, dut.latency)


@pytest.mark.parametrize("simd, max_rows, cases", [
    (32, 20, 20),
    (5, 13, 40),   # odd sizes: K_in rarely a multiple of SIMD
    (1, 7, 40),    # one column per pass
    (16, 1, 40),   # a single row per pass (first = last)
])
def test_matches_model_in_amaranth(simd, max_rows, cases):
    _run(BackProjection(simd=simd, max_rows=max_rows), cases, seed=100 * simd + max_rows)


def test_passes_one_idle_cycle_apart():
    dut = BackProjection(simd=4, max_rows=6)
    rng = np.random.default_rng(5)
    case = vectors.backproject_case(rng, simd=4, max_rows=6)
    cycles, exp = vectors.backproject_stream(case, rng, simd=4, idle=0.0)
    (seen,) = simulate(dut, [({}, cycles + vectors.idle(3))], outputs=["sums", "sign"])
    got = [(i, *vectors.backproject_decode(out, simd=4, sum_width=4)) for i, out in seen]
    vectors.backproject_check(exp, got, dut.latency)


def test_port_widths():
    dut = BackProjection(simd=6, max_rows=100)  # sums in [−100, 100] → 8 bits signed
    assert len(port(dut, "sums")) == 6 * 8
    assert len(port(dut, "weights")) == 6
    assert len(port(dut, "sign")) == 6


@pytest.mark.parametrize("kwargs, message", [
    ({"simd": 0, "max_rows": 4}, "SIMD width must be a positive integer, not 0"),
    ({"simd": 4, "max_rows": "8"}, "Maximum row count must be a positive integer, not '8'"),
    ({"simd": 4, "max_rows": 8, "pe": 0}, "PE count must be a positive integer, not 0"),
    ({"simd": 4, "max_rows": 8, "pe": True}, "PE count must be a positive integer, not True"),
])
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        BackProjection(**kwargs)


# -- PE rows per beat -------------------------------------------------------------------------


def _run_pe(dut, cases, seed, *, idle=0.2, gates=None):
    rng = np.random.default_rng(seed)
    segments, expected = [], []
    for _ in range(cases):
        case = vectors.backproject_pe_case(rng, pe=dut.pe, simd=dut.simd,
                                           max_rows=dut.max_rows, gates=gates)
        cycles, exp = vectors.backproject_pe_stream(case, rng, pe=dut.pe, simd=dut.simd,
                                                    idle=idle)
        segments.append(({}, cycles + vectors.idle(dut.latency + 1)))
        expected.append(exp)
    results = simulate(dut, segments, outputs=["sums", "sign"])
    sum_width = dut.max_rows.bit_length() + 1
    passes = 0
    for exp, seen in zip(expected, results):
        got = [(i, *vectors.backproject_decode(out, simd=dut.simd, sum_width=sum_width))
               for i, out in seen]
        vectors.backproject_check(exp, got, dut.latency)
        passes += len(exp)
    return passes


@pytest.mark.parametrize("pe, simd, max_rows, cases", [
    (1, 5, 9, 25),
    (2, 5, 13, 30),
    (3, 5, 11, 30),   # odd PE: K_out rarely a multiple, the last beat padded
    (4, 32, 75, 12),  # the UP5K configuration
    (4, 1, 9, 30),    # one column per pass
    (8, 5, 30, 20),   # two row groups: one adder level
    (8, 32, 17, 8),
    (5, 3, 23, 20),   # a group of one row beside a group of four
    (12, 3, 40, 10),  # three row groups: an odd one passes through the first adder level
])
def test_pe_matches_model_in_amaranth(pe, simd, max_rows, cases):
    dut = BackProjection(simd=simd, max_rows=max_rows, pe=pe)
    assert _run_pe(dut, cases, seed=1000 * pe + 10 * simd + max_rows) > cases


@pytest.mark.parametrize("pe, max_rows", [(4, 4), (3, 2), (8, 8)])
def test_pe_single_beat_passes(pe, max_rows):
    # K_out ≤ PE: every pass is one beat with first = last, usually with padding rows.
    dut = BackProjection(simd=5, max_rows=max_rows, pe=pe)
    assert _run_pe(dut, 30, seed=pe + max_rows) > 30


@pytest.mark.parametrize("pe", [2, 4, 8])
def test_pe_passes_one_idle_cycle_apart(pe):
    dut = BackProjection(simd=5, max_rows=19, pe=pe)
    assert _run_pe(dut, 15, seed=30 + pe, idle=0.0) > 15


@pytest.mark.parametrize("pe", [1, 3, 4])
def test_pe_all_gates_zero(pe):
    # No gated row: every sum is 0 and every sign +1, whatever the weights and desired bits.
    dut = BackProjection(simd=5, max_rows=14, pe=pe)
    assert _run_pe(dut, 15, seed=40 + pe, gates="none") > 15


@pytest.mark.parametrize("pe, latency", [(1, 2), (2, 3), (3, 3), (4, 3), (5, 4), (8, 4),
                                         (9, 5), (16, 5), (17, 6)])
def test_documented_latency(pe, latency):
    assert BackProjection(simd=2, max_rows=40, pe=pe).latency == latency


@pytest.mark.parametrize("pe", [1, 4, 8])
def test_sums_hold_until_next_pass(pe):
    """``sums`` keep a pass until cycle t + latency − 1, t = the next first beat's cycle."""
    simd, max_rows = 3, 20
    dut = BackProjection(simd=simd, max_rows=max_rows, pe=pe)
    rng = np.random.default_rng(7 + pe)
    w = rng.random((2 * pe, simd)) < 0.5
    rows = [vectors.bools_to_int(w[i]) for i in range(2 * pe)]
    gap = 4
    beat = [{"valid": 1, "first": 1, "last": 1, "weights": vectors.join(rows[:pe], simd),
             "gate": (1 << pe) - 1, "desired": 0}]
    cycles = beat + vectors.idle(gap)
    second = {"valid": 1, "first": 1, "last": 0, "weights": vectors.join(rows[pe:], simd),
              "gate": (1 << pe) - 1, "desired": (1 << pe) - 1}
    cycles += [second] + vectors.idle(dut.latency + 2)
    # Expected: after pass 1 (desired all −1) sums[c] = −Σ_r W[r, c]; after the second pass's
    # first beat reaches the counters, its own contribution +Σ_r W[pe + r, c].
    pm = np.where(w, 1, -1)
    first_sums = [-int(v) for v in pm[:pe].sum(axis=0)]
    second_sums = [int(v) for v in pm[pe:].sum(axis=0)]
    sum_width = max_rows.bit_length() + 1
    seen = []

    async def bench(ctx):
        for cycle in cycles:
            for name, value in cycle.items():
                ctx.set(port(dut, name), value)
            await ctx.tick()
            seen.append(vectors.split(ctx.get(port(dut, "sums")), sum_width, simd,
                                      signed=True))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # seen[i] is visible in cycle i + 1; pass 1 ends at cycle 0, pass 2 starts at t = gap + 1.
    t = gap + 1
    for cycle in range(dut.latency, t + dut.latency - 1):
        assert seen[cycle - 1] == first_sums, f"cycle {cycle}"
    assert seen[t + dut.latency - 2] == [0] * simd  # the restart
    assert seen[t + dut.latency - 1] == second_sums


def test_pe_port_widths():
    dut = BackProjection(simd=6, max_rows=100, pe=3)
    assert len(port(dut, "weights")) == 6 * 3
    assert len(port(dut, "gate")) == 3
    assert len(port(dut, "desired")) == 3
    assert len(port(dut, "sums")) == 6 * 8
    assert len(port(dut, "sign")) == 6
    one = BackProjection(simd=6, max_rows=100)
    assert one.pe == 1 and one.latency == 2
    assert len(port(one, "weights")) == 6 and len(port(one, "gate")) == 1


# -- cocotb ------------------------------------------------------------------------------------


@pytest.mark.parametrize("simulator, pe, simd, max_rows, cases", [
    ("verilator", 1, 12, 40, 120),
    ("verilator", 3, 12, 40, 80),
    ("icarus", 1, 12, 40, 50),
    ("icarus", 4, 5, 23, 40),
])
def test_matches_model_in_cocotb(simulator, pe, simd, max_rows, cases):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    dut = BackProjection(simd=simd, max_rows=max_rows, pe=pe)
    params = {"simd": simd, "max_rows": max_rows, "pe": pe, "latency": dut.latency}
    flow.run_cocotb(dut, name=f"backproject_pe{pe}", test_module="tests.rtl.cocotb_backproject",
                    simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**params, "seed": 11 + pe,
                                                           "cases": cases})})
