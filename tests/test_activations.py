"""LeakyRelu and PRelu (issue 4): frontend, canonicalize (fused into the Conv, Gemm or residual
Add before it; a per-channel layer of its own when it cannot fuse), the float path against
onnxruntime, the numerics of the negative-side (mult_n, shift_n) pair, and the design bit-exact
in Icarus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_e2e import compile_and_simulate

from edgehls import golden, ir, numerics, pipeline, romgen, tiler
from edgehls.errors import OptionError, UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

N = helper.make_node
SLOPES = [0.25, 0.0, 0.5, 1.0, 0.125]


def _w(name: str, *shape: int, seed: int = 0, scale: float = 0.5) -> onnx.TensorProto:
    value = np.random.default_rng(seed).normal(0.0, scale, shape)
    return numpy_helper.from_array(value.astype(np.float32), name)


def _save(path: Path, nodes: list, inits: list, in_shape: list[int], out_shape: list[int]
          ) -> Path:
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def leaky_net(path: Path) -> Path:
    """Conv -> LeakyRelu (fused) -> MaxPool -> LeakyRelu (after a pool whose Conv already has
    one: a layer of its own) -> Conv -> residual Add -> LeakyRelu (fused into the Add) ->
    Flatten -> Gemm -> PRelu with per-column slopes (fused into the classifier)."""
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             N("LeakyRelu", ["c1"], ["l1"], alpha=0.1),
             N("MaxPool", ["l1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             N("LeakyRelu", ["p1"], ["l2"], alpha=0.2),
             N("Conv", ["l2", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             N("Add", ["c2", "l2"], ["a"]),
             N("LeakyRelu", ["a"], ["l3"], alpha=0.05),
             N("Flatten", ["l3"], ["f"]),
             N("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
             N("PRelu", ["g", "slope"], ["y"])]
    inits = [_w("w1", 6, 3, 3, 3, seed=1), _w("b1", 6, seed=2, scale=0.1),
             _w("w2", 6, 6, 3, 3, seed=3, scale=0.3), _w("b2", 6, seed=4, scale=0.1),
             _w("w3", 5, 96, seed=5, scale=0.1), _w("b3", 5, seed=6, scale=0.1),
             numpy_helper.from_array(np.array(SLOPES, np.float32), "slope")]
    return _save(path, nodes, inits, [1, 3, 8, 8], [1, 5])


def dense_leaky(path: Path) -> Path:
    """An MLP: Gemm -> LeakyRelu (fused into the Dense) -> Gemm -> PRelu (scalar slope)."""
    nodes = [N("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             N("LeakyRelu", ["h"], ["l"], alpha=0.3),
             N("Gemm", ["l", "w2", "b2"], ["g"], transB=1),
             N("PRelu", ["g", "s"], ["y"])]
    inits = [_w("w1", 12, 10, seed=1), _w("b1", 12, seed=2, scale=0.1),
             _w("w2", 7, 12, seed=3), _w("b2", 7, seed=4, scale=0.1),
             numpy_helper.from_array(np.array([0.5], np.float32), "s")]
    return _save(path, nodes, inits, [1, 10], [1, 7])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return leaky_net(tmp_path_factory.mktemp("leaky") / "model.onnx")


def _ort_check(path: Path, *graphs: ir.Graph) -> None:
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.standard_normal(sess.get_inputs()[0].shape).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        for g in graphs:
            np.testing.assert_allclose(golden.run_float(g, x).reshape(ref.shape), ref,
                                       atol=1e-5)


def test_leaky_canonical_structure_and_float(net: Path) -> None:
    g = load(net)
    assert [n.op.alpha for n in g if isinstance(n.op, ir.LeakyRelu)][:3] == pytest.approx(
        [0.1, 0.2, 0.05])
    c = Canonicalize()(g)
    c.verify()
    acts = {n.name: getattr(n.op, "act", None) for n in c if not isinstance(n.op, ir.Input)}
    # fused into Conv_0 (through nothing), Add_5 and the Gemm made a Conv; LeakyRelu_3 reads a
    # MaxPool of a Conv that already has one, so it is a depthwise 1x1 layer of its own
    assert acts == {"Conv_0": "leaky", "MaxPool_2": None, "LeakyRelu_3": "leaky",
                    "Conv_4": "none", "Add_5": "leaky", "Gemm_8": "leaky"}
    assert c.node("LeakyRelu_3").op.group == 6
    np.testing.assert_allclose(c.const(c.node("Conv_0"), "alpha"), np.full(6, 0.1))
    np.testing.assert_allclose(c.const(c.node("Gemm_8"), "alpha"), SLOPES)
    _ort_check(net, g, c)


def test_dense_leaky_float_and_quantized(tmp_path: Path) -> None:
    path = dense_leaky(tmp_path / "mlp.onnx")
    g = load(path)
    c = Canonicalize()(g)
    assert [n.op for n in c if isinstance(n.op, ir.Dense)] == [ir.Dense(leaky=True)] * 2
    _ort_check(path, g, c)
    data = np.random.default_rng(2).uniform(-1, 1, (64, 1, 10))
    q = Quantize(calib=data)(c)
    _quantized_close(c, q, data)


def _quantized_close(c: ir.Graph, q: ir.Graph, data: np.ndarray) -> None:
    """The quantized output within a few output LSBs of the float one (random weights)."""
    ref = golden.run_float_samples(c, data)
    got = golden.dequantize_output(q, golden.run_int_samples(q, golden.quantize_input(q, data)))
    lsb = q.tensor(q.outputs[0]).q.scale
    assert np.abs(got - ref).max() <= 16 * lsb + 0.05 * np.abs(ref).max()


def test_leaky_quantized(net: Path) -> None:
    c = Canonicalize()(load(net))
    data = np.random.default_rng(2).uniform(-1, 1, (64, 1, 3, 8, 8))
    q = Quantize(calib=data)(c)
    for name in ("Conv_0", "LeakyRelu_3", "Add_5", "Gemm_8"):
        node = q.node(name)
        alpha = c.const(c.node(name), "alpha")
        mult, shift = q.const(node, "mult"), q.const(node, "shift")
        mult_n, shift_n = q.const(node, "mult_n"), q.const(node, "shift_n")
        np.testing.assert_array_equal((mult_n, shift_n), numerics.leaky_params(alpha, mult,
                                                                                shift))
        real = mult_n * 2.0 ** -shift_n / (mult * 2.0 ** -shift)
        np.testing.assert_allclose(real, alpha, rtol=2.0 ** -numerics.MULT_BITS)
        assert q.tensor(node.outputs[0]).q.signed
    assert sum("LeakyRelu" in n and "relative error" in n for n in q.notes) == 4
    _quantized_close(c, q, data)


def test_post_words_carry_the_negative_pair(net: Path) -> None:
    q = Quantize(calib=np.random.default_rng(2).uniform(-1, 1, (16, 1, 3, 8, 8)))(
        Canonicalize()(load(net)))
    s = tiler.schedule(q, 4, 4)
    p = romgen.hw_params(q, s)
    assert p.NEG == 1 and p.PW == p.ACC_W + 2 * (p.MB + p.SB) + 2 * p.AW
    cols = romgen.post_words(q, s, p)
    for plan, node in zip(s.layers, tiler.dense_layers(q), strict=True):
        if isinstance(node.op, ir.QMaxPool):  # the maximum passes through: 1, 0
            mult_n, shift_n = np.ones(plan.N, np.int64), np.zeros(plan.N, np.int64)
        else:
            has = node.const_name("mult_n") is not None
            mult_n = q.const(node, "mult_n" if has else "mult")
            shift_n = q.const(node, "shift_n" if has else "shift")
        for n in range(plan.N):
            word = cols[n % s.C][plan.p_base + n // s.C] >> (p.ACC_W + p.MB + p.SB + 2 * p.AW)
            assert (word % (1 << p.MB), word >> p.MB) == (int(mult_n[n]), int(shift_n[n]))


def test_leaky_params_numerics() -> None:
    mult, shift = np.array([1, 4, 1, 1]), np.array([7, 0, 0, 20])
    alpha = np.array([0.1, 0.01, 0.0, 1.0])
    mn, sn = numerics.leaky_params(alpha, mult, shift)
    assert mn[2] == 0 and sn[2] == 0  # alpha 0: negatives become 0
    live = alpha > 0
    assert (mn[live] >= 1 << (numerics.MULT_BITS - 1)).all() and (mn <= numerics.MAX_MULT).all()
    assert numerics.leaky_error(alpha, mult, shift, mn, sn) <= 2.0 ** -numerics.MULT_BITS
    acc = np.array([[-1000, 1000, -5, -(1 << 20)]])
    y = numerics.requantize(acc, mult, shift, -128, 127, neg=(mn, sn))
    # negatives by the slope (alpha * acc * 2**-shift * mult, rounded), positives unchanged
    expect = [np.floor(-1000 * 0.1 / 128 + 0.5), 127, 0, -1]
    np.testing.assert_array_equal(y[0], expect)
    with pytest.raises(OptionError, match="negative"):
        numerics.leaky_params(np.array([-0.1]), np.array([1]), np.array([0]))
    with pytest.raises(OptionError, match="exceeds"):
        numerics.leaky_params(np.array([2.0]), np.array([1 << 15]), np.array([0]))


def test_prelu_rejections(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "w"], ["c"]), N("PRelu", ["c", "s"], ["y"])]
    bad = numpy_helper.from_array(np.full((1, 1, 4), 0.1, np.float32), "s")  # along W
    path = _save(tmp_path / "m.onnx", nodes, [_w("w", 2, 2, 1, 1), bad], [1, 2, 4, 4],
                 [1, 2, 4, 4])
    with pytest.raises(UnsupportedError, match="'PRelu_1' .PRelu.: only a per-channel"):
        load(path)
    neg = numpy_helper.from_array(np.array([-0.1, 0.1], np.float32).reshape(2, 1, 1), "s")
    path = _save(tmp_path / "n.onnx", nodes, [_w("w", 2, 2, 1, 1), neg], [1, 2, 4, 4],
                 [1, 2, 4, 4])
    with pytest.raises(UnsupportedError, match="slopes .* only finite slopes >= 0"):
        load(path)


def test_leaky_e2e_4x4(tmp_path: Path, net: Path) -> None:
    calib = np.random.default_rng(3).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    opts = pipeline.Options(pe=(4, 4), samples=2, calib=calib)
    compile_and_simulate(net, tmp_path / "design", "leaky_net", opts)


def test_dense_leaky_e2e_3x5(tmp_path: Path) -> None:
    path = dense_leaky(tmp_path / "mlp.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=4)
    compile_and_simulate(path, tmp_path / "design", "dense_leaky", opts)


def ceil_pool_net(path: Path) -> Path:
    """Conv (signed output: padding must not win) -> MaxPool 3x3 stride 2 ceil_mode on 8x8 (the
    last window runs past the map: 4x4 out, floor mode gives 3x3) -> Flatten -> Gemm."""
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             N("MaxPool", ["c1"], ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             N("Flatten", ["p"], ["f"]),
             N("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    inits = [_w("w1", 4, 2, 3, 3, seed=1), _w("b1", 4, seed=2, scale=0.1),
             _w("w2", 3, 64, seed=3, scale=0.2), _w("b2", 3, seed=4, scale=0.1)]
    return _save(path, nodes, inits, [1, 2, 8, 8], [1, 3])


def test_maxpool_ceil_mode_e2e_4x4(tmp_path: Path) -> None:
    path = ceil_pool_net(tmp_path / "m.onnx")
    g = load(path)
    assert g.node("MaxPool_1").op.pads == (0, 0, 1, 1)  # ceil mode as end padding
    _ort_check(path, g, Canonicalize()(g))
    opts = pipeline.Options(pe=(4, 4), samples=2)
    compile_and_simulate(path, tmp_path / "design", "ceil_pool_net", opts)


@pytest.mark.slow
@pytest.mark.parametrize("pe,bits", [((8, 8), (8, 8)), ((3, 5), (6, 5))])
def test_leaky_e2e_slow(tmp_path: Path, net: Path, pe: tuple[int, int],
                        bits: tuple[int, int]) -> None:
    calib = np.random.default_rng(3).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    opts = pipeline.Options(pe=pe, wbits=bits[0], abits=bits[1], samples=2, calib=calib)
    compile_and_simulate(net, tmp_path / "design", "leaky_net", opts)
