"""End to end: compile an ONNX model, simulate the design in Icarus, demand bit-exact outputs and
run cycles equal to the tiler's cycle model.

The default run simulates a representative handful; `pytest -m "slow or not slow"` runs the
whole matrix: edge-case and random MLPs x array shapes x bit widths. A failure message names
the model, the array and the bits, so it is a reproducer on its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from models import matmul_model, mlp, random_mlp, random_mlp_args, save

from edgehls import pipeline, simulate

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits_mlp"
SAMPLES = 3  # golden samples per matrix case; batch models carry several rows each


@dataclass(frozen=True)
class Case:
    """A model to compile: how to build it, and how to describe it in a failure."""

    build: Callable[[], onnx.ModelProto]
    desc: str
    input_shape: dict[str, tuple[int, ...]] | None = None


def _mlp(*args, **kwargs) -> Case:
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return Case(lambda: mlp(*args, **kwargs), f"mlp({shown})")


def _random(seed: int, batch: int | str = 1) -> Case:
    return Case(lambda: random_mlp(seed, batch=batch),
                f"random_mlp({seed}, batch={batch!r}) = mlp(**{random_mlp_args(seed)})")


# Edge cases by name. Widths are chosen not to be multiples of the array sides below.
MODELS: dict[str, Case] = {
    "k1": _mlp([1, 6, 3], seed=11),
    "n1": _mlp([9, 1], seed=12),
    "k1n1": _mlp([1, 1], seed=13),
    "n1_inner": _mlp([20, 1, 16, 3, 8], seed=14, style="gemm_t0"),
    "ragged": _mlp([13, 11, 7], seed=15, style="gemm_t0"),
    "wide": _mlp([37, 70, 19], seed=16, style="matmul", relu_last=True),
    "batch3": _mlp([10, 7, 5], seed=17, batch=3),
    "batch2": _mlp([9, 5, 3], seed=22, batch=2, style="gemm_t0"),
    "batch5": _mlp([13, 6, 4], seed=18, batch=5, style="matmul", relu_last=True),
    "batch17": _mlp([11, 9, 6], seed=23, batch=17, relu_last=True),
    "symbolic": _mlp([10, 7, 5], seed=19, batch="N"),
    "symbolic_as4": Case(lambda: mlp([10, 7, 5], seed=19, batch="N"),
                         "mlp([10, 7, 5], seed=19, batch='N'), input_shape input=(4, 10)",
                         {"input": (4, 10)}),
    "softmax": _mlp([12, 8, 4], seed=20, softmax=True),
    "matmul": Case(lambda: matmul_model(3, 9, 5, seed=21), "matmul_model(3, 9, 5, seed=21)"),
    **{f"random{s}": _random(s) for s in range(8)},
    "random4_batch3": _random(4, batch=3),
    "random11_batch2": _random(11, batch=2),
}
# B = lcm(R, C): R, C, R*C, and neither (6x4: B = 12)
PES = [(1, 1), (2, 2), (4, 8), (8, 4), (16, 16), (3, 5), (5, 3), (6, 4), (1, 8)]
BITS = [(4, 4), (8, 8), (12, 8), (16, 16), (2, 2), (4, 8), (8, 4)]
BITS_MODELS = ["ragged", "batch5", "random3"]
BITS_PES = [(4, 8), (3, 5)]

# (model, pe, (wbits, abits)) simulated by the default run; everything else is slow.
DEFAULT = {
    ("random6", (4, 8), (8, 8)),
    ("random7", (8, 4), (8, 8)),
    ("batch3", (2, 2), (8, 8)),
    ("k1n1", (3, 5), (8, 8)),
    ("ragged", (4, 8), (16, 16)),
    ("batch5", (3, 5), (4, 4)),
    ("symbolic", (16, 16), (8, 8)),
}


def _pe_id(pe: tuple[int, int]) -> str:
    return f"{pe[0]}x{pe[1]}"


def _matrix() -> list:
    cases = [(name, pe, (8, 8)) for name in MODELS for pe in PES]
    cases += [(name, pe, bits) for name in BITS_MODELS for pe in BITS_PES for bits in BITS
              if bits != (8, 8)]
    return [pytest.param(*c, id=f"{c[0]}-{_pe_id(c[1])}-w{c[2][0]}a{c[2][1]}",
                         marks=() if c in DEFAULT else pytest.mark.slow)
            for c in cases]


def compile_and_simulate(model: Path, out: Path, what: str, opts: pipeline.Options,
                         seed: int = 1, gaps: float = 0.3) -> dict:
    """Compile and simulate; fail with a message that reproduces the case unless the design is
    bit exact and its run cycles equal the cycle model's."""
    pipeline.compile_model(model, out, opts, force=True)
    case = (f"{what} at --pe {_pe_id(opts.pe)} --wbits {opts.wbits} --abits {opts.abits}, "
            f"simulated with seed={seed}, gaps={gaps}")
    try:
        result = simulate.simulate(out, seed=seed, gaps=gaps)
    except simulate.SimulationError:
        pytest.fail(f"{case}: the bench stopped: {_last_error(out / 'sim' / 'sim.log')}; "
                    f"see {out / 'sim'}")
    predicted = result["predicted_cycles"]
    assert result["passed"] and result["mismatches"] == 0 and result["cycles"] == predicted, (
        f"{case}: {result['mismatches']} mismatches, run cycles {result['cycles']} vs predicted "
        f"{predicted}; {_describe(result['per_sample'], predicted)}; see {out / 'sim'}")
    assert result["samples"] == opts.samples
    return result


def _last_error(log: Path) -> str:
    """The exception the cocotb bench died with, from its log."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [ln.strip() for ln in lines if re.match(r"\s*\w+(Error|Exception): ", ln)]
    return errors[-1] if errors else f"no exception in {log.name}"


def _describe(per_sample: list[dict], predicted: int | None = None) -> str:
    """The samples that failed: mismatching elements, stream-rule errors, run cycles."""
    parts = []
    for r in per_sample:
        if r["passed"] and r["mismatches"] == 0 and r["cycles"] == (predicted or r["cycles"]):
            continue
        text = f"sample {r['sample']}: {r['mismatches']} mismatches, cycles {r['cycles']}"
        if r.get("got") is not None:
            bad = [i for i, (a, b) in enumerate(zip(r["got"], r["expected"], strict=True))
                   if a != b]
            text += f", first at {bad[:8]}: got {[r['got'][i] for i in bad[:8]]} expected " \
                    f"{[r['expected'][i] for i in bad[:8]]}"
        parts.append(text + "".join(f", {e}" for e in r["errors"]))
    return "; ".join(parts) or "no failing sample"


def digits_calib() -> np.ndarray:
    with np.load(DIGITS / "data.npz") as data:
        return data["x_calib"]


def test_digits_mlp_8x8(tmp_path: Path) -> None:
    opts = pipeline.Options(pe=(8, 8), samples=8, calib=digits_calib())
    compile_and_simulate(DIGITS / "model.onnx", tmp_path / "design", "examples/digits_mlp",
                         opts)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [b for b in BITS if b != (8, 8)], ids=lambda b: f"w{b[0]}a{b[1]}")
@pytest.mark.parametrize("pe", [(8, 8), (3, 5)], ids=_pe_id)
def test_digits_mlp_bits(tmp_path: Path, pe: tuple[int, int], bits: tuple[int, int]) -> None:
    opts = pipeline.Options(pe=pe, wbits=bits[0], abits=bits[1], samples=4, calib=digits_calib())
    compile_and_simulate(DIGITS / "model.onnx", tmp_path / "design", "examples/digits_mlp",
                         opts)


@pytest.mark.slow
@pytest.mark.parametrize("gaps", [0.0, 0.9])
@pytest.mark.parametrize("name", ["batch5", "random2"])
def test_stream_gaps(tmp_path: Path, name: str, gaps: float) -> None:
    """Back-to-back beats, and mostly idle input with mostly stalled output."""
    case = MODELS[name]
    model = save(case.build(), tmp_path / "model.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=SAMPLES, abits=4)
    compile_and_simulate(model, tmp_path / "design", case.desc, opts, seed=7, gaps=gaps)


@pytest.mark.parametrize(("name", "pe", "bits"), _matrix())
def test_mlp(tmp_path: Path, name: str, pe: tuple[int, int], bits: tuple[int, int]) -> None:
    case = MODELS[name]
    model = save(case.build(), tmp_path / "model.onnx")
    opts = pipeline.Options(pe=pe, wbits=bits[0], abits=bits[1], samples=SAMPLES,
                            input_shape=case.input_shape)
    compile_and_simulate(model, tmp_path / "design", case.desc, opts)


# Compression in RTL: skipped zero tiles and codebook-decoded shared weights, bit-exact with
# the cycle model. (model, pe, prune spec, share bits); the first two run by default.
COMPRESSED = [
    ("wide", (4, 8), "tile:0.5", 4),
    ("batch5", (3, 5), "unstructured:0.6", 3),
    ("ragged", (2, 2), "tile:0.9", 0),  # whole column groups pruned: bias-only passes
    ("random3", (8, 4), None, 2),
    ("batch17", (5, 3), "global:0.7", 5),
    ("n1_inner", (1, 1), "tile:0.5", 8),
]


@pytest.mark.parametrize(
    ("name", "pe", "prune", "share"),
    [pytest.param(*c, marks=() if i < 2 else pytest.mark.slow,
                  id=f"{c[0]}-{_pe_id(c[1])}-{c[2]}-share{c[3]}") for i, c in
     enumerate(COMPRESSED)])
def test_compressed_mlp(tmp_path: Path, name: str, pe: tuple[int, int], prune: str | None,
                        share: int) -> None:
    case = MODELS[name]
    model = save(case.build(), tmp_path / "model.onnx")
    opts = pipeline.Options(pe=pe, samples=SAMPLES, prune=prune, share_bits=share)
    desc = f"{case.desc} --prune {prune} --share-bits {share}"
    compile_and_simulate(model, tmp_path / "design", desc, opts)
    rep = json.loads((tmp_path / "design" / "report.json").read_text())
    if prune and prune.startswith("tile"):
        assert rep["total"]["skipped_tiles"] > 0
    if share:
        assert all(layer["share_bits"] == share for layer in rep["layers"])
    t = rep["total"]
    assert t["weight_rom_bits"] == t["weight_bits_stored"]


_COMPILE = """
import sys
from pathlib import Path
import numpy as np
from edgehls import pipeline
data = {}
if sys.argv[1] != "-":  # calibration and evaluation data: the report's accuracy section
    with np.load(sys.argv[1]) as d:
        data = {"calib": d["x_calib"], "eval_x": d["x_test"], "eval_y": d["y_test"]}
opts = pipeline.Options(pe=(4, 8), samples=8, **data)
pipeline.compile_model(Path(sys.argv[2]), Path(sys.argv[3]), opts, force=True)
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("model", ["digits", "symbolic"])
def test_compile_is_deterministic(tmp_path: Path, model: str) -> None:
    """Two compiles, in fresh interpreters with different hash seeds and into different
    directories, write the same files byte for byte."""
    if model == "digits":
        src, data = DIGITS / "model.onnx", str(DIGITS / "data.npz")
    else:
        src, data = save(MODELS[model].build(), tmp_path / "model.onnx"), "-"
    outs = [tmp_path / "a", tmp_path / "elsewhere" / "b"]
    for hash_seed, out in zip(("1", "2"), outs, strict=True):
        subprocess.run([sys.executable, "-c", _COMPILE, data, str(src),
                        str(out)], check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
    a, b = (_tree(o) for o in outs)
    assert sorted(a) == sorted(b)
    assert "manifest.json" in a and any(f.startswith("rtl/") for f in a)
    differ = [f for f in a if a[f] != b[f]]
    assert not differ, f"compiling {src.name} twice gave different {differ}"


def test_4d_input_read_by_a_dense_streams_row_major(tmp_path: Path) -> None:
    """A [1, C, H, W] graph input flattened into a Gemm (C > 1, H*W > 1): the Dense reads its
    rows in ONNX (row-major) order, so the manifest says so and the bench streams it that way."""
    rng = np.random.default_rng(0)
    nodes = [onnx.helper.make_node("Flatten", ["x"], ["f"]),
             onnx.helper.make_node("Gemm", ["f", "w"], ["y"])]
    graph = onnx.helper.make_graph(
        nodes, "in4d", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                           [1, 2, 3, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.numpy_helper.from_array(rng.standard_normal((18, 4)).astype(np.float32), "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "in4d.onnx")
    compile_and_simulate(path, tmp_path / "design", "Flatten+Gemm on [1, 2, 3, 3]",
                         pipeline.Options(pe=(4, 4), samples=2))
    manifest = json.loads((tmp_path / "design" / "manifest.json").read_text())
    assert manifest["inputs"][0]["stream_order"] == "row-major"


# Sparsity-encoded weight ROM (--encode): tile rows stored as bitmaps, decoded at one row per
# load cycle, so cycles equal the unchanged cycle model; combined with weight sharing and with
# skipped tiles (tile pruning of one layer by the compression config). (model, pe, prune,
# share bits, per-layer tile pruning, encode); the first two (two array sizes) run by default.
ENCODED = [
    ("wide", (2, 4), "unstructured:0.8", 3, "fc1.matmul", "bitmap"),
    ("wide", (8, 8), "unstructured:0.75", 4, "fc0.matmul", "bitmap-z"),
    ("batch17", (5, 3), "global:0.85", 0, None, "auto"),
    ("wide", (16, 16), "unstructured:0.9", 0, "fc0.matmul", "auto"),
]


@pytest.mark.parametrize(
    ("name", "pe", "prune", "share", "tiled", "encode"),
    [pytest.param(*c, marks=() if i < 2 else pytest.mark.slow,
                  id=f"{c[0]}-{_pe_id(c[1])}-{c[2]}-share{c[3]}-{c[5]}") for i, c in
     enumerate(ENCODED)])
def test_encoded_weights(tmp_path: Path, name: str, pe: tuple[int, int], prune: str, share: int,
                         tiled: str | None, encode: str) -> None:
    case = MODELS[name]
    model = save(case.build(), tmp_path / "model.onnx")
    config = {"layers": {tiled: {"prune": "tile:0.5"}}} if tiled else None
    opts = pipeline.Options(pe=pe, samples=SAMPLES, prune=prune, share_bits=share,
                            compress=config, encode=encode)
    desc = (f"{case.desc} --prune {prune} --share-bits {share} --encode {encode}"
            + (f", {tiled} tile:0.5" if tiled else ""))
    compile_and_simulate(model, tmp_path / "design", desc, opts)
    rep = json.loads((tmp_path / "design" / "report.json").read_text())
    t = rep["total"]
    formats = {ly["encoding"] for ly in rep["layers"]}
    assert formats - {"raw"} and (encode == "auto" or formats == {encode})
    assert t["weight_bits_stored"] < t["weight_bits_unencoded"]
    assert t["weight_rom_bits"] == t["weight_bits_stored"]
    if tiled:
        assert t["skipped_tiles"] > 0
    # the same compile with raw rows: the same schedule and cycles, the same golden outputs
    raw = tmp_path / "raw"
    pipeline.compile_model(model, raw, dataclasses.replace(opts, encode="raw"), force=True)
    raw_rep = json.loads((raw / "report.json").read_text())
    assert raw_rep["total"]["predicted_cycles"] == t["predicted_cycles"]
    assert raw_rep["total"]["weight_bits_stored"] == t["weight_bits_unencoded"]
    for f in ("golden/outputs_q.npy", "rom/schedule.hex"):
        assert (raw / f).read_bytes() == (tmp_path / "design" / f).read_bytes(), f
