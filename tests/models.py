"""ONNX model builders for the tests: small MLPs, a single MatMul, and deliberately bad models.

Every builder is deterministic: the same arguments give byte-identical models. Models pass
onnx.checker (except `checker_failing_model_bytes`, which exists to fail it), use opset 17 and
IR version 8, and name their graph input "input" and their graph output "output".

`mlp(sizes, seed)` draws the same network for every `style`: the weight W [K, N] and bias b [N]
of each layer come from the seed alone, and "gemm_t0" stores W / alpha and b / beta with alpha
and beta powers of two, so all three styles compute the same function to float rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
STYLES = ("gemm", "gemm_t0", "matmul")
# gemm_t0 layer i uses SCALES[i % 2]; powers of two keep W / alpha and b / beta exact.
_T0_SCALES = ((0.5, 2.0), (1.0, 1.0))


def _model(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgehls")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _const(array: np.ndarray, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def _layer(i: int, x: str, w: np.ndarray, b: np.ndarray, style: str) -> tuple[list, list, str]:
    """Nodes and initializers computing x @ w + b in `style`; returns (nodes, inits, output)."""
    y = f"fc{i}"
    wn, bn = f"fc{i}.weight", f"fc{i}.bias"
    if style == "gemm":
        return ([helper.make_node("Gemm", [x, wn, bn], [y], name=y, transB=1)],
                [_const(w.T, wn), _const(b, bn)], y)
    if style == "gemm_t0":
        alpha, beta = _T0_SCALES[i % 2]
        node = helper.make_node("Gemm", [x, wn, bn], [y], name=y, alpha=alpha, beta=beta, transB=0)
        return [node], [_const(w / alpha, wn), _const(b / beta, bn)], y
    if style == "matmul":
        mm = helper.make_node("MatMul", [x, wn], [f"{y}.mm"], name=f"{y}.matmul")
        add = helper.make_node("Add", [f"{y}.mm", bn], [y], name=f"{y}.add")
        return [mm, add], [_const(w, wn), _const(b, bn)], y
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def mlp(sizes: list[int], seed: int, batch: int | str = 1, style: str = "gemm",
        relu_last: bool = False, softmax: bool = False) -> onnx.ModelProto:
    """A dense network with layer widths `sizes` ([64, 40, 24, 10] is 3 layers), ReLU between.

    batch: an int gives a static batch dimension, a str a symbolic one of that name.
    style: "gemm" (Gemm transB=1), "gemm_t0" (Gemm transB=0, alpha/beta != 1 on even layers),
    "matmul" (MatMul + Add). relu_last adds a ReLU after the last layer; softmax a final Softmax.
    Weights ~ N(0, 1/sqrt(K)), biases ~ N(0, 0.1), drawn from `seed` independently of style.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least two positive widths, got {sizes}")
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "input"
    n_layers = len(sizes) - 1
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.normal(0.0, 1.0 / np.sqrt(k), size=(k, n)).astype(np.float32)
        b = rng.normal(0.0, 0.1, size=n).astype(np.float32)
        layer_nodes, layer_inits, x = _layer(i, x, w, b, style)
        nodes += layer_nodes
        inits += layer_inits
        if i < n_layers - 1 or relu_last:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [x], ["softmax"], name="softmax", axis=-1))
        x = "softmax"
    nodes[-1].output[0] = "output"  # the last tensor is the graph output; nothing reads it
    return _model(nodes,
                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, sizes[0]])],
                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, sizes[-1]])],
                  inits, f"mlp_{'_'.join(map(str, sizes))}_{style}")


def random_mlp_args(seed: int) -> dict:
    """The `mlp` arguments `random_mlp(seed)` uses, for tests that report what they built."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 5))
    # One width in ten is 1, so K=1 and N=1 layers show up in any sweep of a few dozen seeds.
    sizes = [1 if rng.random() < 0.1 else int(rng.integers(1, 71)) for _ in range(depth + 1)]
    return {"sizes": sizes, "seed": seed, "style": STYLES[int(rng.integers(len(STYLES)))],
            "relu_last": bool(rng.random() < 0.3)}


def random_mlp(seed: int, batch: int | str = 1) -> onnx.ModelProto:
    """An `mlp` of 1..4 layers, widths 1..70, random style and relu_last, all from `seed`."""
    return mlp(batch=batch, **random_mlp_args(seed))


def matmul_model(m: int, k: int, n: int, seed: int) -> onnx.ModelProto:
    """One MatMul: input [m, k] times a constant weight [k, n] ~ N(0, 1/sqrt(k)); output [m, n]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / np.sqrt(k), size=(k, n)).astype(np.float32)
    node = helper.make_node("MatMul", ["input", "weight"], ["output"], name="matmul")
    return _model([node], [helper.make_tensor_value_info("input", TensorProto.FLOAT, [m, k])],
                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, [m, n])],
                  [_const(w, "weight")], f"matmul_{m}x{k}x{n}")


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write `model` to `path` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


# --- deliberately bad models, for error tests -----------------------------------------------

UNSUPPORTED_NODE = {"LRN": "lrn1", "Tanh": "tanh1"}


def unsupported_op_model(op: str = "LRN") -> onnx.ModelProto:
    """A valid model whose node UNSUPPORTED_NODE[op] has an op the compiler does not support.

    "LRN": input [1, 1, 8, 8] -> LRN lrn1 -> Flatten -> Gemm fc1.
    "Tanh": input [1, 16] -> Gemm fc0 -> Tanh tanh1 -> Gemm fc1.
    """
    rng = np.random.default_rng(0)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])
    if op == "LRN":
        nodes = [
            helper.make_node("LRN", ["input"], ["lrn1"], name="lrn1", size=3),
            helper.make_node("Flatten", ["lrn1"], ["flat"], name="flatten"),
            helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["output"], name="fc1",
                             transB=1),
        ]
        inits = [_const(rng.normal(0, 1 / 16, (10, 64)), "fc1.weight"),
                 _const(np.zeros(10), "fc1.bias")]
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])
    elif op == "Tanh":
        nodes = [
            helper.make_node("Gemm", ["input", "fc0.weight", "fc0.bias"], ["fc0"], name="fc0",
                             transB=1),
            helper.make_node("Tanh", ["fc0"], ["tanh1"], name="tanh1"),
            helper.make_node("Gemm", ["tanh1", "fc1.weight", "fc1.bias"], ["output"],
                             name="fc1", transB=1),
        ]
        inits = [_const(rng.normal(0, 1 / 4, (12, 16)), "fc0.weight"),
                 _const(np.zeros(12), "fc0.bias"),
                 _const(rng.normal(0, 1 / 4, (10, 12)), "fc1.weight"),
                 _const(np.zeros(10), "fc1.bias")]
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16])
    else:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(UNSUPPORTED_NODE)}")
    return _model(nodes, [inp], [out], inits, f"unsupported_{op.lower()}")


def dynamic_dim_model() -> onnx.ModelProto:
    """Input ["N", "F"]: the feature dim is symbolic, which the compiler must reject (F = 16)."""
    rng = np.random.default_rng(0)
    node = helper.make_node("Gemm", ["input", "fc0.weight", "fc0.bias"], ["output"], name="fc0",
                            transB=1)
    return _model([node], [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "F"])],
                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
                  [_const(rng.normal(0, 0.25, (10, 16)), "fc0.weight"),
                   _const(np.zeros(10), "fc0.bias")], "dynamic_dim")


def checker_failing_model_bytes() -> bytes:
    """A serialized model that onnx.load parses and onnx.checker rejects.

    Node "fc0" reads "missing", a tensor no graph input, initializer or node defines.
    """
    model = mlp([8, 4], seed=0)
    model.graph.node[0].input[0] = "missing"
    return model.SerializeToString()
