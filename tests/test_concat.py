"""Concat on channels (issue 4): frontend, canonicalize, the float path against onnxruntime,
quantization (each channel requantized from its input's scale), the tiler's per-source
layer-table entries, and SqueezeNet-fire / Inception-style designs bit-exact in Icarus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import test_activations
from onnx import helper, numpy_helper
from test_e2e import compile_and_simulate

from edgehls import golden, ir, lowering, numerics, pipeline, tiler
from edgehls.errors import UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

N = helper.make_node
_save, _w = test_activations._save, test_activations._w  # the same helpers


def fire_net(path: Path) -> Path:
    """A SqueezeNet fire module (squeeze 1x1 -> expand 1x1 || expand 3x3, each ReLU, Concat),
    then an Inception-style block of three branches of 3, 6 and 2 channels (a signed 1x1 Conv,
    a MaxPool, a LeakyRelu 3x3 Conv) joined by a Concat along axis -3, a Relu the Concat's
    non-negative inputs make redundant on the first, and a classifier."""
    nodes = [N("Conv", ["x", "sq", "sqb"], ["s"]), N("Relu", ["s"], ["sr"]),
             N("Conv", ["sr", "e1", "e1b"], ["a1"]), N("Relu", ["a1"], ["a1r"]),
             N("Conv", ["sr", "e3", "e3b"], ["a3"], pads=[1, 1, 1, 1]), N("Relu", ["a3"], ["a3r"]),
             N("Concat", ["a1r", "a3r"], ["fire"], axis=1),
             N("Relu", ["fire"], ["fr"]),
             N("Conv", ["fr", "m", "mb"], ["mid"], pads=[1, 1, 1, 1]),
             N("Conv", ["mid", "b1", "b1b"], ["br1"]),
             N("MaxPool", ["mid"], ["br2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             N("Conv", ["mid", "b3", "b3b"], ["c3"], pads=[1, 1, 1, 1]),
             N("LeakyRelu", ["c3"], ["br3"], alpha=0.1),
             N("Concat", ["br1", "br2", "br3"], ["inc"], axis=-3),
             N("GlobalAveragePool", ["inc"], ["gap"]), N("Flatten", ["gap"], ["f"]),
             N("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    inits = [_w("sq", 4, 3, 1, 1, seed=1), _w("sqb", 4, seed=2, scale=0.1),
             _w("e1", 5, 4, 1, 1, seed=3), _w("e1b", 5, seed=4, scale=0.1),
             _w("e3", 7, 4, 3, 3, seed=5, scale=0.3), _w("e3b", 7, seed=6, scale=0.1),
             _w("m", 6, 12, 3, 3, seed=7, scale=0.15), _w("mb", 6, seed=8, scale=0.1),
             _w("b1", 3, 6, 1, 1, seed=9), _w("b1b", 3, seed=10, scale=0.1),
             _w("b3", 2, 6, 3, 3, seed=11, scale=0.2), _w("b3b", 2, seed=12, scale=0.1),
             _w("fc", 4, 11, seed=13), _w("fcb", 4, seed=14, scale=0.1)]
    return _save(path, nodes, inits, [1, 3, 6, 6], [1, 4])


def dense_concat(path: Path) -> Path:
    """Two Gemm branches of 5 and 3 features concatenated on [N, C], then a Gemm."""
    nodes = [N("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
             N("Gemm", ["x", "w2", "b2"], ["h2"], transB=1), N("Relu", ["h2"], ["h2r"]),
             N("Concat", ["h1", "h2r", "h1"], ["c"], axis=1),
             N("Gemm", ["c", "w3", "b3"], ["y"], transB=1)]
    inits = [_w("w1", 5, 6, seed=1), _w("b1", 5, seed=2, scale=0.1),
             _w("w2", 3, 6, seed=3), _w("b2", 3, seed=4, scale=0.1),
             _w("w3", 4, 13, seed=5), _w("b3", 4, seed=6, scale=0.1)]
    return _save(path, nodes, inits, [1, 6], [1, 4])


@pytest.fixture(scope="module")
def fire(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fire_net(tmp_path_factory.mktemp("fire") / "model.onnx")


CALIB = np.random.default_rng(3).uniform(-1, 1, (32, 3, 6, 6)).astype(np.float32)


def _ort_check(path: Path, *graphs: ir.Graph) -> None:
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.uniform(-1, 1, sess.get_inputs()[0].shape).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        for g in graphs:
            np.testing.assert_allclose(golden.run_float(g, x).reshape(ref.shape), ref,
                                       atol=1e-5)


def test_canonical_structure_and_float(fire: Path) -> None:
    g = load(fire)
    c = Canonicalize()(g)
    c.verify()
    cats = [n for n in c if isinstance(n.op, ir.Concat)]
    assert [n.inputs for n in cats] == [("a1", "a3"), ("br1", "br2", "c3")]
    assert "Relu_7" not in c  # the fire Concat of two ReLU outputs is already non-negative
    assert c.tensor("inc").shape == (1, 11, 6, 6)
    _ort_check(fire, g, c)


def test_quantized(fire: Path) -> None:
    c = Canonicalize()(load(fire))
    q = Quantize(calib=CALIB)(c)
    for name in ("Concat_6", "Concat_13"):
        node = q.node(name)
        out = q.tensor(node.outputs[0]).q
        fracs = np.concatenate([np.full(q.tensor(t).shape[1], q.tensor(t).q.frac)
                                for t in node.inputs])
        mult, shift = numerics.requant_params(fracs, out.frac)
        np.testing.assert_array_equal(q.const(node, "mult"), mult)
        np.testing.assert_array_equal(q.const(node, "shift"), shift)
        assert (node.op.lo, node.op.hi) == (out.lo, out.hi)
    assert not q.tensor("fire").q.signed and q.tensor("inc").q.signed
    xq = golden.quantize_input(q, CALIB[:8])
    vals = golden.run_int_all_samples(q, xq)
    # a Concat of inputs at one scale is exact: the joined integers themselves
    node = q.node("Concat_6")
    if len({q.tensor(t).q.frac for t in node.inputs} | {q.tensor("fire").q.frac}) == 1:
        np.testing.assert_array_equal(vals["fire"], np.concatenate(
            [vals["a1"], vals["a3"]], axis=2))
    ref = golden.run_float_samples(c, CALIB[:8])
    got = golden.dequantize_output(q, vals[q.outputs[0]])
    assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max()


def test_tiler_extra_layer_tables(fire: Path) -> None:
    q = Quantize(calib=CALIB)(Canonicalize()(load(fire)))
    s = tiler.schedule(q, 4, 4)
    layers = lowering.compute_layers(q)
    li = next(i for i, n in enumerate(layers) if n.name == "Concat_13")
    # sources of 3, 6 and 2 channels at B = 4: 1, 2 and 1 words per pixel; the 6-channel one
    # steps by 2 words, so it gets a layer-table entry of its own after the layers'
    assert s.extra_tables and [lay for lay, _ in s.extra_tables] == [li]
    extra = s.extra_tables[0][1]
    assert extra.a_step == 2 and s.layers[li].geom.a_step == 1
    tiles = [t for t in s.tiles if t.layer == li]
    assert {t.table for t in tiles if 3 <= t.krow0 < 9} == {len(layers)}
    assert {t.table for t in tiles if not 3 <= t.krow0 < 9} == {li}
    assert s.layers[li].K == 11 and s.layers[li].macs == 36 * 11


def test_rejections(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "w"], ["c"]), N("Concat", ["c", "x"], ["y"], axis=2)]
    path = _save(tmp_path / "a.onnx", nodes, [_w("w", 2, 2, 1, 1)], [1, 2, 4, 4], [1, 2, 8, 4])
    with pytest.raises(UnsupportedError, match=r"'Concat_1' \(Concat\): only a Concat along "
                                               r"the channel axis \(1\).*got axis 2"):
        load(path)
    nodes = [N("Conv", ["x", "w"], ["c"]), N("Concat", ["c", "k"], ["y"], axis=1)]
    k = numpy_helper.from_array(np.zeros((1, 1, 4, 4), np.float32), "k")
    path = _save(tmp_path / "b.onnx", nodes, [_w("w", 2, 2, 1, 1), k], [1, 2, 4, 4],
                 [1, 3, 4, 4])
    with pytest.raises(UnsupportedError, match="a constant input is not supported"):
        load(path)


def test_dense_concat_float(tmp_path: Path) -> None:
    path = dense_concat(tmp_path / "m.onnx")
    g = load(path)
    _ort_check(path, g, Canonicalize()(g))


def test_fire_e2e_4x4(tmp_path: Path, fire: Path) -> None:
    opts = pipeline.Options(pe=(4, 4), samples=2, calib=CALIB)
    compile_and_simulate(fire, tmp_path / "design", "fire_net", opts)


def test_dense_concat_e2e_3x5(tmp_path: Path) -> None:
    path = dense_concat(tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=4)
    compile_and_simulate(path, tmp_path / "design", "dense_concat", opts)


@pytest.mark.slow
@pytest.mark.parametrize("pe", [(3, 5), (8, 8)])
def test_fire_e2e_slow(tmp_path: Path, fire: Path, pe: tuple[int, int]) -> None:
    opts = pipeline.Options(pe=pe, samples=2, calib=CALIB)
    compile_and_simulate(fire, tmp_path / "design", "fire_net", opts)
