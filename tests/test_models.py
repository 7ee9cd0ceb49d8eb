"""The test model builders (tests/models.py), bench/models.py and the digits example."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import (
    STYLES,
    UNSUPPORTED_NODE,
    checker_failing_model_bytes,
    dynamic_dim_model,
    matmul_model,
    mlp,
    random_mlp,
    random_mlp_args,
    save,
    unsupported_op_model,
)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits_mlp"


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(123).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("batch", [1, 3, "N"])
def test_mlp_runs_with_expected_shape(style: str, batch: int | str) -> None:
    model = mlp([64, 40, 24, 10], seed=1, batch=batch, style=style)
    m = 2 if batch == "N" else batch
    assert run(model, rand(m, 64)).shape == (m, 10)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param if batch == "N" else dims[0].dim_value) == batch


def test_mlp_styles_compute_the_same_function() -> None:
    x = rand(4, 33)
    outs = [run(mlp([33, 17, 1, 5], seed=7, batch=4, style=s, relu_last=True), x) for s in STYLES]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-5)


def test_mlp_gemm_t0_has_non_unit_alpha_beta() -> None:
    attrs = {(a.name, a.f) for n in mlp([8, 8, 8], 0, style="gemm_t0").graph.node
             for a in n.attribute if a.name in ("alpha", "beta")}
    assert ("alpha", 0.5) in attrs and ("beta", 2.0) in attrs


def test_mlp_relu_last_and_softmax() -> None:
    ops = [n.op_type for n in mlp([8, 6, 4], 0, relu_last=True, softmax=True).graph.node]
    assert ops == ["Gemm", "Relu", "Gemm", "Relu", "Softmax"]
    out = run(mlp([8, 6, 4], 0, softmax=True), rand(1, 8))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_mlp_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="style"):
        mlp([4, 4], 0, style="conv")
    with pytest.raises(ValueError, match="sizes"):
        mlp([4], 0)


def test_random_mlp_covers_the_space_and_runs() -> None:
    seen_k1 = seen_n1 = False
    depths, styles = set(), set()
    for seed in range(60):
        args = random_mlp_args(seed)
        sizes = args["sizes"]
        assert 1 <= len(sizes) - 1 <= 4 and all(1 <= s <= 70 for s in sizes), args
        seen_k1 |= 1 in sizes[:-1]
        seen_n1 |= sizes[-1] == 1 or 1 in sizes[1:-1]
        depths.add(len(sizes) - 1)
        styles.add(args["style"])
        assert run(random_mlp(seed), rand(1, sizes[0])).shape == (1, sizes[-1]), args
    assert seen_k1 and seen_n1 and depths == {1, 2, 3, 4} and styles == set(STYLES)


def test_matmul_model() -> None:
    model = matmul_model(5, 7, 3, seed=0)
    x = rand(5, 7)
    w = onnx.numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_allclose(run(model, x), x @ w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda s: mlp([64, 40, 24, 10], s, style="gemm_t0"),
    random_mlp,
    lambda s: matmul_model(4, 6, 8, s),
])
def test_builders_are_deterministic(build) -> None:
    assert build(3).SerializeToString() == build(3).SerializeToString()
    assert build(3).SerializeToString() != build(4).SerializeToString()


def test_save_round_trips(tmp_path: Path) -> None:
    model = mlp([4, 3], 0)
    path = save(model, tmp_path / "sub" / "m.onnx")
    assert onnx.load(path).SerializeToString() == model.SerializeToString()


def test_bench_matmul_256_matches_the_test_builder(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = bench.matmul_256(tmp_path / "mm.onnx")
    assert model.SerializeToString() == matmul_model(256, 256, 256, seed=0).SerializeToString()
    assert (tmp_path / "mm.onnx").read_bytes() == model.SerializeToString()
    assert run(model, rand(256, 256)).shape == (256, 256)


@pytest.mark.parametrize("op", sorted(UNSUPPORTED_NODE))
def test_unsupported_op_model_is_valid_onnx(op: str) -> None:
    model = unsupported_op_model(op)
    node = next(n for n in model.graph.node if n.name == UNSUPPORTED_NODE[op])
    assert node.op_type == op
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert run(model, rand(*shape)).shape == (1, 10)


def test_dynamic_dim_model_has_symbolic_features() -> None:
    model = dynamic_dim_model()
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "F"]
    assert run(model, rand(2, 16)).shape == (2, 10)


def test_checker_failing_model_parses_but_fails_the_checker() -> None:
    model = onnx.load_from_string(checker_failing_model_bytes())
    with pytest.raises(onnx.checker.ValidationError, match="missing"):
        onnx.checker.check_model(model)


def test_digits_example_contract_and_accuracy() -> None:
    model = onnx.load(DIGITS / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "input" and dims[0].dim_param == "N"
    assert dims[1].dim_value == 64 and model.graph.node[-1].op_type == "Softmax"
    with np.load(DIGITS / "data.npz") as data:
        assert sorted(data.files) == ["x_calib", "x_test", "y_test"]
        x_calib, x_test, y_test = data["x_calib"], data["x_test"], data["y_test"]
    assert x_calib.dtype == x_test.dtype == np.float32 and y_test.dtype == np.int64
    assert x_calib.shape[1] == x_test.shape[1] == 64 and len(x_test) == len(y_test)
    assert 0.0 <= x_test.min() and x_test.max() <= 1.0
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pred = sess.run(None, {"input": x_test})[0].argmax(axis=1)
    assert np.mean(pred == y_test) >= 0.93
