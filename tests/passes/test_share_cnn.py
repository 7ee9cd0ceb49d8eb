"""Share on CNN graphs: QConv weights (any shape) clustered exactly like QDense weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_golden_cnn import DATA, cnn, float_cnn_steps  # noqa: F401

from edgehls import golden, ir
from edgehls.passes.quantize import Quantize
from edgehls.passes.share import Share, assign, codebook


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_conv_layers_are_shared(bits: int) -> None:
    q = Quantize(calib=DATA)(cnn(mult=2))
    before = q.summary()
    s = Share(bits)(q)
    s.verify()
    assert q.summary() == before
    assert [n.op.kind for n in s] == [n.op.kind for n in q]
    for node in s:
        if isinstance(node.op, ir.QConv | ir.QDense):
            w, v = q.const(q.node(node.name), "weight"), s.const(node, "weight")
            grouped = isinstance(node.op, ir.QConv) and node.op.group > 1
            book, _ = codebook(w, bits, 8, zero=grouped)
            assert node.op.share_bits == bits and v.shape == w.shape
            np.testing.assert_array_equal(s.const(node, "codebook"), book)
            np.testing.assert_array_equal(v, assign(w, book))  # exactly as a QDense
            assert np.isin(v, book).all()
            assert node.op == dataclasses.replace(q.node(node.name).op, share_bits=bits)
    assert s.node("pool").op == q.node("pool").op
    y = golden.run_int_samples(s, golden.quantize_input(s, DATA[:4]))
    assert y.shape == (4, 1, 10)
    if bits == 8:  # lossless: at most 255 distinct 8-bit weights
        np.testing.assert_array_equal(y, golden.run_int_samples(q, golden.quantize_input(
            q, DATA[:4])))


def test_deterministic() -> None:
    q = Quantize(calib=DATA)(cnn())
    a, b = Share(3, seed=1)(q), Share(3, seed=1)(q)
    for name in a.consts:
        np.testing.assert_array_equal(a.consts[name], b.consts[name])


def test_grouped_layers_keep_zero_in_their_codebook() -> None:
    """A depthwise layer's tiles are block-diagonal: its codebook needs 0 even if its own
    weights have none (the ROM stores the off-diagonal zeros as indices)."""
    w = np.arange(1, 37).reshape(4, 1, 3, 3)
    book, lossless = codebook(w, 2, 8, zero=True)
    assert 0 in book and not lossless
    book, lossless = codebook(np.array([1, 2, 3]), 2, 8, zero=True)
    assert list(book) == [0, 1, 2, 3] and lossless
