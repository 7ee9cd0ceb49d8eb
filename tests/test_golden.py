"""Golden executors: float path against onnxruntime, integer path against numerics, batches."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgehls import golden, ir, numerics
from edgehls.errors import DataError, PassError

RNG = np.random.default_rng(0)


def _ort(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list[int],
         out_shape: list[int], x: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def _graph(in_shape: tuple[int, ...]) -> ir.Graph:
    g = ir.Graph("t")
    g.add_tensor(ir.Tensor("x", in_shape))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    g.inputs = ["x"]
    return g


def _node(g: ir.Graph, name: str, op: ir.Op, src: str, shape: tuple[int, ...],
          consts: dict[str, np.ndarray] | None = None) -> str:
    g.add_tensor(ir.Tensor(name, shape))
    roles = tuple((r, g.add_const(f"{name}.{r}", v)) for r, v in (consts or {}).items())
    g.add_node(ir.Node(name, op, (src,), (name,), roles))
    g.outputs = [name]
    return name


@pytest.mark.parametrize("m", [1, 4])
def test_dense_matches_gemm_trans_b(m: int) -> None:
    w = RNG.normal(size=(6, 10)).astype(np.float32)  # ONNX B is [N, K] with transB=1
    c = RNG.normal(size=6).astype(np.float32)
    x = RNG.normal(size=(m, 10)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["y"])]
    ref = _ort(nodes, {"w": w, "c": c}, [m, 10], [m, 6], x)
    g = _graph((m, 10))
    _node(g, "fc", ir.Dense(relu=True), "x", (m, 6), {"weight": w.T, "bias": c})
    g.verify()
    np.testing.assert_allclose(golden.run_float(g, x), ref, atol=1e-5)
    # the ONNX-level ops straight from a frontend give the same
    g2 = _graph((m, 10))
    h = _node(g2, "h", ir.Gemm(trans_b=True), "x", (m, 6), {"B": w, "C": c})
    _node(g2, "y", ir.Relu(), h, (m, 6))
    np.testing.assert_allclose(golden.run_float(g2, x), ref, atol=1e-5)


@pytest.mark.parametrize("m", [1, 3])
def test_dense_chain_matches_matmul_add(m: int) -> None:
    w1, b1 = RNG.normal(size=(8, 5)), RNG.normal(size=5)
    w2, b2 = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    x = RNG.normal(size=(m, 8))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"]),
             helper.make_node("Add", ["a", "b1"], ["r"]),
             helper.make_node("Relu", ["r"], ["h"]),
             helper.make_node("MatMul", ["h", "w2"], ["a2"]),
             helper.make_node("Add", ["a2", "b2"], ["y"])]
    ref = _ort(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, [m, 8], [m, 3], x)
    g = _graph((m, 8))
    h = _node(g, "fc1", ir.Dense(relu=True), "x", (m, 5), {"weight": w1, "bias": b1})
    _node(g, "fc2", ir.Dense(relu=False), h, (m, 3), {"weight": w2, "bias": b2})
    np.testing.assert_allclose(golden.run_float(g, x), ref, atol=1e-5)
    g2 = _graph((m, 8))
    t = _node(g2, "a", ir.MatMul(), "x", (m, 5), {"B": w1})
    t = _node(g2, "r", ir.Add(), t, (m, 5), {"B": b1})
    t = _node(g2, "h", ir.Relu(), t, (m, 5))
    t = _node(g2, "a2", ir.MatMul(), t, (m, 3), {"B": w2})
    _node(g2, "y", ir.Add(), t, (m, 3), {"B": b2})
    np.testing.assert_allclose(golden.run_float(g2, x), ref, atol=1e-5)
    assert set(golden.run_float_all(g2, x)) == {"x", "a", "r", "h", "a2", "y"}


def test_flatten_reshape_identity_softmax() -> None:
    w, b = RNG.normal(size=(12, 4)), RNG.normal(size=4)
    x = RNG.normal(size=(1, 3, 4))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["g"]),
             helper.make_node("Reshape", ["g", "s"], ["r"]),
             helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Softmax", ["i"], ["y"], axis=-1)]
    inits = {"w": w, "b": b, "s": np.array([2, 2])}
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(v.astype(np.int64 if k == "s" else np.float32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x.astype(np.float32)})[0]
    g = _graph((1, 3, 4))
    t = _node(g, "f", ir.Flatten(axis=1), "x", (1, 12))
    t = _node(g, "g", ir.Gemm(), t, (1, 4), {"B": w, "C": b})
    t = _node(g, "r", ir.Reshape(shape=(2, 2)), t, (2, 2))
    t = _node(g, "i", ir.Identity(), t, (2, 2))
    _node(g, "y", ir.Softmax(axis=-1), t, (2, 2))
    np.testing.assert_allclose(golden.run_float(g, x), ref, atol=1e-5)


def _mlp(in_shape: tuple[int, ...]) -> ir.Graph:
    g = _graph(in_shape)
    _node(g, "fc", ir.Dense(relu=True), "x", (int(np.prod(in_shape)) // 6, 2),
          {"weight": RNG.normal(size=(6, 2)), "bias": RNG.normal(size=2)})
    return g


def test_sample_conventions() -> None:
    g = _mlp((1, 6))
    data = RNG.normal(size=(5, 6))
    ys = golden.run_float_samples(g, data)
    assert ys.shape == (5, 1, 2)
    np.testing.assert_array_equal(ys, golden.run_float_samples(g, data.reshape(5, 1, 6)))
    for s in range(5):  # vectorised == one at a time
        np.testing.assert_allclose(ys[s], golden.run_float(g, data[s]), rtol=0, atol=1e-12)
    assert golden.run_float_all_samples(g, data)["x"].shape == (5, 1, 6)
    g4 = _mlp((4, 6))  # M = 4 rows per inference: [S, 6] would be ambiguous, so rejected
    assert golden.run_float_samples(g4, RNG.normal(size=(3, 4, 6))).shape == (3, 4, 2)
    with pytest.raises(DataError, match=r"\[3, 6\] does not match model input 'x' \[4, 6\]"):
        golden.as_samples(g4, RNG.normal(size=(3, 6)))
    with pytest.raises(DataError, match="holds no samples"):
        golden.as_samples(g, np.zeros((0, 6)))
    with pytest.raises(DataError, match=r"input of shape \[7\]"):
        golden.run_float(g, np.zeros(7))


def test_run_int_uses_numerics() -> None:
    g = _graph((2, 3))
    g.set_tensor("x", q=ir.QFormat(8, True, 4))
    w, b = RNG.integers(-127, 128, size=(3, 4)), RNG.integers(-500, 500, size=4)
    mult, shift = np.array([1, 1, 2, 1]), np.array([3, 0, 0, 5])
    _node(g, "fc", ir.QDense(relu=True, wbits=8, acc_bits=19, lo=0, hi=255), "x", (2, 4),
          {"weight": w, "bias": b, "mult": mult, "shift": shift})
    g.set_tensor("fc", q=ir.QFormat(8, False, 2))
    xq = RNG.integers(-128, 128, size=(2, 3))
    y = golden.run_int(g, xq)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, numerics.dense(xq, w, b, mult, shift, 0, 255))
    ys = golden.run_int_samples(g, np.stack([xq, -xq]))
    np.testing.assert_array_equal(ys[0], y)
    np.testing.assert_array_equal(ys[1], golden.run_int(g, -xq))
    with pytest.raises(DataError, match="outside int8 range"):
        golden.run_int(g, xq + 200)
    with pytest.raises(DataError, match="takes integers"):
        golden.run_int(g, xq.astype(np.float64))
    np.testing.assert_array_equal(golden.quantize_input(g, xq / 16.0), xq)
    np.testing.assert_array_equal(golden.dequantize_output(g, y), y / 4.0)


def test_unsupported_ops_are_named() -> None:
    g = _mlp((1, 6))
    with pytest.raises(PassError, match="input 'x' has no QFormat: run Quantize first"):
        golden.run_int(g, np.zeros((1, 6), dtype=np.int64))
    g.set_tensor("x", q=ir.QFormat(8, True, 4))
    with pytest.raises(PassError, match=r"run_int cannot execute node 'fc' \(Dense\)"):
        golden.run_int(g, np.zeros((1, 6), dtype=np.int64))
