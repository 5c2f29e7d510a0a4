"""cocotb test of HiddenWeightUpdate (with its memory): batches and sweeps of many shapes."""

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, Timer

from bitprop.model import ops
from tests.rtl.cocotb_streams import params, read, start, transfer
from tests.rtl.update_harness import (batch_case, layout_words, odd_hidden, record_beats,
                                      row_words, unlayout_words)

SWEEP_INPUTS = ("seed", "step", "layer", "threshold", "sweep_base", "sweep_rows",
                "row_words", "row_tail")


async def load(dut, base, words):
    """Write ``words`` from ``base`` through the host port."""
    dut.host_sel.value = 1
    for i, w in enumerate(words):
        await FallingEdge(dut.clk)
        dut.host_addr.value = base + i
        dut.host_w_data.value = w
        dut.host_w_en.value = 1
    await FallingEdge(dut.clk)
    dut.host_w_en.value = 0
    dut.host_sel.value = 0


async def dump(dut, base, count):
    """Read ``count`` words from ``base`` through the host port."""
    dut.host_sel.value = 1
    out = []
    for i in range(count):
        await FallingEdge(dut.clk)
        dut.host_addr.value = base + i
        dut.host_r_en.value = 1
        await FallingEdge(dut.clk)
        dut.host_r_en.value = 0
        await Timer(1, unit="ns")
        out.append(read(dut.host_r_data))
    dut.host_sel.value = 0
    return out


async def wait_idle(dut, limit=100_000):
    written = []
    for _ in range(limit):
        await FallingEdge(dut.clk)
        await Timer(1, unit="ns")
        if read(dut.written__valid):
            written.append((read(dut.written__addr), read(dut.written__signs)))
        if not read(dut.busy):
            return written
    raise AssertionError("busy never fell")


@cocotb.test()
async def update_matches_model(dut):
    p = params()
    lanes, bits = p["lanes"], p["hidden_bits"]
    rec = data.StructLayout({"addr": p["addr_width"], "a_prev": lanes, "desired": 1,
                             "mask": lanes, "last": 1})
    await start(dut, ["rec__valid", "rec__payload", "sweep_start", "host_sel", "host_addr",
                      "host_r_en", "host_w_en", "host_w_data", *SWEEP_INPUTS])
    rng = np.random.default_rng(p["seed"])
    for n, (k_out, k_in, samples) in enumerate(p["batches"]):
        hidden, mask, desired, a_prev = batch_case(rng, k_out, k_in, bits, samples)
        expected = ops.apply_update(hidden, ops.update_delta(mask, desired, a_prev, k_out),
                                    bits)
        base = 3 * n
        words = layout_words(hidden, lanes, bits)
        await load(dut, base, words)
        beats = [rec.const(b).as_value().value
                 for b in record_beats(mask, desired, a_prev, lanes, base=base)]
        await transfer(dut, send="rec", words=beats, seed=n, p_idle=0.2)
        await wait_idle(dut)
        got, pad = unlayout_words(await dump(dut, base, len(words)), k_out, k_in, lanes, bits)
        np.testing.assert_array_equal(got, expected)
        assert (pad == 1).all()
    for n, (k_out, k_in, threshold) in enumerate(p["sweeps"]):
        hidden = odd_hidden(rng, (k_out, k_in), bits)
        seed, step, layer = int(rng.integers(0, 1 << 62)), int(rng.integers(0, 1000)), n
        expected = ops.reinforce(hidden, seed, step, layer, threshold, bits)
        base = 5 + n
        words = layout_words(hidden, lanes, bits)
        await load(dut, base, words)
        r, tail = row_words(k_in, lanes)
        values = dict(seed=seed, step=step, layer=layer, threshold=threshold, sweep_base=base,
                      sweep_rows=k_out, row_words=r, row_tail=tail)
        for name, value in values.items():
            getattr(dut, name).value = value
        await FallingEdge(dut.clk)
        dut.sweep_start.value = 1
        await FallingEdge(dut.clk)
        dut.sweep_start.value = 0
        written = await wait_idle(dut)
        assert len(written) == len(words)
        got, pad = unlayout_words(await dump(dut, base, len(words)), k_out, k_in, lanes, bits)
        np.testing.assert_array_equal(got, expected)
        assert (pad == 1).all()
