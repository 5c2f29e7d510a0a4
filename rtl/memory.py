"""Weight memories: binary weights in block RAM, hidden weights in single-port RAM.

- :class:`BinaryWeightMemory`: 1 bit per weight (bit 1 = +1), wide words read once per cycle
  by the XNOR-popcount array, written by the hidden-weight update when a sign flips. A simple
  dual-port ``amaranth.lib.memory.Memory``: Yosys maps it to ``SB_RAM40_4K`` on iCE40 and
  ``DP16KD`` on ECP5.
- :class:`SinglePortMemory`: words behind one single-port, synchronous port
  (:class:`SinglePortSignature`); :class:`HiddenWeightMemory` is one of ``lanes`` hidden
  weights of ``hidden_bits`` bits per word, which
  :class:`bitprop.rtl.update.HiddenWeightUpdate` drives (the training core also keeps its
  archive of a batch's input words in one). With ``spram=True`` the word is tiled
  explicitly over ``SB_SPRAM256KA`` primitives (16 bits × 16,384 words each; the UP5K has
  four), so the mapping does not depend on inference; ``model=True`` replaces each primitive
  by :class:`Spram256ka`'s behavioural model for simulation. With ``spram=False`` it is a
  plain ``lib.memory.Memory`` (ECP5 block RAM; ``synth_ice40 -spram`` may also infer SPRAM).

Layout used by the rest of the design (hidden weights): row ``j`` of a ``K_out × K_in``
matrix occupies ``R = ceil(K_in / lanes)`` consecutive words from ``base + j·R``; lane ``l``
of word ``c`` holds column ``c·lanes + l``; the padding lanes of a row's last word are never
updated. Lane ``l`` is bits ``[l·b, (l+1)·b)`` of the word, two's complement.
"""

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_int

__all__ = ["SinglePortSignature", "Spram256ka", "SinglePortMemory", "HiddenWeightMemory",
           "BinaryWeightMemory", "SPRAM_WIDTH", "SPRAM_DEPTH", "NO_RW_CHECK", "RegisteredRead",
           "spram_tiles"]

SPRAM_WIDTH = 16
SPRAM_DEPTH = 16384


def spram_tiles(width, depth):
    """Return ``(columns, banks)``: the ``SB_SPRAM256KA`` tiles of ``depth`` × ``width`` bits."""
    return -(-width // SPRAM_WIDTH), -(-depth // SPRAM_DEPTH)


#: Attributes of a :class:`~amaranth.lib.memory.Memory` that is never read, in a cycle whose
#: read data is used, at the address written in the same cycle; read it through
#: :class:`RegisteredRead`. Yosys then does not emulate read-old-data on such a collision,
#: which neither the iCE40 nor the ECP5 block RAM does across its two ports: a register per
#: data bit, an address comparison and a multiplexer before the output register (on ECP5 the
#: comparison's carry chain was a critical path).
NO_RW_CHECK = {"no_rw_check": 1}


class RegisteredRead:
    """A read port of ``memory`` that behaves as a synchronous, non-transparent one.

    ``addr`` is read and ``data`` holds the word from the next cycle on, reloaded in every
    cycle with ``en`` (1 unless driven). It is an asynchronous read port followed by a
    register, the form in which Yosys' ``memory_dff`` folds the register into the block RAM:
    only that pass honours :data:`NO_RW_CHECK`. ``m`` is the module that holds the register.
    """

    def __init__(self, m, memory):
        port = memory.read_port(domain="comb")
        self.addr = port.addr
        self.en = Signal(init=1)
        self.data = Signal(memory.shape)
        with m.If(self.en):
            m.d.sync += self.data.eq(port.data)


class SinglePortSignature(wiring.Signature):
    """A single-port synchronous RAM, seen from the side that drives it.

    Members (directions for the driver): ``addr`` Out(addr_width); ``r_en`` Out(1): read
    ``addr``, ``r_data`` In(data_width) holds the word from the next cycle on until the next
    read; ``w_en`` Out(1): write ``w_data`` Out(data_width) at ``addr``. One access per cycle:
    ``r_en`` and ``w_en`` are never high together.
    """

    def __init__(self, *, addr_width, data_width):
        check_int("addr_width", addr_width, 1)
        check_int("data_width", data_width, 1)
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "addr": Out(addr_width),
            "r_en": Out(1),
            "r_data": In(data_width),
            "w_en": Out(1),
            "w_data": Out(data_width),
        })

    def __eq__(self, other):
        return (isinstance(other, SinglePortSignature) and
                (self.addr_width, self.data_width) == (other.addr_width, other.data_width))

    def __repr__(self):
        return f"SinglePortSignature(addr_width={self.addr_width}, data_width={self.data_width})"


class Spram256ka(wiring.Component):
    """One iCE40 UP ``SB_SPRAM256KA`` (16 bits × 16,384 words), or its behavioural model.

    Parameters
    ----------
    model : bool
        False: instantiate the primitive (synthesis only). True: a ``lib.memory.Memory`` with
        the primitive's behaviour as used here (no power modes; contents start at 0 where the
        silicon's are undefined).

    Attributes
    ----------
    address : In(14)
    datain : In(16)
    maskwren : In(4)
        Nibble write enables.
    wren : In(1)
    chipselect : In(1)
        With ``wren`` low, ``dataout`` takes ``mem[address]`` at the clock edge (latency 1);
        otherwise it holds.
    dataout : Out(16)
    """

    def __init__(self, *, model=False):
        self.model = bool(model)
        super().__init__({
            "address": In(14),
            "datain": In(16),
            "maskwren": In(4),
            "wren": In(1),
            "chipselect": In(1),
            "dataout": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        if not self.model:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.address, i_DATAIN=self.datain, i_MASKWREN=self.maskwren,
                i_WREN=self.wren, i_CHIPSELECT=self.chipselect, i_CLOCK=ClockSignal("sync"),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=self.dataout)
            return m
        m.submodules.mem = mem = memory.Memory(shape=16, depth=SPRAM_DEPTH, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=4)
        m.d.comb += [
            rd.addr.eq(self.address),
            rd.en.eq(self.chipselect & ~self.wren),
            self.dataout.eq(rd.data),
            wr.addr.eq(self.address),
            wr.data.eq(self.datain),
            wr.en.eq(Mux(self.chipselect & self.wren, self.maskwren, 0)),
        ]
        return m


class SinglePortMemory(wiring.Component):
    """``depth`` words of ``width`` bits behind one single-port, synchronous port.

    Parameters
    ----------
    width : int, >= 1
        Bits per word.
    depth : int, >= 1
        Words.
    spram : bool
        Tile the word over explicit ``SB_SPRAM256KA`` primitives (iCE40 UP): ``ceil(width /
        16)`` columns × ``ceil(depth / 16384)`` banks of them.
    model : bool
        With ``spram``, use :class:`Spram256ka`'s behavioural model (for simulation).
    init : sequence of int, optional
        Initial words (not with ``spram``; the SPRAM cannot be initialised by the bitstream).
    slice_bits : int, optional
        Without ``spram``: keep the word as memories of as few bits each as it takes for
        one of them to hold at most this many bits (a block RAM's), each of the whole depth,
        so that Yosys builds no read multiplexer across depth ranges and each block RAM's
        output can sit by its few bits of the consumer's register (on ECP5 the 32 DP16KD of
        784-75-75's hidden weights behind depth multiplexers were a critical path). A memory
        deeper than ``slice_bits`` stays whole: even 1-bit slices would each take several
        block RAMs, and fill them worse (784-255-255's 33,150 words: 192 DP16KD, not 115).

    Attributes
    ----------
    port : In(SinglePortSignature(addr_width=ceil_log2(depth), data_width=width))
        Read latency 1 cycle (``r_data`` valid the cycle after ``r_en``, held until the next
        read); a write takes effect at the clock edge. One access per cycle.
    """

    def __init__(self, *, width, depth, spram=False, model=False, init=None, slice_bits=None):
        check_int("width", width, 1)
        check_int("depth", depth, 1)
        if slice_bits is not None:
            check_int("slice_bits", slice_bits, 1)
        if spram and init:
            raise ValueError("init is not supported with spram=True (SPRAM has no initial "
                             "contents)")
        self.depth = depth
        self.width = width
        self.slice_bits = slice_bits
        self.spram = bool(spram)
        self.model = bool(model)
        self.init = list(init or [])
        if len(self.init) > depth:
            raise ValueError(f"init has {len(self.init)} words; depth is {depth}")
        super().__init__({"port": In(SinglePortSignature(
            addr_width=max(1, ceil_log2(depth)), data_width=self.width))})

    @property
    def spram_tiles(self):
        """Return ``(columns, banks)`` of ``SB_SPRAM256KA`` used with ``spram=True``."""
        return spram_tiles(self.width, self.depth)

    def elaborate(self, platform):
        m = Module()
        port = self.port
        if not self.spram:
            sw = self.width
            if self.slice_bits and self.depth <= self.slice_bits:
                sw = min(self.width, self.slice_bits // self.depth)
            for i, lo in enumerate(range(0, self.width, sw)):
                hi = min(lo + sw, self.width)
                init = [(w >> lo) & ((1 << (hi - lo)) - 1) for w in self.init]
                mem = memory.Memory(shape=hi - lo, depth=self.depth, init=init)
                m.submodules["mem" if sw == self.width else f"mem{i}"] = mem
                rd = mem.read_port()
                wr = mem.write_port()
                m.d.comb += [
                    rd.addr.eq(port.addr),
                    rd.en.eq(port.r_en & ~port.w_en),
                    port.r_data[lo:hi].eq(rd.data),
                    wr.addr.eq(port.addr),
                    wr.data.eq(port.w_data[lo:hi]),
                    wr.en.eq(port.w_en),
                ]
            return m
        cols, banks = self.spram_tiles
        bank = port.addr[14:] if banks > 1 else Const(0, 1)
        bank_q = Signal.like(bank)   # the bank whose data is on the outputs
        with m.If(port.r_en & ~port.w_en):
            m.d.sync += bank_q.eq(bank)
        wdata = Cat(port.w_data, Const(0, cols * SPRAM_WIDTH - self.width))
        bank_data = []
        for b in range(banks):
            words = []
            for c in range(cols):
                tile = Spram256ka(model=self.model)
                m.submodules[f"spram_b{b}_c{c}"] = tile
                m.d.comb += [
                    tile.address.eq(port.addr[:14]),
                    tile.datain.eq(wdata[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH]),
                    tile.maskwren.eq(0b1111),
                    tile.wren.eq(port.w_en),
                    tile.chipselect.eq((bank == b) & (port.r_en | port.w_en)),
                ]
                words.append(tile.dataout)
            bank_data.append(Cat(*words)[:self.width])
        data = bank_data[0]
        for b in range(1, banks):
            data = Mux(bank_q == b, bank_data[b], data)
        m.d.comb += port.r_data.eq(data)
        return m


class HiddenWeightMemory(SinglePortMemory):
    """Hidden-weight storage: ``depth`` words of ``lanes`` hidden weights of ``hidden_bits``
    bits (lane ``l`` in bits ``[l·b, (l+1)·b)``), a :class:`SinglePortMemory`.

    Parameters
    ----------
    lanes : int, >= 1
        Hidden weights per word.
    hidden_bits : int, 2..32
        Bits per hidden weight.
    depth, spram, model, init, slice_bits
        As :class:`SinglePortMemory`'s.
    """

    def __init__(self, *, lanes, hidden_bits, depth, spram=False, model=False, init=None,
                 slice_bits=None):
        check_int("lanes", lanes, 1)
        check_int("hidden_bits", hidden_bits, 2, 32)
        self.lanes = lanes
        self.hidden_bits = hidden_bits
        super().__init__(width=lanes * hidden_bits, depth=depth, spram=spram, model=model,
                         init=init, slice_bits=slice_bits)


class BinaryWeightMemory(wiring.Component):
    """Binary weights, 1 bit each (1 = +1): ``depth`` words of ``width`` bits.

    Parameters
    ----------
    width : int, >= 1
        Bits per word (the array's SIMD width, for example).
    depth : int, >= 1
        Words.
    granularity : int, optional
        Write granularity in bits (``width`` must be a multiple); None writes whole words.
    init : sequence of int, optional
        Initial words (block RAM can be initialised by the bitstream).
    read_register : bool
        Register the read data once more (read latency 2). The block RAM's clock-to-out is
        slow (about 6 ns on ECP5, so reading straight into logic caps the clock near 105 MHz
        out of context); with the register the memory reaches the ECP5 target.

    Attributes
    ----------
    r_addr : In(ceil_log2(depth))
    r_en : In(1)
    r_data : Out(width)
        Synchronous read: the word at ``r_addr`` one cycle after ``r_en`` (two with
        ``read_register``), held otherwise. A read of a word written in the same cycle
        returns the old word.
    w_addr : In(ceil_log2(depth))
    w_en : In(width // granularity)
        One enable per granule (one bit without ``granularity``).
    w_data : In(width)

    Read and write ports are independent (simple dual port): one read and one write per
    cycle.
    """

    def __init__(self, *, width, depth, granularity=None, init=None, read_register=False):
        check_int("width", width, 1)
        check_int("depth", depth, 1)
        if granularity is not None:
            check_int("granularity", granularity, 1)
            if width % granularity:
                raise ValueError(f"width {width} is not a multiple of granularity "
                                 f"{granularity}")
        self.width = width
        self.depth = depth
        self.granularity = granularity
        self.read_register = bool(read_register)
        self.latency = 2 if read_register else 1
        self.init = list(init or [])
        if len(self.init) > depth:
            raise ValueError(f"init has {len(self.init)} words; depth is {depth}")
        aw = max(1, ceil_log2(depth))
        super().__init__({
            "r_addr": In(aw),
            "r_en": In(1),
            "r_data": Out(width),
            "w_addr": In(aw),
            "w_en": In(1 if granularity is None else width // granularity),
            "w_data": In(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth,
                                               init=self.init)
        rd = mem.read_port()
        wr = mem.write_port(granularity=self.granularity)
        if self.read_register:
            # The register follows the read port's enable, so `r_data` still holds between
            # reads (one cycle later than the port's own data).
            en_q = Signal()
            data_q = Signal(self.width, reset_less=True)
            m.d.sync += en_q.eq(self.r_en)
            with m.If(en_q):
                m.d.sync += data_q.eq(rd.data)
            m.d.comb += self.r_data.eq(data_q)
        else:
            m.d.comb += self.r_data.eq(rd.data)
        m.d.comb += [
            rd.addr.eq(self.r_addr),
            rd.en.eq(self.r_en),
            wr.addr.eq(self.w_addr),
            wr.data.eq(self.w_data),
            wr.en.eq(self.w_en),
        ]
        return m
