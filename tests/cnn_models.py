"""The MLPerf Tiny reference networks, built with onnx.helper from a seed (issue 4).

- `resnet8`: image classification, [1, 3, 32, 32] -> 10; three residual stacks (16, 32, 64).
- `ds_cnn`: keyword spotting, [1, 1, 49, 10] -> 12; a 10x4 stride-2 conv, four depthwise-
  separable blocks.
- `mobilenet_v1_025`: visual wake words, MobileNetV1 width 0.25, [1, 3, 96, 96] -> 2.
- `fc_autoencoder`: anomaly detection, 640 -> 128x4 -> 8 -> 128x4 -> 640.
- `resnet8_small`, `ds_cnn_small`: the same topologies on small maps, for fast RTL tests.

Every builder is deterministic (same arguments, byte-identical model), passes onnx.checker
with full_check, uses opset 17 and IR version 8, and names its graph input "input" and its
output "output". Weights are He-scaled normals and every Conv/Gemm is followed by a
BatchNormalization with random but plausible statistics (gamma ~ 1, beta ~ 0, running mean ~ 0,
running variance ~ 1), so activations stay O(1) through the network. Float weights are random:
these models test the compiler and the hardware, not accuracy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


class _Net:
    """Accumulates nodes and initializers; each layer method returns its output tensor name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(
            np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, ins: list[str], name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name

    def conv(self, x: str, name: str, cin: int, cout: int, kernel: tuple[int, int],
             stride: int = 1, group: int = 1, pads: tuple[int, int, int, int] | None = None,
             bias: bool = False) -> str:
        """Conv with He-normal weights [cout, cin / group, kh, kw]; pads default to SAME for
        stride 1 (symmetric, kernel // 2), given explicitly otherwise."""
        kh, kw = kernel
        fan_in = cin // group * kh * kw
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(cout, cin // group, kh, kw))
        ins = [x, self.const(f"{name}.weight", w)]
        if bias:
            ins.append(self.const(f"{name}.bias", self.rng.normal(0.0, 0.1, size=cout)))
        if pads is None:
            pads = (kh // 2, kw // 2, (kh - 1) // 2, (kw - 1) // 2)
        return self.node("Conv", ins, name, kernel_shape=[kh, kw], strides=[stride, stride],
                         pads=list(pads), group=group)

    def bn(self, x: str, name: str, c: int) -> str:
        rng = self.rng
        ins = [x,
               self.const(f"{name}.scale", rng.uniform(0.8, 1.2, size=c)),
               self.const(f"{name}.bias", rng.normal(0.0, 0.1, size=c)),
               self.const(f"{name}.mean", rng.normal(0.0, 0.1, size=c)),
               self.const(f"{name}.var", rng.uniform(0.5, 1.5, size=c))]
        return self.node("BatchNormalization", ins, name, epsilon=1e-3)

    def relu(self, x: str, name: str) -> str:
        return self.node("Relu", [x], name)

    def conv_bn(self, x: str, name: str, cin: int, cout: int, kernel: tuple[int, int],
                relu: bool = True, **kw: object) -> str:
        y = self.bn(self.conv(x, name, cin, cout, kernel, **kw), f"{name}.bn", cout)
        return self.relu(y, f"{name}.relu") if relu else y

    def gemm(self, x: str, name: str, k: int, n: int, scale: float | None = None) -> str:
        """Gemm transB=1 with weight [n, k] ~ N(0, scale or sqrt(2 / k)) and bias ~ N(0, 0.1)."""
        std = np.sqrt(2.0 / k) if scale is None else scale
        w = self.const(f"{name}.weight", self.rng.normal(0.0, std, size=(n, k)))
        b = self.const(f"{name}.bias", self.rng.normal(0.0, 0.1, size=n))
        return self.node("Gemm", [x, w, b], name, transB=1)

    def model(self, name: str, in_shape: list[int], out_shape: list[int]) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "output"  # the last tensor is the graph output
        graph = helper.make_graph(
            self.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             in_shape)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
            initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="edgehls")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model


def _head(net: _Net, x: str, c: int, hw: tuple[int, int], classes: int,
          global_pool: bool = False) -> str:
    """Average pool over the whole map, Flatten, Gemm to `classes` logits."""
    if global_pool:
        x = net.node("GlobalAveragePool", [x], "pool")
    else:
        x = net.node("AveragePool", [x], "pool", kernel_shape=list(hw), strides=list(hw))
    x = net.node("Flatten", [x], "flatten", axis=1)
    return net.gemm(x, "fc", c, classes, scale=1.0 / np.sqrt(c))


# --- ResNet-8 (MLPerf Tiny image classification) ---------------------------------------------

def _resnet8(seed: int, size: int, widths: tuple[int, int, int], classes: int, name: str,
             global_pool: bool) -> onnx.ModelProto:
    net = _Net(seed)
    x = net.conv_bn("input", "conv1", 3, widths[0], (3, 3))
    cin = widths[0]
    for s, cout in enumerate(widths, start=1):
        stride = 1 if s == 1 else 2
        p = f"stack{s}"
        # strided 3x3: pad (1, 1, 0, 0) would be TF SAME; symmetric 1 is what PyTorch exports
        y = net.conv_bn(x, f"{p}.conv1", cin, cout, (3, 3), stride=stride, pads=(1, 1, 1, 1))
        y = net.conv_bn(y, f"{p}.conv2", cout, cout, (3, 3), relu=False)
        if stride != 1 or cin != cout:
            x = net.conv_bn(x, f"{p}.shortcut", cin, cout, (1, 1), relu=False, stride=stride,
                            pads=(0, 0, 0, 0))
        x = net.relu(net.node("Add", [y, x], f"{p}.add"), f"{p}.relu")
        cin = cout
    hw = size // 4
    _head(net, x, cin, (hw, hw), classes, global_pool)
    return net.model(name, [1, 3, size, size], [1, classes])


def resnet8(seed: int = 0, global_pool: bool = False) -> onnx.ModelProto:
    """MLPerf Tiny ResNet-8: [1, 3, 32, 32] -> Conv3x3 16 + BN + Relu -> three residual stacks
    (16, 32, 64 filters; stacks 2 and 3 stride 2 with a 1x1 strided Conv+BN shortcut) ->
    AveragePool 8x8 (or GlobalAveragePool) -> Flatten -> Gemm 10."""
    return _resnet8(seed, 32, (16, 32, 64), 10, "resnet8", global_pool)


def resnet8_small(seed: int = 0, global_pool: bool = False) -> onnx.ModelProto:
    """ResNet-8's topology on [1, 3, 8, 8] with 4, 8, 16 filters: AveragePool 2x2 -> Gemm 10."""
    return _resnet8(seed, 8, (4, 8, 16), 10, "resnet8_small", global_pool)


# --- DS-CNN (MLPerf Tiny keyword spotting) ---------------------------------------------------

def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (begin, end) for one axis: the extra pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _ds_cnn(seed: int, in_hw: tuple[int, int], filters: int, blocks: int, classes: int,
            name: str, global_pool: bool) -> onnx.ModelProto:
    net = _Net(seed)
    (t0, t1), (f0, f1) = _same_pads(in_hw[0], 10, 2), _same_pads(in_hw[1], 4, 2)
    x = net.conv_bn("input", "conv1", 1, filters, (10, 4), stride=2, pads=(t0, f0, t1, f1),
                    bias=True)
    for b in range(1, blocks + 1):
        x = net.conv_bn(x, f"dw{b}", filters, filters, (3, 3), group=filters, bias=True)
        x = net.conv_bn(x, f"pw{b}", filters, filters, (1, 1), bias=True)
    hw = (-(-in_hw[0] // 2), -(-in_hw[1] // 2))
    _head(net, x, filters, hw, classes, global_pool)
    return net.model(name, [1, 1, *in_hw], [1, classes])


def ds_cnn(seed: int = 0, global_pool: bool = False) -> onnx.ModelProto:
    """MLPerf Tiny DS-CNN: [1, 1, 49, 10] -> Conv 10x4 stride 2, 64 filters, pads SAME (as TF:
    (4, 1, 5, 2)) + BN + Relu -> four blocks of depthwise 3x3 + BN + Relu, pointwise 1x1 64 +
    BN + Relu -> AveragePool 25x5 (as the Keras reference exports; or GlobalAveragePool) ->
    Flatten -> Gemm 12."""
    return _ds_cnn(seed, (49, 10), 64, 4, 12, "ds_cnn", global_pool)


def ds_cnn_small(seed: int = 0, global_pool: bool = False) -> onnx.ModelProto:
    """DS-CNN's topology on [1, 1, 12, 10] with 8 filters: the map after conv1 is 6x5."""
    return _ds_cnn(seed, (12, 10), 8, 4, 12, "ds_cnn_small", global_pool)


# --- MobileNetV1 0.25 (MLPerf Tiny visual wake words) ----------------------------------------

# (output channels at width 1.0, stride) of the 13 depthwise-separable blocks
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                     (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(seed: int = 0, alpha: float = 0.25, size: int = 96, classes: int = 2
                 ) -> onnx.ModelProto:
    """MobileNetV1 of width `alpha`: Conv3x3 stride 2 (32 alpha) + BN + Relu -> 13 blocks of
    depthwise 3x3 (stride 1 or 2) + BN + Relu, pointwise 1x1 + BN + Relu -> GlobalAveragePool ->
    Flatten -> Gemm. Strided convs pad TF SAME, (0, 0, 1, 1) on even maps; ReLU, not ReLU6, as
    in the MLPerf Tiny VWW reference."""
    net = _Net(seed)
    hw = size

    def pads(stride: int) -> tuple[int, int, int, int]:
        b, e = _same_pads(hw, 3, stride)
        return (b, b, e, e)

    c = int(32 * alpha)
    x = net.conv_bn("input", "conv1", 3, c, (3, 3), stride=2, pads=pads(2))
    hw = -(-hw // 2)
    for i, (width, stride) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = net.conv_bn(x, f"dw{i}", c, c, (3, 3), stride=stride, group=c, pads=pads(stride))
        hw = -(-hw // stride)
        cout = int(width * alpha)
        x = net.conv_bn(x, f"pw{i}", c, cout, (1, 1))
        c = cout
    _head(net, x, c, (hw, hw), classes, global_pool=True)
    return net.model(f"mobilenet_v1_{alpha:g}_{size}", [1, 3, size, size], [1, classes])


def mobilenet_v1_025(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV1 width 0.25 on [1, 3, 96, 96], 2 classes (channels 8 .. 256)."""
    return mobilenet_v1(seed, 0.25, 96, 2)


# --- FC autoencoder (MLPerf Tiny anomaly detection) ------------------------------------------

def fc_autoencoder(seed: int = 0, inputs: int = 640, hidden: int = 128, bottleneck: int = 8
                   ) -> onnx.ModelProto:
    """MLPerf Tiny AD autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640; every layer Gemm +
    BatchNormalization + Relu except the last, which is linear."""
    net = _Net(seed)
    widths = [inputs, *[hidden] * 4, bottleneck, *[hidden] * 4, inputs]
    x = "input"
    last = len(widths) - 2
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        x = net.gemm(x, f"fc{i}", k, n)
        if i < last:
            x = net.relu(net.bn(x, f"fc{i}.bn", n), f"fc{i}.relu")
    return net.model("fc_autoencoder", [1, inputs], [1, inputs])


def ds_cnn_gap(seed: int = 0) -> onnx.ModelProto:
    """`ds_cnn` with GlobalAveragePool in place of AveragePool 25x5 (the same function)."""
    return ds_cnn(seed, global_pool=True)


BUILDERS = {"resnet8": resnet8, "resnet8_small": resnet8_small, "ds_cnn": ds_cnn,
            "ds_cnn_gap": ds_cnn_gap, "ds_cnn_small": ds_cnn_small,
            "mobilenet_v1_025": mobilenet_v1_025, "fc_autoencoder": fc_autoencoder}
#: input and output shapes of each builder's model
SHAPES = {"resnet8": ((1, 3, 32, 32), (1, 10)), "resnet8_small": ((1, 3, 8, 8), (1, 10)),
          "ds_cnn": ((1, 1, 49, 10), (1, 12)), "ds_cnn_gap": ((1, 1, 49, 10), (1, 12)),
          "ds_cnn_small": ((1, 1, 12, 10), (1, 12)),
          "mobilenet_v1_025": ((1, 3, 96, 96), (1, 2)), "fc_autoencoder": ((1, 640), (1, 640))}
