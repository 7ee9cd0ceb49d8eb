"""Quantize: structure of the quantized graph, and its numbers against the float graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import golden, ir, numerics
from edgehls.errors import DataError, OptionError, PassError
from edgehls.passes.quantize import Quantize

SIZES = (16, 32, 32, 10)


def mlp(sizes: tuple[int, ...] = SIZES, m: int = 1, seed: int = 0) -> ir.Graph:
    """Input [m, sizes[0]] -> Dense(ReLU) ... -> Dense (no ReLU on the last)."""
    rng = np.random.default_rng(seed)
    g = ir.Graph("mlp")
    g.add_tensor(ir.Tensor("x", (m, sizes[0])))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    src = "x"
    for i, (k, n) in enumerate(zip(sizes, sizes[1:], strict=False)):
        name = f"fc{i}"
        g.add_tensor(ir.Tensor(name, (m, n)))
        w = g.add_const(f"{name}.weight", rng.normal(size=(k, n)) / np.sqrt(k))
        b = g.add_const(f"{name}.bias", rng.normal(scale=0.1, size=n))
        relu = i < len(sizes) - 2
        g.add_node(ir.Node(name, ir.Dense(relu=relu), (src,), (name,),
                           (("weight", w), ("bias", b))))
        src = name
    g.inputs, g.outputs = ["x"], [src]
    g.verify()
    return g


def max_error(q: ir.Graph, g: ir.Graph, data: np.ndarray) -> tuple[float, float]:
    """(max |dequantized int output - float output|, output LSB) over the samples."""
    yq = golden.run_int_samples(q, golden.quantize_input(q, data))
    err = np.abs(golden.dequantize_output(q, yq) - golden.run_float_samples(g, data)).max()
    return float(err), q.tensor(q.outputs[0]).q.scale


CALIB = np.random.default_rng(1).normal(size=(256, SIZES[0]))


def test_structure() -> None:
    g = mlp()
    before = g.summary()
    q = Quantize(calib=CALIB)(g)
    q.verify()
    assert g.summary() == before  # the input graph is untouched
    assert [n.op.kind for n in q] == ["Input", "QDense", "QDense", "QDense"]
    assert all(t.q is not None for t in q.tensors.values())
    assert q.tensor("x").q.signed and q.tensor("x").q.bits == 8
    assert not q.tensor("fc0").q.signed and q.tensor("fc2").q.signed  # ReLU -> unsigned
    for node in q:
        if isinstance(node.op, ir.QDense):
            k = g.const(g.node(node.name), "weight").shape[0]
            assert node.op.acc_bits == numerics.acc_bits(8, 8, k)
            out = q.tensor(node.outputs[0]).q
            assert (node.op.lo, node.op.hi) == (out.lo, out.hi)
            assert dict(node.consts) == {r: f"{node.name}.{r}{'_q' * (r in ('weight', 'bias'))}"
                                         for r in ("weight", "bias", "mult", "shift")}
            assert all(q.const(node, r).dtype == np.int64 for r in ("weight", "bias"))
            assert np.abs(q.const(node, "weight")).max() <= 127
    assert not any(name.endswith((".weight", ".bias")) for name in q.consts)
    assert repr(Quantize(calib=CALIB)).startswith(
        "Quantize(wbits=8, abits=8, per_channel=True, seed=0, ")
    assert not q.notes


def test_requires_canonical_graph() -> None:
    g = mlp()
    g.add_tensor(ir.Tensor("r", (1, 10)))
    g.add_node(ir.Node("r", ir.Relu(), ("fc2",), ("r",)))
    with pytest.raises(PassError, match=r"node 'r' is Relu: run Canonicalize first"):
        Quantize()(g)


@pytest.mark.parametrize("m", [1, 3])
def test_int_output_close_to_float(m: int) -> None:
    g = mlp(m=m)
    data = CALIB[: 255 // m * m].reshape(-1, m, SIZES[0])
    errs = {}
    for bits in (8, 4):
        q = Quantize(bits, bits, calib=data)(g)
        err, lsb = max_error(q, g, data)
        assert np.isfinite(err)
        errs[bits] = err
        if bits == 8:
            assert err <= 2 * (len(SIZES) - 1) * lsb  # a few output LSBs per layer
    yrange = np.abs(golden.run_float_samples(g, data)).max()
    assert errs[8] < 0.05 * yrange
    assert errs[8] < errs[4] < yrange  # 4 bits degrades but stays bounded


def test_per_tensor_is_coarser() -> None:
    g = mlp()
    q = Quantize(calib=CALIB, per_channel=False)(g)
    for node in q:
        if isinstance(node.op, ir.QDense):
            assert len(set(q.const(node, "shift").tolist())) == 1
    assert max_error(q, g, CALIB)[0] < 0.2


@pytest.mark.parametrize("bits", range(2, 17))
def test_all_bit_widths(bits: int) -> None:
    q = Quantize(bits, bits, calib=CALIB)(mlp())
    q.verify()
    assert q.tensor("x").q.bits == bits and q.tensor("fc0").q.hi == (1 << bits) - 1
    yq = golden.run_int_samples(q, golden.quantize_input(q, CALIB))
    assert yq.min() >= -(1 << (bits - 1)) and yq.max() < 1 << (bits - 1)


@pytest.mark.parametrize("flag,kwargs", [("--wbits", {"wbits": 1}), ("--wbits", {"wbits": 17}),
                                         ("--abits", {"abits": 1}), ("--abits", {"abits": 17})])
def test_bits_out_of_range(flag: str, kwargs: dict[str, int]) -> None:
    bad = next(iter(kwargs.values()))
    with pytest.raises(OptionError, match=rf"{flag} {bad} is out of range"):
        Quantize(**kwargs)(mlp())


def test_calib_shape_mismatch() -> None:
    with pytest.raises(DataError, match=r"\[8, 15\] does not match model input 'x' \[1, 16\]"):
        Quantize(calib=np.zeros((8, 15)))(mlp())
    with pytest.raises(DataError, match="NaN"):
        Quantize(calib=np.full((8, 16), np.nan))(mlp())


def test_random_calibration_note_and_determinism() -> None:
    g = mlp()
    a, b = Quantize()(g), Quantize()(g)
    assert any("random inputs" in n for n in a.notes)
    assert a.consts.keys() == b.consts.keys()
    for name in a.consts:
        np.testing.assert_array_equal(a.consts[name], b.consts[name])
    assert a.tensors == b.tensors
    xq = golden.quantize_input(a, CALIB[:32])
    np.testing.assert_array_equal(golden.run_int_samples(a, xq), golden.run_int_samples(b, xq))
    assert Quantize(seed=0) == Quantize(seed=0) and Quantize(seed=0) != Quantize(seed=1)


@pytest.mark.parametrize("per_channel", [True, False])
def test_bias_never_clips(per_channel: bool) -> None:
    """A channel with tiny weights and a large bias: at the weights' own scale the bias would
    overflow ``bias_bound`` (2**23 * 2**5 > 2**17); its weight scale is lowered instead."""
    g = mlp((4, 2))
    g.consts["fc0.weight"] = np.array([[1.0, 1e-5], [0.5, 2e-6], [0.0, 0.0], [-0.25, 0.0]])
    g.consts["fc0.bias"] = np.array([0.0, 1.0])
    q = Quantize(calib=CALIB[:, :4], per_channel=per_channel)(g)
    node = q.node("fc0")
    lim = numerics.bias_bound(8, 8, 4)
    assert 0 < np.abs(q.const(node, "bias")).max() <= lim
    err, lsb = max_error(q, g, CALIB[:, :4])
    assert err <= 2 * lsb
