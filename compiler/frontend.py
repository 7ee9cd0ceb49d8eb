"""ONNX -> IR: load, check and shape-infer a model, then build an ``ir.Graph`` of ONNX-level ops.

Contract: the returned graph has one ``Input`` node, static float32 shapes on every activation
tensor, float32 constants in ``Graph.consts`` (roles 'B', 'C' for Gemm, 'B' for MatMul and Add),
and only the ops in ``SUPPORTED`` (Dropout becomes ``Identity``). Every problem with the file is
a ``ModelError``; every construct edgehls does not implement is an ``UnsupportedError`` naming
the node, its op and what is supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgehls import ir
from edgehls.errors import ModelError, OptionError, UnsupportedError

SUPPORTED = ("Add", "Dropout", "Flatten", "Gemm", "Identity", "MatMul", "Relu", "Reshape",
             "Softmax")
_PASS_THROUGH = ("Identity", "Dropout", "Flatten", "Reshape")


def load(path: str | Path, input_shape: dict[str, tuple[int, ...]] | None = None) -> ir.Graph:
    """Read, check and shape-infer ``path``; ``input_shape`` overrides ONNX input shapes."""
    path = Path(path)
    model = _read(path)
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, or C++ errors surfacing as other types
        raise ModelError(f"{path} fails onnx.checker: {_one_line(e)}") from e
    notes = _fix_input_shapes(model, input_shape or {})
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                  data_prop=True)
    except Exception as e:
        raise ModelError(f"{path} fails ONNX shape inference: {_one_line(e)}") from e
    g = _Builder(model).build(model.graph.name or path.stem)
    g.notes.extend(notes)
    return g


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _read(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelError(f"model file {path} {what}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # DecodeError for protobuf; text formats raise their own errors
        raise ModelError(f"{path} cannot be parsed as ONNX ({_one_line(e)})") from e
    if not model.HasField("graph") or model.ir_version == 0:
        raise ModelError(f"{path} cannot be parsed as ONNX (no graph or IR version)")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        raise ModelError(f"{path}: external data cannot be read: {_one_line(e)}") from e
    return model


def _real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in graph.initializer}
    return [v for v in graph.input if v.name not in inits]


def _fix_input_shapes(model: onnx.ModelProto, override: dict[str, tuple[int, ...]]) -> list[str]:
    """Apply ``override``, take a dynamic batch dimension as 1, reject other dynamic dims."""
    graph, notes = model.graph, []
    inputs = {v.name: v for v in _real_inputs(graph)}
    for name, dims in override.items():
        if name not in inputs:
            raise OptionError(f"--input-shape names {name!r}, but the model's inputs are: "
                              + ", ".join(inputs))
        if not dims or any(int(d) <= 0 for d in dims):
            raise OptionError(f"--input-shape {name}={dims}: dimensions must be positive")
        shape = inputs[name].type.tensor_type.shape
        shape.ClearField("dim")
        for d in dims:
            shape.dim.add().dim_value = int(d)
    if override:  # stale shapes would conflict with the new input shapes
        for out in graph.output:
            out.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    for name, v in inputs.items():
        tt = v.type.tensor_type
        if not tt.HasField("shape"):
            raise ModelError(f"input {name!r} has no shape: pass --input-shape {name}=D0,D1,...")
        dims = tt.shape.dim
        shown = ", ".join(str(d.dim_value) if d.dim_value > 0 else d.dim_param or "?"
                          for d in dims)
        bad = [i for i, d in enumerate(dims) if i > 0 and d.dim_value <= 0]
        if bad:
            raise ModelError(f"input {name!r} has dynamic dimension {bad[0]} (shape [{shown}]): "
                             f"edgehls needs static shapes, pass --input-shape {name}=D0,D1,...")
        if dims and dims[0].dim_value <= 0:
            sym = f"symbolic batch dimension {dims[0].dim_param!r}" if dims[0].dim_param \
                else "unknown batch dimension"
            notes.append(f"input {name!r}: {sym} taken as 1")
            dims[0].dim_value = 1
    return notes


class _Builder:
    """Walks the checked, shape-inferred ONNX graph and adds nodes to an ``ir.Graph``."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, onnx.TypeProto] = {
            v.name: v.type for v in [*self.graph.input, *self.graph.value_info,
                                     *self.graph.output]}
        self.g = ir.Graph()

    def build(self, name: str) -> ir.Graph:
        self.g.name = name
        inputs, outputs = _real_inputs(self.graph), list(self.graph.output)
        for kind, vals in (("input", inputs), ("output", outputs)):
            if len(vals) != 1:
                raise UnsupportedError(
                    f"model has {len(vals)} graph {kind}s ({', '.join(v.name for v in vals)}): "
                    f"edgehls supports exactly one graph {kind}")
        x = inputs[0]
        if x.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise UnsupportedError(f"input {x.name!r}: only float32 inputs are supported")
        self.g.add_node(ir.Node(self._unique(x.name), ir.Input(), (), (self._tensor(x.name),)))
        for index, node in enumerate(self.graph.node):
            self._node(node, index)
        out = outputs[0].name
        if out in self.consts:
            raise UnsupportedError(f"graph output {out!r} is a constant")
        self.g.inputs, self.g.outputs = [x.name], [out]
        return self.g

    def _unique(self, name: str) -> str:
        base, i = name, 0
        while name in self.g:
            i += 1
            name = f"{base}_{i}"
        return name

    def _tensor(self, name: str) -> str:
        tt = self.shapes[name].tensor_type if name in self.shapes else None
        if tt is None or not tt.HasField("shape") or any(d.dim_value <= 0 for d in tt.shape.dim):
            raise UnsupportedError(f"tensor {name!r} has no static shape after shape inference")
        self.g.add_tensor(ir.Tensor(name, tuple(int(d.dim_value) for d in tt.shape.dim)))
        return name

    def _const(self, name: str, role: str) -> tuple[str, str]:
        if name not in self.g.consts:
            self.g.add_const(name, np.asarray(self.consts[name], dtype=np.float32))
        return (role, name)

    def _node(self, node: onnx.NodeProto, index: int) -> None:
        op, attrs = node.op_type, {a.name: onnx.helper.get_attribute_value(a)
                                   for a in node.attribute}
        if op == "Constant" and node.domain in ("", "ai.onnx"):
            self.consts[node.output[0]] = _constant_value(node, attrs)
            return
        name = self._unique(node.name or f"{op}_{index}")
        where = f"node {name!r} ({op})"
        if op not in SUPPORTED or node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"{where}: op not supported; supported ops: "
                                   + ", ".join(SUPPORTED))
        ins = [i for i in node.input if i]
        acts = [i for i in ins if i not in self.consts]
        if op in _PASS_THROUGH and not acts:  # e.g. PyTorch's Identity on tied weights
            self.consts[node.output[0]] = _fold(op, attrs, [self.consts[i] for i in ins])
            return
        if not acts:
            raise UnsupportedError(f"{where}: every input is a constant; constant folding of "
                                   f"{op} is not supported")
        if op in ("Gemm", "MatMul", "Add"):
            self._check_operands(op, ins, acts, where)
        consts: tuple[tuple[str, str], ...] = ()
        if op == "Gemm":
            typed: ir.Op = ir.Gemm(float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0)),
                                   bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0)))
            consts = tuple(self._const(c, r) for c, r in zip(ins[1:], "BC", strict=False))
        elif op in ("MatMul", "Add"):
            b = next(i for i in ins if i not in acts)
            if op == "MatMul" and self.consts[b].ndim != 2:
                raise UnsupportedError(f"{where}: the constant input must be 2-D [K, N], got "
                                       f"shape {list(self.consts[b].shape)}")
            typed, consts = (ir.MatMul() if op == "MatMul" else ir.Add()), (self._const(b, "B"),)
        elif op == "Reshape":
            if ins[1] not in self.consts:
                raise UnsupportedError(f"{where}: the target shape must be a constant")
            typed = ir.Reshape(_reshape(self.g.tensor(ins[0]).shape, self.consts[ins[1]],
                                        bool(attrs.get("allowzero", 0))))
        elif op == "Flatten":
            rank = len(self.g.tensor(ins[0]).shape)
            typed = ir.Flatten(int(attrs.get("axis", 1)) % max(rank, 1))
        elif op == "Softmax":
            self._check_final(node, where)
            typed = ir.Softmax(int(attrs.get("axis", -1)))
        elif op == "Dropout":
            self._check_dropout(node, where)
            typed = ir.Identity()
        else:
            typed = ir.Relu() if op == "Relu" else ir.Identity()
        self.g.add_node(ir.Node(name, typed, (acts[0],), (self._tensor(node.output[0]),), consts))

    @staticmethod
    def _check_operands(op: str, ins: list[str], acts: list[str], where: str) -> None:
        if len(acts) > 1:
            raise UnsupportedError(f"{where}: activation x activation is not supported; "
                                   f"the {'second' if op == 'Add' else 'weight'} input must be "
                                   "a constant")
        if op != "Add" and acts[0] != ins[0]:
            raise UnsupportedError(f"{where}: the first input must be the activation and the "
                                   "weights constant (constant x activation is not supported)")

    def _check_dropout(self, node: onnx.NodeProto, where: str) -> None:
        if len(node.input) > 2 and node.input[2]:
            mode = self.consts.get(node.input[2])
            if mode is None or bool(np.asarray(mode).any()):
                raise UnsupportedError(f"{where}: training_mode must be a constant False "
                                       "(edgehls compiles inference only)")
        if len(node.output) > 1 and node.output[1] and (
                node.output[1] in {o.name for o in self.graph.output}
                or any(node.output[1] in n.input for n in self.graph.node)):
            raise UnsupportedError(f"{where}: the dropout mask output is used; not supported")

    def _check_final(self, node: onnx.NodeProto, where: str) -> None:
        """A Softmax must reach the graph output through pass-through ops only."""
        outputs = {o.name for o in self.graph.output}
        frontier = [node.output[0]]
        while frontier:
            t = frontier.pop()
            users = [n for n in self.graph.node if t in n.input]
            if any(n.op_type not in _PASS_THROUGH for n in users) or not users and t not in outputs:
                raise UnsupportedError(f"{where}: only a final Softmax (producing the graph "
                                       "output) is supported")
            frontier += [n.output[0] for n in users]


def _constant_value(node: onnx.NodeProto, attrs: dict) -> np.ndarray:
    for key in ("value_float", "value_int", "value_floats", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key])
    if "value" not in attrs:
        raise UnsupportedError(f"node {node.name!r} (Constant): only tensor and numeric "
                               f"constants are supported, not {', '.join(attrs)}")
    return numpy_helper.to_array(attrs["value"])


def _fold(op: str, attrs: dict, values: list[np.ndarray]) -> np.ndarray:
    x = values[0]
    if op == "Reshape":
        return x.reshape(_reshape(x.shape, values[1], bool(attrs.get("allowzero", 0))))
    if op == "Flatten":
        axis = int(attrs.get("axis", 1)) % max(x.ndim, 1)
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    return x


def _reshape(shape: tuple[int, ...], target: np.ndarray, allowzero: bool) -> tuple[int, ...]:
    """Resolve a Reshape target (0 = copy the input dim unless allowzero, -1 = infer)."""
    dims = [int(shape[i]) if d == 0 and not allowzero else int(d)
            for i, d in enumerate(np.asarray(target).reshape(-1))]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return tuple(dims)
