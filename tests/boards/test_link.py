"""boards.link: CRC, framing, the streaming decoder's error handling, and Link.request."""

import threading

import numpy as np
import pytest

from bitprop.boards import link
from bitprop.boards.link import (END, ESC, Frame, FrameDecoder, Link, LinkError,
                                 LoopbackTransport, crc16, encode_frame)
from bitprop.model.errors import BitpropError
from tests.rtl.link_cases import payload


def _decode_all(wire, **kwargs):
    decoder = FrameDecoder(**kwargs)
    return decoder, decoder.feed(wire)


# -- CRC ---------------------------------------------------------------------------------------
def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_crc_matches_bitwise_definition_and_continues():
    def bitwise(data):
        crc = 0xFFFF
        for byte in data:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        return crc
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 100):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc16(data) == bitwise(data)
        assert crc16(data[n // 2:], crc16(data[:n // 2])) == crc16(data)


# -- framing -----------------------------------------------------------------------------------
def test_frame_layout_by_hand():
    wire = encode_frame(0x12, 0x34, bytes([END, ESC, 7]))
    body = bytes([0x12, 0x34, 3, 0, END, ESC, 7])
    crc = crc16(body)
    assert wire == (bytes([END, 0x12, 0x34, 3, 0, ESC, 0xDC, ESC, 0xDD, 7])
                    + link.stuff(crc.to_bytes(2, "little")) + bytes([END]))
    assert END not in wire[1:-1]


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_random_payloads_in_random_chunks(seed):
    rng = np.random.default_rng(seed)
    sent = [Frame(type=int(rng.integers(256)), seq=i & 0xFF, payload=payload(rng, n))
            for i, n in enumerate([0, 1, link.MAX_PAYLOAD, *rng.integers(0, 300, 40)])]
    sent.append(Frame(type=END, seq=ESC, payload=bytes([END, ESC] * 50)))
    wire = b"".join(encode_frame(f.type, f.seq, f.payload) for f in sent)
    decoder, got = FrameDecoder(), []
    pos = 0
    while pos < len(wire):
        step = int(rng.integers(1, 64))
        got += decoder.feed(wire[pos:pos + step])
        pos += step
    assert got == sent
    assert decoder.frames == len(sent) and decoder.corrupt == 0
    assert got[2].length == link.MAX_PAYLOAD


def test_encode_refuses_bad_arguments():
    with pytest.raises(LinkError, match="payload of 2049 bytes exceeds the maximum of 2048"):
        encode_frame(1, 0, bytes(2049))
    with pytest.raises(LinkError, match=r"frame type must be an integer in \[0, 255\]; got 256"):
        encode_frame(256, 0, b"")
    with pytest.raises(LinkError, match=r"frame seq must be an integer in \[0, 255\]; got -1"):
        encode_frame(0, -1, b"")
    assert issubclass(LinkError, BitpropError)


# -- corruption and resynchronisation ----------------------------------------------------------
A = encode_frame(1, 10, b"first")
B = encode_frame(2, 11, bytes([END, ESC]) + b"second")
GOOD = [Frame(1, 10, b"first"), Frame(2, 11, bytes([END, ESC]) + b"second")]


def _check_between(corrupt, errors=None):
    decoder, frames = _decode_all(A + corrupt + B)
    assert frames == GOOD
    if errors is not None:
        assert dict(decoder.errors) == errors
    return decoder


def test_every_single_bit_flip_is_detected():
    rng = np.random.default_rng(5)
    wire = encode_frame(0x42, 0x99, payload(rng, 40))
    for pos in range(len(wire)):
        for bit in range(8):
            flipped = bytearray(wire)
            flipped[pos] ^= 1 << bit
            decoder = _check_between(bytes(flipped))
            assert decoder.corrupt >= 1, (pos, bit)


def test_every_truncation_is_detected():
    wire = encode_frame(3, 4, bytes(range(0xBC, 0xE0)))
    for cut in range(2, len(wire) - 1):
        decoder = _check_between(wire[:cut])
        assert decoder.corrupt == 1, cut


def test_garbage_between_frames():
    rng = np.random.default_rng(7)
    for _ in range(50):
        garbage = rng.integers(0, 256, int(rng.integers(1, 30)), dtype=np.uint8).tobytes()
        decoder = _check_between(garbage)
        assert decoder.corrupt >= 1 or len(garbage.replace(bytes([END]), b"")) == 0


def test_reasons():
    _check_between(bytes([END, 1, 2, 3, 4, 5]), {"SHORT": 1})
    body = bytes([1, 2, 5, 0]) + b"abc"
    _check_between(bytes([END]) + body + crc16(body).to_bytes(2, "little"), {"LENGTH": 1})
    wire = bytearray(encode_frame(1, 2, b"abc"))
    wire[5] ^= 0x01
    _check_between(bytes(wire), {"CRC": 1})
    _check_between(bytes([END, 1, ESC, 0x55, 2, 3, 4, 5]), {"ESCAPE": 1})
    # ESC END: an ESCAPE error, and the END opens the next frame without hunting.
    decoder, frames = _decode_all(A + bytes([END, 1, 2, ESC]) + B)
    assert frames == GOOD and dict(decoder.errors) == {"ESCAPE": 1}
    assert decoder.dropped_bytes == 0


def test_overlong_body_is_dropped_until_end():
    long = encode_frame(5, 5, bytes(43), max_payload=43)   # a 49-byte body
    assert len(long) == 49 + 2, "no stuffing expected in this frame"
    decoder, frames = _decode_all(A + long + B, max_payload=40)
    assert frames == GOOD and dict(decoder.errors) == {"OVERLONG": 1}
    # The 47th body byte raises OVERLONG; the last two body bytes are dropped while hunting.
    assert decoder.dropped_bytes == 2
    # A length field above the limit on a short body is a LENGTH error.
    body = bytes([1, 2, 41, 0, 9])
    decoder, frames = _decode_all(A + link.stuff(body + crc16(body).to_bytes(2, "little"))
                                  + B, max_payload=40)
    assert frames == GOOD and dict(decoder.errors) == {"LENGTH": 1}


def test_leading_garbage_is_dropped_while_hunting():
    decoder, frames = _decode_all(b"\x01\x02\xdb\xdc" + A + B)
    assert frames == GOOD and decoder.corrupt == 0 and decoder.dropped_bytes == 4
    decoder, frames = _decode_all(bytes([END, END, END]) + A)
    assert frames == GOOD[:1] and decoder.corrupt == 0


def test_decoder_validates_max_payload():
    with pytest.raises(LinkError, match=r"max_payload must be an integer in \[0, 65535\]"):
        FrameDecoder(max_payload=70000)


# -- Link over a loopback ----------------------------------------------------------------------
class Responder(threading.Thread):
    """A toy device: type 1 echoes its payload, type 2 is refused (NACK 7).

    ``drop`` replies are silently dropped first; ``stale`` makes every reply be preceded by
    a copy of the previous reply; ``bad_seq`` adds 100 to the seq of each reply.
    """

    def __init__(self, end, *, drop=0, stale=False, bad_seq=False):
        super().__init__(daemon=True)
        self.end, self.drop, self.stale, self.bad_seq = end, drop, stale, bad_seq
        self.decoder = FrameDecoder()
        self.stop = threading.Event()
        self.seen = []
        self.previous = None

    def run(self):
        while not self.stop.is_set():
            for frame in self.decoder.feed(self.end.read(4096, 0.005)):
                self.seen.append(frame)
                seq = (frame.seq + 100) & 0xFF if self.bad_seq else frame.seq
                if frame.type == 1:
                    reply = encode_frame(0x81, seq, frame.payload[::-1])
                else:
                    reply = encode_frame(link.NACK, seq, bytes([7]))
                if self.drop:
                    self.drop -= 1
                    continue
                if self.stale and self.previous is not None:
                    self.end.write(self.previous)
                self.end.write(reply)
                self.previous = reply


@pytest.fixture
def device():
    started = []

    def make(**kwargs):
        host, dev = LoopbackTransport.pair()
        responder = Responder(dev, **kwargs)
        responder.start()
        started.append(responder)
        return Link(host), responder
    yield make
    for responder in started:
        responder.stop.set()
        responder.join()


def test_request_reply_and_sequence_numbers(device):
    link_, responder = device()
    for k in range(3):
        reply = link_.request(1, bytes([k, 1, END]), timeout=1.0, retries=0)
        assert reply == Frame(0x81, k, bytes([END, 1, k]))
    assert [f.seq for f in responder.seen] == [0, 1, 2]


def test_dropped_reply_is_resent(device):
    link_, responder = device(drop=1)
    reply = link_.request(1, b"abc", timeout=0.05, retries=2)
    assert reply.payload == b"cba" and link_.resends == 1
    assert [f.seq for f in responder.seen] == [0, 0]   # resent with the same seq


def test_stale_replies_are_dropped(device):
    link_, _ = device(stale=True)
    link_.request(1, b"x", timeout=1.0, retries=0)
    assert link_.request(1, b"y", timeout=1.0, retries=0).payload == b"y"
    assert link_.stale_replies == 1


def test_nack_raises(device):
    link_, _ = device()
    with pytest.raises(LinkError, match=r"refused request type 0x02 seq 0 \(NACK code 7\)"):
        link_.request(2, b"", timeout=1.0, retries=3)


def test_timeout_after_retries(device):
    link_, responder = device(drop=10)
    with pytest.raises(LinkError, match="no reply to request type 0x01 seq 0 after 3 attempts"):
        link_.request(1, b"q", timeout=0.02, retries=2)
    assert link_.resends == 2


def test_reply_with_unsent_seq_raises(device):
    link_, _ = device(bad_seq=True)
    with pytest.raises(LinkError, match="sequence number 100 while waiting for 0"):
        link_.request(1, b"", timeout=1.0, retries=0)


def test_request_checks_arguments():
    host, _ = LoopbackTransport.pair()
    link_ = Link(host, max_payload=8)
    with pytest.raises(LinkError, match="payload of 9 bytes exceeds the maximum of 8"):
        link_.request(1, bytes(9))
    with pytest.raises(LinkError, match=r"request type must be in \[0, 127\]; got 128"):
        link_.request(0x80, b"")


def test_serial_transport_without_pyserial(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(LinkError, match="pip install pyserial"):
        link.SerialTransport("/dev/null", 115200)
