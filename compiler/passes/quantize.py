"""Quantize: float Dense layers -> integer QDense layers with power-of-two scales."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from edgehls import golden, ir, numerics
from edgehls.errors import DataError, OptionError, PassError

log = logging.getLogger(__name__)

RANDOM_SAMPLES = 64


@dataclass(frozen=True)
class Quantize:
    """Post-training quantization to the fixed-point contract of ``edgehls.numerics``.

    Requires: a graph of Input and Dense nodes only (run Canonicalize first), one input.
    Guarantees: a new graph (the input graph is untouched) where every Dense is a QDense with
    consts 'weight', 'bias', 'mult', 'shift' (named ``<node>.weight_q`` ...), and every tensor
    has a QFormat: the graph input signed ``abits``; a Dense output unsigned ``abits`` after
    ReLU, else signed. Fracs come from the calibration data's ranges (``calib``, a data array
    as ``golden.as_samples`` takes it); without it, ``RANDOM_SAMPLES`` seeded uniform [-1, 1]
    inputs are used and a note says so. Every bias fits its accumulator bound unclipped: a
    channel whose weights are tiny next to its bias gets a coarser weight scale instead.
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
            if not isinstance(node.op, ir.Input | ir.Dense):
                raise PassError(f"Quantize requires Input and Dense nodes; node {node.name!r} "
                                f"is {node.op.kind}: run Canonicalize first")
        out = g.copy()
        formats = self._formats(g, self._calibration(g, out))
        for name, fmt in formats.items():
            out.set_tensor(name, q=fmt)
        for node in g.nodes():
            if isinstance(node.op, ir.Dense):
                self._lower(g, out, node, formats)
        log.info("quantized %s to w%d/a%d (%s)", g.name, self.wbits, self.abits,
                 "per channel" if self.per_channel else "per tensor")
        return out

    def _calibration(self, g: ir.Graph, out: ir.Graph) -> np.ndarray:
        if self.calib is not None:
            data = golden.as_samples(g, self.calib)
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
                if isinstance(node.op, ir.Dense) and node.op.relu:
                    formats[t] = ir.QFormat(self.abits, False, numerics.frac_for(v.max(), umax))
                else:
                    frac = numerics.frac_for(float(np.abs(v).max()), smax)
                    formats[t] = ir.QFormat(self.abits, True, frac)
        return formats

    def _weights(self, node: ir.Node, w: np.ndarray, b: np.ndarray, frac_in: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``numerics.quantize_weights``, but a channel whose weights are tiny next to its bias
        gets a coarser weight scale, so its bias fits ``bias_bound`` instead of clipping."""
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
        w = g.const(node, "weight")
        b = g.const(node, "bias")
        k, n = w.shape
        if b.shape != (n,) or g.tensor(node.inputs[0]).size % k:
            raise PassError(f"node {node.name!r} (Dense): weight {list(w.shape)}, bias "
                            f"{list(b.shape)} and input {list(g.tensor(node.inputs[0]).shape)} "
                            "do not agree")
        fin, fout = formats[node.inputs[0]], formats[node.outputs[0]]
        wq, fw = self._weights(node, w, b, fin.frac)
        frac_acc = fin.frac + fw
        bq = numerics.quantize_bias(b, frac_acc, self.wbits, self.abits, k)
        try:
            mult, shift = numerics.requant_params(frac_acc, fout.frac)
        except OptionError as e:
            raise OptionError(f"node {node.name!r} (Dense): {e}") from e
        op = ir.QDense(relu=node.op.relu, wbits=self.wbits,
                       acc_bits=numerics.acc_bits(self.wbits, self.abits, k),
                       lo=fout.lo, hi=fout.hi)
        consts = []
        for role, value in (("weight", wq), ("bias", bq), ("mult", mult), ("shift", shift)):
            suffix = "_q" if role in ("weight", "bias") else ""
            consts.append((role, out.add_const(f"{node.name}.{role}{suffix}", value)))
        out.replace_node(ir.Node(node.name, op, node.inputs, node.outputs, tuple(consts)))
        for _, c in node.consts:  # drop the float constants nothing reads any more
            if not any(c == name for other in out.nodes() for _, name in other.consts):
                out.consts.pop(c, None)
