"""cocotb test of GroupWinnerSelect: many runtime shapes through one build."""

import cocotb
import numpy as np
from amaranth.lib import data
from amaranth import signed

from tests.rtl.cocotb_streams import params, start, transfer
from tests.rtl.select_cases import SHAPES, case_words, check_groups, make_case


@cocotb.test()
async def select_matches_model(dut):
    p = params()
    z_width, max_units = p["z_width"], p["max_units"]
    in_layout = data.StructLayout({"z": signed(z_width), "desired": 1, "active": 1,
                                   "first": 1})
    out_layout = data.StructLayout({"found": 1, "index": range(max_units), "desired": 1})
    await start(dut, ["i__valid", "i__payload", "o__ready", "gamma"])
    rng = np.random.default_rng(p["seed"])
    for n, (k, gamma, flavour) in enumerate(SHAPES):
        z, desired, active = make_case(rng, k, gamma, flavour, z_width)
        words = [in_layout.const(w).as_value().value for w in case_words(z, desired, active)]
        dut.gamma.value = gamma
        got = await transfer(dut, send="i", recv="o", words=words,
                             count=len(z) * (k // gamma), seed=n, p_idle=0.2, p_stall=0.2)
        check_groups([out_layout.from_bits(v) for v in got], z, desired, gamma, active)
