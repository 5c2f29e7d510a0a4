"""Device side of the serial link: 8N1 UART and the byte-stuffed, CRC-checked frames.

The host side and the specification of the wire format is :mod:`bitprop.boards.link`; the
blocks here produce and accept exactly its bytes:

- :class:`FrameReceiver` unstuffs, checks and forwards a frame on the fly: payload bytes
  stream out as they arrive, the verdict (``ok`` or a reason code of ``boards.link.REASONS``)
  follows at the frame's closing END. Nothing is buffered.
- :class:`FrameTransmitter` turns a header and a payload byte stream into ``END stuff(body)
  END`` with the CRC-16/CCITT-FALSE appended.
- :class:`UartRx` / :class:`UartTx`: 8N1 at ``clk / divisor`` baud.

A typical device chain is ``rx pin → UartRx → FrameReceiver → (core) → FrameTransmitter →
UartTx → tx pin``; the core must hold a frame's effects until ``done`` with ``ok`` (or keep
the payload in its own buffer), because the CRC is known only at the end.
"""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bitprop.boards.link import (CRC_BYTES, END, ESC, ESC_END, ESC_ESC, HEADER_BYTES,
                                 MAX_PAYLOAD, REASON_CODES)

from .params import check_int

__all__ = ["FrameReceiver", "FrameTransmitter", "UartRx", "UartTx", "SerialLink", "crc16_next",
           "PAYLOAD_LAYOUT", "HEADER_LAYOUT"]

CRC_POLY = 0x1021

#: Payload bytes out of :class:`FrameReceiver`.
PAYLOAD_LAYOUT = data.StructLayout({"data": 8, "first": 1, "last": 1})
#: Frame header into :class:`FrameTransmitter`.
HEADER_LAYOUT = data.StructLayout({"type": 8, "seq": 8, "length": 16})


def _crc_matrix():
    """Return, per output bit of a byte-wise CRC step, the input bits it is the xor of.

    Inputs 0–15 are the CRC register bits, 16–23 the data byte bits.
    """
    bits = [{k} for k in range(16)]
    for k in range(8):
        bits[8 + k] = bits[8 + k] ^ {16 + k}      # crc ^= byte << 8
    for _ in range(8):
        msb = bits[15]
        bits = [set()] + bits[:15]                # crc <<= 1
        for k in range(16):
            if CRC_POLY >> k & 1:
                bits[k] = bits[k] ^ msb
    return [sorted(b) for b in bits]


_CRC_MATRIX = _crc_matrix()


def crc16_next(crc, byte):
    """Return the Amaranth expression of CRC-16/CCITT-FALSE after one more data byte.

    A pure xor network (each output bit is the xor of at most 9 of the 24 input bits), the
    byte-wise form of ``boards.link.crc16``.
    """
    inputs = Cat(crc, byte)
    out = []
    for taps in _CRC_MATRIX:
        value = Const(0, 1)
        for t in taps:
            value = value ^ inputs[t]
        out.append(value)
    return Cat(*out)



class _Kind(enum.Enum, shape=2):
    DATA = 0        # an unstuffed body byte
    END = 1         # a frame delimiter
    BAD_ESC = 2     # ESC followed by a byte other than ESC_END, ESC_ESC, END
    BAD_ESC_END = 3  # ESC followed by END


class _Phase(enum.Enum, shape=3):
    HEADER = 0
    PAYLOAD = 1
    CRC0 = 2
    CRC1 = 3
    TAIL = 4        # body complete: only END may follow
    BAD = 5         # length field too large, or bytes after the CRC


class FrameReceiver(wiring.Component):
    """Unstuff, check and forward frames as they arrive.

    Parameters
    ----------
    max_payload : int, in [0, 65535]
        Longest payload accepted (``boards.link.FrameDecoder(max_payload=...)`` models it).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Wire bytes (from :class:`UartRx`).
    o : Out(stream.Signature(PAYLOAD_LAYOUT))
        Payload bytes of the current frame, ``first`` on the first and ``last`` on the
        ``length``-th. Emitted before the frame is checked: wait for ``done``.
    type, seq : Out(8)
        Header of the current frame; valid from its first payload byte (or from ``done`` for
        an empty payload) until the next frame's header arrives.
    length : Out(16)
        Payload length field of the current frame (same validity).
    done : Out(1)
        One-cycle strobe: a non-empty body ended (at its closing END) or was abandoned
        (``ESCAPE``, ``OVERLONG``). Never before the frame's last payload byte left ``o``.
    ok : Out(1)
        With ``done``: the frame is good (CRC and length match).
    reason : Out(3)
        With ``done``: 0 for a good frame, else the code of ``boards.link.REASONS`` (1 SHORT,
        2 LENGTH, 3 CRC, 4 ESCAPE, 5 OVERLONG).

    Latency 2 cycles from an accepted wire byte to its payload byte on ``o`` (or to ``done``
    for an END): an unstuffing stage and a framing stage. Throughput one wire byte per cycle
    (``i.ready = ~o.valid | o.ready``, a combinational path; both stages stall together).
    After reset and after ``ESCAPE`` (not followed by END) or ``OVERLONG`` the receiver drops
    bytes until END.
    """

    def __init__(self, *, max_payload=MAX_PAYLOAD):
        check_int("max_payload", max_payload, 0, 0xFFFF)
        self.max_payload = max_payload
        self.latency = 2
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(PAYLOAD_LAYOUT)),
            "type": Out(8),
            "seq": Out(8),
            "length": Out(16),
            "done": Out(1),
            "ok": Out(1),
            "reason": Out(3),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # -- stage 1: unstuff ------------------------------------------------------------------
        s1_valid = Signal()
        s1_kind = Signal(_Kind)
        s1_data = Signal(8)
        escape = Signal()
        byte = self.i.payload
        with m.If(advance):
            m.d.sync += s1_valid.eq(0)
            with m.If(self.i.valid):
                m.d.sync += [s1_valid.eq(1), s1_kind.eq(_Kind.DATA), s1_data.eq(byte)]
                with m.If(escape):
                    m.d.sync += escape.eq(0)
                    with m.If(byte == ESC_END):
                        m.d.sync += s1_data.eq(END)
                    with m.Elif(byte == ESC_ESC):
                        m.d.sync += s1_data.eq(ESC)
                    with m.Elif(byte == END):
                        m.d.sync += s1_kind.eq(_Kind.BAD_ESC_END)
                    with m.Else():
                        m.d.sync += s1_kind.eq(_Kind.BAD_ESC)
                with m.Elif(byte == END):
                    m.d.sync += s1_kind.eq(_Kind.END)
                with m.Elif(byte == ESC):
                    m.d.sync += [escape.eq(1), s1_valid.eq(0)]

        # -- stage 2: frame --------------------------------------------------------------------
        limit = HEADER_BYTES + CRC_BYTES + self.max_payload
        hunting = Signal(init=1)
        count = Signal(range(limit + 1))
        at_limit = Signal()           # count == limit, registered to keep it off the paths
        phase = Signal(_Phase)
        remaining = Signal(max(1, self.max_payload.bit_length()))
        crc = Signal(16, init=0xFFFF)
        crc_lo = Signal(8)
        crc_match = Signal()
        first = Signal()
        d = s1_data

        m.d.sync += self.done.eq(0)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(0)

        def restart():
            m.d.sync += [count.eq(0), at_limit.eq(0), phase.eq(_Phase.HEADER),
                         crc.eq(0xFFFF)]

        def report(code):
            m.d.sync += [self.done.eq(1), self.reason.eq(code), self.ok.eq(code == 0)]

        with m.If(advance & s1_valid):
            with m.Switch(s1_kind):
                with m.Case(_Kind.DATA):
                    with m.If(hunting):
                        pass
                    with m.Elif(at_limit):
                        report(REASON_CODES["OVERLONG"])
                        m.d.sync += hunting.eq(1)
                    with m.Else():
                        m.d.sync += [count.eq(count + 1), at_limit.eq(count == limit - 1)]
                        with m.Switch(phase):
                            with m.Case(_Phase.HEADER):
                                m.d.sync += crc.eq(crc16_next(crc, d))
                                with m.Switch(count[:2]):
                                    with m.Case(0):
                                        m.d.sync += self.type.eq(d)
                                    with m.Case(1):
                                        m.d.sync += self.seq.eq(d)
                                    with m.Case(2):
                                        m.d.sync += self.length[:8].eq(d)
                                    with m.Case(3):
                                        full = Cat(self.length[:8], d)
                                        m.d.sync += [self.length[8:].eq(d), first.eq(1),
                                                     remaining.eq(full)]
                                        with m.If(full > self.max_payload):
                                            m.d.sync += phase.eq(_Phase.BAD)
                                        with m.Elif(full == 0):
                                            m.d.sync += phase.eq(_Phase.CRC0)
                                        with m.Else():
                                            m.d.sync += phase.eq(_Phase.PAYLOAD)
                            with m.Case(_Phase.PAYLOAD):
                                m.d.sync += [
                                    crc.eq(crc16_next(crc, d)),
                                    self.o.valid.eq(1),
                                    self.o.payload.data.eq(d),
                                    self.o.payload.first.eq(first),
                                    self.o.payload.last.eq(remaining == 1),
                                    first.eq(0),
                                    remaining.eq(remaining - 1),
                                ]
                                with m.If(remaining == 1):
                                    m.d.sync += phase.eq(_Phase.CRC0)
                            with m.Case(_Phase.CRC0):
                                m.d.sync += [crc_lo.eq(d), phase.eq(_Phase.CRC1)]
                            with m.Case(_Phase.CRC1):
                                m.d.sync += [crc_match.eq(Cat(crc_lo, d) == crc),
                                             phase.eq(_Phase.TAIL)]
                            with m.Case(_Phase.TAIL):
                                m.d.sync += phase.eq(_Phase.BAD)
                with m.Case(_Kind.END):
                    with m.If(hunting):
                        m.d.sync += hunting.eq(0)
                    with m.Elif(count != 0):
                        with m.If(count < HEADER_BYTES + CRC_BYTES):
                            report(REASON_CODES["SHORT"])
                        with m.Elif(phase != _Phase.TAIL):
                            report(REASON_CODES["LENGTH"])
                        with m.Elif(~crc_match):
                            report(REASON_CODES["CRC"])
                        with m.Else():
                            report(0)
                    restart()
                with m.Case(_Kind.BAD_ESC):
                    with m.If(~hunting):
                        report(REASON_CODES["ESCAPE"])
                        m.d.sync += hunting.eq(1)
                with m.Case(_Kind.BAD_ESC_END):
                    with m.If(~hunting):
                        report(REASON_CODES["ESCAPE"])
                    m.d.sync += hunting.eq(0)
                    restart()
        return m


class _TxPhase(enum.Enum, shape=3):
    IDLE = 0
    SOF = 1
    HEADER = 2
    PAYLOAD = 3
    CRC0 = 4
    CRC1 = 5
    EOF = 6


class _Symbol(enum.Enum, shape=2):
    DELIM = 0       # an END delimiter, sent as is
    DATA = 1        # a body byte covered by the CRC
    CRC0 = 2        # the CRC's low byte (the stuffing stage holds the CRC)
    CRC1 = 3        # the CRC's high byte


def _is_special(byte):
    return (byte == END) | (byte == ESC)


class FrameTransmitter(wiring.Component):
    """Emit ``END stuff(type seq length payload crc) END``, byte for byte as ``encode_frame``.

    Attributes
    ----------
    header : In(stream.Signature(HEADER_LAYOUT))
        ``type`` (8), ``seq`` (8), ``length`` (16) of the next frame; accepted when idle.
    i : In(stream.Signature(8))
        Exactly ``length`` payload bytes per frame, taken as they are needed.
    o : Out(stream.Signature(8))
        Wire bytes (to :class:`UartTx`).
    busy : Out(1)
        A frame is being emitted (its last byte may still wait in ``o``).

    Two stages: a fetch stage walks the frame (opening END, header, payload, two CRC
    placeholders, closing END) and registers one symbol per cycle with a precomputed "needs
    an escape" flag; a stuffing stage updates the CRC, substitutes the CRC bytes and emits
    ESC + ESC_END / ESC_ESC where needed. Latency 3 cycles from the header handshake to the
    opening END on ``o``. Throughput one wire byte per cycle (a body byte ``0xC0`` / ``0xDB``
    takes two), so ``length + 8 + escapes`` cycles per frame and 2 idle cycles between frames
    when ``o`` and ``i`` never stall. The length is not limited here; the receiving side's
    ``max_payload`` is. ``i.ready`` depends combinationally on ``o.ready``.
    """

    def __init__(self):
        super().__init__({
            "header": In(stream.Signature(HEADER_LAYOUT)),
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # fetch stage
        phase = Signal(_TxPhase)
        head = Signal(32)             # type, seq, length low, length high; shifted out
        head_special = Signal(4)
        head_index = Signal(2)
        length_zero = Signal()
        remaining = Signal(16)
        # stuffing stage
        s_valid = Signal()
        s_kind = Signal(_Symbol)
        s_byte = Signal(8)
        s_special = Signal()
        crc = Signal(16, init=0xFFFF)
        pending = Signal()
        pending_byte = Signal(8)

        free = Signal()
        s_take = Signal()
        fetch = Signal()
        m.d.comb += [
            free.eq(~self.o.valid | self.o.ready),
            s_take.eq(free & ~pending & s_valid),
            fetch.eq(~s_valid | s_take),
            self.header.ready.eq(phase == _TxPhase.IDLE),
            self.i.ready.eq((phase == _TxPhase.PAYLOAD) & fetch),
            self.busy.eq((phase != _TxPhase.IDLE) | s_valid | pending),
        ]

        with m.If(self.header.valid & self.header.ready):
            hdr = self.header.payload
            fields = Cat(hdr.type, hdr.seq, hdr.length)
            m.d.sync += [
                head.eq(fields),
                head_special.eq(Cat(*(_is_special(fields[8 * k:8 * k + 8])
                                      for k in range(4)))),
                head_index.eq(0),
                length_zero.eq(hdr.length == 0),
                remaining.eq(hdr.length),
                phase.eq(_TxPhase.SOF),
            ]

        def emit(kind, byte=0, special=0):
            m.d.sync += [s_valid.eq(1), s_kind.eq(kind), s_byte.eq(byte),
                         s_special.eq(special)]

        with m.If(s_take):
            m.d.sync += s_valid.eq(0)
        with m.If(fetch):
            with m.Switch(phase):
                with m.Case(_TxPhase.SOF):
                    emit(_Symbol.DELIM)
                    m.d.sync += phase.eq(_TxPhase.HEADER)
                with m.Case(_TxPhase.HEADER):
                    emit(_Symbol.DATA, head[:8], head_special[0])
                    m.d.sync += [head.eq(head[8:]), head_special.eq(head_special[1:]),
                                 head_index.eq(head_index + 1)]
                    with m.If(head_index == 3):
                        with m.If(length_zero):
                            m.d.sync += phase.eq(_TxPhase.CRC0)
                        with m.Else():
                            m.d.sync += phase.eq(_TxPhase.PAYLOAD)
                with m.Case(_TxPhase.PAYLOAD):
                    with m.If(self.i.valid):
                        emit(_Symbol.DATA, self.i.payload, _is_special(self.i.payload))
                        m.d.sync += remaining.eq(remaining - 1)
                        with m.If(remaining == 1):
                            m.d.sync += phase.eq(_TxPhase.CRC0)
                with m.Case(_TxPhase.CRC0):
                    emit(_Symbol.CRC0)
                    m.d.sync += phase.eq(_TxPhase.CRC1)
                with m.Case(_TxPhase.CRC1):
                    emit(_Symbol.CRC1)
                    m.d.sync += phase.eq(_TxPhase.EOF)
                with m.Case(_TxPhase.EOF):
                    emit(_Symbol.DELIM)
                    m.d.sync += phase.eq(_TxPhase.IDLE)

        def stuff(byte, special):
            with m.If(special):
                # END (0xC0, bit 0 clear) → ESC_END 0xDC; ESC (0xDB, bit 0 set) → ESC_ESC 0xDD
                m.d.sync += [self.o.payload.eq(ESC), pending.eq(1),
                             pending_byte.eq(Cat(byte[0], Const(ESC_END >> 1, 7)))]
            with m.Else():
                m.d.sync += self.o.payload.eq(byte)

        with m.If(free):
            m.d.sync += self.o.valid.eq(0)
            with m.If(pending):
                m.d.sync += [self.o.payload.eq(pending_byte), self.o.valid.eq(1),
                             pending.eq(0)]
            with m.Elif(s_valid):
                m.d.sync += self.o.valid.eq(1)
                with m.Switch(s_kind):
                    with m.Case(_Symbol.DELIM):
                        m.d.sync += self.o.payload.eq(END)
                    with m.Case(_Symbol.DATA):
                        m.d.sync += crc.eq(crc16_next(crc, s_byte))
                        stuff(s_byte, s_special)
                    with m.Case(_Symbol.CRC0):
                        stuff(crc[:8], _is_special(crc[:8]))
                    with m.Case(_Symbol.CRC1):
                        stuff(crc[8:], _is_special(crc[8:]))
                        m.d.sync += crc.eq(0xFFFF)
        return m


class UartTx(wiring.Component):
    """8N1 UART transmitter at ``clk / divisor`` baud.

    Parameters
    ----------
    divisor : int, >= 4
        Clock cycles per bit (48 MHz / 115200 baud → 417).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; accepted when the previous stop bit has been sent.
    tx : Out(1)
        Serial line (idle high), driven from a flip-flop.

    Latency 1 cycle from an accepted byte to its start bit on ``tx``. Throughput one byte per
    ``10 · divisor + 1`` cycles.
    """

    def __init__(self, *, divisor):
        check_int("divisor", divisor, 4, 1 << 24)
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)      # stop, data[7:0], start; bit 0 on the line
        bits = Signal(range(11))
        timer = Signal(range(self.divisor))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             bits.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                         timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """8N1 UART receiver at ``clk / divisor`` baud, sampling each bit in its middle.

    Parameters
    ----------
    divisor : int, >= 4
        Clock cycles per bit; must match the sender's baud within about ±4 %.

    Attributes
    ----------
    rx : In(1)
        Serial line (idle high); synchronised by two flip-flops inside.
    o : Out(stream.Signature(8))
        Received bytes. A UART cannot wait: a byte not taken before the next one completes
        is lost (``overrun``).
    framing_error : Out(1)
        One-cycle strobe: the stop bit was low; the byte is dropped and the receiver waits
        for the line to go high (a break) before looking for the next start bit.
    overrun : Out(1)
        One-cycle strobe: a byte completed while ``o`` still held the previous one; the new
        byte is dropped.

    A start bit is confirmed low again half a bit after its falling edge (else ignored as a
    glitch); data bits are sampled one bit period apart from there. Latency from the middle
    of the stop bit to ``o.valid``: 1 cycle (plus 2 cycles of synchroniser after the line).
    Throughput one byte per ``10 · divisor`` cycles.
    """

    def __init__(self, *, divisor):
        check_int("divisor", divisor, 4, 1 << 24)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        meta = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [meta.eq(self.rx), line.eq(meta)]
        timer = Signal(range(self.divisor))
        bits = Signal(range(8))
        shreg = Signal(8)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"             # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class SerialLink(wiring.Component):
    """The device end of the link: ``rx → UartRx → FrameReceiver`` and ``FrameTransmitter →
    UartTx → tx``.

    Parameters
    ----------
    divisor : int, >= 4
        Clock cycles per UART bit (48 MHz / 115200 baud → 417).
    max_payload : int, in [0, 65535]
        Longest payload the receiver accepts.

    Attributes
    ----------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host (idle high).
    o, type, seq, length, done, ok, reason
        Received frames, as on :class:`FrameReceiver`.
    header, i, busy
        Frames to send, as on :class:`FrameTransmitter`.
    framing_error, overrun : Out(1)
        Strobes of :class:`UartRx`. A lost or damaged byte also shows up as a rejected
        frame; these tell why.

    Latency and throughput are those of the UART: one byte per ``10 · divisor`` cycles each
    way; the framing blocks add 2 (receive) and 3 (send) cycles.
    """

    def __init__(self, *, divisor, max_payload=MAX_PAYLOAD):
        self._uart_rx = UartRx(divisor=divisor)
        self._uart_tx = UartTx(divisor=divisor)
        self._receiver = FrameReceiver(max_payload=max_payload)
        self._transmitter = FrameTransmitter()
        self.divisor = divisor
        self.max_payload = max_payload
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "o": Out(stream.Signature(PAYLOAD_LAYOUT)),
            "type": Out(8),
            "seq": Out(8),
            "length": Out(16),
            "done": Out(1),
            "ok": Out(1),
            "reason": Out(3),
            "header": In(stream.Signature(HEADER_LAYOUT)),
            "i": In(stream.Signature(8)),
            "busy": Out(1),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self._uart_rx
        m.submodules.uart_tx = utx = self._uart_tx
        m.submodules.receiver = frx = self._receiver
        m.submodules.transmitter = ftx = self._transmitter
        wiring.connect(m, urx.o, frx.i)
        wiring.connect(m, ftx.o, utx.i)
        wiring.connect(m, frx.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.header), ftx.header)
        wiring.connect(m, wiring.flipped(self.i), ftx.i)
        m.d.comb += [
            urx.rx.eq(self.rx),
            self.tx.eq(utx.tx),
            self.framing_error.eq(urx.framing_error),
            self.overrun.eq(urx.overrun),
            self.busy.eq(ftx.busy),
        ]
        for name in ("type", "seq", "length", "done", "ok", "reason"):
            m.d.comb += getattr(self, name).eq(getattr(frx, name))
        return m
