"""Transposes around NHWC bodies (tf2onnx, tflite2onnx): the frontend keeps them, canonicalize
removes them (cancelling pairs, the input's, the classifier's, the output's), and the compiled
design streams exactly the ONNX input's bytes (issue 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_e2e import compile_and_simulate

from edgehls import golden, ir, pipeline
from edgehls.errors import DataError, UnsupportedError
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize
from edgehls.sim.tb_top import stream

FIXTURES = Path(__file__).parent / "fixtures"
RNG = np.random.default_rng(4)
N = helper.make_node


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the original model, one output per sample of x [S, *onnx_shape]."""
    sess = ort.InferenceSession(str(path))
    return np.stack([sess.run(None, {"x": s.astype(np.float32)})[0] for s in x])


def _kinds(g: ir.Graph) -> list[str]:
    return [n.op.kind for n in g.nodes()]


def _save(tmp_path: Path, nodes: list, inits: list, in_shape: list) -> Path:
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.float32 if k != "shape" else np.int64), k)
         for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path


# -- numbers: frontend and canonical graph against onnxruntime on the original model ------------


@pytest.mark.parametrize("name", ["tf_nhwc", "tf_cancel"])
def test_fixture_matches_onnxruntime(name: str) -> None:
    path = FIXTURES / f"{name}.onnx"
    g = load(path)
    x = RNG.standard_normal((3, *g.tensor("x").shape)).astype(np.float32)  # NHWC, as ONNX
    ref = _ort(path, x)
    np.testing.assert_allclose(golden.run_float_samples(g, x).reshape(ref.shape), ref,
                               atol=1e-4)
    c = Canonicalize()(g)
    c.verify()
    y = golden.run_float_samples(c, golden.model_samples(c, x))
    if y.ndim == 5:  # an output Transpose was dropped: the IR output is NCHW, ONNX's NHWC
        y = y.transpose(0, 1, 3, 4, 2)
    np.testing.assert_allclose(y.reshape(ref.shape), ref, atol=1e-4)


# -- structure ----------------------------------------------------------------------------------


def test_nhwc_classifier_structure() -> None:
    g = Canonicalize()(load(FIXTURES / "tf_nhwc.onnx"))
    assert _kinds(g) == ["Input", "Conv", "MaxPool", "Conv", "Conv"]
    assert g.tensor("x").shape == (1, 1, 8, 8)
    assert g.producer("x").op == ir.Input(perm=(0, 3, 1, 2))
    fc = g.node("fc")  # the MatMul on the (h, w, c) flatten: a full-map Conv on [1, 6, 2, 2]
    assert fc.op.kernel == (2, 2) and g.const(fc, "weight").shape == (5, 6, 2, 2)
    assert g.tensor(g.outputs[0]).shape == (1, 5, 1, 1)
    assert any("Transpose 'to_nchw' (perm [0, 3, 1, 2]) was absorbed" in n
               and "NCHW tensor [1, 1, 8, 8]" in n and "stream the same bytes" in n
               for n in g.notes)


def test_classifier_weights_are_the_permuted_rows() -> None:
    """MatMul weight row (h * W + w) * C + c multiplies NCHW element (c, h, w)."""
    g = Canonicalize()(load(FIXTURES / "tf_nhwc.onnx"))
    w = numpy_helper.to_array(next(i for i in onnx.load(str(FIXTURES / "tf_nhwc.onnx"))
                                   .graph.initializer if i.name == "fc.weight"))
    conv = g.const(g.node("fc"), "weight")  # [N, C, H, W]
    for c, h, x in np.ndindex(6, 2, 2):
        np.testing.assert_array_equal(conv[:, c, h, x], w[(h * 2 + x) * 6 + c])


def test_cancelling_pair_and_output_structure() -> None:
    g = Canonicalize()(load(FIXTURES / "tf_cancel.onnx"))
    assert _kinds(g) == ["Input", "Conv", "Conv"]
    assert g.outputs == ["conv2"] and g.tensor("conv2").shape == (1, 5, 6, 6)
    assert g.node("conv2").inputs == ("conv1",)  # t1, t2 and the Relu are gone
    assert any(n.startswith("output 'to_nhwc': Transpose 'to_nhwc' (perm [0, 2, 3, 1]) removed")
               and "streamed NHWC" in n for n in g.notes)


def test_unit_axis_transpose_is_a_reshape(tmp_path: Path) -> None:
    """GAP -> Transpose to NHWC of [1, C, 1, 1] -> Reshape -> Gemm: no data moves."""
    nodes = [N("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2]),
             N("Conv", ["t0", "w"], ["c"], pads=[1, 1, 1, 1]),
             N("GlobalAveragePool", ["c"], ["gap"]),
             N("Transpose", ["gap"], ["t"], perm=[0, 2, 3, 1]),
             N("Reshape", ["t", "shape"], ["r"]), N("Gemm", ["r", "fw"], ["y"])]
    path = _save(tmp_path, nodes, [("w", RNG.standard_normal((4, 2, 3, 3))),
                                   ("shape", [1, -1]), ("fw", RNG.standard_normal((4, 3)))],
                 [1, 5, 5, 2])
    g = Canonicalize()(load(path))
    assert _kinds(g) == ["Input", "Conv", "Conv", "Dense"]
    x = RNG.standard_normal((2, 1, 5, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(golden.run_float_samples(g, golden.model_samples(g, x)),
                               _ort(path, x), atol=1e-4)


# -- rejection ----------------------------------------------------------------------------------


def test_swap_of_h_and_w_is_rejected_by_name(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "w"], ["c"]), N("Transpose", ["c"], ["t"], name="swap_hw",
                                            perm=[0, 1, 3, 2]),
             N("Conv", ["t", "w2"], ["y"])]
    path = _save(tmp_path, nodes, [("w", RNG.standard_normal((3, 2, 3, 3))),
                                   ("w2", RNG.standard_normal((2, 3, 1, 1)))], [1, 2, 6, 7])
    with pytest.raises(UnsupportedError,
                       match=r"node 'swap_hw' \(Transpose\): perm \[0, 1, 3, 2\] of "
                             r"\[1, 3, 4, 5\] is not supported: supported are"):
        Canonicalize()(load(path))


def test_input_read_by_a_transpose_and_a_conv_is_rejected(tmp_path: Path) -> None:
    nodes = [N("Transpose", ["x"], ["t"], name="tr", perm=[0, 3, 1, 2]),
             N("Conv", ["t", "w"], ["c"]), N("Conv", ["x", "w"], ["c2"]),
             N("Add", ["c", "c2"], ["y"])]
    path = _save(tmp_path, nodes, [("w", RNG.standard_normal((3, 4, 1, 1)))], [1, 4, 4, 4])
    with pytest.raises(UnsupportedError, match=r"node 'tr' \(Transpose\): perm \[0, 3, 1, 2\]"):
        Canonicalize()(load(path))


# -- data in the ONNX model's layout ------------------------------------------------------------


def test_model_samples_converts_the_onnx_layout() -> None:
    g = Canonicalize()(load(FIXTURES / "tf_cancel.onnx"))
    x = RNG.standard_normal((4, 1, 6, 6, 3))
    want = x.transpose(0, 1, 4, 2, 3)
    np.testing.assert_array_equal(golden.model_samples(g, x), want)
    np.testing.assert_array_equal(golden.model_samples(g, x[:, 0]), want)  # batch-1 rows
    with pytest.raises(DataError, match=r"does not match model input 'x' in the ONNX model's "
                                        r"layout \[1, 6, 6, 3\]"):
        golden.model_samples(g, want)  # already NCHW: not the ONNX layout
    plain = Canonicalize()(load(FIXTURES / "digits_cnn.onnx"))  # nothing absorbed
    z = RNG.standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(golden.model_samples(plain, z), golden.as_samples(plain, z))


def test_calibration_in_the_onnx_layout() -> None:
    g = Canonicalize()(load(FIXTURES / "tf_nhwc.onnx"))
    calib = RNG.uniform(-1, 1, (16, 8, 8, 1))  # what a TensorFlow user has: [S, H, W, C]
    q = Quantize(calib=golden.model_samples(g, calib))(g)
    assert not any("random inputs" in n for n in q.notes)


# -- end to end: the bench streams golden/inputs_q.npy NHWC == the ONNX input's bytes -----------


@pytest.mark.parametrize("name", ["tf_nhwc", "tf_cancel"])
def test_compile_and_simulate(tmp_path: Path, name: str) -> None:
    """Bit-exact, cycles as predicted; and the bytes the bench streams, read in the ONNX
    input's shape, are the input onnxruntime needs to give the golden float outputs."""
    path = FIXTURES / f"{name}.onnx"
    out = tmp_path / "design"
    compile_and_simulate(path, out, name, pipeline.Options(pe=(4, 4), samples=2))
    manifest = json.loads((out / "manifest.json").read_text())
    x_q = np.load(out / "golden" / "inputs_q.npy")  # [S, N, H, W, C]: the ONNX input's shape
    onnx_shape = load(path).tensor("x").shape
    assert x_q.shape[1:] == onnx_shape and manifest["inputs"][0]["shape"] == list(onnx_shape)
    for s in x_q:  # the bench streams the ONNX input's own bytes, in order
        assert stream(s, manifest["inputs"][0]) == s.reshape(-1).tolist()
    x = x_q * manifest["inputs"][0]["scale"]
    ref = _ort(path, x)
    g = Canonicalize()(load(path))
    y = golden.to_model(g, g.outputs[0], golden.run_float_samples(g, golden.model_samples(g, x)))
    assert y.shape == ref.shape and np.load(out / "golden" / "outputs_q.npy").shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-4)
