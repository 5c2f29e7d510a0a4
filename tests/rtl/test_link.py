# amaranth: UnusedElaboratable=no
"""rtl.link against boards.link (the model): receiver, transmitter and UART.

The Amaranth simulator runs many random cases per block; cocotb runs the same checks on one
Verilator (and, where installed, one Icarus) build of :class:`LinkBench`, which holds all
four blocks side by side.
"""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth import Module
from amaranth.hdl import UnusedElaboratable
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bitprop.boards import link
from bitprop.rtl.link import (Crc16, FrameReceiver, FrameTransmitter, SerialLink, UartRx,
                              UartTx)
from bitprop.sim import flow
from tests.rtl import link_cases

MAX_PAYLOAD = 48   # small, so that over-long frames are cheap to simulate


# -- Amaranth-simulator drivers ----------------------------------------------------------------
def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_receiver(dut, wire, rng, *, p_valid=0.8, p_ready=0.8):
    """Feed ``wire`` to a FrameReceiver; return its events like link_cases.expected_events."""
    events = []

    async def bench(ctx):
        pos, collected, idle = 0, [], 0
        while idle < 8:
            valid = pos < len(wire) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, wire[pos] if pos < len(wire) else 0)
            ctx.set(dut.o.ready, ready)
            took = valid and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid) and ready:
                out = ctx.get(dut.o.payload)
                collected.append((out.data, out.first, out.last))
            if ctx.get(dut.done):
                events.append(_event(ctx.get(dut.ok), ctx.get(dut.reason), ctx.get(dut.type),
                                     ctx.get(dut.seq), ctx.get(dut.length), collected))
                collected = []
            await ctx.tick()
            pos += took
            idle = idle + 1 if pos == len(wire) else 0
    _sim(dut, bench)
    return events


def _event(ok, reason, ftype, seq, length, collected):
    """Turn a receiver verdict into a model-style event, checking first/last and length."""
    if not ok:
        assert reason != 0
        return ("error", reason)
    assert reason == 0
    assert length == len(collected), (length, collected)
    for k, (_data, first, last) in enumerate(collected):
        assert first == (k == 0) and last == (k == length - 1), collected
    return ("frame", ftype, seq, bytes(d for d, _f, _l in collected))


def run_transmitter(dut, frames, rng, *, p_valid=0.8, p_ready=0.8):
    """Send ``frames`` [(type, seq, payload)] through a FrameTransmitter; return the wire."""
    out = bytearray()

    async def bench(ctx):
        hdr_pos, pay_pos, payload_bytes, idle = 0, 0, link_cases.send_stream(frames), 0
        while idle < 20:
            h_valid = hdr_pos < len(frames) and rng.random() < p_valid
            if hdr_pos < len(frames):
                ftype, seq, data = frames[hdr_pos]
                ctx.set(dut.header.payload, {"type": ftype, "seq": seq, "length": len(data)})
            ctx.set(dut.header.valid, h_valid)
            i_valid = pay_pos < len(payload_bytes) and rng.random() < p_valid
            ctx.set(dut.i.valid, i_valid)
            byte, last = payload_bytes[pay_pos] if i_valid else (0, 0)
            ctx.set(dut.i.payload, {"data": byte, "last": last})
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            h_took = h_valid and ctx.get(dut.header.ready)
            i_took = i_valid and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid) and ready:
                out.append(ctx.get(dut.o.payload))
            await ctx.tick()
            hdr_pos += h_took
            pay_pos += i_took
            done = hdr_pos == len(frames) and pay_pos == len(payload_bytes)
            idle = idle + 1 if done and not ctx.get(dut.busy) else 0
    _sim(dut, bench)
    return bytes(out)


# -- FrameReceiver -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_receiver_matches_model(seed):
    rng = np.random.default_rng(100 + seed)
    wire, expected = link_cases.wire_stream(rng, frames=150, max_payload=MAX_PAYLOAD)
    got = run_receiver(FrameReceiver(max_payload=MAX_PAYLOAD), wire, rng)
    assert got == expected
    kinds = {e[0] for e in expected}
    assert kinds == {"frame", "error"}


def test_receiver_every_reason_and_full_speed():
    """One of each error reason, with input always valid and output always ready."""
    rng = np.random.default_rng(3)
    a = link.encode_frame(1, 2, b"ab", max_payload=8)
    parts = [a,
             bytes([link.END, 1, 2, 3, link.END]),                                    # SHORT
             link.encode_frame(1, 2, bytes(9), max_payload=9)[:-4] + bytes([link.END]),  # LENGTH
             a[:5] + bytes([a[5] ^ 4]) + a[6:],                                       # CRC
             bytes([link.END, 1, link.ESC, 0x11, 5, 5]),                              # ESCAPE
             link.encode_frame(1, 2, bytes(9), max_payload=9),                       # OVERLONG
             link.encode_frame(7, 8, b"", max_payload=8)]
    wire = b"".join(parts)
    expected = link_cases.expected_events(wire, 8)
    assert [e[1] for e in expected if e[0] == "error"] == [1, 2, 3, 4, 5]
    assert run_receiver(FrameReceiver(max_payload=8), wire, rng, p_valid=1, p_ready=1) \
        == expected


def test_receiver_max_payload_frame():
    rng = np.random.default_rng(4)
    data = link_cases.payload(rng, 300)
    wire = link.encode_frame(9, 9, data, max_payload=300) * 2
    got = run_receiver(FrameReceiver(max_payload=300), wire, rng, p_valid=1, p_ready=1)
    assert got == [("frame", 9, 9, data)] * 2


def _refused(make, message):
    """Check that ``make()`` raises ValueError(message); silence the half-built object."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=message):
            make()
        gc.collect()


def test_receiver_validates_max_payload():
    _refused(lambda: FrameReceiver(max_payload=65536),
             r"max_payload must be an integer in \[0, 65535\]; got 65536")


def test_crc16_matches_model():
    """Random bytes through Crc16, with clears between runs: busy for 8 cycles per byte."""
    dut = Crc16()
    rng = np.random.default_rng(5)
    runs = [link_cases.payload(rng, int(n)) for n in rng.integers(0, 12, 20)]

    async def bench(ctx):
        for data in runs:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            assert ctx.get(dut.crc) == 0xFFFF
            for byte in data:
                ctx.set(dut.byte, byte)
                ctx.set(dut.start, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                for _ in range(8):
                    assert ctx.get(dut.busy)
                    await ctx.tick()
                assert not ctx.get(dut.busy)
            assert ctx.get(dut.crc) == link.crc16(data)
    _sim(dut, bench)


# -- FrameTransmitter --------------------------------------------------------------------------
def _random_frames(rng, n, max_len):
    return [(int(rng.integers(256)), int(rng.integers(256)),
             link_cases.payload(rng, int(rng.integers(0, max_len + 1)))) for _ in range(n)]


@pytest.mark.parametrize("seed, p_valid, p_ready", [(0, 0.8, 0.8), (1, 1.0, 1.0),
                                                    (2, 0.3, 0.5)])
def test_transmitter_matches_encode_frame(seed, p_valid, p_ready):
    rng = np.random.default_rng(200 + seed)
    frames = _random_frames(rng, 25, 40) + [(link.END, link.ESC, b"")]
    wire = run_transmitter(FrameTransmitter(), frames, rng, p_valid=p_valid, p_ready=p_ready)
    assert wire == b"".join(link.encode_frame(t, s, p, max_payload=1 << 16)
                            for t, s, p in frames)


def test_transmitter_full_speed_timing():
    """With o always ready: the opening END 3 cycles after ``header.valid``, then the
    bytes at the pace of the fetch stage and the CRC."""
    dut = FrameTransmitter()
    data = bytes([1, link.END, 2, link.ESC, 3])
    expected = link.encode_frame(5, 6, data)
    cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.header.payload, {"type": 5, "seq": 6, "length": len(data)})
        ctx.set(dut.header.valid, 1)
        pos = 0
        for cycle in range(9 * len(expected)):
            ctx.set(dut.i.valid, pos < len(data))
            ctx.set(dut.i.payload, {"data": data[pos] if pos < len(data) else 0,
                                    "last": pos == len(data) - 1})
            if ctx.get(dut.o.valid):
                cycles.append((cycle, ctx.get(dut.o.payload)))
            h_took = ctx.get(dut.header.ready)
            took = ctx.get(dut.i.ready) and pos < len(data)
            await ctx.tick()
            pos += took
            if h_took:
                ctx.set(dut.header.valid, 0)
    _sim(dut, bench)
    assert bytes(b for _, b in cycles) == expected
    gaps = [b - a for (a, _), (b, _) in zip(cycles, cycles[1:])]
    # END, 4 header bytes, 0x01, ESC ESC_END, 0x02, ESC ESC_ESC, 0x03, CRC 0xF9 0x18, END:
    # a symbol 2 cycles after the previous one (the fetch stage refills the stuffing stage
    # once it is empty), a body byte 9 cycles after a header or payload byte (the CRC's 8
    # cycles; 8 after its escape byte, which goes out during them).
    assert expected.hex(" ") == "c0 05 06 05 00 01 db dc 02 db dd 03 f9 18 c0"
    assert cycles[0][0] == 3
    assert gaps == [2] + [9] * 5 + [1, 8, 9, 1, 8, 9, 2, 2], gaps


# -- UART --------------------------------------------------------------------------------------
class UartLoopback(wiring.Component):
    """UartTx → UartRx on one line, which ``force_low`` can hold low (a break)."""

    def __init__(self, *, divisor):
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "force_low": In(1),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UartTx(divisor=self.divisor)
        m.submodules.rx = rx = UartRx(divisor=self.divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [rx.rx.eq(tx.tx & ~self.force_low),
                     self.framing_error.eq(rx.framing_error), self.overrun.eq(rx.overrun)]
        return m


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback(divisor):
    rng = np.random.default_rng(divisor)
    data = bytes([0x00, 0xFF, 0x55, 0xAA]) + rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    dut = UartLoopback(divisor=divisor)
    got, gaps = [], []

    async def bench(ctx):
        pos, last_take = 0, None
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(data) * 10 * divisor + 60):
            ctx.set(dut.i.valid, pos < len(data))
            ctx.set(dut.i.payload, data[pos] if pos < len(data) else 0)
            took = pos < len(data) and ctx.get(dut.i.ready)
            if took:
                if last_take is not None:
                    gaps.append(cycle - last_take)
                last_take = cycle
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            assert not ctx.get(dut.framing_error) and not ctx.get(dut.overrun)
            await ctx.tick()
            pos += took
    _sim(dut, bench)
    assert bytes(got) == data
    assert set(gaps) == {10 * divisor + 1}


def _uart_bits(byte, stop=1):
    return [0] + [byte >> k & 1 for k in range(8)] + [stop]


def test_uart_rx_framing_error_glitch_and_overrun():
    divisor = 8
    dut = UartRx(divisor=divisor)
    # A glitch (low for 2 cycles), a good byte, a byte with a low stop bit held low (a break),
    # then two good bytes that are not taken: the second one overruns.
    line = [1] * 10 + [0, 0] + [1] * 20
    line += [b for bit in _uart_bits(0xA5) for b in [bit] * divisor] + [1] * 5
    line += [b for bit in _uart_bits(0x3C, stop=0) for b in [bit] * divisor] + [0] * 30
    line += [1] * 10
    line += [b for byte in (0x81, 0x42) for bit in _uart_bits(byte) for b in [bit] * divisor]
    line += [1] * 30
    seen = {"bytes": [], "ferr": 0, "overrun": 0}

    async def bench(ctx):
        for k, level in enumerate(line):
            ctx.set(dut.rx, level)
            taking = len(seen["bytes"]) < 1   # take only the first byte; leave the rest
            ctx.set(dut.o.ready, taking)
            if ctx.get(dut.o.valid) and taking:
                seen["bytes"].append(ctx.get(dut.o.payload))
            seen["ferr"] += ctx.get(dut.framing_error)
            seen["overrun"] += ctx.get(dut.overrun)
            await ctx.tick()
        seen["held"] = ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None
    _sim(dut, bench)
    assert seen["bytes"] == [0xA5]
    assert seen["ferr"] == 1 and seen["overrun"] == 1
    assert seen["held"] == 0x81


@pytest.mark.parametrize("cls", [UartRx, UartTx])
def test_uart_validates_divisor(cls):
    _refused(lambda: cls(divisor=3), r"divisor must be an integer in \[4, 16777216\]; got 3")


# -- SerialLink: the whole device end ---------------------------------------------------------
def _serial_link_events(dut, frames, line_bits, cycles):
    """Drive a SerialLink: send ``frames`` from its transmitter with ``tx`` looped to ``rx``,
    or, when ``line_bits`` is given, drive ``rx`` with it instead; return received events."""
    events = []

    async def bench(ctx):
        collected, hdr, pay = [], 0, 0
        payload_bytes = link_cases.send_stream(frames)
        ctx.set(dut.o.ready, 1)
        for cycle in range(cycles):
            if line_bits is None:
                ctx.set(dut.rx, ctx.get(dut.tx))
            else:
                ctx.set(dut.rx, line_bits[cycle] if cycle < len(line_bits) else 1)
            if hdr < len(frames):
                t, q, p = frames[hdr]
                ctx.set(dut.header.payload, {"type": t, "seq": q, "length": len(p)})
            ctx.set(dut.header.valid, hdr < len(frames))
            ctx.set(dut.i.valid, pay < len(payload_bytes))
            byte, last = payload_bytes[pay] if pay < len(payload_bytes) else (0, 0)
            ctx.set(dut.i.payload, {"data": byte, "last": last})
            h_took = hdr < len(frames) and ctx.get(dut.header.ready)
            i_took = pay < len(payload_bytes) and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                out = ctx.get(dut.o.payload)
                collected.append((out.data, out.first, out.last))
            if ctx.get(dut.done):
                events.append(_event(ctx.get(dut.ok), ctx.get(dut.reason), ctx.get(dut.type),
                                     ctx.get(dut.seq), ctx.get(dut.length), collected))
                collected = []
            assert not ctx.get(dut.framing_error) and not ctx.get(dut.overrun)
            await ctx.tick()
            hdr += h_took
            pay += i_took
    _sim(dut, bench)
    return events


def test_serial_link_loopback():
    divisor = 4
    frames = [(1, 2, bytes([link.END, link.ESC, 3])), (0x81, 0xFF, b""), (7, 8, b"last")]
    n_bytes = len(b"".join(link.encode_frame(*f) for f in frames))
    dut = SerialLink(divisor=divisor, max_payload=16)
    got = _serial_link_events(dut, frames, None, n_bytes * (10 * divisor + 1) + 100)
    assert got == [("frame", t, q, p) for t, q, p in frames]


def test_serial_link_receives_host_bytes():
    divisor = 5
    rng = np.random.default_rng(11)
    wire, expected = link_cases.wire_stream(rng, frames=6, max_payload=16)
    bits = [1] * 7 + [b for byte in wire for bit in _uart_bits(byte) for b in [bit] * divisor]
    dut = SerialLink(divisor=divisor, max_payload=16)
    assert _serial_link_events(dut, [], bits, len(bits) + 50) == expected


# -- cocotb on Verilator / Icarus --------------------------------------------------------------
class LinkBench(wiring.Component):
    """All four link blocks side by side, for one simulator build.

    Ports ``rx__*``, ``tx__*``, ``uart__*`` are those of the FrameReceiver, the
    FrameTransmitter and the UartLoopback.
    """

    def __init__(self, *, max_payload, divisor):
        self._blocks = {"rx": FrameReceiver(max_payload=max_payload),
                        "tx": FrameTransmitter(), "uart": UartLoopback(divisor=divisor)}
        super().__init__({name: Out(block.signature) for name, block in self._blocks.items()})

    def elaborate(self, platform):
        m = Module()
        for name, block in self._blocks.items():
            m.submodules[name] = block
            wiring.connect(m, wiring.flipped(getattr(self, name)), block)
        return m


def _sims():
    return [pytest.param(s, marks=pytest.mark.skipif(
        s not in flow.simulators(), reason=f"{s} not installed")) for s in ("verilator",
                                                                            "icarus")]


@pytest.mark.parametrize("simulator", _sims())
def test_cocotb(simulator):
    params = {"max_payload": MAX_PAYLOAD, "divisor": 5, "seed": 7, "frames": 150}
    flow.run_cocotb(LinkBench(max_payload=MAX_PAYLOAD, divisor=5), name="link_bench",
                    test_module="tests.rtl.cocotb_link", simulator=simulator,
                    extra_env={"BITPROP_TEST": json.dumps(params)})
