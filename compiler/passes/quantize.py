"""Quantize: float Dense/Conv/MaxPool/AddAct -> QDense/QConv/QMaxPool/QAdd with power-of-two
scales."""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field

import numpy as np

from edgehls import golden, ir, numerics
from edgehls.errors import DataError, OptionError, PassError
from edgehls.passes import calibrate
from edgehls.passes.calibrate import Method

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
    length, which sets ``acc_bits``).

    ``method`` picks each activation's range (``edgehls.passes.calibrate``; ``mse`` also
    searches each weight channel's); ``scale`` "pow2" gives power-of-two scales (QFormat.frac),
    "mult" real scales (QFormat.real) with requantization by ``numerics.requant_real``.
    ``precision`` holds (pattern, wbits or None, abits or None) rules, first match by
    ``fnmatch`` of the node name wins: a layer's wbits are its weights', its abits its output's
    (the graph input and unmatched layers take ``wbits``/``abits``); a MaxPool keeps its
    input's format. Accumulators are sized from each layer's own weight and input widths.

    A fused LeakyRelu adds 'mult_n', 'shift_n'
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
    method: Method = Method()
    scale: str = "pow2"
    precision: tuple[tuple[str, int | None, int | None], ...] = ()
    input_range: tuple[float, float] = (-1.0, 1.0)

    def __call__(self, g: ir.Graph) -> ir.Graph:
        numerics.check_bits("--wbits", self.wbits)
        numerics.check_bits("--abits", self.abits)
        calibrate.check_scale(self.scale)
        if g.imported is not None and self.precision:
            raise OptionError("--precision does not apply to an already quantized model: its "
                              "layers keep their own bit widths")
        self._check_precision(g)
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
        formats = (imported_formats(g) if g.imported is not None
                   else self._formats(g, self._calibration(g, out)))
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
        log.info("quantized %s to w%d/a%d (%s, %s scales, %s calibration)", g.name, self.wbits,
                 self.abits, "per channel" if self.per_channel else "per tensor", self.scale,
                 self.method)
        return out

    def bits(self, name: str) -> tuple[int, int]:
        """(wbits, abits) of the layer called ``name``: its first matching precision rule,
        else the defaults."""
        for pattern, wb, ab in self.precision:
            if fnmatch.fnmatchcase(name, pattern):
                return wb or self.wbits, ab or self.abits
        return self.wbits, self.abits

    def _check_precision(self, g: ir.Graph) -> None:
        names = [n.name for n in g.nodes() if not isinstance(n.op, ir.Input)]
        for pattern, wb, ab in self.precision:
            for what, v in (("wbits", wb), ("abits", ab)):
                if v is not None:
                    numerics.check_bits(f"--precision {pattern!r} {what}", v)
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise OptionError(f"--precision names {pattern!r}, which matches no layer; the "
                                  f"layers are: {', '.join(names)}")

    def _calibration(self, g: ir.Graph, out: ir.Graph) -> np.ndarray:
        if self.calib is not None:
            data = golden.model_samples(g, self.calib)
            if not np.isfinite(np.asarray(data, dtype=np.float64)).all():
                raise DataError("calibration data contains NaN or infinity")
            return data
        shape = g.tensor(g.inputs[0]).shape if len(g.inputs) == 1 else ()
        rng = np.random.default_rng(self.seed)
        lo, hi = self.input_range
        out.notes.append(f"calibration used {RANDOM_SAMPLES} random inputs uniform in "
                         f"[{lo:g}, {hi:g}] (seed {self.seed}), not real data: activation ranges "
                         "are guesses; pass --calib DATA.npz")
        return rng.uniform(lo, hi, size=(RANDOM_SAMPLES, *shape))

    def _formats(self, g: ir.Graph, data: np.ndarray) -> dict[str, ir.QFormat]:
        acts = _calibration_values(g, data)
        formats: dict[str, ir.QFormat] = {}
        for node in g.nodes():
            for t in node.outputs:
                if isinstance(node.op, ir.MaxPool):  # a max of values needs no new scale
                    formats[t] = formats[node.inputs[0]]
                    continue
                bits = self.abits if isinstance(node.op, ir.Input) else self.bits(node.name)[1]
                if isinstance(node.op, ir.TableAct) and node.op.fn != "hardswish":
                    signed = False
                elif isinstance(node.op, ir.Concat):  # unsigned when every input is
                    signed = any(formats[i].signed for i in node.inputs)
                else:
                    signed = not unsigned_output(node.op)
                fmt = ir.QFormat(bits, signed, 0)
                frac, real = calibrate.choose_scale(acts[t], self.method, self.scale, fmt.lo,
                                                    fmt.hi)
                formats[t] = ir.QFormat(bits, signed, frac, real)
        return formats

    def _weights(self, node: ir.Node, w: np.ndarray, b: np.ndarray, fin: ir.QFormat,
                 wbits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """w [K, N] -> (w_q, fracs [N], scales [N]) by ``calibrate.weight_scales``, but a
        channel whose weights are tiny next to its bias gets a coarser weight scale, so its bias
        fits ``bias_bound`` unclipped."""
        fw, real = calibrate.weight_scales(w, wbits, self.per_channel, self.method, self.scale)
        sw = 2.0 ** -fw.astype(np.float64) if real is None else real
        s_in = fin.scale
        lim = numerics.bias_bound(wbits, fin.bits, w.shape[0])
        over = np.abs(numerics.round_half_up(b / (s_in * sw))) > lim
        if over.any():
            if real is None:
                cap = np.array([numerics.frac_for(abs(float(v)), lim) for v in b]) - fin.frac
                cap = np.where(over, cap, fw).astype(np.int64)
                fw = cap if self.per_channel else np.full_like(fw, cap.min())
                sw = 2.0 ** -fw.astype(np.float64)
            else:
                cap = np.where(over, np.abs(b) / (lim * s_in) * (1 + 1e-9), sw)
                sw = cap if self.per_channel else np.full_like(sw, cap.max())
                fw = np.array([numerics.frac_of(v) for v in sw], dtype=np.int64)
            log.info("node %r: weight scale of %d channel(s) lowered so the bias fits the "
                     "accumulator", node.name, int(over.sum()))
        qmax = numerics.weight_max(wbits)
        wq = numerics.quantize_scaled(w, sw[None, :], -qmax, qmax)
        return wq, fw, sw

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
        # a global average pool over a map of a size not a power of two: weight w * (kh*kw)
        # (usually 1: the mean's 1 / (kh*kw) not rounded into the weight) and the factor in
        # mult/shift (requant_real), so the integers are requantize(sum of x * w_q + b).
        fold = _pool_fold(g, node, w) if g.imported is None else 1
        if g.imported is not None:
            wq, fw, sw, wbits = imported_weights(g, node, mat)
        else:
            wbits = self.bits(node.name)[0]
            wq, fw, sw = self._weights(node, mat * fold, b * fold, fin, wbits)
        s_acc = fin.scale * sw / fold
        acc = numerics.acc_bits(wbits, fin.bits, k)
        lim = numerics.bias_bound(wbits, fin.bits, k)
        if g.imported is not None:  # the model's int32 bias, exactly: widen the accumulator
            bq = numerics.quantize_scaled(b, s_acc, -(1 << 62), 1 << 62)
            acc = max(acc, int(np.abs(bq).max(initial=0)).bit_length() + 2)
        else:
            bq = numerics.quantize_scaled(b, s_acc, -lim, lim)
        try:
            if self.scale == "pow2" and g.imported is None and fold == 1:
                mult, shift = numerics.requant_params(fin.frac + fw, fout.frac)
            else:
                mult, shift = numerics.requant_real(s_acc / fout.scale)
        except OptionError as e:
            raise OptionError(f"node {node.name!r} ({node.op.kind}): {e}") from e
        lo, hi = fout.lo, fout.hi
        if conv:
            op, wq = node.op, wq.T.reshape(w.shape)
            if op.act == "clip":
                lo, hi = (int(v) for v in numerics.quantize_scaled(
                    np.array(op.clip), fout.scale, fout.lo, fout.hi))
            elif op.act == "relu":
                lo = max(lo, 0)
            qop: ir.Op = ir.QConv(op.kernel, op.strides, op.pads, op.dilations, op.group,
                                  relu=lo >= 0, wbits=wbits, acc_bits=acc, lo=lo, hi=hi)
        else:
            lo = max(lo, 0) if node.op.relu else lo
            qop = ir.QDense(relu=node.op.relu, wbits=wbits, acc_bits=acc, lo=lo, hi=hi)
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
        qa, qb = (formats[t] for t in node.inputs)
        fout = formats[node.outputs[0]]
        c = g.tensor(node.outputs[0]).shape[1]
        # an imported model's Add aligns its inputs with up-to-8-bit weights
        wbits = self.bits(node.name)[0] if g.imported is None else 8
        try:
            if self.scale == "pow2" and g.imported is None:
                wa, wb, frac_acc = numerics.add_weights(qa.frac, qb.frac, wbits)
                mult, shift = numerics.requant_params(np.full(c, frac_acc), fout.frac)
            else:
                wa, wb, unit = numerics.add_weights_real(qa.scale, qb.scale, wbits)
                mult, shift = numerics.requant_real(np.full(c, unit / fout.scale))
        except OptionError as e:
            raise OptionError(f"node {node.name!r} (AddAct): {e}") from e
        qop = ir.QAdd(relu=node.op.act == "relu", wbits=wbits,
                      acc_bits=numerics.acc_bits(wbits, max(qa.bits, qb.bits), 2),
                      lo=max(fout.lo, 0) if node.op.act == "relu" else fout.lo, hi=fout.hi)
        consts = tuple((role, out.add_const(f"{node.name}.{role}", np.asarray(v, np.int64)))
                       for role, v in (("wa", [wa]), ("wb", [wb]), ("mult", mult),
                                       ("shift", shift),
                                       *_leaky_consts(g, out, node, mult, shift)))
        out.replace_node(ir.Node(node.name, qop, node.inputs, node.outputs, consts))


CHUNK_VALUES = 1 << 23  # float64 values of the largest tensor per calibration chunk (64 MB)


def _calibration_values(g: ir.Graph, data: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor's calibration values, already subsampled as ``calibrate.choose_scale`` would
    subsample them (the same values), computed a chunk of samples at a time: keeping every
    tensor of 64 samples of a 224 x 224 x 64 map in float64 took over 10 GB."""
    data = golden.as_samples(g, data)
    n = len(data)
    sizes = {t: int(np.prod(g.tensor(t).shape, dtype=np.int64)) for t in g.tensors}
    per = max(1, CHUNK_VALUES // max(sizes.values(), default=1))
    parts: dict[str, list[np.ndarray]] = {t: [] for t in sizes}
    for a in range(0, n, per):
        for t, v in golden.run_float_all_samples(g, data[a:a + per]).items():
            step = calibrate.sample_step(n * sizes[t])
            parts[t].append(v.reshape(-1)[(-a * sizes[t]) % step::step])
    return {t: np.concatenate(p) for t, p in parts.items() if p}


def imported_formats(g: ir.Graph) -> dict[str, ir.QFormat]:
    """A quantized model's own formats: every tensor Quantize formats must have one (a max pool
    keeps its input's)."""
    formats: dict[str, ir.QFormat] = {}
    for node in g.nodes():
        for t in node.outputs:
            q = g.tensor(t).q
            if isinstance(node.op, ir.MaxPool):
                fin = formats[node.inputs[0]]
                if q is not None and q != fin:
                    raise PassError(f"node {node.name!r} (MaxPool): its output is quantized as "
                                    f"{q.describe()}, its input as {fin.describe()}; a max pool "
                                    "cannot requantize: quantize both alike")
                formats[t] = fin
            elif q is None:
                what = "input" if isinstance(node.op, ir.Input) else \
                    f"output of node {node.name!r} ({node.op.kind})"
                raise PassError(
                    f"tensor {t!r} ({what}) is not quantized in this quantized model: edgehls "
                    "implements a quantized model only when the input and every layer's output "
                    "are quantized (a QuantizeLinear or Quant on each); quantize the whole "
                    "model, or give edgehls the float model to quantize")
            else:
                formats[t] = q
    return formats


def imported_weights(g: ir.Graph, node: ir.Node, mat: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A quantized model's weights w [K, N] back as integers at their own scale: (w_q, fracs,
    scales, wbits). PassError if the layer's weights were not quantized or are not integers at
    that scale (a BatchNormalization or Mul folded into them after quantization)."""
    assert g.imported is not None
    where = f"node {node.name!r} ({node.op.kind})"
    if node.name not in g.imported.weights:
        live = np.unique(mat[mat != 0])
        if live.size != 1:
            raise PassError(f"{where}: its weights are float in a quantized model; quantize "
                            "every layer's weights (a DequantizeLinear or Quant on them)")
        # an average pool's weights (canonicalize made them): one value, exact at 127 steps
        scale, bits = np.array([abs(float(live[0])) / 127]), 8
    else:
        scale, bits = g.imported.weights[node.name]
    n = mat.shape[1]
    if scale.size not in (1, n):
        raise PassError(f"{where}: {scale.size} weight scales for {n} output channels")
    sw = np.broadcast_to(np.asarray(scale, np.float64), (n,)).copy()
    q = mat / sw[None, :]
    wq = np.round(q)
    if np.abs(q - wq).max(initial=0.0) > 1e-3:
        raise PassError(f"{where}: its weights are not integers at the model's weight scale: "
                        "something was folded into them after quantization (a "
                        "BatchNormalization or Mul); fold it before quantizing (onnxruntime: "
                        "quant_pre_process)")
    wbits = max(bits, int(np.abs(wq).max(initial=1)).bit_length() + 1)
    numerics.check_bits(f"{where}: weight", wbits)
    fw = np.array([numerics.frac_of(v) for v in sw], dtype=np.int64)
    return wq.astype(np.int64), fw, sw, wbits


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
    if fin.lo < -(1 << (fin.bits - 1)) or fin.hi >= 1 << (fin.bits - 1):
        raise PassError(f"node {node.name!r} ({node.op.kind}): its input's zero point moves its "
                        f"codes ({fin.lo}..{fin.hi}) out of the table's signed {fin.bits}-bit "
                        "index range; quantize that tensor symmetrically")
    table = numerics.build_table(op.fn, fin.bits, fin.frac, fout.frac, fout.lo, fout.hi,
                                 op.alpha, op.beta, fin.scale, fout.scale)
    err = numerics.table_error(op.fn, table, fin.frac, fout.frac, layer.op.lo, layer.op.hi,
                               op.alpha, op.beta, fin.scale, fout.scale)
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
                     f"{err / fout.scale:.2f} output LSB ({err:.3g}) against the float "
                     f"function at each code the layer outputs")


def _concat_params(g: ir.Graph, node: ir.Node, formats: dict[str, ir.QFormat]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel of a Concat, (mult, shift) from its input's scale to the output's."""
    fracs = np.concatenate([np.full(g.tensor(t).shape[1], formats[t].frac, np.int64)
                            for t in node.inputs])
    fout = formats[node.outputs[0]]
    try:
        if g.imported is not None or any(formats[t].real is not None
                                         for t in (*node.inputs, *node.outputs)):
            scales = np.concatenate([np.full(g.tensor(t).shape[1], formats[t].scale)
                                     for t in node.inputs])
            return numerics.requant_real(scales / fout.scale)
        return numerics.requant_params(fracs, fout.frac)
    except OptionError as e:
        raise OptionError(f"node {node.name!r} (Concat): {e}") from e


def _pool_fold(g: ir.Graph, node: ir.Node, w: np.ndarray) -> int:
    """kh * kw for a depthwise Conv over the whole unpadded map to one pixel whose weight is the
    same at every kernel position of a channel (a global average pool) when kh * kw is not a
    power of two (1 / (kh*kw) is then not exact as a power-of-two weight); else 1."""
    op = node.op
    if not isinstance(op, ir.Conv):
        return 1
    _, c, h, wd = g.tensor(node.inputs[0]).shape
    n = h * wd
    if (tuple(op.kernel) != (h, wd) or any(op.pads) or tuple(op.dilations) != (1, 1)
            or op.group != c or w.shape[:2] != (c, 1) or n & (n - 1) == 0
            or not (w == w[:, :, :1, :1]).all()):
        return 1
    return n


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
