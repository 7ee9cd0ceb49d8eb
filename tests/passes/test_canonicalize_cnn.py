"""Canonicalize on convolutional models: structure (only Input/Dense/Conv/MaxPool, BatchNorm
folded, activations fused) and numbers (frontend and canonical graph both match onnxruntime)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from edgehls import golden, ir
from edgehls.errors import UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
sys.path.insert(0, str(TESTS))
from test_frontend_cnn import _c, _w, save  # noqa: E402

sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402

RNG = np.random.default_rng(1)
N = helper.make_node
CANONICAL = (ir.Input, ir.Dense, ir.Conv, ir.MaxPool, ir.AddAct)


def _both(path: Path, samples: int = 3) -> tuple[ir.Graph, ir.Graph]:
    """Load and canonicalize ``path``; both graphs must match onnxruntime on random inputs."""
    g0 = load(path)
    g0.verify()
    g = Canonicalize()(g0)
    g.verify()
    assert all(isinstance(n.op, CANONICAL) for n in g), [n.op.kind for n in g]
    sess = ort.InferenceSession(str(path))
    shape = sess.get_inputs()[0].shape
    xs = RNG.standard_normal((samples, *shape)).astype(np.float32)
    ref = np.stack([sess.run(None, {"x": x})[0] for x in xs])
    for graph in (g0, g):  # data in the ONNX layout (an absorbed input Transpose: NHWC)
        x = golden.model_samples(graph, xs.reshape(samples, *g0.tensor("x").shape))
        out = golden.run_float_samples(graph, x)
        if out.ndim == ref.ndim == 5 and out.shape != ref.shape:  # output Transpose dropped
            out = out.transpose(0, 1, 3, 4, 2)
        np.testing.assert_allclose(out.reshape(ref.shape), ref, atol=1e-4)
    return g0, g


def _ops(g: ir.Graph) -> list[str]:
    return [n.op.describe() for n in g]


@pytest.mark.parametrize("name", sorted(make_fixtures.FIXTURES))
def test_fixture_matches_onnxruntime(name: str) -> None:
    _, g = _both(FIXTURES / f"{name}.onnx")
    for node in g:
        if isinstance(node.op, ir.Conv):
            w, b = g.const(node, "weight"), g.const(node, "bias")
            assert w.ndim == 4 and b.shape == (w.shape[0],)
            assert len(g.tensor(node.outputs[0]).shape) == 4
    assert set(g.consts) == {c for n in g for _, c in n.consts}


def test_digits_cnn_structure() -> None:
    _, g = _both(FIXTURES / "digits_cnn.onnx")
    assert [n.name for n in g] == ["x", "conv1", "pool1", "conv2", "gap", "fc"]
    assert g.node("conv1").op == ir.Conv(kernel=(3, 3), pads=(1, 1, 1, 1), act="relu")  # BN in
    assert g.node("conv2").op.act == "relu"
    assert g.node("gap").op == ir.Conv(kernel=(2, 2), group=16)
    np.testing.assert_allclose(g.const(g.node("gap"), "weight"), np.full((16, 1, 2, 2), 0.25))
    assert isinstance(g.node("fc").op, ir.Dense)


def test_flatten_into_gemm_becomes_conv() -> None:
    g0, g = _both(FIXTURES / "flatten_cnn.onnx")
    fc1 = g.node("fc1")
    assert fc1.op == ir.Conv(kernel=(3, 3), act="relu") and fc1.inputs == ("pool1",)
    assert g.tensor("fc1").shape == (1, 12, 1, 1)
    w = g0.consts["fc1.weight"]  # [12, 36] with transB: row j is output j, NCHW order
    np.testing.assert_array_equal(g.const(fc1, "weight"), w.reshape(12, 4, 3, 3))
    assert isinstance(g.node("fc2").op, ir.Dense)


def test_ds_cnn_structure() -> None:
    _, g = _both(FIXTURES / "ds_cnn.onnx")
    assert _ops(g)[1:4] == [
        "Conv(kernel=(10, 4), strides=(2, 2), pads=(4, 1, 5, 2), dilations=(1, 1), group=1, "
        "act=relu, clip=(0.0, 6.0))",
        "Conv(kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=8, "
        "act=relu, clip=(0.0, 6.0))",
        "Conv(kernel=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, "
        "act=relu, clip=(0.0, 6.0))"]
    assert g.node("pool").op == ir.Conv(kernel=(6, 5), group=12)


def test_relu6_clip_mul_add() -> None:
    _, g = _both(FIXTURES / "relu6.onnx")
    assert [n.name for n in g] == ["x", "conv1", "dw", "mul1", "pool", "mul2", "gap", "fc"]
    assert g.node("conv1").op.act == "clip" and g.node("conv1").op.clip == (0.0, 6.0)
    assert g.node("dw").op.act == "clip" and g.node("dw").op.clip == (-1.0, 1.0)
    # Mul after a Clip cannot fold: a depthwise 1x1 Conv, which takes the Add as its bias
    assert g.node("mul1").op == ir.Conv(group=8)
    assert g.node("mul2").op == ir.Conv(group=8) and g.node("mul2").inputs == ("pool",)


def test_pads_folded() -> None:
    _, g = _both(FIXTURES / "asym_pads.onnx")
    assert [n.name for n in g] == ["x", "conv1", "pool1", "conv2"]
    assert g.node("pool1").op.pads == (2, 0, 0, 2) and g.node("pool1").inputs == ("conv1",)
    assert g.node("conv2").op.pads == (0, 2, 1, 0)
    assert g.notes == ["output 'flat': Flatten 'flat' removed, the output stream [1, 2, 4, 4] "
                       "is the row-major data of ONNX shape [1, 32]"]
    _, a = _both(FIXTURES / "avgpool.onnx")
    assert a.node("avg1").op == ir.Conv(kernel=(3, 3), pads=(1, 1, 1, 1), group=3)
    assert a.node("avg2").op == ir.Conv(kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                                        group=3)


def test_conv1d_and_reducemean() -> None:
    _, g = _both(FIXTURES / "conv1d.onnx")
    assert g.node("gap").op == ir.Conv(kernel=(1, 12), group=8)
    _, g = _both(FIXTURES / "reducemean_flat.onnx")
    assert g.tensor("mean").shape == (1, 6, 1, 1)  # ONNX [1, 6]: same data


def _model(tmp_path: Path, nodes: list, inits: list, shape: list, **kw: object) -> Path:
    return save(tmp_path, nodes, inits, shape, **kw)


def _bn(name: str, c: int) -> tuple[list[str], list]:
    names = [f"{name}.{k}" for k in ("scale", "bias", "mean", "var")]
    values = [RNG.uniform(0.5, 1.5, c), RNG.normal(0, 0.3, c), RNG.normal(0, 0.3, c),
              RNG.uniform(0.5, 1.5, c)]
    return names, [_c(n, v) for n, v in zip(names, values, strict=True)]


def test_relu_through_maxpool_and_bn_after_pool(tmp_path: Path) -> None:
    """Conv -> MaxPool -> Relu: the Relu fuses into the Conv; a BN after a pool is a
    depthwise 1x1 Conv."""
    bn, inits = _bn("bn", 3)
    nodes = [N("Conv", ["x", "W"], ["c"], name="conv"),
             N("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2]),
             N("Relu", ["p"], ["a"], name="relu"),
             N("BatchNormalization", ["a", *bn], ["n"], name="bn"),
             N("Flatten", ["n"], ["f"], name="flat"),
             N("Gemm", ["f", "W2"], ["y"], name="fc", transB=1)]
    inits += [_w("W", 3, 1, 2, 2), _w("W2", 4, 12)]
    _, g = _both(_model(tmp_path, nodes, inits, [1, 1, 4, 4]))
    assert [n.name for n in g] == ["x", "conv", "pool", "bn", "fc"]
    assert g.node("conv").op.act == "relu" and g.node("bn").op == ir.Conv(group=3)
    assert g.node("fc").op == ir.Conv(kernel=(2, 2))


def test_bn_and_mul_on_dense(tmp_path: Path) -> None:
    """A BN on the [N, C] input is a diagonal Dense; BN and Mul after a Gemm fold into it."""
    bn0, inits0 = _bn("bn0", 6)
    bn1, inits1 = _bn("bn1", 4)
    nodes = [N("BatchNormalization", ["x", *bn0], ["n"], name="bn0"),
             N("Gemm", ["n", "W"], ["h"], name="fc", transB=1),
             N("BatchNormalization", ["h", *bn1], ["k"], name="bn1"),
             N("Mul", ["k", "g"], ["m"], name="mul"), N("Relu", ["m"], ["y"], name="relu")]
    _, g = _both(_model(tmp_path, nodes, [*inits0, *inits1, _w("W", 4, 6), _w("g", 4)], [2, 6]))
    assert _ops(g) == ["Input()", "Dense(relu=False)", "Dense(relu=True)"]
    w = g.const(g.node("bn0"), "weight")
    np.testing.assert_array_equal(w, np.diag(np.diag(w)))


def test_reshape_before_conv_rejected(tmp_path: Path) -> None:
    nodes = [N("Reshape", ["x", "shape"], ["r"], name="r"),
             N("Conv", ["r", "W"], ["y"], name="conv")]
    path = _model(tmp_path, nodes, [_c("shape", [1, 1, 2, 3], np.int64), _w("W", 2, 1, 1, 1)],
                  [1, 6])
    _reject(path, r"node 'r' \(Reshape\): reshaping \[1, 6\] to \[1, 1, 2, 3\] before a "
            "convolution or pool is not supported")


def test_mul_folds_into_conv(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "W", "B"], ["c"], name="conv"),
             N("Mul", ["c", "g"], ["m"], name="mul"), N("Add", ["m", "t"], ["a"], name="add"),
             N("Clip", ["a", "", "hi"], ["y"], name="clip")]
    inits = [_w("W", 4, 2, 3, 3), _w("B", 4), _w("g", 4, 1, 1), _w("t", 1, 4, 1, 1),
             _c("hi", 0.5)]
    _, g = _both(_model(tmp_path, nodes, inits, [1, 2, 5, 5]))
    assert [n.name for n in g] == ["x", "conv"]
    assert g.node("conv").op.act == "clip" and g.node("conv").op.clip == (-np.inf, 0.5)


# -- rejections ----------------------------------------------------------------------------------

def _reject(path: Path, msg: str) -> None:
    g0 = load(path)
    with pytest.raises(UnsupportedError, match=msg):
        Canonicalize()(g0)


def test_avgpool_count_exclude_pad_rejected(tmp_path: Path) -> None:
    nodes = [N("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    _reject(_model(tmp_path, nodes, [], [1, 2, 4, 4]),
            r"node 'ap' \(AvgPool\): count_include_pad=0 with pads \[1, 1, 1, 1\]")


def test_unfusable_activations_rejected(tmp_path: Path) -> None:
    nodes = [N("Relu", ["x"], ["r"], name="pre"), N("Conv", ["r", "W"], ["y"], name="conv")]
    _reject(_model(tmp_path, nodes, [_w("W", 2, 2, 1, 1)], [1, 2, 3, 3]),
            r"node 'pre' \(Relu\): cannot be mapped to a Dense, Conv, MaxPool or residual Add "
            "layer: a Relu must directly follow")
    nodes = [N("Gemm", ["x", "W"], ["h"], name="fc", transB=1),
             N("Clip", ["h", "lo", "hi"], ["y"], name="clip")]
    _reject(_model(tmp_path, nodes, [_w("W", 3, 4), _c("lo", 0.0), _c("hi", 6.0)], [1, 4]),
            r"node 'clip' \(Clip\): .*after a MatMul/Gemm only Clip\(0, inf\)")


def test_relu_on_shared_conv_output_rejected() -> None:
    g0 = ir.Graph("shared")
    for name, shape in (("x", (1, 1, 3, 3)), ("c", (1, 2, 3, 3)), ("r", (1, 2, 3, 3))):
        g0.add_tensor(ir.Tensor(name, shape))
    g0.add_const("W", np.ones((2, 1, 1, 1), np.float32))
    g0.add_node(ir.Node("x", ir.Input(), (), ("x",)))
    g0.add_node(ir.Node("conv", ir.Conv(), ("x",), ("c",), (("weight", "W"),)))
    g0.add_node(ir.Node("relu", ir.Relu(), ("c",), ("r",)))
    g0.inputs, g0.outputs = ["x"], ["r", "c"]
    with pytest.raises(UnsupportedError, match=r"node 'relu' \(Relu\): cannot be mapped"):
        Canonicalize()(g0)


def test_pad_before_maxpool_of_signed_input_rejected(tmp_path: Path) -> None:
    nodes = [N("Pad", ["x", "pads"], ["p"], name="pad"),
             N("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[2, 2])]
    pads = _c("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    _reject(_model(tmp_path, nodes, [pads], [1, 1, 4, 4]),
            r"node 'pad' \(Pad\): cannot fold into MaxPool 'pool': zero padding equals MaxPool "
            "padding only on a non-negative input")
    nodes = [N("Conv", ["x", "W"], ["c"], name="conv"), N("Relu", ["c"], ["r"], name="relu"),
             N("Pad", ["r", "pads"], ["y"], name="pad")]  # a Pad at the output stays
    _reject(_model(tmp_path, nodes, [pads, _w("W", 1, 1, 1, 1)], [1, 1, 4, 4]),
            r"node 'pad' \(Pad\): cannot be mapped .*: a Pad must feed only Conv/MaxPool")


def test_gemm_on_rows_of_a_feature_map_rejected(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "W"], ["c"], name="conv"), N("MatMul", ["c", "B"], ["y"], name="mm")]
    _reject(_model(tmp_path, nodes, [_w("W", 2, 1, 1, 1), _w("B", 3, 5)], [1, 1, 3, 3]),
            r"node 'mm' \(MatMul\): reads the feature map 'c' \[1, 2, 3, 3\] as rows of 3; "
            r"only a Flatten of whole \[C, H, W\] maps")


def test_input_graph_not_modified() -> None:
    g0 = load(FIXTURES / "relu6.onnx")
    before = (g0.summary(), dict(g0.consts))
    Canonicalize()(g0)
    assert (g0.summary(), dict(g0.consts)) == before
