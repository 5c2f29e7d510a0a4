# amaranth: UnusedElaboratable=no
"""Scoring against ops.margin, ops.trigger and ops.predict."""

import json

import numpy as np
import pytest

from bitprop.rtl.scoring import Scoring
from bitprop.sim import flow
from tests.rtl import vectors
from tests.rtl.amaranth_run import port, simulate

OUTPUTS = ["margin", "trigger", "prediction"]


def _run(dut, cases, seed, idle=0.3):
    rng = np.random.default_rng(seed)
    width = dut.max_k.bit_length() + 1
    segments, expected = [], []
    for _ in range(cases):
        case = vectors.scoring_case(rng, n_classes=dut.n_classes, max_k=dut.max_k)
        cycles, exp = vectors.scoring_stream(case, rng, lanes=dut.lanes, score_width=width,
                                             idle=idle)
        segments.append(({"threshold": case["threshold"]},
                         cycles + vectors.idle(dut.latency + 1)))
        expected.append(exp)
    results = simulate(dut, segments, outputs=OUTPUTS)
    assert len(results) == len(expected)
    for exp, seen in zip(expected, results):
        got = [(i, *vectors.scoring_decode(out, margin_width=width + 1)) for i, out in seen]
        vectors.scoring_check(exp, got, dut.latency)


@pytest.mark.parametrize("n_classes, max_k, lanes, cases", [
    (10, 64, 1, 25),   # one score per beat
    (10, 40, 4, 40),   # the array's PE = 4: three beats, two padding lanes
    (2, 1, 1, 40),     # smallest: K = 1, scores ±1, many ties
    (3, 9, 5, 40),     # more lanes than classes: one beat
    (7, 33, 3, 40),    # odd everything
    (16, 100, 16, 20), # all classes in one beat, four combining levels
])
def test_matches_model_in_amaranth(n_classes, max_k, lanes, cases):
    _run(Scoring(n_classes=n_classes, max_k=max_k, lanes=lanes), cases,
         seed=n_classes * 1000 + max_k * 10 + lanes)


def test_back_to_back_samples():
    _run(Scoring(n_classes=5, max_k=20, lanes=2), 20, seed=3, idle=0.0)


def test_latency_and_beats():
    dut = Scoring(n_classes=10, max_k=35, lanes=4)
    assert (dut.beats, dut.latency) == (3, 6)
    dut = Scoring(n_classes=3, max_k=35, lanes=8)
    assert (dut.beats, dut.latency) == (1, 6)
    assert Scoring(n_classes=2, max_k=1).latency == 4


def test_port_widths():
    dut = Scoring(n_classes=10, max_k=35, lanes=4)  # scores in [−35, 35] → 7 bits
    assert len(port(dut, "scores")) == 4 * 7
    assert len(port(dut, "margin")) == 8
    assert len(port(dut, "threshold")) == 8
    assert len(port(dut, "prediction")) == 4


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"n_classes": 1, "max_k": 4}, ValueError, "Class count must be at least 2, not 1"),
    ({"n_classes": 0, "max_k": 4}, TypeError, "Class count must be a positive integer, not 0"),
    ({"n_classes": 3, "max_k": -1}, TypeError, "Maximum K must be a positive integer, not -1"),
    ({"n_classes": 3, "max_k": 4, "lanes": 0}, TypeError,
     "Lane count must be a positive integer, not 0"),
])
def test_rejects_bad_parameters(kwargs, exc, message):
    with pytest.raises(exc, match=f"^{message}$"):
        Scoring(**kwargs)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    params = {"n_classes": 10, "max_k": 75, "lanes": 4}
    cases = 150 if simulator == "verilator" else 60
    dut = Scoring(**params)
    flow.run_cocotb(dut, name="scoring", test_module="tests.rtl.cocotb_scoring",
                    simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**params, "latency": dut.latency,
                                                           "seed": 13, "cases": cases})})
