"""--calibrate, --scale, --per-tensor, --precision and --input-range on the command line: the
report says how the model was quantized, and every bad value is one `error:` line with exit
status 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import DATA, MODEL, compile_args, expect_error, run
from test_compress_cli import config as precision  # writes a JSON/YAML file the same way


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_report_states_the_quantization(capsys, tmp_path, out_dir):
    cfg = precision(tmp_path, "layers:\n  fc1: {wbits: 8, abits: 8}\n  'fc*': {wbits: 4}\n",
                    ".yaml")
    rc, out, err = run(capsys, *compile_args(MODEL, out_dir, "--calib", DATA, "--eval", DATA,
                                             "--calibrate", "mse", "--scale", "mult",
                                             "--per-tensor", "--precision", cfg))
    assert rc == 0, err
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep["quantization"] == {"scale": "mult", "calibration": "mse", "per_channel": False,
                                   "mixed_precision": True}
    assert [(ly["wbits"], ly["abits"]) for ly in rep["layers"]] == [(8, 8), (4, 8), (4, 8)]
    assert rep["accuracy"]["quantized"] > 0.9
    man = json.loads((out_dir / "manifest.json").read_text())
    assert man["numerics"]["scale"] == "mult" and man["numerics"]["per_channel"] is False
    md = (out_dir / "report.md").read_text()
    assert "real scales (multiplier and shift), weights per tensor, calibration mse" in md
    assert "| fc2 (dense) | 4/8 |" in md  # the layer kind, since report.json has one


def test_no_calibration_data_warns(capsys, out_dir):
    rc, out, err = run(capsys, *compile_args(MODEL, out_dir, "--input-range", "0,16"))
    assert rc == 0
    assert err.startswith("warning: no --calib data") and "[0, 16]" in err
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep["quantization"]["calibration"] == "random inputs"
    assert any("uniform in [0, 16]" in n for n in rep["notes"])


@pytest.mark.parametrize(("args", "msg"), [
    (["--calibrate", "kl"], "error: --calibrate 'kl' is not a calibration method"),
    (["--calibrate", "percentile:120"], "the percentile must be a number in (0, 100]"),
])
def test_bad_calibrate(capsys, out_dir, args, msg):
    assert msg in expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, *args))


@pytest.mark.parametrize(("option", "value"), [("--scale", "log"), ("--input-range", "1,0"),
                                               ("--input-range", "x")])
def test_bad_option_format(capsys, out_dir, option, value):
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, option, value),
                 argparse_option=option)


@pytest.mark.parametrize(("cfg", "msg"), [
    ({"layers": {"conv9": {"wbits": 4}}}, "--precision names 'conv9', which matches no layer; "
     "the layers are: fc1, fc2, fc3"),
    ({"fc1": {"wbits": 1}}, "--precision 'fc1' wbits 1 is out of range: choose 2..16 bits"),
    ({"fc1": {"abits": 17}}, "--precision 'fc1' abits 17 is out of range"),
    ({"fc1": {"bits": 4}}, "layer 'fc1' must map to {wbits: B, abits: B}"),
    ({"fc1": {"wbits": "four"}}, "layer 'fc1' wbits 'four' is not a whole number of bits"),
    ("[1, 2]", "expected a mapping like"),
    ("{", "is not valid JSON"),
])
def test_bad_precision_file(capsys, tmp_path, out_dir, cfg, msg):
    path = precision(tmp_path, cfg)
    assert msg in expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--calib", DATA,
                                                              "--precision", path))


def test_missing_precision_file(capsys, tmp_path, out_dir):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--precision",
                                                      tmp_path / "nope.yaml"))
    assert msg.startswith("error: cannot read --precision")
