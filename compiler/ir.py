"""The IR's vocabulary: tensors, typed op values, nodes, and the Graph wrapper.

This module owns the IR. Every other module reads and rewrites the network through ``Graph``;
nothing else touches the underlying ``networkx.DiGraph``.

- A *tensor* is an edge value: a name, a static shape and a dtype, plus, once quantized, its
  fixed-point format (``QFormat``).
- A *node* holds one frozen op value (a dataclass per op kind), the names of its activation
  inputs and outputs, and the roles of its constant tensors (``{"weight": "fc1.weight"}``).
- Constants (weights, biases, integer parameters) live in one table, ``Graph.consts``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from edgehls.errors import PassError

# --------------------------------------------------------------------------------------------
# Tensors


@dataclass(frozen=True)
class QFormat:
    """Format of an integer tensor: value = q * scale, q in [lo, hi].

    Power-of-two scales (the default): scale = 2**-frac. ``real`` set (``--scale mult``, or a
    quantized ONNX model's own scale): scale = real, and frac is only its log2, rounded, for
    display. ``zero_point`` is an imported tensor's ONNX zero point z: the IR, the golden model
    and the hardware streams hold q = q_onnx - z (so arithmetic stays symmetric and padding is
    0); only the range moves: lo/hi are the ``bits``-wide range minus z.
    """

    bits: int
    signed: bool
    frac: int
    real: float | None = None
    zero_point: int = 0

    @property
    def lo(self) -> int:
        return (-(1 << (self.bits - 1)) if self.signed else 0) - self.zero_point

    @property
    def hi(self) -> int:
        return ((1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1) \
            - self.zero_point

    @property
    def scale(self) -> float:
        return float(self.real) if self.real is not None else float(2.0**-self.frac)

    @property
    def dtype(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    def stream(self, signed_only: bool = False) -> tuple[int, bool]:
        """(width, signed) of the integer on a stream: ``bits`` and ``signed``, but the signed
        width of [lo, hi] where a zero point moved the range (or ``signed_only`` asks for a
        signed element, as the input stream, which the hardware sign-extends, does)."""
        if self.zero_point == 0 and (self.signed or not signed_only):
            return self.bits, self.signed
        return max(self.hi.bit_length(), (-self.lo - 1).bit_length()) + 1, True

    def describe(self) -> str:
        scale = f"scale 2^{-self.frac}" if self.real is None else f"scale {self.real:.6g}"
        return f"{self.dtype} {scale}" + (f" zp {self.zero_point}" if self.zero_point else "")


@dataclass(frozen=True)
class QImport:
    """What a quantized ONNX model fixes besides its tensors' QFormats (which the frontend sets
    on the tensors): the format it came in ("QDQ", "QOperator", "QONNX"), and per layer, by node
    name, its weights' scale per output channel (one value: per tensor) and bit width."""

    source: str
    weights: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Tensor:
    """An activation tensor (an IR edge): static shape, element type, optional quant format."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    q: QFormat | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class ModelTensor:
    """A graph input or output as the ONNX model declares it, for the IR tensor standing for it
    (``Graph.model_io``): the model's name and shape, and how the IR tensor's data maps to it:
    ``model = ir.transpose(perm).reshape(shape)`` per sample (perm () = identity). Canonicalize
    may give the IR tensor another name (a removed final Flatten/Identity/fused Relu), another
    shape (a Conv1d's [N, C, 1, L], a Gemm made a Conv's [N, K, 1, 1]) or another layout (an
    absorbed input Transpose, a dropped output Transpose to NHWC); golden/ and manifest.json
    use the model's."""

    name: str
    shape: tuple[int, ...]
    perm: tuple[int, ...] = ()

    def from_ir(self, samples: np.ndarray) -> np.ndarray:
        """[S, *ir_shape] -> [S, *shape]."""
        a = np.asarray(samples)
        if self.perm:
            a = a.transpose(0, *(p + 1 for p in self.perm))
        return a.reshape(a.shape[0], *self.shape)


# --------------------------------------------------------------------------------------------
# Ops: one frozen dataclass per kind. ``kind`` is the name printed by `edgehls inspect`.


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str] = "Op"

    def describe(self) -> str:
        fields = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)]
        return f"{self.kind}({', '.join(fields)})"


@dataclass(frozen=True)
class Input(Op):
    """A graph input; produces one tensor and has no inputs.

    ``perm`` is empty, or the permutation of a Transpose the ONNX model applied to this input
    and canonicalization absorbed: the tensor is then ``onnx_input.transpose(perm)``, and data
    in the ONNX model's layout is converted with ``golden.model_samples``."""

    kind: ClassVar[str] = "Input"
    perm: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"Input(perm={self.perm})" if self.perm else "Input()"


@dataclass(frozen=True)
class Gemm(Op):
    """ONNX Gemm: Y = alpha * A' @ B' + beta * C; consts 'B' and optional 'C'."""

    kind: ClassVar[str] = "Gemm"
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    trans_b: bool = False


@dataclass(frozen=True)
class MatMul(Op):
    """ONNX MatMul of an activation by a constant 'B' ([K, N])."""

    kind: ClassVar[str] = "MatMul"


@dataclass(frozen=True)
class Add(Op):
    """ONNX Add of an activation and a constant 'B' (broadcast), e.g. a MatMul's bias."""

    kind: ClassVar[str] = "Add"


@dataclass(frozen=True)
class Relu(Op):
    kind: ClassVar[str] = "Relu"


@dataclass(frozen=True)
class LeakyRelu(Op):
    """ONNX LeakyRelu (y = x < 0 ? alpha * x : x), and PRelu with a constant slope: then const
    'slope' [C] (per channel, axis 1) replaces ``alpha``. Canonicalization fuses it into the
    layer before (``act="leaky"``, const 'alpha' [N]) or makes it an identity layer."""

    kind: ClassVar[str] = "LeakyRelu"
    alpha: float = 0.01


@dataclass(frozen=True)
class TableAct(Op):
    """Sigmoid, HardSigmoid (``alpha``, ``beta``) or HardSwish: ``fn`` one of
    ``numerics.TABLE_FUNCTIONS``. Quantize fuses it into the layer before it as a lookup table
    (const 'lut' of that layer: ``numerics.build_table``)."""

    kind: ClassVar[str] = "TableAct"
    fn: str = "sigmoid"
    alpha: float = 0.2
    beta: float = 0.5


@dataclass(frozen=True)
class Flatten(Op):
    kind: ClassVar[str] = "Flatten"
    axis: int = 1


@dataclass(frozen=True)
class Reshape(Op):
    """Reshape to a static shape (the frontend resolves the target shape)."""

    kind: ClassVar[str] = "Reshape"
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class Transpose(Op):
    """ONNX Transpose: output axis i is input axis ``perm[i]``. Canonicalization removes it."""

    kind: ClassVar[str] = "Transpose"
    perm: tuple[int, ...] = ()


@dataclass(frozen=True)
class Identity(Op):
    """Identity, and Dropout in inference mode."""

    kind: ClassVar[str] = "Identity"


@dataclass(frozen=True)
class Softmax(Op):
    kind: ClassVar[str] = "Softmax"
    axis: int = -1


@dataclass(frozen=True)
class Dense(Op):
    """Y = act(X @ weight + bias), X [M, K], consts 'weight' [K, N] and 'bias' [N] (float).

    The canonical compute layer every Gemm/MatMul(+Add)(+Relu) becomes. With ``leaky`` a
    LeakyRelu/PRelu is fused: const 'alpha' [N] is the negative slope per output column.
    """

    kind: ClassVar[str] = "Dense"
    relu: bool = False
    leaky: bool = False

    def describe(self) -> str:
        return f"Dense(relu={self.relu}{', leaky=True' if self.leaky else ''})"


@dataclass(frozen=True)
class QDense(Op):
    """Integer Dense layer: the numerics contract of ``edgehls.numerics.dense``.

    consts: 'weight' int [K, N] (wbits, symmetric), 'bias' int [N] at accumulator scale,
    'mult' int [N] and 'shift' int [N] (requantization, per output channel), and with a fused
    LeakyRelu/PRelu 'mult_n', 'shift_n' [N], used instead where acc + bias < 0
    (``numerics.leaky_params``), and with a fused table activation 'lut' [2**bits]
    (``numerics.lookup`` of the requantized code; the output tensor is then the table's). The
    input and
    output tensors carry their QFormat; ``lo``/``hi`` are the output clamp (ReLU folded in).
    With weight sharing, ``share_bits`` > 0 and const 'codebook' int [2**share_bits] holds the
    shared values: every entry of 'weight' is one of them, and the weight ROM stores indices.
    """

    kind: ClassVar[str] = "QDense"
    relu: bool
    wbits: int
    acc_bits: int
    lo: int
    hi: int
    share_bits: int = 0


# --- convolutional ops (NCHW semantics as in ONNX; the hardware streams NHWC) -----------------
Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # top, left, bottom, right


@dataclass(frozen=True)
class Conv(Op):
    """2-D convolution (Conv1d is H = 1). consts 'weight' [Cout, Cin/group, kh, kw] and 'bias'
    [Cout] (float). ``act`` is the fused activation: "none", "relu", "clip" (then ``clip``
    holds its float bounds) or "leaky" (const 'alpha' [Cout]: the negative slope per channel).
    Before canonicalization act is always "none"."""

    kind: ClassVar[str] = "Conv"
    kernel: Pair = (1, 1)
    strides: Pair = (1, 1)
    pads: Pads = (0, 0, 0, 0)
    dilations: Pair = (1, 1)
    group: int = 1
    act: str = "none"
    clip: tuple[float, float] = (0.0, 6.0)


@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference BatchNormalization; consts 'scale', 'bias', 'mean', 'var' [C]."""

    kind: ClassVar[str] = "BatchNorm"
    epsilon: float = 1e-5


@dataclass(frozen=True)
class MaxPool(Op):
    kind: ClassVar[str] = "MaxPool"
    kernel: Pair = (1, 1)
    strides: Pair = (1, 1)
    pads: Pads = (0, 0, 0, 0)
    dilations: Pair = (1, 1)


@dataclass(frozen=True)
class AvgPool(Op):
    """AveragePool; canonicalization turns it into a depthwise Conv of weight 1/(kh*kw)."""

    kind: ClassVar[str] = "AvgPool"
    kernel: Pair = (1, 1)
    strides: Pair = (1, 1)
    pads: Pads = (0, 0, 0, 0)
    count_include_pad: bool = False


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    """GlobalAveragePool, and ReduceMean over H, W with keepdims; becomes a depthwise Conv."""

    kind: ClassVar[str] = "GlobalAvgPool"


@dataclass(frozen=True)
class Clip(Op):
    kind: ClassVar[str] = "Clip"
    lo: float = float("-inf")
    hi: float = float("inf")


@dataclass(frozen=True)
class Pad(Op):
    """Constant zero padding of H and W only (folded into the following Conv or pool)."""

    kind: ClassVar[str] = "Pad"
    pads: Pads = (0, 0, 0, 0)


@dataclass(frozen=True)
class QConv(Op):
    """Integer Conv: the numerics contract of ``edgehls.numerics.conv``. consts as QDense's
    ('weight' int [Cout, Cin/group, kh, kw], 'bias', 'mult', 'shift', optional 'codebook')."""

    kind: ClassVar[str] = "QConv"
    kernel: Pair
    strides: Pair
    pads: Pads
    dilations: Pair
    group: int
    relu: bool
    wbits: int
    acc_bits: int
    lo: int
    hi: int
    share_bits: int = 0


@dataclass(frozen=True)
class QMaxPool(Op):
    """Integer MaxPool over the non-padding window elements; the scale is unchanged."""

    kind: ClassVar[str] = "QMaxPool"
    kernel: Pair
    strides: Pair
    pads: Pads
    dilations: Pair


@dataclass(frozen=True)
class AddAct(Op):
    """Residual Add of two activations of the same shape; ``act`` "none", "relu" or "leaky"
    (fused; "leaky" with const 'alpha' [C])."""

    kind: ClassVar[str] = "AddAct"
    act: str = "none"


@dataclass(frozen=True)
class QAdd(Op):
    """Integer residual Add: ``numerics.add``. consts 'wa', 'wb' (int [1], powers of two that
    align the inputs' scales), 'mult', 'shift' [C], and with a fused LeakyRelu 'mult_n',
    'shift_n' [C] (see QDense)."""

    kind: ClassVar[str] = "QAdd"
    relu: bool
    wbits: int
    acc_bits: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Concat(Op):
    """Concatenation of activations along the channel axis (axis 1 of [N, C, H, W] or [N, C]);
    the inputs agree in every other dimension."""

    kind: ClassVar[str] = "Concat"


@dataclass(frozen=True)
class QConcat(Op):
    """Integer channel Concat: ``numerics.concat``. consts 'mult', 'shift' [C_total] take each
    input channel's scale to the output's; ``lo``/``hi`` the output range. The hardware runs it
    as a 1 x 1 convolution over the inputs stacked along K with identity weights."""

    kind: ClassVar[str] = "QConcat"
    acc_bits: int
    lo: int
    hi: int


OPS: dict[str, type[Op]] = {
    c.kind: c for c in (Input, Gemm, MatMul, Add, Relu, LeakyRelu, TableAct, Flatten, Reshape,
                        Transpose,
                        Identity, Softmax, Dense, QDense, Conv, BatchNorm, MaxPool, AvgPool,
                        GlobalAvgPool, Clip, Pad, QConv, QMaxPool, AddAct, QAdd, Concat, QConcat)
}


# --------------------------------------------------------------------------------------------
# Nodes and the graph


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    consts: tuple[tuple[str, str], ...] = ()  # (role, constant name), in a fixed order

    def const_name(self, role: str) -> str | None:
        return dict(self.consts).get(role)


@dataclass
class Graph:
    """A DAG of ``Node``s over ``Tensor``s, with one constants table.

    Node order is topological with insertion order as the tie-break, so iteration (and
    everything generated from it) is deterministic.
    """

    name: str = "model"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts the report must state
    #: a quantized ONNX model's own quantization (edgehls.qimport); None for a float model
    imported: QImport | None = None
    #: IR input/output tensor name -> the ONNX model's tensor it stands for (set by
    #: Canonicalize; a tensor missing here is the model's own, as the IR has it)
    model_io: dict[str, ModelTensor] = field(default_factory=dict)
    _g: nx.DiGraph = field(default_factory=nx.DiGraph, repr=False)
    _seq: int = 0

    # -- tensors and constants ------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        self.tensors[t.name] = t
        return t

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def set_tensor(self, name: str, **changes: Any) -> Tensor:
        t = dataclasses.replace(self.tensors[name], **changes)
        self.tensors[name] = t
        return t

    def add_const(self, name: str, value: np.ndarray) -> str:
        arr = np.array(value, copy=True)
        arr.setflags(write=False)
        self.consts[name] = arr
        return name

    def const(self, node: Node, role: str) -> np.ndarray:
        key = node.const_name(role)
        if key is None:
            raise PassError(f"node {node.name!r} ({node.op.kind}) has no constant {role!r}")
        return self.consts[key]

    # -- nodes ---------------------------------------------------------------------------
    def add_node(self, node: Node) -> Node:
        if node.name in self._g:
            raise PassError(f"duplicate node name {node.name!r}")
        self._g.add_node(node.name, node=node, seq=self._seq)
        self._seq += 1
        self._rewire(node)
        return node

    def replace_node(self, node: Node) -> Node:
        """Replace the node of the same name (op, consts or wiring may change)."""
        seq = self._g.nodes[node.name]["seq"]
        self._g.remove_node(node.name)
        self._g.add_node(node.name, node=node, seq=seq)
        self._rewire(node)
        for other in list(self._g.nodes):
            if other != node.name:
                self._rewire(self.node(other))
        return node

    def remove_node(self, name: str, forward: bool = False) -> None:
        """Remove a node. With ``forward``, a one-in one-out node is bypassed: its consumers
        (and the graph outputs) read its input tensor instead of its output."""
        node = self.node(name)
        if forward:
            if len(node.inputs) != 1 or len(node.outputs) != 1:
                raise PassError(f"cannot bypass {name!r}: it is not one-in, one-out")
            src, dst = node.inputs[0], node.outputs[0]
            for c in self.consumers(dst):
                cn = self.node(c)
                self._g.nodes[c]["node"] = dataclasses.replace(
                    cn, inputs=tuple(src if i == dst else i for i in cn.inputs))
            self.outputs = [src if o == dst else o for o in self.outputs]
            if dst in self.model_io:  # the model's output keeps its name and shape
                self.model_io[src] = self.model_io.pop(dst)
            self.tensors.pop(dst, None)
        self._g.remove_node(name)
        for other in list(self._g.nodes):
            self._rewire(self.node(other))

    def model_tensor(self, name: str) -> ModelTensor:
        """The ONNX model's tensor that graph input/output ``name`` stands for."""
        return self.model_io.get(name) or ModelTensor(name, tuple(self.tensor(name).shape))

    def node(self, name: str) -> Node:
        return self._g.nodes[name]["node"]

    def __contains__(self, name: str) -> bool:
        return name in self._g

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def nodes(self) -> list[Node]:
        order = nx.lexicographical_topological_sort(
            self._g, key=lambda n: self._g.nodes[n]["seq"])
        return [self.node(n) for n in order]

    def producer(self, tensor: str) -> Node | None:
        for n in self._g.nodes:
            node = self.node(n)
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[str]:
        return [n.name for n in self.nodes() if tensor in n.inputs]

    def copy(self) -> Graph:
        g = Graph(self.name, dict(self.tensors), dict(self.consts), list(self.inputs),
                  list(self.outputs), list(self.notes), self.imported, dict(self.model_io))
        g._g = self._g.copy()
        g._seq = self._seq
        return g

    def _rewire(self, node: Node) -> None:
        for (u, v) in list(self._g.in_edges(node.name)):
            self._g.remove_edge(u, v)
        for t in node.inputs:
            p = self.producer(t)
            if p is not None:
                self._g.add_edge(p.name, node.name, tensor=t)

    # -- checks --------------------------------------------------------------------------
    def verify(self) -> None:
        """Acyclic; every tensor a node reads is produced once; shapes and consts exist."""
        if not nx.is_directed_acyclic_graph(self._g):
            raise PassError("IR has a cycle")
        produced: dict[str, str] = {}
        for node in self.nodes():
            for t in node.outputs:
                if t in produced:
                    raise PassError(f"tensor {t!r} produced by {produced[t]!r} and {node.name!r}")
                produced[t] = node.name
                if t not in self.tensors:
                    raise PassError(f"tensor {t!r} of node {node.name!r} has no shape")
            for _, c in node.consts:
                if c not in self.consts:
                    raise PassError(f"node {node.name!r} names missing constant {c!r}")
        for node in self.nodes():
            for t in node.inputs:
                if t not in produced:
                    raise PassError(f"node {node.name!r} reads {t!r}, which nothing produces")
        for t in self.inputs + self.outputs:
            if t not in produced:
                raise PassError(f"graph input/output {t!r} is not produced by any node")

    # -- printing ------------------------------------------------------------------------
    def summary(self) -> str:
        """The text `edgehls inspect` prints: one line per node, then totals."""
        lines = [f"graph {self.name}"]
        total = 0
        for node in self.nodes():
            params = sum(self.consts[c].size for _, c in node.consts)
            total += params
            ins = ", ".join(f"{t}{list(self.tensors[t].shape)}" for t in node.inputs)
            outs = ", ".join(
                f"{t}{list(self.tensors[t].shape)}"
                + (f" {self.tensors[t].q.describe()}" if self.tensors[t].q else "")
                for t in node.outputs)
            lines.append(f"  {node.name:<24} {node.op.describe():<40} ({ins}) -> {outs}"
                         + (f"  params={params}" if params else ""))
        lines.append(f"inputs: {', '.join(self.inputs)}  outputs: {', '.join(self.outputs)}")
        lines.append(f"nodes: {len(self._g)}  parameters: {total}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)
