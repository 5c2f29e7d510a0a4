"""Random wire streams for the link blocks, and their expected decodes by boards.link.

Shared by tests/rtl/test_link.py (Amaranth simulator) and tests/rtl/cocotb_link.py (cocotb).
"""

import numpy as np

from bitprop.boards import link

KINDS = ("good", "good", "good", "flip", "truncate", "garbage", "bad_escape", "overlong",
         "wrong_length", "empty", "escape_end")


def payload(rng, n):
    """Random bytes, one in four an END or ESC (the bytes that need stuffing)."""
    data = rng.integers(0, 256, size=n, dtype=np.uint8)
    special = rng.random(n) < 0.25
    data[special] = rng.choice([link.END, link.ESC], size=int(special.sum()))
    return data.tobytes()


def send_stream(frames):
    """The payload bytes of ``frames`` [(type, seq, payload)] as FrameTransmitter takes them:
    ``(data, last)`` per byte, ``last`` on each frame's last byte."""
    return [(byte, int(k == len(data) - 1)) for _t, _s, data in frames
            for k, byte in enumerate(data)]


def _body_frame(body):
    return bytes([link.END]) + link.stuff(body) + bytes([link.END])


def frame_case(rng, kind, max_payload):
    """Return the wire bytes of one (possibly corrupted) frame of ``kind``."""
    n = int(rng.integers(0, max_payload + 1))
    if rng.random() < 0.1:
        n = max_payload if rng.random() < 0.5 else 0
    ftype, seq = (int(x) for x in rng.integers(0, 256, size=2))
    wire = link.encode_frame(ftype, seq, payload(rng, n), max_payload=max_payload)
    if kind == "good":
        return wire
    if kind == "flip":
        pos = int(rng.integers(1, len(wire) - 1))
        flipped = bytearray(wire)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(flipped)
    if kind == "truncate":
        return wire[:int(rng.integers(1, len(wire) - 1))] + bytes([link.END])
    if kind == "garbage":
        return payload(rng, int(rng.integers(1, 12))) + wire
    if kind == "bad_escape":
        pos = int(rng.integers(1, len(wire) - 1))
        if wire[pos - 1] == link.ESC:
            pos -= 1
        bad = int(rng.choice([b for b in range(256) if b not in (link.ESC_END, link.ESC_ESC)]))
        return wire[:pos] + bytes([link.ESC, bad]) + wire[pos:] + bytes([link.END])
    if kind == "overlong":
        extra = int(rng.integers(1, 8))
        return link.encode_frame(ftype, seq, payload(rng, max_payload + extra),
                                 max_payload=max_payload + extra)
    if kind == "wrong_length":
        stated = (n + int(rng.choice([-2, -1, 1, 2, 0x100]))) & 0xFFFF
        body = bytes([ftype, seq]) + stated.to_bytes(2, "little") + payload(rng, n)
        return _body_frame(body + link.crc16(body).to_bytes(2, "little"))
    if kind == "empty":
        return bytes([link.END, link.END])
    if kind == "escape_end":   # ESC END: an ESCAPE error, and END starts the next frame
        pos = int(rng.integers(1, len(wire) - 1))
        if wire[pos - 1] == link.ESC:
            pos -= 1
        return wire[:pos] + bytes([link.ESC, link.END]) + wire[pos:]
    raise ValueError(kind)


def wire_stream(rng, *, frames, max_payload):
    """Return (wire bytes, expected events) for ``frames`` random frames of random kinds.

    Expected events: ``("frame", type, seq, payload)`` or ``("error", code)`` in wire order,
    from :class:`boards.link.FrameDecoder` (the model). The stream starts with a little
    garbage (dropped while hunting) and ends with a good frame.
    """
    parts = [payload(rng, 3)]
    for _ in range(frames):
        parts.append(frame_case(rng, str(rng.choice(KINDS)), max_payload))
    parts.append(link.encode_frame(1, 2, b"end", max_payload=max_payload))
    wire = b"".join(parts)
    return wire, expected_events(wire, max_payload)


def expected_events(wire, max_payload):
    decoder = link.FrameDecoder(max_payload=max_payload)
    events = []
    for e in decoder.feed_events(wire):
        if isinstance(e, link.Frame):
            events.append(("frame", e.type, e.seq, e.payload))
        else:
            events.append(("error", e.code))
    return events
