"""Residual Add end to end in the compiler: frontend (Add/Sum of two activations -> AddAct),
canonicalize (BN folding and Relu fusion on a DAG), golden float and int, quantize (QAdd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgehls import golden, ir, numerics
from edgehls.errors import OptionError, UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.prune import Prune
from edgehls.passes.quantize import Quantize
from edgehls.passes.share import Share

BLOCK = Path(__file__).parent / "fixtures" / "resnet_block.onnx"
DATA = np.random.default_rng(5).normal(size=(32, 3, 8, 8))
N = helper.make_node


def _w(name: str, *shape: int, seed: int = 0, scale: float = 0.5) -> onnx.TensorProto:
    value = np.random.default_rng(seed).normal(0.0, scale, shape)
    return numpy_helper.from_array(value.astype(np.float32), name)


def save(tmp_path: Path, nodes: list, inits: list, in_shape: list[int]) -> Path:
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path


def ort_check(path: Path, *graphs: ir.Graph, samples: int = 4) -> None:
    """run_float of every graph matches onnxruntime on random inputs."""
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(1)
    for _ in range(samples):
        x = rng.standard_normal(sess.get_inputs()[0].shape).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        for g in graphs:
            np.testing.assert_allclose(golden.run_float(g, x).reshape(ref.shape), ref,
                                       atol=1e-5)


def kinds(g: ir.Graph) -> dict[str, str]:
    return {n.name: n.op.describe() for n in g if not isinstance(n.op, ir.Input)}


def ref_add(a: np.ndarray, b: np.ndarray, node: ir.Node, q: ir.Graph) -> np.ndarray:
    """numerics.add element by element in Python integers; channels are axis 1."""
    wa, wb = int(q.const(node, "wa")[0]), int(q.const(node, "wb")[0])
    mult, shift = q.const(node, "mult"), q.const(node, "shift")
    out = np.empty(a.shape, dtype=np.int64)
    for idx in np.ndindex(a.shape):
        c = idx[1]
        s, m = int(shift[c]), int(mult[c])
        acc = int(a[idx]) * wa + int(b[idx]) * wb
        y = (acc * m + ((1 << (s - 1)) if s > 0 else 0)) >> s
        out[idx] = min(max(y, node.op.lo), node.op.hi)
    return out


# -- the ResNet-style fixture -------------------------------------------------------------------

def test_block_matches_onnxruntime() -> None:
    g = load(BLOCK)
    c = Canonicalize()(g)
    ort_check(BLOCK, g, c)


def test_block_structure() -> None:
    g = load(BLOCK)
    assert [n.name for n in g if isinstance(n.op, ir.AddAct)] == ["add1", "add2"]
    assert g.node("add1").inputs == ("bn1b", "relu0")  # ONNX input order kept
    c = Canonicalize()(g)
    c.verify()
    assert kinds(c) == {
        "conv0": kinds(c)["conv0"], "b1a": kinds(c)["b1a"], "b1b": kinds(c)["b1b"],
        "add1": "AddAct(act=relu)", "b2a": kinds(c)["b2a"], "b2b": kinds(c)["b2b"],
        "b2s": kinds(c)["b2s"], "add2": "AddAct(act=relu)", "gap": kinds(c)["gap"],
        "fc": "Dense(relu=False)"}
    # every BN folded into its Conv (each Conv's output has the BN as only reader); the Relu
    # after a BN fused into the Conv, the Relu after an Add into the AddAct
    assert {n.name: n.op.act for n in c if isinstance(n.op, ir.Conv)} == {
        "conv0": "relu", "b1a": "relu", "b1b": "none", "b2a": "relu", "b2b": "none",
        "b2s": "none", "gap": "none"}
    assert c.node("add1").inputs == ("b1b", "conv0")
    assert c.node("add2").inputs == ("b2s", "b2b")
    # the residual branches: a tensor with two readers
    assert sorted(c.consumers("conv0")) == ["add1", "b1a"]
    assert sorted(c.consumers("add1")) == ["b2a", "b2s"]
    assert {type(n.op) for n in c} == {ir.Input, ir.Conv, ir.AddAct, ir.Dense}


def test_block_deterministic() -> None:
    a, b = Canonicalize()(load(BLOCK)), Canonicalize()(load(BLOCK))
    assert a.summary() == b.summary()
    qa, qb = Quantize(calib=DATA)(a), Quantize(calib=DATA)(b)
    assert qa.summary() == qb.summary() and qa.consts.keys() == qb.consts.keys()
    for name in qa.consts:
        np.testing.assert_array_equal(qa.consts[name], qb.consts[name])
    xq = golden.quantize_input(qa, DATA[:4])
    np.testing.assert_array_equal(golden.run_int_samples(qa, xq), golden.run_int_samples(qb, xq))


# -- quantization -------------------------------------------------------------------------------

def test_quantized_structure() -> None:
    c = Canonicalize()(load(BLOCK))
    q = Quantize(calib=DATA)(c)
    q.verify()
    assert [n.name for n in q if isinstance(n.op, ir.QAdd)] == ["add1", "add2"]
    for name in ("add1", "add2"):
        node = q.node(name)
        fa, fb = (q.tensor(t).q.frac for t in node.inputs)
        out = q.tensor(node.outputs[0]).q
        wa, wb = q.const(node, "wa"), q.const(node, "wb")
        assert wa.shape == wb.shape == (1,) and wa.dtype == wb.dtype == np.int64
        assert (int(wa[0]), int(wb[0])) == numerics.add_weights(fa, fb, 8)[:2]
        assert min(int(wa[0]), int(wb[0])) == 1  # the finer input is not scaled
        cch = q.tensor(node.outputs[0]).shape[1]
        mult, shift = numerics.requant_params(np.full(cch, max(fa, fb)), out.frac)
        np.testing.assert_array_equal(q.const(node, "mult"), mult)
        np.testing.assert_array_equal(q.const(node, "shift"), shift)
        assert node.op == ir.QAdd(relu=True, wbits=8, acc_bits=numerics.acc_bits(8, 8, 2),
                                  lo=0, hi=255)
        assert not out.signed and (out.lo, out.hi) == (0, 255)
    assert q.tensor("b1b").q.signed  # a Conv without act before the Add: signed


def test_qadd_bit_exact() -> None:
    q = Quantize(calib=DATA)(Canonicalize()(load(BLOCK)))
    vals = golden.run_int_all_samples(q, golden.quantize_input(q, DATA[:3]))
    for name in ("add1", "add2"):
        node = q.node(name)
        a, b = (vals[t].reshape(-1, *vals[t].shape[2:]) for t in node.inputs)
        np.testing.assert_array_equal(vals[name].reshape(a.shape), ref_add(a, b, node, q))


def test_qadd_within_half_an_lsb() -> None:
    """The aligned sum is exact: the only error is the output rounding (ReLU is 1-Lipschitz)."""
    q = Quantize(calib=DATA)(Canonicalize()(load(BLOCK)))
    vals = golden.run_int_all_samples(q, golden.quantize_input(q, DATA))
    for name in ("add1", "add2"):
        node = q.node(name)
        a, b = (numerics.dequantize(vals[t], q.tensor(t).q.frac) for t in node.inputs)
        fout = q.tensor(name).q
        got = numerics.dequantize(vals[name], fout.frac)
        assert np.abs(got - np.maximum(a + b, 0.0)).max() <= 0.5 * fout.scale


@pytest.mark.parametrize("bits", [16, 8, 6])
def test_quantized_close_to_float(bits: int) -> None:
    c = Canonicalize()(load(BLOCK))
    y = golden.run_float_samples(c, DATA)
    q = Quantize(bits, bits, calib=DATA)(c)
    yq = golden.dequantize_output(q, golden.run_int_samples(q, golden.quantize_input(q, DATA)))
    err = np.abs(yq - y).max()
    bound = {16: 8 * q.tensor("fc").q.scale, 8: 0.05 * np.abs(y).max(),
             6: 0.2 * np.abs(y).max()}[bits]
    assert err <= bound, (bits, err, bound)


def _scaled_residual(tmp_path: Path, gain: float) -> ir.Graph:
    """y = x + gain * Conv1x1(x): the branch's scale is about ``gain`` times the input's."""
    w = numpy_helper.from_array(np.eye(2, dtype=np.float32).reshape(2, 2, 1, 1) * gain, "w")
    nodes = [N("Conv", ["x", "w"], ["c"], name="conv"), N("Add", ["x", "c"], ["y"], name="add")]
    return Canonicalize()(load(save(tmp_path, nodes, [w], [1, 2, 4, 4])))


def test_add_weights_scales_too_far_apart(tmp_path: Path) -> None:
    g = _scaled_residual(tmp_path, 2.0 ** -10)
    data = np.random.default_rng(0).uniform(-1, 1, (16, 1, 2, 4, 4))
    with pytest.raises(OptionError, match=r"node 'add' \(AddAct\): residual Add: its inputs' "
                                          r"scales differ by 2\*\*10, more than 8-bit weights"):
        Quantize(calib=data)(g)
    q = Quantize(12, 8, calib=data)(g)  # 2**10 <= 2047: 12-bit weights align them
    node = q.node("add")
    assert (int(q.const(node, "wa")[0]), int(q.const(node, "wb")[0])) == (1 << 10, 1)
    y = golden.run_float_samples(g, data)
    yq = golden.dequantize_output(q, golden.run_int_samples(q, golden.quantize_input(q, data)))
    assert np.abs(yq - y).max() <= q.tensor("y").q.scale  # input rounding + output rounding


# -- frontend and canonicalize on DAGs ----------------------------------------------------------

def test_bn_not_folded_into_conv_with_two_readers(tmp_path: Path) -> None:
    """c = Conv(x) is read by the BN and by the Add: folding would change the Add's input."""
    bn = [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in
          (("s", [1.5, 0.5, 2.0]), ("b", [0.1, -0.2, 0.3]), ("m", [0.2, 0.0, -0.1]),
           ("v", [1.0, 0.5, 2.0]))]
    nodes = [N("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             N("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
             N("Add", ["n", "c"], ["y"], name="add")]
    path = save(tmp_path, nodes, [_w("w", 3, 3, 3, 3), *bn], [1, 3, 5, 5])
    g = load(path)
    c = Canonicalize()(g)
    assert kinds(c)["bn"].startswith("Conv(kernel=(1, 1)") and "group=3" in kinds(c)["bn"]
    assert c.node("add").inputs == ("n", "c")
    ort_check(path, g, c)


def test_relu_not_fused_into_add_with_two_readers(tmp_path: Path) -> None:
    nodes = [N("Relu", ["x"], ["r"], name="r"), N("Add", ["x", "r"], ["a"], name="add"),
             N("Relu", ["a"], ["b"], name="relu"), N("Add", ["b", "a"], ["y"], name="add2")]
    path = save(tmp_path, nodes, [], [1, 2, 3, 3])
    g = load(path)
    ort_check(path, g)
    with pytest.raises(UnsupportedError, match=r"node 'r' \(Relu\): cannot be mapped"):
        Canonicalize()(g)  # x is the graph input: the first Relu has no layer to fuse into
    nodes[0] = N("Conv", ["x", "w"], ["r"], name="r")
    g = load(save(tmp_path, nodes, [_w("w", 2, 2, 1, 1)], [1, 2, 3, 3]))
    with pytest.raises(UnsupportedError, match=r"node 'relu' \(Relu\): cannot be mapped to a "
                                               r"Dense, Conv, MaxPool or residual Add layer: "
                                               r"a Relu must directly follow .* residual Add"):
        Canonicalize()(g)


def test_relu_not_fused_into_conv_with_two_readers(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "w"], ["c"], name="conv"), N("Relu", ["c"], ["r"], name="relu"),
             N("Add", ["r", "c"], ["y"], name="add")]
    g = load(save(tmp_path, nodes, [_w("w", 2, 2, 1, 1)], [1, 2, 3, 3]))
    with pytest.raises(UnsupportedError, match=r"node 'relu' \(Relu\): cannot be mapped"):
        Canonicalize()(g)


def test_relu_through_maxpool_and_already_relu(tmp_path: Path) -> None:
    """Add -> MaxPool -> Relu fuses into the Add; a second Relu of a ReLU'd Add is dropped even
    though the Add has other readers."""
    nodes = [N("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             N("Add", ["x", "c"], ["a"], name="add"),
             N("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             N("Relu", ["p"], ["r"], name="relu"),
             N("Conv", ["r", "w2"], ["d"], name="conv2", pads=[1, 1, 1, 1]),
             N("Relu", ["r"], ["r2"], name="relu2"), N("Sum", ["d", "r2"], ["y"], name="sum")]
    path = save(tmp_path, nodes, [_w("w", 2, 2, 3, 3), _w("w2", 2, 2, 3, 3, seed=1)],
                [1, 2, 6, 6])
    g = load(path)
    c = Canonicalize()(g)
    assert kinds(c) == {"conv": kinds(c)["conv"], "add": "AddAct(act=relu)",
                        "pool": kinds(c)["pool"], "conv2": kinds(c)["conv2"],
                        "sum": "AddAct(act=none)"}
    assert c.node("sum").inputs == ("d", "p")
    ort_check(path, g, c)
    q = Quantize(calib=np.random.default_rng(0).normal(size=(16, 1, 2, 6, 6)))(c)
    assert q.tensor("p").q == q.tensor("a").q and not q.tensor("a").q.signed
    assert q.tensor("y").q.signed and not q.node("sum").op.relu


def test_mlp_residual_rank2(tmp_path: Path) -> None:
    """[1, 8]: x + Gemm(Relu(Gemm(x))), then Relu: channels are axis 1 of a 2-D tensor."""
    nodes = [N("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"), N("Relu", ["h"], ["r"], name="r"),
             N("Gemm", ["r", "w2"], ["o"], name="fc2"), N("Add", ["o", "x"], ["a"], name="add"),
             N("Relu", ["a"], ["y"], name="relu")]
    inits = [_w("w1", 8, 8), _w("b1", 8, seed=1), _w("w2", 8, 8, seed=2)]
    path = save(tmp_path, nodes, inits, [1, 8])
    g = load(path)
    c = Canonicalize()(g)
    assert kinds(c) == {"fc1": "Dense(relu=True)", "fc2": "Dense(relu=False)",
                        "add": "AddAct(act=relu)"}
    ort_check(path, g, c)
    data = np.random.default_rng(2).normal(size=(64, 8))
    q = Quantize(calib=data)(c)
    assert q.tensor("x").q.signed and q.node("add").op.relu
    vals = golden.run_int_all_samples(q, golden.quantize_input(q, data))
    node = q.node("add")
    a, b = (vals[t].reshape(-1, 8) for t in node.inputs)
    assert c.outputs == q.outputs == ["a"]  # the fused Relu's output name is gone
    np.testing.assert_array_equal(vals["a"].reshape(-1, 8), ref_add(a, b, node, q))
    y = golden.run_float_samples(c, data)
    assert np.abs(golden.dequantize_output(q, vals["a"]) - y).max() <= 0.05 * np.abs(y).max()


def test_add_of_the_same_tensor(tmp_path: Path) -> None:
    path = save(tmp_path, [N("Relu", ["x"], ["r"], name="r"), N("Add", ["r", "r"], ["y"],
                                                                name="add")], [], [1, 3])
    g = load(path)
    assert g.node("add").op == ir.AddAct() and g.node("add").inputs == ("r", "r")
    ort_check(path, g)


def test_sum(tmp_path: Path) -> None:
    nodes = [N("Relu", ["x"], ["r"], name="r"), N("Sum", ["r"], ["s"], name="one"),
             N("Sum", ["s", "x"], ["t"], name="two"),
             N("Sum", ["t", "c"], ["y"], name="bias")]
    path = save(tmp_path, nodes, [_w("c", 1, 4)], [1, 4])
    g = load(path)
    assert [n.op.kind for n in g] == ["Input", "Relu", "Identity", "AddAct", "Add"]
    ort_check(path, g)
    nodes = [N("Relu", ["x"], ["r"], name="r"), N("Sum", ["r", "x", "r"], ["y"], name="three")]
    with pytest.raises(UnsupportedError, match=r"node 'three' \(Sum\): a Sum of 3 inputs is not "
                                               r"supported; only one or two"):
        load(save(tmp_path, nodes, [], [1, 4]))


@pytest.mark.parametrize("op", ["Add", "Sum"])
def test_broadcast_between_activations_rejected(tmp_path: Path, op: str) -> None:
    nodes = [N("GlobalAveragePool", ["x"], ["p"], name="gap"),
             N(op, ["x", "p"], ["y"], name="res")]
    with pytest.raises(UnsupportedError, match=rf"node 'res' \({op}\): broadcasting between two "
                                               r"activations is not supported \(inputs "
                                               r"\[1, 4, 3, 3\] and \[1, 4, 1, 1\]"):
        load(save(tmp_path, nodes, [], [1, 4, 3, 3]))


def test_reshape_before_add_rejected(tmp_path: Path) -> None:
    shape = numpy_helper.from_array(np.array([1, 3, 2, 2], np.int64), "shape")
    nodes = [N("Relu", ["x"], ["r"], name="r"),
             N("Reshape", ["x", "shape"], ["a"], name="ra"),
             N("Reshape", ["r", "shape"], ["b"], name="rb"),
             N("Add", ["a", "b"], ["y"], name="add")]
    g = load(save(tmp_path, nodes, [shape], [1, 2, 3, 2]))
    with pytest.raises(UnsupportedError, match=r"node 'ra' \(Reshape\): reshaping \[1, 2, 3, 2\] "
                                               r"to \[1, 3, 2, 2\] before a residual Add"):
        Canonicalize()(g)


def test_prune_and_share_pass_adds_through() -> None:
    c = Canonicalize()(load(BLOCK))
    p = Prune("unstructured", 0.5)(c)
    assert [n.op for n in p if isinstance(n.op, ir.AddAct)] == [ir.AddAct("relu")] * 2
    q = Quantize(calib=DATA)(p)
    s = Share(3)(q)
    for name in ("add1", "add2"):
        assert s.node(name) == q.node(name)
    xq = golden.quantize_input(s, DATA[:2])
    golden.run_int_samples(s, xq)


def test_bn_after_add_and_clip_after_add(tmp_path: Path) -> None:
    """A BN after an Add cannot fold (an Add has no weights): a depthwise 1x1 Conv. A Clip(0, 6)
    after an Add has no unit to run on: rejected by name."""
    bn = [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in
          (("s", [1.5, 0.5]), ("b", [0.1, -0.2]), ("m", [0.2, 0.0]), ("v", [1.0, 0.5]))]
    nodes = [N("Conv", ["x", "w"], ["c"], name="conv"), N("Add", ["c", "x"], ["a"], name="add"),
             N("BatchNormalization", ["a", "s", "b", "m", "v"], ["y"], name="bn")]
    path = save(tmp_path, nodes, [_w("w", 2, 2, 1, 1), *bn], [1, 2, 3, 3])
    g = load(path)
    c = Canonicalize()(g)
    assert kinds(c)["add"] == "AddAct(act=none)" and "group=2" in kinds(c)["bn"]
    ort_check(path, g, c)
    six = [numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    nodes[2] = N("Clip", ["a", "lo", "hi"], ["y"], name="clip")
    g = load(save(tmp_path, nodes, [_w("w", 2, 2, 1, 1), *six], [1, 2, 3, 3]))
    with pytest.raises(UnsupportedError, match=r"node 'clip' \(Clip\): .* so after a residual "
                                               r"Add"):
        Canonicalize()(g)
