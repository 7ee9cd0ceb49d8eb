"""Quantize on CNN graphs: structure (QConv/QMaxPool, formats, clip bounds) and numbers (each
layer within its quantization bound of the float layer, the network close to the float one)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_golden_cnn import DATA, cnn, float_cnn_steps, float_conv, float_ref  # noqa: F401

from edgehls import golden, ir, numerics
from edgehls.errors import PassError
from edgehls.passes.quantize import Quantize

KINDS = ["Input", "QConv", "QMaxPool", "QConv", "QConv", "QDense"]


def frac_acc(q: ir.Graph, node: ir.Node) -> np.ndarray:
    """Accumulator frac per channel, read back from (mult, shift) and the output format."""
    mult, shift = q.const(node, "mult"), q.const(node, "shift")
    s = np.where(mult > 1, -np.log2(mult).astype(np.int64), shift)
    return q.tensor(node.outputs[0]).q.frac + s


def layer_errors(g: ir.Graph, q: ir.Graph, data: np.ndarray) -> dict[str, float]:
    """Per Conv layer: max |int output - float layer on the int input| / its bound, where the
    bound is half a weight LSB times sum |x| over the window, half a bias LSB and half an
    output LSB (ReLU and clip are 1-Lipschitz and calibration saw this data: no saturation)."""
    ints = golden.run_int_all_samples(q, golden.quantize_input(q, data))
    out = {}
    for node in q.nodes():
        if not isinstance(node.op, ir.QConv):
            continue
        fin, fout = q.tensor(node.inputs[0]).q, q.tensor(node.outputs[0]).q
        x = numerics.dequantize(ints[node.inputs[0]], fin.frac).reshape(-1, *ints[
            node.inputs[0]].shape[2:])
        fn = g.node(node.name)
        y = float_conv(x, g.const(fn, "weight"), g.const(fn, "bias"), fn.op)
        got = numerics.dequantize(ints[node.outputs[0]], fout.frac).reshape(y.shape)
        fa = frac_acc(q, node)
        fw = fa - fin.frac
        window = float_conv(np.abs(x), np.ones(g.const(fn, "weight").shape),
                            np.zeros(y.shape[1]), dataclasses.replace(fn.op, act="none"))
        bound = (0.5 * 2.0 ** -fw[None, :, None, None] * window
                 + 0.5 * 2.0 ** -fa[None, :, None, None] + 0.5 * fout.scale)
        out[node.name] = float((np.abs(got - y) / bound).max())
    return out


def test_structure() -> None:
    g = cnn()
    before = g.summary()
    q = Quantize(calib=DATA)(g)
    q.verify()
    assert g.summary() == before
    assert [n.op.kind for n in q] == KINDS
    fmt = {t: q.tensor(t).q for t in q.tensors}
    assert fmt["x"].signed and not fmt["conv1"].signed  # ReLU -> unsigned
    assert fmt["pool"] == fmt["conv1"]  # a max keeps the scale
    assert not fmt["dw"].signed and fmt["full"].signed and fmt["fc"].signed
    for node in q:
        if isinstance(node.op, ir.QConv):
            fop, w = g.node(node.name).op, g.const(g.node(node.name), "weight")
            assert (node.op.kernel, node.op.strides, node.op.pads, node.op.dilations,
                    node.op.group) == (fop.kernel, fop.strides, fop.pads, fop.dilations,
                                       fop.group)
            k = w.shape[1] * w.shape[2] * w.shape[3]
            assert node.op.acc_bits == numerics.acc_bits(8, 8, k) and node.op.wbits == 8
            assert node.op.relu == (fop.act != "none")
            wq = q.const(node, "weight")
            assert wq.shape == w.shape and wq.dtype == np.int64 and np.abs(wq).max() <= 127
            assert np.abs(wq).max(axis=(1, 2, 3)).min() >= 64  # per channel: each scale used
            assert q.const(node, "bias").shape == (w.shape[0],)
            assert dict(node.consts) == {r: f"{node.name}.{r}{'_q' * (r in ('weight', 'bias'))}"
                                         for r in ("weight", "bias", "mult", "shift")}
    assert q.node("pool").op == ir.QMaxPool((3, 3), (2, 2), (1, 1, 1, 1), (1, 1))
    assert not q.node("pool").consts
    assert (q.node("conv1").op.lo, q.node("conv1").op.hi) == (0, 255)
    assert (q.node("full").op.lo, q.node("full").op.hi) == (-128, 127)
    # ReLU6-style clip (0, 0.5): hi is the clip bound at the output scale, if it is below 255
    assert q.node("dw").op.lo == 0
    assert q.node("dw").op.hi == min(255, round(0.5 * 2 ** fmt["dw"].frac))
    assert not any(name.endswith((".weight", ".bias")) for name in q.consts)
    assert q.tensor("fc").shape == (1, 10)


def test_clip_bounds() -> None:
    """Clip (lo < 0) stays signed, both bounds quantized at the output scale; a clip above the
    calibrated range leaves the format's own bound."""
    g = cnn(dw_act="clip")
    g.replace_node(dataclasses.replace(g.node("dw"), op=dataclasses.replace(
        g.node("dw").op, clip=(-0.25, 0.3))))
    q = Quantize(calib=DATA)(g)
    f = q.tensor("dw").q
    assert f.signed and f.frac >= 8  # max |y| <= 0.3 -> at least 2**8 steps a unit
    assert (q.node("dw").op.lo, q.node("dw").op.hi) == (
        max(-128, -round(0.25 * 2 ** f.frac)), min(127, round(0.3 * 2 ** f.frac)))
    g.replace_node(dataclasses.replace(g.node("dw"), op=dataclasses.replace(
        g.node("dw").op, clip=(0.0, 1e6))))
    q = Quantize(calib=DATA)(g)
    assert not q.tensor("dw").q.signed and (q.node("dw").op.lo, q.node("dw").op.hi) == (0, 255)


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
def test_each_layer_within_its_bound(bits: int) -> None:
    g = cnn(mult=2, dw_act="relu")
    q = Quantize(bits, bits, calib=DATA)(g)
    errs = layer_errors(g, q, DATA)
    assert set(errs) == {"conv1", "dw", "full"}
    assert max(errs.values()) <= 1.0 + 1e-9, errs


@pytest.mark.parametrize("act", ["clip", "relu", "none"])
def test_network_close_to_float(act: str) -> None:
    g = cnn(dw_act=act)
    y = float_ref(g, DATA)["fc"]
    errs = {}
    for bits in (16, 8, 4):
        q = Quantize(bits, bits, calib=DATA)(g)
        yq = golden.run_int_samples(q, golden.quantize_input(q, DATA))
        errs[bits] = np.abs(golden.dequantize_output(q, yq) - y).max()
        lsb = q.tensor("fc").q.scale
        if bits == 16:
            assert errs[bits] <= 8 * lsb  # a few output LSBs
    assert errs[16] < errs[8] < 0.05 * np.abs(y).max()
    assert errs[8] < errs[4] < np.abs(y).max()


@pytest.mark.parametrize("bits", range(2, 17))
def test_all_bit_widths(bits: int) -> None:
    q = Quantize(bits, bits, calib=DATA)(cnn())
    q.verify()
    vals = golden.run_int_all_samples(q, golden.quantize_input(q, DATA[:4]))
    for node in q:
        t = q.tensor(node.outputs[0])
        assert t.q.bits == bits
        assert vals[t.name].min() >= t.q.lo and vals[t.name].max() <= t.q.hi
        if isinstance(node.op, ir.QConv):
            assert np.abs(q.const(node, "weight")).max() <= numerics.weight_max(bits)
            assert np.abs(q.const(node, "bias")).max() <= numerics.bias_bound(
                bits, bits, q.const(node, "weight")[0].size)


def test_per_tensor() -> None:
    q = Quantize(calib=DATA, per_channel=False)(cnn())
    for node in q:
        if isinstance(node.op, ir.QConv):
            assert len(set(frac_acc(q, node).tolist())) == 1
    assert max(layer_errors(cnn(), q, DATA).values()) <= 1.0 + 1e-9


def test_determinism_and_random_calibration() -> None:
    g = cnn(mult=2)
    a, b = Quantize()(g), Quantize()(g)
    assert any("random inputs" in n for n in a.notes)
    assert a.consts.keys() == b.consts.keys() and a.tensors == b.tensors
    for name in a.consts:
        np.testing.assert_array_equal(a.consts[name], b.consts[name])
    xq = golden.quantize_input(a, DATA[:4])
    np.testing.assert_array_equal(golden.run_int_samples(a, xq), golden.run_int_samples(b, xq))


def test_bias_never_clips() -> None:
    """A conv channel with tiny weights and a large bias gets a coarser weight scale."""
    g = cnn()
    w = np.array(g.consts["conv1.weight"])
    w[3] *= 1e-6
    b = np.array(g.consts["conv1.bias"])
    b[3] = 1.0
    g.consts["conv1.weight"], g.consts["conv1.bias"] = w, b
    q = Quantize(calib=DATA)(g)
    lim = numerics.bias_bound(8, 8, 27)
    assert 0 < np.abs(q.const(q.node("conv1"), "bias")).max() <= lim
    assert layer_errors(g, q, DATA)["conv1"] <= 1.0 + 1e-9


def _with_op(g: ir.Graph, name: str, **changes) -> ir.Graph:
    g.replace_node(dataclasses.replace(g.node(name), op=dataclasses.replace(g.node(name).op,
                                                                            **changes)))
    return g


@pytest.mark.parametrize("name,changes,match", [
    ("dw", {"group": 4}, r"node 'dw' \(Conv\): weight \[8, 1, 3, 3\] .* group 4"),
    ("dw", {"group": 3}, r"node 'dw' \(Conv\): weight .*Cout a multiple of group"),
    ("conv1", {"kernel": (2, 3)}, r"node 'conv1' \(Conv\): weight \[8, 3, 3, 3\]"),
    ("conv1", {"strides": (2, 1)},
     r"node 'conv1' \(Conv\): output \[1, 8, 11, 13\] .*gives \[1, 8, 6, 13\]"),
    ("dw", {"act": "tanh"}, r"node 'dw' \(Conv\): activation 'tanh'"),
    ("dw", {"clip": (1.0, 0.0)}, r"node 'dw' \(Conv\): .* clip lo <= hi"),
    ("pool", {"pads": (0, 0, 0, 0)}, r"'pool' \(MaxPool\): output \[1, 8, 6, 7\] .*\[1, 8, 5, 6\]"),
])
def test_rejects_inconsistent_layers(name: str, changes: dict, match: str) -> None:
    with pytest.raises(PassError, match=match):
        Quantize(calib=DATA)(_with_op(cnn(), name, **changes))


def test_rejects_all_padding_pool_window() -> None:
    """kernel 2, dilation 2, pad 1 over a length-1 axis: the only window is padding only."""
    g = ir.Graph("p")
    g.add_tensor(ir.Tensor("x", (1, 1, 1, 4)))
    g.add_tensor(ir.Tensor("y", (1, 1, 1, 4)))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    g.add_node(ir.Node("mp", ir.MaxPool((2, 1), (1, 1), (1, 0, 1, 0), (2, 1)), ("x",), ("y",)))
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(PassError, match=r"'mp' \(MaxPool\).* a window of padding only"):
        Quantize()(g)


def test_requires_canonical_graph() -> None:
    g = cnn()
    g.add_tensor(ir.Tensor("r", (1, 10)))
    g.add_node(ir.Node("r", ir.Relu(), ("fc",), ("r",)))
    with pytest.raises(PassError, match=r"node 'r' is Relu: run Canonicalize first"):
        Quantize()(g)
