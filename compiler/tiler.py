"""Tiler: every QDense layer becomes a GEMM (M x K x N) cut into R x C weight tiles; the ordered
tile list is the schedule the hardware sequencer executes, and the cycle model reads the same
list.

Activation layout (hw/core.v): a tensor [M, W] lives in a region of one memory of
B = lcm(R, C) banks; element (m, w) is in bank w mod B at word base + m * ceil(W / B) + w // B.
Tiles run output-column-group major (nt), K-tile minor (kt), so a column's accumulator bank
holds M partial sums of one group at a time. An all-zero weight tile (pruned, or zero after
quantization) is not scheduled at all.

Packed input (``packed_layers``): a convolution on the model input with few channels would use
cin of R rows per tile. Its input is stored flat and zero-padded along one axis instead. Along
w (axis "w"): element (ih, iw, c) at F = (ih * IWp + iw + pl) * cin + c, IWp = IW + pl + pr;
along h (axis "h", W-major): F = (iw * IHp + ih + pt) * cin + c, IHp = IH + pt + pb; in bank
F mod B at word base + F // B (the core's input loader writes it so, pads as zeros). A K-tile
is then a run of up to R contiguous (kw, c) rows of one kernel row kh (axis w) or (kh, c) rows
of one kernel column kw (axis h), read as R consecutive elements, and the sequencer walks the
read position per output pixel by a word and a rotation step (``LayerGeometry.r_step`` /
``r_wrap``). The axis with fewer K-tiles is chosen (w on a tie).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgehls import ir, lowering


def drain(r: int, c: int, xlat: int = 0) -> int:
    """Run cycles from a tile's last step issue to its last activation write, plus one: read 2,
    array R + 2 (registered multiplier inputs and products), column skew C - 1, accumulate 1,
    requantize 6, write 1; plus ``xlat``, the table stage (1 in a design with table
    activations, for every layer)."""
    return r + c + 11 + xlat


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
    rd_base: int
    rd_stride: int
    rd_rot: int
    wr_base: int
    wr_stride: int
    wr_rot: int
    p_addr: int
    kh: int = 0
    kw: int = 0
    cb: int = 0
    off_h: int = 0  # input row of the window's kernel position at output row 0 (may be < 0)
    off_w: int = 0
    mlo: int = 0  # max mode: columns [mlo, mhi) take part in this tile
    mhi: int = 0
    krow0: int = 0  # first row of the layer's stacked K axis this tile holds
    ltab: int = -1  # layer-table entry (hw: the schedule's layer field); -1: ``layer``
    # packed input along "w": the tile's rows are (kw, c) = divmod(krow0 + i, cin) of kernel
    # row kh; along "h": (kh, c) = divmod(krow0 + i, cin) of kernel column kw; "": not packed
    packed: str = ""

    @property
    def table(self) -> int:
        return self.layer if self.ltab < 0 else self.ltab


@dataclass(frozen=True)
class LayerGeometry:
    """The layer table entry the sequencer reads per layer (hw/sequencer.v)."""

    ih: int
    iw: int
    ow: int
    sh: int
    sw: int
    a_step: int
    a_wrap: int
    max_mode: bool
    cin: int = 0
    reduce: bool = False  # reduce mode: every step of a tile sums into accumulator entry 0
    # packed input (hw PK): the read rotation steps by r_step along a row, r_wrap to the next
    # (a carry past B adds a word); the map is walked in coordinates padded along the packed
    # axis ("w" or "h"), pad_lo + IW + pad_hi (or IH)
    r_step: int = 0
    r_wrap: int = 0
    packed: str = ""
    pad_lo: int = 0
    pad_hi: int = 0

    @property
    def walk_iw(self) -> int:
        """The map width the sequencer walks (its table's iw): padded for a w-packed input."""
        return self.iw + self.pad_lo + self.pad_hi if self.packed == "w" else self.iw

    @property
    def walk_ih(self) -> int:
        """The map height the sequencer walks (its table's ih): padded for an h-packed input."""
        return self.ih + self.pad_lo + self.pad_hi if self.packed == "h" else self.ih


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
    geom: LayerGeometry | None = None
    macs: int = 0
    op: str = "Dense"


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
    base: dict[str, int] = field(default_factory=dict)  # tensor -> first word of its region
    # layer-table entries after the layers' own (index len(layers) + i): a Concat source whose
    # words per pixel differ from its first source's, with the layer each belongs to
    extra_tables: list[tuple[int, LayerGeometry]] = field(default_factory=list)
    xlat: int = 0  # extra column latency: 1 when some layer has a table activation
    pack_input: bool = True  # the option: pack a first convolution's taps into rows
    # results later stages derive from this schedule (of one graph), computed once per compile:
    # romgen's weight blocks and weight stream; not part of the schedule's value
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def packed(self) -> LayerGeometry | None:
        """The layer-table entry of the layer whose input is packed (at most one: the model
        input's only reader), or None."""
        return next((p.geom for p in self.layers if p.geom is not None and p.geom.packed), None)

    @property
    def tables(self) -> list[LayerGeometry]:
        """The layer table: one entry per layer, then ``extra_tables``."""
        return [p.geom for p in self.layers] + [t for _, t in self.extra_tables]

    def table_layer(self, index: int) -> int:
        """The layer a layer-table entry belongs to."""
        n = len(self.layers)
        return index if index < n else self.extra_tables[index - n][0]

    @property
    def wdepth(self) -> int:
        return max(1, len(self.tiles) * self.R)

    def layer_cycles(self) -> list[int]:
        """Predicted run cycles per layer: from its first decision to the next layer's."""
        starts = [self.decide[p.first_tile] for p in self.layers] + [self.total_cycles]
        return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def dense_layers(g: ir.Graph) -> list[ir.Node]:
    """The compute layers in schedule order (Dense, Conv and MaxPool, quantized)."""
    return lowering.compute_layers(g)


def tensor_words(shape: tuple[int, ...], b: int, channels: int | None = None) -> int:
    """Words per bank a tensor occupies: pixels x ceil(channels / B)."""
    size = int(np.prod(shape))
    c = channels if channels is not None else (shape[1] if len(shape) == 4 else shape[-1])
    return size // c * -(-c // b)


def allocate(g: ir.Graph, layers: list[ir.Node], words: dict[str, int]) -> dict[str, int]:
    """First word of every activation tensor's region in the activation memory.

    A tensor lives from the layer that writes it to the last layer that reads it; a layer's
    output never overlaps its inputs, and a region is reused once its tensor is dead (the
    barrier before each layer guarantees the earlier reads and writes are over). First fit,
    in schedule order: deterministic.
    """
    last_use = {t: -1 for t in words}
    for i, node in enumerate(layers):
        for t in node.inputs:
            last_use[t] = i
    for t in g.outputs:
        last_use[t] = len(layers)
    live: dict[str, tuple[int, int]] = {}  # tensor -> (base, words)
    base: dict[str, int] = {}

    def place(t: str) -> None:
        start = 0
        for b0, n in sorted(live.values()):
            if start + words[t] <= b0:
                break
            start = max(start, b0 + n)
        live[t] = (start, words[t])
        base[t] = start

    for t in g.inputs:
        place(t)
    for i, node in enumerate(layers):
        place(node.outputs[0])
        for t in [t for t in live if last_use[t] <= i and t not in g.outputs]:
            del live[t]
    return base


def packed_layers(g: ir.Graph, nodes: list[ir.Node], geos: list[lowering.Geom], r: int
                  ) -> dict[int, tuple[str, int, int]]:
    """Layer index -> (axis, lo, hi) of the convolution whose input is stored packed: a group-1
    convolution (not a pool, not reduce mode) on a model input that no other layer reads and
    that is no output, when packing (kw, c) rows of a kernel row (axis "w", dilation 1 along
    w) or (kh, c) rows of a kernel column (axis "h", dilation 1 along h) into tiles needs fewer
    K-tiles than (kh, kw, block of R channels); the axis with fewer K-tiles, w on a tie. lo, hi
    are the pads along that axis, hi grown to cover the last window's far edge."""
    out = {}
    for li, (node, geo) in enumerate(zip(nodes, geos, strict=True)):
        t = node.inputs[0]
        if (not isinstance(node.op, ir.QConv) or geo.group != 1 or geo.reduce
                or geo.max_mode or geo.sources != 1 or t not in g.inputs or t in g.outputs
                or [n.name for n in nodes if t in n.inputs] != [node.name]):
            continue
        kh_n, kw_n = geo.kernel
        (dh, dw), cin, big = geo.dilations, geo.cin, 1 << 62
        tiles = {"w": kh_n * -(-kw_n * cin // r) if dw == 1 else big,
                 "h": kw_n * -(-kh_n * cin // r) if dh == 1 else big}
        axis = min(tiles, key=lambda a: (tiles[a], a != "w"))
        if tiles[axis] >= kh_n * kw_n * -(-cin // r):
            continue
        pt, pl, pb, pr = geo.pads
        if axis == "w":
            out[li] = ("w", pl, max(pr, (geo.ow - 1) * geo.strides[1] + kw_n - geo.iw - pl))
        else:
            out[li] = ("h", pt, max(pb, (geo.oh - 1) * geo.strides[0] + kh_n - geo.ih - pt))
    return out


def packed_words(geo: lowering.Geom, axis: str, lo: int, hi: int, b: int) -> int:
    """Words per bank of a packed input: (IH + lo + hi) * IW * cin elements along h, or
    IH * (IW + lo + hi) * cin along w, flat."""
    ih, iw = (geo.ih + lo + hi, geo.iw) if axis == "h" else (geo.ih, geo.iw + lo + hi)
    return max(1, -(-ih * iw * geo.cin // b))


def schedule(g: ir.Graph, r: int, c: int, pack_input: bool = True) -> Schedule:
    """Cut every layer into tiles, lay out the activation memory, and run the cycle model.
    ``pack_input`` (compile's --no-pack-input turns it off) packs a first convolution's
    (kw, c) rows into tiles (``packed_layers``)."""
    b = math.lcm(r, c)
    layers: list[LayerPlan] = []
    tiles: list[Tile] = []
    nodes = lowering.compute_layers(g)
    geos = [lowering.geometry(g, node) for node in nodes]
    packs = packed_layers(g, nodes, geos, r) if pack_input else {}
    words = {t: tensor_words(g.tensor(t).shape, b) for t in g.inputs}
    for li, (node, geo) in enumerate(zip(nodes, geos, strict=True)):
        words[node.outputs[0]] = geo.out_m * -(-geo.cout // b)
        if li in packs:  # its input is laid out flat (the model input's only reader)
            words[node.inputs[0]] = packed_words(geo, *packs[li], b)
            continue
        for t, cin in zip(node.inputs, geo.cins, strict=False):  # a Dense reads its own [M, K]
            if t in g.inputs and words[t] != geo.ih * geo.iw * -(-cin // b):
                words[t] = max(words[t], geo.ih * geo.iw * -(-cin // b))
    base = allocate(g, nodes, words)
    adepth = max(base[t] + words[t] for t in base)
    mdepth, p_base = 1, 0
    extra: list[tuple[int, LayerGeometry]] = []
    for li, (node, geo) in enumerate(zip(nodes, geos, strict=True)):
        kh_n, kw_n = geo.kernel
        nts = -(-geo.cout // c)
        rd_stride, wr_stride = -(-geo.cin // b), -(-geo.cout // b)
        mdepth = max(mdepth, geo.m)
        (dh, dw), (pt, pl, _, _) = geo.dilations, geo.pads
        if li in packs:
            p_first = len(tiles)
            table = _packed_tiles(geo, li, packs[li], base[node.inputs[0]],
                                  base[node.outputs[0]], p_base, r, c, b, tiles)
            emitted = len(tiles) - p_first
            k_tiles = (kh_n * -(-kw_n * geo.cin // r) if packs[li][0] == "w"
                       else kw_n * -(-kh_n * geo.cin // r))
            layers.append(LayerPlan(li, node.name, geo.m, kh_n * kw_n * geo.cin, geo.cout,
                                    k_tiles, nts, k_tiles * nts, k_tiles * nts - emitted,
                                    p_first, p_base, table, geo.macs, node.op.kind))
            p_base += nts
            continue
        table = _table(geo, rd_stride, geo.cin)
        # per source: first K row, words per pixel, and its layer-table entry (a Concat source
        # of another width steps by its own words per pixel: an extra entry)
        cins = geo.cins
        krow = [sum(cins[:i]) for i in range(len(cins))]
        strides = [-(-cin // b) for cin in cins]
        ltabs = []
        for cin, st in zip(cins, strides, strict=True):
            if st == rd_stride:
                ltabs.append(-1)
            else:
                extra.append((li, _table(geo, st, cin)))
                ltabs.append(len(nodes) + len(extra) - 1)
        # K-tiles: (source tensor, kernel row, kernel column, block of R input channels)
        ktiles = [(src, kh, kw, cb) for src in range(len(cins)) for kh in range(kh_n)
                  for kw in range(kw_n) for cb in range(-(-cins[src] // r))]
        out_base = base[node.outputs[0]]
        first = len(tiles)
        nonzero = _nonzero_tiles(geo.weight, cins, r, c)
        for nt in range(nts):
            n0, n_cols = nt * c, min(c, geo.cout - nt * c)

            # all-zero weight tiles are skipped: no ROM words, no cycles. A column group with
            # no non-zero tile still needs one pass for its bias, so it keeps its first tile.
            live = np.flatnonzero(nonzero[:, nt]).tolist() or [0]
            for i, kt in enumerate(live):
                src, kh, kw, cb = ktiles[kt]
                k_rows = min(r, cins[src] - cb * r)
                off_h, off_w = kh * dh - pt, kw * dw - pl
                mlo, mhi = 0, c
                if geo.max_mode:  # the columns whose channel this K-tile carries
                    mlo = max(cb * r, n0) - n0
                    mhi = max(mlo, min(cb * r + k_rows, n0 + n_cols) - n0)
                in_base = base[node.inputs[src]]
                tiles.append(Tile(
                    layer=li, kt=kt, nt=nt, m=geo.m, k_rows=k_rows, n_cols=n_cols,
                    w_addr=len(tiles) * r, clear=i == 0, last=i == len(live) - 1,
                    barrier=li > 0 and len(tiles) == first,
                    rd_base=in_base + (off_h * geo.iw + off_w) * strides[src] + (cb * r) // b,
                    rd_stride=strides[src], rd_rot=(cb * r) % b, wr_base=out_base + n0 // b,
                    wr_stride=0 if geo.reduce else wr_stride,  # reduce: one output pixel
                    wr_rot=n0 % b, p_addr=p_base + nt, kh=kh, kw=kw,
                    cb=cb, off_h=off_h, off_w=off_w, mlo=mlo, mhi=mhi,
                    krow0=krow[src] + cb * r, ltab=ltabs[src]))
        emitted = len(tiles) - first
        total = len(ktiles) * nts
        layers.append(LayerPlan(li, node.name, geo.m, kh_n * kw_n * sum(cins),
                                geo.cout, len(ktiles), nts, total, total - emitted, first,
                                p_base, table, geo.macs, node.op.kind))
        p_base += nts
    sched = Schedule(r, c, b, layers, tiles, adepth, mdepth, max(1, p_base))
    sched.base = base
    sched.extra_tables = extra
    sched.xlat = int(any(node.const_name("lut") for node in nodes))
    sched.pack_input = pack_input
    sched.decide, sched.load, sched.total_cycles = cycle_model(tiles, r, c, sched.xlat)
    return sched


def _nonzero_tiles(weight: np.ndarray, cins: list[int], r: int, c: int) -> np.ndarray:
    """[K-tile, column group]: whether the weight tile has a non-zero weight, K-tiles in
    schedule()'s order (source, kernel row, kernel column, block of r input channels)."""
    kh_n, kw_n, _, cout = weight.shape
    nts = -(-cout // c)
    out, k0 = [], 0
    for cin in cins:
        nb = -(-cin // r)
        nz = np.zeros((kh_n, kw_n, nb * r, nts * c), dtype=bool)
        nz[:, :, :cin, :cout] = weight[:, :, k0:k0 + cin] != 0
        out.append(nz.reshape(kh_n, kw_n, nb, r, nts, c).any(axis=(3, 5)).reshape(-1, nts))
        k0 += cin
    return np.concatenate(out)


def tile_rows(geo: lowering.Geom, kh: int, kw: int, k0: int, k_rows: int, packed: str
              ) -> np.ndarray:
    """The weight rows [k_rows, Cout] a K-tile holds: input channels k0.. of kernel position
    (kh, kw); for a tile packed along w the (kw, c) rows k0.. of kernel row kh, along h the
    (kh, c) rows k0.. of kernel column kw."""
    if packed == "w":
        return geo.weight[kh].reshape(-1, geo.weight.shape[-1])[k0:k0 + k_rows]
    if packed == "h":
        return geo.weight[:, kw].reshape(-1, geo.weight.shape[-1])[k0:k0 + k_rows]
    return geo.weight[kh, kw, k0:k0 + k_rows]


def _packed_tiles(geo: lowering.Geom, li: int, pack: tuple[str, int, int], in_base: int,
                  out_base: int, p_base: int, r: int, c: int, b: int, tiles: list[Tile]
                  ) -> LayerGeometry:
    """Append the tiles of a layer whose input is packed; return its layer-table entry.

    Along w, K-tile (kh, j): rows (kw, c) with kw * cin + c in [j, j + k_rows), flat elements
    F0 .. F0 + k_rows - 1 from F0 = ((oh * sh + off_h) * IWp + ow * sw) * cin + j
    (off_h = kh * dh - pt; in padded w coordinates, so off_w = 0 and the window never leaves
    [0, IWp): only h is checked for padding). Along h, K-tile (kw, j): rows (kh, c) with
    kh * cin + c in [j, j + k_rows), F0 = ((ow * sw + off_w) * IHp + oh * sh) * cin + j
    (off_w = kw * dw - pl, off_h = 0: only w is checked). rd_base, rd_rot: F0 at output
    pixel 0 (floor division: off_h or off_w may be negative, those steps are padding)."""
    axis, lo, hi = pack
    kh_n, kw_n = geo.kernel
    cin = geo.cin
    (sh, sw), (dh, dw), (pt, pl, _, _) = geo.strides, geo.dilations, geo.pads
    outer, inner = (kh_n, kw_n) if axis == "w" else (kw_n, kh_n)
    kc = inner * cin
    ktiles = [(k, j) for k in range(outer) for j in range(0, kc, r)]
    for nt in range(-(-geo.cout // c)):
        n0, n_cols = nt * c, min(c, geo.cout - nt * c)
        live = [kt for kt, (k, j) in enumerate(ktiles)
                if tile_rows(geo, k, k, j, r, axis)[:, n0:n0 + c].any()] or [0]
        first = len(tiles)
        for i, kt in enumerate(live):
            k, j = ktiles[kt]
            if axis == "w":
                kh, kw, off_h, off_w = k, j // cin, k * dh - pt, 0
                f0 = off_h * (geo.iw + lo + hi) * cin + j
            else:
                kh, kw, off_h, off_w = j // cin, k, 0, k * dw - pl
                f0 = off_w * (geo.ih + lo + hi) * cin + j
            tiles.append(Tile(
                layer=li, kt=kt, nt=nt, m=geo.m, k_rows=min(r, kc - j), n_cols=n_cols,
                w_addr=len(tiles) * r, clear=i == 0, last=i == len(live) - 1,
                barrier=li > 0 and nt == 0 and len(tiles) == first,
                rd_base=in_base + f0 // b, rd_stride=0, rd_rot=f0 % b,
                wr_base=out_base + n0 // b, wr_stride=-(-geo.cout // b), wr_rot=n0 % b,
                p_addr=p_base + nt, kh=kh, kw=kw, cb=0, off_h=off_h, off_w=off_w,
                mlo=0, mhi=c, krow0=j, packed=axis))
    if axis == "w":
        step, wrap = sw * cin, (sh * (geo.iw + lo + hi) - (geo.ow - 1) * sw) * cin
    else:
        ihp = geo.ih + lo + hi
        step, wrap = sw * ihp * cin, (sh - (geo.ow - 1) * sw * ihp) * cin
    return LayerGeometry(geo.ih, geo.iw, geo.ow, sh, sw, step // b, wrap // b, False, cin,
                         False, step % b, wrap % b, axis, lo, hi)


def _table(geo: lowering.Geom, stride: int, cin: int) -> LayerGeometry:
    """The layer-table entry of a layer whose input has ``stride`` words per pixel."""
    (sh, sw) = geo.strides
    return LayerGeometry(geo.ih, geo.iw, geo.ow, sh, sw, sw * stride,
                         (sh * geo.iw - (geo.ow - 1) * sw) * stride, geo.max_mode, cin,
                         geo.reduce)


def cycle_model(tiles: list[Tile], r: int, c: int, xlat: int = 0
                ) -> tuple[list[int], list[int], int]:
    """The sequencer's timing (hw/sequencer.v), tile by tile.

    L_i = max(L_{i-1} + R, D_{i-1} + 1 + C): the weight loader is busy R cycles, and may only
    overwrite the shadow weights once the previous tile's first step has passed the last column.
    D_i = max(L_i, D_{i-1} + max(M_{i-1}, 2), barrier: D_{i-1} + M_{i-1} + drain - 1): steps
    stream back to back; a layer's first tile waits until the previous layer's writes landed.
    Total = D_last + M_last + drain.
    """
    dr = drain(r, c, xlat)
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
