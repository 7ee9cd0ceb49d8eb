"""edgehls.cli: every bad input gives one `error:` line on stderr, exit status 2, no traceback
and no output directory; a good compile writes every file DESIGN.md section 6 lists.

Errors run `main()` in-process (fast); one test goes through the installed console script to
prove the exit status end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import (
    UNSUPPORTED_NODE,
    checker_failing_model_bytes,
    dynamic_dim_model,
    save,
    unsupported_op_model,
)

from edgehls import cli, frontend

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits_mlp"
MODEL = DIGITS / "model.onnx"
DATA = DIGITS / "data.npz"
LAYER_KEYS = {"name", "op", "M", "K", "N", "macs", "tiles", "skipped_tiles", "predicted_cycles",
              "weight_bits_raw", "weight_bits_stored"}
IO_KEYS = {"name", "shape", "dtype", "scale", "zero_point"}


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """main(argv) -> (exit status, stdout, stderr); argparse's SystemExit becomes a status."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def expect_error(capsys: pytest.CaptureFixture[str], out_dir: Path, *argv: str | Path,
                 argparse_option: str | None = None) -> str:
    """Run, demand status 2, one error line, no traceback, nothing written; return the message.

    Our own errors print `error: ...`; option-format errors found by argparse print
    `error: argument --pe: ... (see edgehls compile --help)`, also one line.
    """
    rc, out, err = run(capsys, *argv)
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    assert not out_dir.exists(), f"{out_dir} was created despite the error"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    if argparse_option:
        assert lines[0].startswith(f"error: argument {argparse_option}: "), err
        assert lines[0].endswith(" --help)"), err
    return lines[0]


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def compile_args(model: Path, out_dir: Path, *extra: str | Path) -> list[str | Path]:
    return ["compile", model, "--pe", "4x4", "-o", out_dir, *extra]


# --- bad model files -------------------------------------------------------------------------

def test_missing_model(capsys, tmp_path, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(tmp_path / "nope.onnx", out_dir))
    assert "nope.onnx" in msg and "does not exist" in msg


def test_model_is_a_directory(capsys, tmp_path, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(tmp_path, out_dir))
    assert "is a directory" in msg


def test_not_onnx(capsys, tmp_path, out_dir):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a network\n")
    msg = expect_error(capsys, out_dir, *compile_args(bad, out_dir))
    assert "notes.onnx" in msg and "cannot be parsed as ONNX" in msg


def test_truncated_onnx(capsys, tmp_path, out_dir):
    data = MODEL.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    msg = expect_error(capsys, out_dir, *compile_args(bad, out_dir))
    assert "truncated.onnx" in msg and "cannot be parsed as ONNX" in msg


def test_checker_failing(capsys, tmp_path, out_dir):
    bad = tmp_path / "checker.onnx"
    bad.write_bytes(checker_failing_model_bytes())
    msg = expect_error(capsys, out_dir, *compile_args(bad, out_dir))
    assert "fails onnx.checker" in msg and "missing" in msg


def test_dynamic_dim_suggests_input_shape_which_then_compiles(capsys, tmp_path, out_dir):
    model = save(dynamic_dim_model(), tmp_path / "dyn.onnx")
    msg = expect_error(capsys, out_dir, *compile_args(model, out_dir))
    assert "'input'" in msg and "dynamic dimension 1" in msg
    assert "--input-shape input=" in msg
    rc, out, err = run(capsys, *compile_args(model, out_dir, "--input-shape", "input=1,16", "-q"))
    assert (rc, out, err) == (0, "", "")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 16]


@pytest.mark.parametrize("op", sorted(UNSUPPORTED_NODE))
def test_unsupported_op_names_node_op_and_supported(capsys, tmp_path, out_dir, op):
    model = save(unsupported_op_model(op), tmp_path / f"{op}.onnx")
    msg = expect_error(capsys, out_dir, *compile_args(model, out_dir))
    assert f"'{UNSUPPORTED_NODE[op]}'" in msg and f"({op})" in msg
    assert "supported ops: " + ", ".join(frontend.SUPPORTED) in msg


def test_unknown_input_shape_name(capsys, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--input-shape", "x=1,64"))
    assert "'x'" in msg and "input" in msg


# --- bad options -----------------------------------------------------------------------------

@pytest.mark.parametrize("pe, why", [("0x4", "1..64"), ("65x4", "1..64"), ("4", "ROWSxCOLS"),
                                     ("4x", "ROWSxCOLS"), ("axb", "ROWSxCOLS"),
                                     ("x4", "ROWSxCOLS"), ("4x4x4", "ROWSxCOLS")])
def test_bad_pe(capsys, out_dir, pe, why):
    msg = expect_error(capsys, out_dir, "compile", MODEL, "--pe", pe, "-o", out_dir,
                       argparse_option="--pe")
    assert repr(pe) in msg and why in msg


@pytest.mark.parametrize("option", ["--wbits", "--abits"])
@pytest.mark.parametrize("value", ["1", "17", "0", "-3"])
def test_bits_out_of_range(capsys, out_dir, option, value):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, option, value))
    assert f"{option} {value} is out of range" in msg and "2..16" in msg


@pytest.mark.parametrize("option", ["--wbits", "--abits"])
def test_bits_not_a_number(capsys, out_dir, option):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, option, "eight"),
                       argparse_option=option)
    assert "'eight' is not a whole number" in msg


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "fast"])
def test_bad_clock_mhz(capsys, out_dir, value):
    """--clock-mhz 0 used to raise a ValueError traceback (status 1) after the output directory
    was created, and nan was accepted and written into the Vivado and Quartus constraints."""
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--clock-mhz", value),
                       argparse_option="--clock-mhz")
    assert repr(value) in msg and "positive" in msg


def test_negative_seed(capsys, out_dir):
    """--seed -1 used to end in numpy's ValueError traceback, status 1."""
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--seed", "-1"),
                       argparse_option="--seed")
    assert "'-1'" in msg


@pytest.mark.parametrize("argv", [[], ["compile"], ["compile", "m.onnx", "--pe", "4x4", "--x"]])
def test_usage_errors_are_one_line(capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, (rc, out, err)
    assert err.startswith("error: ") and "--help)" in err


def test_samples_zero(capsys, out_dir):
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--samples", "0"),
                 argparse_option="--samples")


def test_input_shape_format(capsys, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--input-shape", "1,64"),
                       argparse_option="--input-shape")
    assert "NAME=D0,D1" in msg


# --- bad calibration / evaluation data --------------------------------------------------------

def test_calib_wrong_trailing_shape(capsys, tmp_path, out_dir):
    npz = tmp_path / "c.npz"
    np.savez(npz, x_calib=np.zeros((4, 63), np.float32))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", npz))
    assert "[4, 63]" in msg and "'input' [1, 64]" in msg and "[S, 64]" in msg


def test_calib_missing_keys(capsys, tmp_path, out_dir):
    npz = tmp_path / "c.npz"
    np.savez(npz, images=np.zeros((4, 64), np.float32))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", npz))
    assert "[images]" in msg and "x_calib (or x)" in msg


@pytest.mark.parametrize("kind", ["text", "npy", "missing"])
def test_calib_not_an_npz(capsys, tmp_path, out_dir, kind):
    path = tmp_path / f"calib.{kind}"
    if kind == "text":
        path.write_text("1,2,3\n")
    elif kind == "npy":
        np.save(path, np.zeros((4, 64), np.float32))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", path))
    assert str(path) in msg
    assert ("no such file" if kind == "missing" else "is not an .npz archive") in msg


def test_calib_not_numbers(capsys, tmp_path, out_dir):
    npz = tmp_path / "c.npz"
    np.savez(npz, x_calib=np.full((4, 64), "a"))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", npz))
    assert "x_calib" in msg and "expected numbers" in msg


def test_calib_not_finite(capsys, tmp_path, out_dir):
    npz = tmp_path / "c.npz"
    np.savez(npz, x_calib=np.full((4, 64), np.nan, np.float32))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", npz))
    assert "NaN" in msg


def test_eval_missing_keys(capsys, tmp_path, out_dir):
    np.savez(tmp_path / "e.npz", x_test=np.zeros((4, 64), np.float32))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--eval", tmp_path / "e.npz"))
    assert "x_test and y_test (or x and y)" in msg


def test_eval_wrong_shape_writes_nothing(capsys, tmp_path, out_dir):
    # accuracy is computed after everything else: it must still fail before the output exists
    np.savez(tmp_path / "e.npz", x_test=np.zeros((4, 63), np.float32), y_test=np.zeros(4))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--eval", tmp_path / "e.npz"))
    assert "[4, 63]" in msg


def test_eval_labels_do_not_match_samples(capsys, tmp_path, out_dir):
    np.savez(tmp_path / "e.npz", x_test=np.zeros((4, 64), np.float32), y_test=np.zeros(3))
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--eval", tmp_path / "e.npz"))
    assert "4 samples but 3 labels" in msg


# --- output directory ------------------------------------------------------------------------

def test_non_empty_output_needs_force(capsys, out_dir):
    out_dir.mkdir()
    (out_dir / "mine.txt").write_text("keep me")
    rc, out, err = run(capsys, *compile_args(MODEL, out_dir))
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == f"error: output directory {out_dir} is not empty; pass --force to " \
                          "overwrite"
    assert [p.name for p in out_dir.iterdir()] == ["mine.txt"]
    assert (out_dir / "mine.txt").read_text() == "keep me"
    (out_dir / "rom").mkdir()
    (out_dir / "rom" / "stale.hex").write_text("0\n")
    rc, out, err = run(capsys, *compile_args(MODEL, out_dir, "--force", "-q"))
    assert (rc, err) == (0, "")
    assert (out_dir / "manifest.json").is_file()
    # --force replaces compile's own outputs (a stale ROM goes) and keeps the user's files
    assert not (out_dir / "rom" / "stale.hex").exists()
    assert (out_dir / "mine.txt").read_text() == "keep me"


def test_empty_output_dir_is_fine(capsys, out_dir):
    out_dir.mkdir()
    assert run(capsys, *compile_args(MODEL, out_dir, "-q"))[0] == 0


def test_output_is_a_file(capsys, tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    rc, _, err = run(capsys, *compile_args(MODEL, f))
    assert rc == 2 and err.strip() == f"error: output {f} exists and is not a directory"
    assert f.read_text() == "x"


def test_output_under_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "out"
    rc, _, err = run(capsys, *compile_args(MODEL, out))
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: cannot create output directory {out}")


# --- help, inspect, simulate -----------------------------------------------------------------

@pytest.mark.parametrize("command, options", [
    ("compile", ["--pe", "-o", "--wbits", "--abits", "--calib", "--eval", "--samples", "--seed",
                 "--input-shape", "--force", "--quiet"]),
    ("simulate", ["--seed", "--samples", "--no-gaps", "--waves"]),
    ("inspect", ["--after", "--wbits", "--abits", "--calib", "--input-shape"]),
])
def test_help(capsys, command, options):
    rc, out, err = run(capsys, command, "--help")
    assert rc == 0 and err == ""
    assert out.startswith(f"usage: edgehls {command}")
    for option in options:
        assert option in out, option


def test_top_level_help_lists_commands(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and all(c in out for c in ("compile", "simulate", "inspect"))


@pytest.mark.parametrize("after, ops", [
    ("frontend", ["Gemm(", "Relu()", "Softmax("]),
    ("canonicalize", ["Dense(relu=True)", "Dense(relu=False)"]),
    ("quantize", ["QDense("]),
])
def test_inspect_after(capsys, after, ops):
    rc, out, err = run(capsys, "inspect", MODEL, "--after", after)
    assert rc == 0 and err == ""
    assert out.startswith("graph digits_mlp")
    for name in ("input", "fc1", "fc2", "fc3"):
        assert f"\n  {name} " in out
    assert "input[1, 64]" in out and "fc1[1, 40]" in out
    for op in ops:
        assert op in out, (op, out)
    assert ("Softmax(" in out) == (after == "frontend")


def test_inspect_default_is_quantize(capsys):
    assert run(capsys, "inspect", MODEL) == run(capsys, "inspect", MODEL, "--after", "quantize")


def test_inspect_bogus_pass(capsys, tmp_path):
    msg = expect_error(capsys, tmp_path / "none", "inspect", MODEL, "--after", "bogus")
    assert msg == "error: --after 'bogus': no such pass; passes: frontend, canonicalize, quantize"


def test_inspect_bad_model(capsys, tmp_path):
    model = save(unsupported_op_model("Tanh"), tmp_path / "s.onnx")
    msg = expect_error(capsys, tmp_path / "none", "inspect", model)
    assert "'tanh1' (Tanh)" in msg


@pytest.mark.parametrize("make", [False, True])
def test_simulate_without_manifest(capsys, tmp_path, make):
    design = tmp_path / "design"
    if make:
        design.mkdir()
    rc, out, err = run(capsys, "simulate", design)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.strip() == (f"error: {design} is not an edgehls design directory (no "
                           "manifest.json); run `edgehls compile` first")
    assert design.exists() == make and (not make or not any(design.iterdir()))


def test_console_script_exit_status(tmp_path):
    """The real entry point, in a subprocess: status 2, one line, no traceback, nothing written."""
    script = Path(sys.executable).with_name("edgehls")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "edgehls.cli"]
    p = subprocess.run([*cmd, "compile", str(tmp_path / "missing.onnx"), "--pe", "4x4", "-o",
                        "out"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p
    assert p.stdout == ""
    assert p.stderr == f"error: model file {tmp_path / 'missing.onnx'} does not exist\n"
    assert not (tmp_path / "out").exists()


# --- a good compile --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits model compiled once for the read-only checks below."""
    out = tmp_path_factory.mktemp("digits") / "build"
    try:
        rc = cli.main(["compile", str(MODEL), "--pe", "4x4", "-o", str(out), "--calib",
                       str(DATA), "--eval", str(DATA), "--samples", "16"])
    except SystemExit as e:
        pytest.fail(f"argparse exited {e.code}")
    assert rc == 0
    return out


def test_compile_summary(capsys, tmp_path):
    out = tmp_path / "build"
    rc, text, err = run(capsys, *compile_args(MODEL, out, "--calib", DATA, "--eval", DATA))
    assert rc == 0 and err == ""
    assert text.startswith(f"compiled {MODEL} -> {out}/ in ")
    assert "3 layers" in text and "4x4 array" in text and "predicted" in text
    assert "accuracy on 450 samples: float " in text and "quantized " in text
    assert "Softmax" in text  # the note that the final Softmax is left to the host


def test_compile_writes_design_section_6_files(digits):
    out = digits
    for d in ("rtl", "rom", "golden", "synth"):
        assert (out / d).is_dir(), d
    for f in ("manifest.json", "report.md", "report.json", "filelist.f", "Makefile",
              "golden/inputs.npy", "golden/inputs_q.npy", "golden/outputs_q.npy",
              "rtl/edgehls_top.v", "synth/yosys.ys"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert any((out / "rom").iterdir())
    rtl = [line for line in (out / "filelist.f").read_text().splitlines() if line]
    assert rtl and all((out / f).is_file() for f in rtl)
    assert "rtl/edgehls_top.v" in rtl
    assert "sim:" in (out / "Makefile").read_text() and "synth:" in (out / "Makefile").read_text()
    assert (out / "report.md").read_text().startswith("# edgehls report: model.onnx")


def test_compile_report_json(digits):
    rep = json.loads((digits / "report.json").read_text())
    assert len(rep["layers"]) == 3
    for layer in rep["layers"]:
        assert LAYER_KEYS <= layer.keys(), LAYER_KEYS - layer.keys()
    assert [(ly["M"], ly["K"], ly["N"]) for ly in rep["layers"]] == \
        [(1, 64, 40), (1, 40, 24), (1, 24, 10)]
    for key in ("macs", "tiles", "skipped_tiles", "weight_bits_raw", "weight_bits_stored"):
        assert rep["total"][key] == sum(ly[key] for ly in rep["layers"]), key
    # the total adds the pipeline fill/drain the per-layer figures leave out
    assert rep["total"]["predicted_cycles"] >= sum(ly["predicted_cycles"] for ly in rep["layers"])
    assert rep["accuracy"]["samples"] == 450 and rep["accuracy"]["quantized"] > 0.8


def test_compile_manifest(digits):
    m = json.loads((digits / "manifest.json").read_text())
    for entry in (*m["inputs"], *m["outputs"]):
        assert IO_KEYS <= entry.keys(), IO_KEYS - entry.keys()
    assert m["inputs"][0]["shape"] == [1, 64] and m["outputs"][0]["shape"] == [1, 10]
    assert m["golden"]["samples"] == 16
    out = digits
    assert all((out / f).is_file() for group in m["files"].values() for f in group)


def _without_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model up to its logits: drop the final Softmax and expose its input as the output."""
    g = model.graph
    (sm,) = [n for n in g.node if n.op_type == "Softmax"]
    assert sm.output[0] == g.output[0].name
    g.node.remove(sm)
    g.output[0].name = sm.input[0]
    return model


def test_compile_golden_matches_onnxruntime_logits(digits):
    """outputs_q * scale approximates onnxruntime on golden/inputs.npy.

    The compiler drops the final Softmax (the host applies it), so the reference is the same
    model with its Softmax removed: onnxruntime's logits.
    """
    out = digits
    m = json.loads((out / "manifest.json").read_text())
    x = np.load(out / "golden" / "inputs.npy")
    y_q = np.load(out / "golden" / "outputs_q.npy")
    x_q = np.load(out / "golden" / "inputs_q.npy")
    assert x.shape == (16, 1, 64) and y_q.shape == (16, 1, 10) and x_q.shape == x.shape
    assert np.issubdtype(y_q.dtype, np.integer) and np.issubdtype(x_q.dtype, np.integer)
    np.testing.assert_array_equal(x, np.load(DATA)["x_calib"][:16, None, :])
    x_scale = m["inputs"][0]["scale"]
    assert np.abs(x_q * x_scale - x).max() <= x_scale / 2 + 1e-6

    sess = ort.InferenceSession(_without_softmax(onnx.load(MODEL)).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    ref = np.concatenate([sess.run(None, {"input": xi})[0] for xi in x])
    got = (y_q * m["outputs"][0]["scale"]).reshape(ref.shape)
    span = np.abs(ref).max()
    assert np.abs(got - ref).max() <= 0.05 * span, np.abs(got - ref).max() / span
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).mean() >= 0.9


def test_compile_is_deterministic(capsys, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run(capsys, *compile_args(MODEL, out, "--calib", DATA, "-q"))[0] == 0
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
