"""Share: weight sharing (Deep Compression) of the integer weights of each QDense/QConv layer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from edgehls import ir, numerics
from edgehls.errors import OptionError, PassError

log = logging.getLogger(__name__)

MIN_BITS, MAX_BITS = 2, 8


def check_bits(bits: int, where: str = "--share-bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not (
            MIN_BITS <= bits <= MAX_BITS):
        raise OptionError(f"{where} {bits!r} is out of range: choose {MIN_BITS}..{MAX_BITS} "
                          "bits (each layer gets 2**bits shared weight values)")
    return int(bits)


def codebook(w: np.ndarray, bits: int, wbits: int, seed: int = 0, zero: bool = False
             ) -> tuple[np.ndarray, bool]:
    """The 2**bits shared values of integer weights ``w`` and whether they are lossless.

    ``zero``: 0 must be an entry even if w has no zeros (a grouped or depthwise layer, whose
    block-diagonal tiles hold zeros off its groups).
    Lossless when w has at most 2**bits distinct values (zero included): those values.
    Otherwise k-means (scikit-learn, linear initialisation between min and max, one run, seeded)
    of the non-zero weights into 2**bits - 1 clusters if w has zeros (zero is then the extra,
    exact entry), else 2**bits; centroids rounded half up and clipped to +-weight_max(wbits); a
    centroid of a layer without zeros never rounds to 0 (it rounds away from zero instead).
    Sorted ascending, duplicates removed, padded to 2**bits by repeating the last value.
    """
    k = 1 << bits
    values = np.unique(np.concatenate([np.ravel(w), [0] if zero else []]).astype(np.int64))
    lossless = values.size <= k
    if not lossless:
        has_zero = bool((w == 0).any()) or zero
        nz = w[w != 0].astype(np.float64).reshape(-1, 1)
        n = k - int(has_zero)
        centres = _kmeans(nz, np.linspace(nz.min(), nz.max(), n).reshape(-1, 1), seed)
        q = numerics.round_half_up(centres)
        if not has_zero:
            q = np.where(q == 0, np.where(centres < 0, -1.0, 1.0), q)
        qmax = numerics.weight_max(wbits)
        values = np.unique(np.concatenate([np.clip(q, -qmax, qmax), [0.0] if has_zero else []]))
    values = values.astype(np.int64)
    return np.concatenate([values, np.full(k - values.size, values[-1])]), lossless


def _kmeans(x: np.ndarray, init: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans  # imported here: the CLI starts fast without it

    km = KMeans(n_clusters=len(init), init=init, n_init=1, random_state=seed).fit(x)
    return km.cluster_centers_.ravel()


def assign(w: np.ndarray, book: np.ndarray) -> np.ndarray:
    """Every weight -> its nearest value of the sorted ``book`` (a tie goes to the smaller
    value, so to the smaller index). Binary search: no [K, N, 2**bits] distance array."""
    vals = np.unique(np.asarray(book, np.int64))
    w = np.asarray(w, np.int64)
    if vals.size == 1:
        return np.full_like(w, vals[0])
    hi = np.clip(np.searchsorted(vals, w), 1, vals.size - 1)
    lo = hi - 1
    return np.where(w - vals[lo] <= vals[hi] - w, vals[lo], vals[hi])


@dataclass(frozen=True)
class Share:
    """Per layer, the integer weights are replaced by 2**bits shared values (``codebook``).

    Requires: a quantized graph (Input, QDense, QConv, QMaxPool and QAdd nodes; run Quantize
    first); QMaxPool and QAdd nodes (which have no weight matrix) pass through unchanged.
    Guarantees: a new graph (the input graph is untouched) where each QDense and QConv has
    ``share_bits = bits``, a const 'codebook' int64 [2**bits] named ``<node>.codebook``, and its
    'weight' holds only codebook values, each weight its nearest entry (a layer with at most
    2**bits distinct weights is unchanged: lossless). Zeros stay exactly zero, and 0 is an entry
    iff the layer has zeros or is grouped (its block-diagonal tiles are mostly zeros).
    Deterministic: the same graph and seed give the same codebooks.
    A note per layer says how it was shared.
    """

    bits: int
    seed: int = 0

    def __call__(self, g: ir.Graph) -> ir.Graph:
        check_bits(self.bits)
        for node in g.nodes():
            if not isinstance(node.op, ir.Input | ir.QDense | ir.QConv | ir.QMaxPool | ir.QAdd
                              | ir.QConcat):
                raise PassError(f"Share requires Input, QDense, QConv, QMaxPool and QAdd nodes; "
                                f"node {node.name!r} is {node.op.kind}: run Quantize first")
        out = g.copy()
        for node in g.nodes():
            if isinstance(node.op, ir.QDense | ir.QConv):
                self._share(g, out, node)
        return out

    def _share(self, g: ir.Graph, out: ir.Graph, node: ir.Node) -> None:
        w = g.const(node, "weight")
        grouped = isinstance(node.op, ir.QConv) and node.op.group > 1
        book, lossless = codebook(w, self.bits, node.op.wbits, self.seed, zero=grouped)
        out.add_const(node.const_name("weight"), assign(w, book))
        consts = tuple(c for c in node.consts if c[0] != "codebook")
        consts += (("codebook", out.add_const(f"{node.name}.codebook", book)),)
        out.replace_node(replace(node, op=replace(node.op, share_bits=self.bits),
                                 consts=consts))
        note = (f"layer {node.name}: weights shared to {book.size} values "
                f"({'lossless' if lossless else 'k-means'})")
        log.info(note)
        out.notes.append(note)
