"""Supplementary single-node tests for the subset of each op that edgehls implements.

The wheel's node tests never hit some of that subset (its Mul, Pad and ReduceMean tests are all
elementwise, non-zero-valued or over non-spatial axes), nor older opsets' semantics. These are
built with ``onnx.helper`` in the wheel's form (constants as initializers, one float input) and
their expected outputs come from onnxruntime, falling back to ``onnx.reference`` where
onnxruntime does not implement the case.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnx import helper as oh
from onnx.reference import ReferenceEvaluator

from conformance.wheel import NodeTest

_R = np.random.default_rng(2024)


def _w(*shape: int) -> np.ndarray:
    return _R.standard_normal(shape).astype(np.float32)


def _pos(*shape: int) -> np.ndarray:
    return (_R.random(shape) + 0.5).astype(np.float32)


def _i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


# name, op, attributes, input shape, opset, constant inputs after x (None: an empty input name),
# and whether x is the second input (Mul c * x)
CASES: list[tuple[str, str, dict, tuple[int, ...], int, list, bool]] = [
    ("mul_per_channel", "Mul", {}, (1, 3, 4, 4), 14, [_w(3, 1, 1)], False),
    ("mul_per_channel_const_first", "Mul", {}, (1, 3, 4, 4), 14, [_w(1, 3, 1, 1)], True),
    ("mul_scalar_2d", "Mul", {}, (2, 5), 14, [np.float32(1.7)], False),
    ("mul_per_channel_2d", "Mul", {}, (1, 6), 14, [_w(6)], False),
    ("pad_zero_hw", "Pad", {}, (1, 2, 4, 5), 13, [_i64(0, 0, 1, 2, 0, 0, 2, 1)], False),
    ("pad_zero_axes", "Pad", {}, (1, 2, 4, 5), 18, [_i64(1, 0, 0, 3), None, _i64(2, 3)], False),
    ("pad_zero_attr_opset2", "Pad", {"pads": [0, 0, 1, 1, 0, 0, 1, 1]}, (1, 2, 3, 3), 2, [],
     False),
    ("pad_zero_1d", "Pad", {}, (1, 2, 7), 13, [_i64(0, 0, 2, 0, 0, 1)], False),
    ("reduce_mean_spatial_keepdims", "ReduceMean", {"axes": [2, 3]}, (1, 3, 4, 5), 13, [],
     False),
    ("reduce_mean_spatial_negative_axes", "ReduceMean", {"axes": [-1, -2], "keepdims": 0},
     (1, 3, 4, 5), 13, [], False),
    ("reduce_mean_axes_input", "ReduceMean", {"keepdims": 0}, (1, 4, 3, 3), 18, [_i64(2, 3)],
     False),
    ("reduce_mean_1d", "ReduceMean", {"axes": [2]}, (1, 3, 8), 13, [], False),
    ("relu_4d", "Relu", {}, (1, 2, 3, 3), 14, [], False),
    ("clip_attrs_opset6", "Clip", {"min": -0.5, "max": 0.3}, (2, 3), 6, [], False),
    ("clip_only_max", "Clip", {}, (2, 3), 13, [None, np.float32(0.2)], False),
    ("softmax_2d_opset11", "Softmax", {}, (2, 5), 11, [], False),
    ("softmax_4d_default_axis_opset11", "Softmax", {}, (1, 3, 2, 2), 11, [], False),
    ("softmax_3d_axis1_opset11", "Softmax", {"axis": 1}, (2, 3, 4), 11, [], False),
    ("softmax_4d_axis1", "Softmax", {"axis": 1}, (1, 3, 2, 2), 13, [], False),
    ("batchnorm_1d", "BatchNormalization", {}, (2, 3, 5), 15,
     [_pos(3), _w(3), _w(3), _pos(3)], False),
    ("batchnorm_2d", "BatchNormalization", {}, (2, 3), 15, [_pos(3), _w(3), _w(3), _pos(3)],
     False),
    ("batchnorm_spatial0_opset7", "BatchNormalization", {"spatial": 0}, (1, 2, 3, 3), 7,
     [_pos(2, 3, 3), _w(2, 3, 3), _w(2, 3, 3), _pos(2, 3, 3)], False),
    ("conv_depthwise_dilated", "Conv", {"group": 4, "dilations": [2, 2], "pads": [2, 2, 2, 2]},
     (1, 4, 7, 7), 11, [_w(4, 1, 3, 3), _w(4)], False),
    ("conv_depthwise_multiplier", "Conv", {"group": 3, "strides": [2, 2]}, (1, 3, 6, 6), 11,
     [_w(6, 1, 3, 3)], False),
    ("conv_grouped", "Conv", {"group": 2, "pads": [1, 0, 0, 1]}, (1, 4, 5, 5), 11,
     [_w(6, 2, 3, 2), _w(6)], False),
    ("conv_same_lower_strided", "Conv", {"auto_pad": "SAME_LOWER", "strides": [2, 1]},
     (1, 2, 7, 6), 11, [_w(3, 2, 3, 3)], False),
    ("conv_same_lower_dilated", "Conv", {"auto_pad": "SAME_LOWER", "dilations": [2, 2]},
     (1, 2, 7, 6), 11, [_w(3, 2, 3, 3)], False),
    ("conv_1d_grouped", "Conv", {"group": 2, "pads": [1, 2]}, (1, 4, 9), 11,
     [_w(6, 2, 3), _w(6)], False),
    ("conv_kernel_11", "Conv", {}, (1, 1, 12, 12), 11, [_w(2, 1, 11, 11)], False),
    ("conv_kernel_12", "Conv", {}, (1, 1, 12, 12), 11, [_w(2, 1, 12, 12)], False),
    ("maxpool_1d_dilated", "MaxPool", {"kernel_shape": [2], "dilations": [2], "strides": [2]},
     (1, 2, 9), 12, [], False),
    ("averagepool_strided_no_pads", "AveragePool", {"kernel_shape": [2, 3], "strides": [2, 1]},
     (1, 2, 6, 6), 19, [], False),
    ("globalmaxpool_1d", "GlobalMaxPool", {}, (1, 3, 5), 13, [], False),
    ("globalaveragepool_1d", "GlobalAveragePool", {}, (1, 3, 5), 13, [], False),
    ("gemm_transA_one_row", "Gemm", {"transA": 1}, (3, 1), 13, [_w(3, 4)], False),
    ("gemm_opset6_broadcast", "Gemm", {"broadcast": 1, "transB": 1}, (2, 3), 6,
     [_w(4, 3), _w(4)], False),
    ("matmul_3d_activation", "MatMul", {}, (2, 3, 4), 13, [_w(4, 5)], False),
    ("add_per_channel", "Add", {}, (1, 3, 2, 2), 14, [_w(3, 1, 1)], False),
    ("dropout_opset7", "Dropout", {"ratio": 0.3}, (2, 3), 7, [], False),
    # LeakyRelu / PRelu as edgehls computes them: on [N, C, H, W] and [N, C], the slope per
    # channel (constants written out, so the shared generator's sequence is unchanged)
    ("leakyrelu_4d", "LeakyRelu", {"alpha": 0.2}, (1, 3, 4, 4), 16, [], False),
    ("leakyrelu_2d_default_alpha", "LeakyRelu", {}, (2, 5), 16, [], False),
    ("leakyrelu_1d", "LeakyRelu", {"alpha": 0.3}, (1, 2, 1, 6), 6, [], False),
    ("prelu_per_channel", "PRelu", {}, (1, 3, 4, 4), 16,
     [np.array([0.1, 0.6, 1.5], np.float32).reshape(3, 1, 1)], False),
    ("prelu_scalar_2d", "PRelu", {}, (2, 5), 16, [np.float32(0.3)], False),
    ("prelu_per_column_2d", "PRelu", {}, (2, 5), 16,
     [np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)], False),
    ("prelu_negative_slope", "PRelu", {}, (1, 2, 3, 3), 16,
     [np.array([-0.5, 0.5], np.float32).reshape(2, 1, 1)], False),
    # MaxPool ceil_mode: the last window runs past the input (its padding never wins the max)
    ("maxpool_ceil_strided", "MaxPool", {"kernel_shape": [3, 2], "strides": [2, 2],
                                         "ceil_mode": 1}, (1, 2, 6, 5), 12, [], False),
    ("maxpool_ceil_pads_dilated", "MaxPool", {"kernel_shape": [2, 2], "strides": [3, 2],
                                              "pads": [1, 0, 0, 0], "dilations": [2, 1],
                                              "ceil_mode": 1}, (1, 1, 7, 6), 12, [], False),
    ("maxpool_ceil_window_in_padding", "MaxPool", {"kernel_shape": [2, 2], "strides": [3, 2],
                                                   "pads": [1, 0, 1, 1], "dilations": [2, 1],
                                                   "ceil_mode": 1}, (1, 1, 7, 6), 12, [],
     False),
    ("maxpool_ceil_1d", "MaxPool", {"kernel_shape": [3], "strides": [2], "ceil_mode": 1},
     (1, 2, 8), 12, [], False),
    ("averagepool_ceil_rejected", "AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2],
                                                  "ceil_mode": 1}, (1, 1, 5, 5), 19, [], False),
    # Sigmoid, HardSigmoid, HardSwish (lookup tables) on [N, C, H, W] and [N, C]
    ("sigmoid_4d", "Sigmoid", {}, (1, 3, 4, 4), 13, [], False),
    ("sigmoid_2d", "Sigmoid", {}, (2, 5), 13, [], False),
    ("hardsigmoid_4d_attrs", "HardSigmoid", {"alpha": 0.3, "beta": 0.4}, (1, 2, 3, 3), 6, [],
     False),
    ("hardsigmoid_2d", "HardSigmoid", {}, (3, 4), 6, [], False),
    ("hardswish_4d", "HardSwish", {}, (1, 3, 4, 4), 14, [], False),
    ("hardswish_2d", "HardSwish", {}, (2, 6), 14, [], False),
]


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    try:
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]
    except Exception:  # noqa: BLE001 - e.g. SAME auto_pad with dilations: not in onnxruntime
        return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _build(name: str, op: str, attrs: dict, shape: tuple[int, ...], opset: int, consts: list,
           x_second: bool) -> NodeTest:
    names = [f"c{i}" if c is not None else "" for i, c in enumerate(consts)]
    inputs = (names[:1] + ["x"] + names[1:]) if x_second else ["x", *names]
    node = oh.make_node(op, inputs, ["y"], **attrs)
    inits = [numpy_helper.from_array(np.asarray(c), n)
             for n, c in zip(names, consts, strict=True) if c is not None]
    graph = oh.make_graph([node], name, [oh.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 7
    model = onnx.shape_inference.infer_shapes(model)
    x = _R.standard_normal(shape).astype(np.float32)
    y = _reference(model, x)
    return NodeTest(name, op, model.SerializeToString(),
                    (numpy_helper.from_array(x).SerializeToString(),),
                    (numpy_helper.from_array(y).SerializeToString(),))


# Concat joins activations only (a constant input is rejected, and the wheel's tests bind every
# input but the first as a constant): these feed it the graph input and ops of it. name, input
# shape, axis, and the Concat's inputs as (op, attributes) applied to x (None: x itself).
CONCAT_CASES: list[tuple[str, tuple[int, ...], int, list]] = [
    ("concat_self_4d", (1, 3, 4, 4), 1, [None, None]),
    ("concat_three_4d_negative_axis", (1, 2, 3, 3), -3,
     [None, ("MaxPool", {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}),
      ("LeakyRelu", {"alpha": 0.3})]),
    ("concat_2d_axis1", (2, 5), 1, [("LeakyRelu", {"alpha": 0.0}), None]),
    ("concat_1d", (1, 2, 5), 1, [None, ("MaxPool", {"kernel_shape": [2], "pads": [1, 0]})]),
]


def _build_concat(name: str, shape: tuple[int, ...], axis: int, parts: list) -> NodeTest:
    nodes, ins = [], []
    for i, part in enumerate(parts):
        if part is None:
            ins.append("x")
            continue
        op, attrs = part
        nodes.append(oh.make_node(op, ["x"], [f"p{i}"], **attrs))
        ins.append(f"p{i}")
    nodes.append(oh.make_node("Concat", ins, ["y"], axis=axis))
    graph = oh.make_graph(nodes, name, [oh.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 7
    model = onnx.shape_inference.infer_shapes(model)
    x = np.random.default_rng(len(name)).standard_normal(shape).astype(np.float32)
    y = _reference(model, x)
    return NodeTest(name, "Concat", model.SerializeToString(),
                    (numpy_helper.from_array(x).SerializeToString(),),
                    (numpy_helper.from_array(y).SerializeToString(),))


def extra_tests() -> list[NodeTest]:
    return [_build(*case) for case in CASES] + [_build_concat(*c) for c in CONCAT_CASES]
