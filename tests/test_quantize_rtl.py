"""Quantization options in RTL (issue 6): real scales (integer multiplier and shift, residual
Adds with non-power-of-two weights), mixed precision (a layer at its own widths on an array
built for the widest), per-tensor scales and each calibration method. Every case compiles,
simulates bit-exactly in Icarus and runs the predicted number of cycles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cnn_models import BUILDERS, SHAPES
from models import save
from test_e2e import compile_and_simulate

from edgehls import pipeline

DIGITS_CNN = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn"
MIXED = {"layers": {"/conv2/Conv": {"wbits": 4, "abits": 4}, "/conv1/Conv": {"abits": 6}}}


def _calib(name: str) -> np.ndarray:
    return np.random.default_rng(3).uniform(-1, 1, (16, *SHAPES[name][0][1:])).astype(np.float32)


CASES = [
    ("resnet8_small", (4, 4), dict(scale="mult", calibrate="mse")),
    ("ds_cnn_small", (4, 4), dict(scale="mult", per_channel=False, calibrate="percentile:99")),
    ("resnet8_small", (3, 5), dict(wbits=6, abits=5, calibrate="mse")),
]


@pytest.mark.parametrize(("name", "pe", "kw"), [
    pytest.param(*c, id=f"{c[0]}-{c[1][0]}x{c[1][1]}-{i}",
                 marks=() if i == 0 else pytest.mark.slow) for i, c in enumerate(CASES)])
def test_scales_and_calibration(tmp_path: Path, name: str, pe: tuple[int, int], kw: dict
                                ) -> None:
    model = save(BUILDERS[name](0), tmp_path / "model.onnx")
    opts = pipeline.Options(pe=pe, samples=2, calib=_calib(name), **kw)
    compile_and_simulate(model, tmp_path / "design", f"{name}(0) {kw}", opts)


@pytest.mark.parametrize("scale", ["pow2", pytest.param("mult", marks=pytest.mark.slow)])
def test_mixed_precision_digits_cnn(tmp_path: Path, scale: str) -> None:
    data = np.load(DIGITS_CNN / "data.npz")
    opts = pipeline.Options(pe=(4, 4), samples=2, calib=data["x_calib"], scale=scale,
                            precision=MIXED)
    compile_and_simulate(DIGITS_CNN / "model.onnx", tmp_path / "design",
                         f"digits_cnn mixed {scale}", opts)
    rep = json.loads((tmp_path / "design" / "report.json").read_text())
    bits = {ly["name"]: (ly["wbits"], ly["abits"]) for ly in rep["layers"]}
    assert bits["/conv2/Conv"] == (4, 4) and bits["/conv1/Conv"] == (8, 6)
    assert bits["/fc/Gemm"] == (8, 8) and rep["quantization"]["mixed_precision"]
