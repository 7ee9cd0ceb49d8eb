"""Lowering: every compute layer as one convolution over an NHWC feature map, the form the
hardware executes.

- QDense [M, K] x [K, N] is a 1 x 1 convolution over a 1 x M map of K channels.
- QConv is itself; a grouped or depthwise convolution becomes a dense one whose weight is block
  diagonal (zero tiles outside the diagonal are skipped by the tiler, so only the live blocks
  cost ROM words and cycles; the report shows the utilization honestly).
- QMaxPool is a depthwise "convolution" with identity weights whose accumulator keeps the
  maximum instead of the sum (the column's max mode), padding excluded.
- A QConv that is a global average pool (depthwise, one output pixel, kernel = the whole map,
  each channel's weight the same at every position: what Canonicalize makes of
  GlobalAveragePool) is a reduce-mode layer: a 1 x 1 depthwise convolution of that weight over
  all H x W pixels whose accumulator sums over the pixels into its one entry (``Geom.reduce``).
  sum over pixels of x * w equals the window convolution's sum integer for integer, so the
  numerics are the QConv's; it costs H*W cycles per live tile instead of R per kernel position.
- QAdd is a 1 x 1 convolution over its two inputs stacked along K: diagonal weights wa for
  the first input's channels, wb for the second's.
- QConcat is a 1 x 1 convolution over its inputs stacked along K (each with its own channel
  count, ``Geom.src_cin``) with identity weights: output channel c is input row c, and the
  per-channel requantization brings each input's scale to the output's.

``Geom.weight`` is the dense weight [KH, KW, Cin, Cout]: a K-tile of the array is (kh, kw, block
of R input channels), an N-tile a block of C output channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgehls import ir
from edgehls.errors import PassError

COMPUTE = (ir.QDense, ir.QConv, ir.QMaxPool, ir.QAdd, ir.QConcat)


@dataclass(frozen=True)
class Geom:
    ih: int
    iw: int
    cin: int
    oh: int
    ow: int
    cout: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    max_mode: bool
    weight: np.ndarray  # int64 [KH, KW, Cin * sources, Cout]
    group: int = 1
    sources: int = 1  # input tensors stacked along K (2 for a residual Add)
    src_cin: tuple[int, ...] = ()  # channels of each source when they differ (a Concat)
    reduce: bool = False  # reduce mode: the M steps sum into one output pixel

    @property
    def out_m(self) -> int:
        """Output pixels: 1 in reduce mode, else M."""
        return 1 if self.reduce else self.m

    @property
    def cins(self) -> tuple[int, ...]:
        """Channels of each source, in K order."""
        return self.src_cin or (self.cin,) * self.sources

    @property
    def m(self) -> int:
        return self.oh * self.ow

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates (a max pool counts its comparisons)."""
        kh, kw = self.kernel
        if self.src_cin:  # a Concat: one multiply by 1 per output element
            return self.m * self.cout
        if self.max_mode or self.sources > 1:
            return self.m * self.cout * kh * kw * self.sources
        return self.m * kh * kw * (self.cin // self.group) * self.cout


def compute_layers(g: ir.Graph) -> list[ir.Node]:
    nodes = [n for n in g.nodes() if not isinstance(n.op, ir.Input)]
    for n in nodes:
        if not isinstance(n.op, COMPUTE):
            raise PassError(f"the tiler needs a quantized graph; node {n.name!r} is {n.op.kind}")
    return nodes


def geometry(g: ir.Graph, node: ir.Node) -> Geom:
    op = node.op
    x = g.tensor(node.inputs[0])
    if isinstance(op, ir.QDense):
        w = g.const(node, "weight")
        k, n = w.shape
        m = x.size // k
        return Geom(1, m, k, 1, m, n, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False,
                    np.asarray(w, dtype=np.int64)[None, None])
    if isinstance(op, ir.QConcat):
        shapes = [g.tensor(t).shape for t in node.inputs]
        if len(shapes[0]) != 4:  # rows of features: 1 x M pixels
            shapes = [(1, sh[-1], 1, int(np.prod(sh)) // sh[-1]) for sh in shapes]
        cins = tuple(int(sh[1]) for sh in shapes)
        h, wd = shapes[0][2:]
        eye = np.eye(sum(cins), dtype=np.int64)[None, None]
        return Geom(h, wd, cins[0], h, wd, sum(cins), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1),
                    False, eye, 1, len(cins), cins)
    if isinstance(op, ir.QAdd) and len(x.shape) != 4:  # rows of features: 1 x M pixels
        x = ir.Tensor(x.name, (1, x.shape[-1], 1, x.size // x.shape[-1]))
    _, c, h, wd = x.shape
    y = g.tensor(node.outputs[0])
    if isinstance(op, ir.QAdd):
        eye = np.eye(c, dtype=np.int64)
        stacked = np.concatenate([eye * int(g.const(node, "wa")[0]),
                                  eye * int(g.const(node, "wb")[0])])[None, None]
        return Geom(h, wd, c, h, wd, c, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False, stacked,
                    1, 2)
    oh, ow = y.shape[2], y.shape[3]
    kh, kw = op.kernel
    if isinstance(op, ir.QMaxPool):
        eye = np.broadcast_to(np.eye(c, dtype=np.int64), (kh, kw, c, c)).copy()
        return Geom(h, wd, c, oh, ow, c, op.kernel, op.strides, op.pads, op.dilations, True,
                    eye)
    w = np.asarray(g.const(node, "weight"), dtype=np.int64)  # [Cout, Cin/g, kh, kw]
    cout, cg = w.shape[:2]
    if _global_pool(op, w, (h, wd), (oh, ow), c):
        diag = np.zeros((1, 1, c, c), dtype=np.int64)
        diag[0, 0, np.arange(c), np.arange(c)] = w[:, 0, 0, 0]
        return Geom(h, wd, c, h, wd, c, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False, diag,
                    c, reduce=True)
    dense = np.zeros((kh, kw, c, cout), dtype=np.int64)
    per = cout // op.group
    for gi in range(op.group):
        block = w[gi * per:(gi + 1) * per].transpose(2, 3, 1, 0)  # [kh, kw, cg, per]
        dense[:, :, gi * cg:(gi + 1) * cg, gi * per:(gi + 1) * per] = block
    return Geom(h, wd, c, oh, ow, cout, op.kernel, op.strides, op.pads, op.dilations, False,
                dense, op.group)


def _global_pool(op: ir.QConv, w: np.ndarray, hw: tuple[int, int], ohw: tuple[int, int],
                 c: int) -> bool:
    """A depthwise QConv over the whole (unpadded) map to one pixel whose weight is the same
    at every kernel position of a channel: a reduce-mode layer."""
    return (ohw == (1, 1) and tuple(op.kernel) == hw and not any(op.pads)
            and tuple(op.dilations) == (1, 1) and op.group == c == w.shape[0] and hw != (1, 1)
            and bool((w == w[:, :, :1, :1]).all()))
