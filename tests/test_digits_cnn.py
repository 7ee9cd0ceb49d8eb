"""examples/digits_cnn: the committed PyTorch export is the documented CNN, onnxruntime reaches
its accuracy without torch, edgehls compiles it at 8x8 within 1.5 points of float, and two
samples run bit-exactly in Icarus with measured cycles equal to predicted. The slow test reruns
train.py (it needs torch, so it skips where torch is absent) and compares bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgehls import pipeline, simulate

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn"
MODEL, DATA = EXAMPLE / "model.onnx", EXAMPLE / "data.npz"
SIM_SAMPLES = 2


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return pipeline.load_npz(DATA, ("x_calib", "x_test", "y_test"))


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory, data: dict[str, np.ndarray]
           ) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("digits_cnn") / "design"
    opts = pipeline.Options(pe=(8, 8), samples=SIM_SAMPLES, calib=data["x_calib"],
                            eval_x=data["x_test"], eval_y=data["y_test"])
    return out, pipeline.compile_model(MODEL, out, opts)


def test_data_keys_and_shapes():
    with np.load(DATA) as z:
        assert sorted(z.files) == ["x_calib", "x_test", "y_test"]
        assert z["x_calib"].shape == (256, 1, 8, 8) and z["x_calib"].dtype == np.float32
        assert z["x_test"].shape == (450, 1, 8, 8) and z["x_test"].dtype == np.float32
        assert z["y_test"].shape == (450,) and z["y_test"].dtype == np.int64
        assert 0.0 <= z["x_test"].min() and z["x_test"].max() <= 1.0


def test_model_is_the_documented_cnn():
    m = onnx.load(MODEL)
    onnx.checker.check_model(m)
    block = ["Conv", "BatchNormalization", "Relu", "MaxPool"]
    assert [n.op_type for n in m.graph.node] == [*block, *block, "Flatten", "Gemm"]
    assert m.opset_import[0].version == 17
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "input" and out.name == "logits"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 1, 8, 8]


def test_onnxruntime_accuracy(data: dict[str, np.ndarray]):
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": data["x_test"]})[0]
    assert logits.shape == (450, 10)
    assert np.mean(logits.argmax(axis=1) == data["y_test"]) >= 0.95


def test_int8_within_1_5_points_of_float(design: tuple[Path, dict]):
    acc = design[1]["accuracy"]
    assert acc["float"] >= 0.95
    assert acc["quantized"] >= acc["float"] - 0.015


def test_rtl_bit_exact(design: tuple[Path, dict]):
    out, report = design
    result = simulate.simulate(out, seed=1, gaps=0.3)
    assert result["passed"] and result["mismatches"] == 0, result
    assert result["samples"] == SIM_SAMPLES
    assert result["cycles"] == result["predicted_cycles"] == report["total"]["predicted_cycles"]


@pytest.mark.slow
def test_train_is_deterministic(tmp_path: Path):
    pytest.importorskip("torch")
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("model.onnx", "data.npz"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
