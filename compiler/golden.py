"""Golden executors: the float graph in numpy float64, the quantized graph in integers.

``run_float`` executes any graph before quantization (ONNX-level ops from the frontend, or the
canonical Input, Dense, Conv, MaxPool, AddAct DAG); its results are checked against
onnxruntime. ``run_int`` executes a quantized graph (Input, QDense, QConv, QMaxPool, QAdd) with
``edgehls.numerics`` only, so it is bit-exact to the RTL (a QConv/QMaxPool runs each sample in
NHWC, and a QAdd has its channel axis moved last, as numerics defines them).

Batch convention. The graph input's static shape is *one inference*: its leading (batch) dim is
part of the model (a Dense reads it as M rows). A *data array* (calibration, evaluation, golden
vectors) holds S such inferences, either as ``[S, *input_shape]`` or, when the input's batch
dim is 1, as ``[S, *input_shape[1:]]`` (one sample a row). ``as_samples`` normalises both to
``[S, *input_shape]``. Data from the user is in the ONNX model's input layout: when
canonicalization absorbed a Transpose of the input (``ir.Input.perm``, e.g. a tf2onnx NHWC
model's input [N, H, W, C] became the NCHW tensor [N, C, H, W]), ``model_samples`` converts
it to the IR's input shape; every other function takes data in the IR's input shape.

- ``run_float(g, x)`` / ``run_int(g, x_q)``: one inference; ``x.size`` must equal the input's
  size (x is reshaped to the input shape); the result has the output tensor's shape.
- ``run_*_samples(g, data)``: S inferences, vectorised over a leading sample axis; the result is
  ``[S, *output_shape]``. ``run_*_all*`` return every tensor by name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

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
    if getattr(n.op, "leaky", False):
        return _leaky(y, g.const(n, "alpha"), -1)
    return np.maximum(y, 0.0) if n.op.relu else y


def _leaky(y: np.ndarray, alpha: np.ndarray, axis: int) -> np.ndarray:
    """y < 0 ? alpha * y : y, alpha [C] along ``axis`` of y (or a scalar)."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    if a.size > 1:
        a = a.reshape([-1 if i == axis % y.ndim else 1 for i in range(y.ndim)])
    return np.where(y < 0, a * y, y)


def _leakyrelu(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    """LeakyRelu (scalar alpha) or PRelu (const 'slope' [C] along axis 1 of the tensor)."""
    alpha = g.const(n, "slope") if n.const_name("slope") else np.array(n.op.alpha)
    return _leaky(xs[0], alpha, 2 if len(g.tensor(n.inputs[0]).shape) > 1 else 1)


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


def _transpose(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    x = xs[0].reshape(xs[0].shape[0], *g.tensor(n.inputs[0]).shape)
    return x.transpose(0, *(p + 1 for p in n.op.perm))


def _same(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0]  # Flatten/Reshape/Identity: the final reshape to the output shape does it


# --- convolutional ops, float NCHW: samples and batch merged, x [S*N, C, H, W] ---------------


def _nchw(g: ir.Graph, n: ir.Node, x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, *g.tensor(n.inputs[0]).shape[1:])


def _windows(x: np.ndarray, op: ir.Op, fill: float
             ) -> Iterator[tuple[np.ndarray, np.ndarray, int, int]]:
    """The window positions of x [S, C, H, W] one kernel offset at a time: (values [S, C, OH,
    OW] at offset (i, j) of every window, inside [OH, OW] False where that is padding (which
    holds ``fill``), i, j). One offset at a time, not an im2col of every offset: a 224 x 224
    map with 64 channels and 64 calibration samples would need 15 GB of patches."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = op.kernel, op.strides, op.pads
    dh, dw = getattr(op, "dilations", (1, 1))
    s, c, h, w = x.shape
    oh = numerics.conv_out(h, kh, sh, pt, pb, dh)
    ow = numerics.conv_out(w, kw, sw, pl, pr, dw)
    xp = np.full((s, c, h + pt + pb, w + pl + pr), fill, dtype=np.float64)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    mask = np.zeros(xp.shape[2:], dtype=bool)
    mask[pt:pt + h, pl:pl + w] = True
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
            yield xp[:, :, rows, cols], mask[rows, cols], i, j


def _act(y: np.ndarray, op: ir.Conv) -> np.ndarray:
    if op.act == "relu":
        return np.maximum(y, 0.0)
    return np.clip(y, *op.clip) if op.act == "clip" else y


def _conv(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    op = n.op
    w = g.const(n, "weight").astype(np.float64)  # [Cout, Cin/group, kh, kw]
    x = _nchw(g, n, xs[0])
    cg, per = w.shape[1], w.shape[0] // op.group
    wg = w.reshape(op.group, per, cg, *w.shape[2:])  # [G, Cout/G, Cin/G, kh, kw]
    acc, (s, oh, ow) = 0.0, (x.shape[0], 0, 0)
    for v, _, i, j in _windows(x, op, 0.0):  # v [S, Cin, OH, OW]
        oh, ow = v.shape[2:]
        # [S, G, OH*OW, Cin/G] @ [G, Cin/G, Cout/G] -> [S, G, OH*OW, Cout/G]
        rows = v.reshape(s, op.group, cg, oh * ow).transpose(0, 1, 3, 2)
        wij = wg[:, :, :, i, j].transpose(0, 2, 1)  # [G, Cin/G, Cout/G]
        if op.group == 1:  # one 2-D product (BLAS), not S broadcast ones
            acc = acc + (rows.reshape(-1, cg) @ wij[0]).reshape(s, 1, oh * ow, per)
        else:
            acc = acc + rows @ wij
    y = np.asarray(acc).transpose(0, 1, 3, 2).reshape(s, w.shape[0], oh, ow)
    if n.const_name("bias") is not None:
        y = y + g.const(n, "bias").astype(np.float64)[:, None, None]
    if op.act == "leaky":
        return _leaky(y, g.const(n, "alpha"), 1)
    return _act(y, op)


def _channel(g: ir.Graph, n: ir.Node, v: np.ndarray) -> np.ndarray:
    """A per-channel vector [C] shaped to broadcast along axis 1 of [S*N, C, ...]."""
    rank = len(g.tensor(n.inputs[0]).shape)
    return v.astype(np.float64).reshape(1, -1, *([1] * (rank - 2)))


def _batchnorm(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    x = _nchw(g, n, xs[0])
    c = {r: _channel(g, n, g.const(n, r)) for r in ("scale", "bias", "mean", "var")}
    return (x - c["mean"]) / np.sqrt(c["var"] + n.op.epsilon) * c["scale"] + c["bias"]


def _maxpool(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    # padding (-inf) never wins
    return functools.reduce(np.maximum, (v for v, *_ in _windows(_nchw(g, n, xs[0]), n.op,
                                                                 -np.inf)))


def _avgpool(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    total, count = 0.0, 0
    for v, inside, _, _ in _windows(_nchw(g, n, xs[0]), n.op, 0.0):
        total, count = total + v, count + (1 if n.op.count_include_pad else inside)
    return total / count


def _pad(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    pt, pl, pb, pr = n.op.pads
    x = _nchw(g, n, xs[0])
    if x.ndim == 3:  # [N, C, L] (a 1-D Pad the frontend left 3-D): pads (0, l, 0, r) as H = 1
        x = x[:, :, None, :]
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def _global_avgpool(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    x = _nchw(g, n, xs[0])  # [N, C, H, W], or [N, C, L] (a 1-D mean the frontend left 3-D)
    return x.mean(axis=tuple(range(2, x.ndim)))


def _addact(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    y = xs[0] + xs[1]  # the frontend checked both have the output's shape
    if n.op.act == "leaky":
        return _leaky(y, g.const(n, "alpha"), 2)
    return np.maximum(y, 0.0) if n.op.act == "relu" else y


FLOAT_STEPS: dict[type[ir.Op], Step] = {
    ir.Dense: _dense,
    ir.Gemm: _gemm,
    ir.MatMul: lambda g, n, xs: xs[0] @ g.const(n, "B").astype(np.float64),
    ir.Add: _add,
    ir.Relu: lambda g, n, xs: np.maximum(xs[0], 0.0),
    ir.LeakyRelu: _leakyrelu,
    ir.TableAct: lambda g, n, xs: numerics.table_function(n.op.fn, xs[0], n.op.alpha, n.op.beta),
    ir.Flatten: _same,
    ir.Reshape: _same,
    ir.Transpose: _transpose,
    ir.Identity: _same,
    ir.Softmax: _softmax,
    ir.Conv: _conv,
    ir.BatchNorm: _batchnorm,
    ir.MaxPool: _maxpool,
    ir.AvgPool: _avgpool,
    ir.GlobalAvgPool: _global_avgpool,
    ir.Clip: lambda g, n, xs: np.clip(xs[0], n.op.lo, n.op.hi),
    ir.Pad: _pad,
    ir.AddAct: _addact,
    ir.Concat: lambda g, n, xs: np.concatenate(xs, axis=2),  # axis 1 of each [S, *shape]
}


def _qdense(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    w = g.const(n, "weight")
    return _lut(g, n, numerics.dense(_rows(xs[0], w.shape[0]), w, g.const(n, "bias"),
                                     g.const(n, "mult"), g.const(n, "shift"), n.op.lo, n.op.hi,
                                     _neg(g, n)))


def _lut(g: ir.Graph, n: ir.Node, y: np.ndarray) -> np.ndarray:
    """A fused table activation's lookup of the requantized codes (none: y itself)."""
    return y if n.const_name("lut") is None else numerics.lookup(y, g.const(n, "lut"))


def _neg(g: ir.Graph, n: ir.Node) -> tuple[np.ndarray, np.ndarray] | None:
    """A fused LeakyRelu's (mult_n, shift_n), or None."""
    if n.const_name("mult_n") is None:
        return None
    return g.const(n, "mult_n"), g.const(n, "shift_n")


def _nhwc(g: ir.Graph, name: str, x: np.ndarray) -> np.ndarray:
    """[S, *shape] of an NCHW tensor -> [S * N, H, W, C], the one-sample layout of
    ``numerics.conv``/``maxpool``."""
    shape = g.tensor(name).shape
    if len(shape) != 4:
        raise PassError(f"tensor {name!r} {list(shape)} is not [N, C, H, W]")
    return x.reshape(-1, *shape[1:]).transpose(0, 2, 3, 1)


def _qconv(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    op = n.op
    args = [g.const(n, r) for r in ("weight", "bias", "mult", "shift")]
    ys = [numerics.conv(x, *args, op.lo, op.hi, op.kernel, op.strides, op.pads, op.dilations,
                        op.group, _neg(g, n)) for x in _nhwc(g, n.inputs[0], xs[0])]
    return _lut(g, n, np.stack(ys).transpose(0, 3, 1, 2))  # [S * N, OH, OW, Cout] -> NCHW


def _qmaxpool(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    op = n.op
    ys = [numerics.maxpool(x, op.kernel, op.strides, op.pads, op.dilations)
          for x in _nhwc(g, n.inputs[0], xs[0])]
    return np.stack(ys).transpose(0, 3, 1, 2)


def _qadd(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    """numerics.add per channel: axis 1 of the tensor ([N, C, H, W] or [M, C]), which is axis 2
    of the [S, ...] arrays, is moved last for the per-channel mult/shift and back."""
    a, b = (np.moveaxis(x, 2, -1) for x in xs)
    y = numerics.add(a, b, int(g.const(n, "wa")[0]), int(g.const(n, "wb")[0]),
                     g.const(n, "mult"), g.const(n, "shift"), n.op.lo, n.op.hi, _neg(g, n))
    return _lut(g, n, np.moveaxis(y, -1, 2))


def _qconcat(g: ir.Graph, n: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
    """numerics.concat with the channel axis (2 of the [S, ...] arrays) moved last."""
    y = numerics.concat([np.moveaxis(x, 2, -1) for x in xs], g.const(n, "mult"),
                        g.const(n, "shift"), n.op.lo, n.op.hi)
    return np.moveaxis(y, -1, 2)


INT_STEPS: dict[type[ir.Op], Step] = {ir.QDense: _qdense, ir.QConv: _qconv,
                                      ir.QMaxPool: _qmaxpool, ir.QAdd: _qadd,
                                      ir.QConcat: _qconcat}


def _input(g: ir.Graph) -> ir.Tensor:
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise PassError(f"golden executor needs one input and one output, graph has "
                        f"{g.inputs} -> {g.outputs}")
    return g.tensor(g.inputs[0])


def as_samples(g: ir.Graph, data: np.ndarray) -> np.ndarray:
    """Data array [S, *input_shape] or [S, *input_shape[1:]] (batch dim 1) -> [S, *input_shape]."""
    t = _input(g)
    return _samples(np.asarray(data), repr(t.name), tuple(t.shape))


def model_samples(g: ir.Graph, data: np.ndarray) -> np.ndarray:
    """Data array in the ONNX model's input layout -> [S, *input_shape] (the IR's layout).

    Without an absorbed input Transpose this is ``as_samples``. With one (``Input.perm``), each
    sample [*onnx_shape] (or [*onnx_shape[1:]] for batch 1) is transposed by ``perm``. Either
    way a sample of the same elements in the same order with other unit axes (a Conv1d model's
    [C, L] for the IR's [1, C, 1, L], a 1-D NHWC model's [L, C] for [1, L, 1, C]) is accepted
    too."""
    t = _input(g)
    source = g.producer(t.name)
    perm = source.op.perm if source is not None and isinstance(source.op, ir.Input) else ()
    data = np.asarray(data)
    shape = tuple(t.shape[i] for i in np.argsort(perm)) if perm else tuple(t.shape)
    squeezed = [d for d in shape if d != 1]  # IR shape[i] = onnx shape[perm[i]]
    if data.ndim >= 1 and [d for d in data.shape[1:] if d != 1] == squeezed \
            and data.shape[1:] not in (shape, shape[1:]):
        data = data.reshape(data.shape[0], *shape)
    if not perm:
        return as_samples(g, data)
    out = _samples(data, f"{t.name!r} in the ONNX model's layout", shape)
    return out.transpose(0, *(p + 1 for p in perm))


def _samples(data: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if data.ndim >= 1 and data.shape[1:] == shape:
        out = data
    elif shape and shape[0] == 1 and data.ndim >= 1 and data.shape[1:] == shape[1:]:
        out = data.reshape(data.shape[0], *shape)
    else:
        forms = [shape, shape[1:]] if shape and shape[0] == 1 else [shape]
        ok = [f"[{', '.join(['S', *map(str, f)])}]" for f in forms]
        raise DataError(f"data of shape {list(data.shape)} does not match model input "
                        f"{name} {list(shape)}: expected {' or '.join(ok)} for S samples")
    if out.shape[0] == 0:
        raise DataError(f"data for model input {name} {list(shape)} holds no samples")
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
    return numerics.quantize_scaled(x, q.scale, q.lo, q.hi)


def to_model(g: ir.Graph, tensor: str, samples: np.ndarray) -> np.ndarray:
    """[S, *shape] of graph input/output ``tensor`` -> [S, *model_shape]: the ONNX model's own
    shape and layout (``ir.Graph.model_io``), as golden/ holds it."""
    return np.ascontiguousarray(g.model_tensor(tensor).from_ir(samples))


def dequantize_output(g: ir.Graph, y_q: np.ndarray) -> np.ndarray:
    """Integer output -> float64 at the output's scale."""
    q = g.tensor(g.outputs[0]).q
    if q is None:
        raise PassError(f"output {g.outputs[0]!r} has no QFormat: run Quantize first")
    return np.asarray(y_q, dtype=np.float64) * q.scale
