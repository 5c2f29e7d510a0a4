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

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bitprop.boards.link import (CRC_BYTES, END, ESC, ESC_END, ESC_ESC, HEADER_BYTES,
                                 MAX_PAYLOAD, REASON_CODES)

from .params import check_int

__all__ = ["FrameReceiver", "FrameTransmitter", "UartRx", "UartTx", "SerialLink", "Crc16",
           "PAYLOAD_LAYOUT", "HEADER_LAYOUT", "SEND_LAYOUT"]

CRC_POLY = 0x1021

#: Payload bytes out of :class:`FrameReceiver`.
PAYLOAD_LAYOUT = data.StructLayout({"data": 8, "first": 1, "last": 1})
#: Frame header into :class:`FrameTransmitter`.
HEADER_LAYOUT = data.StructLayout({"type": 8, "seq": 8, "length": 16})
#: Payload bytes into :class:`FrameTransmitter`, ``last`` on a frame's last one.
SEND_LAYOUT = data.StructLayout({"data": 8, "last": 1})


class Crc16(wiring.Component):
    """CRC-16/CCITT-FALSE (``boards.link.crc16``), one bit per cycle.

    The link's bytes arrive and leave at UART speed (at least 40 cycles apart), so folding a
    byte in over 8 cycles costs no throughput there, and a bit-serial step is a shift with
    three xor taps (polynomial ``0x1021``) where a byte-wide step is an xor network of up to 9
    inputs per bit.

    Attributes
    ----------
    byte : In(8)
        With ``start``: the next data byte.
    start : In(1)
        Fold ``byte`` in over the next 8 cycles. Only while not ``busy``.
    clear : In(1)
        Set ``crc`` back to ``0xFFFF`` (the initial value). Only while not ``busy``.
    busy : Out(1)
        A byte is being folded in; ``crc`` is final once this is low.
    crc : Out(16)
        The CRC of the bytes since reset or ``clear``.
    """

    def __init__(self):
        super().__init__({
            "byte": In(8),
            "start": In(1),
            "clear": In(1),
            "busy": Out(1),
            "crc": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        # The byte, MSB first at the top, above a marker bit that shifts up behind it: the
        # byte is done when only the marker is left (no bit counter needed). ``busy`` is a
        # register of that (the next shift leaves a bit below the marker), to keep the
        # stall it causes off the callers' long paths.
        shreg = Signal(9)
        # The CRC is held inverted, so that its initial value is all zeros: iCE40 flip-flops
        # power up as 0, and Yosys would put inverters (LUTs) around ones that start as 1.
        inverted = Signal(16)
        feedback = Signal()
        m.d.comb += [self.crc.eq(~inverted), feedback.eq(~inverted[15] ^ shreg[8])]
        with m.If(self.start):
            m.d.sync += [shreg.eq(Cat(Const(1, 1), self.byte)), self.busy.eq(1)]
        with m.Elif(self.busy):
            # crc = crc << 1 ^ (0x1021 if feedback else 0), on the inverted bits
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), shreg[:8])),
                self.busy.eq(shreg[:7].any()),
                inverted.eq(Cat(~feedback, inverted[:15]) ^ Mux(feedback, CRC_POLY & ~1, 0)),
            ]
        with m.If(self.clear):
            m.d.sync += inverted.eq(0)
        return m


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
    for an END): an unstuffing stage and a framing stage. Both stages stall while ``o`` holds
    a byte and for 8 cycles after the framing stage took a header or payload byte, while
    :class:`Crc16` folds it in (``i.ready = ~o.valid & ~crc_busy``, registers only): one wire
    byte per cycle between frames, about one per 9 cycles inside them (more while ``o`` is
    not taken; a UART byte takes at least 40).
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
        m.submodules.crc = crc_unit = Crc16()
        crc = crc_unit.crc
        out_free = Signal()
        advance = Signal()
        m.d.comb += [out_free.eq(~self.o.valid | self.o.ready),
                     advance.eq(~self.o.valid & ~crc_unit.busy), self.i.ready.eq(advance)]

        # -- stage 1: unstuff ------------------------------------------------------------------
        s1_valid = Signal()
        s1_kind = Signal(_Kind)
        s1_data = Signal(8)
        m.d.comb += crc_unit.byte.eq(s1_data)   # unconditionally: no multiplexer
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
        crc_match = Signal()          # the CRC bytes so far equal the computed CRC
        first = Signal()
        d = s1_data

        m.d.sync += self.done.eq(0)
        with m.If(out_free):
            m.d.sync += self.o.valid.eq(0)

        def restart():
            m.d.sync += [count.eq(0), at_limit.eq(0), phase.eq(_Phase.HEADER)]
            m.d.comb += crc_unit.clear.eq(1)

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
                                m.d.comb += crc_unit.start.eq(1)
                                # The header bytes shift in from the top: after four, each
                                # field is in place (one enable for all, no decoding).
                                m.d.sync += Cat(self.type, self.seq, self.length).eq(
                                    Cat(self.seq, self.length, d))
                                with m.If(count[:2] == 3):
                                    full = Cat(self.length[8:], d)
                                    m.d.sync += [first.eq(1), remaining.eq(full)]
                                    with m.If(full > self.max_payload):
                                        m.d.sync += phase.eq(_Phase.BAD)
                                    with m.Elif(full == 0):
                                        m.d.sync += phase.eq(_Phase.CRC0)
                                    with m.Else():
                                        m.d.sync += phase.eq(_Phase.PAYLOAD)
                            with m.Case(_Phase.PAYLOAD):
                                m.d.comb += crc_unit.start.eq(1)
                                m.d.sync += [
                                    self.o.valid.eq(1),
                                    self.o.payload.data.eq(d),
                                    self.o.payload.first.eq(first),
                                    self.o.payload.last.eq(remaining == 1),
                                    first.eq(0),
                                    remaining.eq(remaining - 1),
                                ]
                                with m.If(remaining == 1):
                                    m.d.sync += phase.eq(_Phase.CRC0)
                            # The stall above has let the CRC unit finish the last byte.
                            with m.Case(_Phase.CRC0):
                                m.d.sync += [crc_match.eq(d == crc[:8]), phase.eq(_Phase.CRC1)]
                            with m.Case(_Phase.CRC1):
                                m.d.sync += [crc_match.eq(crc_match & (d == crc[8:])),
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
        ``type`` (8), ``seq`` (8), ``length`` (16) of the next frame. A frame starts when
        ``header`` is valid while idle; the header is read in place (it must stay valid and
        unchanged, as a stream's payload does) and accepted with its last header byte.
    i : In(stream.Signature(SEND_LAYOUT))
        Exactly ``length`` payload bytes per frame, taken as they are needed, ``last`` on the
        ``length``-th (it ends the payload: the transmitter counts nothing).
    o : Out(stream.Signature(8))
        Wire bytes (to :class:`UartTx`).
    busy : Out(1)
        A frame is being emitted (its last byte may still wait in ``o``).

    Two stages: a fetch stage walks the frame (opening END, header, payload, two CRC
    placeholders, closing END) and registers one symbol whenever the stuffing stage is empty;
    the stuffing stage feeds header and payload bytes to :class:`Crc16`, substitutes the CRC
    bytes and emits ESC + ESC_END / ESC_ESC where needed. Latency 3 cycles from
    ``header.valid`` (while idle) to the opening END on ``o``. When ``o`` and ``i`` never
    stall, a symbol follows the previous one after 2 cycles, but after a header or payload
    byte only once the CRC has taken it in (9 cycles): about ``9 · (length + 4) + 8`` cycles
    per frame, far less than its UART time (at least 40 cycles a byte). ``i.ready`` and
    ``header.ready`` depend on registers only.
    """

    def __init__(self):
        super().__init__({
            "header": In(stream.Signature(HEADER_LAYOUT)),
            "i": In(stream.Signature(SEND_LAYOUT)),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc_unit = Crc16()
        crc = crc_unit.crc
        # fetch stage
        phase = Signal(_TxPhase)
        head_index = Signal(2)        # header byte to fetch next
        # stuffing stage
        s_valid = Signal()
        s_kind = Signal(_Symbol)
        s_byte = Signal(8)
        pending = Signal()            # the second byte of an escape is due
        pending_lsb = Signal()        # ... ESC_END (0) or ESC_ESC (1)
        m.d.comb += crc_unit.byte.eq(s_byte)    # unconditionally: no multiplexer

        free = Signal()
        s_take = Signal()
        fetch = Signal()
        hdr = self.header.payload
        m.d.comb += [
            free.eq(~self.o.valid | self.o.ready),
            s_take.eq(free & ~pending & s_valid & ~crc_unit.busy),
            fetch.eq(~s_valid),
            self.header.ready.eq((phase == _TxPhase.HEADER) & fetch & (head_index == 3)),
            self.i.ready.eq((phase == _TxPhase.PAYLOAD) & fetch),
            self.busy.eq((phase != _TxPhase.IDLE) | s_valid | pending),
        ]

        def emit(kind, byte=None):
            m.d.sync += [s_valid.eq(1), s_kind.eq(kind)]
            if byte is not None:      # else s_byte is not used: leave it (no multiplexer)
                m.d.sync += s_byte.eq(byte)

        with m.If(s_take):
            m.d.sync += s_valid.eq(0)
        with m.Switch(phase):
            with m.Case(_TxPhase.IDLE):
                with m.If(self.header.valid):
                    m.d.sync += [head_index.eq(0), phase.eq(_TxPhase.SOF)]
            with m.Case(_TxPhase.SOF):
                with m.If(fetch):
                    emit(_Symbol.DELIM)
                    m.d.sync += phase.eq(_TxPhase.HEADER)
            with m.Case(_TxPhase.HEADER):
                with m.If(fetch & self.header.valid):
                    emit(_Symbol.DATA, Cat(hdr.type, hdr.seq, hdr.length).word_select(
                        head_index, 8))
                    m.d.sync += head_index.eq(head_index + 1)
                    with m.If(head_index == 3):
                        with m.If(hdr.length == 0):
                            m.d.sync += phase.eq(_TxPhase.CRC0)
                        with m.Else():
                            m.d.sync += phase.eq(_TxPhase.PAYLOAD)
            with m.Case(_TxPhase.PAYLOAD):
                with m.If(fetch & self.i.valid):
                    emit(_Symbol.DATA, self.i.payload.data)
                    with m.If(self.i.payload.last):
                        m.d.sync += phase.eq(_TxPhase.CRC0)
            with m.Case(_TxPhase.CRC0):
                with m.If(fetch):
                    emit(_Symbol.CRC0)
                    m.d.sync += phase.eq(_TxPhase.CRC1)
            with m.Case(_TxPhase.CRC1):
                with m.If(fetch):
                    emit(_Symbol.CRC1)
                    m.d.sync += phase.eq(_TxPhase.EOF)
            with m.Case(_TxPhase.EOF):
                with m.If(fetch):
                    emit(_Symbol.DELIM)
                    m.d.sync += phase.eq(_TxPhase.IDLE)

        # The byte the stuffing stage sends (the CRC is final: s_take waits for it).
        body = Signal(8)
        with m.Switch(s_kind):
            with m.Case(_Symbol.DATA):
                m.d.comb += body.eq(s_byte)
            with m.Case(_Symbol.CRC0):
                m.d.comb += body.eq(crc[:8])
            with m.Case(_Symbol.CRC1):
                m.d.comb += body.eq(crc[8:])

        with m.If(free):
            m.d.sync += self.o.valid.eq(0)
            with m.If(pending):
                # ESC_END 0xDC or ESC_ESC 0xDD
                m.d.sync += [self.o.payload.eq(Cat(pending_lsb, Const(ESC_END >> 1, 7))),
                             self.o.valid.eq(1), pending.eq(0)]
            with m.Elif(s_take):
                m.d.sync += self.o.valid.eq(1)
                with m.If(s_kind == _Symbol.DELIM):
                    m.d.sync += self.o.payload.eq(END)
                with m.Elif(_is_special(body)):
                    # END (0xC0, bit 0 clear) → ESC ESC_END; ESC (0xDB, bit 0 set) → ESC ESC_ESC
                    m.d.sync += [self.o.payload.eq(ESC), pending.eq(1),
                                 pending_lsb.eq(body[0])]
                with m.Else():
                    m.d.sync += self.o.payload.eq(body)
                with m.If(s_kind == _Symbol.DATA):
                    m.d.comb += crc_unit.start.eq(1)
                with m.If(s_kind == _Symbol.CRC1):
                    m.d.comb += crc_unit.clear.eq(1)
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
            "i": In(stream.Signature(SEND_LAYOUT)),
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
