"""The training core behind the framed serial link: what a board's top level instantiates.

:class:`SerialCore` is ``rx pin → SerialLink → FrameBridge → TrainingCore → FrameBridge →
SerialLink → tx pin``; the host reaches it with :class:`bitprop.boards.driver.FramePort` over
:class:`bitprop.boards.link.Link`, exactly as it reaches the simulated core through
``bitprop.sim.core_bench.SimPort``.

Requests (frames of :mod:`bitprop.boards.link`) and their replies
----------------------------------------------------------------

=================  =======================================  ===================================
request type       payload                                  reply
=================  =======================================  ===================================
``FRAME_CMD`` 1    command words of the core, u32 LE each   type ``0x81``, empty payload, sent
                                                            once every word is in the core
``FRAME_READ`` 2   u16 LE: reply words wanted               type ``0x82``, ``min(wanted,
                                                            waiting, max_payload / 4)`` reply
                                                            words of the core, u32 LE (maybe 0)
anything else      –                                        ``NACK`` (0xFF), payload ``[code]``
=================  =======================================  ===================================

NACK codes: :data:`ERR_TYPE` (unknown request type), :data:`ERR_ALIGN` (a ``FRAME_CMD`` payload
that is not a whole number of words; nothing of it is executed), :data:`ERR_READ_LENGTH` (a
``FRAME_READ`` payload that is not 2 bytes).

Losses and resends
------------------
The receiver streams payload bytes before the CRC is known, so a ``FRAME_CMD`` payload is
buffered (``max_payload`` bytes of block RAM) and handed to the core only after the frame
ended with a good CRC. A damaged frame is dropped without a reply; the host resends it after
its timeout. The bridge handles one request at a time: a frame that arrives while it is still
executing the previous one (feeding the core, sending a reply) is dropped the same way.

A reply can be lost too; the host then resends the request with the *same* sequence number.
The bridge remembers the type and sequence number of the last request it executed:

- a ``FRAME_CMD`` equal to it is acknowledged again but not executed again;
- a ``FRAME_READ`` equal to it is answered with the very words of the previous answer. The
  reply words live in a ring buffer (``reply_depth`` words, fed by the core's ``rsp``); the
  words of the last ``FRAME_READ`` answer stay in it until the next *new* request of any type
  arrives (which proves that the host has them), so no word is lost or repeated.

A host that restarts its :class:`~bitprop.boards.link.Link` (sequence numbers from 0 again)
should reset the device, or send a harmless request first: a first request that happens to
repeat the type and number of the device's last request would be taken for a resend.

Capacity: the core stalls when ``reply_depth`` words wait. A request that cannot be fed to the
core because the core waits for the host to read replies would never be acknowledged, so one
:meth:`Device <bitprop.boards.driver.Device>` exchange must not expect more than
``reply_depth`` reply words before its last command frame (``Device.infer`` sends 256 samples
per exchange: hence the default 256).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from bitprop.boards.driver import FRAME_CMD, FRAME_READ
from bitprop.boards.link import MAX_PAYLOAD, NACK
from bitprop.rtl.core import RSP_LAYOUT, TrainingCore
from bitprop.rtl.link import HEADER_LAYOUT, PAYLOAD_LAYOUT, SEND_LAYOUT, SerialLink
from bitprop.rtl.memory import NO_RW_CHECK, RegisteredRead
from bitprop.rtl.params import check_int

__all__ = ["FrameBridge", "SerialCore", "ERR_TYPE", "ERR_ALIGN", "ERR_READ_LENGTH"]

#: NACK code: the request type is neither ``FRAME_CMD`` nor ``FRAME_READ``.
ERR_TYPE = 1
#: NACK code: a ``FRAME_CMD`` payload is not a whole number of 32-bit words.
ERR_ALIGN = 2
#: NACK code: a ``FRAME_READ`` payload is not exactly 2 bytes.
ERR_READ_LENGTH = 3


# Neither of the bridge's memories is ever read, in a cycle where its read data is used, at
# the address written in the same cycle: the command buffer is written only while receiving
# and read only while not; the ring's reader stays inside [tail, head) while the core writes
# at head, less than ``reply_depth`` ahead of tail. Both are built with NO_RW_CHECK (about 70
# flip-flops fewer on iCE40).

class FrameBridge(wiring.Component):
    """Turn good request frames into command words and reply words into reply frames.

    Parameters
    ----------
    max_payload : int, multiple of 4 in [4, 2048]
        Payload limit of the link (the receiver's ``max_payload``); the command buffer holds
        one such payload, and a ``FRAME_READ`` answer carries at most ``max_payload / 4``
        words.
    reply_depth : int, power of two in [4, 65536]
        Reply words buffered between the core and the host.

    Attributes
    ----------
    rx : In(stream.Signature(PAYLOAD_LAYOUT))
        Payload bytes of received frames (``FrameReceiver.o``); always ready.
    rx_type, rx_seq : In(8)
    rx_length : In(16)
    rx_done, rx_ok : In(1)
        The receiver's header fields and verdict strobe.
    tx_header : Out(stream.Signature(HEADER_LAYOUT))
    tx : Out(stream.Signature(SEND_LAYOUT))
        Reply frames to ``FrameTransmitter``.
    cmd : Out(stream.Signature(32))
        Command words to the core.
    rsp : In(stream.Signature(RSP_LAYOUT))
        Reply words of the core (``last`` is not used).

    A request is acted on a few cycles after its closing END: a ``FRAME_CMD`` of ``n`` words
    takes ``n + 1`` cycles when the core never stalls, then its acknowledgement is queued; a
    ``FRAME_READ`` answer streams one byte per cycle the transmitter takes.
    """

    def __init__(self, *, max_payload=512, reply_depth=256):
        check_int("max_payload", max_payload, 4, MAX_PAYLOAD)
        if max_payload % 4:
            raise ValueError(f"max_payload must be a multiple of 4; got {max_payload}")
        check_int("reply_depth", reply_depth, 4, 1 << 16)
        if reply_depth & (reply_depth - 1):
            raise ValueError(f"reply_depth must be a power of two; got {reply_depth}")
        self.max_payload = max_payload
        self.reply_depth = reply_depth
        super().__init__({
            "rx": In(stream.Signature(PAYLOAD_LAYOUT)),
            "rx_type": In(8),
            "rx_seq": In(8),
            "rx_length": In(16),
            "rx_done": In(1),
            "rx_ok": In(1),
            "tx_header": Out(stream.Signature(HEADER_LAYOUT)),
            "tx": Out(stream.Signature(SEND_LAYOUT)),
            "cmd": Out(stream.Signature(32)),
            "rsp": In(stream.Signature(RSP_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        words = self.max_payload // 4
        depth = self.reply_depth
        pw = ceil_log2(depth) + 1              # ring pointers: one bit more than the address

        m.submodules.payload = pmem = Memory(shape=32, depth=words, init=[],
                                             attrs=NO_RW_CHECK)
        p_wr = pmem.write_port(granularity=8)
        p_rd = RegisteredRead(m, pmem)
        m.submodules.ring = rmem = Memory(shape=32, depth=depth, init=[], attrs=NO_RW_CHECK)
        r_wr = rmem.write_port()
        r_rd = RegisteredRead(m, rmem)

        # -- reply ring: the core writes at head; [tail, tail + last_n) is the last answer ------
        head = Signal(pw)
        tail = Signal(pw)
        last_n = Signal(range(min(words, depth) + 1))
        used = Signal(pw)
        # Addresses and data are driven unconditionally, only the enables are not (below too).
        m.d.comb += [used.eq(head - tail), self.rsp.ready.eq(used < depth),
                     r_wr.addr.eq(head[:pw - 1]), r_wr.data.eq(self.rsp.payload.data)]
        with m.If(self.rsp.valid & self.rsp.ready):
            m.d.comb += r_wr.en.eq(1)
            m.d.sync += head.eq(head + 1)

        # -- receiving: payload bytes into the command buffer (only while idle) -----------------
        # A good frame has delivered exactly ``length`` bytes, the first marked ``first``; so
        # when all of them arrived while idle (``clean``), ``count`` equals its length, and the
        # bridge needs no copy of the length field. A FRAME_READ's u16 is read back from the
        # buffer.
        idle = Signal()
        count = Signal(range(self.max_payload + 1))
        clean = Signal()                       # the frame's bytes all arrived while idle
        m.d.comb += self.rx.ready.eq(1)
        byte = self.rx.payload
        index = Signal.like(count)
        m.d.comb += [index.eq(Mux(byte.first, 0, count)), p_wr.addr.eq(index[2:]),
                     p_wr.data.eq(Cat(*[byte.data] * 4))]
        with m.If(self.rx.valid):
            with m.If(idle):
                m.d.comb += p_wr.en.eq(Const(1, 4) << index[:2])
                m.d.sync += count.eq(index + 1)
                with m.If(byte.first):
                    m.d.sync += clean.eq(1)
            with m.Else():
                m.d.sync += clean.eq(0)

        # -- the request being executed ---------------------------------------------------------
        f_cmd = Signal()                       # its type is FRAME_CMD
        f_read = Signal()                      # its type is FRAME_READ
        f_seq = Signal(8)
        last_valid = Signal()                  # the last executed request: type and seq
        last_read = Signal()
        last_seq = Signal(8)
        code = Signal(2)                       # NACK code
        p_ptr = Signal(range(words + 1))
        have = Signal()                        # p_rd.data holds a word for cmd
        r_ptr = Signal(pw)
        r_left = Signal(range(min(words, depth) + 1))
        b_index = Signal(2)

        hdr = self.tx_header.payload
        duplicate = last_valid & (last_seq == f_seq) & (last_read == f_read)

        def execute():
            """Record the request as the last executed one; release the last answer's words."""
            m.d.sync += [last_valid.eq(1), last_read.eq(f_read), last_seq.eq(f_seq),
                         tail.eq(tail + last_n), last_n.eq(0)]

        def nack(value):
            m.d.sync += code.eq(value)
            m.next = "NACK"

        step = Signal()                        # SEND: the last byte of a word is taken
        with m.FSM() as fsm:
            with m.State("RECEIVE"):
                m.d.comb += idle.eq(1)
                with m.If(self.rx_done & self.rx_ok):
                    m.d.sync += [f_cmd.eq(self.rx_type == FRAME_CMD),
                                 f_read.eq(self.rx_type == FRAME_READ), f_seq.eq(self.rx_seq),
                                 p_ptr.eq(0)]
                    with m.If(self.rx_length == 0):
                        m.d.sync += [count.eq(0), clean.eq(1)]
                    m.next = "DECODE"
            with m.State("DECODE"):
                # The buffer's read port fetches word 0 (p_ptr is 0: a FRAME_READ's u16).
                with m.If(~clean):
                    m.next = "RECEIVE"                  # partly dropped: the host resends
                with m.Elif(f_cmd):
                    with m.If(count[:2] != 0):
                        nack(ERR_ALIGN)
                    with m.Elif(duplicate):
                        m.next = "ACK"
                    with m.Else():
                        execute()
                        m.d.sync += have.eq(0)
                        m.next = "PUSH"
                with m.Elif(f_read):
                    with m.If(count != 2):
                        nack(ERR_READ_LENGTH)
                    with m.Elif(duplicate):
                        m.d.sync += [r_ptr.eq(tail), r_left.eq(last_n)]
                        m.next = "ANSWER"
                    with m.Else():
                        execute()
                        m.next = "COUNT"
                with m.Else():
                    nack(ERR_TYPE)
            with m.State("PUSH"):
                load = ~have | self.cmd.ready
                m.d.comb += [p_rd.en.eq(load), self.cmd.valid.eq(have)]
                with m.If(load):
                    with m.If(p_ptr != count[2:]):
                        m.d.sync += [p_ptr.eq(p_ptr + 1), have.eq(1)]
                    with m.Else():
                        m.d.sync += have.eq(0)
                        m.next = "ACK"
            with m.State("ACK"):
                m.d.comb += self.tx_header.valid.eq(1)
                with m.If(self.tx_header.ready):
                    m.next = "RECEIVE"
            with m.State("NACK"):
                m.d.comb += self.tx_header.valid.eq(1)
                with m.If(self.tx_header.ready):
                    m.next = "NACK_CODE"
            with m.State("NACK_CODE"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.next = "RECEIVE"
            with m.State("COUNT"):
                # tail has moved past the previous answer; answer what is there now.
                wanted = p_rd.data[:16]
                cap = Signal(16)
                avail = Signal(pw)
                n = Signal.like(r_left)
                m.d.comb += [avail.eq(head - tail), cap.eq(Mux(wanted < words, wanted, words)),
                             n.eq(Mux(avail < cap, avail, cap))]
                m.d.sync += [last_n.eq(n), r_ptr.eq(tail), r_left.eq(n)]
                m.next = "ANSWER"
            with m.State("ANSWER"):
                # The ring's read port fetches word r_ptr meanwhile (address held below).
                m.d.comb += self.tx_header.valid.eq(1)
                m.d.sync += b_index.eq(0)
                with m.If(self.tx_header.ready):
                    with m.If(r_left == 0):
                        m.next = "RECEIVE"
                    with m.Else():
                        m.next = "SEND"
            with m.State("SEND"):
                take = self.tx.ready
                m.d.comb += [self.tx.valid.eq(1), step.eq(take & (b_index == 3))]
                with m.If(take):
                    m.d.sync += b_index.eq(b_index + 1)
                with m.If(step):
                    m.d.sync += [r_ptr.eq(r_ptr + 1), r_left.eq(r_left - 1)]
                    with m.If(r_left == 1):
                        m.next = "RECEIVE"

        # Data and addresses are driven in every state (only valids and enables depend on the
        # state): a value that is 0 outside some states costs a multiplexer per bit.
        # An ACK answers a FRAME_CMD, an answer a FRAME_READ: the reply type follows from
        # the request's. r_left is 0 except while answering, so it gives an ACK's and a
        # NACK's length too.
        m.d.comb += [hdr.type.eq(Mux(fsm.ongoing("NACK"), NACK,
                                     Mux(f_cmd, FRAME_CMD | 0x80, FRAME_READ | 0x80))),
                     hdr.seq.eq(f_seq), hdr.length.eq(Cat(fsm.ongoing("NACK"), 0, r_left)),
                     p_rd.addr.eq(p_ptr), self.cmd.payload.eq(p_rd.data),
                     r_rd.addr.eq(Mux(step, r_ptr + 1, r_ptr)[:pw - 1]),
                     self.tx.payload.data.eq(Mux(fsm.ongoing("NACK_CODE"), code,
                                                 r_rd.data.word_select(b_index, 8))),
                     # a NACK's code byte, or the answer's last word's last byte
                     self.tx.payload.last.eq(fsm.ongoing("NACK_CODE")
                                             | ((r_left == 1) & (b_index == 3)))]
        return m


class SerialCore(wiring.Component):
    """:class:`~bitprop.rtl.core.TrainingCore` behind the framed UART link (module notes).

    Parameters
    ----------
    plan : CorePlan
        Of the core.
    divisor : int, >= 4
        Clock cycles per UART bit (clock / baud).
    max_payload : int, multiple of 4 in [4, 2048]
        Longest frame payload accepted; the host's ``Link(max_payload=...)`` must match.
    reply_depth : int, power of two in [4, 65536]
        Reply words buffered for ``FRAME_READ`` (at least 256 for ``Device.infer``).
    spram, spram_model, carry_segments
        Passed to :class:`~bitprop.rtl.core.TrainingCore`.

    Attributes
    ----------
    rx : In(1)
        UART line from the host (idle high).
    tx : Out(1)
        UART line to the host (idle high).
    busy : Out(1)
        The core is training or inferring (for a LED).
    """

    def __init__(self, *, plan, divisor, max_payload=512, reply_depth=256, spram=False,
                 spram_model=False, carry_segments=1):
        self.link = SerialLink(divisor=divisor, max_payload=max_payload)
        self.bridge = FrameBridge(max_payload=max_payload, reply_depth=reply_depth)
        self.core = TrainingCore(plan=plan, spram=spram, spram_model=spram_model,
                                 carry_segments=carry_segments)
        self.plan = self.core.plan
        self.divisor = divisor
        self.max_payload = max_payload
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.bridge = bridge = self.bridge
        m.submodules.core = core = self.core
        wiring.connect(m, link.o, bridge.rx)
        wiring.connect(m, bridge.tx_header, link.header)
        wiring.connect(m, bridge.tx, link.i)
        wiring.connect(m, bridge.cmd, core.cmd)
        wiring.connect(m, core.rsp, bridge.rsp)
        m.d.comb += [
            bridge.rx_type.eq(link.type), bridge.rx_seq.eq(link.seq),
            bridge.rx_length.eq(link.length), bridge.rx_done.eq(link.done),
            bridge.rx_ok.eq(link.ok),
            link.rx.eq(self.rx), self.tx.eq(link.tx), self.busy.eq(core.busy),
        ]
        return m
