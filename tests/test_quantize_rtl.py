"""Quantization options in RTL (issue 6): real scales (integer multiplier and shift, residual
Adds with non-power-of-two weights), mixed precision (a layer at its own widths on an array
built for the widest), per-tensor scales and each calibration method. Every case compiles,
simulates bit-exactly in Icarus and runs the predicted number of cycles; a mixed-precision
design's weight ROM stores each layer at its own width (decoded back from rom/ and recounted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cnn_models import BUILDERS, SHAPES
from models import mlp, save
from test_e2e import compile_and_simulate
from test_encode import rom_layer_bits

from edgehls import encode, frontend, pipeline, romgen, tiler

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


def check_rom_widths(model: Path, out: Path, opts: pipeline.Options, want: dict[str, int]
                     ) -> dict[str, dict]:
    """rom/weights.hex of the compiled design decodes back to every layer's weights; each layer
    named in ``want`` stores ``want[name]`` bits a weight (its raw rows C elements of that
    width, its bitmap rows a mask plus that width per non-zero) and the report says so."""
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
    s = tiler.schedule(g, *opts.pe)
    p = romgen.hw_params(g, s, opts.encode)
    words = [int(x, 16) for x in (out / "rom" / "weights.hex").read_text().split()]
    bits = rom_layer_bits(g, s, p, words)
    rep = json.loads((out / "report.json").read_text())
    layers = {ly["name"]: ly for ly in rep["layers"]}
    assert [ly["weight_bits_stored"] for ly in rep["layers"]] == bits
    assert rep["total"]["weight_bits_stored"] == len(words) * p.ROM_W == sum(bits)
    zeros = romgen.zero_elements(g, p)
    rows = encode.padded_rows(romgen.weight_blocks(g, s, p), zeros)
    for i, ly in enumerate(rep["layers"]):
        if ly["name"] not in want or i == len(bits) - 1:  # the last holds the word padding
            continue
        w = want[ly["name"]]
        mine = [row for layer, row in rows if layer == i]
        nnz = sum(int((row != zeros[i]).sum()) for row in mine)
        flags = sum(int((row != zeros[i]).any()) for row in mine)
        assert ly["element_bits"] == w, ly["name"]
        assert ly["weight_bits_stored"] == {
            "raw": len(mine) * s.C * w, "bitmap": len(mine) * s.C + nnz * w,
            "bitmap-z": len(mine) + flags * s.C + nnz * w}[ly["encoding"]], ly["name"]
    return layers


@pytest.mark.parametrize(("scale", "pe"), [
    ("pow2", (4, 4)), pytest.param("mult", (4, 4), marks=pytest.mark.slow),
    pytest.param("pow2", (5, 3), marks=pytest.mark.slow)], ids=["pow2", "mult", "pow2-5x3"])
def test_mixed_precision_digits_cnn(tmp_path: Path, scale: str, pe: tuple[int, int]) -> None:
    data = np.load(DIGITS_CNN / "data.npz")
    opts = pipeline.Options(pe=pe, samples=2, calib=data["x_calib"], scale=scale,
                            precision=MIXED)
    compile_and_simulate(DIGITS_CNN / "model.onnx", tmp_path / "design",
                         f"digits_cnn mixed {scale}", opts)
    rep = json.loads((tmp_path / "design" / "report.json").read_text())
    bits = {ly["name"]: (ly["wbits"], ly["abits"]) for ly in rep["layers"]}
    assert bits["/conv2/Conv"] == (4, 4) and bits["/conv1/Conv"] == (8, 6)
    assert bits["/fc/Gemm"] == (8, 8) and rep["quantization"]["mixed_precision"]
    # the 4-bit layer stores 4 bits a weight, the 8-bit ones 8
    layers = check_rom_widths(DIGITS_CNN / "model.onnx", tmp_path / "design", opts,
                              {"/conv2/Conv": 4, "/conv1/Conv": 8, "/fc/Gemm": 8})
    conv2 = layers["/conv2/Conv"]
    assert conv2["weight_bits_stored"] <= conv2["weight_bits_unencoded"] // 2


NARROW = [({"fc0": 5, "fc1": 8}, ("raw", "raw")), ({"fc0": 7, "fc1": 2}, ("raw", "bitmap"))]


@pytest.mark.parametrize(("widths", "formats"), NARROW,
                         ids=["fc0w5-fc1w8", "fc0w7-fc1w2"])
def test_mixed_precision_narrow_raw_rows(tmp_path: Path, widths: dict, formats: tuple,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense MLP whose narrow layer is cheapest raw: --encode auto (its 25 % threshold off,
    as this toy saves less) stores its rows raw at its own width (5 bits in an 8-bit design),
    a 2-bit layer as bitmaps; bit-exact in Icarus."""
    monkeypatch.setattr(encode, "AUTO_MIN_SAVING", 0.0)
    model = save(mlp([16, 8, 4], seed=3), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(4, 4), samples=2,
                            precision={"layers": {k: {"wbits": v} for k, v in widths.items()}})
    compile_and_simulate(model, tmp_path / "design", f"mlp mixed {widths}", opts)
    layers = check_rom_widths(model, tmp_path / "design", opts, {"fc0": widths["fc0"]})
    assert tuple(ly["encoding"] for ly in layers.values()) == formats
    assert [ly["element_bits"] for ly in layers.values()] == [widths["fc0"], widths["fc1"]]
    fc0 = layers["fc0"]
    assert fc0["weight_bits_stored"] == (
        fc0["weight_bits_unencoded"] * widths["fc0"] // max(widths.values()))
