"""cocotb test of XnorPopcountArray against the golden model (run by test_xnor_popcount.py).

``BITPROP_TEST`` holds JSON ``{"pe", "simd", "max_words", "latency", "seed", "cases"}``: the
block's parameters, its documented latency, and how many random matrix cases to stream
through one build.
"""

import json
import os

import cocotb
import numpy as np

from tests.rtl import vectors
from tests.rtl.cocotb_drive import drive, reset

INPUTS = ("valid", "first", "last", "mask", "activation", "weights")


@cocotb.test()
async def xnor_popcount_matches_model(dut):
    """Stream many random shapes (K, rows, thresholds, idle cycles) and compare every result."""
    p = json.loads(os.environ["BITPROP_TEST"])
    pe, simd, max_words = p["pe"], p["simd"], p["max_words"]
    latency = p["latency"]
    z_width = (max_words * simd).bit_length() + 1
    rng = np.random.default_rng(p["seed"])
    await reset(dut, INPUTS + ("k", "threshold"))
    for _ in range(p["cases"]):
        case = vectors.xnor_case(rng, pe=pe, simd=simd, max_words=max_words)
        cycles, expected = vectors.xnor_stream(case, rng, pe=pe, simd=simd,
                                                holes=bool(rng.random() < 0.3))
        dut.k.value = case["k"]
        dut.threshold.value = case["threshold"]
        seen = await drive(dut, cycles + vectors.idle(latency + 1), inputs=INPUTS,
                           outputs=("z", "sign", "gate"))
        got = [(i, *vectors.xnor_decode(out, pe=pe, z_width=z_width)) for i, out in seen]
        vectors.xnor_check(expected, got, latency)
