"""Models for `make bench` that are built, not shipped.

The MatMul builder duplicates `matmul_model` in tests/models.py on purpose: the bench runs from a
checkout or an installed tree without the test suite, and importing tests/ from here would need a
sys.path edit and clash on the module name `models`. tests/test_models.py checks that both
builders give byte-identical models, so the copies cannot drift apart unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def matmul_model(m: int, k: int, n: int, seed: int) -> onnx.ModelProto:
    """One MatMul: input [m, k] times a constant weight [k, n] ~ N(0, 1/sqrt(k)); output [m, n]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / np.sqrt(k), size=(k, n)).astype(np.float32)
    node = helper.make_node("MatMul", ["input", "weight"], ["output"], name="matmul")
    graph = helper.make_graph(
        [node], f"matmul_{m}x{k}x{n}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [m, n])],
        initializer=[numpy_helper.from_array(w, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgehls")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def matmul_256(path: str | Path | None = None) -> onnx.ModelProto:
    """The [256, 256] x [256, 256] MatMul benchmark (seed 0); also written to `path` if given."""
    model = matmul_model(256, 256, 256, seed=0)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model.SerializeToString())
    return model
