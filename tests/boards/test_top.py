# amaranth: UnusedElaboratable=no
"""boards.top: the frame bridge's request handling, and the whole SerialCore behind FramePort.

The Amaranth simulator drives :class:`FrameBridge` between a FrameReceiver and a
FrameTransmitter (wire bytes in and out, no UART) with an echo core, request by request.
cocotb + Verilator then runs the real :class:`SerialCore` over its UART pins with the host
driver (``tests/boards/cocotb_top.py``) and compares a training step with the golden model.
"""

import json
import struct

import pytest
from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bitprop.boards.driver import FRAME_CMD, FRAME_READ
from bitprop.boards.link import NACK, FrameDecoder, encode_frame
from bitprop.boards.top import ERR_ALIGN, ERR_READ_LENGTH, ERR_TYPE, FrameBridge, SerialCore
from bitprop.model.config import RunConfig
from bitprop.rtl.core import RSP_LAYOUT
from bitprop.rtl.link import FrameReceiver, FrameTransmitter
from bitprop.rtl.plan import CorePlan
from bitprop.sim import flow

MAX_PAYLOAD = 32        # 8 words per frame
REPLY_DEPTH = 8


class EchoCore(wiring.Component):
    """Answer every command word ``w`` with ``w + 1`` through a 4-word FIFO; ``stall`` holds
    the command stream (a busy core)."""

    def __init__(self):
        super().__init__({"cmd": In(stream.Signature(32)),
                          "rsp": Out(stream.Signature(RSP_LAYOUT)), "stall": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = fifo.SyncFIFOBuffered(width=32, depth=4)
        m.d.comb += [q.w_data.eq(self.cmd.payload + 1), q.w_en.eq(self.cmd.valid & ~self.stall),
                     self.cmd.ready.eq(q.w_rdy & ~self.stall),
                     self.rsp.valid.eq(q.r_rdy), self.rsp.payload.data.eq(q.r_data),
                     q.r_en.eq(self.rsp.ready)]
        return m


class BridgeBench(wiring.Component):
    """FrameReceiver → FrameBridge ↔ EchoCore, FrameBridge → FrameTransmitter."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "stall": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = FrameReceiver(max_payload=MAX_PAYLOAD)
        m.submodules.bridge = br = FrameBridge(max_payload=MAX_PAYLOAD, reply_depth=REPLY_DEPTH)
        m.submodules.tx = tx = FrameTransmitter()
        m.submodules.core = core = EchoCore()
        wiring.connect(m, wiring.flipped(self.i), rx.i)
        wiring.connect(m, tx.o, wiring.flipped(self.o))
        wiring.connect(m, rx.o, br.rx)
        wiring.connect(m, br.tx_header, tx.header)
        wiring.connect(m, br.tx, tx.i)
        wiring.connect(m, br.cmd, core.cmd)
        wiring.connect(m, core.rsp, br.rsp)
        m.d.comb += [br.rx_type.eq(rx.type), br.rx_seq.eq(rx.seq), br.rx_length.eq(rx.length),
                     br.rx_done.eq(rx.done), br.rx_ok.eq(rx.ok), core.stall.eq(self.stall)]
        return m


def run_script(script):
    """Run ``script``: a list of ``(wire bytes, stall, settle cycles)`` steps; each step's wire
    bytes go in one per cycle, then ``settle`` cycles pass. Return the reply frames per step."""
    dut = BridgeBench()
    replies = []

    async def bench(ctx):
        decoder = FrameDecoder(max_payload=MAX_PAYLOAD)
        ctx.set(dut.o.ready, 1)
        for wire, stall, settle in script:
            got = []
            ctx.set(dut.stall, stall)
            pos, cycles = 0, 0
            while pos < len(wire) or cycles < settle:
                valid = pos < len(wire)
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.i.payload, wire[pos] if valid else 0)
                took = valid and ctx.get(dut.i.ready)
                if ctx.get(dut.o.valid):
                    got += decoder.feed(bytes([ctx.get(dut.o.payload)]))
                await ctx.tick()
                pos += took
                cycles += pos >= len(wire)
            replies.append(got)
        assert decoder.corrupt == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return replies


def cmd(seq, words):
    return encode_frame(FRAME_CMD, seq, struct.pack(f"<{len(words)}I", *words))


def read(seq, wanted):
    return encode_frame(FRAME_READ, seq, struct.pack("<H", wanted))


def words_of(frame):
    assert frame.type == FRAME_READ | 0x80 and frame.length % 4 == 0
    return list(struct.unpack(f"<{frame.length // 4}I", frame.payload))


def one(replies, seq):
    assert len(replies) == 1, replies
    assert replies[0].seq == seq
    return replies[0]


SETTLE = 400          # the longest reply (8 words) takes about 9 cycles per body byte


def test_commands_reads_and_resends():
    r = run_script([
        (cmd(0, [10, 20, 30]), 0, SETTLE),
        (read(1, 2), 0, SETTLE),
        (read(1, 2), 0, SETTLE),            # the answer was lost: the same words again
        (cmd(0xFF, [40]), 0, SETTLE),       # a new request releases the last answer
        (cmd(0xFF, [40]), 0, SETTLE),       # the ack was lost: acknowledged, not executed
        (read(2, 100), 0, SETTLE),          # asks for more than there is
        (read(3, 5), 0, SETTLE),            # nothing left
        (cmd(4, []), 0, SETTLE),            # an empty command frame is acknowledged
    ])
    ack = one(r[0], 0)
    assert ack.type == FRAME_CMD | 0x80 and ack.payload == b""
    assert words_of(one(r[1], 1)) == [11, 21]
    assert words_of(one(r[2], 1)) == [11, 21]
    assert one(r[3], 0xFF).type == FRAME_CMD | 0x80
    assert one(r[4], 0xFF).type == FRAME_CMD | 0x80
    assert words_of(one(r[5], 2)) == [31, 41]
    assert words_of(one(r[6], 3)) == []
    assert one(r[7], 4).type == FRAME_CMD | 0x80


def test_refused_requests_execute_nothing():
    bad_type = encode_frame(0x05, 3, b"\x01\x00\x00\x00")
    r = run_script([
        (encode_frame(FRAME_CMD, 0, b"\x01\x02\x03\x04\x05"), 0, SETTLE),
        (encode_frame(FRAME_READ, 1, b"\x08"), 0, SETTLE),
        (bad_type, 0, SETTLE),
        (encode_frame(FRAME_READ, 5, b""), 0, SETTLE),     # after a 4-byte payload
        (read(4, 8), 0, SETTLE),
    ])
    for k, code in enumerate((ERR_ALIGN, ERR_READ_LENGTH, ERR_TYPE, ERR_READ_LENGTH)):
        nack = one(r[k], [0, 1, 3, 5][k])
        assert nack.type == NACK and nack.payload == bytes([code])
    assert words_of(one(r[4], 4)) == []


def test_damaged_and_overlapping_frames_are_dropped():
    good = cmd(7, [1, 2, 3, 4])
    damaged = bytearray(good)
    damaged[6] ^= 0x10                      # a payload byte (no END/ESC in this frame)
    r = run_script([
        (bytes(damaged), 0, SETTLE),        # bad CRC: no reply, nothing executed
        (read(8, 8), 0, SETTLE),
        (cmd(9, [5, 6, 7, 8, 9, 10]), 1, 10),  # the core is busy: the bridge is feeding it
        (cmd(10, [11]), 1, SETTLE),         # ... so this frame is dropped
        (b"", 0, SETTLE),                   # the core goes on; frame 9 is acknowledged
        (cmd(10, [11]), 0, SETTLE),         # the host's resend of 10 is executed
        (read(11, 8), 0, SETTLE),
    ])
    assert r[0] == []
    assert words_of(one(r[1], 8)) == []
    assert r[2] == [] and r[3] == []
    assert one(r[4], 9).type == FRAME_CMD | 0x80
    assert one(r[5], 10).type == FRAME_CMD | 0x80
    assert words_of(one(r[6], 11)) == [6, 7, 8, 9, 10, 11, 12]


def test_full_reply_ring_holds_the_core_back():
    """Twelve reply words through an 8-word ring (plus the echo core's FIFO): none lost."""
    r = run_script([
        (cmd(0, list(range(100, 108))), 0, SETTLE),
        (cmd(1, list(range(108, 112))), 0, SETTLE),   # the core takes them into its FIFO
        (read(2, 8), 0, SETTLE),
        (read(2, 8), 0, SETTLE),                      # resend: same 8 words, ring still full
        (read(3, 8), 0, SETTLE),                      # may come before the FIFO drains
        (read(4, 8), 0, SETTLE),
        (read(5, 8), 0, SETTLE),
    ])
    assert one(r[0], 0).type == one(r[1], 1).type == FRAME_CMD | 0x80
    first = words_of(one(r[2], 2))
    assert first == list(range(101, 109))
    assert words_of(one(r[3], 2)) == first
    assert words_of(one(r[4], 3)) + words_of(one(r[5], 4)) == list(range(109, 113))
    assert words_of(one(r[6], 5)) == []


@pytest.mark.parametrize("kw, message", [
    (dict(max_payload=2), "max_payload must be an integer in [4, 2048]; got 2"),
    (dict(max_payload=30), "max_payload must be a multiple of 4; got 30"),
    (dict(reply_depth=100), "reply_depth must be a power of two; got 100"),
    (dict(reply_depth=2), "reply_depth must be an integer in [4, 65536]; got 2"),
])
def test_bad_parameters(kw, message):
    with pytest.raises(ValueError) as info:
        FrameBridge(**kw)
    assert str(info.value) == message


# -- the whole design on Verilator --------------------------------------------------------------
TINY = dict(rule="local", hidden=(6, 6), gamma=(3, 6), input_dim=20, n_classes=3, pe=2,
            simd=8, lanes=4, batch=4, hidden_bits=6)


@pytest.mark.skipif("verilator" not in flow.simulators(), reason="Verilator not available")
def test_frame_port_trains_like_the_model(tmp_path):
    cfg = RunConfig(**TINY)
    plan = CorePlan.from_config(cfg)
    divisor = 4
    result = tmp_path / "result.json"
    spec = {"config": cfg.to_dict(), "divisor": divisor, "max_payload": 64,
            "result": str(result), "seed": 5}
    flow.run_cocotb(SerialCore(plan=plan, divisor=divisor, max_payload=64),
                    name=f"serial_core_{plan.signature:08x}",
                    test_module="tests.boards.cocotb_top",
                    extra_env={"BITPROP_TOP": json.dumps(spec)},
                    verilator_args=("--no-public-flat-rw", "--public-depth", "1"))
    out = json.loads(result.read_text())
    assert out["hidden_mismatches"] == 0 and out["trained_layers_changed"]
    assert out["host_resends"] >= 3          # one damaged request, two damaged replies
    assert out["host_crc_errors"] == 2
