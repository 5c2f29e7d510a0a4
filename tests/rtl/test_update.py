# amaranth: UnusedElaboratable=no
"""HiddenWeightUpdate against ops.update_delta/apply_update (batch) and ops.reinforce (sweep)."""

import json
import random

import numpy as np
import pytest

from bitprop.model import ops
from bitprop.rtl.update import HiddenWeightUpdate
from bitprop.sim import flow
from tests.rtl.amaranth_streams import send, simulate
from tests.rtl.update_harness import (UpdateHarness, batch_case, layout_words, odd_hidden,
                                      record_beats, row_words, unlayout_words)

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


async def _load(ctx, dut, base, words):
    ctx.set(dut.host_sel, 1)
    ctx.set(dut.host_w_en, 1)
    for i, w in enumerate(words):
        ctx.set(dut.host_addr, base + i)
        ctx.set(dut.host_w_data, w)
        await ctx.tick()
    ctx.set(dut.host_w_en, 0)
    ctx.set(dut.host_sel, 0)


async def _dump(ctx, dut, base, count):
    ctx.set(dut.host_sel, 1)
    out = []
    for i in range(count):
        ctx.set(dut.host_addr, base + i)
        ctx.set(dut.host_r_en, 1)
        await ctx.tick()
        ctx.set(dut.host_r_en, 0)
        out.append(ctx.get(dut.host_r_data))
    ctx.set(dut.host_sel, 0)
    return out


async def _idle(ctx, dut):
    """Wait for ``busy`` to fall, and for a last write through the harness's registers."""
    await ctx.tick()
    await ctx.tick().until(~dut.busy)
    await ctx.tick().repeat(2)


def _monitor(dut, written):
    """Return a background testbench recording every ``written`` word as (addr, signs)."""
    async def monitor(ctx):
        async for _, _, valid, addr, signs in ctx.tick().sample(
                dut.written.valid, dut.written.addr, dut.written.signs):
            if valid:
                written.append((addr, signs))
    return monitor


def _check(words_out, expected, lanes, bits, written, base):
    k_out, k_in = expected.shape
    got, pad = unlayout_words(words_out, k_out, k_in, lanes, bits)
    bad = np.argwhere(got != expected)
    assert bad.size == 0, (f"{len(bad)} hidden weights differ, first at {bad[0].tolist()}: "
                           f"{got[tuple(bad[0])]} != {expected[tuple(bad[0])]}")
    assert (pad == 1).all(), "padding lanes changed"
    # Each written word reports its new binary weights (bit = 1 iff the weight is > 0).
    r, _ = row_words(k_in, lanes)
    padded = np.ones((k_out, r * lanes), dtype=np.int64)
    padded[:, :k_in] = expected
    for addr, signs in written:
        row = padded.reshape(k_out * r, lanes)[addr - base]
        assert signs == sum(int(v > 0) << lane for lane, v in enumerate(row))


BATCHES = [  # (K_out, K_in, lanes, hidden_bits, samples)
    (5, 13, 4, 4, 12),
    (7, 9, 3, 8, 20),
    (3, 17, 8, 16, 5),
    (4, 8, 8, 4, 30),     # one word per row, many records per row: saturation both ways
    (2, 3, 1, 2, 6),      # b = 2: h in {-1, +1}
    (6, 11, 5, 6, 16),
]


@pytest.mark.parametrize("k_out, k_in, lanes, bits, samples, mem_latency",
                         [(*case, 1) for case in BATCHES] + [(*BATCHES[0], 2), (*BATCHES[1], 3)])
def test_batch_matches_model(k_out, k_in, lanes, bits, samples, mem_latency):
    rng = np.random.default_rng(k_out * 100 + k_in)
    hidden, mask, desired, a_prev = batch_case(rng, k_out, k_in, bits, samples)
    expected = ops.apply_update(hidden, ops.update_delta(mask, desired, a_prev, k_out), bits)
    hmax = ops.hidden_range(bits)
    base = 2
    words = layout_words(hidden, lanes, bits)
    dut = UpdateHarness(lanes=lanes, hidden_bits=bits, depth=len(words) + base + 1,
                        max_records=samples, mem_latency=mem_latency)
    beats = record_beats(mask, desired, a_prev, lanes, base=base)
    out, written = [], []

    async def tb(ctx):
        await _load(ctx, dut, base, words)
        await send(ctx, dut.rec, beats, rng=random.Random(samples), p_idle=0.3)
        await _idle(ctx, dut)
        out.extend(await _dump(ctx, dut, base, len(words)))

    simulate(dut, tb, monitors=[_monitor(dut, written)])
    _check(out, expected, lanes, bits, written, base)
    rows = np.flatnonzero(mask.any(axis=0))
    r, _ = row_words(k_in, lanes)
    assert sorted(a for a, _ in written) == [base + j * r + c for j in rows for c in range(r)]
    if bits <= 4:
        assert (np.abs(expected) == hmax).any(), "case should reach saturation"


def test_batch_clamps_the_sum_once():
    """h = h_max with records +2 then -2: the model keeps h_max (per-record saturation would
    end at h_max - 2); likewise at -h_max."""
    bits, lanes = 4, 2
    hmax = ops.hidden_range(bits)
    hidden = np.array([[hmax, -hmax]])
    a_prev = np.array([[1, -1], [-1, 1]])       # sample 0 pushes up, sample 1 down
    desired = np.array([[1], [1]])
    mask = np.array([[True], [True]])
    expected = ops.apply_update(hidden, ops.update_delta(mask, desired, a_prev, 1), bits)
    np.testing.assert_array_equal(expected, hidden)
    words = layout_words(hidden, lanes, bits)
    dut = UpdateHarness(lanes=lanes, hidden_bits=bits, depth=4, max_records=2)
    out = []

    async def tb(ctx):
        await _load(ctx, dut, 0, words)
        await send(ctx, dut.rec, record_beats(mask, desired, a_prev, lanes))
        await _idle(ctx, dut)
        out.extend(await _dump(ctx, dut, 0, 1))

    simulate(dut, tb)
    _check(out, expected, lanes, bits, [], 0)


def test_batch_on_spram_model():
    """The same record stream through the SB_SPRAM256KA tiling (behavioural model)."""
    rng = np.random.default_rng(3)
    lanes, bits = 3, 8   # 24 bits: two SPRAM columns
    hidden, mask, desired, a_prev = batch_case(rng, 4, 7, bits, 10)
    expected = ops.apply_update(hidden, ops.update_delta(mask, desired, a_prev, 4), bits)
    words = layout_words(hidden, lanes, bits)
    base = 16380     # straddles the two banks
    dut = UpdateHarness(lanes=lanes, hidden_bits=bits, depth=16384 + 16, max_records=10,
                        spram=True)
    out = []

    async def tb(ctx):
        await _load(ctx, dut, base, words)
        await send(ctx, dut.rec, record_beats(mask, desired, a_prev, lanes, base=base))
        await _idle(ctx, dut)
        out.extend(await _dump(ctx, dut, base, len(words)))

    simulate(dut, tb)
    _check(out, expected, lanes, bits, [], base)


SWEEPS = [  # (K_out, K_in, lanes, hidden_bits, threshold, carry_segments)
    (5, 13, 4, 4, 30000, 1),
    (7, 9, 3, 8, 65535, 2),
    (3, 17, 8, 16, 0, 1),
    (4, 10, 8, 4, 20000, 1),
    (1, 1, 1, 2, 65535, 1),     # a single weight
    (2, 5, 8, 8, 40000, 2),     # one word per row
    (3, 7, 7, 6, 50000, 1),     # K_in = lanes: no partial word
]


@pytest.mark.parametrize("k_out, k_in, lanes, bits, threshold, segments, mem_latency",
                         [(*case, 1) for case in SWEEPS] + [(*SWEEPS[0], 3), (*SWEEPS[1], 2)])
def test_sweep_matches_model(k_out, k_in, lanes, bits, threshold, segments, mem_latency):
    rng = np.random.default_rng(k_out * 1000 + k_in * 10 + lanes)
    hidden = odd_hidden(rng, (k_out, k_in), bits)
    seed, step, layer = int(rng.integers(0, 1 << 62)), int(rng.integers(0, 1 << 20)), 3
    expected = ops.reinforce(hidden, seed, step, layer, threshold, bits)
    words = layout_words(hidden, lanes, bits)
    base = 1
    dut = UpdateHarness(lanes=lanes, hidden_bits=bits, depth=len(words) + 2,
                        carry_segments=segments, mem_latency=mem_latency)
    r, tail = row_words(k_in, lanes)
    out, written = [], []

    async def tb(ctx):
        await _load(ctx, dut, base, words)
        for name, value in dict(seed=seed, step=step, layer=layer, threshold=threshold,
                                sweep_base=base, sweep_rows=k_out, row_words=r,
                                row_tail=tail).items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.sweep_start, 1)
        await ctx.tick()
        ctx.set(dut.sweep_start, 0)
        await _idle(ctx, dut)
        out.extend(await _dump(ctx, dut, base, len(words)))

    simulate(dut, tb, monitors=[_monitor(dut, written)])
    _check(out, expected, lanes, bits, written, base)
    assert [a for a, _ in written] == list(range(base, base + len(words)))
    if threshold == 0:
        np.testing.assert_array_equal(expected, hidden)
    if threshold == 65535 and (np.abs(hidden) < ops.hidden_range(bits)).any():
        assert (expected != hidden).any()


def test_sweep_rate():
    """A long sweep runs at one word per two cycles (read and write share the port)."""
    lanes, bits, k_out, k_in = 8, 8, 16, 64
    hidden = odd_hidden(np.random.default_rng(0), (k_out, k_in), bits)
    words = layout_words(hidden, lanes, bits)
    dut = UpdateHarness(lanes=lanes, hidden_bits=bits, depth=len(words),
                        carry_segments=2, init=words)
    cycles = []

    async def tb(ctx):
        for name, value in dict(threshold=1000, sweep_rows=k_out, row_words=k_in // lanes,
                                row_tail=lanes).items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.sweep_start, 1)
        await ctx.tick()
        ctx.set(dut.sweep_start, 0)
        t = 0
        while True:
            _, _, busy, valid = await ctx.tick().sample(dut.busy, dut.written.valid)
            t += 1
            if valid:
                cycles.append(t)
            if not busy:
                break

    simulate(dut, tb)
    assert len(cycles) == len(words)
    span = cycles[-1] - cycles[0]
    assert span <= 2 * len(words) + 4, f"{len(words)} words took {span} cycles"


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, r"lanes must be an integer in \[1, 16\]; got 0"),
    ({"lanes": 17}, r"lanes must be an integer in \[1, 16\]; got 17"),
    ({"hidden_bits": 1}, r"hidden_bits must be an integer in \[2, 32\]; got 1"),
    ({"addr_width": 0}, "addr_width must be an integer >= 1; got 0"),
    ({"max_records": 0}, "max_records must be an integer >= 1; got 0"),
    ({"carry_segments": 3}, "carry_segments must be 1, 2 or 4; got 3"),
    ({"mem_latency": 4}, r"mem_latency must be an integer in \[1, 3\]; got 4"),
])
def test_rejects_bad_parameters(kwargs, message):
    args = {"lanes": 4, "hidden_bits": 8, "addr_width": 8, "max_records": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        HiddenWeightUpdate(**args)


def test_change_counter_width():
    dut = HiddenWeightUpdate(lanes=2, hidden_bits=8, addr_width=4, max_records=100)
    assert dut.delta_width == 9      # ±200 needs 9 bits signed


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    config = {"lanes": 4, "hidden_bits": 6, "depth": 64, "max_records": 32,
              "carry_segments": 2}
    params = {**config, "addr_width": 6, "seed": 7,
              "batches": [[5, 13, 24], [3, 8, 32], [4, 5, 10]],
              "sweeps": [[5, 13, 30000], [3, 4, 65535], [2, 9, 0], [1, 3, 12345]]}
    flow.run_cocotb(UpdateHarness(**config), name="hidden_weight_update",
                    test_module="tests.rtl.cocotb_update", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps(params)})
