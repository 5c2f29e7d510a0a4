# amaranth: UnusedElaboratable=no
"""XnorPopcountArray against bits.xnor_dot / ops.forward, ops.sign, ops.gate."""

import json

import numpy as np
import pytest

from bitprop.rtl.xnor_popcount import XnorPopcountArray
from bitprop.sim import flow
from tests.rtl import vectors
from tests.rtl.amaranth_run import port, simulate

OUTPUTS = ["z", "sign", "gate"]


def _run(dut, cases, seed):
    rng = np.random.default_rng(seed)
    segments, expected = [], []
    for _ in range(cases):
        case = vectors.xnor_case(rng, pe=dut.pe, simd=dut.simd, max_words=dut.max_words)
        cycles, exp = vectors.xnor_stream(case, rng, pe=dut.pe, simd=dut.simd,
                                          holes=bool(rng.random() < 0.3))
        segments.append(({"k": case["k"], "threshold": case["threshold"]},
                         cycles + vectors.idle(dut.latency + 1)))
        expected.append(exp)
    results = simulate(dut, segments, outputs=OUTPUTS)
    assert len(results) == len(expected)
    z_width = dut.k_max.bit_length() + 1
    for exp, seen in zip(expected, results):
        got = [(i, *vectors.xnor_decode(out, pe=dut.pe, z_width=z_width)) for i, out in seen]
        vectors.xnor_check(exp, got, dut.latency)


@pytest.mark.parametrize("pe, simd, max_words, cases", [
    (4, 32, 3, 25),   # the UP5K reference folding
    (3, 5, 7, 40),    # odd sizes, K rarely a multiple of SIMD
    (1, 1, 9, 30),    # one lane: no adder tree at all
    (2, 64, 2, 15),   # wide word, K < SIMD common
    (5, 3, 1, 30),    # a single word per dot product (first = last always)
])
def test_matches_model_in_amaranth(pe, simd, max_words, cases):
    _run(XnorPopcountArray(pe=pe, simd=simd, max_words=max_words), cases,
         seed=1000 * pe + simd)


def test_latency_formula():
    assert XnorPopcountArray(pe=1, simd=1, max_words=1).latency == 3
    assert XnorPopcountArray(pe=1, simd=4, max_words=1).latency == 4
    assert XnorPopcountArray(pe=1, simd=5, max_words=1).latency == 5
    assert XnorPopcountArray(pe=1, simd=32, max_words=1).latency == 7
    assert XnorPopcountArray(pe=1, simd=33, max_words=1).latency == 8


def test_port_widths():
    dut = XnorPopcountArray(pe=3, simd=10, max_words=5)  # K_max = 50 → 6 bits
    assert len(port(dut, "weights")) == 30
    assert len(port(dut, "k")) == 6
    assert len(port(dut, "z")) == 3 * 7
    assert len(port(dut, "mask")) == 10


@pytest.mark.parametrize("kwargs, message", [
    ({"pe": 0, "simd": 8, "max_words": 1}, "PE count must be a positive integer, not 0"),
    ({"pe": 2, "simd": True, "max_words": 1}, "SIMD width must be a positive integer, not True"),
    ({"pe": 2, "simd": 8, "max_words": 1.0},
     "Maximum word count must be a positive integer, not 1.0"),
])
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        XnorPopcountArray(**kwargs)


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        XnorPopcountArray(4, 32, 3)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    params = {"pe": 3, "simd": 16, "max_words": 4}
    dut = XnorPopcountArray(**params)
    cases = 150 if simulator == "verilator" else 60
    flow.run_cocotb(dut, name="xnor_popcount", test_module="tests.rtl.cocotb_xnor_popcount",
                    simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**params, "latency": dut.latency,
                                                           "seed": 7, "cases": cases})})
