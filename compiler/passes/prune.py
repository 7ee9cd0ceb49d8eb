"""Prune: magnitude pruning of float Dense/Conv weights (unstructured, global or tile-structured).

SPEC grammar (``--prune SPEC`` and the compression config): ``MODE:SPARSITY``, MODE one of
``unstructured`` (per layer), ``global`` (one threshold over all layers) or ``tile`` (whole
R x C weight tiles of ``--pe``), SPARSITY a number in [0, 1), e.g. ``tile:0.5``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from edgehls import ir
from edgehls.errors import OptionError, PassError

log = logging.getLogger(__name__)

MODES = ("unstructured", "global", "tile")
LAYER_MODES = ("unstructured", "tile")  # "global" ranks across layers: not a per-layer mode
_EPS = 1e-9  # s * count is computed in floats: 0.29 * 100 = 28.999999999999996


def parse_spec(text: str, where: str = "--prune") -> tuple[str, float]:
    """``"MODE:SPARSITY"`` -> (mode, sparsity); OptionError naming ``where`` if malformed."""
    mode, sep, value = str(text).strip().partition(":")
    try:
        sparsity = float(value)
    except ValueError:
        sparsity = math.nan
    if not sep or math.isnan(sparsity):
        raise OptionError(f"{where} {text!r} is not MODE:SPARSITY: write e.g. tile:0.5, "
                          f"unstructured:0.8 or global:0.9 (modes: {', '.join(MODES)})")
    check(mode.strip(), sparsity, where)
    return mode.strip(), sparsity


def check(mode: str, sparsity: float, where: str = "--prune", modes: tuple = MODES) -> None:
    if mode not in modes:
        raise OptionError(f"{where}: unknown pruning mode {mode!r}; choose "
                          f"{', '.join(modes)}")
    if not 0.0 <= sparsity < 1.0:
        raise OptionError(f"{where}: sparsity {sparsity:g} is outside [0, 1): it is the "
                          "fraction of weights to zero, e.g. 0.5")


def _at_least(s: float, n: int) -> int:
    """ceil(s * n): the count that makes a fraction >= s of n."""
    return math.ceil(s * n - _EPS)


def _at_most(s: float, n: int) -> int:
    """floor(s * n): the count that keeps a fraction <= s of n."""
    return math.floor(s * n + _EPS)


def _smallest(mags: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` smallest magnitudes (stable: ties go to the earlier element)."""
    mask = np.zeros(mags.size, dtype=bool)
    mask[np.argsort(mags.ravel(), kind="stable")[:count]] = True
    return mask.reshape(mags.shape)


def tile_norms(w: np.ndarray, r: int, c: int) -> np.ndarray:
    """L2 norm of each R x C tile of w [K, N], as the tiler cuts it: [ceil(K/R), ceil(N/C)]."""
    kts, nts = -(-w.shape[0] // r), -(-w.shape[1] // c)
    padded = np.zeros((kts * r, nts * c))
    padded[: w.shape[0], : w.shape[1]] = w
    return np.sqrt((padded.reshape(kts, r, nts, c) ** 2).sum(axis=(1, 3)))


def conv_matrix(w: np.ndarray, r: int) -> np.ndarray:
    """Conv weight [Cout, Cin, kh, kw] -> the matrix the tiler cuts, Wk [kh * kw * Cp, Cout]:
    row (i * kw + j) * Cp + c holds w[:, c, i, j], with Cp = Cin rounded up to a multiple of R
    and zero rows padding each (i, j) block, so no R-row tile spans two kernel positions."""
    cout, cin, kh, kw = w.shape
    cp = -(-cin // r) * r
    m = np.zeros((kh, kw, cp, cout), dtype=w.dtype)
    m[:, :, :cin] = w.transpose(2, 3, 1, 0)
    return m.reshape(kh * kw * cp, cout)


def from_conv_matrix(m: np.ndarray, shape: tuple[int, ...], r: int) -> np.ndarray:
    """Inverse of ``conv_matrix``: Wk -> weight of ``shape`` [Cout, Cin, kh, kw]."""
    cout, cin, kh, kw = shape
    return m.reshape(kh, kw, -(-cin // r) * r, cout)[:, :, :cin].transpose(3, 2, 0, 1)


def prune_tiles(w: np.ndarray, s: float, r: int, c: int) -> np.ndarray:
    """Zero the floor(s * tiles) tiles of lowest L2 norm (all-zero tiles count)."""
    norms = tile_norms(w, r, c)
    drop = _smallest(norms, _at_most(s, norms.size))
    mask = np.repeat(np.repeat(drop, r, axis=0), c, axis=1)[: w.shape[0], : w.shape[1]]
    return np.where(mask, 0.0, w)


def _avg_pool(g: ir.Graph, node: ir.Node) -> bool:
    """A Conv that Canonicalize made of an AvgPool or GlobalAvgPool (depthwise, every weight
    1 / (kh * kw)): its weights are the pool's definition, not learned, so none is pruned (the
    global pool's 1/HW would be the first weights a magnitude ranking drops)."""
    if not isinstance(node.op, ir.Conv):
        return False
    w = g.const(node, "weight")
    kh, kw = node.op.kernel
    return w.shape[1] == 1 and node.op.group == w.shape[0] and bool(np.all(w == 1.0 / (kh * kw)))


def _grouped(node: ir.Node) -> bool:
    return isinstance(node.op, ir.Conv) and node.op.group > 1


@dataclass(frozen=True)
class Prune:
    """Magnitude pruning: set the smallest weights of each Dense and Conv layer to exactly zero.

    Requires: a graph of Input, Dense, Conv, MaxPool, AddAct, Concat and TableAct nodes only
    (after Canonicalize, before Quantize); MaxPool, AddAct, Concat and TableAct nodes, and the
    Convs that are average pools (``_avg_pool``), pass through unchanged.
    Guarantees: a new graph (the input graph is untouched) with the same nodes and const names;
    only weights are changed, and only to 0.0: surviving weights are bit-identical, zeros stay
    zero (they count toward the target). Per layer, ``overrides`` entries (layer, mode,
    sparsity) replace (mode, sparsity); a layer not in the model is an OptionError listing the
    layers. Modes:

    - ``unstructured``: in each layer, the ceil(s * size) smallest |w| become zero;
    - ``global``: one ranking of |w| over every layer without an override; the ceil(s * total)
      smallest become zero, so the achieved sparsity over those layers is >= s;
    - ``tile``: weight [K, N] is cut as the tiler cuts it (rows kt*R.., cols nt*C.., edge tiles
      smaller), tiles are ranked by L2 norm within the layer, and the floor(s * tiles) lowest
      become all-zero, which the tiler then skips (no ROM bits, no cycles). A Conv with
      group 1 is cut as its matrix ``conv_matrix`` (rows (kh, kw, c), c padded per kernel
      position to a multiple of R); a grouped or depthwise Conv is left dense, with a note.

    A note per pruned layer states the achieved sparsity.
    """

    mode: str
    sparsity: float
    pe: tuple[int, int] = (8, 8)
    overrides: tuple[tuple[str, str, float], ...] = ()

    def __call__(self, g: ir.Graph) -> ir.Graph:
        check(self.mode, self.sparsity)
        layers = []
        for node in g.nodes():
            if isinstance(node.op, ir.Dense | ir.Conv) and not _avg_pool(g, node):
                layers.append(node)
            elif not isinstance(node.op, ir.Input | ir.Conv | ir.MaxPool | ir.AddAct | ir.Concat
                                | ir.TableAct):
                raise PassError(f"Prune requires Input, Dense, Conv, MaxPool, AddAct, Concat "
                                "and TableAct nodes; "
                                f"node {node.name!r} is {node.op.kind}: run Canonicalize first "
                                "(and Prune before Quantize)")
        plan = self._plan([n.name for n in layers])
        out = g.copy()
        pool = [n for n in layers if plan[n.name][0] == "global"]
        new = self._global(g, pool) if pool else {}
        for node in layers:
            mode, s = plan[node.name]
            w = g.const(node, "weight")
            if mode == "unstructured":
                new[node.name] = np.where(_smallest(np.abs(w), _at_least(s, w.size)), 0.0, w)
            elif mode == "tile" and _grouped(node):
                if s > 0:
                    out.notes.append(f"layer {node.name}: not pruned (tile pruning of a grouped "
                                     f"Conv, group {node.op.group}, is not implemented)")
                continue
            elif mode == "tile" and isinstance(node.op, ir.Conv):
                r = self.pe[0]
                new[node.name] = from_conv_matrix(
                    prune_tiles(conv_matrix(w, r), s, *self.pe), w.shape, r)
            elif mode == "tile":
                new[node.name] = prune_tiles(w, s, *self.pe)
            if s > 0:
                pruned = new[node.name].astype(w.dtype)
                out.add_const(node.const_name("weight"), pruned)
                out.notes.append(self._note(node.name, mode, s, pruned))
        return out

    def _plan(self, names: list[str]) -> dict[str, tuple[str, float]]:
        plan = {n: (self.mode, self.sparsity) for n in names}
        for layer, mode, s in self.overrides:
            where = f"compression config, layer {layer!r}"
            if layer not in plan:
                raise OptionError(f"compression config names layer {layer!r}, which the model "
                                  f"does not have; its layers are: {', '.join(names)}")
            check(mode, s, where, LAYER_MODES)
            plan[layer] = (mode, s)
        return plan

    def _global(self, g: ir.Graph, pool: list[ir.Node]) -> dict[str, np.ndarray]:
        ws = [g.const(n, "weight") for n in pool]
        flat = np.concatenate([np.abs(w).ravel() for w in ws])
        mask = _smallest(flat, _at_least(self.sparsity, flat.size))
        out, at = {}, 0
        for node, w in zip(pool, ws, strict=True):
            out[node.name] = np.where(mask[at:at + w.size].reshape(w.shape), 0.0, w)
            at += w.size
        return out

    def _note(self, name: str, mode: str, s: float, w: np.ndarray) -> str:
        achieved = float((w == 0).mean()) if w.size else 0.0
        scope = " over all layers" if mode == "global" else ""
        text = f"layer {name}: pruned to {achieved:.1%} sparsity ({mode}, target {s:.1%}{scope}"
        if mode == "tile":
            r, c = self.pe
            norms = tile_norms(conv_matrix(w, r) if w.ndim == 4 else w, r, c)
            text += f"; {int((norms == 0).sum())} of {norms.size} {r}x{c} tiles all zero"
        text += ")"
        log.info(text)
        return text
