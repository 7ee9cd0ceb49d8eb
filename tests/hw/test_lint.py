"""`verilator --lint-only -Wall` is clean for every hand-written block, as top, at several
parameter points (a warning at any of them exits non-zero)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .runner import HW

ECP5_MODEL = str(Path(__file__).resolve().parent / "ecp5_mult18x18d.v")
CASES = [
    ("edgehls_mult", ["mult.v"], {}),
    ("edgehls_mult", ["mult.v"], {"IN_REG": 0}),
    # the ECP5 version, on the test model of the primitive (tests/hw/ecp5_mult18x18d.v)
    ("edgehls_mult", [ECP5_MODEL, "ecp5/mult.v"], {}),
    ("edgehls_mult", [ECP5_MODEL, "ecp5/mult.v"], {"AW": 18, "BW": 17, "IN_REG": 0}),
    ("edgehls_mult", [ECP5_MODEL, "ecp5/mult.v"], {"AW": 20, "BW": 8}),
    ("edgehls_pe", ["mult.v", "pe.v"], {}),
    ("edgehls_pe", ["mult.v", "pe.v"], {"AW": 17, "WW": 16, "ACC_W": 48}),
    ("edgehls_systolic_array", ["mult.v", "pe.v", "systolic_array.v"], {}),
    ("edgehls_systolic_array", ["mult.v", "pe.v", "systolic_array.v"], {"R": 1, "C": 1}),
    ("edgehls_systolic_array", ["mult.v", "pe.v", "systolic_array.v"], {"R": 3, "C": 2}),
    ("edgehls_postproc", ["mult.v", "postproc.v"], {}),
    ("edgehls_postproc", ["mult.v", "postproc.v"], {"ACC_W": 20, "OUT_W": 5, "TW": 3}),
    ("edgehls_skid_buffer", ["skid_buffer.v"], {}),
    ("edgehls_skid_buffer", ["skid_buffer.v"], {"W": 1}),
    ("edgehls_sparse_decoder", ["sparse_decoder.v"], {}),
    ("edgehls_sparse_decoder", ["sparse_decoder.v"], {"C": 1, "W": 2, "EW": 3, "DEPTH": 1}),
    ("edgehls_sparse_decoder", ["sparse_decoder.v"],
     {"C": 16, "W": 4, "EW": 80, "DEPTH": 300, "CSW": 3}),
    # per-layer widths (mixed precision): 2-bit and odd widths, and FW above 8 bits
    ("edgehls_sparse_decoder", ["sparse_decoder.v"],
     {"C": 4, "W": 8, "EW": 20, "DEPTH": 9, "CSW": 2, "WL": "32'h08030502"}),
    ("edgehls_sparse_decoder", ["sparse_decoder.v"],
     {"C": 16, "W": 16, "EW": 273, "DEPTH": 40, "CSW": 1, "WL": "16'h0709"}),
]


@pytest.mark.skipif(shutil.which("verilator") is None,
                    reason="verilator is not on PATH (apt install verilator, or `make tools`)")
@pytest.mark.parametrize(
    "top,files,params", CASES,
    ids=[f"{t}-" + ("-".join(f"{k}{v}" for k, v in p.items()) or "default") for t, _, p in CASES])
def test_verilator_lint(top: str, files: list[str], params: dict, tmp_path: Path) -> None:
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path), "--top-module", top,
           *(f"-G{k}={v}" for k, v in params.items()), *(str(HW / f) for f in files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


DESIGNS = [((4, 4), 8, 8), ((3, 5), 4, 4), ((1, 1), 8, 16), ((16, 16), 16, 7)]


@pytest.mark.skipif(shutil.which("verilator") is None,
                    reason="verilator is not on PATH (apt install verilator, or `make tools`)")
@pytest.mark.parametrize("pe,wbits,abits", DESIGNS,
                         ids=[f"{r}x{c}-w{w}a{a}" for (r, c), w, a in DESIGNS])
def test_generated_design_lints_clean(pe: tuple[int, int], wbits: int, abits: int,
                                      tmp_path: Path) -> None:
    """The whole generated design (core, sequencer, columns, ROMs) with no waiver at all."""
    from edgehls import pipeline

    model = Path(__file__).resolve().parents[2] / "examples/digits_mlp/model.onnx"
    out = tmp_path / "design"
    pipeline.compile_model(model, out, pipeline.Options(pe=pe, wbits=wbits, abits=abits,
                                                        samples=1))
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path / "obj"), "-f",
           "filelist.f", "--top-module", "edgehls_top"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


ENCODED = [((4, 4), None, "bitmap"), ((3, 5), 4, "bitmap"), ((16, 16), 3, "auto")]


@pytest.mark.skipif(shutil.which("verilator") is None,
                    reason="verilator is not on PATH (apt install verilator, or `make tools`)")
@pytest.mark.parametrize("pe,share,encode", ENCODED,
                         ids=[f"{r}x{c}-share{s}-{e}" for (r, c), s, e in ENCODED])
def test_encoded_design_lints_clean(pe: tuple[int, int], share: int | None, encode: str,
                                    tmp_path: Path) -> None:
    """A generated design with the sparse decoder (and the codebook) in the weight path."""
    import json

    from edgehls import pipeline

    model = Path(__file__).resolve().parents[2] / "examples/digits_mlp/model.onnx"
    out = tmp_path / "design"
    pipeline.compile_model(model, out, pipeline.Options(
        pe=pe, samples=1, prune="unstructured:0.8", share_bits=share or 0, encode=encode))
    assert json.loads((out / "manifest.json").read_text())["hw"]["EW"] > 0
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path / "obj"), "-f",
           "filelist.f", "--top-module", "edgehls_top"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


@pytest.mark.skipif(shutil.which("verilator") is None,
                    reason="verilator is not on PATH (apt install verilator, or `make tools`)")
def test_mixed_precision_encoded_design_lints_clean(tmp_path: Path) -> None:
    """Layers at 3, 8 and 5 bits: the decoder's per-layer widths (WL) in the generated top."""
    from edgehls import pipeline

    model = Path(__file__).resolve().parents[2] / "examples/digits_mlp/model.onnx"
    out = tmp_path / "design"
    pipeline.compile_model(model, out, pipeline.Options(
        pe=(4, 4), samples=1, precision={"layers": {"fc1": {"wbits": 3}, "fc3": {"wbits": 5}}}))
    assert ".WL(" in (out / "rtl" / "edgehls_top.v").read_text()
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path / "obj"), "-f",
           "filelist.f", "--top-module", "edgehls_top"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


def test_hw_library_lints_clean_with_its_waivers(tmp_path: Path) -> None:
    if shutil.which("verilator") is None:
        pytest.skip("verilator is not on PATH")
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path), str(HW / "lint.vlt"),
           *sorted(str(p) for p in HW.glob("*.v")), "--top-module", "edgehls_core"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"
