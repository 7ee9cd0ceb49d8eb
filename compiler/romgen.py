"""ROM images for the generated design: the schedule, the weight tiles and the per-column
post-processing parameters, packed exactly as hw/sequencer.v and hw/column.v unpack them.

``HwParams`` is the one place the hardware's widths are derived from a schedule; codegen passes
them to the Verilog parameters of edgehls_core unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgehls import encode, ir, lowering, numerics, tiler
from edgehls.errors import PassError, UnsupportedError
from edgehls.tiler import Schedule, dense_layers


def clog2(n: int) -> int:
    return numerics.clog2(n)


@dataclass(frozen=True)
class HwParams:
    R: int
    C: int
    B: int
    AW: int  # activation storage width: abits + 1, signed
    WW: int
    ACC_W: int
    ADEPTH: int
    MDEPTH: int
    NT: int
    WDEPTH: int
    PDEPTH: int
    NL: int = 1  # layers (codebook banks, layer-table entries)
    SHARE: int = 0  # weight-sharing index bits; 0: the weight ROM holds WW-bit weights
    DMAX: int = 1  # largest feature-map height/width/offset magnitude
    SMAX: int = 1  # largest stride
    # sparsity encoding (edgehls.encode); EW = 0: the weight ROM holds raw rows, no decoder
    EW: int = 0  # encoded ROM word width
    EDEPTH: int = 1  # encoded ROM words
    BITMAP: int = 0  # bit l: layer l's rows are bitmaps
    EMPTY: int = 0  # bit l: layer l's bitmap rows start with a non-empty flag (bitmap-z)
    ZERO: int = 0  # layer l's zero element at bits [l*w +: w], w = SHARE or WW
    # layer l's element width in the stream at bits [l*8 +: 8]; 0: every layer at SHARE or WW
    WL: int = 0
    MB: int = numerics.MULT_BITS
    SB: int = numerics.SHIFT_BITS
    NLUT: int = 0  # table activations (hw/column.v's table stage when > 0)
    NEG: int = 0  # 1: post words carry the negative-side pair (some layer has a LeakyRelu)
    RED: int = 0  # 1: some layer runs in reduce mode (the sequencer's and columns' logic for it)
    # a layer's input is packed (tiler.packed_layers), 1: along w, 2: along h (W-major): the
    # layer table's r_step/r_wrap, the sequencer's rotation walk and the input loader's padded
    # layout; 0: all left out
    PK: int = 0
    PK_W: int = 1  # the packed input's width, and its pads along the packed axis (the
    PK_LO: int = 0  # loader's zero writes)
    PK_HI: int = 0

    @property
    def LIW(self) -> int:
        return max(1, clog2(self.NLUT))

    @property
    def LUT_DEPTH(self) -> int:
        """Table ROM words: 2**LIW tables of 2**(AW-1) entries (hw/column.v)."""
        return 1 << (self.LIW + self.AW - 1)

    @property
    def DW(self) -> int:
        return max(1, clog2(self.DMAX + 1))

    @property
    def SDW(self) -> int:
        """Signed width of window positions and kernel offsets."""
        return self.DW + 2

    @property
    def STW(self) -> int:
        return max(1, clog2(self.SMAX + 1))

    @property
    def XAW(self) -> int:
        """Signed width of read addresses (a window's first address may lie before 0)."""
        return self.AAW + 3

    @property
    def LTW(self) -> int:
        return 3 * self.DW + 2 * self.STW + 2 * self.XAW + 2 + (2 * self.BW if self.PK else 0)

    @property
    def CSW(self) -> int:
        return max(1, clog2(self.NL))

    @property
    def WROM_W(self) -> int:
        """Weight ROM word width: C weights, or C codebook indices."""
        return self.C * (self.SHARE or self.WW)

    @property
    def ROM_W(self) -> int:
        """The weights.hex word: an encoded stream word, or a raw row."""
        return self.EW or self.WROM_W

    @property
    def ROM_DEPTH(self) -> int:
        return self.EDEPTH if self.EW else self.WDEPTH

    @property
    def WAW(self) -> int:
        return max(1, clog2(self.WDEPTH))

    @property
    def MCW(self) -> int:
        return clog2(self.MDEPTH + 1)

    @property
    def RCW(self) -> int:
        return clog2(self.R + 1)

    @property
    def CCW(self) -> int:
        return clog2(self.C + 1)

    @property
    def AAW(self) -> int:
        return clog2(self.ADEPTH + 1)

    @property
    def BW(self) -> int:
        return max(1, clog2(self.B))

    @property
    def PAW(self) -> int:
        return max(1, clog2(self.PDEPTH))

    @property
    def SW(self) -> int:
        return (self.WAW + self.MCW + self.RCW + self.CCW + 3 + self.XAW + 2 * self.AAW
                + 2 * self.BW + self.PAW + self.CSW + 2 * self.SDW + 2 * self.CCW)

    @property
    def PW(self) -> int:
        return (self.ACC_W + self.MB + self.SB + 2 * self.AW
                + (self.MB + self.SB if self.NEG else 0) + (1 + self.LIW if self.NLUT else 0))


def hw_params(g: ir.Graph, s: Schedule, encoding: str = "raw") -> HwParams:
    """The hardware's widths and depths; ``encoding`` is the --encode option."""
    layers = dense_layers(g)
    shares = {n.op.share_bits for n in layers
              if not isinstance(n.op, ir.QMaxPool | ir.QAdd | ir.QConcat)} or {0}
    if len(shares) != 1:
        raise PassError("weight sharing must use one index width for every layer (the weight "
                        f"ROM has one word format); got {sorted(shares)}")
    abits = max(g.tensor(t).q.bits for t in g.tensors if g.tensor(t).q is not None)
    geo = s.tables
    dmax = max([1] + [max(x.walk_ih, x.walk_iw, x.ow) for x in geo]
               + [max(abs(t.off_h), abs(t.off_w)) for t in s.tiles])
    arith = [n.op for n in layers if not isinstance(n.op, ir.QMaxPool | ir.QAdd | ir.QConcat)]
    wbits = max([2] + [op.wbits for op in arith])
    acc = max([op.acc_bits for op in arith]
              + [g.tensor(n.inputs[0]).q.bits + 2 for n in layers])  # max mode: value + sign
    p = HwParams(
        R=s.R, C=s.C, B=s.B, AW=abits + 1, WW=wbits, ACC_W=acc,
        ADEPTH=s.adepth, MDEPTH=s.mdepth, NT=max(1, len(s.tiles)), WDEPTH=s.wdepth,
        PDEPTH=s.pdepth, NL=len(geo), SHARE=shares.pop(), DMAX=dmax,
        SMAX=max([1] + [max(x.sh, x.sw) for x in geo]),
        NLUT=sum(1 for n in layers if n.const_name("lut")),
        NEG=int(any(n.const_name("mult_n") for n in layers)),
        RED=int(any(x.reduce for x in geo)),
        **({"PK": 1 if s.packed.packed == "w" else 2, "PK_W": s.packed.iw,
            "PK_LO": s.packed.pad_lo, "PK_HI": s.packed.pad_hi} if s.packed else {}))
    lim = 1 << (p.XAW - 1)
    if any(not -lim <= v < lim for t in s.tiles for v in (t.rd_base,)) or any(
            not -lim <= v < lim for x in geo for v in (x.a_step, x.a_wrap)):
        raise UnsupportedError("a layer's window addressing does not fit the read-address "
                               "width; the feature map is too large for this array size")
    ep = encoding_plan(g, s, p, encoding)
    if ep.encoded:
        w = p.SHARE or p.WW
        # the decoder's per-layer parameters are indexed by the schedule's layer field: the
        # layer-table entry (a Concat source of another width has its own), each its layer's
        fmts = [ep.formats[s.table_layer(e)] for e in range(p.NL)]
        p = replace(p, EW=ep.width, EDEPTH=len(ep.words),
                    BITMAP=sum(1 << e for e, f in enumerate(fmts) if f != "raw"),
                    EMPTY=sum(1 << e for e, f in enumerate(fmts) if f == "bitmap-z"),
                    ZERO=pack([(ep.zeros[s.table_layer(e)], w) for e in range(p.NL)]),
                    WL=pack([(ep.widths[s.table_layer(e)], 8) for e in range(p.NL)])
                    if set(ep.widths) != {w} else 0)
    s.memo[("stream", p)] = ep  # p's formats and widths are ep's: stream_plan need not rebuild it
    return p


def _layer_entries(s: Schedule, p: HwParams) -> list[int]:
    """Each layer's first layer-table entry (the decoder's parameters are per entry)."""
    entry = {s.table_layer(e): e for e in reversed(range(p.NL))}
    return [entry[i] for i in range(len(s.layers))]


def stream_plan(g: ir.Graph, s: Schedule, p: HwParams) -> encode.Plan:
    """The weight stream with the per-layer formats and widths ``p`` was built with; built
    once per (schedule, p): ``s`` is the schedule of ``g``, and hw_params leaves its plan."""
    key = ("stream", p)
    if key not in s.memo:
        s.memo[key] = _build_stream(g, s, p)
    return s.memo[key]


def _build_stream(g: ir.Graph, s: Schedule, p: HwParams) -> encode.Plan:
    formats = [("bitmap-z" if p.EMPTY >> e & 1 else "bitmap") if p.BITMAP >> e & 1 else "raw"
               for e in _layer_entries(s, p)]
    return encode.build(formats, weight_blocks(g, s, p), zero_elements(g, p), p.SHARE or p.WW,
                        stream_widths(s, p))


def stream_widths(s: Schedule, p: HwParams) -> list[int]:
    """Per layer, its element width in the encoded stream (p.WL, per layer-table entry; all
    SHARE or WW if 0)."""
    if not p.WL:
        return [p.SHARE or p.WW] * len(s.layers)
    return [p.WL >> (8 * e) & 0xFF for e in _layer_entries(s, p)]


def encoding_plan(g: ir.Graph, s: Schedule, p: HwParams, encoding: str) -> encode.Plan:
    """The weight stream under --encode ``encoding`` (edgehls.encode), each layer's elements at
    its own width (element_widths)."""
    return encode.plan(encoding, weight_blocks(g, s, p), zero_elements(g, p), p.SHARE or p.WW,
                       element_widths(g, p))


def element_widths(g: ir.Graph, p: HwParams) -> list[int]:
    """Per layer, the bits its ROM elements need: the --share-bits index width for every layer;
    else a layer's own wbits, and the array's WW for a max pool's identity tiles and a residual
    Add's alignment weights (no weights of their own: a uniform design keeps one width)."""
    if p.SHARE:
        return [p.SHARE] * len(dense_layers(g))
    out = []
    for node in dense_layers(g):
        if isinstance(node.op, ir.QMaxPool | ir.QAdd | ir.QConcat):
            out.append(p.WW)
            continue
        wb = min(node.op.wbits, p.WW)
        w = np.asarray(g.const(node, "weight"), dtype=np.int64)
        if w.size and not (-(1 << (wb - 1)) <= w.min() and w.max() < (1 << (wb - 1))):
            raise PassError(f"layer {node.name!r} ({node.op.kind}): a weight does not fit its "
                            f"{wb} bits")
        out.append(wb)
    return out


def pack(fields: list[tuple[int, int]]) -> int:
    """Concatenate (value, width) pairs LSB first; values are taken two's complement."""
    word, pos = 0, 0
    for value, width in fields:
        word |= (int(value) & ((1 << width) - 1)) << pos
        pos += width
    return word


def hex_lines(words: list[int], width: int) -> str:
    digits = max(1, -(-width // 4))
    if digits <= 16 and words and 0 <= min(words) and max(words) < 1 << (4 * digits):
        # 64-bit words: numpy writes the digits (a big ROM has millions of lines)
        text = np.frombuffer(np.asarray(words, dtype=">u8").tobytes().hex().encode(), "S1")
        lines = np.full((len(words), digits + 1), b"\n", dtype="S1")
        lines[:, :digits] = text.reshape(-1, 16)[:, 16 - digits:]
        return lines.tobytes().decode()
    return "".join(f"{w:0{digits}x}\n" for w in words)


def schedule_words(s: Schedule, p: HwParams) -> list[int]:
    if not s.tiles:
        return []
    widths = (p.WAW, p.MCW, p.RCW, p.CCW, 1, 1, 1, p.XAW, p.BW, p.AAW, p.AAW, p.BW, p.PAW,
              p.CSW, p.SDW, p.SDW, p.CCW, p.CCW)
    fields = np.array([(t.w_addr, t.m, t.k_rows, t.n_cols, t.clear, t.last, t.barrier,
                        t.rd_base, t.rd_rot, t.wr_base, t.wr_stride, t.wr_rot, t.p_addr,
                        t.table, t.off_h, t.off_w, t.mlo, t.mhi) for t in s.tiles], np.int64)
    # each tile's fields LSB first, as pack() would concatenate them, for all tiles at once
    bits = np.concatenate([encode.element_bits(fields[:, i], n) for i, n in enumerate(widths)],
                          axis=1)
    return encode.pack_bits(bits.reshape(-1), sum(widths))


def layer_words(s: Schedule, p: HwParams) -> list[int]:
    """The layer table: feature-map geometry and address steps of each layer (a packed
    layer's iw or ih is padded along its axis; a design with one (PK) has rotation steps)."""
    return [pack([(x.walk_ih, p.DW), (x.walk_iw, p.DW), (x.ow, p.DW), (x.sh, p.STW), (x.sw, p.STW),
                  (x.a_step, p.XAW), (x.a_wrap, p.XAW), (x.max_mode, 1),
                  (x.reduce, 1), *([(x.r_step, p.BW), (x.r_wrap, p.BW)] if p.PK else [])])
            for x in s.tables]


def codebook(g: ir.Graph, node: ir.Node, p: HwParams) -> np.ndarray:
    """A layer's codebook; a max pool's or a Concat's identity weights use [0, 1, 1, ...], a
    residual Add's diagonal weights [0, wa, wb, wb, ...]."""
    if isinstance(node.op, ir.QMaxPool | ir.QConcat):
        return np.array([0] + [1] * ((1 << p.SHARE) - 1), dtype=np.int64)
    if isinstance(node.op, ir.QAdd):
        wa, wb = (int(g.const(node, r)[0]) for r in ("wa", "wb"))
        return np.array([0, wa] + [wb] * ((1 << p.SHARE) - 2), dtype=np.int64)
    return np.asarray(g.const(node, "codebook"), dtype=np.int64)


def weight_blocks(g: ir.Graph, s: Schedule, p: HwParams
                  ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per scheduled tile: (layer, R x C block of weights or codebook indices, live mask).

    Padding (rows past k_rows, columns past n_cols) is 0 (index 0 with sharing) and not live:
    its rows meet zero activations and its columns are never written, so any weight there is
    harmless.
    """
    key = ("blocks", p.SHARE)  # the same for every p of this schedule with this SHARE
    if key not in s.memo:
        s.memo[key] = _weight_blocks(g, s, p)
    return s.memo[key]


def _weight_blocks(g: ir.Graph, s: Schedule, p: HwParams
                   ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    layers = dense_layers(g)
    geo = [lowering.geometry(g, node) for node in layers]
    out = []
    for t in s.tiles:
        node = layers[t.layer]
        n0 = t.nt * s.C
        live = tiler.tile_rows(geo[t.layer], t.kh, t.kw, t.krow0, t.k_rows,
                               t.packed)[:, n0:n0 + t.n_cols]
        if p.SHARE:
            live = codebook_indices(codebook(g, node, p), live, node.name)
        block = np.zeros((s.R, s.C), dtype=np.int64)
        block[:t.k_rows, :t.n_cols] = live
        mask = np.zeros((s.R, s.C), dtype=bool)
        mask[:t.k_rows, :t.n_cols] = True
        out.append((t.layer, block, mask))
    return out


def weight_words(g: ir.Graph, s: Schedule, p: HwParams) -> list[int]:
    """One word per tile row: column j's weight (or codebook index) at bits [j*w +: w]; with
    sparsity encoding (p.EW), the encoded stream's words."""
    if p.EW:
        return list(stream_plan(g, s, p).words)
    return encode.raw_words(weight_blocks(g, s, p), p.SHARE or p.WW)


def codebook_indices(codebook: np.ndarray, w: np.ndarray, name: str) -> np.ndarray:
    """The index of each weight in the codebook (its first occurrence)."""
    cb = np.asarray(codebook, dtype=np.int64)
    match = w[..., None] == cb
    if not match.any(axis=-1).all():
        raise PassError(f"layer {name!r}: a weight is not in its codebook (run Share last)")
    return match.argmax(axis=-1)


def codebook_words(g: ir.Graph, s: Schedule, p: HwParams) -> list[int]:
    """Layer-table entry l's codebook (its layer's) at addresses l * 2**SHARE ... (the decoder
    concatenates {l, index})."""
    layers = dense_layers(g)
    words: list[int] = []
    for index in range(len(s.tables)):
        words.extend(pack([(v, p.WW)]) for v in codebook(g, layers[s.table_layer(index)], p))
    return words


def post_words(g: ir.Graph, s: Schedule, p: HwParams) -> list[list[int]]:
    """Per column j, one word per (layer, column group): bias, mult, shift, lo, hi; in a design
    with a LeakyRelu (``NEG``) mult_n, shift_n (the pair used where acc + bias < 0: a fused
    LeakyRelu's, else mult and shift); in a design with tables lut_id, lut_en (the layer's
    table, in layer order)."""
    luts = lut_ids(g)
    cols: list[list[int]] = [[0] * p.PDEPTH for _ in range(s.C)]
    for plan, node in zip(s.layers, dense_layers(g), strict=True):
        if isinstance(node.op, ir.QMaxPool):  # the maximum passes through at its own scale
            q = g.tensor(node.outputs[0]).q
            bias, mult, shift = (np.zeros(plan.N, np.int64), np.ones(plan.N, np.int64),
                                 np.zeros(plan.N, np.int64))
            lo, hi = q.lo, q.hi
        else:
            mult, shift = g.const(node, "mult"), g.const(node, "shift")
            bias = (g.const(node, "bias") if node.const_name("bias")
                    else np.zeros(plan.N, np.int64))  # a residual Add has none
            lo, hi = node.op.lo, node.op.hi
        mult_n, shift_n = mult, shift
        if node.const_name("mult_n") is not None:
            mult_n, shift_n = g.const(node, "mult_n"), g.const(node, "shift_n")
        for nt in range(plan.n_tiles):
            for j in range(s.C):
                n = nt * s.C + j
                if n < plan.N:
                    cols[j][plan.p_base + nt] = pack([
                        (bias[n], p.ACC_W), (mult[n], p.MB), (shift[n], p.SB),
                        (lo, p.AW), (hi, p.AW),
                        *([(mult_n[n], p.MB), (shift_n[n], p.SB)] if p.NEG else []),
                        *([(luts.get(node.name, 0), p.LIW), (node.name in luts, 1)]
                          if p.NLUT else [])])
    return cols


def lut_ids(g: ir.Graph) -> dict[str, int]:
    """Layer name -> its table's index, for the layers with a table activation, in order."""
    names = [n.name for n in dense_layers(g) if n.const_name("lut")]
    return {name: i for i, name in enumerate(names)}


def lut_words(g: ir.Graph, p: HwParams) -> list[int]:
    """The table ROM: table t at t * 2**(AW-1), entry z + 2**(AW-2) for the code z (a table of
    fewer bits than the widest activation is extended with its edge entries)."""
    half = 1 << (p.AW - 2)
    words = [0] * p.LUT_DEPTH
    for t, node in enumerate(n for n in dense_layers(g) if n.const_name("lut")):
        table = np.asarray(g.const(node, "lut"), dtype=np.int64)
        z = np.clip(np.arange(-half, half), -(table.size >> 1), (table.size >> 1) - 1)
        for i, v in enumerate(numerics.lookup(z, table)):
            words[t * 2 * half + i] = pack([(v, p.AW)])
    return words


def rom_images(g: ir.Graph, s: Schedule, p: HwParams) -> dict[str, tuple[str, int]]:
    """File name (under rom/) -> ($readmemh text, word width in bits)."""
    files = {
        "schedule.hex": (schedule_words(s, p) or [0], p.SW),
        "weights.hex": (weight_words(g, s, p), p.ROM_W),
        "layers.hex": (layer_words(s, p), p.LTW),
    }
    if p.SHARE:
        files["codebook.hex"] = (codebook_words(g, s, p), p.WW)
    if p.NLUT:
        files["lut.hex"] = (lut_words(g, p), p.AW)
    for j, words in enumerate(post_words(g, s, p)):
        files[f"post_c{j}.hex"] = (words, p.PW)
    return {name: (hex_lines(words, width), width) for name, (words, width) in files.items()}


def zero_elements(g: ir.Graph, p: HwParams) -> list[int]:
    """Per layer, the ROM element that means weight 0: 0, or with sharing the index of 0 in
    the layer's codebook (0 when the layer has no zero weight)."""
    if not p.SHARE:
        return [0] * len(dense_layers(g))
    out = []
    for node in dense_layers(g):
        cb = codebook(g, node, p) if not isinstance(node.op, ir.QAdd) else np.zeros(1)
        hit = np.flatnonzero(cb == 0)
        out.append(int(hit[0]) if hit.size else 0)
    return out
