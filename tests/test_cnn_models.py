"""tests/cnn_models.py: the reference networks are valid ONNX, run in onnxruntime with the
documented shapes, have the documented topology and size, and are deterministic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cnn_models import BUILDERS, SHAPES

NAMES = sorted(BUILDERS)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of the Conv and Gemm nodes, from inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.value_info, *inferred.output]}
    inits = {t.name: t.dims for t in model.graph.initializer}
    total = 0
    for n in model.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            w = inits[n.input[1]]
            total += int(np.prod(shapes[n.output[0]])) * int(np.prod(w[1:]))
    return total


@pytest.mark.parametrize("name", NAMES)
def test_checker_and_interface(name: str) -> None:
    m = BUILDERS[name](0)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8 and [o.version for o in m.opset_import] == [17]
    (inp,), (out,) = m.graph.input, m.graph.output
    dims = [tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in (inp, out)]
    assert (inp.name, out.name) == ("input", "output")
    assert tuple(dims) == SHAPES[name]


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_runs(name: str) -> None:
    in_shape, out_shape = SHAPES[name]
    x = np.random.default_rng(1).uniform(-1, 1, in_shape).astype(np.float32)
    y = _run(BUILDERS[name](0), x)
    assert y.shape == out_shape
    # plausible BN statistics keep the logits O(1): neither vanishing nor exploding
    assert np.isfinite(y).all() and 1e-2 < np.abs(y).max() < 1e2


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name: str) -> None:
    a, b = (BUILDERS[name](7).SerializeToString() for _ in range(2))
    assert a == b
    assert BUILDERS[name](8).SerializeToString() != a


# Conv + Gemm MACs: exact, and the rounded figure the MLPerf Tiny paper gives
MACS = {"resnet8": (12_501_632, 12.5e6), "ds_cnn": (2_656_768, 2.66e6),
        "ds_cnn_gap": (2_656_768, 2.66e6), "mobilenet_v1_025": (7_489_664, 7.49e6),
        "fc_autoencoder": (264_192, 0.264e6)}


@pytest.mark.parametrize("name", sorted(MACS))
def test_published_size(name: str) -> None:
    exact, published = MACS[name]
    assert _macs(BUILDERS[name](0)) == exact
    assert abs(exact - published) / published < 0.01


def test_topologies() -> None:
    ops = {n: Counter(x.op_type for x in BUILDERS[n](0).graph.node) for n in NAMES}
    for n in ("resnet8", "resnet8_small"):
        assert ops[n] == Counter({"Conv": 9, "BatchNormalization": 9, "Relu": 7, "Add": 3,
                                  "AveragePool": 1, "Flatten": 1, "Gemm": 1})
    for n in ("ds_cnn", "ds_cnn_small"):
        assert ops[n] == Counter({"Conv": 9, "BatchNormalization": 9, "Relu": 9,
                                  "AveragePool": 1, "Flatten": 1, "Gemm": 1})
    assert ops["mobilenet_v1_025"] == Counter({"Conv": 27, "BatchNormalization": 27,
                                               "Relu": 27, "GlobalAveragePool": 1,
                                               "Flatten": 1, "Gemm": 1})
    assert ops["fc_autoencoder"] == Counter({"Gemm": 10, "BatchNormalization": 9, "Relu": 9})
    depthwise = [n for n in BUILDERS["mobilenet_v1_025"](0).graph.node if n.op_type == "Conv"
                 and next(a.i for a in n.attribute if a.name == "group") > 1]
    assert len(depthwise) == 13


def test_resnet8_shortcuts_are_strided_1x1() -> None:
    m = BUILDERS["resnet8"](0)
    short = [n for n in m.graph.node if n.op_type == "Conv" and "shortcut" in n.name]
    assert [n.name for n in short] == ["stack2.shortcut", "stack3.shortcut"]
    for n in short:
        attrs = {a.name: list(a.ints) for a in n.attribute if a.ints}
        assert attrs["kernel_shape"] == [1, 1] and attrs["strides"] == [2, 2]


def test_global_pool_variants_agree() -> None:
    """AveragePool over the whole map and GlobalAveragePool compute the same function."""
    for name, alt in (("ds_cnn", "ds_cnn_gap"), ("resnet8_small", None)):
        x = np.random.default_rng(2).uniform(-1, 1, SHAPES[name][0]).astype(np.float32)
        other = BUILDERS[alt](0) if alt else BUILDERS[name](0, global_pool=True)
        np.testing.assert_allclose(_run(BUILDERS[name](0), x), _run(other, x), rtol=1e-5,
                                   atol=1e-5)
