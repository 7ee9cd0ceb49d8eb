"""Canonicalize: ONNX-level ops -> a chain of ``Input`` and ``Dense`` nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgehls import ir
from edgehls.errors import UnsupportedError

_WHY = {
    "Add": "only a constant bias broadcastable to [N] directly after a MatMul/Gemm "
           "(whose output nothing else reads) can be folded",
    "Relu": "a Relu must directly follow a MatMul/Gemm whose output nothing else reads",
    "Softmax": "only a final Softmax (producing the graph output) is supported",
}


@dataclass(frozen=True)
class Canonicalize:
    """Rewrite a frontend graph into ``Input -> Dense -> Dense ...``.

    Requires: a graph from ``edgehls.frontend.load`` (ONNX-level ops, float32 constants,
    static shapes). Guarantees: every node is ``Input`` or ``Dense`` with float consts 'weight'
    [K, N] and 'bias' [N]; nodes that do not reach the output are removed; Identity/Dropout,
    Flatten and Reshape (row-major reinterpretations of the stream) are bypassed; a final
    Softmax is dropped with a note (outputs are logits); Gemm/MatMul become Dense, a following
    constant Add folds into the bias and a following Relu into ``Dense(relu=True)``; unused
    constants are dropped; ``verify()`` passes. The input graph is not modified. Raises
    ``UnsupportedError`` naming any node that cannot be expressed.
    """

    def __call__(self, g: ir.Graph) -> ir.Graph:
        g = g.copy()
        _remove_dead(g)
        for node in _each(g, ir.Identity, ir.Flatten, ir.Reshape):
            _bypass(g, node)
        for node in _each(g, ir.Softmax):
            if node.outputs[0] in g.outputs and not g.consumers(node.outputs[0]):
                g.remove_node(node.name, forward=True)
                g.notes.append("final Softmax dropped from hardware: outputs are logits")
        for node in _each(g, ir.Gemm, ir.MatMul):
            _to_dense(g, node)
        for node in _each(g, ir.Add, ir.Relu):
            _fuse(g, node)
        for node in g.nodes():
            if not isinstance(node.op, (ir.Input, ir.Dense)):
                raise UnsupportedError(f"node {node.name!r} ({node.op.kind}): cannot be mapped "
                                       f"to a Dense layer: {_WHY.get(node.op.kind, 'unexpected')}")
        used = {c for node in g.nodes() for _, c in node.consts}
        g.consts = {k: v for k, v in g.consts.items() if k in used}
        g.verify()
        return g


def _each(g: ir.Graph, *kinds: type[ir.Op]) -> Iterator[ir.Node]:
    """The current version of each node of the given kinds, in order, while ``g`` changes."""
    for name in [n.name for n in g.nodes() if isinstance(n.op, kinds)]:
        if name in g:
            yield g.node(name)


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
    if dst in g.outputs and before != after:
        g.notes.append(f"output {dst!r}: {node.op.kind} {node.name!r} removed, the output "
                       f"stream {list(before)} is the row-major data of ONNX shape {list(after)}")
    g.remove_node(node.name, forward=True)


def _new_const(g: ir.Graph, name: str, value: np.ndarray) -> str:
    key, i = name, 0
    while key in g.consts:
        i += 1
        key = f"{name}_{i}"
    return g.add_const(key, np.asarray(value, dtype=np.float32))


def _dense(g: ir.Graph, node: ir.Node, weight: np.ndarray, bias: np.ndarray) -> None:
    consts = (("weight", _new_const(g, f"{node.name}.weight", weight)),
              ("bias", _new_const(g, f"{node.name}.bias", bias)))
    g.replace_node(ir.Node(node.name, ir.Dense(), node.inputs, node.outputs, consts))


def _to_dense(g: ir.Graph, node: ir.Node) -> None:
    b = g.const(node, "B").astype(np.float64)
    op = node.op
    if isinstance(op, ir.MatMul):
        _dense(g, node, b, np.zeros(b.shape[1]))
        return
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
            raise UnsupportedError(f"node {node.name!r} (Gemm): C varies along M; only a bias "
                                   "broadcastable to [N] is supported")
        bias = op.beta * c[0]
    _dense(g, node, weight, bias)


def _fuse(g: ir.Graph, node: ir.Node) -> None:
    """Fold an Add (bias) or a Relu into the Dense producing its input, when it is alone."""
    src = node.inputs[0]
    dense = g.producer(src)
    if dense is None or not isinstance(dense.op, ir.Dense):
        return
    if isinstance(node.op, ir.Relu) and dense.op.relu:  # relu(relu(x)) == relu(x)
        g.remove_node(node.name, forward=True)
        return
    if dense.op.relu or g.consumers(src) != [node.name] or src in g.outputs:
        return
    if isinstance(node.op, ir.Add):
        c, bias = g.const(node, "B"), g.const(dense, "bias")
        out = g.tensor(node.outputs[0]).shape
        if g.tensor(src).shape != out or c.ndim > len(out) or any(d != 1 for d in c.shape[:-1]) \
                or c.size not in (1, bias.size):
            return
        # each Dense owns its bias constant (made by _dense), so it is updated in place
        g.add_const(dense.const_name("bias"), (bias + c.reshape(-1)).astype(np.float32))
    g.remove_node(node.name, forward=True)
    if isinstance(node.op, ir.Relu):
        g.replace_node(dataclasses.replace(g.node(dense.name), op=ir.Dense(relu=True)))
