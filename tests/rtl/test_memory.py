# amaranth: UnusedElaboratable=no
"""The weight memories: behaviour against a dictionary, SPRAM tiling, parameter checks."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil

from bitprop.rtl.memory import (BinaryWeightMemory, HiddenWeightMemory, SinglePortSignature,
                                Spram256ka)
from bitprop.sim import flow
from tests.rtl.amaranth_streams import simulate
from tests.rtl.memory_cases import (BinaryModel, HiddenModel, MemoryHarness, binary_ops,
                                    hidden_ops)

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run_hidden(dut, ops):
    model = HiddenModel()
    errors = []

    async def tb(ctx):
        for op in ops:
            ctx.set(dut.port.r_en, op[0] == "r")
            ctx.set(dut.port.w_en, op[0] == "w")
            if op[0] != "idle":
                ctx.set(dut.port.addr, op[1])
            if op[0] == "w":
                ctx.set(dut.port.w_data, op[2])
            want = model.step(op)
            await ctx.tick()
            got = ctx.get(dut.port.r_data)
            if want is not None and got != want:
                errors.append((op, got, want))

    simulate(dut, tb)
    assert not errors, f"{len(errors)} mismatches, first {errors[0]}"


@pytest.mark.parametrize("lanes, bits, depth", [(8, 8, 40), (3, 5, 17), (1, 16, 2)])
def test_hidden_memory_behaviour(lanes, bits, depth):
    rng = np.random.default_rng(depth)
    dut = HiddenWeightMemory(lanes=lanes, hidden_bits=bits, depth=depth)
    _run_hidden(dut, hidden_ops(rng, depth, lanes * bits, 300))


def test_hidden_memory_initial_contents():
    init = [0x1234, 0x0F0F, 0xFFFF]
    dut = HiddenWeightMemory(lanes=2, hidden_bits=8, depth=4, init=init)
    got = []

    async def tb(ctx):
        for addr in range(3):
            ctx.set(dut.port.addr, addr)
            ctx.set(dut.port.r_en, 1)
            await ctx.tick()
            got.append(ctx.get(dut.port.r_data))

    simulate(dut, tb)
    assert got == init


@pytest.mark.parametrize("depth, slice_bits, memories", [
    (17, 40, 8),        # 2-bit slices of the 15-bit word, each the whole depth
    (17, 17 * 15, 1),   # the whole word fits one block: one memory
    (50, 40, 1),        # deeper than a block: slicing would not help, one memory
])
def test_sliced_hidden_memory(depth, slice_bits, memories):
    dut = HiddenWeightMemory(lanes=3, hidden_bits=5, depth=depth, slice_bits=slice_bits)
    assert rtlil.convert(dut, name="top").count("cell $memrd_v2") == memories
    rng = np.random.default_rng(depth + slice_bits)
    _run_hidden(dut, hidden_ops(rng, depth, 15, 200))


@pytest.mark.parametrize("lanes, bits, depth", [(3, 8, 16384 + 40), (8, 8, 64)])
def test_spram_tiling_behaviour(lanes, bits, depth):
    """Explicit SB_SPRAM256KA tiles (behavioural model): columns, banks, bank select."""
    rng = np.random.default_rng(lanes)
    dut = HiddenWeightMemory(lanes=lanes, hidden_bits=bits, depth=depth, spram=True,
                             model=True)
    _run_hidden(dut, hidden_ops(rng, depth, lanes * bits, 300,
                                hot=[16383, 16384] if depth > 16384 else None))


@pytest.mark.parametrize("lanes, bits, depth, tiles", [
    (8, 8, 16384, 4),      # the UP5K's whole SPRAM: 64-bit words
    (3, 8, 16385, 4),      # 24 bits → 2 columns, 2 banks
    (1, 16, 100, 1),
])
def test_spram_instances(lanes, bits, depth, tiles):
    dut = HiddenWeightMemory(lanes=lanes, hidden_bits=bits, depth=depth, spram=True)
    assert dut.spram_tiles[0] * dut.spram_tiles[1] == tiles
    text = rtlil.convert(dut, name="top")
    assert text.count("cell \\SB_SPRAM256KA") == tiles


@pytest.mark.parametrize("read_register", [False, True])
def test_binary_memory_behaviour(read_register):
    for width, depth, gran in [(32, 64, None), (32, 16, 8), (12, 5, 1), (7, 3, 7)]:
        rng = np.random.default_rng(width + depth)
        dut = BinaryWeightMemory(width=width, depth=depth, granularity=gran,
                                 read_register=read_register)
        assert dut.latency == 1 + read_register
        model = BinaryModel(width, gran)
        errors = []
        ops = binary_ops(rng, depth, width, width // (gran or width), 300)

        async def tb(ctx):
            wants = [None] * dut.latency
            for ra, wa, en, data in ops:
                ctx.set(dut.r_en, ra is not None)
                ctx.set(dut.r_addr, ra or 0)
                ctx.set(dut.w_en, en)
                ctx.set(dut.w_addr, wa or 0)
                ctx.set(dut.w_data, data)
                wants.append(model.step(ra, wa, en, data))
                await ctx.tick()
                want = wants[-dut.latency]
                if want is not None and ctx.get(dut.r_data) != want:
                    errors.append((ra, wa, want))

        simulate(dut, tb)
        assert not errors, (width, depth, gran, errors[:3])


@pytest.mark.parametrize("cls, kwargs, message", [
    (HiddenWeightMemory, {"lanes": 0, "hidden_bits": 8, "depth": 4},
     "lanes must be an integer >= 1; got 0"),
    (HiddenWeightMemory, {"lanes": 2, "hidden_bits": 33, "depth": 4},
     r"hidden_bits must be an integer in \[2, 32\]; got 33"),
    (HiddenWeightMemory, {"lanes": 2, "hidden_bits": 8, "depth": 0},
     "depth must be an integer >= 1; got 0"),
    (HiddenWeightMemory, {"lanes": 2, "hidden_bits": 8, "depth": 4, "spram": True,
                          "init": [1]}, "init is not supported with spram=True"),
    (HiddenWeightMemory, {"lanes": 2, "hidden_bits": 8, "depth": 1, "init": [1, 2]},
     "init has 2 words; depth is 1"),
    (BinaryWeightMemory, {"width": 0, "depth": 4}, "width must be an integer >= 1; got 0"),
    (BinaryWeightMemory, {"width": 10, "depth": 4, "granularity": 4},
     "width 10 is not a multiple of granularity 4"),
    (SinglePortSignature, {"addr_width": 0, "data_width": 4},
     "addr_width must be an integer >= 1; got 0"),
])
def test_rejects_bad_parameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_port_signature_matches_update_block():
    from bitprop.rtl.update import HiddenWeightUpdate
    mem = HiddenWeightMemory(lanes=4, hidden_bits=8, depth=256)
    up = HiddenWeightUpdate(lanes=4, hidden_bits=8, addr_width=8, max_records=4)
    assert mem.port.signature.flip() == up.mem.signature
    assert len(Spram256ka(model=True).dataout) == 16


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_memories_in_cocotb(simulator):
    if simulator not in flow.simulators():
        pytest.skip(f"{simulator} is not installed")
    config = {"lanes": 3, "hidden_bits": 8, "hidden_depth": 16384 + 32, "spram": True,
              "width": 32, "depth": 64, "granularity": 8}
    params = {**config, "seed": 3, "cycles": 600, "hot": [16383, 16384]}
    flow.run_cocotb(MemoryHarness(**config), name="weight_memories",
                    test_module="tests.rtl.cocotb_memory", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps(params)})
