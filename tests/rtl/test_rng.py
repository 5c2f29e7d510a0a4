# amaranth: UnusedElaboratable=no
"""Mix64 and DrawGenerator against model/rng.py (mix64, step_key, draws, events)."""

import json
import random

import pytest

from bitprop.model import rng
from bitprop.rtl.rng import DrawGenerator, Mix64, mix64_latency
from bitprop.sim import flow
from tests.rtl.amaranth_streams import drain, send, simulate
from tests.rtl.rng_cases import check_sweep, generator_cases

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("carry_segments", [1, 2, 4])
def test_mix64_matches_model(carry_segments):
    dut = Mix64(carry_segments=carry_segments, tag_width=3)
    g = random.Random(carry_segments)
    xs = [0, 1, (1 << 64) - 1, 1 << 63, rng.WEYL] + [g.getrandbits(64) for _ in range(60)]
    got = []

    async def producer(ctx):
        await send(ctx, dut.i, [{"x": x, "tag": i % 8} for i, x in enumerate(xs)],
                   rng=random.Random(1), p_idle=0.3)

    async def consumer(ctx):
        got.extend(await drain(ctx, dut.o, len(xs), rng=random.Random(2), p_stall=0.3))

    simulate(dut, producer, consumer)
    assert [int(w.x) for w in got] == [rng.mix64(x) for x in xs]
    assert [int(w.tag) for w in got] == [i % 8 for i in range(len(xs))]


@pytest.mark.parametrize("carry_segments", [1, 2, 4])
def test_mix64_latency(carry_segments):
    dut = Mix64(carry_segments=carry_segments)
    assert dut.latency == mix64_latency(carry_segments) == 4 + 6 * carry_segments
    seen = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"x": 12345, "tag": 1})
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for t in range(1, 40):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                seen.append(t)

    simulate(dut, tb)
    assert seen == [dut.latency]


def _sweeps(dut, cases, *, p_stall, restart_every=2):
    results = []

    async def tb(ctx):
        for n, case in enumerate(cases):
            for name in ("seed", "step", "layer", "threshold"):
                ctx.set(getattr(dut, name), case[name])
            if n % restart_every:
                await ctx.tick()   # restart while the last sweep is still streaming
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            words = await drain(ctx, dut.o, case["words"], rng=random.Random(n),
                                p_stall=p_stall)
            assert ctx.get(dut.key_valid)
            results.append((ctx.get(dut.key), words))

    simulate(dut, tb)
    for case, (key, words) in zip(cases, results):
        check_sweep(case, key, [int(w.hash) for w in words], [int(w.events) for w in words])


@pytest.mark.parametrize("carry_segments, step_width, layer_width",
                         [(1, 32, 8), (2, 32, 8), (4, 64, 64), (2, 5, 1)])
def test_generator_matches_model(carry_segments, step_width, layer_width):
    dut = DrawGenerator(carry_segments=carry_segments, step_width=step_width,
                        layer_width=layer_width)
    cases = generator_cases(carry_segments * 100 + step_width, step_width, layer_width)
    _sweeps(dut, cases, p_stall=0.3)


def test_generator_full_rate():
    dut = DrawGenerator(carry_segments=2)
    cases = generator_cases(9)
    for c in cases:
        c["words"] = 40
    _sweeps(dut, cases, p_stall=0.0)
    # One word per cycle once streaming: 40 words in 40 consecutive cycles.
    cycles = []

    async def tb(ctx):
        ctx.set(dut.seed, 3)
        ctx.set(dut.threshold, 100)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.o.ready, 1)
        for t in range(200):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                cycles.append(t)
            if len(cycles) == 40:
                break

    simulate(dut, tb)
    assert cycles[-1] - cycles[0] == 39


@pytest.mark.parametrize("cls, kwargs, message", [
    (Mix64, {"carry_segments": 3}, "carry_segments must be 1, 2 or 4; got 3"),
    (Mix64, {"tag_width": 0}, "tag_width must be an integer >= 1; got 0"),
    (DrawGenerator, {"carry_segments": 8}, "carry_segments must be 1, 2 or 4; got 8"),
    (DrawGenerator, {"step_width": 65}, r"step_width must be an integer in \[1, 64\]; got 65"),
    (DrawGenerator, {"layer_width": 0}, r"layer_width must be an integer in \[1, 64\]; got 0"),
])
def test_rejects_bad_parameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_generator_matches_model_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    config = {"carry_segments": 2, "step_width": 32, "layer_width": 8}
    flow.run_cocotb(DrawGenerator(**config), name="draw_generator",
                    test_module="tests.rtl.cocotb_rng", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps({**config, "seed": 5})})
