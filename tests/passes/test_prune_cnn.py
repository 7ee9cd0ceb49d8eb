"""Prune on CNN graphs: Conv weights in every mode; tile mode cuts a Conv as the tiler's matrix
Wk[(kh, kw, c), n] (c padded per kernel position to a multiple of R); grouped Convs are left
dense with a note."""

from __future__ import annotations

import numpy as np
import pytest
from test_golden_cnn import DATA, cnn, float_cnn_steps  # noqa: F401

from edgehls import golden, ir
from edgehls.passes.prune import Prune, conv_matrix, from_conv_matrix, tile_norms
from edgehls.passes.quantize import Quantize

LAYERS = ("conv1", "dw", "full", "fc")


def weights(g: ir.Graph) -> dict[str, np.ndarray]:
    return {n.name: g.const(n, "weight") for n in g.nodes() if n.name in LAYERS}


def test_conv_matrix_layout() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3, 2, 3))
    m = conv_matrix(w, 4)
    assert m.shape == (2 * 3 * 4, 5)
    for i in range(2):
        for j in range(3):
            block = m[(i * 3 + j) * 4:(i * 3 + j + 1) * 4]
            np.testing.assert_array_equal(block[:3], w[:, :, i, j].T)
            assert not block[3:].any()  # c padded to R with zero rows
    np.testing.assert_array_equal(from_conv_matrix(m, w.shape, 4), w)
    np.testing.assert_array_equal(from_conv_matrix(conv_matrix(w, 3), w.shape, 3), w)


@pytest.mark.parametrize("mode", ["unstructured", "global"])
@pytest.mark.parametrize("s", [0.3, 0.8])
def test_conv_weights_are_pruned(mode: str, s: float) -> None:
    g = cnn(mult=2)
    p = Prune(mode, s)(g)
    p.verify()
    before, after = weights(g), weights(p)
    for name in LAYERS:
        w, v = before[name], after[name]
        assert v.shape == w.shape
        np.testing.assert_array_equal(v[v != 0], w[v != 0])  # survivors bit-identical
        if mode == "unstructured":
            assert (v == 0).mean() >= s
    total = sum(v.size for v in after.values())
    assert sum((v == 0).sum() for v in after.values()) >= s * total
    assert p.node("pool").op == g.node("pool").op
    assert len(p.notes) == len(LAYERS)


@pytest.mark.parametrize("pe", [(4, 4), (8, 3), (16, 16)])
def test_tile_mode_on_conv(pe: tuple[int, int]) -> None:
    g = cnn()
    p = Prune("tile", 0.5, pe)(g)
    r, c = pe
    for name in ("conv1", "full"):
        w, v = g.const(g.node(name), "weight"), p.const(p.node(name), "weight")
        norms = tile_norms(conv_matrix(v, r), r, c)
        assert (norms == 0).sum() == int(0.5 * norms.size)  # floor(s * tiles)
        np.testing.assert_array_equal(v[v != 0], w[v != 0])
        kept = tile_norms(conv_matrix(w, r), r, c)[norms > 0]
        dropped = tile_norms(conv_matrix(w, r), r, c)[norms == 0]
        assert dropped.max() <= kept.min()  # the lowest-norm tiles went
    np.testing.assert_array_equal(p.const(p.node("dw"), "weight"), g.const(g.node("dw"),
                                                                            "weight"))
    assert any("layer dw: not pruned (tile pruning of a grouped Conv, group 8" in n
               for n in p.notes)
    assert any(n.startswith("layer conv1: pruned to") and "tiles all zero" in n for n in p.notes)


def test_pruned_cnn_quantizes_and_runs() -> None:
    p = Prune("tile", 0.5, (4, 4), (("fc", "unstructured", 0.5),))(cnn())
    q = Quantize(calib=DATA)(p)
    y = golden.run_int_samples(q, golden.quantize_input(q, DATA[:4]))
    assert y.shape == (4, 1, 10)
    assert (q.const(q.node("conv1"), "weight") == 0).mean() >= 0.4
