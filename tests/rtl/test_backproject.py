# amaranth: UnusedElaboratable=no
"""BackProjection against bits.project_back followed by ops.sign."""

import json

import numpy as np
import pytest

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
])
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        BackProjection(**kwargs)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    params = {"simd": 12, "max_rows": 40}
    cases = 120 if simulator == "verilator" else 50
    flow.run_cocotb(BackProjection(**params), name="backproject",
                    test_module="tests.rtl.cocotb_backproject", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**params, "seed": 11,
                                                           "cases": cases})})
