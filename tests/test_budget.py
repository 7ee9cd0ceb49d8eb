"""--acc-bits, --max-memory and --max-bram (edgehls.budget): impossible accumulators and a design
over its memory budget are one clear error with nothing written; a wider accumulator is still
bit-exact."""

from __future__ import annotations

import json
import shutil

import pytest
from test_cli import MODEL, compile_args, expect_error, run

from edgehls import budget, pipeline, report, romgen, simulate, tiler


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "out"


@pytest.mark.parametrize(("text", "bits"), [("1000", 1000), ("1000b", 1000), ("2Kb", 2048),
                                            ("3Mb", 3 << 20), ("1Gb", 1 << 30), ("5B", 40),
                                            ("256KB", 256 * 8192), ("2MB", 16 << 20),
                                            (" 7 Kb ", 7168)])
def test_memory_sizes(text, bits):
    assert budget.parse_size(text) == bits


@pytest.mark.parametrize("text", ["", "0", "-5", "2kb", "1.5Mb", "Mb", "10Q", "2 M"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError, match="not a memory size"):
        budget.parse_size(text)


@pytest.mark.parametrize("acc", ["1", "0", "65"])
def test_impossible_accumulator_width(capsys, out_dir, acc):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--acc-bits", acc))
    assert f"--acc-bits {acc} is out of range: choose 2..64" in msg


def test_accumulators_narrower_than_the_model_needs(capsys, out_dir):
    """The digits MLP at w8a8: K = 64 needs 8 + 8 + 6 + 1 = 23 bits; the first such layer is
    named."""
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--acc-bits", "16"))
    assert "--acc-bits 16 is too narrow: layer 'fc1' needs 23-bit accumulators" in msg
    assert "choose --acc-bits 23 or more" in msg


def test_memory_budget_too_small(capsys, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--max-memory", "10Kb"))
    assert "bits of on-chip memory (weight rom " in msg and "over --max-memory 10,240 bits" in msg
    assert "--prune" in msg and "--share-bits" in msg


def test_bram_budget_too_small(capsys, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--max-bram", "1"))
    assert "18 Kb block RAMs" in msg and "over --max-bram 1;" in msg


@pytest.mark.parametrize("option", ["--max-memory", "--max-bram"])
def test_malformed_budget(capsys, out_dir, option):
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, option, "lots"),
                 argparse_option=option)


def test_a_design_within_budget_compiles(capsys, out_dir):
    """Exactly at the budget is within it: the limits are the design's own figures."""
    rc, _, err = run(capsys, *compile_args(MODEL, out_dir, "-q"))
    assert rc == 0, err
    mem = json.loads((out_dir / "report.json").read_text())["memory"]
    total = sum(v for k, v in mem.items() if k.endswith("_bits"))
    shutil.rmtree(out_dir)
    rc, _, err = run(capsys, *compile_args(MODEL, out_dir, "-q", "--max-memory", str(total),
                                           "--max-bram", str(mem["bram18"])))
    assert rc == 0, err
    shutil.rmtree(out_dir)
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--max-memory", str(total - 1)))
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--max-bram",
                                                str(mem["bram18"] - 1)))


def test_check_counts_report_memory(tmp_path):
    g = pipeline.run_passes(pipeline.frontend.load(MODEL), pipeline.passes(pipeline.Options()))
    s = tiler.schedule(g, 4, 4)
    p = romgen.hw_params(g, s, "auto")
    mem = report.memory(s, p)
    total = sum(v for k, v in mem.items() if k.endswith("_bits"))
    budget.check(s, p, total, mem["bram18"])
    budget.check(s, p, None, None)
    with pytest.raises(budget.OptionError, match="over --max-memory"):
        budget.check(s, p, total - 1, None)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_wider_accumulators_are_bit_exact(tmp_path):
    """--acc-bits 40 on the digits MLP: ACC_W 40 in the design, same golden, bit-exact in Icarus
    with the same cycles."""
    out = tmp_path / "design"
    pipeline.compile_model(MODEL, out, pipeline.Options(pe=(4, 4), samples=2, acc_bits=40))
    man = json.loads((out / "manifest.json").read_text())
    assert man["hw"]["ACC_W"] == 40
    r = simulate.simulate(out)
    assert r["passed"] and r["mismatches"] == 0 and r["cycles"] == r["predicted_cycles"]
