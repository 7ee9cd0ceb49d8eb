"""Run one ONNX backend node test through edgehls and classify it: passed, rejected or failed.

A node test's inputs 1.. (a Conv's weights, a Clip's bounds, a Reshape's shape ...) are bound to
their test values as initializers, as an exported model holds them: edgehls compiles inference
with constant weights and one activation input. The unbound model (several graph inputs) must
be rejected with an ``EdgeHLSError``.

Stages, each compared with the stage before it:

1. ``frontend.load``: an ``EdgeHLSError`` with a message is *rejected*;
2. ``golden.run_float`` on the frontend graph must match the test's expected output
   (rtol 1e-4, atol 1e-5), as must the ``Canonicalize``d graph's;
3. where Canonicalize and Quantize (calibrated on the test input) accept the graph,
   ``run_int`` on the quantized input, dequantized, must lie within ``quant_bound`` of the
   canonical graph's float output.

An error that is not an ``EdgeHLSError``, or any mismatch, is *failed*.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from conformance.wheel import NodeTest, tensor
from edgehls import frontend, golden, ir, numerics
from edgehls.errors import EdgeHLSError
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

RTOL, ATOL = 1e-4, 1e-5

#: node tests that fail through a bug in a file this suite does not own (frontend.py,
#: canonicalize.py): expected to fail (pytest xfail, strict) until it is fixed
KNOWN_BUGS: dict[str, str] = {}  # node test -> reason it computes a wrong result (none now)


@dataclass(frozen=True)
class Result:
    """``status`` passed/rejected/failed; ``stage`` where the run stopped (frontend, float,
    canonicalize, quantize, done); ``err_lsb``/``bound_lsb``: the quantized path's largest error
    and its bound, in output LSBs (None when it did not quantize)."""

    test: str
    op: str
    status: str
    stage: str
    detail: str = ""
    err_lsb: float | None = None
    bound_lsb: float | None = None

    @property
    def canonical(self) -> bool:
        return self.status == "passed" and self.stage in ("quantize", "done")

    @property
    def quantized(self) -> bool:
        return self.status == "passed" and self.stage == "done"


def bind_inputs(model: onnx.ModelProto, inputs: tuple[bytes, ...]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs 1.. are initializers holding the test values."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, vi in enumerate(list(g.input)[1:len(inputs)], start=1):
        if not vi.type.HasField("tensor_type"):
            continue
        t = onnx.numpy_helper.from_array(tensor(inputs[i]), vi.name)
        g.initializer.append(t)
        if m.ir_version >= 4:
            g.input.remove(vi)
    return m


def _load(model: onnx.ModelProto, tmp: Path, name: str) -> ir.Graph:
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    return frontend.load(path)


def _close(y: np.ndarray, expected: np.ndarray) -> str:
    """'' when y matches ``expected`` (same size; y may carry edgehls's H = 1 axis), else why."""
    if y.size != expected.size:
        return f"output has {y.size} elements ({list(y.shape)}), expected {list(expected.shape)}"
    y = y.reshape(expected.shape)
    if np.allclose(y, expected, rtol=RTOL, atol=ATOL):
        return ""
    err = np.abs(y - expected)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    return f"max |error| {err.max():.3g} at {list(i)}: got {y[i]:.6g}, expected {expected[i]:.6g}"


def _canonical_ref(g: ir.Graph, canon: ir.Graph, x: np.ndarray, expected: np.ndarray
                   ) -> np.ndarray:
    """What the canonical graph must compute: the expected output, or, when Canonicalize
    dropped the final Softmax (with its note: the hardware outputs logits), the frontend
    graph's float value of the logits tensor that is now the output."""
    if canon.outputs[0] == g.outputs[0] or not any("Softmax dropped" in n for n in canon.notes):
        return expected
    return golden.run_float_all(g, x)[canon.outputs[0]]


def check(test: NodeTest) -> Result:
    """Classify ``test`` (see the module docstring); never raises."""
    def res(status: str, stage: str, detail: str = "", **kw: float) -> Result:
        return Result(test.name, test.op, status, stage, " ".join(detail.split()), **kw)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = test.proto()
        if len(model.graph.input) > 1:  # unbound: several graph inputs, must be rejected
            try:
                _load(model, tmp, "unbound")
                return res("failed", "frontend", "model with several graph inputs accepted")
            except EdgeHLSError:
                pass
            except Exception as e:  # noqa: BLE001 - a crash is what this test looks for
                return res("failed", "frontend", f"unbound model: {type(e).__name__}: {e}")
        stage = "frontend"
        try:
            g = _load(bind_inputs(model, test.inputs), tmp, "bound")
            stage = "float"
            x, expected = tensor(test.inputs[0]), tensor(test.outputs[0])
            why = _close(golden.run_float(g, x), expected)
            if why:
                return res("failed", stage, f"frontend graph: {why}")
            stage = "canonicalize"
            canon = Canonicalize()(g)
            canon.verify()
            why = _close(golden.run_float(canon, x), _canonical_ref(g, canon, x, expected))
            if why:
                return res("failed", stage, f"canonical graph: {why}")
            stage = "quantize"
            shape = canon.tensor(canon.inputs[0]).shape
            q = Quantize(calib=x.reshape(1, *shape))(canon)
            q.verify()
            y = golden.dequantize_output(q, golden.run_int(q, golden.quantize_input(q, x)))
            ref = golden.run_float(canon, x)
            bound = quant_bound(canon, q, x)
            lsb = q.tensor(q.outputs[0]).q.scale
            err = float(np.abs(y - ref).max(initial=0.0))
            kw = {"err_lsb": err / lsb, "bound_lsb": bound / lsb}
            if err > bound * (1 + 1e-9) + 1e-12:
                return res("failed", stage, f"quantized error {err:.3g} > bound {bound:.3g}",
                           **kw)
            return res("passed", "done", **kw)
        except EdgeHLSError as e:
            if not str(e).strip():
                return res("failed", stage, f"{type(e).__name__} without a message")
            status = "rejected" if stage == "frontend" else "passed"
            return res(status, stage, f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - anything but a clear EdgeHLSError is a failure
            return res("failed", stage, f"{type(e).__name__}: {e}")


def quant_bound(canon: ir.Graph, q: ir.Graph, x: np.ndarray) -> float:
    """An upper bound on max |dequantized run_int output - run_float(canon) output|.

    Propagated layer by layer as one max-abs error E per tensor, from the quantizer's own
    formats (round half up everywhere, and no saturation: the calibration data is ``x``):
    - input: E = LSB_in / 2;
    - Dense/Conv, y = act(W x + b), K taps, weights rounded to 2**-fw[n] per channel: the
      accumulator error is at most sum_k |W[k,n]| E_x + K * LSB_w[n] / 2 * (E_x + max|x|) (the
      weight rounding, also on the input error) + LSB_acc[n] / 2 (the bias), then requantization
      adds LSB_out / 2 of rounding and a Clip bound quantized to the output scale up to another
      LSB_out / 2 (the activation and saturation are 1-Lipschitz and the float value is inside
      the range); E_y is the largest over channels n;
    - MaxPool: E_y = E_x (a max of values each within E_x);
    - AddAct: the inputs are aligned exactly, E_y = E_a + E_b + LSB_out / 2;
    - Concat: each channel is its input's value requantized, E_y = max E_input + LSB_out / 2;
    - a table activation (Sigmoid, HardSigmoid, HardSwish) after a layer: its Lipschitz constant
      times the layer's error at the code's scale, plus the table's own error;
    - a fused LeakyRelu multiplies a layer's error by max(1, alpha) and adds its realised
      slope's error (``numerics.leaky_error`` x max |output|).
    For a depth-d graph this is d output LSBs plus the propagated input and weight rounding,
    which a dot product of length K amplifies by its weights' L1 norm.
    """
    vals = golden.run_float_all(canon, x)
    err: dict[str, float] = {}
    for node in q.nodes():
        out = node.outputs[0]
        lsb_out = q.tensor(out).q.scale
        if isinstance(node.op, ir.Input):
            err[out] = lsb_out / 2
        elif isinstance(node.op, ir.QMaxPool):
            err[out] = err[node.inputs[0]]
        elif isinstance(node.op, ir.QConcat):  # per channel, its input's error + rounding
            err[out] = max(err[t] for t in node.inputs) + lsb_out / 2
        elif isinstance(node.op, ir.QAdd):
            lip, slope = _leaky(canon, canon.node(node.name), q, node, vals)
            err[out] = lip * (err[node.inputs[0]] + err[node.inputs[1]]) + slope + lsb_out / 2
        else:
            err[out] = _layer_bound(canon.node(node.name), canon, q, node, vals, err)
        if node.const_name("lut") is not None:
            err[out] = _table_bound(canon, q, node, err[out])
    return err[q.outputs[0]]


def _layer_bound(f: ir.Node, canon: ir.Graph, q: ir.Graph, node: ir.Node,
                 vals: dict[str, np.ndarray], err: dict[str, float]) -> float:
    w = np.abs(canon.const(f, "weight").astype(np.float64))
    conv = isinstance(f.op, ir.Conv)
    mat = w.reshape(w.shape[0], -1).T if conv else w  # [K, N]
    k = mat.shape[0]
    src = node.inputs[0]
    e_x, x_max = err[src], float(np.abs(vals[src]).max(initial=0.0))
    frac_in, frac_out = q.tensor(src).q.frac, q.tensor(node.outputs[0]).q.frac
    if node.const_name("lut") is not None:  # the requantized code's scale, before the table
        frac_out = int(q.const(node, "lut_frac")[0])
    mult, shift = q.const(node, "mult"), q.const(node, "shift")
    frac_acc = shift - np.log2(mult).astype(np.int64) + frac_out  # mult = 2**-s when s < 0
    lsb_w, lsb_acc = 2.0 ** -(frac_acc - frac_in).astype(np.float64), 2.0 ** -frac_acc
    per = mat.sum(axis=0) * e_x + k * lsb_w / 2 * (e_x + x_max) + lsb_acc / 2
    lip, slope = _leaky(canon, f, q, node, vals)
    return float((lip * per).max()) + slope + 2.0 ** -frac_out


def _table_bound(canon: ir.Graph, q: ir.Graph, node: ir.Node, e_z: float) -> float:
    """A table activation after a layer whose code is within e_z: Lipschitz x e_z + the
    table's own error (``numerics.table_error`` over the codes the layer outputs)."""
    act = next(n for n in canon.nodes() if isinstance(n.op, ir.TableAct)
               and canon.producer(n.inputs[0]).name == node.name).op
    out = q.tensor(node.outputs[0]).q
    table = numerics.table_error(act.fn, q.const(node, "lut"), int(q.const(node, "lut_frac")[0]),
                                 out.frac, node.op.lo, node.op.hi, act.alpha, act.beta)
    return numerics.table_lipschitz(act.fn, act.alpha) * e_z + table


def _leaky(canon: ir.Graph, f: ir.Node, q: ir.Graph, node: ir.Node,
           vals: dict[str, np.ndarray]) -> tuple[np.ndarray | float, float]:
    """A fused LeakyRelu's Lipschitz constant per channel, max(1, alpha), and the error of its
    realised slope: relative error (``numerics.leaky_error``) x max |output|; (1, 0) without
    one."""
    if f.const_name("alpha") is None:
        return 1.0, 0.0
    alpha = canon.const(f, "alpha").astype(np.float64)
    rel = numerics.leaky_error(alpha, *(q.const(node, r) for r in ("mult", "shift", "mult_n",
                                                                    "shift_n")))
    return np.maximum(1.0, alpha), rel * float(np.abs(vals[node.outputs[0]]).max(initial=0.0))
