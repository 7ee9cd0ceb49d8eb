"""Quantized ONNX in: QDQ, QOperator and QONNX models become a float ONNX model plus the
quantization they fix, which the Quantize pass then implements exactly.

- **QDQ** (onnxruntime.quantization static QDQ, tf2onnx from int8 TFLite): a
  QuantizeLinear -> DequantizeLinear pair on an activation pins that tensor's scale and zero point
  and disappears; a DequantizeLinear of a constant (weights, int32 bias) is folded into a float
  constant, and the weights' scale is kept for the layer that reads them.
- **QOperator**: QLinearConv, QLinearMatMul, com.microsoft QGemm, QLinearAdd and
  QLinearGlobalAveragePool are first rewritten as DequantizeLinear -> float op -> QuantizeLinear,
  then handled as QDQ. MaxPool, Flatten, Reshape, Transpose and Identity on a quantized tensor
  keep its format.
- **QONNX** (qonnx/Brevitas/FINN): ``Quant`` (bit width 2..16, signed or not, narrow or not) is a
  fake-quantizer, so it pins (activation) or folds (constant) like a Q/DQ pair; ``BipolarQuant`` on
  constants gives +-scale weights.

Activations and weights may have any zero point: integers in the IR are centred, q - zero_point
(see ``ir.QFormat``), so zero points never reach the array; a weight zero point costs one bit of
weight width (uint8 weights with zero point 128 become 9-bit centred weights).
ConvInteger/MatMulInteger are supported in static graphs (QuantizeLinear before, Cast and Mul
by the scale product after); dynamic quantization (scales computed at run time) is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgehls import ir, numerics
from edgehls.errors import UnsupportedError

Q, DQ = "QuantizeLinear", "DequantizeLinear"
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
QOPERATOR = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearGlobalAveragePool",
             "QLinearAveragePool")
DYNAMIC = ("DynamicQuantizeLinear",)
INTEGER_OPS = ("ConvInteger", "MatMulInteger")
INT_PASS = ("MaxPool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose", "Identity",
            "Squeeze", "Unsqueeze")
WEIGHT_INPUT = {"Conv": 1, "Gemm": 1, "MatMul": 1}
INT_TYPES = {onnx.TensorProto.INT8: (8, True), onnx.TensorProto.UINT8: (8, False),
             onnx.TensorProto.INT16: (16, True), onnx.TensorProto.UINT16: (16, False),
             onnx.TensorProto.INT4: (4, True), onnx.TensorProto.UINT4: (4, False),
             **({onnx.TensorProto.INT2: (2, True), onnx.TensorProto.UINT2: (2, False)}
                if hasattr(onnx.TensorProto, "INT2") else {})}


@dataclass(frozen=True)
class Format:
    """An activation's quantization as the model states it."""

    scale: float
    zero_point: int
    bits: int
    signed: bool

    def qformat(self) -> ir.QFormat:
        return ir.QFormat(self.bits, self.signed, numerics.frac_of(self.scale),
                          float(self.scale), int(self.zero_point))

    def text(self) -> str:
        return (f"{'int' if self.signed else 'uint'}{self.bits} scale {self.scale:.6g} zero "
                f"point {self.zero_point}")


@dataclass
class Imported:
    """The float model, the activation formats by tensor, and what ``ir.QImport`` holds."""

    model: onnx.ModelProto
    formats: dict[str, ir.QFormat]
    info: ir.QImport
    notes: list[str] = field(default_factory=list)


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in (Q, DQ, *QOPERATOR, *DYNAMIC, *INTEGER_OPS)
               or n.domain in QONNX_DOMAINS
               for n in model.graph.node)


def lower(model: onnx.ModelProto) -> Imported | None:
    """None for a float model; else the float model and the quantization it fixes."""
    if not is_quantized(model):
        return None
    return _Lowering(model).run()


class _Lowering:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.graph = self.model.graph
        self.consts: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for n in self.graph.node:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.attribute \
                    and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.pins: dict[str, Format] = {}  # float tensor -> its format
        self.float_of: dict[str, str] = {}  # quantized tensor -> the float tensor it stands for
        self.alias: dict[str, str] = {}  # a DequantizeLinear's output -> the float tensor
        self.folded: dict[str, tuple[np.ndarray, np.ndarray, int | None, int]] = {}
        self.weights: dict[str, tuple[np.ndarray, int]] = {}
        self.sources: set[str] = set()
        self.new_inits: list[onnx.TensorProto] = []
        self.generated: set[str] = set()  # the Q/DQ nodes QOperator ops expand into
        self.notes: list[str] = []

    # -- the walk ---------------------------------------------------------------------------
    def run(self) -> Imported:
        nodes = list(self.graph.node)
        for i, n in enumerate(nodes):  # the names the IR will use, before nodes move
            if not n.name:
                n.name = f"{n.op_type}_{i}"
        self.producer = {o: n for n in nodes for o in n.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in nodes:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
        self.absorbed: set[str] = set()  # Cast/Mul nodes an integer op's expansion took over
        expanded: list[onnx.NodeProto] = []
        for n in nodes:
            if n.name in self.absorbed:
                continue
            new = self._integer(n) if n.op_type in INTEGER_OPS else self._expand(n)
            if new != [n]:
                self.generated.update(m.name for m in new if m.op_type in (Q, DQ))
            expanded.extend(new)
        kept: list[onnx.NodeProto] = []
        for n in expanded:
            kept.extend(self._visit(n))
        for n in kept:
            self._record_weights(n)
        self._finish(kept)
        return Imported(self.model, {t: f.qformat() for t, f in self.pins.items()},
                        ir.QImport("+".join(sorted(self.sources)), self.weights), self.notes)

    def _where(self, n: onnx.NodeProto) -> str:
        return f"node {n.name!r} ({n.op_type})"

    def _visit(self, n: onnx.NodeProto) -> list[onnx.NodeProto]:
        ins = [self.alias.get(i, i) for i in n.input]
        if n.op_type in (Q, DQ) and n.name not in self.generated:
            self.sources.add("QDQ")
        if n.op_type == Q:
            self._quantize(n, ins[0], self._format(n, ins))
            return []
        if n.op_type == DQ:
            if ins[0] in self.consts:
                self._fold(n, ins)
                return []
            if ins[0] not in self.float_of:
                raise UnsupportedError(f"{self._where(n)}: dequantizes {ins[0]!r}, which no "
                                       "QuantizeLinear made; edgehls takes float inputs")
            src = self.float_of[ins[0]]
            f = self._format(n, ins)
            if f != self.pins[src]:
                raise UnsupportedError(
                    f"{self._where(n)}: dequantizes {ins[0]!r} as {f.text()}, but it was "
                    f"quantized as {self.pins[src].text()}; the pair must agree")
            self.alias[n.output[0]] = src
            return []
        if n.domain in QONNX_DOMAINS:
            self.sources.add("QONNX")
            return self._qonnx(n, ins)
        if n.op_type in DYNAMIC:
            raise UnsupportedError(
                f"{self._where(n)}: dynamic quantization computes activation scales at run "
                "time, which fixed-point hardware cannot; quantize the model statically "
                "(onnxruntime.quantization.quantize_static, QDQ or QOperator format)")
        if n.op_type in INT_PASS and ins[0] in self.float_of:  # keeps the format
            src = self.float_of[ins[0]]
            ins[0] = src
            self.float_of[n.output[0]] = n.output[0]  # it stands for itself from here on
            self.pins[n.output[0]] = self.pins[src]
        else:
            quantized_in = [i for i in ins if self.float_of.get(i, i) != i]
            if quantized_in and (n.op_type.startswith("QLinear") or n.domain == "com.microsoft"):
                raise UnsupportedError(f"{self._where(n)}: quantized op not supported; "
                                       f"supported: {', '.join(QOPERATOR)}, QuantizeLinear, "
                                       "DequantizeLinear and QONNX Quant/BipolarQuant")
            if quantized_in:
                raise UnsupportedError(
                    f"{self._where(n)}: reads the quantized tensor {quantized_in[0]!r} "
                    f"directly; only {', '.join(INT_PASS)} may, and the quantized ops "
                    f"{', '.join(QOPERATOR)}")
        del n.input[:]
        n.input.extend(ins)
        return [n]

    def _quantize(self, n: onnx.NodeProto, x: str, f: Format) -> None:
        if x in self.consts:
            raise UnsupportedError(f"{self._where(n)}: quantizes a constant at run time; "
                                   "store the weights quantized (a DequantizeLinear of them)")
        if x in self.pins and self.pins[x] != f:
            raise UnsupportedError(f"{self._where(n)}: quantizes {x!r} as {f.text()}, but it is "
                                   f"also quantized as {self.pins[x].text()}; one format a tensor")
        self.pins[x] = f
        self.float_of[n.output[0]] = x

    # -- formats and constants --------------------------------------------------------------
    def _const(self, n: onnx.NodeProto, ins: list[str], i: int, what: str) -> np.ndarray | None:
        if i >= len(ins) or not ins[i]:
            return None
        if ins[i] not in self.consts:
            raise UnsupportedError(f"{self._where(n)}: its {what} {ins[i]!r} must be a constant")
        return np.asarray(self.consts[ins[i]])

    def _format(self, n: onnx.NodeProto, ins: list[str]) -> Format:
        """An activation Q/DQ's scale and zero point: per tensor only."""
        scale = self._const(n, ins, 1, "scale")
        zp = self._const(n, ins, 2, "zero point")
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if scale is None or scale.size != 1 or (zp is not None and zp.size != 1):
            raise UnsupportedError(f"{self._where(n)}: a per-axis scale on an activation is not "
                                   "supported; quantize activations per tensor")
        dtype = (int(attrs["output_dtype"]) if attrs.get("output_dtype")
                 else _dtype(zp) if zp is not None else onnx.TensorProto.UINT8)
        if dtype not in INT_TYPES:
            raise UnsupportedError(f"{self._where(n)}: element type "
                                   f"{onnx.TensorProto.DataType.Name(dtype)} is not supported")
        bits, signed = INT_TYPES[dtype]
        return self._checked(n, float(scale.reshape(-1)[0]),
                             int(zp.reshape(-1)[0]) if zp is not None else 0, bits, signed)

    def _checked(self, n: onnx.NodeProto, scale: float, zp: int, bits: int, signed: bool
                 ) -> Format:
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not (np.isfinite(scale) and scale > 0):
            raise UnsupportedError(f"{self._where(n)}: scale {scale} is not a positive number")
        if not lo <= zp <= hi:
            raise UnsupportedError(f"{self._where(n)}: zero point {zp} is outside the "
                                   f"{bits}-bit range {lo}..{hi}")
        if not 2 <= bits <= 16:
            raise UnsupportedError(f"{self._where(n)}: {bits}-bit activations are not "
                                   "supported; choose 2..16 bits")
        return Format(scale, zp, bits, signed)

    def _fold(self, n: onnx.NodeProto, ins: list[str]) -> None:
        """DequantizeLinear of a constant: a float constant; its integers and scale kept."""
        q = np.asarray(self.consts[ins[0]])
        scale = self._const(n, ins, 1, "scale")
        zp = self._const(n, ins, 2, "zero point")
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        axis = int(attrs.get("axis", 1)) if scale is not None and scale.size > 1 else None
        if "block_size" in attrs and int(attrs["block_size"]):
            raise UnsupportedError(f"{self._where(n)}: blocked quantization is not supported")
        dtype = _dtype(q)
        if dtype not in (*INT_TYPES, onnx.TensorProto.INT32):
            raise UnsupportedError(f"{self._where(n)}: element type "
                                   f"{onnx.TensorProto.DataType.Name(dtype)} is not supported; "
                                   "integer types only (int8, uint8, int16, uint16, int4, "
                                   "uint4, int2, uint2, int32 biases)")
        zp = np.zeros(1, np.int64) if zp is None else zp.astype(np.int64)
        bits, signed = INT_TYPES.get(dtype, (32, True))
        shape = [1] * q.ndim
        if axis is not None:
            axis %= q.ndim
            shape[axis] = -1
        s = np.asarray(scale, np.float64).reshape(shape)
        value = (q.astype(np.int64) - zp.reshape(shape)) * s
        self._constant(n.output[0], value.astype(np.float32))
        self.folded[n.output[0]] = (np.asarray(scale, np.float64).reshape(-1), zp.reshape(-1),
                                    axis, bits + (0 if signed else 1))

    def _constant(self, name: str, value: np.ndarray) -> None:
        self.consts[name] = value
        self.new_inits.append(numpy_helper.from_array(value, name))

    # -- weights: the scale per output channel of each layer -------------------------------
    def _record_weights(self, n: onnx.NodeProto) -> None:
        i = WEIGHT_INPUT.get(n.op_type)
        if i is None or len(n.input) <= i or n.input[i] not in self.folded:
            return
        scale, zp, axis, bits = self.folded[n.input[i]]
        if np.any(zp != 0):  # the folded weights are (q - zp) * scale: centred, one bit wider
            self.notes.append(f"{self._where(n)}: weights with zero point(s) "
                              f"{sorted(set(zp.tolist()))[:4]} are stored centred (q - zero "
                              "point), one bit wider")
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w = self.consts[n.input[i]]
        out_axis = {"Conv": 0, "MatMul": w.ndim - 1,
                    "Gemm": 0 if attrs.get("transB", 0) else 1}[n.op_type]
        if axis is not None and axis != out_axis:
            raise UnsupportedError(
                f"{self._where(n)}: its weights are scaled along axis {axis}, not per output "
                f"channel (axis {out_axis}); only per-tensor or per-output-channel weight "
                "scales are supported")
        if n.op_type == "Gemm" and float(attrs.get("alpha", 1.0)) != 1.0:
            scale = scale * float(attrs["alpha"])
        self.weights[n.name] = (scale, bits)

    # -- QOperator -> DQ, float op, Q -------------------------------------------------------
    def _expand(self, n: onnx.NodeProto) -> list[onnx.NodeProto]:
        op = n.op_type
        if op not in QOPERATOR or n.domain not in ("", "ai.onnx", "com.microsoft"):
            return [n]
        self.sources.add("QOperator")
        attrs = [a for a in n.attribute if a.name != "channels_last"]
        i, name = list(n.input) + [""] * 9, n.name
        dq = lambda x, s, z, out, **kw: helper.make_node(  # noqa: E731
            DQ, [x, s, z] if z else [x, s], [out], name=f"{name}/dq_{out.rsplit('/', 1)[-1]}",
            **kw)
        q = lambda x, s, z, out: helper.make_node(  # noqa: E731
            Q, [x, s, z] if z else [x, s], [out], name=f"{name}/q")
        if op == "QLinearConv" or op == "QLinearMatMul":
            axis = {"axis": 0} if op == "QLinearConv" else {"axis": 1}
            nodes = [dq(i[0], i[1], i[2], f"{name}/x"), dq(i[3], i[4], i[5], f"{name}/w", **axis)]
            ins = [f"{name}/x", f"{name}/w"]
            if op == "QLinearConv" and i[8]:
                self._bias(n, i[8], i[1], i[4], f"{name}/b")
                ins.append(f"{name}/b")
            core = helper.make_node("Conv" if op == "QLinearConv" else "MatMul", ins,
                                    [f"{name}/y"], name=name)
            core.attribute.extend(attrs)
            return [*nodes, core, q(f"{name}/y", i[6], i[7], n.output[0])]
        if op == "QGemm":
            trans_b = any(a.name == "transB" and a.i for a in attrs)
            nodes = [dq(i[0], i[1], i[2], f"{name}/a"),
                     dq(i[3], i[4], i[5], f"{name}/b", axis=0 if trans_b else 1)]
            ins = [f"{name}/a", f"{name}/b"]
            if i[6]:
                self._bias(n, i[6], i[1], i[4], f"{name}/c")
                ins.append(f"{name}/c")
            out = f"{name}/y" if i[7] else n.output[0]
            core = helper.make_node("Gemm", ins, [out], name=name)
            core.attribute.extend(a for a in attrs if a.name in ("alpha", "transA", "transB"))
            return [*nodes, core] + ([q(out, i[7], i[8], n.output[0])] if i[7] else [])
        if op == "QLinearAdd":
            return [dq(i[0], i[1], i[2], f"{name}/a"), dq(i[3], i[4], i[5], f"{name}/b"),
                    helper.make_node("Add", [f"{name}/a", f"{name}/b"], [f"{name}/y"], name=name),
                    q(f"{name}/y", i[6], i[7], n.output[0])]
        # QLinearGlobalAveragePool, QLinearAveragePool: x, x_scale, x_zp, y_scale, y_zp
        if any(a.name == "channels_last" and a.i for a in n.attribute):
            raise UnsupportedError(f"{self._where(n)}: channels_last=1 is not supported")
        core = helper.make_node(op.removeprefix("QLinear"), [f"{name}/x"], [f"{name}/y"],
                                name=name)
        core.attribute.extend(attrs)
        return [dq(i[0], i[1], i[2], f"{name}/x"), core,
                q(f"{name}/y", i[3], i[4], n.output[0])]

    def _integer(self, n: onnx.NodeProto) -> list[onnx.NodeProto]:
        """ConvInteger/MatMulInteger whose activation a static QuantizeLinear made, followed
        by Cast to float and Mul by a constant c (the product of the scales): a float Conv or
        MatMul of the dequantized activation and weights (w - w_zero_point) * c / x_scale, whose
        output is the Mul's. Dynamic quantization (DynamicQuantizeLinear) is rejected."""
        self.sources.add("QOperator")
        where = self._where(n)
        i = list(n.input) + [""] * 4
        q = self.producer.get(i[0])
        cast = self.readers.get(n.output[0], [])
        mul = self.readers.get(cast[0].output[0], []) if len(cast) == 1 else []
        if q is None or q.op_type != Q or len(cast) != 1 or cast[0].op_type != "Cast" \
                or len(mul) != 1 or mul[0].op_type != "Mul":
            raise UnsupportedError(
                f"{where}: supported only as static quantization: its input made by a "
                "QuantizeLinear with constant scale, its output read by a Cast to float and a "
                "Mul by the constant scale product (dynamic quantization computes scales at run "
                "time, which fixed-point hardware cannot: use quantize_static)")
        mul = mul[0]
        c_name = next((x for x in mul.input if x != cast[0].output[0]), "")
        if c_name not in self.consts or i[1] not in self.consts or q.input[1] not in self.consts:
            raise UnsupportedError(f"{where}: its weights, the activation's scale and the Mul's "
                                   "factor must be constants")
        x_scale = float(np.asarray(self.consts[q.input[1]]).reshape(-1)[0])
        xz = np.asarray(self.consts[i[2]]).reshape(-1) if i[2] else np.zeros(1, np.int64)
        qz = np.asarray(self.consts[q.input[2]]).reshape(-1) if len(q.input) > 2 and \
            q.input[2] else np.zeros(1, np.int64)
        if xz.size != 1 or int(xz[0]) != int(qz[0]):
            raise UnsupportedError(f"{where}: its activation zero point must be the one its "
                                   "QuantizeLinear used")
        c = np.asarray(self.consts[c_name], np.float64).reshape(-1)
        scale = c / x_scale
        wz = np.asarray(self.consts[i[3]], np.int64).reshape(-1) if i[3] else np.zeros(1, np.int64)
        if wz.size > 1 and scale.size == 1:
            scale = np.full(wz.size, scale[0])
        axis = 0 if n.op_type == "ConvInteger" else 1
        name, scale_name, zp_name = n.name, f"{n.name}/w_scale", f"{n.name}/w_zero"
        self._constant(scale_name, scale.astype(np.float32))
        self.consts[zp_name] = wz.reshape(-1).astype(self.consts[i[1]].dtype)
        self.new_inits.append(numpy_helper.from_array(self.consts[zp_name], zp_name))
        dq_kw = {"axis": axis} if scale.size > 1 or wz.size > 1 else {}
        self.absorbed.update((cast[0].name, mul.name))
        nodes = [helper.make_node(DQ, [i[0], q.input[1], *q.input[2:3]], [f"{name}/x"],
                                  name=f"{name}/dq_x"),
                 helper.make_node(DQ, [i[1], scale_name, zp_name], [f"{name}/w"],
                                  name=f"{name}/dq_w", **dq_kw)]
        self.generated.update(m.name for m in nodes)
        core = helper.make_node("Conv" if n.op_type == "ConvInteger" else "MatMul",
                                [f"{name}/x", f"{name}/w"], [mul.output[0]], name=name)
        core.attribute.extend(n.attribute)
        return [*nodes, core]

    def _bias(self, n: onnx.NodeProto, b: str, x_scale: str, w_scale: str, out: str) -> None:
        """An int32 bias at scale x_scale * w_scale (* alpha for QGemm) as a float constant."""
        for name in (b, x_scale, w_scale):
            if name not in self.consts:
                raise UnsupportedError(f"{self._where(n)}: {name!r} must be a constant")
        alpha = next((a.f for a in n.attribute if a.name == "alpha"), 1.0)
        s = (np.asarray(self.consts[x_scale], np.float64).reshape(-1)
             * np.asarray(self.consts[w_scale], np.float64).reshape(-1) * alpha)
        self._constant(out, (np.asarray(self.consts[b], np.int64) * s).astype(np.float32))

    # -- QONNX --------------------------------------------------------------------------------
    def _qonnx(self, n: onnx.NodeProto, ins: list[str]) -> list[onnx.NodeProto]:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "BipolarQuant":
            w = self._const(n, ins, 0, "input (BipolarQuant of an activation is a sign function, "
                                       "which edgehls does not implement)")
            scale = self._const(n, ins, 1, "scale")
            s = np.asarray(scale, np.float64)
            self._constant(n.output[0], (np.where(w >= 0, 1.0, -1.0) * s).astype(np.float32))
            self.folded[n.output[0]] = (s.reshape(-1), np.zeros(1, np.int64),
                                        _axis(s, n, self._where(n)), 2)
            return []
        if n.op_type != "Quant":
            raise UnsupportedError(f"{self._where(n)}: QONNX op {n.op_type} is not supported; "
                                   "supported: Quant, BipolarQuant")
        scale, zp, bw = (self._const(n, ins, k, w) for k, w in
                         ((1, "scale"), (2, "zero point"), (3, "bit width")))
        if scale is None or zp is None or bw is None:
            raise UnsupportedError(f"{self._where(n)}: needs scale, zero point and bit width")
        bits, signed = float(bw.reshape(-1)[0]), bool(attrs.get("signed", 1))
        narrow = bool(attrs.get("narrow", 0))
        if bits != int(bits) or not 2 <= bits <= 16:
            raise UnsupportedError(f"{self._where(n)}: bit width {bits:g} is not supported; "
                                   "choose a whole number 2..16")
        bits = int(bits)
        mode = str(attrs.get("rounding_mode", b"ROUND"), "utf-8") \
            if isinstance(attrs.get("rounding_mode"), bytes) else attrs.get("rounding_mode",
                                                                             "ROUND")
        if mode not in ("ROUND", "HALF_EVEN"):
            raise UnsupportedError(f"{self._where(n)}: rounding_mode {mode} is not supported; "
                                   "edgehls rounds to nearest (ROUND)")
        lo = -(1 << (bits - 1)) + int(narrow) if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - int(narrow)
        if ins[0] in self.consts:  # weights: fake-quantize now
            s = np.asarray(scale, np.float64)
            z = np.asarray(zp, np.float64)
            q = np.clip(np.round(np.asarray(self.consts[ins[0]], np.float64) / s + z), lo, hi)
            self._constant(n.output[0], ((q - z) * s).astype(np.float32))
            need = bits + (0 if signed and (narrow or q.min() > lo) else 1)
            self.folded[n.output[0]] = (s.reshape(-1), np.round(z).astype(np.int64).reshape(-1),
                                        _axis(s, n, self._where(n)), need)
            return []
        if scale.size != 1 or zp.size != 1:
            raise UnsupportedError(f"{self._where(n)}: a per-axis scale on an activation is not "
                                   "supported; quantize activations per tensor")
        z = float(zp.reshape(-1)[0])
        if z != int(z):
            raise UnsupportedError(f"{self._where(n)}: zero point {z:g} is not an integer")
        f = self._checked(n, float(scale.reshape(-1)[0]), int(z), bits, signed)
        self._quantize(n, ins[0], f)
        self.alias[n.output[0]] = ins[0]
        del self.float_of[n.output[0]]
        return []

    # -- the float model ----------------------------------------------------------------------
    def _finish(self, kept: list[onnx.NodeProto]) -> None:
        g = self.graph
        rename: dict[str, str] = {}
        for out in g.output:
            src = self.alias.get(out.name) or self.float_of.get(out.name)
            if src is not None and src != out.name:
                if src in [i.name for i in g.input]:
                    raise UnsupportedError(f"output {out.name!r} is the quantized input")
                rename[src] = out.name
                out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        for n in kept:
            for seq in (n.input, n.output):
                vals = [rename.get(self.alias.get(v, v), self.alias.get(v, v)) for v in seq]
                del seq[:]
                seq.extend(vals)
        self.pins = {rename.get(t, t): f for t, f in self.pins.items()}
        self.direct = set(self.pins)  # pinned by a quantizer itself, not propagated
        for n in reversed(kept):  # canonicalize may fuse an activation (or a bias Add) either
            # way, keeping either tensor's name: pin both
            bias = n.op_type == "Add" and len(n.input) == 2 and n.input[1] in self.consts
            if (n.op_type in ("Relu", "Clip", *LAYOUT) or bias) and n.output[0] in self.pins \
                    and n.input[0] not in self.pins:
                self.pins[n.input[0]] = self.pins[n.output[0]]
        for n in kept:  # layout ops move values, never change them: so do their formats
            if n.op_type in LAYOUT and n.input[0] in self.pins and n.output[0] not in self.pins:
                self.pins[n.output[0]] = self.pins[n.input[0]]
        kept = self._relus(kept)
        used = {i for n in kept for i in n.input} | {o.name for o in g.output}
        inits = [i for i in g.initializer if i.name in used]
        inits += [i for i in self.new_inits if i.name in used]
        del g.initializer[:]
        g.initializer.extend(inits)
        del g.value_info[:]  # shape inference runs again on the float model
        g.ClearField("node")
        g.node.extend(n for n in kept if n.op_type != "Constant" or n.output[0] in used)
        # the quantized ops' domains (com.microsoft, qonnx) are gone
        opsets = [o for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        self.model.ClearField("opset_import")
        self.model.opset_import.extend(opsets or [helper.make_opsetid("", 13)])


    def _relus(self, kept: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """Quantizers drop a ReLU whose output range starts at the zero point (the clamp of
        the quantizer does its work); put it back before every such tensor, so the float model
        means what the integer one computes."""
        out: list[onnx.NodeProto] = []
        for n in kept:
            out.append(n)
            t = n.output[0] if n.output else ""
            if n.op_type in RELU_DROPPED and t in self.direct and self.pins[t].qformat().lo == 0:
                n.output[0] = f"{t}/linear"
                self.pins[n.output[0]] = self.pins[t]  # canonicalize fuses the Relu either way
                out.append(helper.make_node("Relu", [f"{t}/linear"], [t], name=f"{t}/relu"))
        return out


LAYOUT = ("Transpose", "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Dropout")
RELU_DROPPED = ("Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool", "AveragePool")


def _dtype(a: np.ndarray) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype))


def _axis(scale: np.ndarray, n: onnx.NodeProto, where: str) -> int | None:
    """The one axis along which a QONNX scale varies (None: per tensor)."""
    axes = [i for i, d in enumerate(np.shape(scale)) if d > 1]
    if len(axes) > 1:
        raise UnsupportedError(f"{where}: a scale varying along several axes is not supported")
    return axes[0] if axes else None
