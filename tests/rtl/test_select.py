# amaranth: UnusedElaboratable=no
"""GroupWinnerSelect against ops.select_winners, in Amaranth's simulator and in cocotb."""

import json
import random

import numpy as np
import pytest

from bitprop.rtl.select import GroupWinnerSelect
from bitprop.sim import flow
from tests.rtl.amaranth_streams import drain, send, simulate
from tests.rtl.select_cases import SHAPES, case_words, check_groups, make_case

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run(dut, cases, *, seed, p_idle=0.3, p_stall=0.3):
    """Stream every case through ``dut`` back to back; check each against the model."""
    stream, expect = [], []
    for z, desired, gamma, active in cases:
        stream.append((gamma, case_words(z, desired, active)))
        expect.append((z, desired, gamma, active))
    got = []

    async def producer(ctx):
        for gamma, words in stream:
            # γ may change between layers only once the last group word is out.
            await ctx.tick().until(~dut.o.valid)
            ctx.set(dut.gamma, gamma)
            await send(ctx, dut.i, words, rng=random.Random(seed), p_idle=p_idle)
            await ctx.tick().repeat(5)

    async def consumer(ctx):
        total = sum(z.shape[0] * (z.shape[1] // gamma) for z, _, gamma, _ in expect)
        got.extend(await drain(ctx, dut.o, total, rng=random.Random(seed + 1),
                               p_stall=p_stall))

    simulate(dut, producer, consumer)
    pos = 0
    for z, desired, gamma, active in expect:
        count = z.shape[0] * (z.shape[1] // gamma)
        check_groups(got[pos:pos + count], z, desired, gamma, active)
        pos += count


@pytest.mark.parametrize("z_width", [4, 10])
def test_matches_model_in_amaranth(z_width):
    rng = np.random.default_rng(z_width)
    cases = []
    for k, gamma, flavour in SHAPES:
        z, desired, active = make_case(rng, k, gamma, flavour, z_width)
        cases.append((z, desired, gamma, active))
    _run(GroupWinnerSelect(gamma_max=64, z_width=z_width, max_units=64), cases, seed=z_width)


def test_full_rate_without_stalls():
    rng = np.random.default_rng(5)
    cases = [(*make_case(rng, 105, 35, "ties", 8)[:2], 35, np.ones(3, bool)),
             (*make_case(rng, 9, 1, "random", 8)[:2], 1, np.ones(3, bool))]
    _run(GroupWinnerSelect(gamma_max=35, z_width=8, max_units=105), cases, seed=5,
         p_idle=0.0, p_stall=0.0)


def test_throughput_is_one_unit_per_cycle():
    dut = GroupWinnerSelect(gamma_max=8, z_width=6, max_units=64)
    words = [{"z": j - 32, "desired": 1, "active": 1, "first": int(j == 0)}
             for j in range(64)]
    cycles = []

    async def tb(ctx):
        ctx.set(dut.gamma, 8)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for w in words:
            ctx.set(dut.i.payload, w)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert ready
        ctx.set(dut.i.valid, 0)
        for t in range(6):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                cycles.append(t)

    simulate(dut, tb)
    assert cycles and cycles[0] == 2     # the last group's word: 3 cycles after its last unit


@pytest.mark.parametrize("kwargs, message", [
    ({"gamma_max": 0, "z_width": 8, "max_units": 8}, "gamma_max must be an integer >= 1"),
    ({"gamma_max": 4, "z_width": 1, "max_units": 8}, "z_width must be an integer >= 2"),
    ({"gamma_max": 4, "z_width": 8, "max_units": 0}, "max_units must be an integer >= 1"),
    ({"gamma_max": 2.0, "z_width": 8, "max_units": 8}, "gamma_max must be an integer >= 1"),
])
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupWinnerSelect(**kwargs)


def test_port_widths():
    dut = GroupWinnerSelect(gamma_max=105, z_width=11, max_units=525)
    assert len(dut.gamma) == 7
    assert len(dut.i.payload.z) == 11
    assert len(dut.o.payload.index) == 10


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    config = {"gamma_max": 64, "z_width": 10, "max_units": 64}
    flow.run_cocotb(GroupWinnerSelect(**config), name="group_winner_select",
                    test_module="tests.rtl.cocotb_select", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**config, "seed": 11})})
