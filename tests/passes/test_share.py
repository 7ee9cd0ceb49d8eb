"""Share: codebooks and shared weights (structure) and the integer network after (numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import golden, ir
from edgehls.errors import OptionError, PassError
from edgehls.passes.prune import Prune
from edgehls.passes.quantize import Quantize
from edgehls.passes.share import Share, assign, codebook

from .test_prune import mlp

X = np.random.default_rng(7).normal(size=(64, 20))


def quantized(wbits: int = 8, prune: Prune | None = None) -> ir.Graph:
    g = mlp()
    return Quantize(wbits=wbits, calib=X)(prune(g) if prune else g)


def layers(g: ir.Graph) -> list[ir.Node]:
    return [n for n in g.nodes() if isinstance(n.op, ir.QDense)]


def outputs(g: ir.Graph) -> np.ndarray:
    return golden.run_int_samples(g, golden.quantize_input(g, X))


# --- structure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [2, 4, 6])
def test_kmeans_structure(bits):
    q = quantized()
    before = q.summary()
    s = Share(bits)(q)
    s.verify()
    assert q.summary() == before  # the input graph is untouched
    k = 1 << bits
    for n in layers(s):
        assert n.op == ir.QDense(**{**vars(q.node(n.name).op), "share_bits": bits})
        assert n.const_name("codebook") == f"{n.name}.codebook"
        book, w = s.const(n, "codebook"), s.const(n, "weight")
        assert book.dtype == np.int64 and book.shape == (k,)
        assert (np.diff(book) >= 0).all()  # sorted; padding repeats the last value
        assert np.isin(w, book).all() and w.dtype == np.int64 and w.shape == q.const(
            q.node(n.name), "weight").shape
        assert np.abs(book).max() <= 127
        w0 = q.const(q.node(n.name), "weight")
        assert (0 in book) == (0 in w0)  # zero is an entry iff the layer has zeros
        # each weight went to its nearest entry
        dist = np.abs(w0[..., None] - book).min(axis=-1)
        assert np.array_equal(np.abs(w0 - w), dist)
    assert [x for x in s.notes if x.startswith("layer ")] == [
        f"layer {n.name}: weights shared to {k} values (k-means)" for n in layers(s)]


def test_lossless_is_bit_identical():
    q = quantized(wbits=3)  # at most 7 distinct weights: 3 bits of index suffice
    s = Share(3)(q)
    for n in layers(s):
        w0 = q.const(q.node(n.name), "weight")
        assert np.array_equal(s.const(n, "weight"), w0)
        book = s.const(n, "codebook")
        distinct = np.unique(w0)
        assert np.array_equal(book[: distinct.size], distinct)
        assert (book[distinct.size:] == distinct[-1]).all()
    assert np.array_equal(outputs(s), outputs(q))
    assert all(x.endswith("(lossless)") for x in s.notes if x.startswith("layer "))


def test_lossless_at_eight_bits():
    q = quantized()
    assert np.array_equal(outputs(Share(8)(q)), outputs(q))


def test_deterministic():
    q = quantized()
    a, b = Share(4)(q), Share(4)(quantized())
    for n in layers(a):
        assert np.array_equal(a.const(n, "codebook"), b.const(b.node(n.name), "codebook"))
        assert np.array_equal(a.const(n, "weight"), b.const(b.node(n.name), "weight"))


def test_pruned_zeros_stay_zero():
    q = quantized(prune=Prune("unstructured", 0.6))
    s = Share(3)(q)
    for n in layers(s):
        w0, w, book = q.const(q.node(n.name), "weight"), s.const(n, "weight"), s.const(
            n, "codebook")
        assert (w[w0 == 0] == 0).all()
        assert 0 in book and np.unique(book).size <= 8


def test_tile_pruned_tiles_stay_all_zero():
    q = quantized(prune=Prune("tile", 0.5, pe=(4, 4)))
    s = Share(2)(q)
    for n in layers(s):
        w0, w = q.const(q.node(n.name), "weight"), s.const(n, "weight")
        for kt in range(0, w.shape[0], 4):
            for nt in range(0, w.shape[1], 4):
                if not w0[kt:kt + 4, nt:nt + 4].any():
                    assert not w[kt:kt + 4, nt:nt + 4].any()


def test_codebook_finds_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([-100, -50, 20, 90])
    w = (rng.choice(centres, size=(30, 8)) + rng.integers(-1, 2, size=(30, 8)))
    w[0, :4] = centres - 1  # every cluster has members
    w[1, :4] = centres + 1
    book, lossless = codebook(w, 2, 8)
    assert not lossless and np.array_equal(book, centres)
    w[w == 20] = 0  # with zeros: zero is one entry, k-means finds the other three
    w[np.abs(w - 20) <= 1] = 0
    book, _ = codebook(w, 2, 8)
    assert np.array_equal(book, [-100, -50, 0, 90])


def test_codebook_without_zeros_never_rounds_to_zero():
    w = np.array([[-1, 1, 1, -1, 40, 41, 80, 81, 120, 121]])  # {-1, 1} has its centre at 0
    book, lossless = codebook(w, 2, 8)
    assert not lossless and 0 not in book
    assert (assign(w, book) != 0).all()


def test_codebook_lossless_pads_with_the_last_value():
    book, lossless = codebook(np.array([[3, -2], [3, 0]]), 2, 4)
    assert lossless and book.tolist() == [-2, 0, 3, 3]


def test_codebook_clips_to_the_weight_range():
    w = np.array([[-7, -7, -6, -5, 4, 5, 7, 7, 7, 6]])
    book, _ = codebook(w, 2, 4)
    assert np.abs(book).max() <= 7 and np.isin(assign(w, book), book).all()


def test_assign_tie_goes_to_the_smaller_index():
    assert assign(np.array([5, -5, 6]), np.array([-6, -4, 4, 6])).tolist() == [4, -6, 6]


@pytest.mark.parametrize("bits", [0, 1, 9, 16])
def test_bits_out_of_range(bits):
    with pytest.raises(OptionError, match=rf"^--share-bits {bits} is out of range: choose 2\.\.8"):
        Share(bits)(quantized())


def test_requires_a_quantized_graph():
    with pytest.raises(PassError, match="node 'fc0' is Dense: run Quantize first"):
        Share(4)(mlp())


def test_repr_shows_the_options():
    assert repr(Share(4)) == "Share(bits=4, seed=0)"


# --- numbers ---------------------------------------------------------------------------------

def test_more_bits_track_the_unshared_network_closer():
    q = quantized()
    y0 = outputs(q).astype(np.float64)
    errs = [np.abs(outputs(Share(b)(q)) - y0).mean() for b in (2, 4, 6)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 * np.abs(y0).mean()


def test_golden_runs_the_shared_weights():
    """run_int of the shared graph == the unshared graph given the shared weights by hand."""
    q = quantized()
    s = Share(4)(q)
    ref = q.copy()
    for n in layers(q):
        ref.add_const(n.const_name("weight"), s.const(s.node(n.name), "weight"))
    assert np.array_equal(outputs(s), outputs(ref))


def test_assign_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        book = np.sort(rng.integers(-20, 21, size=int(rng.integers(1, 9))))
        w = rng.integers(-25, 26, size=(7, 5))
        brute = book[np.argmin(np.abs(w[..., None] - book), axis=-1)]
        assert np.array_equal(assign(w, book), brute)
