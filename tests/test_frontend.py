"""edgehls.frontend: loading, checking and rejecting ONNX models, and the IR it builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgehls import ir
from edgehls.errors import ModelError, OptionError, UnsupportedError
from edgehls.frontend import load

RNG = np.random.default_rng(0)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _save(tmp_path: Path, nodes: list, inits: list, in_shape: list, out_shape: list,
          name: str = "net", inputs: list | None = None) -> Path:
    graph = helper.make_graph(
        nodes, name, inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def _mlp(tmp_path: Path, in_shape: list, **kw) -> Path:
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "W", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["y"], name="act")]
    return _save(tmp_path, nodes, [_w("W", 4, 6), _w("b", 4)], in_shape, ["M", 4], **kw)


# -- bad files ----------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load(tmp_path / "nope.onnx")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(2000))
    with pytest.raises(ModelError, match="cannot be parsed as ONNX"):
        load(path)


def test_truncated(tmp_path: Path) -> None:
    path = _mlp(tmp_path, [1, 6])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot be parsed as ONNX"):
        load(path)


def test_checker_failure(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Relu", ["ghost"], ["y"], name="r")], [], [1, 4],
                 [1, 4])
    with pytest.raises(ModelError, match="fails onnx.checker") as exc:
        load(path)
    assert "\n" not in str(exc.value) and "ghost" in str(exc.value)


# -- shapes -------------------------------------------------------------------------------------

def test_symbolic_batch_taken_as_one(tmp_path: Path) -> None:
    g = load(_mlp(tmp_path, ["N", 6]))
    g.verify()
    assert g.tensor("x").shape == (1, 6) and g.tensor("y").shape == (1, 4)
    assert g.notes == ["input 'x': symbolic batch dimension 'N' taken as 1"]


def test_dynamic_feature_dim_needs_input_shape(tmp_path: Path) -> None:
    path = _mlp(tmp_path, ["N", "F"])
    msg = r"dynamic dimension 1 \(shape \[N, F\]\).*--input-shape x=D0,D1"
    with pytest.raises(ModelError, match=msg):
        load(path)
    g = load(path, input_shape={"x": (3, 6)})
    g.verify()
    assert g.tensor("x").shape == (3, 6) and g.tensor("y").shape == (3, 4) and g.notes == []


def test_input_shape_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="'z'.*inputs are: x"):
        load(_mlp(tmp_path, [1, 6]), input_shape={"z": (1, 6)})


# -- unsupported constructs ---------------------------------------------------------------------

def test_unsupported_op(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("LRN", ["x"], ["y"], name="lrn1", size=3)],
                 [], [1, 2, 6, 6], [1, 2, 6, 6])
    with pytest.raises(UnsupportedError) as exc:
        load(path)
    assert str(exc.value) == (
        "node 'lrn1' (LRN): op not supported; supported ops: "
        "Add, AveragePool, BatchNormalization, Clip, Concat, Conv, Dropout, Flatten, Gemm, "
        "GlobalAveragePool, GlobalMaxPool, HardSigmoid, HardSwish, Identity, LeakyRelu, MatMul, "
        "MaxPool, Mul, Pad, PRelu, ReduceMean, Relu, Reshape, Sigmoid, Softmax, Sum, Transpose")


def test_unnamed_unsupported_op_gets_index_name(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tanh", ["r"], ["y"])]
    with pytest.raises(UnsupportedError, match=r"node 'Tanh_1' \(Tanh\)"):
        load(_save(tmp_path, nodes, [], [1, 4], [1, 4]))


def test_activation_times_activation(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("MatMul", ["x", "r"], ["y"], name="mm")]
    with pytest.raises(UnsupportedError, match=r"node 'mm' \(MatMul\): activation x activation"):
        load(_save(tmp_path, nodes, [], [4, 4], [4, 4]))


def test_two_inputs(tmp_path: Path) -> None:
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "z")]
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="add")]
    with pytest.raises(UnsupportedError, match="2 graph inputs.*exactly one graph input"):
        load(_save(tmp_path, nodes, [], [], [1, 4], inputs=ins))


def test_dropout_training_mode_rejected(tmp_path: Path) -> None:
    mode = numpy_helper.from_array(np.array(True), "mode")
    nodes = [helper.make_node("Dropout", ["x", "", "mode"], ["y"], name="drop")]
    with pytest.raises(UnsupportedError, match=r"'drop' \(Dropout\): training_mode"):
        load(_save(tmp_path, nodes, [mode], [1, 4], [1, 4]))


def test_softmax_not_last(tmp_path: Path) -> None:
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="sm"),
             helper.make_node("MatMul", ["s", "W"], ["y"], name="mm")]
    with pytest.raises(UnsupportedError, match=r"'sm' \(Softmax\): only a final Softmax"):
        load(_save(tmp_path, nodes, [_w("W", 4, 3)], [1, 4], [1, 3]))


# -- the IR built -------------------------------------------------------------------------------

def test_ir_of_mlp(tmp_path: Path) -> None:
    g = load(_mlp(tmp_path, [2, 6]))
    g.verify()
    assert g.name == "net"
    assert [(n.name, n.op.kind) for n in g] == [
        ("x", "Input"), ("flat", "Flatten"), ("fc", "Gemm"), ("act", "Relu")]
    fc = g.node("fc")
    assert fc.op == ir.Gemm(trans_b=True) and fc.consts == (("B", "W"), ("C", "b"))
    assert g.const(fc, "B").dtype == np.float32 and g.inputs == ["x"] and g.outputs == ["y"]


def test_constants_reshape_and_unique_names(tmp_path: Path) -> None:
    shape = helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(
        np.array([0, -1], dtype=np.int64)))
    nodes = [shape,
             helper.make_node("Reshape", ["x", "s"], ["r"], name="n"),
             helper.make_node("Identity", ["W"], ["Wt"], name="tied"),  # weights via Identity
             helper.make_node("MatMul", ["r", "Wt"], ["m"], name="n"),
             helper.make_node("Dropout", ["m"], ["y"])]
    g = load(_save(tmp_path, nodes, [_w("W", 12, 5)], [1, 3, 4], [1, 5]))
    g.verify()
    assert [(n.name, n.op) for n in g][1:] == [
        ("n", ir.Reshape((1, 12))), ("n_1", ir.MatMul()), ("Dropout_4", ir.Identity())]
    assert g.node("n_1").consts == (("B", "Wt"),) and g.consts["Wt"].shape == (12, 5)


def test_external_data(tmp_path: Path) -> None:
    path = _mlp(tmp_path, [1, 6])
    model = onnx.load(str(path))
    weights = numpy_helper.to_array(model.graph.initializer[0])
    onnx.save(model, str(path), save_as_external_data=True, location="model.bin",
              size_threshold=0)
    assert (tmp_path / "model.bin").exists()
    g = load(path)
    np.testing.assert_array_equal(g.consts["W"], weights)
    (tmp_path / "model.bin").unlink()
    with pytest.raises(ModelError, match="external data cannot be read"):
        load(path)
