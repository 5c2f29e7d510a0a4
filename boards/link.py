"""Host side of the bitprop serial link: framing, CRC, transports and request/reply.

The host streams configuration, classifiers, hidden weights and labelled samples to the
device and reads back predictions, margins, counters and hidden weights as *frames* over a
byte link (a UART on the iCEBreaker / ULX3S, or the simulated design). The device side is
:mod:`bitprop.rtl.link` (``FrameReceiver``, ``FrameTransmitter``), which this module models
bit for bit: the same bytes on the wire, the same frames accepted, the same error reasons.

Wire format
-----------
SLIP-style byte stuffing, so that a receiver can unstuff, check and forward a frame one byte
at a time without buffering it. A frame on the wire is::

    END  stuff(body)  END

with the body (before stuffing), all multi-byte fields little-endian:

    ======  ==========  ======================================================================
    offset  size        field
    ======  ==========  ======================================================================
    0       1           ``type``: message type (bit 7 set in replies from the device, see
                        :data:`NACK` and :func:`reply_type`)
    1       1           ``seq``: sequence number; a reply carries its request's ``seq``
    2       2           ``length``: payload length ``n`` in bytes, u16 LE, ``n <= max_payload``
    4       n           ``payload``
    4 + n   2           ``crc``: CRC-16/CCITT-FALSE of bytes ``0 .. 4 + n - 1`` (type through
                        payload), u16 LE
    ======  ==========  ======================================================================

Stuffing (applied to every body byte, CRC included; never to the delimiting END bytes):

    =============  =========================
    body byte      bytes on the wire
    =============  =========================
    ``0xC0`` END   ``0xDB 0xDC`` (ESC ESC_END)
    ``0xDB`` ESC   ``0xDB 0xDD`` (ESC ESC_ESC)
    anything else  itself
    =============  =========================

CRC-16/CCITT-FALSE: polynomial ``0x1021``, initial value ``0xFFFF``, no reflection, no final
xor; ``crc16(b"123456789") == 0x29B1``.

Maximum payload: :data:`MAX_PAYLOAD` = 2048 bytes (the device may be built with a smaller
limit). Why 2048: the CRC then protects at most 2,052 bytes (16,416 bits), well inside the
range (≤ 32,751 data bits, about 4,093 bytes) where CRC-16/CCITT has Hamming distance 4, so
every 1-, 2- and 3-bit error and every burst of ≤ 16 bits is detected; 4,096 bytes of payload
would fall just outside it. At 115,200 baud a full frame takes about 0.18 s, so a frame lost
to noise is cheap to resend; 2048 bytes are 16 kbit, four iCE40 block RAMs of binary weights,
large enough that the 8-byte framing overhead stays below 0.4 %. Larger transfers are split
into several requests.

Receiving and resynchronising
-----------------------------
A receiver starts *hunting*: it drops every byte until an END. Between two ENDs it collects a
body; an empty body (END END) is ignored, so a sender may put END before and after every frame
to flush line noise. A body is rejected, with one of the :data:`REASONS`, when

- ``ESCAPE``: ESC is followed by anything but ESC_END / ESC_ESC. If that byte is END, it also
  begins the next frame; otherwise the receiver hunts for END;
- ``OVERLONG``: the body would grow past ``6 + max_payload`` bytes; the receiver hunts for END;
- at END: ``SHORT`` (body of 1 to 5 bytes), ``LENGTH`` (``length > max_payload`` or the body is
  not exactly ``6 + length`` bytes), ``CRC`` (the CRC does not match), checked in this order.

Garbage between frames therefore costs at most the frame it touches: the next END resyncs.

Replies
-------
A request of type ``t`` (``t < 0x80``) is answered by a frame with the same ``seq`` and type
``reply_type(t) = t | 0x80`` (its payload is the data asked for; empty for a plain
acknowledgement) or by :data:`NACK` (``0xFF``) whose payload starts with an error code byte.
"""

import collections
import dataclasses
import threading
import time

from bitprop.model.errors import BitpropError

__all__ = [
    "END", "ESC", "ESC_END", "ESC_ESC", "HEADER_BYTES", "CRC_BYTES", "MAX_PAYLOAD", "NACK",
    "REASONS", "REASON_CODES", "LinkError", "Frame", "FrameError", "crc16", "stuff",
    "encode_frame", "FrameDecoder", "reply_type", "Transport", "LoopbackTransport",
    "SerialTransport", "Link",
]

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

HEADER_BYTES = 4
CRC_BYTES = 2
#: Largest payload in bytes (see the module docstring for why).
MAX_PAYLOAD = 2048
#: Reply type of a negative acknowledgement; payload ``[code, ...]``.
NACK = 0xFF

#: Reason names of rejected frames, by code (code 0 means a good frame). The hardware
#: receiver reports the same codes on its ``reason`` port.
REASONS = {1: "SHORT", 2: "LENGTH", 3: "CRC", 4: "ESCAPE", 5: "OVERLONG"}
REASON_CODES = {name: code for code, name in REASONS.items()}


class LinkError(BitpropError):
    """A protocol violation seen by the host: timeout, NACK, bad reply, too-long payload."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """A decoded, CRC-checked frame."""

    type: int
    seq: int
    payload: bytes

    @property
    def length(self):
        return len(self.payload)


@dataclasses.dataclass(frozen=True)
class FrameError:
    """A rejected body: ``reason`` is a name of :data:`REASONS`; ``code`` its number."""

    reason: str

    @property
    def code(self):
        return REASON_CODES[self.reason]


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """Return CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, unreflected).

    ``crc`` continues a running CRC: ``crc16(b, crc16(a)) == crc16(a + b)``.
    """
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def stuff(body):
    """Return ``body`` with END and ESC replaced by their two-byte escapes."""
    return bytes(body).replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(
        bytes([END]), bytes([ESC, ESC_END]))


def _check_byte(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise LinkError(f"frame {name} must be an integer in [0, 255]; got {value!r}")


def encode_frame(type, seq, payload, *, max_payload=MAX_PAYLOAD):
    """Return the wire bytes ``END stuff(body) END`` of one frame.

    Raises
    ------
    LinkError
        If ``type`` or ``seq`` is not a byte, or the payload is longer than ``max_payload``.
    """
    _check_byte("type", type)
    _check_byte("seq", seq)
    payload = bytes(payload)
    if len(payload) > max_payload:
        raise LinkError(f"payload of {len(payload)} bytes exceeds the maximum of "
                        f"{max_payload} bytes; split the transfer")
    body = bytes([type, seq]) + len(payload).to_bytes(2, "little") + payload
    body += crc16(body).to_bytes(2, "little")
    return bytes([END]) + stuff(body) + bytes([END])


def reply_type(request_type):
    """Return the type of the positive reply to a request of ``request_type`` (< 0x80)."""
    if not 0 <= request_type < 0x80:
        raise LinkError(f"request type must be in [0, 127]; got {request_type!r}")
    return request_type | 0x80


class FrameDecoder:
    """Streaming decoder: feed it wire bytes in any chunks, get the good frames back.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted (the device's limit); default :data:`MAX_PAYLOAD`.

    Attributes
    ----------
    frames : int
        Good frames decoded so far.
    errors : collections.Counter
        Rejected bodies by reason name (``SHORT``, ``LENGTH``, ``CRC``, ``ESCAPE``,
        ``OVERLONG``).
    dropped_bytes : int
        Bytes dropped while hunting for END (after an error and before the first END).
    """

    def __init__(self, *, max_payload=MAX_PAYLOAD):
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) \
                or not 0 <= max_payload <= 0xFFFF:
            raise LinkError(f"max_payload must be an integer in [0, 65535]; got {max_payload!r}")
        self.max_payload = max_payload
        self.frames = 0
        self.errors = collections.Counter()
        self.dropped_bytes = 0
        self._hunting = True
        self._escape = False
        self._body = bytearray()

    @property
    def corrupt(self):
        """Total number of rejected bodies."""
        return sum(self.errors.values())

    def feed(self, data):
        """Consume ``data``; return the list of good :class:`Frame` s it completed."""
        return [e for e in self.feed_events(data) if isinstance(e, Frame)]

    def feed_events(self, data):
        """Consume ``data``; return its frames and :class:`FrameError` s in wire order."""
        events = []
        for byte in bytes(data):
            if self._hunting:
                if byte == END:
                    self._hunting = False
                    self._escape = False
                    self._body.clear()
                else:
                    self.dropped_bytes += 1
                continue
            if self._escape:
                self._escape = False
                if byte == ESC_END:
                    self._append(END, events)
                elif byte == ESC_ESC:
                    self._append(ESC, events)
                else:
                    self._error("ESCAPE", events)
                    if byte != END:
                        self._hunting = True
                continue
            if byte == END:
                if self._body:
                    events.append(self._finish())
                    if isinstance(events[-1], Frame):
                        self.frames += 1
                    else:
                        self.errors[events[-1].reason] += 1
                self._body.clear()
            elif byte == ESC:
                self._escape = True
            else:
                self._append(byte, events)
        return events

    def _error(self, reason, events):
        self.errors[reason] += 1
        events.append(FrameError(reason))
        self._body.clear()

    def _append(self, byte, events):
        if len(self._body) >= HEADER_BYTES + CRC_BYTES + self.max_payload:
            self._error("OVERLONG", events)
            self._hunting = True
        else:
            self._body.append(byte)

    def _finish(self):
        body = bytes(self._body)
        if len(body) < HEADER_BYTES + CRC_BYTES:
            return FrameError("SHORT")
        length = int.from_bytes(body[2:4], "little")
        if length > self.max_payload or len(body) != HEADER_BYTES + CRC_BYTES + length:
            return FrameError("LENGTH")
        if crc16(body[:-CRC_BYTES]) != int.from_bytes(body[-CRC_BYTES:], "little"):
            return FrameError("CRC")
        return Frame(type=body[0], seq=body[1], payload=body[HEADER_BYTES:-CRC_BYTES])


# -- transports --------------------------------------------------------------------------------
class Transport:
    """A byte pipe to the device: the one thing :class:`Link` needs."""

    def write(self, data):
        """Send ``data`` (bytes)."""
        raise NotImplementedError

    def read(self, n, timeout):
        """Return up to ``n`` received bytes; wait at most ``timeout`` s for the first one.

        Returns ``b""`` on timeout.
        """
        raise NotImplementedError

    def close(self):
        """Release the transport (default: nothing to do)."""


class LoopbackTransport(Transport):
    """One end of an in-memory, thread-safe byte pipe; make both ends with :meth:`pair`."""

    def __init__(self):
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self.peer = None

    @classmethod
    def pair(cls):
        """Return two connected ends ``(a, b)``: what ``a`` writes ``b`` reads, and back."""
        a, b = cls(), cls()
        a.peer, b.peer = b, a
        return a, b

    def _deliver(self, data):
        with self._cond:
            self._buffer.extend(data)
            self._cond.notify_all()

    def write(self, data):
        if self.peer is None:
            raise LinkError("loopback transport is not connected; use LoopbackTransport.pair()")
        self.peer._deliver(bytes(data))

    def read(self, n, timeout):
        with self._cond:
            self._cond.wait_for(lambda: self._buffer, timeout=max(0.0, timeout))
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
            return data


class SerialTransport(Transport):
    """A serial port through pyserial (optional: ``pip install pyserial``).

    Parameters
    ----------
    port : str
        Device name, e.g. ``/dev/ttyUSB1`` (iCEBreaker: the FTDI's second interface).
    baud : int
        Baud rate; must match the bitstream's UART divisor (clock / divisor).
    """

    def __init__(self, port, baud):
        try:
            import serial
        except ImportError as error:
            raise LinkError("SerialTransport needs pyserial, which is not installed: "
                            "pip install pyserial") from error
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise LinkError(f"baud must be a positive integer; got {baud!r}")
        try:
            self._serial = serial.Serial(port, baud, timeout=0.1)
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"cannot open serial port {port!r}: {error}") from error

    def write(self, data):
        self._serial.write(bytes(data))
        self._serial.flush()

    def read(self, n, timeout):
        self._serial.timeout = max(0.0, timeout)
        first = self._serial.read(1)
        if not first or n <= 1:
            return first
        self._serial.timeout = 0
        return first + self._serial.read(min(n - 1, self._serial.in_waiting))

    def close(self):
        self._serial.close()


# -- request / reply ---------------------------------------------------------------------------
class Link:
    """Request/reply over a :class:`Transport` with sequence numbers and resends.

    Parameters
    ----------
    transport : Transport
    max_payload : int
        The device's payload limit; longer requests raise :class:`LinkError`.

    Attributes
    ----------
    decoder : FrameDecoder
        Its counters (``errors``, ``dropped_bytes``) tell how noisy the link is.
    resends : int
        Frames sent again after a timeout.
    stale_replies : int
        Replies to earlier sequence numbers (answers to resent requests), dropped.
    """

    def __init__(self, transport, *, max_payload=MAX_PAYLOAD):
        self.transport = transport
        self.max_payload = max_payload
        self.decoder = FrameDecoder(max_payload=max_payload)
        self.resends = 0
        self.stale_replies = 0
        self._seq = 0
        self._pending = collections.deque()

    def request(self, type, payload=b"", *, timeout=1.0, retries=3):
        """Send one request and return its reply :class:`Frame` (type ``type | 0x80``).

        The request gets a fresh sequence number; it is sent again, with the same number,
        each time ``timeout`` seconds pass without its reply, at most ``retries`` times.
        Replies to earlier numbers are dropped.

        Raises
        ------
        LinkError
            On a NACK (its code in the message), a reply of an unexpected type, a reply whose
            sequence number was never sent, no reply after ``retries`` resends, or a payload
            longer than ``max_payload``.
        """
        expected = reply_type(type)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise LinkError(f"retries must be a non-negative integer; got {retries!r}")
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFF
        wire = encode_frame(type, seq, payload, max_payload=self.max_payload)
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
            self.transport.write(wire)
            reply = self._wait(seq, timeout)
            if reply is None:
                continue
            if reply.type == NACK:
                code = reply.payload[0] if reply.payload else None
                raise LinkError(f"device refused request type 0x{type:02X} seq {seq} "
                                f"(NACK code {code})")
            if reply.type != expected:
                raise LinkError(f"reply to request type 0x{type:02X} seq {seq} has type "
                                f"0x{reply.type:02X}, expected 0x{expected:02X}")
            return reply
        raise LinkError(f"no reply to request type 0x{type:02X} seq {seq} after "
                        f"{retries + 1} attempts of {timeout:g} s")

    def _wait(self, seq, timeout):
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                frame = self._pending.popleft()
                behind = (seq - frame.seq) & 0xFF
                if behind == 0:
                    return frame
                if behind < 0x80:
                    self.stale_replies += 1
                    continue
                raise LinkError(f"reply with sequence number {frame.seq} while waiting for "
                                f"{seq}: it was never sent")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._pending.extend(self.decoder.feed(self.transport.read(4096, left)))
