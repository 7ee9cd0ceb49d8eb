"""Tiler: every QDense layer becomes a GEMM (M x K x N) cut into R x C weight tiles; the ordered
tile list is the schedule the hardware sequencer executes, and the cycle model reads the same
list.

Activation layout (hw/core.v): a tensor [M, W] lives in one of two ping-pong buffers of
B = lcm(R, C) banks; element (m, w) is in bank w mod B at word m * ceil(W / B) + w // B. Layer l
reads buffer l mod 2 and writes the other. Tiles run output-column-group major (nt), K-tile
minor (kt), so a column's accumulator bank holds M partial sums of one group at a time. An
all-zero weight tile (pruned, or zero after quantization) is not scheduled at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgehls import ir
from edgehls.errors import PassError, UnsupportedError


def drain(r: int, c: int) -> int:
    """Run cycles from a tile's last step issue to its last activation write, plus one: read 2,
    array R + 1 (registered products), column skew C - 1, accumulate 1, requantize 3, write 1."""
    return r + c + 7


@dataclass(frozen=True)
class Tile:
    """One schedule entry: load an R x C weight tile, stream M activation rows through it."""

    layer: int
    kt: int
    nt: int
    m: int
    k_rows: int
    n_cols: int
    w_addr: int
    clear: bool
    last: bool
    barrier: bool
    src: int
    rd_base: int
    rd_stride: int
    rd_rot: int
    wr_base: int
    wr_stride: int
    wr_rot: int
    p_addr: int


@dataclass(frozen=True)
class LayerPlan:
    index: int
    name: str
    M: int
    K: int
    N: int
    k_tiles: int
    n_tiles: int
    tiles: int
    skipped_tiles: int
    first_tile: int
    p_base: int

    @property
    def macs(self) -> int:
        return self.M * self.K * self.N


@dataclass
class Schedule:
    R: int
    C: int
    B: int
    layers: list[LayerPlan]
    tiles: list[Tile]
    adepth: int
    mdepth: int
    pdepth: int
    decide: list[int] = field(default_factory=list)  # D_i, run cycle tile i is decided
    load: list[int] = field(default_factory=list)  # L_i, run cycle tile i's load starts
    total_cycles: int = 0

    @property
    def wdepth(self) -> int:
        return max(1, len(self.tiles) * self.R)

    def layer_cycles(self) -> list[int]:
        """Predicted run cycles per layer: from its first decision to the next layer's."""
        starts = [self.decide[p.first_tile] for p in self.layers] + [self.total_cycles]
        return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def dense_layers(g: ir.Graph) -> list[ir.Node]:
    nodes = [n for n in g.nodes() if not isinstance(n.op, ir.Input)]
    for n in nodes:
        if not isinstance(n.op, ir.QDense):
            raise PassError(f"the tiler needs a quantized graph; node {n.name!r} is {n.op.kind}")
    return nodes


def schedule(g: ir.Graph, r: int, c: int) -> Schedule:
    """Cut every layer into tiles, lay out the activation buffers, and run the cycle model."""
    b = math.lcm(r, c)
    layers: list[LayerPlan] = []
    tiles: list[Tile] = []
    prev_m: int | None = None
    adepth, mdepth, p_base = 1, 1, 0
    for li, node in enumerate(dense_layers(g)):
        k, n = g.const(node, "weight").shape
        m = g.tensor(node.inputs[0]).size // k
        if prev_m is not None and m != prev_m:
            raise UnsupportedError(
                f"node {node.name!r} ({node.op.kind}) reads {m} rows where the previous layer "
                f"wrote {prev_m}: only chains of layers over the same rows are supported")
        prev_m = m
        kts, nts = -(-k // r), -(-n // c)
        rd_stride, wr_stride = -(-k // b), -(-n // b)
        adepth = max(adepth, m * rd_stride, m * wr_stride)
        mdepth = max(mdepth, m)
        first = len(tiles)
        w = g.const(node, "weight")
        for nt in range(nts):
            cols = slice(nt * c, (nt + 1) * c)
            # all-zero weight tiles are skipped: no ROM words, no cycles. A column group with
            # no non-zero tile still needs one pass for its bias, so it keeps its first tile.
            live = [kt for kt in range(kts) if w[kt * r:(kt + 1) * r, cols].any()] or [0]
            for i, kt in enumerate(live):
                tiles.append(Tile(
                    layer=li, kt=kt, nt=nt, m=m, k_rows=min(r, k - kt * r),
                    n_cols=min(c, n - nt * c), w_addr=len(tiles) * r, clear=i == 0,
                    last=i == len(live) - 1, barrier=li > 0 and len(tiles) == first,
                    src=li % 2, rd_base=(kt * r) // b, rd_stride=rd_stride,
                    rd_rot=(kt * r) % b, wr_base=(nt * c) // b, wr_stride=wr_stride,
                    wr_rot=(nt * c) % b, p_addr=p_base + nt))
        emitted = len(tiles) - first
        layers.append(LayerPlan(li, node.name, m, k, n, kts, nts, kts * nts,
                                kts * nts - emitted, first, p_base))
        p_base += nts
    sched = Schedule(r, c, b, layers, tiles, adepth, mdepth, max(1, p_base))
    sched.decide, sched.load, sched.total_cycles = cycle_model(tiles, r, c)
    return sched


def cycle_model(tiles: list[Tile], r: int, c: int) -> tuple[list[int], list[int], int]:
    """The sequencer's timing (hw/sequencer.v), tile by tile.

    L_i = max(L_{i-1} + R, D_{i-1} + 1 + C): the weight loader is busy R cycles, and may only
    overwrite the shadow weights once the previous tile's first step has passed the last column.
    D_i = max(L_i, D_{i-1} + max(M_{i-1}, 2), barrier: D_{i-1} + M_{i-1} + drain - 1): steps
    stream back to back; a layer's first tile waits until the previous layer's writes landed.
    Total = D_last + M_last + drain.
    """
    dr = drain(r, c)
    decide: list[int] = []
    load: list[int] = []
    for i, t in enumerate(tiles):
        if i == 0:
            ld, d = 0, 0
        else:
            prev = tiles[i - 1]
            ld = max(load[-1] + r, decide[-1] + 1 + c)
            d = max(ld, decide[-1] + max(prev.m, 2))
            if t.barrier:
                d = max(d, decide[-1] + prev.m + dr - 1)
        load.append(ld)
        decide.append(d)
    total = decide[-1] + tiles[-1].m + dr if tiles else 0
    return decide, load, total
