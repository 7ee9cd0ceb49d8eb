"""Quantize: float Dense/Conv/MaxPool/AddAct -> QDense/QConv/QMaxPool/QAdd with power-of-two
scales."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from edgehls import golden, ir, numerics
from edgehls.errors import DataError, OptionError, PassError

log = logging.getLogger(__name__)

RANDOM_SAMPLES = 64
ACTS = ("none", "relu", "clip", "leaky")


@dataclass(frozen=True)
class Quantize:
    """Post-training quantization to the fixed-point contract of ``edgehls.numerics``.

    Requires: a graph of Input, Dense, Conv, MaxPool and AddAct nodes only (run Canonicalize
    first), one input. Guarantees: a new graph (the input graph is untouched) where every Dense
    is a QDense, every Conv a QConv (same geometry, consts 'weight' int [Cout, Cin/group, kh,
    kw], 'bias', 'mult', 'shift', named ``<node>.weight_q`` ...), every MaxPool a QMaxPool and
    every AddAct a QAdd (consts 'wa', 'wb' int [1] from ``numerics.add_weights`` of its inputs'
    fracs, 'mult', 'shift' [C] taking their common scale to the output's, C = axis 1), and
    every tensor has a QFormat: the graph input signed ``abits``; a Dense/Conv/AddAct output
    unsigned ``abits`` after ReLU or after a Clip whose lower bound is >= 0, else signed; a
    MaxPool output the format of its input. A Clip's bounds are quantized at the output scale and
    narrow the layer's ``lo``/``hi``. Fracs come from the calibration data's ranges (``calib``,
    a data array as ``golden.as_samples`` takes it); without it, ``RANDOM_SAMPLES`` seeded
    uniform [-1, 1] inputs are used and a note says so. Every bias fits its accumulator bound
    unclipped: a channel whose weights are tiny next to its bias gets a coarser weight scale.
    A Conv is quantized as the matrix [K, Cout], K = Cin/group * kh * kw (its dot-product
    length, which sets ``acc_bits``). A fused LeakyRelu adds 'mult_n', 'shift_n'
    (``numerics.leaky_params``); a Concat becomes a QConcat ('mult', 'shift' per channel from
    its input's scale; unsigned when every input is); a TableAct is fused into the layer
    before it ('lut', 'lut_frac': ``numerics.build_table``; sigmoid/hardsigmoid outputs
    unsigned) and leaves the graph. Each fused activation adds a note with its error.
    """

    wbits: int = 8
    abits: int = 8
    per_channel: bool = True
    calib: np.ndarray | None = field(default=None, compare=False, repr=False)
    seed: int = 0

    def __call__(self, g: ir.Graph) -> ir.Graph:
        numerics.check_bits("--wbits", self.wbits)
        numerics.check_bits("--abits", self.abits)
        for node in g.nodes():
            if not isinstance(node.op, ir.Input | ir.Dense | ir.Conv | ir.MaxPool | ir.AddAct
                              | ir.Concat | ir.TableAct):
                raise PassError(f"Quantize requires Input, Dense, Conv, MaxPool and AddAct "
                                f"nodes; node {node.name!r} is {node.op.kind}: run Canonicalize "
                                "first")
            if isinstance(node.op, ir.Conv):
                check_conv(g, node)
            elif isinstance(node.op, ir.MaxPool):
                check_window(g, node)
            elif isinstance(node.op, ir.AddAct):
                check_add(g, node)
        out = g.copy()
        formats = self._formats(g, self._calibration(g, out))
        for name, fmt in formats.items():
            out.set_tensor(name, q=fmt)
        for node in g.nodes():
            if isinstance(node.op, ir.Dense | ir.Conv):
                self._lower(g, out, node, formats)
            elif isinstance(node.op, ir.AddAct):
                self._lower_add(g, out, node, formats)
            elif isinstance(node.op, ir.Concat):
                self._lower_concat(g, out, node, formats)
        for node in g.nodes():
            if isinstance(node.op, ir.TableAct):
                _fuse_table(out, node, formats)
            elif isinstance(node.op, ir.MaxPool):
                op = node.op
                out.replace_node(ir.Node(node.name, ir.QMaxPool(
                    op.kernel, op.strides, op.pads, op.dilations), node.inputs, node.outputs))
        log.info("quantized %s to w%d/a%d (%s)", g.name, self.wbits, self.abits,
                 "per channel" if self.per_channel else "per tensor")
        return out

    def _calibration(self, g: ir.Graph, out: ir.Graph) -> np.ndarray:
        if self.calib is not None:
            data = golden.model_samples(g, self.calib)
            if not np.isfinite(np.asarray(data, dtype=np.float64)).all():
                raise DataError("calibration data contains NaN or infinity")
            return data
        shape = g.tensor(g.inputs[0]).shape if len(g.inputs) == 1 else ()
        rng = np.random.default_rng(self.seed)
        out.notes.append(f"calibration used {RANDOM_SAMPLES} random inputs uniform in [-1, 1] "
                         f"(seed {self.seed}), not real data: activation ranges are guesses")
        return rng.uniform(-1.0, 1.0, size=(RANDOM_SAMPLES, *shape))

    def _formats(self, g: ir.Graph, data: np.ndarray) -> dict[str, ir.QFormat]:
        acts = golden.run_float_all_samples(g, data)
        smax = (1 << (self.abits - 1)) - 1
        umax = (1 << self.abits) - 1
        formats: dict[str, ir.QFormat] = {}
        for node in g.nodes():
            for t in node.outputs:
                v = acts[t]
                if isinstance(node.op, ir.MaxPool):  # a max of values needs no new scale
                    formats[t] = formats[node.inputs[0]]
                elif isinstance(node.op, ir.TableAct) and node.op.fn != "hardswish":
                    formats[t] = ir.QFormat(self.abits, False,
                                            numerics.frac_for(float(v.max()), umax))
                elif isinstance(node.op, ir.Concat):  # unsigned when every input is
                    signed = any(formats[i].signed for i in node.inputs)
                    top = float(np.abs(v).max() if signed else v.max())
                    formats[t] = ir.QFormat(self.abits, signed,
                                            numerics.frac_for(top, smax if signed else umax))
                elif unsigned_output(node.op):
                    formats[t] = ir.QFormat(self.abits, False, numerics.frac_for(v.max(), umax))
                else:
                    frac = numerics.frac_for(float(np.abs(v).max()), smax)
                    formats[t] = ir.QFormat(self.abits, True, frac)
        return formats

    def _weights(self, node: ir.Node, w: np.ndarray, b: np.ndarray, frac_in: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``numerics.quantize_weights`` of w [K, N], but a channel whose weights are tiny next
        to its bias gets a coarser weight scale, so its bias fits ``bias_bound`` unclipped."""
        wq, fw = numerics.quantize_weights(w, self.wbits, self.per_channel)
        lim = numerics.bias_bound(self.wbits, self.abits, w.shape[0])
        over = np.abs(numerics.round_half_up(b * 2.0 ** (frac_in + fw))) > lim
        if over.any():
            cap = np.array([numerics.frac_for(abs(float(v)), lim) for v in b]) - frac_in
            cap = np.where(over, cap, fw).astype(np.int64)
            fw = cap if self.per_channel else np.full_like(fw, cap.min())
            qmax = numerics.weight_max(self.wbits)
            wq = numerics.quantize(w * 2.0 ** fw[None, :].astype(np.float64), 0, -qmax, qmax)
            log.info("node %r: weight scale of %d channel(s) lowered so the bias fits the "
                     "accumulator", node.name, int(over.sum()))
        return wq, fw

    def _lower(self, g: ir.Graph, out: ir.Graph, node: ir.Node,
               formats: dict[str, ir.QFormat]) -> None:
        """Dense or Conv -> QDense or QConv: the matrix w [K, N] quantized per column N."""
        w = g.const(node, "weight")
        conv = isinstance(node.op, ir.Conv)
        mat = w.reshape(w.shape[0], -1).T if conv else w  # conv: [K, Cout], K in (c, kh, kw)
        k, n = mat.shape
        b = g.const(node, "bias") if node.const_name("bias") else np.zeros(n)
        if not conv and (b.shape != (n,) or g.tensor(node.inputs[0]).size % k):
            raise PassError(f"node {node.name!r} (Dense): weight {list(w.shape)}, bias "
                            f"{list(b.shape)} and input {list(g.tensor(node.inputs[0]).shape)} "
                            "do not agree")
        fin, fout = formats[node.inputs[0]], formats[node.outputs[0]]
        wq, fw = self._weights(node, mat, b, fin.frac)
        frac_acc = fin.frac + fw
        bq = numerics.quantize_bias(b, frac_acc, self.wbits, self.abits, k)
        try:
            mult, shift = numerics.requant_params(frac_acc, fout.frac)
        except OptionError as e:
            raise OptionError(f"node {node.name!r} ({node.op.kind}): {e}") from e
        acc = numerics.acc_bits(self.wbits, self.abits, k)
        if conv:
            op, wq = node.op, wq.T.reshape(w.shape)
            lo, hi = fout.lo, fout.hi
            if op.act == "clip":
                lo, hi = (int(v) for v in numerics.quantize(np.array(op.clip), fout.frac,
                                                            fout.lo, fout.hi))
            qop: ir.Op = ir.QConv(op.kernel, op.strides, op.pads, op.dilations, op.group,
                                  relu=not fout.signed, wbits=self.wbits, acc_bits=acc,
                                  lo=lo, hi=hi)
        else:
            qop = ir.QDense(relu=node.op.relu, wbits=self.wbits, acc_bits=acc,
                            lo=fout.lo, hi=fout.hi)
        consts = []
        for role, value in (("weight", wq), ("bias", bq), ("mult", mult), ("shift", shift),
                            *_leaky_consts(g, out, node, mult, shift)):
            suffix = "_q" if role in ("weight", "bias") else ""
            consts.append((role, out.add_const(f"{node.name}.{role}{suffix}", value)))
        out.replace_node(ir.Node(node.name, qop, node.inputs, node.outputs, tuple(consts)))
        for _, c in node.consts:  # drop the float constants nothing reads any more
            if not any(c == name for other in out.nodes() for _, name in other.consts):
                out.consts.pop(c, None)

    def _lower_concat(self, g: ir.Graph, out: ir.Graph, node: ir.Node,
                      formats: dict[str, ir.QFormat]) -> None:
        """Concat -> QConcat: each channel requantized from its input's scale to the output's
        (identity weights in hardware, so the accumulator is the input value itself)."""
        mult, shift = _concat_params(g, node, formats)
        fout = formats[node.outputs[0]]
        bits = max(formats[t].bits for t in node.inputs)
        qop = ir.QConcat(acc_bits=numerics.acc_bits(2, bits, 1), lo=fout.lo, hi=fout.hi)
        consts = tuple((role, out.add_const(f"{node.name}.{role}", np.asarray(v, np.int64)))
                       for role, v in (("mult", mult), ("shift", shift)))
        out.replace_node(ir.Node(node.name, qop, node.inputs, node.outputs, consts))

    def _lower_add(self, g: ir.Graph, out: ir.Graph, node: ir.Node,
                   formats: dict[str, ir.QFormat]) -> None:
        """AddAct -> QAdd: both inputs aligned to the finer of their scales by power-of-two
        weights (exact), then requantized per channel to the output's calibrated format."""
        fa, fb = (formats[t].frac for t in node.inputs)
        fout = formats[node.outputs[0]]
        c = g.tensor(node.outputs[0]).shape[1]
        try:
            wa, wb, frac_acc = numerics.add_weights(fa, fb, self.wbits)
            mult, shift = numerics.requant_params(np.full(c, frac_acc), fout.frac)
        except OptionError as e:
            raise OptionError(f"node {node.name!r} (AddAct): {e}") from e
        qop = ir.QAdd(relu=node.op.act == "relu", wbits=self.wbits,
                      acc_bits=numerics.acc_bits(self.wbits, self.abits, 2),
                      lo=fout.lo, hi=fout.hi)
        consts = tuple((role, out.add_const(f"{node.name}.{role}", np.asarray(v, np.int64)))
                       for role, v in (("wa", [wa]), ("wb", [wb]), ("mult", mult),
                                       ("shift", shift),
                                       *_leaky_consts(g, out, node, mult, shift)))
        out.replace_node(ir.Node(node.name, qop, node.inputs, node.outputs, consts))


def _fuse_table(out: ir.Graph, node: ir.Node, formats: dict[str, ir.QFormat]) -> None:
    """Fuse a table activation into the quantized layer producing its input (Canonicalize made
    it one with no activation that the table alone reads): that layer gets const 'lut'
    (``numerics.build_table`` from its requantized code's format to the table's output format)
    and 'lut_frac' [1] (the code's frac) and writes the table's output tensor; a note states
    the table's error bound."""
    src, dst = node.inputs[0], node.outputs[0]
    layer = out.producer(src)
    if layer is None or not isinstance(layer.op, ir.QDense | ir.QConv | ir.QAdd) \
            or out.consumers(src) != [node.name] or src in out.outputs:
        raise PassError(f"node {node.name!r} ({node.op.kind}): its input {src!r} is not a layer "
                        "output it alone reads: run Canonicalize first")
    fin, fout = formats[src], formats[dst]
    op = node.op
    table = numerics.build_table(op.fn, fin.bits, fin.frac, fout.frac, fout.lo, fout.hi,
                                 op.alpha, op.beta)
    err = numerics.table_error(op.fn, table, fin.frac, fout.frac, layer.op.lo, layer.op.hi,
                               op.alpha, op.beta)
    shape, before = out.tensor(src).shape, out.tensor(dst).shape
    out.remove_node(node.name)
    out.tensors.pop(src, None)
    if shape != before:  # e.g. a Gemm made a Conv: the layer's own shape, same data
        out.set_tensor(dst, shape=shape)
        if dst in out.outputs:
            out.notes.append(f"output {dst!r}: the output stream {list(shape)} is the row-major "
                             f"data of ONNX shape {list(before)}")
    key = out.add_const(f"{layer.name}.lut", table)
    frac = out.add_const(f"{layer.name}.lut_frac", np.array([fin.frac], np.int64))
    out.replace_node(ir.Node(layer.name, layer.op, layer.inputs, (dst,),
                             layer.consts + (("lut", key), ("lut_frac", frac))))
    out.notes.append(f"layer {layer.name!r}: {op.fn} by a {table.size}-entry table: max |error| "
                     f"{err * 2.0 ** fout.frac:.2f} output LSB ({err:.3g}) against the float "
                     f"function at each code the layer outputs")


def _concat_params(g: ir.Graph, node: ir.Node, formats: dict[str, ir.QFormat]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel of a Concat, (mult, shift) from its input's scale to the output's."""
    fracs = np.concatenate([np.full(g.tensor(t).shape[1], formats[t].frac, np.int64)
                            for t in node.inputs])
    try:
        return numerics.requant_params(fracs, formats[node.outputs[0]].frac)
    except OptionError as e:
        raise OptionError(f"node {node.name!r} (Concat): {e}") from e


def _leaky_consts(g: ir.Graph, out: ir.Graph, node: ir.Node, mult: np.ndarray,
                  shift: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """A fused LeakyRelu's ('mult_n', 'shift_n') from its slopes 'alpha' (``numerics.
    leaky_params``), with a note giving the slope's quantization error; [] without one."""
    if node.const_name("alpha") is None:
        return []
    alpha = g.const(node, "alpha")
    try:
        mult_n, shift_n = numerics.leaky_params(alpha, mult, shift)
    except OptionError as e:
        raise OptionError(f"node {node.name!r} ({node.op.kind}): {e}") from e
    err = numerics.leaky_error(alpha, mult, shift, mult_n, shift_n)
    slopes = np.unique(np.asarray(alpha, np.float64))
    what = f"alpha {slopes[0]:g}" if slopes.size == 1 else f"{slopes.size} slopes"
    out.notes.append(f"layer {node.name!r}: LeakyRelu {what} in the requantizer as mult_n * "
                     f"2^-shift_n, slope relative error <= {err:.2e}")
    return [("mult_n", mult_n), ("shift_n", shift_n)]


def unsigned_output(op: ir.Op) -> bool:
    """Whether a layer's output is never negative: ReLU, or a Clip with lower bound >= 0."""
    if isinstance(op, ir.Dense):
        return op.relu
    if isinstance(op, ir.AddAct):
        return op.act == "relu"
    if isinstance(op, ir.Conv):
        return op.act == "relu" or (op.act == "clip" and op.clip[0] >= 0.0)
    return False


def check_conv(g: ir.Graph, node: ir.Node) -> None:
    """A Conv's weight, bias, group, act and output shape agree with its input [N, C, H, W]
    (the frontend makes a Conv1d's [N, C, L] [N, C, 1, L]); PassError naming the node."""
    op = node.op
    w = g.const(node, "weight")
    b = g.const(node, "bias") if node.const_name("bias") else np.zeros(w.shape[0])
    xs = g.tensor(node.inputs[0]).shape
    where = f"node {node.name!r} (Conv)"
    if op.act not in ACTS or (op.act == "clip" and not op.clip[0] <= op.clip[1]):
        raise PassError(f"{where}: activation {op.act!r} clip={op.clip} is not one of "
                        f"{', '.join(ACTS)} with clip lo <= hi")
    c, cout = xs[1] if len(xs) > 1 else 0, w.shape[0]
    if (op.group < 1 or c % op.group or cout % op.group
            or w.shape != (cout, c // op.group, *op.kernel) or b.shape != (cout,)):
        raise PassError(f"{where}: weight {list(w.shape)} and bias {list(b.shape)} do not fit "
                        f"input {list(xs)}, group {op.group} and kernel {list(op.kernel)} "
                        "(weight must be [Cout, Cin/group, kh, kw], Cout a multiple of group)")
    check_window(g, node, cout)


def check_add(g: ir.Graph, node: ir.Node) -> None:
    """An AddAct has two inputs and one output of one shape [N, C, ...] (rank >= 2: channels
    are axis 1) and act "none" or "relu"; PassError naming the node."""
    shapes = [g.tensor(t).shape for t in (*node.inputs, *node.outputs)]
    if len(node.inputs) != 2 or len(node.outputs) != 1 or len(set(shapes)) != 1 \
            or len(shapes[0]) < 2 or node.op.act not in ("none", "relu", "leaky"):
        raise PassError(f"node {node.name!r} (AddAct): inputs {node.inputs} -> outputs "
                        f"{node.outputs} with shapes {[list(s) for s in shapes]}, act "
                        f"{node.op.act!r}: needs two inputs and one output of one shape of rank "
                        ">= 2 and act 'none' or 'relu'")


def check_window(g: ir.Graph, node: ir.Node, cout: int | None = None) -> None:
    """The output of a Conv/MaxPool is [N, cout, OH, OW] as ``numerics.conv_out`` gives it for
    the input [N, C, H, W] (cout defaults to C: pooling), and a MaxPool has no window of
    padding only."""
    op = node.op
    xs, ys = g.tensor(node.inputs[0]).shape, g.tensor(node.outputs[0]).shape
    if len(xs) != 4:
        raise PassError(f"node {node.name!r} ({op.kind}): input {list(xs)} is not [N, C, H, W]")
    h, w = xs[2:]
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = op.kernel, op.strides, op.pads, op.dilations
    oh, ow = numerics.conv_out(h, kh, sh, pt, pb, dh), numerics.conv_out(w, kw, sw, pl, pr, dw)
    c = xs[1] if cout is None else cout
    if tuple(ys) != (xs[0], c, oh, ow) or oh < 1 or ow < 1:
        raise PassError(f"node {node.name!r} ({op.kind}): output {list(ys)} does not match "
                        f"its input {list(xs)}, which gives {[xs[0], c, oh, ow]}")
    if isinstance(op, ir.MaxPool):
        _, inside = numerics.windows(np.zeros((h, w, 1), np.int64), op.kernel, op.strides,
                                     op.pads, op.dilations)
        if not inside.any(axis=(2, 3)).all():  # onnxruntime returns -FLT_MAX there
            raise PassError(f"node {node.name!r} (MaxPool): pads {list(op.pads)} with kernel "
                            f"{list(op.kernel)} and dilations {list(op.dilations)} make a "
                            "window of padding only, whose maximum has no integer value")
