"""cocotb tests of LinkBench (tests/rtl/test_link.py): the link blocks against boards.link.

Environment: ``BITPROP_TEST`` holds JSON ``{"max_payload", "divisor", "seed", "frames"}``.
Each test drives one block of the bench cycle by cycle: inputs change at the falling edge,
outputs and handshakes are read settled (ReadOnly) before the rising edge that acts on them.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from bitprop.boards import link
from tests.rtl import link_cases

PARAMS = json.loads(os.environ.get("BITPROP_TEST", "{}"))


async def _reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    for name in ("rx__i__valid", "tx__header__valid", "tx__i__valid", "uart__i__valid",
                 "uart__force_low"):
        getattr(dut, name).value = 0
    for name in ("rx__o__ready", "tx__o__ready", "uart__o__ready"):
        getattr(dut, name).value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


def _get(signal):
    """Return a port's value as an int (1-bit ports read as Logic, wider as LogicArray)."""
    value = signal.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


@cocotb.test()
async def receiver_matches_model(dut):
    """Random good and corrupted frames: the receiver's verdicts equal FrameDecoder's."""
    await _reset(dut)
    rng = np.random.default_rng(PARAMS["seed"])
    wire, expected = link_cases.wire_stream(rng, frames=PARAMS["frames"],
                                            max_payload=PARAMS["max_payload"])
    events, collected, pos, idle = [], [], 0, 0
    while idle < 8:
        await FallingEdge(dut.clk)
        valid = pos < len(wire) and rng.random() < 0.8
        ready = rng.random() < 0.8
        dut.rx__i__valid.value = int(valid)
        dut.rx__i__payload.value = wire[pos] if pos < len(wire) else 0
        dut.rx__o__ready.value = int(ready)
        await ReadOnly()
        took = valid and _get(dut.rx__i__ready)
        if ready and _get(dut.rx__o__valid):
            word = _get(dut.rx__o__payload)
            collected.append((word & 0xFF, word >> 8 & 1, word >> 9 & 1))
        if _get(dut.rx__done):
            if _get(dut.rx__ok):
                length = _get(dut.rx__length)
                assert length == len(collected), (length, collected)
                for k, (_d, first, last) in enumerate(collected):
                    assert first == (k == 0) and last == (k == length - 1), collected
                events.append(("frame", _get(dut.rx__type),
                               _get(dut.rx__seq),
                               bytes(d for d, _f, _l in collected)))
            else:
                events.append(("error", _get(dut.rx__reason)))
            collected = []
        await RisingEdge(dut.clk)
        pos += int(bool(took))
        idle = idle + 1 if pos == len(wire) else 0
    assert len(events) == len(expected)
    for k, (got, want) in enumerate(zip(events, expected)):
        assert got == want, f"event {k}: got {got}, expected {want}"
    dut._log.info("%d wire bytes, %d events (%d good frames)", len(wire), len(events),
                  sum(e[0] == "frame" for e in events))


@cocotb.test()
async def transmitter_matches_encode_frame(dut):
    """Random frames with stalls on both sides: the wire bytes equal encode_frame's."""
    await _reset(dut)
    rng = np.random.default_rng(PARAMS["seed"] + 1)
    frames = [(int(rng.integers(256)), int(rng.integers(256)),
               link_cases.payload(rng, int(rng.integers(0, PARAMS["max_payload"] + 1))))
              for _ in range(PARAMS["frames"] // 2)]
    expected = b"".join(link.encode_frame(t, s, p) for t, s, p in frames)
    payload = link_cases.send_stream(frames)
    out = bytearray()
    hdr, pay, idle = 0, 0, 0
    while idle < 20:
        await FallingEdge(dut.clk)
        h_valid = hdr < len(frames) and rng.random() < 0.8
        if hdr < len(frames):
            t, s, p = frames[hdr]
            dut.tx__header__payload.value = t | s << 8 | len(p) << 16
        dut.tx__header__valid.value = int(h_valid)
        i_valid = pay < len(payload) and rng.random() < 0.8
        dut.tx__i__valid.value = int(i_valid)
        data, last = payload[pay] if i_valid else (0, 0)
        dut.tx__i__payload.value = data | last << 8           # SEND_LAYOUT
        ready = rng.random() < 0.8
        dut.tx__o__ready.value = int(ready)
        await ReadOnly()
        h_took = h_valid and _get(dut.tx__header__ready)
        i_took = i_valid and _get(dut.tx__i__ready)
        if ready and _get(dut.tx__o__valid):
            out.append(_get(dut.tx__o__payload))
        busy = _get(dut.tx__busy)
        await RisingEdge(dut.clk)
        hdr += int(bool(h_took))
        pay += int(bool(i_took))
        finished = hdr == len(frames) and pay == len(payload) and not busy
        idle = idle + 1 if finished else 0
    assert bytes(out) == expected, f"{len(out)} bytes out, {len(expected)} expected"


@cocotb.test()
async def uart_loopback(dut):
    """Bytes through UartTx → UartRx arrive intact; a break raises one framing error."""
    await _reset(dut)
    divisor = PARAMS["divisor"]
    rng = np.random.default_rng(PARAMS["seed"] + 2)
    data = bytes([0x00, 0xFF, link.END]) + rng.integers(0, 256, 30, dtype=np.uint8).tobytes()
    got, errors = [], {"framing": 0, "overrun": 0}

    async def send(chunk, cycles):
        pos = 0
        for _ in range(cycles):
            await FallingEdge(dut.clk)
            dut.uart__i__valid.value = int(pos < len(chunk))
            dut.uart__i__payload.value = chunk[pos] if pos < len(chunk) else 0
            await ReadOnly()
            took = pos < len(chunk) and _get(dut.uart__i__ready)
            if _get(dut.uart__o__valid):
                got.append(_get(dut.uart__o__payload))
            errors["framing"] += _get(dut.uart__framing_error)
            errors["overrun"] += _get(dut.uart__overrun)
            await RisingEdge(dut.clk)
            pos += int(bool(took))
        assert pos == len(chunk)

    await send(data, len(data) * (10 * divisor + 1) + 40)
    assert bytes(got) == data and errors == {"framing": 0, "overrun": 0}
    await FallingEdge(dut.clk)
    dut.uart__force_low.value = 1           # a break: start bit, zeros, low stop bit
    await send(b"", 14 * divisor)
    await FallingEdge(dut.clk)
    dut.uart__force_low.value = 0
    got.clear()
    await send(data[:5], 5 * (10 * divisor + 1) + 40)
    assert errors == {"framing": 1, "overrun": 0}
    assert bytes(got) == data[:5]
