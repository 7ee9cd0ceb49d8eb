"""Canonicalize: structure (which nodes remain) and numbers (same result as onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgehls import ir
from edgehls.errors import UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize

RNG = np.random.default_rng(0)
N = helper.make_node


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _save(tmp_path: Path, nodes: list, inits: list, in_shape: list, out_shape: list) -> Path:
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _run_dense(g: ir.Graph, x: np.ndarray) -> np.ndarray:
    """A tiny float executor for Input/Dense chains (the contract in docs/internals.md)."""
    env = {g.inputs[0]: x.astype(np.float64)}
    for node in g:
        if isinstance(node.op, ir.Dense):
            w, b = g.const(node, "weight"), g.const(node, "bias")
            y = env[node.inputs[0]].reshape(-1, w.shape[0]) @ w + b
            env[node.outputs[0]] = np.maximum(y, 0.0) if node.op.relu else y
    return env[g.outputs[0]]


def _canon(path: Path, batch: int = 1) -> tuple[ir.Graph, np.ndarray, np.ndarray]:
    """Canonicalize the model at ``path``; return the graph, its output and onnxruntime's."""
    g0 = load(path)
    g0.verify()
    g = Canonicalize()(g0)
    g.verify()
    x = RNG.standard_normal(g0.tensor("x").shape).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    return g, _run_dense(g, x), ref


def _kinds(g: ir.Graph) -> list[str]:
    return [n.op.describe() for n in g]


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta,bias", [(1.0, 1.0, True), (0.5, 2.0, True),
                                             (-1.5, 3.0, False), (2.0, 0.25, "row")])
def test_gemm(tmp_path: Path, trans_b: int, alpha: float, beta: float, bias: object) -> None:
    w = _w("W", 5, 8) if trans_b else _w("W", 8, 5)
    inits = [w] + ([_w("C", 5)] if bias is True else [_w("C", 1, 5)] if bias == "row" else [])
    node = N("Gemm", ["x", "W"] + (["C"] if bias else []), ["y"], name="fc",
             alpha=alpha, beta=beta, transB=trans_b)
    g, out, ref = _canon(_save(tmp_path, [node], inits, [3, 8], [3, 5]))
    assert _kinds(g) == ["Input()", "Dense(relu=False)"]
    assert g.const(g.node("fc"), "weight").shape == (8, 5)
    assert set(g.consts) == {"fc.weight", "fc.bias"}  # B and C are no longer referenced
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_gemm_trans_a(tmp_path: Path) -> None:
    node = N("Gemm", ["x", "W"], ["y"], name="fc", transA=1)
    g, out, ref = _canon(_save(tmp_path, [node], [_w("W", 8, 5)], [8, 1], [1, 5]))
    assert _kinds(g) == ["Input()", "Dense(relu=False)"]
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnsupportedError, match=r"'fc' \(Gemm\): transA=1 .* M=2"):
        Canonicalize()(load(_save(tmp_path, [node], [_w("W", 8, 5)], [8, 2], [2, 5])))


def test_matmul_add_relu_mlp(tmp_path: Path) -> None:
    """Flatten -> MatMul + Add -> Relu -> Dropout -> Gemm -> Relu -> Identity -> Softmax."""
    nodes = [N("Flatten", ["x"], ["f"], name="flat"), N("MatMul", ["f", "W1"], ["m"], name="mm"),
             N("Add", ["b1", "m"], ["a"], name="add"), N("Relu", ["a"], ["r"], name="relu1"),
             N("Dropout", ["r"], ["d"], name="drop"),
             N("Gemm", ["d", "W2", "b2"], ["h"], name="fc2"), N("Relu", ["h"], ["h2"]),
             N("Identity", ["h2"], ["i"], name="id"), N("Softmax", ["i"], ["y"], name="sm")]
    inits = [_w("W1", 12, 7), _w("b1", 7), _w("W2", 7, 4), _w("b2", 4)]
    g, out, ref = _canon(_save(tmp_path, nodes, inits, [4, 3, 2, 2], [4, 4]))
    assert [(n.name, n.op.describe()) for n in g] == [
        ("x", "Input()"), ("mm", "Dense(relu=True)"), ("fc2", "Dense(relu=True)")]
    assert g.outputs == ["h"] and "y" not in g.tensors
    assert g.notes == ["final Softmax dropped from hardware: outputs are logits"]
    probs = np.exp(out - out.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(axis=1, keepdims=True), ref, atol=1e-5)


def test_reshape_at_output_is_noted(tmp_path: Path) -> None:
    shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "s")
    nodes = [N("MatMul", ["x", "W"], ["m"], name="mm"), N("Reshape", ["m", "s"], ["y"], name="r")]
    g, out, ref = _canon(_save(tmp_path, nodes, [_w("W", 6, 3), shape], [2, 6], [6]))
    assert _kinds(g) == ["Input()", "Dense(relu=False)"] and g.outputs == ["m"]
    assert g.notes == ["output 'y': Reshape 'r' removed, the output stream [2, 3] is the "
                       "row-major data of ONNX shape [6]"]
    np.testing.assert_allclose(out.reshape(-1), ref, rtol=1e-5, atol=1e-5)


def test_add_not_folded_when_matmul_output_is_shared() -> None:
    g0 = ir.Graph("shared")
    for name, shape in (("x", (1, 6)), ("m", (1, 3)), ("a", (1, 3))):
        g0.add_tensor(ir.Tensor(name, shape))
    g0.add_const("W", RNG.standard_normal((6, 3)).astype(np.float32))
    g0.add_const("b", np.ones(3, np.float32))
    g0.add_node(ir.Node("x", ir.Input(), (), ("x",)))
    g0.add_node(ir.Node("mm", ir.MatMul(), ("x",), ("m",), (("B", "W"),)))
    g0.add_node(ir.Node("add", ir.Add(), ("m",), ("a",), (("B", "b"),)))
    g0.inputs, g0.outputs = ["x"], ["a", "m"]  # "m" is read twice: by "add" and as an output
    g0.verify()
    with pytest.raises(UnsupportedError, match=r"node 'add' \(Add\): cannot be mapped"):
        Canonicalize()(g0)
    g0.outputs = ["a"]
    assert _kinds(Canonicalize()(g0)) == ["Input()", "Dense(relu=False)"]


def test_dead_branch_removed(tmp_path: Path) -> None:
    nodes = [N("MatMul", ["x", "W"], ["m"], name="mm"), N("Add", ["m", "b"], ["y"], name="add"),
             N("Relu", ["m"], ["dead"], name="unused")]
    g, out, ref = _canon(_save(tmp_path, nodes, [_w("W", 6, 3), _w("b", 3)], [1, 6], [1, 3]))
    assert _kinds(g) == ["Input()", "Dense(relu=False)"] and "dead" not in g.tensors
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_leftover_add_names_node(tmp_path: Path) -> None:
    nodes = [N("MatMul", ["x", "W"], ["m"], name="mm"), N("Relu", ["m"], ["r"], name="relu"),
             N("Add", ["r", "b"], ["y"], name="add")]
    g0 = load(_save(tmp_path, nodes, [_w("W", 6, 3), _w("b", 3)], [1, 6], [1, 3]))
    with pytest.raises(UnsupportedError, match=r"node 'add' \(Add\): cannot be mapped"):
        Canonicalize()(g0)


def test_relu_on_input_rejected(tmp_path: Path) -> None:
    nodes = [N("Relu", ["x"], ["r"], name="pre"), N("MatMul", ["r", "W"], ["y"], name="mm")]
    g0 = load(_save(tmp_path, nodes, [_w("W", 6, 3)], [1, 6], [1, 3]))
    with pytest.raises(UnsupportedError, match=r"node 'pre' \(Relu\): .*must directly follow"):
        Canonicalize()(g0)


def test_input_graph_not_modified(tmp_path: Path) -> None:
    nodes = [N("MatMul", ["x", "W"], ["m"], name="mm"), N("Relu", ["m"], ["y"], name="relu")]
    g0 = load(_save(tmp_path, nodes, [_w("W", 6, 3)], [1, 6], [1, 3]))
    before = (g0.summary(), dict(g0.consts))
    g = Canonicalize()(g0)
    assert (g0.summary(), dict(g0.consts)) == before and g.outputs == ["m"]
    assert repr(Canonicalize()) == "Canonicalize()"
