"""edgehls.frontend on convolutional models: the IR it builds and what it rejects, by name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgehls import golden, ir
from edgehls.errors import UnsupportedError
from edgehls.frontend import load

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402

RNG = np.random.default_rng(0)
N = helper.make_node


def _c(name: str, value: object, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return _c(name, RNG.standard_normal(shape))


def save(tmp_path: Path, nodes: list, inits: list, in_shape: list, opset: int = 17,
         out_shape: list | None = None) -> Path:
    """A model x -> nodes -> y (y's shape inferred if not given), saved as tmp_path/model.onnx."""
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path


def ort_check(path: Path, g: ir.Graph) -> None:
    """run_float(g) matches onnxruntime on a random input."""
    sess = ort.InferenceSession(str(path))
    x = RNG.standard_normal(sess.get_inputs()[0].shape).astype(np.float32)
    ref = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(golden.run_float(g, x).reshape(ref.shape), ref, atol=1e-4)


def _node(g: ir.Graph, name: str) -> ir.Node:
    return g.node(name)


# -- the committed fixtures ---------------------------------------------------------------------

def test_fixtures_are_what_the_script_builds(tmp_path: Path) -> None:
    make_fixtures.main(tmp_path)
    for name in make_fixtures.FIXTURES:
        assert (tmp_path / f"{name}.onnx").read_bytes() == (FIXTURES / f"{name}.onnx").read_bytes()
        assert (FIXTURES / f"{name}.onnx").stat().st_size < 16_000


def test_conv1d_is_2d_with_h_1() -> None:
    g = load(FIXTURES / "conv1d.onnx")
    conv = g.node("conv1")
    assert conv.op == ir.Conv(kernel=(1, 11), pads=(0, 5, 0, 5))
    assert g.const(conv, "weight").shape == (6, 4, 1, 11)
    assert g.tensor("x").shape == (1, 4, 1, 32) and g.tensor("conv1").shape == (1, 6, 1, 32)
    assert g.node("pool1").op == ir.MaxPool(kernel=(1, 2), strides=(1, 2))
    assert g.node("conv2").op.dilations == (1, 2)
    assert any("[N, C, 1, L]" in n for n in g.notes)


def test_auto_pad_resolved() -> None:
    g = load(FIXTURES / "same_upper.onnx")
    # 7 wide, k 4, stride 2: out 4, total pad 3 -> SAME_UPPER puts the extra one at the end
    assert g.node("conv1").op.pads == (1, 1, 2, 2)
    assert g.node("pool1").op.pads == (1, 1, 0, 0)  # SAME_LOWER: the extra one first
    assert g.node("conv2").op.pads == (0, 0, 0, 0)  # VALID
    assert g.node("conv3").op.pads == (1, 1, 0, 0)


def test_ops_mapped() -> None:
    g = load(FIXTURES / "relu6.onnx")
    assert g.node("relu6").op == ir.Clip(0.0, 6.0)
    assert g.node("mul1").op == ir.BatchNorm(epsilon=0.0)  # x * c == BN(mean 0, var 1)
    assert g.node("mul2").inputs == ("pool",)  # constant first: the activation is found
    assert g.node("bn1").op.epsilon == pytest.approx(1e-5)
    assert g.node("gap").op == ir.GlobalAvgPool()
    assert load(FIXTURES / "reducemean.onnx").node("mean").op == ir.GlobalAvgPool()
    a = load(FIXTURES / "avgpool.onnx")
    assert a.node("pad").op == ir.Pad((1, 1, 1, 1))
    assert a.node("avg2").op == ir.AvgPool((3, 3), (2, 2), (1, 1, 1, 1), True)
    assert a.node("avg3").op == ir.AvgPool((2, 2), (2, 2), (0, 0, 0, 0), False)  # ceil_mode=1
    assert load(FIXTURES / "ds_cnn.onnx").node("conv1").op == ir.Conv(
        kernel=(10, 4), strides=(2, 2), pads=(4, 1, 5, 2))


def test_old_opset_attributes(tmp_path: Path) -> None:
    """Clip and Pad with attributes (opset 10), GlobalMaxPool, Pad with axes (opset 18)."""
    nodes = [N("Pad", ["x"], ["p"], name="pad", pads=[0, 0, 1, 2, 0, 0, 0, 1]),
             N("Conv", ["p", "W"], ["c"], name="conv"),
             N("Clip", ["c"], ["k"], name="clip", min=-0.5, max=1.5),
             N("GlobalMaxPool", ["k"], ["y"], name="gmp")]
    path = save(tmp_path, nodes, [_w("W", 3, 2, 2, 2)], [1, 2, 5, 5], opset=10)
    g = load(path)
    assert g.node("pad").op == ir.Pad((1, 2, 0, 1)) and g.node("clip").op == ir.Clip(-0.5, 1.5)
    assert g.node("gmp").op == ir.MaxPool(kernel=(5, 7), strides=(5, 7))
    ort_check(path, g)
    nodes = [N("Pad", ["x", "pads", "", "axes"], ["y"], name="pad")]
    inits = [_c("pads", [1, 2, 3, 0], np.int64), _c("axes", [-1, 2], np.int64)]
    path = save(tmp_path, nodes, inits, [1, 2, 5, 5], opset=18)
    assert load(path).node("pad").op == ir.Pad((2, 1, 0, 3))
    ort_check(path, load(path))


# -- rejections, each naming the node, the op and what is supported -----------------------------

def _conv(attrs: dict | None = None, w: tuple = (2, 1, 3, 3)) -> tuple[list, list]:
    return [N("Conv", ["x", "W"], ["y"], name="conv", **(attrs or {}))], [_w("W", *w)]


REJECT = {
    "kernel": (*_conv(w=(2, 1, 13, 13)), [1, 1, 16, 16], 17,
               r"node 'conv' \(Conv\): kernel \[13, 13\] is not supported: kernel sides up to 11"),
    "conv3d": (*_conv(w=(2, 1, 3, 3, 3)), [1, 1, 5, 5, 5], 17,
               r"'conv' \(Conv\): only 1-D and 2-D convolutions are supported"),
    "weight_act": ([N("Relu", ["x"], ["r"], name="r"),
                    N("Conv", ["x", "r"], ["y"], name="conv")], [], [1, 1, 3, 3], 17,
                   r"'conv' \(Conv\): only the first input may be an activation"),
    "ceil_mode": ([N("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[2, 2],
                     strides=[2, 2], ceil_mode=1)], [], [1, 1, 5, 5], 17,
                  r"'ap' \(AveragePool\): ceil_mode=1 changes the output size \(its partial "
                  r"last windows divide by fewer elements\) \(\[3, 3\] instead "),
    "storage_order": ([N("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2],
                         storage_order=1)], [], [1, 1, 4, 4], 17,
                      r"'mp' \(MaxPool\): storage_order=1 is not supported"),
    "indices": ([N("MaxPool", ["x"], ["p", "i"], name="mp", kernel_shape=[2, 2]),
                 N("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
                 N("Add", ["p", "f"], ["y"], name="add")], [], [1, 1, 4, 4], 17,
                r"'mp' \(MaxPool\): the Indices output is used"),
    "avg_dilation": ([N("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[2, 2],
                        dilations=[2, 2])], [], [1, 1, 6, 6], 19,
                     r"'ap' \(AveragePool\): dilations \[2, 2\] are not supported"),
    "pad_reflect": ([N("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")],
                    [_c("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)], [1, 1, 4, 4], 17,
                    r"'pad' \(Pad\): only constant zero padding is supported, got mode "
                    r"'reflect'"),
    "pad_value": ([N("Pad", ["x", "pads", "v"], ["y"], name="pad")],
                  [_c("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), _c("v", 1.0)],
                  [1, 1, 4, 4], 17, r"'pad' \(Pad\): only constant zero padding .* value 1.0"),
    "pad_channels": ([N("Pad", ["x", "pads"], ["y"], name="pad")],
                     [_c("pads", [0, 1, 0, 0, 0, 0, 0, 0], np.int64)], [1, 1, 4, 4], 17,
                     r"'pad' \(Pad\): only non-negative padding of H and W"),
    "reducemean_c": ([N("ReduceMean", ["x"], ["y"], name="rm", axes=[1])], [], [1, 3, 4, 4],
                     17, r"'rm' \(ReduceMean\): only a mean over the spatial axes"),
    "bn_training": ([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                       name="bn", training_mode=1)],
                    [_c("s", [1.0]), _c("b", [0.0]), _c("m", [0.0]), _c("v", [1.0])],
                    [1, 1, 4, 4], 15, r"'bn' \(BatchNormalization\): training mode", [1, 1, 4, 4]),
    "mul_shape": ([N("Mul", ["x", "c"], ["y"], name="mul")], [_w("c", 1, 1, 1, 4)],
                  [1, 2, 4, 4], 17, r"'mul' \(Mul\): only a per-channel constant .* got shape "
                                    r"\[1, 1, 1, 4\]"),
    "mul_acts": ([N("Mul", ["x", "x"], ["y"], name="mul")], [], [1, 2, 4, 4], 17,
                 r"'mul' \(Mul\): activation x activation is not supported"),
    "residual_broadcast": ([N("GlobalAveragePool", ["x"], ["r"], name="r"),
                            N("Add", ["x", "r"], ["y"], name="res")], [], [1, 2, 4, 4], 17,
                           r"'res' \(Add\): broadcasting between two activations is not "
                           r"supported"),
    "concat": ([N("Concat", ["x", "x"], ["y"], name="cat", axis=2)], [], [1, 2, 4, 4], 17,
               r"'cat' \(Concat\): only a Concat along the channel axis \(1\) of "),
    "clip_act": ([N("Relu", ["x"], ["r"], name="r"), N("Clip", ["x", "r"], ["y"], name="clip")],
                 [], [1, 1], 17, r"'clip' \(Clip\): only the first input may be an activation"),
}


@pytest.mark.parametrize("case", sorted(REJECT))
def test_rejected(tmp_path: Path, case: str) -> None:
    nodes, inits, shape, opset, msg, *out = REJECT[case]
    with pytest.raises(UnsupportedError, match=msg):
        load(save(tmp_path, nodes, inits, shape, opset, *out))
