"""Golden executors: the float graph in numpy float64, the quantized graph in integers.

``run_float`` executes any graph before quantization (ONNX-level ops from the frontend, or the
canonical Input -> Dense chain); its results are checked against onnxruntime. ``run_int``
executes a quantized graph (Input, QDense) with ``edgehls.numerics`` only, so it is bit-exact to
the RTL.

Batch convention. The graph input's static shape is *one inference*: its leading (batch) dim is
part of the model (a Dense reads it as M rows). A *data array* (calibration, evaluation, golden
vectors) holds S such inferences, either as ``[S, *input_shape]`` or, when the input's batch
dim is 1, as ``[S, *input_shape[1:]]`` (one sample a row). ``as_samples`` normalises both to
``[S, *input_shape]``.

- ``run_float(g, x)`` / ``run_int(g, x_q)``: one inference; ``x.size`` must equal the input's
  size (x is reshaped to the input shape); the result has the output tensor's shape.
- ``run_*_samples(g, data)``: S inferences, vectorised over a leading sample axis; the result is
  ``[S, *output_shape]``. ``run_*_all*`` return every tensor by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from edgehls import ir, numerics
from edgehls.errors import DataError, PassError

log = logging.getLogger(__name__)

# Every array below carries a leading sample axis S before the tensor's own shape.
Step = Callable[[ir.Graph, ir.Node, list[np.ndarray]], np.ndarray]


def _rows(x: np.ndarray, k: int) -> np.ndarray:
    """[S, ...] -> [S, M, K]: a Dense reads its input as M rows of K (row-major)."""
    return x.reshape(x.shape[0], -1, k)


def _dense(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    w = g.const(n, "weight").astype(np.float64)
    y = _rows(xs[0], w.shape[0]) @ w + g.const(n, "bias").astype(np.float64)
    return np.maximum(y, 0.0) if n.op.relu else y


def _gemm(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    op = n.op
    a = xs[0].reshape(xs[0].shape[0], *g.tensor(n.inputs[0]).shape)
    a = np.swapaxes(a, -1, -2) if op.trans_a else a
    b = g.const(n, "B").astype(np.float64)
    y = op.alpha * (a @ (b.T if op.trans_b else b))
    if n.const_name("C") is not None:
        y = y + op.beta * g.const(n, "C").astype(np.float64)
    return y


def _add(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    others = xs[1:] if n.const_name("B") is None else [g.const(n, "B")[None]]
    y = xs[0]
    for b in others:  # align ranks first: the sample axis must stay in front
        rank = max(y.ndim, b.ndim)
        y = y.reshape(y.shape[0], *([1] * (rank - y.ndim)), *y.shape[1:])
        b = b.reshape(b.shape[0], *([1] * (rank - b.ndim)), *b.shape[1:])
        y = y + b.astype(np.float64)
    return y


def _softmax(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    # opset-13 semantics (one axis); the frontend rewrites older opsets' 2-D coercion
    x = xs[0].reshape(xs[0].shape[0], *g.tensor(n.inputs[0]).shape)
    axis = n.op.axis if n.op.axis < 0 else n.op.axis + 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _same(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0]  # Flatten/Reshape/Identity: the final reshape to the output shape does it


FLOAT_STEPS: dict[type[ir.Op], Step] = {
    ir.Dense: _dense,
    ir.Gemm: _gemm,
    ir.MatMul: lambda g, n, xs: xs[0] @ g.const(n, "B").astype(np.float64),
    ir.Add: _add,
    ir.Relu: lambda g, n, xs: np.maximum(xs[0], 0.0),
    ir.Flatten: _same,
    ir.Reshape: _same,
    ir.Identity: _same,
    ir.Softmax: _softmax,
}


def _qdense(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    w = g.const(n, "weight")
    return numerics.dense(_rows(xs[0], w.shape[0]), w, g.const(n, "bias"), g.const(n, "mult"),
                          g.const(n, "shift"), n.op.lo, n.op.hi)


INT_STEPS: dict[type[ir.Op], Step] = {ir.QDense: _qdense}


def _input(g: ir.Graph) -> ir.Tensor:
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise PassError(f"golden executor needs one input and one output, graph has "
                        f"{g.inputs} -> {g.outputs}")
    return g.tensor(g.inputs[0])


def as_samples(g: ir.Graph, data: np.ndarray) -> np.ndarray:
    """Data array [S, *input_shape] or [S, *input_shape[1:]] (batch dim 1) -> [S, *input_shape]."""
    data = np.asarray(data)
    t = _input(g)
    shape = tuple(t.shape)
    if data.ndim >= 1 and data.shape[1:] == shape:
        out = data
    elif shape and shape[0] == 1 and data.ndim >= 1 and data.shape[1:] == shape[1:]:
        out = data.reshape(data.shape[0], *shape)
    else:
        forms = [shape, shape[1:]] if shape and shape[0] == 1 else [shape]
        ok = [f"[{', '.join(['S', *map(str, f)])}]" for f in forms]
        raise DataError(f"data of shape {list(data.shape)} does not match model input "
                        f"{t.name!r} {list(shape)}: expected {' or '.join(ok)} for S samples")
    if out.shape[0] == 0:
        raise DataError(f"data for model input {t.name!r} {list(shape)} holds no samples")
    return out


def _run(g: ir.Graph, xs: np.ndarray, steps: dict[type[ir.Op], Step], what: str
         ) -> dict[str, np.ndarray]:
    """Execute on [S, *input_shape]; every tensor comes back as [S, *tensor.shape]."""
    vals: dict[str, np.ndarray] = {}
    s = xs.shape[0]
    for node in g.nodes():
        if isinstance(node.op, ir.Input):
            vals[node.outputs[0]] = xs
            continue
        step = steps.get(type(node.op))
        if step is None:
            kinds = ", ".join(sorted(["Input"] + [c.kind for c in steps]))
            raise PassError(f"{what} cannot execute node {node.name!r} ({node.op.kind}); "
                            f"it executes {kinds}")
        y = step(g, node, [vals[t] for t in node.inputs])
        shape = g.tensor(node.outputs[0]).shape
        if y.size != s * int(np.prod(shape, dtype=np.int64)):
            raise PassError(f"node {node.name!r} ({node.op.kind}) computed {y.size // s} "
                            f"elements, its output {node.outputs[0]!r} is {list(shape)}")
        vals[node.outputs[0]] = y.reshape(s, *shape)
    return vals


def _one(g: ir.Graph, x: np.ndarray) -> np.ndarray:
    t = _input(g)
    x = np.asarray(x)
    if x.size != t.size:
        raise DataError(f"input of shape {list(x.shape)} does not match model input "
                        f"{t.name!r} {list(t.shape)}")
    return x.reshape(1, *t.shape)


def run_float_all_samples(g: ir.Graph, data: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor, float64 [S, *shape], for S inferences (see ``as_samples``)."""
    return _run(g, as_samples(g, data).astype(np.float64), FLOAT_STEPS, "run_float")


def run_float_samples(g: ir.Graph, data: np.ndarray) -> np.ndarray:
    """Graph output, float64 [S, *output_shape], for S inferences."""
    return run_float_all_samples(g, data)[g.outputs[0]]


def run_float_all(g: ir.Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of one inference, float64, by tensor name."""
    vals = _run(g, _one(g, x).astype(np.float64), FLOAT_STEPS, "run_float")
    return {k: v[0] for k, v in vals.items()}


def run_float(g: ir.Graph, x: np.ndarray) -> np.ndarray:
    """Output of one inference in float64, shaped as the output tensor."""
    return run_float_all(g, x)[g.outputs[0]]


def _check_int(g: ir.Graph, xq: np.ndarray) -> np.ndarray:
    t = _input(g)
    if not np.issubdtype(xq.dtype, np.integer):
        raise DataError(f"run_int takes integers for input {t.name!r}, got {xq.dtype}")
    if t.q is None:
        raise PassError(f"input {t.name!r} has no QFormat: run Quantize first")
    if xq.size and (xq.min() < t.q.lo or xq.max() > t.q.hi):
        raise DataError(f"integer input outside {t.q.dtype} range {t.q.lo}..{t.q.hi} of "
                        f"{t.name!r}: quantize it with golden.quantize_input")
    return xq.astype(np.int64)


def run_int_all_samples(g: ir.Graph, data_q: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor, int64 [S, *shape], for S integer inferences."""
    return _run(g, _check_int(g, as_samples(g, data_q)), INT_STEPS, "run_int")


def run_int_samples(g: ir.Graph, data_q: np.ndarray) -> np.ndarray:
    """Graph output, int64 [S, *output_shape], for S integer inferences."""
    return run_int_all_samples(g, data_q)[g.outputs[0]]


def run_int_all(g: ir.Graph, x_q: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of one integer inference, int64, by tensor name."""
    vals = _run(g, _check_int(g, _one(g, x_q)), INT_STEPS, "run_int")
    return {k: v[0] for k, v in vals.items()}


def run_int(g: ir.Graph, x_q: np.ndarray) -> np.ndarray:
    """Output of one integer inference, int64, shaped as the output tensor."""
    return run_int_all(g, x_q)[g.outputs[0]]


def quantize_input(g: ir.Graph, x: np.ndarray) -> np.ndarray:
    """Float input (any leading shape) -> int64 in the input's QFormat (round half up, clip)."""
    q = g.tensor(g.inputs[0]).q
    if q is None:
        raise PassError(f"input {g.inputs[0]!r} has no QFormat: run Quantize first")
    return numerics.quantize(x, q.frac, q.lo, q.hi)


def dequantize_output(g: ir.Graph, y_q: np.ndarray) -> np.ndarray:
    """Integer output -> float64 at the output's scale."""
    q = g.tensor(g.outputs[0]).q
    if q is None:
        raise PassError(f"output {g.outputs[0]!r} has no QFormat: run Quantize first")
    return numerics.dequantize(y_q, q.frac)
