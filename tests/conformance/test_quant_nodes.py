"""ONNX backend node tests of the quantization ops (issue 6), from the onnx==1.22.0 wheel as in
test_onnx_node.py. Each test is passed, or rejected with a clear error naming the node; none is
computed wrongly.

- QuantizeLinear: the pinned format of the input quantizes x to y (centred q + zero point);
  exactly, but for ties (x / scale exactly half-way), where edgehls rounds half up and ONNX half
  to even: 1 LSB there.
- DequantizeLinear: the folded constant equals y exactly.
- QLinearConv, QLinearMatMul: wrapped as float x -> QuantizeLinear -> op -> DequantizeLinear,
  compiled through canonicalize and quantize; the golden integer model's outputs are within 1 LSB
  of y.
``bench/quant.py`` prints the table op x (passed, rejected, failed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conformance import wheel
from edgehls import golden, numerics, pipeline, qimport
from edgehls.errors import EdgeHLSError
from edgehls.frontend import load

try:
    WHEEL = wheel.wheel_path()
except wheel.WheelUnavailable as e:
    pytest.skip(f"ONNX backend node tests unavailable: {e}", allow_module_level=True)

OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")
TESTS = {t.name: t for t in wheel.node_tests(WHEEL, OPS)}


@dataclass(frozen=True)
class Result:
    test: str
    op: str
    status: str  # passed | rejected | failed
    detail: str = ""


def _arrays(t: wheel.NodeTest) -> tuple[list[np.ndarray], np.ndarray]:
    return [wheel.tensor(b) for b in t.inputs], wheel.tensor(t.outputs[0])


def _model(t: wheel.NodeTest, nodes: list, inputs: list, consts: dict[str, np.ndarray],
           out_shape: list[int]) -> onnx.ModelProto:
    src = t.proto()
    g = helper.make_graph(
        nodes, "t", inputs,
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    m = helper.make_model(g, opset_imports=list(src.opset_import))
    m.ir_version = src.ir_version
    return m


def check_quantize(t: wheel.NodeTest) -> Result:
    (x, *params), y = _arrays(t)
    node = t.proto().graph.node[0]
    names = list(node.input)
    consts = dict(zip(names[1:], params, strict=False))
    dq = helper.make_node("DequantizeLinear", [node.output[0], *names[1:]], ["d"],
                          name="dq", **{a.name: helper.get_attribute_value(a)
                                        for a in node.attribute
                                        if a.name in ("axis", "block_size")})
    m = _model(t, [node, dq, helper.make_node("Identity", ["d"], ["out"])],
               [helper.make_tensor_value_info(names[0], onnx.TensorProto.FLOAT, x.shape)],
               consts, list(x.shape))
    imp = qimport.lower(m)
    q = imp.formats[names[0]]
    ours = numerics.quantize_scaled(x, q.scale, q.lo, q.hi) + q.zero_point
    diff = np.abs(ours - y.astype(np.int64))
    ties = np.isclose(np.abs(x / q.scale) % 1.0, 0.5)
    if diff.max(initial=0) > 1 or (diff[~ties] > 0).any():
        return Result(t.name, t.op, "failed", f"quantized {ours.tolist()} != {y.tolist()}")
    return Result(t.name, t.op, "passed")


def check_dequantize(t: wheel.NodeTest) -> Result:
    arrays, y = _arrays(t)
    node = t.proto().graph.node[0]
    consts = dict(zip(node.input, arrays, strict=False))
    m = _model(t, [node, helper.make_node("Add", ["in", node.output[0]], ["out"])],
               [helper.make_tensor_value_info("in", onnx.TensorProto.FLOAT, y.shape)],
               consts, list(y.shape))
    imp = qimport.lower(m)
    got = next(numpy_helper.to_array(i) for i in imp.model.graph.initializer
               if i.name == node.output[0])
    if got.shape != y.shape or not np.array_equal(got, y.astype(np.float32)):
        return Result(t.name, t.op, "failed", f"dequantized {got.tolist()} != {y.tolist()}")
    return Result(t.name, t.op, "passed")


def check_qlinear(t: wheel.NodeTest, tmp) -> Result:
    arrays, y = _arrays(t)
    node = t.proto().graph.node[0]
    names = list(node.input)
    consts = dict(zip(names[1:], arrays[1:], strict=False))
    x, xs, xz = arrays[0], arrays[1], arrays[2]
    xf = ((x.astype(np.int64) - xz.astype(np.int64)) * xs.astype(np.float64)).astype(np.float32)
    ys, yz = (arrays[6], arrays[7])
    q = helper.make_node("QuantizeLinear", ["xf", names[1], names[2]], [names[0]], name="qx")
    dq = helper.make_node("DequantizeLinear", [node.output[0], names[6], names[7]], ["d"],
                          name="dqy")
    m = _model(t, [q, node, dq, helper.make_node("Identity", ["d"], ["out"])],
               [helper.make_tensor_value_info("xf", onnx.TensorProto.FLOAT, x.shape)],
               consts, list(y.shape))
    path = tmp / f"{t.name}.onnx"
    onnx.save(m, str(path))
    g = pipeline.run_passes(load(path), pipeline.passes(pipeline.Options()))
    out = golden.run_int(g, golden.quantize_input(g, xf)).reshape(y.shape)
    got = out + int(np.asarray(yz).reshape(-1)[0])
    diff = np.abs(got - y.astype(np.int64))
    if diff.max(initial=0) > 1:
        return Result(t.name, t.op, "failed", f"{got.tolist()} != {y.tolist()}")
    del ys
    return Result(t.name, t.op, "passed")


@functools.cache
def result(name: str, tmp) -> Result:
    t = TESTS[name]
    try:
        if t.op == "QuantizeLinear":
            return check_quantize(t)
        if t.op == "DequantizeLinear":
            return check_dequantize(t)
        return check_qlinear(t, tmp)
    except EdgeHLSError as e:
        return Result(t.name, t.op, "rejected", str(e))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("qnodes")


@pytest.mark.parametrize("name", sorted(TESTS))
def test_node(name: str, tmp) -> None:
    r = result(name, tmp)
    assert r.status != "failed", f"{name}: {r.detail}"
    if r.status == "rejected":
        assert "node " in r.detail or "tensor " in r.detail, r.detail


@pytest.mark.parametrize("op", OPS)
def test_op_passes_somewhere(op: str, tmp) -> None:
    assert any(result(n, tmp).status == "passed" for n, t in TESTS.items() if t.op == op)
