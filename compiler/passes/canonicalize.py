"""Canonicalize: ONNX-level ops -> a DAG of ``Input``, ``Dense``, ``Conv``, ``MaxPool`` and
``AddAct``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgehls import ir, numerics
from edgehls.errors import UnsupportedError

_WHY = {
    "Add": "only a constant bias (broadcastable to [N], or per channel on a feature map) "
           "directly after a MatMul/Gemm or Conv (whose output nothing else reads) can be folded",
    "Relu": "a Relu must directly follow a MatMul/Gemm, Conv or residual Add whose output "
            "nothing else reads (or a MaxPool of such a Conv or Add)",
    "Clip": "a Clip must directly follow a Conv whose output nothing else reads (or a MaxPool "
            "of such a Conv); after a MatMul/Gemm only Clip(0, inf) (a Relu) is supported, and "
            "so after a residual Add",
    "LeakyRelu": "a LeakyRelu/PRelu is fused into the layer before it or becomes a per-channel "
                 "layer of its own, which needs a [N, C] or [N, C, H, W] input",
    "TableAct": "a Sigmoid/HardSigmoid/HardSwish needs a [N, C] or [N, C, H, W] input (it "
                "becomes a lookup table after a layer's requantizer)",
    "Pad": "a Pad must feed only Conv/MaxPool/AveragePool nodes (a MaxPool only when its input "
           "is non-negative, e.g. after a ReLU)",
    "BatchNorm": "only a BatchNormalization of a [N, C] or [N, C, H, W] tensor is supported",
    "Softmax": "only a final Softmax (producing the graph output) is supported",
    "Transpose": "supported are: a Transpose pair that cancels, a Transpose of the graph input "
                 "into an NCHW map whose NHWC order is the input's (a tf2onnx NHWC input), a "
                 "Transpose of an NCHW map to NHWC before a Flatten/Reshape into a Gemm/MatMul "
                 "or producing the graph output, and one that moves only size-1 axes",
}
_TO_NHWC = (0, 2, 3, 1)  # the hardware's stream order of an [N, C, H, W] tensor
_SPATIAL = (ir.Conv, ir.MaxPool, ir.AvgPool, ir.GlobalAvgPool, ir.Pad, ir.BatchNorm)
_LAYERS = (ir.Conv, ir.Dense, ir.AddAct)  # the ops a Relu can fuse into
_CANONICAL = (ir.Input, ir.Dense, ir.Conv, ir.MaxPool, ir.AddAct, ir.Concat, ir.TableAct)
_NO_ACT = (-np.inf, np.inf)


@dataclass(frozen=True)
class Canonicalize:
    """Rewrite a frontend graph into ``Input``, ``Dense``, ``Conv``, ``MaxPool`` and ``AddAct``.

    Requires: a graph from ``edgehls.frontend.load`` (ONNX-level ops, float32 constants,
    static shapes; a DAG: a tensor may have several readers). Guarantees: every node is
    ``Input``, ``Dense`` (float consts 'weight' [K, N], 'bias' [N]), ``Conv`` (float consts
    'weight' [Cout, Cin/group, kh, kw], 'bias' [Cout], a 4-D output [N, Cout, OH, OW]),
    ``MaxPool`` or ``AddAct`` (two inputs and its output of one shape, act "none" or "relu");
    nodes that do not reach the output are removed;
    Identity/Dropout, Flatten and Reshape are bypassed (a Flatten of a computed [N, C, H, W]
    map with C > 1 and H * W > 1 into a Gemm/MatMul makes that layer a Conv with kernel (H, W),
    so the NCHW flatten order lives in the weights; the graph input stays row-major); a final
    Softmax is dropped with a note; Transposes are removed: consecutive ones are composed (a
    pair that cancels disappears), one that moves only size-1 axes is a Reshape, one of the
    graph input whose result streamed NHWC is the input's row-major data is absorbed (the
    input becomes that NCHW tensor, ``Input.perm`` records the perm, a note says so), one
    before a Flatten/Reshape into a Gemm/MatMul is folded into the weight rows, and one to
    NHWC producing the graph output is dropped (the output stream is already NHWC; a note
    says so); Gemm/MatMul become Dense; a constant Add folds into the
    bias; BatchNorm (and Mul by a per-channel constant) folds into the Conv/Dense before it when
    that is its only reader, else becomes a depthwise 1x1 Conv (a diagonal Dense on [N, C]);
    AveragePool and GlobalAveragePool become depthwise Convs; Relu/Clip fuse into the Conv
    before it (``act``), also through a MaxPool (max and a monotonic activation commute), or
    into a Dense (``relu``) or an AddAct (``act="relu"``); every fold and fusion needs the
    layer's output to have that node as its only reader (and not be a graph output), except
    that a Relu/Clip of values already within its bounds is dropped; an AddAct's inputs may not
    be reshaped; Pad folds into the following Conv's or MaxPool's pads. A LeakyRelu/PRelu fuses
    into the Conv/Dense/AddAct before it (act "leaky", const 'alpha' [C]; also through a
    MaxPool), else becomes a per-channel identity layer with it; a ``Concat`` (channels) stays,
    its inputs differing only in axis 1; a ``TableAct`` (Sigmoid, HardSigmoid, HardSwish) stays,
    reading a Conv/Dense/AddAct without activation that it alone reads (an identity layer is
    put before it where needed) for Quantize to fuse. Unused constants are
    dropped; ``verify()`` passes. The input graph is not modified. Raises ``UnsupportedError``
    naming any node that cannot be expressed.
    """

    def __call__(self, g: ir.Graph) -> ir.Graph:
        g = g.copy()
        _model_io(g)
        _remove_dead(g)
        for node in _each(g, ir.Identity):
            _bypass(g, node)
        _transposes(g)
        for node in _each(g, ir.Conv):  # each Conv owns its weight and a bias from here on
            bias = g.const(node, "bias") if node.const_name("bias") else np.zeros(
                g.const(node, "weight").shape[0])
            _conv(g, node, node.op, g.const(node, "weight"), bias)
        for node in _each(g, ir.Gemm, ir.MatMul):
            _to_dense(g, node)
        for node in _each(g, ir.Flatten, ir.Reshape):
            _bypass(g, node)
        for node in _each(g, ir.Softmax):
            if node.outputs[0] in g.outputs and not g.consumers(node.outputs[0]):
                g.remove_node(node.name, forward=True)
                # the output is the logits, not the model's: named so, in the model's shape
                src = node.inputs[0]
                g.model_io[src] = dataclasses.replace(g.model_io[src], name=src)
                g.notes.append("final Softmax dropped from hardware: outputs are logits")
        for node in _each(g, ir.AvgPool, ir.GlobalAvgPool):
            _pool_to_conv(g, node)
        for node in _each(g, ir.Add, ir.BatchNorm):  # in order: Conv -> Add -> BN folds both
            (_fuse_add if isinstance(node.op, ir.Add) else _batchnorm)(g, node)
        for node in _each(g, ir.Relu, ir.Clip):
            _fuse_act(g, node)
        for node in _each(g, ir.LeakyRelu):
            _fuse_leaky(g, node)
        for node in _each(g, ir.TableAct):
            _table_input(g, node)
        for node in _each(g, ir.Pad):
            _fold_pad(g, node)
        _remove_dead(g)  # e.g. a Transpose folded into a Gemm's weights
        if all(isinstance(node.op, ir.Input) for node in g.nodes()):
            raise UnsupportedError(f"the model computes nothing: its output is its input "
                                   f"{g.outputs[0]!r} (only Identity, Dropout, Reshape or Flatten "
                                   "nodes); edgehls needs at least one layer for the array")
        for node in g.nodes():
            if isinstance(node.op, ir.Transpose):
                raise UnsupportedError(
                    f"node {node.name!r} (Transpose): perm {list(node.op.perm)} of "
                    f"{list(g.tensor(node.inputs[0]).shape)} is not supported: {_WHY['Transpose']}")
            if not isinstance(node.op, _CANONICAL):
                raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): cannot be mapped "
                                       "to a Dense, Conv, MaxPool or residual Add layer: "
                                       f"{_WHY.get(node.op.kind, 'unexpected')}")
            _check_batch(g, node)
            if isinstance(node.op, ir.AddAct):
                _check_add(g, node)
            if isinstance(node.op, ir.Concat):
                _check_concat(g, node)
            if isinstance(node.op, ir.TableAct) and not _table_ready(g, node):
                raise UnsupportedError(f"node {node.name!r} ({node.op.kind} {node.op.fn}): "
                                       f"{_WHY['TableAct']}")
        used = {c for node in g.nodes() for _, c in node.consts}
        g.consts = {k: v for k, v in g.consts.items() if k in used}
        g.verify()
        return g


def _each(g: ir.Graph, *kinds: type[ir.Op]) -> Iterator[ir.Node]:
    """The current version of each node of the given kinds, in order, while ``g`` changes."""
    for name in [n.name for n in g.nodes() if isinstance(n.op, kinds)]:
        if name in g:
            yield g.node(name)


def _model_io(g: ir.Graph) -> None:
    """Record the model's input and output (``Graph.model_io``) before anything changes them,
    where the frontend has not (it records a 1-D model's [N, C, L]): the IR's names and
    shapes."""
    for t in (*g.inputs, *g.outputs):
        if t not in g.model_io:
            g.model_io[t] = ir.ModelTensor(t, tuple(g.tensor(t).shape))


def _then(perm: tuple[int, ...], m: ir.ModelTensor) -> ir.ModelTensor:
    """``m`` for an IR tensor that is now ``perm`` of the one it was (new.transpose(perm) is
    the old): model = old.transpose(m.perm) = new.transpose(perm[m.perm])."""
    return dataclasses.replace(m, perm=tuple(perm[i] for i in m.perm) if m.perm else perm)


def _remove_dead(g: ir.Graph) -> None:
    """Drop nodes whose outputs never reach a graph output (e.g. a Dropout's unused branch)."""
    live, todo = set(), list(g.outputs)
    while todo:
        node = g.producer(todo.pop())
        if node is not None and node.name not in live:
            live.add(node.name)
            todo += node.inputs
    for node in reversed(g.nodes()):
        if node.name not in live and not isinstance(node.op, ir.Input):
            g.remove_node(node.name)
            for t in node.outputs:
                g.tensors.pop(t, None)


def _bypass(g: ir.Graph, node: ir.Node) -> None:
    src, dst = node.inputs[0], node.outputs[0]
    before, after = g.tensor(src).shape, g.tensor(dst).shape
    readers = [g.node(c) for c in g.consumers(dst)]
    # a spatial op reads its input's shape as [N, C, H, W]: [1, 8, 8, 1] is not [1, 1, 8, 8]
    if before != after and any(isinstance(r.op, _SPATIAL) for r in readers):
        raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): reshaping {list(before)} "
                               f"to {list(after)} before a convolution or pool is not supported")
    if before != after and any(isinstance(r.op, ir.AddAct) for r in readers):
        raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): reshaping {list(before)} "
                               f"to {list(after)} before a residual Add is not supported")
    if before != after and any(isinstance(r.op, ir.Concat) for r in readers):
        raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): reshaping {list(before)} "
                               f"to {list(after)} before a Concat is not supported")
    if dst in g.outputs and before != after:
        g.notes.append(f"output {dst!r}: {node.op.kind} {node.name!r} removed, the output "
                       f"stream {list(before)} is the row-major data of ONNX shape {list(after)}")
    g.remove_node(node.name, forward=True)


def _order(perm: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The non-unit axes of ``shape`` in the order ``perm`` puts them: two perms of equal order
    leave the same row-major data."""
    return tuple(p for p in perm if shape[p] != 1)


def _transposes(g: ir.Graph) -> None:
    """Compose consecutive Transposes, make data-preserving ones Reshapes, absorb the graph
    input's and drop the graph output's (see ``Canonicalize``); the rest stay for _to_dense."""
    for node in _each(g, ir.Transpose):
        p = g.producer(node.inputs[0])
        if p is not None and isinstance(p.op, ir.Transpose):  # out[i] = in[p.perm[node.perm[i]]]
            perm = tuple(p.op.perm[i] for i in node.op.perm)
            g.replace_node(ir.Node(node.name, ir.Transpose(perm), p.inputs, node.outputs))
    _remove_dead(g)
    x = g.inputs[0] if len(g.inputs) == 1 else None
    readers = [g.node(c) for c in g.consumers(x)] if x else []
    perms = {r.op.perm for r in readers if isinstance(r.op, ir.Transpose)}
    if len(perms) == 1 and all(isinstance(r.op, ir.Transpose) for r in readers):
        _absorb_input(g, x, readers)
    for node in _each(g, ir.Transpose):
        shape = g.tensor(node.inputs[0]).shape
        out = node.outputs[0]
        if _order(node.op.perm, shape) == _order(tuple(range(len(shape))), shape):
            g.replace_node(dataclasses.replace(node, op=ir.Reshape(g.tensor(out).shape)))
        elif (out in g.outputs and not g.consumers(out) and len(shape) == 4
              and _order(node.op.perm, shape) == _order(_TO_NHWC, shape)):
            g.notes.append(f"output {out!r}: Transpose {node.name!r} (perm "
                           f"{list(node.op.perm)}) removed: the output is the NCHW tensor "
                           f"{node.inputs[0]!r} {list(shape)}, streamed NHWC, which is the "
                           f"ONNX output {list(g.tensor(out).shape)} in its own order")
            g.remove_node(node.name, forward=True)
            src = node.inputs[0]
            g.model_io[src] = _then(tuple(node.op.perm), g.model_io[src])


def _absorb_input(g: ir.Graph, x: str, readers: list[ir.Node]) -> None:
    """The graph input read only by Transposes of one perm becomes their output, when that
    output streamed NHWC is the input's row-major data (an NHWC input made NCHW)."""
    perm, shape = readers[0].op.perm, g.tensor(x).shape
    after = g.tensor(readers[0].outputs[0]).shape
    if len(shape) != 4 or _order(tuple(perm[i] for i in _TO_NHWC), shape) != _order(
            tuple(range(4)), shape):
        return
    source = g.producer(x)
    g.replace_node(dataclasses.replace(source, op=ir.Input(perm=tuple(perm))))
    g.set_tensor(x, shape=after)
    g.model_io[x] = _then(tuple(int(i) for i in np.argsort(perm)), g.model_io[x])
    for r in readers:
        for c in g.consumers(r.outputs[0]):
            cn = g.node(c)
            g.replace_node(dataclasses.replace(
                cn, inputs=tuple(x if i == r.outputs[0] else i for i in cn.inputs)))
        g.outputs = [x if o == r.outputs[0] else o for o in g.outputs]
        g.remove_node(r.name)
        g.tensors.pop(r.outputs[0], None)
    g.notes.append(f"input {x!r}: the model's Transpose {readers[0].name!r} (perm {list(perm)}) "
                   f"was absorbed: edgehls's input is the NCHW tensor {list(after)} "
                   f"(golden/inputs.npy holds the ONNX input {list(shape)}, and "
                   "golden.model_samples converts data in its layout); the hardware streams "
                   "it NHWC, which is the ONNX input's own order: stream the same bytes")


def _new_const(g: ir.Graph, name: str, value: np.ndarray) -> str:
    key, i = name, 0
    while key in g.consts:
        i += 1
        key = f"{name}_{i}"
    return g.add_const(key, np.asarray(value, dtype=np.float32))


def _dense(g: ir.Graph, node: ir.Node, weight: np.ndarray, bias: np.ndarray,
           relu: bool = False, inputs: tuple[str, ...] | None = None) -> None:
    consts = (("weight", _new_const(g, f"{node.name}.weight", weight)),
              ("bias", _new_const(g, f"{node.name}.bias", bias)))
    g.replace_node(ir.Node(node.name, ir.Dense(relu), inputs or node.inputs, node.outputs,
                           consts))


def _conv(g: ir.Graph, node: ir.Node, op: ir.Conv, weight: np.ndarray, bias: np.ndarray,
          inputs: tuple[str, ...] | None = None) -> None:
    """Make ``node`` a Conv owning new 'weight' and 'bias' constants; its output 4-D."""
    consts = (("weight", _new_const(g, f"{node.name}.weight", weight)),
              ("bias", _new_const(g, f"{node.name}.bias", bias)))
    x = g.tensor((inputs or node.inputs)[0]).shape
    out = node.outputs[0]
    before = g.tensor(out).shape
    shape = (x[0], weight.shape[0],
             numerics.conv_out(x[2], op.kernel[0], op.strides[0], op.pads[0], op.pads[2],
                               op.dilations[0]),
             numerics.conv_out(x[3], op.kernel[1], op.strides[1], op.pads[1], op.pads[3],
                               op.dilations[1]))
    if shape != before:
        if int(np.prod(shape)) != int(np.prod(before)):
            raise UnsupportedError(f"node {node.name!r}: as a Conv its output would be "
                                   f"{list(shape)}, not {list(before)}")
        g.set_tensor(out, shape=shape)
        if out in g.outputs:
            g.notes.append(f"output {out!r}: the output stream {list(shape)} is the row-major "
                           f"data of ONNX shape {list(before)}")
    g.replace_node(ir.Node(node.name, op, inputs or node.inputs, node.outputs, consts))


def _source(g: ir.Graph, tensor: str) -> str:
    """The tensor before any Flatten/Reshape/Identity chain ending at ``tensor``."""
    p = g.producer(tensor)
    while p is not None and isinstance(p.op, (ir.Flatten, ir.Reshape, ir.Identity)):
        tensor = p.inputs[0]
        p = g.producer(tensor)
    return tensor


def _flat_source(g: ir.Graph, tensor: str) -> tuple[str, np.ndarray | None]:
    """``_source``, also through a Transpose of a 4-D map (batch axis kept) before the chain:
    then (map, order), order[k] the map's row-major index (in one sample) of feature k."""
    src = _source(g, tensor)
    p = g.producer(src)
    if p is None or not isinstance(p.op, ir.Transpose):
        return src, None
    x, perm = p.inputs[0], p.op.perm
    shape = g.tensor(x).shape
    if len(shape) != 4 or perm[0] != 0:
        return src, None  # rejected by the final check
    order = np.arange(int(np.prod(shape[1:]))).reshape(shape[1:])
    return x, order.transpose([i - 1 for i in perm[1:]]).reshape(-1)


def _to_dense(g: ir.Graph, node: ir.Node) -> None:
    b = g.const(node, "B").astype(np.float64)
    op = node.op
    if isinstance(op, ir.MatMul):
        weight, bias = b, np.zeros(b.shape[1])
    else:
        assert isinstance(op, ir.Gemm)
        weight = (b.T if op.trans_b else b) * op.alpha
        k, n = weight.shape
        m = g.tensor(node.inputs[0]).size // k
        if op.trans_a and m > 1:
            raise UnsupportedError(f"node {node.name!r} (Gemm): transA=1 on an activation input "
                                   f"with M={m} rows needs a transpose, which is not supported")
        bias = np.zeros(n)
        if node.const_name("C") is not None:
            c = np.broadcast_to(g.const(node, "C").astype(np.float64), (m, n))
            if not (c == c[0]).all():
                raise UnsupportedError(f"node {node.name!r} (Gemm): C varies along M; only a "
                                       "bias broadcastable to [N] is supported")
            bias = op.beta * c[0]
    src, order = _flat_source(g, node.inputs[0])
    shape = g.tensor(src).shape
    if order is not None:  # flattened after a Transpose: weight row k reads src[order[k]]
        if weight.shape[0] != order.size or g.tensor(node.inputs[0]).size != g.tensor(src).size:
            raise UnsupportedError(
                f"node {node.name!r} ({op.kind}): reads the transposed map {src!r} "
                f"{list(shape)} as rows of {weight.shape[0]}; only a Flatten of whole maps "
                f"(to [N, {order.size}]) before a Gemm/MatMul is supported")
        weight = weight[np.argsort(order)]
    if src in g.inputs or len(shape) != 4 or shape[1] == 1 or shape[2] * shape[3] == 1:
        # the graph input streams in row-major (ONNX) order, as for MLPs; with C = 1 or
        # H = W = 1 the NCHW and NHWC orders agree
        _dense(g, node, weight, bias, inputs=(src,) if order is not None else None)
        return
    n, c, h, w = shape
    if weight.shape[0] != c * h * w or g.tensor(node.inputs[0]).size != n * c * h * w:
        raise UnsupportedError(
            f"node {node.name!r} ({op.kind}): reads the feature map {src!r} {list(shape)} as "
            f"rows of {weight.shape[0]}; only a Flatten of whole [C, H, W] maps (to "
            f"[N, {c * h * w}]) before a Gemm/MatMul is supported")
    conv = ir.Conv(kernel=(h, w), strides=(1, 1))
    _conv(g, node, conv, weight.T.reshape(-1, c, h, w), bias, inputs=(src,))


def _pool_to_conv(g: ir.Graph, node: ir.Node) -> None:
    """AvgPool / GlobalAvgPool -> a depthwise Conv of weight 1 / window size."""
    op = node.op
    _, c, h, w = g.tensor(node.inputs[0]).shape
    if isinstance(op, ir.GlobalAvgPool):
        conv = ir.Conv(kernel=(h, w), group=c)
    else:
        assert isinstance(op, ir.AvgPool)
        if not op.count_include_pad and any(op.pads):
            raise UnsupportedError(f"node {node.name!r} (AvgPool): count_include_pad=0 with pads "
                                   f"{list(op.pads)} divides border windows by fewer elements; "
                                   "only count_include_pad=1 or zero pads are supported")
        conv = ir.Conv(kernel=op.kernel, strides=op.strides, pads=op.pads, group=c)
    kh, kw = conv.kernel
    _conv(g, node, conv, np.full((c, 1, kh, kw), 1.0 / (kh * kw)), np.zeros(c))


def _alone(g: ir.Graph, node: ir.Node) -> ir.Node | None:
    """The producer of ``node``'s input when ``node`` is its only reader, else None."""
    src = node.inputs[0]
    p = g.producer(src)
    if p is None or g.consumers(src) != [node.name] or src in g.outputs:
        return None
    return p


def _channels(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A constant broadcast along axis 1 of ``shape`` only, as a [C] vector; else None."""
    dims = list(c.shape)
    if len(dims) > len(shape) or len(shape) < 2:
        return None
    full = [1] * (len(shape) - len(dims)) + dims
    if full[0] != 1 or any(d != 1 for d in full[2:]) or full[1] not in (1, shape[1]):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (shape[1],))


def _fuse_add(g: ir.Graph, node: ir.Node) -> None:
    """Fold a constant Add into the bias of the Dense/Conv before it (when it is alone)."""
    p = _alone(g, node)
    out = g.tensor(node.outputs[0]).shape
    c = g.const(node, "B")
    if isinstance(p, ir.Node) and isinstance(p.op, ir.Dense) and not p.op.relu:
        bias = g.const(p, "bias")
        if g.tensor(p.outputs[0]).shape != out or c.ndim > len(out) \
                or any(d != 1 for d in c.shape[:-1]) or c.size not in (1, bias.size):
            return
    elif isinstance(p, ir.Node) and isinstance(p.op, ir.Conv) and p.op.act == "none":
        per = _channels(c, out)
        if per is None:
            return
        c = per
    else:
        return
    # each Dense/Conv owns its bias constant (made here), so it is updated in place
    bias = g.const(p, "bias")
    g.add_const(p.const_name("bias"), (bias + c.reshape(-1)).astype(np.float32))
    g.remove_node(node.name, forward=True)


def _batchnorm(g: ir.Graph, node: ir.Node) -> None:
    """Fold y = x * s + t (s = scale / sqrt(var + eps)) into the layer before, or make it a
    layer of its own: a depthwise 1x1 Conv on [N, C, H, W], a diagonal Dense on [N, C]."""
    scale, mean, var, beta = (g.const(node, r).astype(np.float64)
                              for r in ("scale", "mean", "var", "bias"))
    s = scale / np.sqrt(var + node.op.epsilon)
    t = beta - mean * s
    shape = g.tensor(node.inputs[0]).shape
    p = _alone(g, node)
    if p is not None and isinstance(p.op, ir.Conv) and p.op.act == "none":
        w = g.const(p, "weight").astype(np.float64)
        _conv(g, p, p.op, w * s[:, None, None, None], g.const(p, "bias") * s + t)
    elif (p is not None and isinstance(p.op, ir.Dense) and not p.op.relu and len(shape) == 2
          and g.const(p, "weight").shape[1] == s.size):
        _dense(g, p, g.const(p, "weight") * s, g.const(p, "bias") * s + t)
    elif len(shape) == 4:
        c = shape[1]
        _conv(g, node, ir.Conv(group=c), s.reshape(c, 1, 1, 1), t)
        return
    elif len(shape) == 2:
        _dense(g, node, np.diag(s), t)
        return
    else:
        return
    g.remove_node(node.name, forward=True)


def _bounds(op: ir.Op) -> tuple[float, float]:
    if isinstance(op, ir.Conv):
        return {"none": _NO_ACT, "relu": (0.0, np.inf), "leaky": _NO_ACT}.get(op.act, op.clip)
    if isinstance(op, ir.Dense):
        return (0.0, np.inf) if op.relu else _NO_ACT
    if isinstance(op, ir.AddAct):
        return (0.0, np.inf) if op.act == "relu" else _NO_ACT
    return (0.0, np.inf) if isinstance(op, ir.Relu) else (op.lo, op.hi)


def _with_act(op: ir.Conv, lo: float, hi: float) -> ir.Conv:
    if (lo, hi) == _NO_ACT:
        return dataclasses.replace(op, act="none", clip=ir.Conv.clip)
    if (lo, hi) == (0.0, np.inf):
        return dataclasses.replace(op, act="relu", clip=ir.Conv.clip)
    return dataclasses.replace(op, act="clip", clip=(float(lo), float(hi)))


def _fuse_act(g: ir.Graph, node: ir.Node) -> None:
    """Fuse a Relu/Clip into the Conv/Dense/AddAct before it, also through one MaxPool (a
    monotonic activation commutes with max; MaxPool padding never wins the max). Only when the
    node is the layer's (and the MaxPool's) only reader: a residual branch may read it too."""
    lo, hi = _bounds(node.op)
    a, b = _range(g, node.inputs[0])
    if (max(a, lo), min(b, hi)) == (a, b) and a <= b:  # already as tight: drop the node
        g.remove_node(node.name, forward=True)
        return
    layer = _alone(g, node)
    if layer is not None and isinstance(layer.op, ir.MaxPool):
        layer = _alone(g, layer)
    if layer is None or not isinstance(layer.op, _LAYERS):
        return
    a, b = _bounds(layer.op)
    new_lo, new_hi = min(max(a, lo), hi), max(min(b, hi), lo)  # clip(clip(x, a, b), lo, hi)
    if isinstance(layer.op, ir.Dense | ir.AddAct):
        if (new_lo, new_hi) != (0.0, np.inf):
            return
        op = ir.Dense(relu=True) if isinstance(layer.op, ir.Dense) else ir.AddAct(act="relu")
        g.replace_node(dataclasses.replace(layer, op=op))
    else:
        g.replace_node(dataclasses.replace(layer, op=_with_act(layer.op, new_lo, new_hi)))
    g.remove_node(node.name, forward=True)


def _fuse_leaky(g: ir.Graph, node: ir.Node) -> None:
    """Fuse a LeakyRelu/PRelu (slope >= 0, so monotonic: it commutes with a MaxPool) into the
    Conv/Dense/AddAct before it, which gets act "leaky" and const 'alpha' [C] (the slope per
    channel, axis 1); when it cannot fuse (another reader, a pool between, ...) it becomes a
    layer of its own: a depthwise 1x1 Conv of weight 1 on [N, C, H, W], a diagonal Dense on
    [N, C]. Any other rank stays (and is rejected by name)."""
    shape = g.tensor(node.inputs[0]).shape
    if len(shape) not in (2, 4):
        return
    c = shape[1]
    slope = g.const(node, "slope") if node.const_name("slope") else np.array([node.op.alpha])
    alpha = np.broadcast_to(np.asarray(slope, np.float64).reshape(-1), (c,))
    layer = _alone(g, node)
    if layer is not None and isinstance(layer.op, ir.MaxPool):
        layer = _alone(g, layer)
    fused = None
    if layer is not None and isinstance(layer.op, ir.Conv) and layer.op.act == "none":
        fused = dataclasses.replace(layer.op, act="leaky")
    elif (layer is not None and isinstance(layer.op, ir.Dense) and not layer.op.relu
          and not layer.op.leaky and len(g.tensor(layer.outputs[0]).shape) == 2):
        fused = ir.Dense(leaky=True)
    elif layer is not None and isinstance(layer.op, ir.AddAct) and layer.op.act == "none":
        fused = ir.AddAct(act="leaky")
    if fused is not None:
        g.replace_node(dataclasses.replace(layer, op=fused, consts=layer.consts + (
            ("alpha", _new_const(g, f"{layer.name}.alpha", alpha)),)))
        g.remove_node(node.name, forward=True)
        return
    if len(shape) == 4:
        _conv(g, node, ir.Conv(group=c, act="leaky"), np.ones((c, 1, 1, 1)), np.zeros(c))
    else:
        _dense(g, node, np.eye(c), np.zeros(c))
        g.replace_node(dataclasses.replace(g.node(node.name), op=ir.Dense(leaky=True)))
    node = g.node(node.name)
    g.replace_node(dataclasses.replace(node, consts=node.consts + (
        ("alpha", _new_const(g, f"{node.name}.alpha", alpha)),)))


def _table_ready(g: ir.Graph, node: ir.Node) -> bool:
    """Whether a table activation's input comes from a layer without activation that it alone
    reads (Quantize fuses the table into that layer's requantizer, whose code indexes it)."""
    p = _alone(g, node)
    if p is None:
        return False
    if isinstance(p.op, ir.Conv | ir.AddAct):
        return p.op.act == "none"
    return (isinstance(p.op, ir.Dense) and not p.op.relu and not p.op.leaky
            and len(g.tensor(p.outputs[0]).shape) == 2)


def _table_input(g: ir.Graph, node: ir.Node) -> None:
    """Give a table activation (Sigmoid, HardSigmoid, HardSwish) a layer to fuse into: when its
    input is not a fresh layer output it reads alone, an identity layer is put before it (a
    depthwise 1x1 Conv of weight 1 on [N, C, H, W], a diagonal Dense on [N, C])."""
    if _table_ready(g, node):
        return
    shape = g.tensor(node.inputs[0]).shape
    if len(shape) not in (2, 4):
        return  # rejected by name
    c = shape[1]
    name, key = f"{node.name}.in", f"{node.inputs[0]}.{node.name}"
    g.add_tensor(ir.Tensor(key, shape))
    layer = ir.Node(name, ir.Identity(), node.inputs, (key,))
    g.add_node(layer)
    g.replace_node(dataclasses.replace(node, inputs=(key,)))
    if len(shape) == 4:
        _conv(g, layer, ir.Conv(group=c), np.ones((c, 1, 1, 1)), np.zeros(c))
    else:
        _dense(g, layer, np.eye(c), np.zeros(c))


def _range(g: ir.Graph, tensor: str) -> tuple[float, float]:
    """Bounds on ``tensor``'s values known from the activation that made it (seen through
    MaxPools, which only pick values); (-inf, inf) when unknown."""
    p = g.producer(tensor)
    while p is not None and isinstance(p.op, ir.MaxPool):
        p = g.producer(p.inputs[0])
    if p is not None and isinstance(p.op, ir.Concat):  # the union of its inputs' ranges
        ranges = [_range(g, t) for t in p.inputs]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)
    if p is None or not isinstance(p.op, _LAYERS + (ir.Relu, ir.Clip)):
        return _NO_ACT
    return _bounds(p.op)


def _non_negative(g: ir.Graph, tensor: str) -> bool:
    p = g.producer(tensor)
    if p is None:
        return False
    if isinstance(p.op, ir.MaxPool | ir.Pad):
        return _non_negative(g, p.inputs[0])
    return isinstance(p.op, _LAYERS + (ir.Relu, ir.Clip)) and _bounds(p.op)[0] >= 0


def _empty_window(op: ir.MaxPool, shape: tuple[int, ...]) -> bool:
    """Whether some window of ``op`` on a [N, C, H, W] input holds padding only."""
    for axis in (0, 1):
        size, k, s, d = shape[2 + axis], op.kernel[axis], op.strides[axis], op.dilations[axis]
        a, b = op.pads[axis], op.pads[axis + 2]
        for i in range(numerics.conv_out(size, k, s, a, b, d)):
            taps = i * s - a + d * np.arange(k)
            if not ((taps >= 0) & (taps < size)).any():
                return True
    return False


def _fold_pad(g: ir.Graph, node: ir.Node) -> None:
    """Add a zero Pad's pads to every Conv/MaxPool reading it; a MaxPool excludes its padding
    from the max, so it takes the Pad's zeros only when its input is non-negative."""
    readers = [g.node(c) for c in g.consumers(node.outputs[0])]
    if not readers or node.outputs[0] in g.outputs:
        return
    for r in readers:
        if not isinstance(r.op, ir.Conv | ir.MaxPool):
            return
        if isinstance(r.op, ir.MaxPool):
            pads = tuple(a + b for a, b in zip(node.op.pads, r.op.pads, strict=True))
            if not _non_negative(g, node.inputs[0]) or _empty_window(
                    dataclasses.replace(r.op, pads=pads), g.tensor(node.inputs[0]).shape):
                raise UnsupportedError(
                    f"node {node.name!r} (Pad): cannot fold into MaxPool {r.name!r}: zero "
                    "padding equals MaxPool padding only on a non-negative input (after a "
                    "ReLU) and when no window lies wholly in the padding")
    for r in readers:
        pads = tuple(a + b for a, b in zip(node.op.pads, r.op.pads, strict=True))
        g.replace_node(dataclasses.replace(
            r, op=dataclasses.replace(r.op, pads=pads),
            inputs=tuple(node.inputs[0] if i == node.outputs[0] else i for i in r.inputs)))
    g.remove_node(node.name)
    g.tensors.pop(node.outputs[0], None)


def _check_batch(g: ir.Graph, node: ir.Node) -> None:
    """A layer over feature maps runs one image: the tiler and the sequencer walk one [H, W]
    map, so a batch of maps would be computed by the golden model but not by the hardware (a
    Dense takes a batch as its rows)."""
    if isinstance(node.op, ir.Input | ir.Dense):
        return
    for t in node.inputs:
        shape = g.tensor(t).shape
        if len(shape) == 4 and shape[0] > 1:
            raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): batch {shape[0]} of "
                                   f"{list(shape)}: layers over feature maps run one image at "
                                   "a time; export with batch 1 (a symbolic batch is taken as "
                                   "1)")


def _check_concat(g: ir.Graph, node: ir.Node) -> None:
    """A Concat's inputs agree in every dimension but the channels (axis 1), which add up to
    the output's (a Gemm made a Conv may have made one input 4-D)."""
    shapes = [g.tensor(t).shape for t in node.inputs]
    out = g.tensor(node.outputs[0]).shape
    rest = {(len(sh), sh[:1] + sh[2:]) for sh in [*shapes, out]}
    if len(rest) != 1 or len(out) not in (2, 4) or sum(sh[1] for sh in shapes) != out[1]:
        raise UnsupportedError(f"node {node.name!r} (Concat): after canonicalization its inputs "
                               f"are {[list(sh) for sh in shapes]} and its output {list(out)}; "
                               "a Concat needs inputs that differ only in channels (axis 1)")


def _check_add(g: ir.Graph, node: ir.Node) -> None:
    """An AddAct's inputs and output keep one shape (a Gemm made a Conv may have become 4-D)."""
    shapes = [g.tensor(t).shape for t in (*node.inputs, *node.outputs)]
    if len(set(shapes)) != 1:
        raise UnsupportedError(f"node {node.name!r} (AddAct): after canonicalization its inputs "
                               f"are {list(shapes[0])} and {list(shapes[1])} and its output "
                               f"{list(shapes[2])}; a residual Add needs one shape for all three")
