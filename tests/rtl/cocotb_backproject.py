"""cocotb test of BackProjection against the golden model (run by test_backproject.py).

``BITPROP_TEST`` holds JSON ``{"simd", "max_rows", "pe", "latency", "seed", "cases"}``: the
block's parameters, its documented latency, and how many random layer cases to stream
through one build (``pe`` and ``latency`` default to 1 and 2, the PE = 1 block).
"""

import json
import os

import cocotb
import numpy as np

from tests.rtl import vectors
from tests.rtl.cocotb_drive import drive, reset

INPUTS = ("valid", "first", "last", "weights", "gate", "desired")


@cocotb.test()
async def backproject_matches_model(dut):
    """Stream many random layers (K_out, K_in, gate patterns) and compare every pass."""
    p = json.loads(os.environ["BITPROP_TEST"])
    simd, max_rows = p["simd"], p["max_rows"]
    pe, latency = p.get("pe", 1), p.get("latency", 2)
    sum_width = max_rows.bit_length() + 1
    rng = np.random.default_rng(p["seed"])
    await reset(dut, INPUTS)
    for _ in range(p["cases"]):
        case = vectors.backproject_pe_case(rng, pe=pe, simd=simd, max_rows=max_rows)
        cycles, expected = vectors.backproject_pe_stream(case, rng, pe=pe, simd=simd)
        seen = await drive(dut, cycles + vectors.idle(latency + 1), inputs=INPUTS,
                           outputs=("sums", "sign"))
        got = [(i, *vectors.backproject_decode(out, simd=simd, sum_width=sum_width))
               for i, out in seen]
        vectors.backproject_check(expected, got, latency)
