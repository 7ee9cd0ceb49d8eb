"""ONNX -> IR: load, check and shape-infer a model, then build an ``ir.Graph`` of ONNX-level ops.

Contract: the returned graph has one ``Input`` node, static float32 shapes on every activation
tensor, float32 constants in ``Graph.consts`` (roles 'B', 'C' for Gemm, 'B' for MatMul and Add,
'weight' and optional 'bias' for Conv, 'scale', 'bias', 'mean', 'var' for BatchNorm), and only
the ops in ``SUPPORTED``, mapped to IR ops as follows: Dropout becomes ``Identity``;
GlobalAveragePool and ReduceMean over H, W become ``GlobalAvgPool``; GlobalMaxPool becomes a
``MaxPool`` over the whole map; Mul by a per-channel constant becomes a ``BatchNorm`` (mean 0,
var 1, epsilon 0, bias 0); Add (or a two-input Sum) of two activations of the same static
shape becomes ``AddAct`` (the residual Add: the graph is a DAG, a tensor may have several
readers), of an activation and a constant an ``Add`` with const 'B'; a one-input Sum is an
``Identity``; a Cast of a constant (float16 or float64 weights cast to float) is folded;
a Transpose becomes ``Transpose`` with its ``perm`` resolved (default: reversed
axes; on a 1-D model, a rank-3 perm mapped to the 4-D tensors) for canonicalization to remove.
Window attributes are resolved: ``auto_pad`` into explicit pads (top, left, bottom, right),
defaults filled in; a MaxPool's ``ceil_mode`` into extra bottom/right padding (the max excludes
padding; a window wholly in padding is rejected). A model whose Conv or pool reads a 3-D tensor
[N, C, L] is taken as 1-D: every rank-3 tensor becomes [N, C, 1, L] (H = 1) and Conv weights
[Cout, Cin/group, 1, k] (a note says so). Every problem with the file is a ``ModelError``;
every construct edgehls does not implement is an ``UnsupportedError`` naming the node, its op
and what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgehls import ir, numerics, qimport
from edgehls.errors import ModelError, OptionError, UnsupportedError

SUPPORTED = ("Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "Dropout",
             "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish",
             "Identity", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Pad", "PRelu", "ReduceMean",
             "Relu", "Reshape", "Sigmoid", "Softmax", "Sum", "Transpose")
_PASS_THROUGH = ("Identity", "Dropout", "Flatten", "Reshape")
_WINDOWED = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
_NOT_YET: dict[str, str] = {}
MAX_KERNEL = 11  # largest Conv kernel side the frontend accepts (a pool may span its map)


def load(path: str | Path, input_shape: dict[str, tuple[int, ...]] | None = None) -> ir.Graph:
    """Read, check and shape-infer ``path``; ``input_shape`` overrides ONNX input shapes."""
    path = Path(path)
    model = _read(path)
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, or C++ errors surfacing as other types
        raise ModelError(f"{path} fails onnx.checker: {_one_line(e)}") from e
    notes = _fix_input_shapes(model, input_shape or {})
    imported = qimport.lower(model)
    if imported is not None:
        model = imported.model
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                  data_prop=True)
    except Exception as e:
        raise ModelError(f"{path} fails ONNX shape inference: {_one_line(e)}") from e
    g = _Builder(model).build(model.graph.name or path.stem)
    g.notes.extend(notes)
    if imported is not None:
        for t, fmt in imported.formats.items():
            if t in g.tensors:
                g.set_tensor(t, q=fmt)
        g.imported = imported.info
        g.notes.extend(imported.notes)
        g.notes.append(f"quantized model ({imported.info.source}): its own scales and zero "
                       "points are implemented; integers are streamed as q - zero_point. "
                       "Outputs may differ from onnxruntime's by 1 LSB where a value lies within "
                       "rounding error of a half step: edgehls requantizes with a 16-bit "
                       "multiplier and rounds half up, onnxruntime multiplies in float32 and "
                       "rounds half to even")
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
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, onnx.TypeProto] = {
            v.name: v.type for v in [*self.graph.input, *self.graph.value_info,
                                     *self.graph.output]}
        self.g = ir.Graph()
        self.one_d = any(n.op_type in _WINDOWED and len(self._shape(n.input[0])) == 3
                         for n in self.graph.node)

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
        if self.one_d:
            self.g.notes.append("1-D model: every [N, C, L] tensor is taken as [N, C, 1, L] "
                                "(Conv1d and 1-D pools run as 2-D with H = 1)")
        for t in (x.name, out):  # as the model declares them (golden/, manifest.json)
            shape = tuple(self.g.tensor(t).shape)
            if self.one_d and len(shape) == 4 and shape[2] == 1:
                shape = (shape[0], shape[1], shape[3])
            self.g.model_io[t] = ir.ModelTensor(t, shape)
        return self.g

    def _unique(self, name: str) -> str:
        base, i = name, 0
        while name in self.g:
            i += 1
            name = f"{base}_{i}"
        return name

    def _shape(self, name: str) -> tuple[int, ...]:
        """The ONNX static shape of ``name`` (a constant's, or () when unknown)."""
        if name in self.consts:
            return tuple(self.consts[name].shape)
        tt = self.shapes[name].tensor_type if name in self.shapes else None
        if tt is None or not tt.HasField("shape"):
            return ()
        return tuple(int(d.dim_value) for d in tt.shape.dim)

    def _tensor(self, name: str) -> str:
        tt = self.shapes[name].tensor_type if name in self.shapes else None
        if tt is None or not tt.HasField("shape") or any(d.dim_value <= 0 for d in tt.shape.dim):
            raise UnsupportedError(f"tensor {name!r} has no static shape after shape inference")
        shape = self._shape(name)
        if self.one_d and len(shape) == 3:
            shape = (shape[0], shape[1], 1, shape[2])
        self.g.add_tensor(ir.Tensor(name, shape))
        return name

    def _const(self, name: str, role: str, value: np.ndarray | None = None) -> tuple[str, str]:
        if value is not None:  # a rewritten constant gets its own name
            base, i = f"{name}.{role}", 0
            name = base
            while name in self.g.consts:
                i += 1
                name = f"{base}_{i}"
            self.g.add_const(name, np.asarray(value, dtype=np.float32))
        elif name not in self.g.consts:
            self.g.add_const(name, np.asarray(self.consts[name], dtype=np.float32))
        return (role, name)

    def _node(self, node: onnx.NodeProto, index: int) -> None:
        op, attrs = node.op_type, {a.name: onnx.helper.get_attribute_value(a)
                                   for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        if op == "Constant" and node.domain in ("", "ai.onnx"):
            self.consts[node.output[0]] = _constant_value(node, attrs)
            return
        if op == "Cast" and node.domain in ("", "ai.onnx") and node.input[0] in self.consts:
            # weights stored as float16/float64 and cast to float before use: fold
            to = onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])
            self.consts[node.output[0]] = np.asarray(self.consts[node.input[0]]).astype(to)
            return
        name = self._unique(node.name or f"{op}_{index}")
        where = f"node {name!r} ({op})"
        if op not in SUPPORTED or node.domain not in ("", "ai.onnx"):
            why = f"{_NOT_YET[op]}; " if op in _NOT_YET and node.domain in ("", "ai.onnx") else ""
            raise UnsupportedError(f"{where}: {why or 'op not supported; '}supported ops: "
                                   + ", ".join(SUPPORTED))
        ins = [i for i in node.input if i]
        acts = [i for i in ins if i not in self.consts]
        if op in (*_PASS_THROUGH, "Transpose") and not acts:  # e.g. Identity on tied weights
            self.consts[node.output[0]] = _fold(op, attrs, [self.consts[i] for i in ins])
            return
        if not acts:
            raise UnsupportedError(f"{where}: every input is a constant; constant folding of "
                                   f"{op} is not supported")
        if op == "Sum":
            if len(ins) > 2:
                raise UnsupportedError(f"{where}: a Sum of {len(ins)} inputs is not supported; "
                                       "only one or two (write a chain of Adds)")
            op = "Add" if len(ins) == 2 else "Identity"
        if op == "Add" and len(acts) == 2:
            self._residual(node, name, acts, where)
            return
        if op == "Concat":
            self._concat(node, name, ins, acts, attrs, where)
            return
        if op in ("Gemm", "MatMul", "Add", "Mul"):
            self._check_operands(op, ins, acts, where)
        if op in ("Add", "Mul"):  # commutative: the activation first
            ins = [acts[0], *(i for i in ins if i != acts[0])]
        if op == "Reshape" and ins[1] not in self.consts:
            raise UnsupportedError(f"{where}: the target shape must be a constant")
        if len(acts) > 1 or acts[0] != ins[0]:
            raise UnsupportedError(f"{where}: only the first input may be an activation; the "
                                   "others must be constants")
        consts: tuple[tuple[str, str], ...] = ()
        typed: ir.Op
        if op in _CNN_OPS:
            typed, consts = getattr(self, f"_{op.lower()}")(node, attrs, ins, where)
        elif op == "Gemm":
            typed = ir.Gemm(float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0)),
                            bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0)))
            consts = tuple(self._const(c, r) for c, r in zip(ins[1:], "BC", strict=False))
        elif op in ("MatMul", "Add"):
            b = ins[1]
            if op == "MatMul" and self.consts[b].ndim != 2:
                raise UnsupportedError(f"{where}: the constant input must be 2-D [K, N], got "
                                       f"shape {list(self.consts[b].shape)}")
            typed, consts = (ir.MatMul() if op == "MatMul" else ir.Add()), (self._const(b, "B"),)
        elif op == "Reshape":
            typed = ir.Reshape(_reshape(self._shape(ins[0]), self.consts[ins[1]],
                                        bool(attrs.get("allowzero", 0))))
        elif op == "Transpose":
            typed = ir.Transpose(self._perm(attrs, ins[0], where))
        elif op == "Flatten":
            rank = len(self.g.tensor(ins[0]).shape)
            typed = ir.Flatten(int(attrs.get("axis", 1)) % max(rank, 1))
        elif op == "Softmax":
            self._check_final(node, where)
            rank = len(self._shape(ins[0]))
            axis = int(attrs.get("axis", -1 if self.opset >= 13 else 1))
            if self.opset < 13 and axis % rank != rank - 1:
                # before opset 13 Softmax flattens the input to 2-D at axis: only when axis is
                # the last one is that a softmax over one axis, the IR's
                raise UnsupportedError(
                    f"{where}: opset-{self.opset} Softmax over axes {axis % rank}.. of a "
                    f"rank-{rank} tensor is not supported; export with opset 13 or later, or "
                    "apply the softmax over the last axis")
            typed = ir.Softmax(3 if self.one_d and len(self._shape(ins[0])) == 3 and axis == 2
                               else axis)
        elif op == "Dropout":
            self._check_dropout(node, where)
            typed = ir.Identity()
        else:
            typed = ir.Relu() if op == "Relu" else ir.Identity()
        self.g.add_node(ir.Node(name, typed, (acts[0],), (self._tensor(node.output[0]),), consts))

    def _residual(self, node: onnx.NodeProto, name: str, acts: list[str], where: str) -> None:
        """Add of two activations: both must have the output's static shape (no broadcast)."""
        out = self._tensor(node.output[0])
        shapes = [self.g.tensor(t).shape for t in (*acts, out)]
        if len(set(shapes)) != 1:
            raise UnsupportedError(
                f"{where}: broadcasting between two activations is not supported (inputs "
                f"{list(shapes[0])} and {list(shapes[1])}, output {list(shapes[2])}); a residual "
                "Add needs both inputs of the same static shape")
        self.g.add_node(ir.Node(name, ir.AddAct(), tuple(acts), (out,)))

    def _concat(self, node: onnx.NodeProto, name: str, ins: list[str], acts: list[str],
                attrs: dict, where: str) -> None:
        """Concat of activations along the channel axis (1) of [N, C, H, W], [N, C, L] or
        [N, C]; constant inputs and other axes are rejected."""
        if len(acts) != len(ins):
            raise UnsupportedError(f"{where}: a constant input is not supported; every input "
                                   "must be an activation")
        rank = len(self._shape(ins[0]))
        axis = int(attrs.get("axis", 1))
        if rank not in (2, 3, 4) or axis % rank != 1 or (rank == 3 and not self.one_d):
            raise UnsupportedError(f"{where}: only a Concat along the channel axis (1) of "
                                   f"[N, C, H, W], [N, C, L] or [N, C] is supported, got axis "
                                   f"{axis} of rank {rank}")
        out = self._tensor(node.output[0])
        self.g.add_node(ir.Node(name, ir.Concat(), tuple(ins), (out,)))

    # -- convolutional ops: each returns (op, consts) ------------------------------------------
    def _conv(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
              ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        w = np.asarray(self.consts[ins[1]], dtype=np.float32)
        sp = len(self._shape(ins[0])) - 2
        if sp not in (1, 2) or w.ndim != sp + 2:
            raise UnsupportedError(f"{where}: only 1-D and 2-D convolutions are supported "
                                   f"(input {list(self._shape(ins[0]))})")
        win = self._window(node, attrs, tuple(w.shape[2:]), where)
        if sp == 1:
            w = w[:, :, None, :]
        consts = [self._const(ins[1], "weight", w if sp == 1 else None)]
        if len(ins) > 2:
            consts.append(self._const(ins[2], "bias"))
        return ir.Conv(kernel=win.kernel, strides=win.strides, pads=win.pads,
                       dilations=win.dilations, group=int(attrs.get("group", 1))), tuple(consts)

    def _maxpool(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                 ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        if int(attrs.get("storage_order", 0)) != 0:
            raise UnsupportedError(f"{where}: storage_order=1 is not supported (only 0)")
        if len(node.output) > 1 and node.output[1] and self._used(node.output[1]):
            raise UnsupportedError(f"{where}: the Indices output is used; not supported")
        win = self._window(node, attrs, tuple(attrs.get("kernel_shape", ())), where)
        return ir.MaxPool(win.kernel, win.strides, win.pads, win.dilations), ()

    def _averagepool(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                     ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        win = self._window(node, attrs, tuple(attrs.get("kernel_shape", ())), where)
        if win.dilations != (1, 1):
            raise UnsupportedError(f"{where}: dilations {list(attrs['dilations'])} are not "
                                   "supported on AveragePool (only 1)")
        return ir.AvgPool(win.kernel, win.strides, win.pads,
                          bool(attrs.get("count_include_pad", 0))), ()

    def _globalaveragepool(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                           ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        self._spatial_rank(ins[0], where)
        return ir.GlobalAvgPool(), ()

    def _globalmaxpool(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                       ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        self._spatial_rank(ins[0], where)
        h, w = self.g.tensor(ins[0]).shape[2:]
        return ir.MaxPool(kernel=(h, w), strides=(h, w)), ()

    def _reducemean(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                    ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        rank = len(self._shape(ins[0]))
        if len(ins) > 1:  # opset 18: axes is an input
            axes_v = self.consts[ins[1]].reshape(-1).tolist()
        else:
            axes_v = list(attrs.get("axes", []))
        axes = sorted({int(a) % rank for a in axes_v}) if axes_v else []
        if not axes and attrs.get("noop_with_empty_axes", 0):
            axes = []
        elif not axes:
            axes = list(range(rank))
        if rank < (3 if self.one_d else 4) or axes != list(range(2, rank)):
            raise UnsupportedError(f"{where}: only a mean over the spatial axes (2, 3 of "
                                   f"[N, C, H, W]) is supported, got axes {axes} of a rank-{rank}"
                                   " tensor")
        return ir.GlobalAvgPool(), ()

    def _batchnormalization(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                            ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        if not int(attrs.get("spatial", 1)):
            raise UnsupportedError(f"{where}: spatial=0 (per-element statistics, opset < 9) is "
                                   "not supported; export with opset 9 or later")
        if int(attrs.get("training_mode", 0)) or any(o and self._used(o) for o in node.output[1:]):
            raise UnsupportedError(f"{where}: training mode (or its running statistics outputs) "
                                   "is not supported; export the model in eval mode")
        consts = tuple(self._const(c, r) for c, r in zip(ins[1:], ("scale", "bias", "mean",
                                                                    "var"), strict=True))
        return ir.BatchNorm(float(attrs.get("epsilon", 1e-5))), consts

    def _mul(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
             ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        """x * c for a per-channel (or scalar) c: a BatchNorm with mean 0, var 1, eps 0."""
        scale = self._per_channel(ins[0], self.consts[ins[1]], where)
        zeros, ones = np.zeros_like(scale), np.ones_like(scale)
        consts = tuple(self._const(ins[1], r, v) for r, v in
                       (("scale", scale), ("bias", zeros), ("mean", zeros), ("var", ones)))
        return ir.BatchNorm(epsilon=0.0), consts

    def _leakyrelu(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                   ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        alpha = float(attrs.get("alpha", 0.01))
        if not alpha >= 0.0 or not np.isfinite(alpha):
            raise UnsupportedError(f"{where}: alpha {alpha} is not supported; only a finite "
                                   "slope >= 0")
        return ir.LeakyRelu(alpha), ()

    def _sigmoid(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                 ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        return ir.TableAct("sigmoid"), ()

    def _hardswish(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                   ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        return ir.TableAct("hardswish"), ()

    def _hardsigmoid(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
                     ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if not (np.isfinite(alpha) and np.isfinite(beta)):
            raise UnsupportedError(f"{where}: alpha {alpha} and beta {beta} must be finite")
        return ir.TableAct("hardsigmoid", alpha, beta), ()

    def _prelu(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
               ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        """PRelu with a constant per-channel (or scalar) slope: a LeakyRelu of slopes [C]."""
        slope = self._per_channel(ins[0], self.consts[ins[1]], where)
        if not (np.isfinite(slope).all() and (slope >= 0).all()):
            raise UnsupportedError(f"{where}: slopes {slope.tolist()} are not supported; only "
                                   "finite slopes >= 0")
        return ir.LeakyRelu(), (self._const(ins[1], "slope", slope),)

    def _clip(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
              ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        bounds = [float(attrs.get("min", -np.inf)), float(attrs.get("max", np.inf))]
        for i, c in enumerate(list(node.input[1:3])):
            if c:
                bounds[i] = float(np.asarray(self.consts[c]).reshape(-1)[0])
        if np.isnan(bounds).any() or not bounds[0] < bounds[1]:
            # ONNX then sets every output to max: a constant, nothing to compute or quantize
            raise UnsupportedError(f"{where}: min {bounds[0]:g} is not below max {bounds[1]:g}; "
                                   "a Clip needs min < max")
        return ir.Clip(*bounds), ()

    def _pad(self, node: onnx.NodeProto, attrs: dict, ins: list[str], where: str
             ) -> tuple[ir.Op, tuple[tuple[str, str], ...]]:
        mode = attrs.get("mode", "constant")
        rank = len(self._shape(ins[0]))
        if len(node.input) > 1:
            pads = self.consts[node.input[1]].reshape(-1).astype(int).tolist()
            value = (float(np.asarray(self.consts[node.input[2]]).reshape(-1)[0])
                     if len(node.input) > 2 and node.input[2] else 0.0)
            if len(node.input) > 3 and node.input[3]:  # opset 18: the axes the pads apply to
                full = [0] * (2 * rank)
                axes = [int(a) % rank for a in self.consts[node.input[3]].reshape(-1)]
                for j, a in enumerate(axes):
                    full[a], full[a + rank] = pads[j], pads[j + len(axes)]
                pads = full
        else:
            pads, value = list(attrs.get("pads", [])), float(attrs.get("value", 0.0))
        if mode != "constant" or value != 0.0:
            raise UnsupportedError(f"{where}: only constant zero padding is supported, got "
                                   f"mode {mode!r} value {value}")
        begin, end = pads[:rank], pads[rank:]
        if rank not in (3, 4) or any(begin[:2]) or any(end[:2]) or min(pads) < 0:
            raise UnsupportedError(f"{where}: only non-negative padding of H and W (the last "
                                   f"axes of [N, C, H, W] or [N, C, L]) is supported, got pads "
                                   f"{pads}")
        if rank == 3:
            return ir.Pad((0, begin[2], 0, end[2])), ()
        return ir.Pad((begin[2], begin[3], end[2], end[3])), ()

    def _perm(self, attrs: dict, x: str, where: str) -> tuple[int, ...]:
        """A Transpose's perm on the IR tensors: a 1-D model's rank-3 tensors are [N, C, 1, L],
        so ONNX axes 0, 1, 2 are IR axes 0, 1, 3 and axis 2 (H = 1) stays in place."""
        rank = len(self._shape(x))
        perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
        if sorted(perm) != list(range(rank)):
            raise ModelError(f"{where}: perm {perm} is not a permutation of the {rank} axes")
        if self.one_d and rank == 3:
            axis = (0, 1, 3)
            full = [0, 0, 2, 0]
            for i, p in enumerate(perm):
                full[axis[i]] = axis[p]
            perm = full
        return tuple(perm)

    # -- helpers of the convolutional ops -------------------------------------------------------
    def _used(self, tensor: str) -> bool:
        return tensor in {o.name for o in self.graph.output} or any(
            tensor in n.input for n in self.graph.node)

    def _spatial_rank(self, x: str, where: str) -> int:
        rank = len(self._shape(x))
        if rank not in (3, 4):
            raise UnsupportedError(f"{where}: only [N, C, H, W] and [N, C, L] inputs are "
                                   f"supported, got {list(self._shape(x))}")
        return rank - 2

    def _per_channel(self, x: str, c: np.ndarray, where: str) -> np.ndarray:
        """A constant broadcast along axis 1 only (shape [C, 1, ..], [1, C, 1, ..] or scalar)."""
        rank, shape = len(self._shape(x)), self._shape(x)
        dims = list(np.shape(c))
        if len(dims) <= rank and rank >= 2:
            full = [1] * (rank - len(dims)) + dims
            if full[0] == 1 and all(d == 1 for d in full[2:]) and full[1] in (1, shape[1]):
                return np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (shape[1],))
        raise UnsupportedError(f"{where}: only a per-channel constant ([C, 1, 1], [1, C, 1, 1], "
                               f"[C] on [N, C] or a scalar) is supported, got shape {dims} on "
                               f"{list(shape)}")

    def _window(self, node: onnx.NodeProto, attrs: dict, kernel: tuple[int, ...], where: str
                ) -> _Window:
        """Resolve kernel, strides, dilations, pads/auto_pad and ceil_mode to a 2-D window."""
        shape, sp = self._shape(node.input[0]), self._spatial_rank(node.input[0], where)
        kernel = tuple(int(k) for k in attrs.get("kernel_shape", kernel))
        strides = tuple(int(v) for v in attrs.get("strides", [1] * sp))
        dils = tuple(int(v) for v in attrs.get("dilations", [1] * sp))
        pads = [int(v) for v in attrs.get("pads", [0] * 2 * sp)]
        # a pool may cover the whole map (DS-CNN's 25x5 average): only Conv kernels are bounded
        limit = MAX_KERNEL if node.op_type == "Conv" else max(shape[2:])
        if len(kernel) != sp or max(kernel) > limit:
            raise UnsupportedError(f"{where}: kernel {list(kernel)} is not supported: kernel "
                                   f"sides up to {limit} on a {sp}-D input")
        auto = attrs.get("auto_pad", "NOTSET")
        if auto == "VALID":
            pads = [0] * 2 * sp
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            for i in range(sp):
                size = shape[2 + i]
                out = -(-size // strides[i])
                total = max((out - 1) * strides[i] + (kernel[i] - 1) * dils[i] + 1 - size, 0)
                small = total // 2
                pads[i], pads[i + sp] = ((small, total - small) if auto == "SAME_UPPER"
                                         else (total - small, small))
        elif auto != "NOTSET":
            raise UnsupportedError(f"{where}: auto_pad {auto!r} is not supported")
        if min(pads) < 0:
            raise UnsupportedError(f"{where}: negative pads {pads} are not supported")
        floor = [numerics.conv_out(shape[2 + i], kernel[i], strides[i], pads[i], pads[i + sp],
                                   dils[i]) for i in range(sp)]
        onnx_out = list(self._shape(node.output[0])[2:])
        if floor != onnx_out and attrs.get("ceil_mode", 0) and node.op_type == "MaxPool":
            # ceil mode: the last window may run past the (padded) input; the max excludes
            # padding, so extra bottom/right padding computes exactly that window
            ext = list(pads)
            for i in range(sp):
                need = ((onnx_out[i] - 1) * strides[i] + dils[i] * (kernel[i] - 1) + 1
                        - shape[2 + i] - pads[i] - pads[i + sp])
                if 0 <= need < strides[i]:
                    ext[i + sp] += need
            floor = [numerics.conv_out(shape[2 + i], kernel[i], strides[i], ext[i],
                                       ext[i + sp], dils[i]) for i in range(sp)]
            if floor == onnx_out:
                pads = ext
                ones = np.zeros((*shape[2:], 1) if sp == 2 else (1, shape[2], 1), np.int64)
                win = (kernel, strides, (pads[0], pads[1], pads[2], pads[3]), dils) if sp == 2 \
                    else ((1, kernel[0]), (1, strides[0]), (0, pads[0], 0, pads[1]),
                          (1, dils[0]))
                _, inside = numerics.windows(ones, *win)
                if not inside.any(axis=(2, 3)).all():
                    raise UnsupportedError(f"{where}: with ceil_mode=1 a window lies wholly in "
                                           "the padding, where the maximum has no value")
        if floor != onnx_out:
            why = ("ceil_mode=1 changes the output size" if attrs.get("ceil_mode", 0)
                   else "its output size does not match the window arithmetic")
            if attrs.get("ceil_mode", 0) and node.op_type == "AveragePool":
                why += " (its partial last windows divide by fewer elements)"
            raise UnsupportedError(f"{where}: {why} ({onnx_out} instead of {floor}); only "
                                   "windows whose output size is the floor-mode size are "
                                   "supported")
        if sp == 1:
            return _Window((1, kernel[0]), (1, strides[0]), (0, pads[0], 0, pads[1]),
                           (1, dils[0]))
        return _Window((kernel[0], kernel[1]), (strides[0], strides[1]),
                       (pads[0], pads[1], pads[2], pads[3]), (dils[0], dils[1]))

    @staticmethod
    def _check_operands(op: str, ins: list[str], acts: list[str], where: str) -> None:
        if len(acts) > 1:
            raise UnsupportedError(f"{where}: activation x activation is not supported; "
                                   f"the {'second' if op == 'Mul' else 'weight'} input must be "
                                   "a constant")
        if op not in ("Add", "Mul") and acts[0] != ins[0]:
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


@dataclass(frozen=True)
class _Window:
    kernel: ir.Pair
    strides: ir.Pair
    pads: ir.Pads
    dilations: ir.Pair


_CNN_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean",
            "BatchNormalization", "Mul", "Clip", "Pad", "LeakyRelu", "PRelu", "Sigmoid",
            "HardSigmoid", "HardSwish")


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
    if op == "Transpose":
        return np.transpose(x, attrs.get("perm"))
    return x


def _reshape(shape: tuple[int, ...], target: np.ndarray, allowzero: bool) -> tuple[int, ...]:
    """Resolve a Reshape target (0 = copy the input dim unless allowzero, -1 = infer)."""
    dims = [int(shape[i]) if d == 0 and not allowzero else int(d)
            for i, d in enumerate(np.asarray(target).reshape(-1))]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return tuple(dims)
