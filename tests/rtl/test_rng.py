# amaranth: UnusedElaboratable=no
"""Mix64 and DrawGenerator against model/rng.py (mix64, step_key, draws, events)."""

import json
import random

import pytest

from bitprop.model import rng
from bitprop.rtl.rng import DrawGenerator, Mix64, mix64_latency
from bitprop.sim import flow
from tests.rtl.amaranth_streams import drain, simulate
from tests.rtl.rng_cases import check_sweep, generator_cases

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _mix64_run(dut, xs, *, seed, clear_after=None):
    """Hash ``xs`` through ``dut`` under random idles and stalls; return the words out.

    While idle the producer puts random words on ``i.payload`` (the pipeline must only take
    the word of the handshake cycle, although it reads its high slices cycles later). With
    ``clear_after = n``, ``clear`` is pulsed once the first ``n`` words have entered. The
    run ends with the hash of the last word.
    """
    g = random.Random(seed)
    got = []
    last = rng.mix64(xs[-1])

    async def producer(ctx):
        for i, x in enumerate(xs):
            while g.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.i.payload, {"x": g.getrandbits(64), "tag": g.getrandbits(3)})
                await ctx.tick()
            if i == clear_after:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"x": x, "tag": i % 8})
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while not got or int(got[-1].x) != last:
            ready = g.random() >= 0.3
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready and valid:
                got.append(payload)
        ctx.set(dut.o.ready, 0)

    simulate(dut, producer, consumer)
    return got


@pytest.mark.parametrize("carry_segments", [1, 2, 4])
def test_mix64_matches_model(carry_segments):
    dut = Mix64(carry_segments=carry_segments, tag_width=3)
    g = random.Random(carry_segments)
    xs = [0, 1, (1 << 64) - 1, 1 << 63, rng.WEYL] + [g.getrandbits(64) for _ in range(60)]
    got = _mix64_run(dut, xs, seed=carry_segments)
    assert [int(w.x) for w in got] == [rng.mix64(x) for x in xs]
    assert [int(w.tag) for w in got] == [i % 8 for i in range(len(xs))]


@pytest.mark.parametrize("carry_segments", [1, 2, 4])
def test_mix64_clear_mid_stream(carry_segments):
    dut = Mix64(carry_segments=carry_segments, tag_width=3)
    g = random.Random(10 + carry_segments)
    xs = [g.getrandbits(64) for _ in range(40)]
    # The consumer stalls, so words are still in the pipeline at the clear: the words out
    # are those that left before it, then all those sent after it.
    got = [int(w.x) for w in _mix64_run(dut, xs, seed=carry_segments, clear_after=25)]
    before = len(got) - 15
    assert before < 25 - 2
    assert got == [rng.mix64(x) for x in xs[:before] + xs[25:]]


@pytest.mark.parametrize("carry_segments, input_slices, latency",
                         [(1, 1, 9), (2, 1, 13), (4, 1, 17), (1, 2, 10), (2, 4, 15)])
def test_mix64_latency(carry_segments, input_slices, latency):
    dut = Mix64(carry_segments=carry_segments, input_slices=input_slices)
    assert dut.latency == mix64_latency(carry_segments, input_slices) == latency
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


@pytest.mark.parametrize("carry_segments, input_slices", [(1, 2), (1, 4), (2, 2), (2, 4),
                                                           (4, 4)])
def test_mix64_sliced_input(carry_segments, input_slices):
    """Slice k of the input is the word taken k advancing cycles before (a running sum's)."""
    dut = Mix64(carry_segments=carry_segments, input_slices=input_slices)
    g = random.Random(20 + 3 * carry_segments + input_slices)
    xs = [(1 << 64) - 1, 0] + [g.getrandbits(64) for _ in range(50)]
    seg = 64 // input_slices
    got = []

    async def tb(ctx):
        history = []      # the word presented in each advancing cycle (taken or not)
        sent = 0
        while len(got) < len(xs):
            ready = g.random() >= 0.3
            valid = sent < len(xs) and g.random() >= 0.3
            word = xs[sent] if valid else g.getrandbits(64)
            x = 0
            for k in range(input_slices):
                src = word if k == 0 else history[-k] if len(history) >= k else 0
                x |= src & (((1 << seg) - 1) << (k * seg))
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, {"x": x, "tag": 0})
            ctx.set(dut.o.ready, ready)
            _, _, o_valid, o_payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready:
                history.append(word)
                sent += valid
                if o_valid:
                    got.append(int(o_payload.x))

    simulate(dut, tb)
    assert got == [rng.mix64(x) for x in xs]


def _sweeps(dut, cases, *, p_stall, restart_every=2, abort_keying=False):
    """Run ``cases`` as sweeps and compare them with the model.

    With ``abort_keying``, each sweep is preceded by a start with other inputs that the real
    start interrupts while the key is being computed.
    """
    results = []

    async def tb(ctx):
        for n, case in enumerate(cases):
            if abort_keying:
                ctx.set(dut.seed, n + 12345)
                ctx.set(dut.step, n % 2)
                ctx.set(dut.start, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                for _ in range(3 + 7 * n):
                    await ctx.tick()
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


@pytest.mark.parametrize("carry_segments", [1, 2])
def test_generator_under_heavy_backpressure(carry_segments):
    dut = DrawGenerator(carry_segments=carry_segments)
    cases = generator_cases(40 + carry_segments, n=4)
    _sweeps(dut, cases, p_stall=0.8, restart_every=1, abort_keying=True)


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
    (Mix64, {"input_slices": 3}, "input_slices must be 1, 2 or 4; got 3"),
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
