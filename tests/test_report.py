"""edgehls.report: report.json totals, stored weight bits against the ROM on disk, utilization,
accuracy, the markdown table and the manifest's schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from models import mlp, save

import edgehls.encode
from edgehls import frontend, golden, pipeline, report, tiler

PE = (3, 5)
SIZES = [13, 11, 7]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save(mlp(SIZES, seed=15, batch=2), tmp_path_factory.mktemp("m") / "ragged.onnx")


@pytest.fixture(scope="module")
def design(model, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("design")
    rep = pipeline.compile_model(model, out, pipeline.Options(pe=PE, samples=2), force=True)
    return out, rep


def load(design: Path, name: str) -> dict:
    return json.loads((design / name).read_text())


def test_report_on_disk_is_the_returned_report(design):
    out, rep = design
    assert load(out, "report.json") == json.loads(json.dumps(rep))


def test_layers_describe_each_gemm(design):
    _, rep = design
    r, c = PE
    shapes = list(zip(SIZES[:-1], SIZES[1:], strict=True))
    assert [(ly["K"], ly["N"]) for ly in rep["layers"]] == shapes
    for ly in rep["layers"]:
        assert ly["M"] == 2
        assert ly["macs"] == ly["M"] * ly["K"] * ly["N"]
        assert ly["tiles"] == -(-ly["K"] // r) * -(-ly["N"] // c)
        assert ly["weight_bits_raw"] == ly["K"] * ly["N"] * 32
        assert ly["weight_bits_quantized"] == ly["K"] * ly["N"] * ly["wbits"]
        assert ly["weight_bits_unencoded"] == ly["tiles"] * r * c * ly["wbits"]
        # --encode auto: a layer is encoded only where that stores fewer bits
        assert ly["encoding"] in ("raw", "bitmap", "bitmap-z")
        assert (ly["weight_bits_stored"] < ly["weight_bits_unencoded"]) == (
            ly["encoding"] != "raw") or ly is rep["layers"][-1]  # last: stream padding
        assert ly["utilization"] == pytest.approx(ly["macs"] / (ly["predicted_cycles"] * r * c))
        assert 0 < ly["utilization"] <= 1


def test_totals_are_sums_of_layers(design):
    out, rep = design
    t = rep["total"]
    for k in ("macs", "weight_bits_raw", "weight_bits_quantized", "weight_bits_unencoded",
              "weight_bits_stored", "tiles", "skipped_tiles"):
        assert t[k] == sum(ly[k] for ly in rep["layers"]), k
    # the schedule's total; the layers' predictions telescope to it
    schedule = load(out, "manifest.json")["schedule"]
    assert t["predicted_cycles"] == schedule["predicted_cycles"]
    assert t["predicted_cycles"] == sum(ly["predicted_cycles"] for ly in rep["layers"])
    assert schedule["layer_cycles"] == [ly["predicted_cycles"] for ly in rep["layers"]]
    r, c = PE
    assert t["utilization"] == pytest.approx(t["macs"] / (t["predicted_cycles"] * r * c))


@pytest.mark.parametrize("encode", ["raw", "auto", "bitmap", "bitmap-z"])
def test_stored_weight_bits_match_the_weight_rom(model, tmp_path, encode, monkeypatch):
    """ROM bits counted from rom/ on disk are the report's stored bits, encoded or not (auto's
    25 % threshold off: this small model saves less)."""
    monkeypatch.setattr(edgehls.encode, "AUTO_MIN_SAVING", 0.0)
    out = tmp_path / "design"
    rep = pipeline.compile_model(model, out, pipeline.Options(pe=PE, samples=1, encode=encode))
    r, c = PE
    hw = load(out, "manifest.json")["hw"]
    lines = (out / "rom" / "weights.hex").read_text().split()
    t = rep["total"]
    assert t["weight_bits_unencoded"] == t["tiles"] * r * c * hw["WW"]
    width = hw["EW"] or c * hw["WW"]
    if encode == "raw":
        assert hw["EW"] == 0 and len(lines) == t["tiles"] * r
        assert [ly["encoding"] for ly in rep["layers"]] == ["raw"] * len(rep["layers"])
    else:
        assert hw["EW"] > 0 and t["weight_bits_stored"] < t["weight_bits_unencoded"]
        assert hw["EDEPTH"] == len(lines)
        assert {ly["encoding"] for ly in rep["layers"]} - {"raw"}
    if encode.startswith("bitmap"):
        assert {ly["encoding"] for ly in rep["layers"]} == {encode}
    assert t["weight_bits_stored"] == len(lines) * width
    # rom_bits counts whole words as written to disk
    assert all(len(line) == -(-width // 4) for line in lines)
    assert t["rom_bits"]["weights.hex"] == len(lines) * width
    assert t["weight_rom_bits"] == len(lines) * width
    assert sorted(t["rom_bits"]) == sorted(p.name for p in (out / "rom").iterdir())
    assert rep["memory"]["weight_rom_bits"] == len(lines) * width
    md = (out / "report.md").read_text()
    assert f"Sparsity encoding (--encode {encode})" in md
    assert ("bitmaps" in md) == (encode != "raw")


@pytest.mark.parametrize("encode", ["auto", "bitmap", "raw"])
def test_mixed_precision_rom_bits_per_layer(tmp_path, encode):
    """A 3-bit layer beside a 5-bit one: rom/weights.hex decoded back and recounted layer by
    layer is the report's stored bits, per layer and in total; an encoded stream stores each
    layer at its own width, the plain ROM (--encode raw) every layer at the widest."""
    from test_encode import MIXED_MLP, compiled, rom_layer_bits

    model = save(mlp(SIZES, seed=15, batch=2), tmp_path / "m.onnx")
    out = tmp_path / "design"
    g, s, p, words = compiled(model, out, pipeline.Options(
        pe=PE, samples=1, precision=MIXED_MLP, encode=encode))
    rep = load(out, "report.json")
    r, c = PE
    layers, t = rep["layers"], rep["total"]
    assert [ly["wbits"] for ly in layers] == [3, 5] and p.WW == 5
    assert t["weight_bits_stored"] == t["rom_bits"]["weights.hex"] == len(words) * p.ROM_W
    assert t["weight_bits_unencoded"] == (t["tiles"] - t["skipped_tiles"]) * r * c * 5
    if encode == "raw":
        assert [ly["element_bits"] for ly in layers] == [5, 5] and not p.EW
        assert [ly["weight_bits_stored"] for ly in layers] == [
            (ly["tiles"] - ly["skipped_tiles"]) * r * c * 5 for ly in layers]
        return
    assert [ly["element_bits"] for ly in layers] == [3, 5]
    assert [ly["weight_bits_stored"] for ly in layers] == rom_layer_bits(g, s, p, words)
    # the 3-bit layer stores fewer bits than its rows at the array's 5 bits would
    first = layers[0]
    assert first["weight_bits_stored"] < first["weight_bits_unencoded"]
    if first["encoding"] == "raw":
        assert first["weight_bits_stored"] == (first["tiles"] - first["skipped_tiles"]) * r * c * 3
    assert "Mixed precision: layers stored at their own widths" in (out / "report.md").read_text()


def test_markdown_names_each_layer_and_the_totals(design):
    out, rep = design
    md = (out / "report.md").read_text()
    assert md == report.markdown(rep)
    assert "ragged.onnx" in md.splitlines()[0]
    for ly in rep["layers"]:
        head = f"| {ly['name']} ({report.op_label(ly)}) |"
        row = next(line for line in md.splitlines() if line.startswith(head))
        assert f"{ly['M']} x {ly['K']} x {ly['N']}" in row
        assert str(ly["predicted_cycles"]) in row
    total = next(line for line in md.splitlines() if line.startswith("| **total**"))
    assert str(rep["total"]["predicted_cycles"]) in total and str(rep["total"]["macs"]) in total


def test_markdown_states_accuracy_and_notes():
    rep = {"source": "m.onnx", "pe": [2, 2], "wbits": 8, "abits": 8, "generator": "edgehls x",
           "layers": [], "memory": {"activation_bits": 1},
           "total": {"macs": 0, "tiles": 0, "skipped_tiles": 0, "predicted_cycles": 0,
                     "utilization": 0.0, "weight_bits_raw": 0, "weight_bits_quantized": 0,
                     "weight_bits_pruned": 0, "weight_bits_stored": 0, "compression": 0.0,
                     "weight_rom_bits": 0, "rom_bits": {"weights.hex": 0}},
           "accuracy": {"samples": 4, "float": 0.75, "quantized": 0.5, "agreement": 0.5},
           "notes": ["final Softmax dropped: outputs are logits"]}
    md = report.markdown(rep)
    assert "Accuracy on 4 samples (top-1): float 75.00%, quantized 50.00%" in md
    assert "Note: final Softmax dropped: outputs are logits." in md


def test_accuracy_on_a_tiny_labelled_set(tmp_path):
    path = save(mlp([6, 5, 3], seed=8), tmp_path / "m.onnx")
    g_float = frontend.load(path)
    g_q = pipeline.run_passes(g_float, pipeline.passes(pipeline.Options()))
    x = np.random.default_rng(0).uniform(-1, 1, size=(12, 6)).astype(np.float32)
    f = golden.run_float_samples(g_float, golden.as_samples(g_float, x)).reshape(12, -1)
    q = golden.run_int_samples(g_q, golden.quantize_input(g_q, golden.as_samples(g_q, x)))
    pf, pq = f.argmax(axis=1), q.reshape(12, -1).argmax(axis=1)

    acc = report.accuracy(g_float, g_q, x, pf)
    assert acc["samples"] == 12 and acc["float"] == 1.0
    assert acc["agreement"] == pytest.approx(np.mean(pf == pq))
    assert acc["quantized"] == acc["agreement"]
    wrong = (pf + 1) % 3  # every label differs from the float prediction
    acc = report.accuracy(g_float, g_q, x, wrong)
    assert acc["float"] == 0.0
    assert acc["quantized"] == pytest.approx(np.mean(pq == wrong))
    half = np.where(np.arange(12) < 6, pf, wrong)
    assert report.accuracy(g_float, g_q, x, half)["float"] == 0.5
    assert report.accuracy(g_float, g_q, None, None) is None
    assert report.accuracy(g_float, g_q, x, None) is None


def test_compile_with_eval_data_reports_accuracy(model, tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, size=(5, 2, 13)).astype(np.float32)
    y = np.zeros(5, dtype=np.int64)
    rep = pipeline.compile_model(model, tmp_path, pipeline.Options(pe=PE, samples=1, eval_x=x,
                                                                   eval_y=y))
    assert rep["accuracy"]["samples"] == 5
    assert "Accuracy on 5 samples" in (tmp_path / "report.md").read_text()


def test_manifest_schedule_matches_the_tiler(design, model):
    out, _ = design
    m = load(out, "manifest.json")
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(pipeline.Options(pe=PE)))
    s = tiler.schedule(g, *PE)
    assert m["schedule"]["tiles"] == len(s.tiles)
    assert m["schedule"]["predicted_cycles"] == s.total_cycles
    assert m["schedule"]["drain_cycles"] == tiler.drain(*PE)
    assert m["pe"] == list(PE)
    assert m["files"]["rtl"] == (out / "filelist.f").read_text().split()
