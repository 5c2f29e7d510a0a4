"""cocotb test of Scoring against the golden model (run by test_scoring.py).

``BITPROP_TEST`` holds JSON ``{"n_classes", "max_k", "lanes", "latency", "seed", "cases"}``.
"""

import json
import os

import cocotb
import numpy as np

from tests.rtl import vectors
from tests.rtl.cocotb_drive import drive, reset

INPUTS = ("valid", "scores", "label")


@cocotb.test()
async def scoring_matches_model(dut):
    """Stream many random samples (ties, extreme thresholds, idle cycles) and compare."""
    p = json.loads(os.environ["BITPROP_TEST"])
    n_classes, max_k, lanes = p["n_classes"], p["max_k"], p["lanes"]
    width = max_k.bit_length() + 1
    latency = p["latency"]
    rng = np.random.default_rng(p["seed"])
    await reset(dut, INPUTS + ("threshold",))
    for _ in range(p["cases"]):
        case = vectors.scoring_case(rng, n_classes=n_classes, max_k=max_k)
        cycles, expected = vectors.scoring_stream(case, rng, lanes=lanes, score_width=width)
        dut.threshold.value = case["threshold"]
        seen = await drive(dut, cycles + vectors.idle(latency + 1), inputs=INPUTS,
                           outputs=("margin", "trigger", "prediction"))
        got = [(i, *vectors.scoring_decode(out, margin_width=width + 1)) for i, out in seen]
        vectors.scoring_check(expected, got, latency)
