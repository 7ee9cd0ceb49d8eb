"""Sigmoid, HardSigmoid and HardSwish as lookup tables (issue 4): the table numerics, the
canonical form (an identity layer where the input is not a fresh layer output), the fused
quantized layer (const 'lut', the error bound in the notes), the ROM image, and designs
bit-exact in Icarus with the cycle model's extra table stage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_e2e import compile_and_simulate

from edgehls import golden, ir, numerics, pipeline, romgen, tiler
from edgehls.frontend import load
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

N = helper.make_node


def _w(name: str, *shape: int, seed: int = 0, scale: float = 0.5) -> onnx.TensorProto:
    value = np.random.default_rng(seed).normal(0.0, scale, shape)
    return numpy_helper.from_array(value.astype(np.float32), name)


def table_net(path: Path) -> Path:
    """Conv -> HardSwish (fused) -> MaxPool -> Sigmoid (after a pool: an identity layer) ->
    Conv -> HardSigmoid(0.25, 0.4) (fused) -> Flatten -> Gemm -> Sigmoid (fused, output)."""
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             N("HardSwish", ["c1"], ["h1"]),
             N("MaxPool", ["h1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             N("Sigmoid", ["p1"], ["s1"]),
             N("Conv", ["s1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             N("HardSigmoid", ["c2"], ["hs"], alpha=0.25, beta=0.4),
             N("Flatten", ["hs"], ["f"]),
             N("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
             N("Sigmoid", ["g"], ["y"])]
    inits = [_w("w1", 6, 3, 3, 3, seed=1), _w("b1", 6, seed=2, scale=0.1),
             _w("w2", 5, 6, 3, 3, seed=3, scale=0.3), _w("b2", 5, seed=4, scale=0.1),
             _w("w3", 4, 80, seed=5, scale=0.2), _w("b3", 4, seed=6, scale=0.1)]
    graph = helper.make_graph(
        nodes, "tables", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return table_net(tmp_path_factory.mktemp("tables") / "model.onnx")


CALIB = np.random.default_rng(3).uniform(-1, 1, (32, 3, 8, 8)).astype(np.float32)


def test_table_numerics() -> None:
    x = np.linspace(-8, 8, 101)
    np.testing.assert_allclose(numerics.table_function("sigmoid", x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(numerics.table_function("hardsigmoid", x, 0.25, 0.4),
                               np.clip(0.25 * x + 0.4, 0, 1))
    np.testing.assert_allclose(numerics.table_function("hardswish", x),
                               x * np.clip(x + 3, 0, 6) / 6)
    t = numerics.build_table("sigmoid", 8, 4, 8, 0, 255)
    assert t.shape == (256,) and t.dtype == np.int64
    z = np.arange(-128, 128)
    np.testing.assert_array_equal(numerics.lookup(z, t), np.clip(np.floor(
        255.99 * 0 + 256 / (1 + np.exp(-z / 16)) + 0.5), 0, 255))
    # the table's own error is half an output LSB (rounding) unless the output saturates
    err = numerics.table_error("sigmoid", t, 4, 8, -128, 127)
    assert err <= 2.0 ** -8 and numerics.table_error("sigmoid", t, 4, 8, -20, 20) <= 2.0 ** -9
    hs = numerics.build_table("hardswish", 4, 1, 2, -8, 7)
    np.testing.assert_array_equal(numerics.lookup(np.array([-8, -3, 0, 6, 7]), hs),
                                  [0, -1, 0, 7, 7])  # x = -4, -1.5, 0, 3, 3.5 at scale 1/2


def test_canonical_and_float(net: Path) -> None:
    g = load(net)
    assert [n.op.fn for n in g if isinstance(n.op, ir.TableAct)] == [
        "hardswish", "sigmoid", "hardsigmoid", "sigmoid"]
    c = Canonicalize()(g)
    c.verify()
    # the Sigmoid after the MaxPool got an identity layer to fuse into
    assert c.node("Sigmoid_3.in").op.group == 6 and c.node("Sigmoid_3").inputs == (
        "p1.Sigmoid_3",)
    sess = ort.InferenceSession(str(net))
    for x in CALIB[:4]:
        ref = sess.run(None, {"x": x[None]})[0]
        for graph in (g, c):
            np.testing.assert_allclose(golden.run_float(graph, x[None]).reshape(ref.shape),
                                       ref, atol=1e-6)


def test_quantized_fusion(net: Path) -> None:
    c = Canonicalize()(load(net))
    q = Quantize(calib=CALIB)(c)
    q.verify()
    assert not any(isinstance(n.op, ir.TableAct) for n in q)
    luts = {n.name: n for n in q if n.const_name("lut")}
    assert set(luts) == {"Conv_0", "Sigmoid_3.in", "Conv_4", "Gemm_7"}
    for name, fn, signed in (("Conv_0", "hardswish", True), ("Gemm_7", "sigmoid", False)):
        node = luts[name]
        out = q.tensor(node.outputs[0]).q
        assert out.signed == signed
        frac = int(q.const(node, "lut_frac")[0])
        np.testing.assert_array_equal(q.const(node, "lut"), numerics.build_table(
            fn, 8, frac, out.frac, out.lo, out.hi))
    notes = [n for n in q.notes if "entry table: max |error|" in n]
    assert len(notes) == 4
    # half an LSB of rounding, more where a code beyond the calibrated range saturates
    assert all(float(n.split("max |error| ")[1].split()[0]) <= 1.0 for n in notes), notes
    ref = golden.run_float_samples(c, CALIB)
    got = golden.dequantize_output(q, golden.run_int_samples(q, golden.quantize_input(q, CALIB)))
    assert np.abs(got.reshape(ref.shape) - ref).max() <= 0.05  # sigmoid outputs, 8 bits


def test_rom_and_cycle_model(net: Path) -> None:
    q = Quantize(calib=CALIB)(Canonicalize()(load(net)))
    s = tiler.schedule(q, 4, 4)
    assert s.xlat == 1 and tiler.drain(4, 4, s.xlat) == 20
    assert (s.decide, s.load, s.total_cycles) == tiler.cycle_model(s.tiles, 4, 4, 1)
    p = romgen.hw_params(q, s)
    assert p.NLUT == 4 and p.LIW == 2 and p.LUT_DEPTH == 4 * 256
    files = romgen.rom_images(q, s, p)
    words = [int(w, 16) for w in files["lut.hex"][0].split()]
    ids = romgen.lut_ids(q)
    assert list(ids) == ["Conv_0", "Sigmoid_3.in", "Conv_4", "Gemm_7"]
    for name, t in ids.items():
        table = q.const(q.node(name), "lut")
        got = [w - (1 << p.AW) if w >> (p.AW - 1) else w for w in words[t * 256:(t + 1) * 256]]
        assert got == table.tolist()


def test_tables_e2e_4x4(tmp_path: Path, net: Path) -> None:
    opts = pipeline.Options(pe=(4, 4), samples=2, calib=CALIB)
    out = tmp_path / "design"
    compile_and_simulate(net, out, "table_net", opts)
    if shutil.which("verilator"):  # the design with a table stage lints clean, no waiver
        cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path / "obj"), "-f",
               "filelist.f", "--top-module", "edgehls_top"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("pe,bits", [((3, 5), (8, 8)), ((8, 8), (6, 5))])
def test_tables_e2e_slow(tmp_path: Path, net: Path, pe: tuple[int, int],
                         bits: tuple[int, int]) -> None:
    opts = pipeline.Options(pe=pe, wbits=bits[0], abits=bits[1], samples=2, calib=CALIB)
    compile_and_simulate(net, tmp_path / "design", "table_net", opts)
