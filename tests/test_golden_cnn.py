"""golden.run_int on QConv/QMaxPool graphs: bit-exact to loops over the numerics contract, and
the float reference CNN graphs the quantizer tests share (``cnn``, ``float_ref``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_numerics_conv import ref_conv, ref_maxpool

from edgehls import golden, ir
from edgehls.errors import PassError
from edgehls.passes.quantize import Quantize

# --- a float CNN and an independent numpy float reference --------------------------------------


def cnn(c: int = 3, hw: tuple[int, int] = (12, 12), mult: int = 1, dw_act: str = "clip",
        seed: int = 0) -> ir.Graph:
    """Input [1, c, H, W] -> conv1 (3x3, 8 ch, asymmetric pads, ReLU) -> pool (MaxPool 3x3 s2
    pad 1) -> dw (depthwise 3x3 dilation 2, channel multiplier ``mult``, act ``dw_act``) ->
    full (kernel = whole map, 16 ch, no act) -> fc (Dense 16 -> 10)."""
    rng = np.random.default_rng(seed)
    g = ir.Graph("cnn")
    g.add_tensor(ir.Tensor("x", (1, c, *hw)))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    state = {"src": "x", "shape": (1, c, *hw)}

    def conv(name: str, cout: int, op: ir.Conv) -> None:
        _, cin, h, w = state["shape"]
        (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = (op.kernel, op.strides, op.pads,
                                                          op.dilations)
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        shape = (1, cout, oh, ow)
        g.add_tensor(ir.Tensor(name, shape))
        consts = ()
        if isinstance(op, ir.Conv):
            fan = cin // op.group * kh * kw
            wt = g.add_const(f"{name}.weight",
                             rng.normal(size=(cout, cin // op.group, kh, kw)) / np.sqrt(fan))
            bt = g.add_const(f"{name}.bias", rng.normal(scale=0.1, size=cout))
            consts = (("weight", wt), ("bias", bt))
        g.add_node(ir.Node(name, op, (state["src"],), (name,), consts))
        state.update(src=name, shape=shape)

    conv("conv1", 8, ir.Conv((3, 3), (1, 1), (1, 2, 0, 1), (1, 1), 1, "relu"))
    conv("pool", 8, ir.MaxPool((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)))
    conv("dw", 8 * mult, ir.Conv((3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 8, dw_act, (0.0, 0.5)))
    conv("full", 16, ir.Conv(state["shape"][2:], act="none"))
    g.add_tensor(ir.Tensor("fc", (1, 10)))
    w = g.add_const("fc.weight", rng.normal(size=(16, 10)) / 4.0)
    b = g.add_const("fc.bias", rng.normal(scale=0.1, size=10))
    g.add_node(ir.Node("fc", ir.Dense(), ("full",), ("fc",), (("weight", w), ("bias", b))))
    g.inputs, g.outputs = ["x"], ["fc"]
    g.verify()
    return g


def float_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, op: ir.Conv) -> np.ndarray:
    """ONNX Conv (+ act) of x [N, C, H, W] in float64, one kernel tap at a time."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = op.kernel, op.strides, op.pads, op.dilations
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cout, cg = w.shape[:2]
    y = np.zeros((x.shape[0], cout, oh, ow)) + b[None, :, None, None]
    for o in range(cout):
        gi = o // (cout // op.group)
        for i in range(kh):
            for j in range(kw):
                tap = xp[:, gi * cg:(gi + 1) * cg, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                         j * dw:j * dw + sw * (ow - 1) + 1:sw]
                y[:, o] += np.einsum("nchw,c->nhw", tap, w[o, :, i, j])
    if op.act == "relu":
        return np.maximum(y, 0.0)
    return np.clip(y, *op.clip) if op.act == "clip" else y


def float_maxpool(x: np.ndarray, op: ir.MaxPool) -> np.ndarray:
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = op.kernel, op.strides, op.pads, op.dilations
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    taps = [xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    return np.max(taps, axis=0)


def _float_step(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    x = xs[0].reshape(-1, *g.tensor(n.inputs[0]).shape[1:])
    if isinstance(n.op, ir.MaxPool):
        return float_maxpool(x, n.op)
    return float_conv(x, g.const(n, "weight").astype(np.float64),
                      g.const(n, "bias").astype(np.float64), n.op)


def float_ref(g: ir.Graph, data: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of a float CNN graph for samples [S, *input_shape], without golden."""
    vals = {g.inputs[0]: np.asarray(data, np.float64).reshape(-1, *g.tensor(g.inputs[0]).shape)}
    for n in g.nodes():
        if isinstance(n.op, ir.Input):
            continue
        x = vals[n.inputs[0]]
        if isinstance(n.op, ir.Dense):
            w = g.const(n, "weight")
            y = x.reshape(x.shape[0], -1, w.shape[0]) @ w + g.const(n, "bias")
            y = np.maximum(y, 0.0) if n.op.relu else y
        else:
            y = _float_step(g, n, [x])
        vals[n.outputs[0]] = y.reshape(x.shape[0], *g.tensor(n.outputs[0]).shape)
    return vals


@pytest.fixture(autouse=True)
def float_cnn_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantize calibrates with golden.run_float: lend it this module's float Conv/MaxPool
    while golden has none of its own (golden's, once they exist, are used as they are)."""
    for op in (ir.Conv, ir.MaxPool):
        if op not in golden.FLOAT_STEPS:
            monkeypatch.setitem(golden.FLOAT_STEPS, op, _float_step)


DATA = np.random.default_rng(3).normal(size=(24, 3, 12, 12))

# --- run_int ---------------------------------------------------------------------------------


def loop_int(q: ir.Graph, xq: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of one integer inference, each layer by the loop references."""
    vals = {q.inputs[0]: xq.reshape(q.tensor(q.inputs[0]).shape)}
    for n in q.nodes():
        if isinstance(n.op, ir.Input):
            continue
        x, op = vals[n.inputs[0]], n.op
        if isinstance(op, ir.QDense):
            w = q.const(n, "weight")
            acc = x.reshape(-1, w.shape[0]) @ w + q.const(n, "bias")
            s = q.const(n, "shift")
            y = np.clip((acc * q.const(n, "mult") + np.where(s > 0, 1 << np.maximum(s - 1, 0),
                                                               0)) >> s, op.lo, op.hi)
        else:
            nhwc = x.reshape(x.shape[-3:]).transpose(1, 2, 0)
            if isinstance(op, ir.QConv):
                y = ref_conv(nhwc, *(q.const(n, r) for r in ("weight", "bias", "mult", "shift")),
                             op.lo, op.hi, op.kernel, op.strides, op.pads, op.dilations, op.group)
            else:
                y = ref_maxpool(nhwc, op.kernel, op.strides, op.pads, op.dilations)
            y = y.transpose(2, 0, 1)
        vals[n.outputs[0]] = y.reshape(q.tensor(n.outputs[0]).shape)
    return vals


@pytest.mark.parametrize("mult,act", [(1, "clip"), (2, "relu"), (1, "none")])
def test_run_int_is_the_loop_reference(mult: int, act: str) -> None:
    q = Quantize(calib=DATA)(cnn(mult=mult, dw_act=act))
    xq = golden.quantize_input(q, DATA[:3])
    every = golden.run_int_all_samples(q, xq)
    for s in range(3):
        ref = loop_int(q, xq[s])
        one = golden.run_int_all(q, xq[s])
        assert ref.keys() == one.keys()
        for t, v in ref.items():
            np.testing.assert_array_equal(one[t], v, err_msg=t)
            np.testing.assert_array_equal(every[t][s], v, err_msg=t)
            assert one[t].dtype == np.int64 and one[t].shape == q.tensor(t).shape


def test_conv1d_as_h_equal_1() -> None:
    """The frontend makes a Conv1d's [1, C, L] [1, C, 1, L]: kernel (1, k) over L."""
    rng = np.random.default_rng(0)
    g = ir.Graph("c1d")
    g.add_tensor(ir.Tensor("x", (1, 2, 1, 9)))
    g.add_tensor(ir.Tensor("y", (1, 4, 1, 4)))
    g.add_tensor(ir.Tensor("p", (1, 4, 1, 3)))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    w = g.add_const("c.w", rng.normal(size=(4, 2, 1, 3)))
    b = g.add_const("c.b", rng.normal(size=4))
    g.add_node(ir.Node("c", ir.Conv((1, 3), (1, 2), (0, 1, 0, 0), (1, 1), act="relu"), ("x",),
                       ("y",), (("weight", w), ("bias", b))))
    g.add_node(ir.Node("p", ir.MaxPool((1, 2), (1, 1)), ("y",), ("p",)))
    g.inputs, g.outputs = ["x"], ["p"]
    data = rng.normal(size=(16, 2, 1, 9))
    q = Quantize(calib=data)(g)
    xq = golden.quantize_input(q, data)
    y = golden.run_int_samples(q, xq)
    assert y.shape == (16, 1, 4, 1, 3)
    for s in range(2):
        np.testing.assert_array_equal(y[s], loop_int(q, xq[s])["p"])
    ref = float_ref(g, data)["p"]
    assert np.abs(golden.dequantize_output(q, y) - ref).max() < 0.05 * np.abs(ref).max()


def test_run_int_names_the_unexecutable_node() -> None:
    """A float Conv carrying formats is refused by name, not computed."""
    g, q = cnn(), Quantize(calib=DATA)(cnn())
    for name, t in q.tensors.items():
        g.set_tensor(name, q=t.q)
    with pytest.raises(PassError, match=r"run_int cannot execute node 'conv1' \(Conv\).*QConv"):
        golden.run_int(g, np.zeros(3 * 12 * 12, np.int64))


def test_float_reference_matches_golden_run_float() -> None:
    """The float steps golden uses (its own, or this module's) agree with float_ref."""
    g = cnn(mult=2)
    ref = float_ref(g, DATA)
    got = golden.run_float_all_samples(g, DATA)
    for t in ref:
        np.testing.assert_allclose(got[t], ref[t], rtol=1e-9, atol=1e-9, err_msg=t)


def test_conv1d_data_in_the_models_own_layout() -> None:
    """Calibration/evaluation data of a Conv1d model [S, C, L] is accepted for the IR's
    [1, C, 1, L] (same elements, same order)."""
    from edgehls.frontend import load

    g = load(Path(__file__).parent / "fixtures" / "conv1d.onnx")
    shape = g.tensor(g.inputs[0]).shape
    data = np.random.default_rng(0).normal(size=(5, shape[1], shape[3]))
    out = golden.model_samples(g, data)
    assert out.shape == (5, *shape)
    np.testing.assert_array_equal(out.reshape(5, -1), data.reshape(5, -1))
