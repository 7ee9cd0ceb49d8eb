"""Quantized ONNX in (issue 6): QDQ and QOperator models made by onnxruntime.quantization and a
QONNX model (tests/fixtures/make_quantized.py) compile with their own scales and zero points,
stay within 1 LSB of onnxruntime's integer outputs, and simulate bit-exactly in Icarus; every
unsupported form is one clear error naming the node."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_e2e import compile_and_simulate

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from edgehls import frontend, golden, pipeline, qimport, report
from edgehls.errors import EdgeHLSError, OptionError, UnsupportedError

FIX = Path(__file__).parent / "fixtures" / "quantized"
DIGITS = np.load(Path(__file__).resolve().parents[1] / "examples" / "digits_cnn" / "data.npz")


def compiled(path: Path, **kw: object):
    return pipeline.run_passes(frontend.load(path), pipeline.passes(pipeline.Options(**kw)))


def qonnx_reference(model: onnx.ModelProto) -> onnx.ModelProto:
    """The QONNX model with each Quant/BipolarQuant spelt in standard ops, for onnxruntime:
    Quant(x) = (clip(round(x / s + z), lo, hi) - z) * s (Round is half to even, as ROUND)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes, inits = [], list(m.graph.initializer)
    values = {i.name: numpy_helper.to_array(i) for i in inits}
    for n in m.graph.node:
        if n.domain != qimport.QONNX_DOMAINS[0]:
            nodes.append(n)
            continue
        x, o = n.input[0], n.output[0]
        if n.op_type == "BipolarQuant":
            w = np.where(values[x] >= 0, 1.0, -1.0) * values[n.input[1]]
            inits.append(numpy_helper.from_array(w.astype(np.float32), o))
            continue
        a = {k.name: helper.get_attribute_value(k) for k in n.attribute}
        bits, signed, narrow = int(values[n.input[3]]), a.get("signed", 1), a.get("narrow", 0)
        lo = -(1 << (bits - 1)) + narrow if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        inits += [numpy_helper.from_array(np.float32(v), f"{o}.{k}")
                  for k, v in (("lo", lo), ("hi", hi))]
        s, z = n.input[1], n.input[2]
        nodes += [helper.make_node("Div", [x, s], [f"{o}.d"]),
                  helper.make_node("Add", [f"{o}.d", z], [f"{o}.a"]),
                  helper.make_node("Round", [f"{o}.a"], [f"{o}.r"]),
                  helper.make_node("Clip", [f"{o}.r", f"{o}.lo", f"{o}.hi"], [f"{o}.c"]),
                  helper.make_node("Sub", [f"{o}.c", z], [f"{o}.s"]),
                  helper.make_node("Mul", [f"{o}.s", s], [o])]
    m.graph.ClearField("node")
    m.graph.node.extend(nodes)
    m.graph.ClearField("initializer")
    m.graph.initializer.extend(inits)
    m.ClearField("opset_import")
    m.opset_import.extend([helper.make_opsetid("", 13)])
    return m


def lsb_diff(path: Path, x: np.ndarray, ref_model: onnx.ModelProto | None = None
             ) -> tuple[int, float]:
    """(max |ours - onnxruntime| in output LSBs, fraction of elements that differ)."""
    g = compiled(path)
    xs = golden.model_samples(g, x)  # the model's layout (NHWC for tf2onnx) -> the IR's
    ours = golden.run_int_samples(g, golden.quantize_input(g, xs)).reshape(len(x), -1)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # the reference keeps unused bit-width constants: no warnings
    sess = ort.InferenceSession((ref_model or onnx.load(str(path))).SerializeToString(), so)
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: xi[None].astype(np.float32)})[0] for xi in x])
    ref_q = np.round(ref.reshape(len(x), -1) / g.tensor(g.outputs[0]).q.scale).astype(np.int64)
    diff = np.abs(ours - ref_q)
    return int(diff.max()), float((diff > 0).mean())


@pytest.mark.parametrize(("name", "source"), [("digits_cnn_qdq", "QDQ"),
                                              ("digits_cnn_qop", "QOperator")])
def test_onnxruntime_models_within_one_lsb(name: str, source: str) -> None:
    path = FIX / f"{name}.onnx"
    worst, frac = lsb_diff(path, DIGITS["x_test"][:100])
    assert worst <= 1 and frac < 0.02, (worst, frac)
    g = compiled(path)
    assert g.imported is not None and source in g.imported.source.split("+")
    rep_acc = report.accuracy(
        frontend.load(path), g, DIGITS["x_test"], DIGITS["y_test"])
    assert rep_acc["quantized"] >= 0.98 and rep_acc["agreement"] >= 0.99


@pytest.mark.parametrize(("name", "shape"), [("resnet_block_qdq", (3, 8, 8)),
                                             ("tf_nhwc_qdq", (8, 8, 1))])
def test_residual_and_nhwc_within_one_lsb(name: str, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(7).normal(size=(32, *shape))
    worst, frac = lsb_diff(FIX / f"{name}.onnx", x)
    assert worst <= 1 and frac < 0.05, (worst, frac)


def test_qonnx_model_matches_its_semantics() -> None:
    path = FIX / "qonnx_cnn.onnx"
    g = compiled(path)
    assert g.imported.source == "QONNX"
    conv, fc = g.node("conv"), g.node("fc")
    assert conv.op.wbits == 4 and np.abs(g.const(conv, "weight")).max() <= 7
    assert set(np.unique(g.const(fc, "weight"))) <= {-1, 1} and fc.op.wbits == 2
    assert g.tensor(conv.outputs[0]).q.bits == 4  # 4-bit unsigned activations
    x = np.random.default_rng(3).uniform(-1.5, 1.5, (32, 1, 8, 8))
    worst, frac = lsb_diff(path, x, qonnx_reference(onnx.load(str(path))))
    assert worst <= 1 and frac < 0.05, (worst, frac)


@pytest.mark.parametrize(("name", "pe"), [
    ("digits_cnn_qdq", (4, 4)), ("digits_cnn_qop", (8, 8)), ("qonnx_cnn", (4, 4)),
    pytest.param("resnet_block_qdq", (3, 5), marks=pytest.mark.slow),
    pytest.param("tf_nhwc_qdq", (4, 4), marks=pytest.mark.slow)])
def test_rtl_bit_exact(tmp_path: Path, name: str, pe: tuple[int, int]) -> None:
    compile_and_simulate(FIX / f"{name}.onnx", tmp_path / "d", name,
                         pipeline.Options(pe=pe, samples=2))
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["numerics"]["scale"] == "imported"
    rep = json.loads((tmp_path / "d" / "report.json").read_text())
    assert rep["quantization"]["imported"]


# -- bad input ---------------------------------------------------------------------------------

def _save(tmp_path: Path, nodes: list, inits: list, opset: int = 19) -> Path:
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _c(name: str, v: object, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(v, dtype=dtype), name)


def _qdq_mlp(w_zp: int = 0, act_scale: object = 0.05, second_q: bool = True,
             dq_scale: float = 0.05) -> tuple[list, list]:
    """x -> Q/DQ -> MatMul (DQ int8 weights) -> Q/DQ -> y."""
    w = np.arange(12).reshape(4, 3) - 6
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "s2", "z"], ["xf"], name="dqx"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dqw"),
             helper.make_node("MatMul", ["xf", "w"], ["h" if second_q else "y"], name="mm")]
    if second_q:
        nodes += [helper.make_node("QuantizeLinear", ["h", "s", "z"], ["hq"], name="qh"),
                  helper.make_node("DequantizeLinear", ["hq", "s", "z"], ["y"], name="dqh")]
    inits = [_c("s", act_scale), _c("s2", dq_scale), _c("z", 0, np.int8),
             _c("wq", w, np.int8), _c("ws", 0.1), _c("wz", w_zp, np.int8)]
    return nodes, inits


@pytest.mark.parametrize("w_zp", [0, 3])
def test_a_plain_qdq_mlp_compiles(tmp_path: Path, w_zp: int) -> None:
    """Weights come back as the model's integers, centred on their zero point."""
    g = compiled(_save(tmp_path, *_qdq_mlp(w_zp=w_zp)))
    assert g.imported.source == "QDQ"
    np.testing.assert_array_equal(g.const(g.node("mm"), "weight"),
                                  np.arange(12).reshape(4, 3) - 6 - w_zp)
    assert g.node("mm").op.wbits == 8 and bool(w_zp) == any("zero point" in n and "centred"
                                                             in n for n in g.notes)


@pytest.mark.parametrize(("kw", "match"), [
    (dict(act_scale=[0.05, 0.1]), "node 'qx' (QuantizeLinear): a per-axis scale on an "
                                  "activation is not supported"),
    (dict(dq_scale=0.1), "node 'dqx' (DequantizeLinear): dequantizes 'xq' as int8 scale 0.1 "
                         "zero point 0, but it was quantized as int8 scale 0.05"),
    (dict(second_q=False), "tensor 'y' (output of node 'mm' (Dense)) is not quantized in this "
                           "quantized model"),
    (dict(act_scale=-1.0), "node 'qx' (QuantizeLinear): scale -1.0 is not a positive number"),
])
def test_rejected(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(EdgeHLSError, match=match.replace("(", r"\(").replace(")", r"\)")):
        compiled(_save(tmp_path, *_qdq_mlp(**kw)))


def test_dynamic_quantization_rejected(tmp_path: Path) -> None:
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dq"),
             helper.make_node("MatMulInteger", ["xq", "wq", "xz"], ["y32"], name="mmi"),
             helper.make_node("Cast", ["y32"], ["y"], to=TensorProto.FLOAT)]
    path = _save(tmp_path, nodes, [_c("wq", np.ones((4, 3)), np.uint8)])
    with pytest.raises(UnsupportedError, match="node 'mmi' \\(MatMulInteger\\): supported only "
                                               "as static quantization"):
        frontend.load(path)


def test_precision_file_conflicts_with_imported_model(tmp_path: Path) -> None:
    path = _save(tmp_path, *_qdq_mlp())
    with pytest.raises(OptionError, match="--precision does not apply"):
        compiled(path, precision={"mm": {"wbits": 4}})


def test_qlinear_average_pool_from_onnxruntime(tmp_path: Path) -> None:
    """A QOperator model with com.microsoft QLinearAveragePool, quantized here (a second)."""
    from make_quantized import ort_quantize

    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    inits = [_c("w", rng.normal(0, 0.5, (4, 1, 3, 3))), _c("b", rng.normal(0, 0.1, 4)),
             _c("fw", rng.normal(0, 0.3, (3, 16))), _c("fb", rng.normal(0, 0.1, 3))]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    x = rng.normal(size=(32, 1, 4, 4))
    ort_quantize(src, dst, x, qdq=False, per_channel=False, signed_acts=False)
    assert "QLinearAveragePool" in {n.op_type for n in onnx.load(str(dst)).graph.node}
    worst, _ = lsb_diff(dst, x)
    assert worst <= 1


def test_unsupported_quantized_op_is_named(tmp_path: Path) -> None:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="qx"),
             helper.make_node("QLinearSigmoid", ["xq", "s", "z", "s", "z"], ["yq"],
                              name="sig", domain="com.microsoft"),
             helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"], name="dq")]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [_c("s", 0.1), _c("z", 0, np.uint8)])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("com.microsoft", 1)]),
              str(path))
    with pytest.raises(UnsupportedError, match="node 'sig' \\(QLinearSigmoid\\): quantized op "
                                               "not supported; supported: QLinearConv"):
        frontend.load(path)


@pytest.mark.parametrize("op", ["MatMulInteger", "ConvInteger"])
def test_static_integer_ops_within_one_lsb(tmp_path: Path, op: str) -> None:
    """x -> QuantizeLinear -> ConvInteger/MatMulInteger (uint8 weights, zero point 128) -> Cast
    -> Mul(scale product) -> Add(bias) -> Relu -> Q/DQ: the static form of the integer ops."""
    rng = np.random.default_rng(4)
    conv = op == "ConvInteger"
    shape, wshape = ([1, 2, 5, 5], (3, 2, 3, 3)) if conv else ([1, 6], (6, 4))
    out = [1, 3, 3, 3] if conv else [1, 4]
    sx, sw = 0.02, 0.01
    w = rng.integers(0, 256, wshape)
    bias = rng.normal(0, 0.1, (3, 1, 1) if conv else (4,))
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
             helper.make_node(op, ["xq", "w", "zx", "zw"], ["acc"], name="int_op"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["accf", "c"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "bias"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"], name="qy"),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["y"], name="dqy")]
    inits = [_c("sx", sx), _c("zx", 128, np.uint8), _c("w", w, np.uint8),
             _c("zw", 128, np.uint8), _c("c", sx * sw), _c("bias", bias), _c("sy", 0.01),
             _c("zy", 0, np.uint8)]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    gq = compiled(path)
    node = gq.node("int_op")
    assert node.op.wbits == 9 and np.abs(gq.const(node, "weight")).max() <= 128
    worst, _ = lsb_diff(path, rng.uniform(-2, 2, (32, *shape[1:])))
    assert worst <= 1
    if conv:  # and in RTL
        compile_and_simulate(path, tmp_path / "d", op, pipeline.Options(pe=(3, 5), samples=2))


def test_dynamic_integer_op_rejected(tmp_path: Path) -> None:
    nodes = [helper.make_node("MatMulInteger", ["xq", "wq"], ["y32"], name="mmi"),
             helper.make_node("Cast", ["y32"], ["y"], to=TensorProto.FLOAT)]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("xq", TensorProto.UINT8,
                                                                     [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [_c("wq", np.ones((4, 3)), np.uint8)])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedError, match="node 'mmi' \\(MatMulInteger\\): supported only "
                                               "as static quantization"):
        frontend.load(path)
