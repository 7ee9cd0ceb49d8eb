"""--prune, --share-bits and --compress-config: the pipeline they build, the accuracy report, and
every bad input as one `error:` line with exit status 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import DATA, MODEL, compile_args, expect_error, run

from edgehls import pipeline
from edgehls.errors import OptionError
from edgehls.passes.prune import Prune
from edgehls.passes.share import Share

LAYERS = "fc1, fc2, fc3"  # the digits MLP's Dense layers after canonicalize


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def config(tmp_path: Path, cfg: object, suffix: str = ".json") -> Path:
    path = tmp_path / f"compress{suffix}"
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return path


# --- the pipeline the options build ------------------------------------------------------------

def names(opts: pipeline.Options) -> list[str]:
    return [pipeline.pass_name(p) for p in pipeline.passes(opts)]


def test_no_compression_keeps_the_pipeline():
    assert names(pipeline.Options()) == ["canonicalize", "quantize"]


def test_compression_passes_and_their_options():
    p = pipeline.passes(pipeline.Options(pe=(16, 8), prune="tile:0.5", share_bits=4, seed=3))
    assert [pipeline.pass_name(x) for x in p] == ["canonicalize", "prune", "quantize", "share"]
    assert p[1] == Prune("tile", 0.5, (16, 8)) and p[3] == Share(4, seed=3)
    assert names(pipeline.Options(share_bits=2)) == ["canonicalize", "quantize", "share"]


def test_config_merges_with_flags():
    cfg = {"prune": "global:0.8", "share_bits": 5, "layers": {"fc3": {"prune": "tile:0"}}}
    p = pipeline.passes(pipeline.Options(prune="global:0.80", share_bits=5, compress=cfg))
    assert p[1] == Prune("global", 0.8, (8, 8), (("fc3", "tile", 0.0),)) and p[3] == Share(5)


def test_layer_overrides_alone_prune_only_those_layers():
    p = pipeline.passes(pipeline.Options(compress={"layers": {"fc2": {"prune": "tile:0.5"}}}))
    assert p[1] == Prune("unstructured", 0.0, (8, 8), (("fc2", "tile", 0.5),))


@pytest.mark.parametrize("opts, msg", [
    (pipeline.Options(share_bits=9), "--share-bits 9 is out of range: choose 2..8"),
    (pipeline.Options(prune="tile:1"), "--prune: sparsity 1 is outside [0, 1)"),
    (pipeline.Options(compress={"share_bits": 1}),
     "--compress-config share_bits 1 is out of range: choose 2..8"),
    (pipeline.Options(compress={"prune": "tile"}),
     "--compress-config prune 'tile' is not MODE:SPARSITY"),
    (pipeline.Options(compress={"pruning": "tile:0.5"}),
     "--compress-config: unknown key(s) pruning; a config has keys prune, share_bits, layers"),
])
def test_bad_settings_through_the_api(opts, msg):
    with pytest.raises(OptionError) as e:
        pipeline.passes(opts)
    assert str(e.value).startswith(msg)


# --- compiles ----------------------------------------------------------------------------------

def test_compile_pruned_and_shared(capsys, out_dir):
    rc, out, err = run(capsys, *compile_args(MODEL, out_dir, "--prune", "tile:0.5",
                                             "--share-bits", "4", "--eval", DATA))
    assert rc == 0, err
    assert (out_dir / "rtl").is_dir() and (out_dir / "manifest.json").is_file()
    rep = json.loads((out_dir / "report.json").read_text())
    acc = rep["accuracy"]
    assert set(acc) == {"samples", "float", "quantized", "compressed", "agreement"}
    assert acc["compressed"] < acc["quantized"]  # half the tiles gone, no retraining
    for layer in ("fc1", "fc2", "fc3"):
        assert any(n.startswith(f"layer {layer}: pruned to ") and "(tile, target 50.0%; " in n
                   for n in rep["notes"])
        assert f"layer {layer}: weights shared to 16 values (k-means)" in rep["notes"]
    assert all(ly["skipped_tiles"] >= ly["tiles"] // 2 for ly in rep["layers"])
    assert "compressed " in out and "note: layer fc1: weights shared" in out


def test_compile_yaml_config_agreeing_with_the_flags(capsys, tmp_path, out_dir):
    cfg = config(tmp_path, "prune: unstructured:0.5\nshare_bits: 8\nlayers:\n"
                           "  fc3:\n    prune: unstructured:0\n", ".yaml")
    rc, _, err = run(capsys, *compile_args(MODEL, out_dir, "--compress-config", cfg,
                                           "--share-bits", "8", "-q"))
    assert rc == 0, err
    notes = json.loads((out_dir / "report.json").read_text())["notes"]
    assert [n.split(":")[0] for n in notes if "pruned to" in n] == ["layer fc1", "layer fc2"]
    assert "layer fc3: weights shared to 256 values (lossless)" in notes


def test_compile_without_compression_reports_as_before(capsys, out_dir):
    rc, _, err = run(capsys, *compile_args(MODEL, out_dir, "--eval", DATA, "-q"))
    assert rc == 0, err
    acc = json.loads((out_dir / "report.json").read_text())["accuracy"]
    assert set(acc) == {"samples", "float", "quantized", "agreement"}
    assert not list((out_dir / "rom").glob("codebook*"))


def test_evaluate_keeps_quantized_uncompressed():
    x, y = (np.load(DATA)[k] for k in ("x_test", "y_test"))
    opts = pipeline.Options(share_bits=8, eval_x=x, eval_y=y)  # lossless: nothing changes
    pipe = pipeline.passes(opts)
    from edgehls import frontend

    g_float = frontend.load(MODEL)
    g_canon = pipeline.run_passes(g_float, pipe[:1])
    acc = pipeline.evaluate(g_float, g_canon, pipeline.run_passes(g_canon, pipe[1:]), pipe, opts)
    assert acc["compressed"] == acc["quantized"]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", ["0", "9", "1", "-4"])
def test_share_bits_out_of_range(capsys, out_dir, bits):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--share-bits", bits))
    assert msg == (f"error: --share-bits {bits} is out of range: choose 2..8 bits (each layer "
                   "gets 2**bits shared weight values)")


def test_share_bits_not_a_number(capsys, out_dir):
    expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--share-bits", "four"),
                 argparse_option="--share-bits")


@pytest.mark.parametrize("spec, why", [
    ("tile:1.0", "--prune: sparsity 1 is outside [0, 1)"),
    ("unstructured:-0.1", "--prune: sparsity -0.1 is outside [0, 1)"),
    ("tile:2", "--prune: sparsity 2 is outside [0, 1)"),
    ("random:0.5", "--prune: unknown pruning mode 'random'; choose unstructured, global, tile"),
    ("tile", "--prune 'tile' is not MODE:SPARSITY: write e.g. tile:0.5"),
    ("0.5", "--prune '0.5' is not MODE:SPARSITY")])
def test_bad_prune_spec(capsys, out_dir, spec, why):
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--prune", spec))
    assert msg.startswith(f"error: {why}")


def test_config_names_a_missing_layer(capsys, tmp_path, out_dir):
    cfg = config(tmp_path, {"layers": {"fc9": {"prune": "tile:0.5"}}})
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--compress-config", cfg))
    assert msg == ("error: compression config names layer 'fc9', which the model does not "
                   f"have; its layers are: {LAYERS}")


@pytest.mark.parametrize("flag, cfg, msg", [
    (["--prune", "tile:0.5"], {"prune": "tile:0.3"},
     "--prune tile:0.5 conflicts with prune: tile:0.3 in --compress-config"),
    (["--prune", "tile:0.5"], {"prune": "unstructured:0.5"},
     "--prune tile:0.5 conflicts with prune: unstructured:0.5"),
    (["--share-bits", "4"], {"share_bits": 5},
     "--share-bits 4 conflicts with share_bits: 5 in --compress-config")])
def test_config_conflicts_with_the_command_line(capsys, tmp_path, out_dir, flag, cfg, msg):
    path = config(tmp_path, cfg)
    err = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, *flag,
                                                      "--compress-config", path))
    assert err.startswith(f"error: {msg}") and err.endswith(": set it in one place")


@pytest.mark.parametrize("text, suffix, why", [
    ("{not json", ".json", "is not valid JSON: "),
    ("prune: [tile:0.5\n", ".yaml", "is not valid YAML: "),
    ("prune: tile:0.5\n", ".json", "is not valid JSON: "),  # a YAML file without the suffix
    ("[1, 2]", ".json", "expected a mapping like"),
    ("", ".yml", "expected a mapping like"),
])
def test_malformed_config_file(capsys, tmp_path, out_dir, text, suffix, why):
    path = config(tmp_path, text, suffix)
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--compress-config", path))
    assert msg.startswith(f"error: --compress-config {path}") and why in msg


@pytest.mark.parametrize("cfg, why", [
    ({"prune": "tile:0.5", "bits": 4}, "unknown key(s) bits; a config has keys prune, "
                                       "share_bits, layers"),
    ({"share_bits": "four"}, "--compress-config share_bits 'four' is out of range"),
    ({"share_bits": 9}, "--compress-config share_bits 9 is out of range: choose 2..8"),
    ({"prune": "tile:1.5"}, "--compress-config prune: sparsity 1.5 is outside [0, 1)"),
    ({"layers": ["fc1"]}, "layers must map layer names to {prune: MODE:SPARSITY}"),
    ({"layers": {"fc1": {"share_bits": 2}}}, "layer 'fc1' may set only prune (e.g. {prune: "
                                             "unstructured:0.9}); share_bits is global"),
    ({"layers": {"fc1": "tile:0.5"}}, "layer 'fc1' may set only prune"),
    ({"layers": {"fc1": {"prune": "global:0.5"}}},
     "--compress-config layer 'fc1': unknown pruning mode 'global'; choose unstructured, tile"),
])
def test_bad_config_contents(capsys, tmp_path, out_dir, cfg, why):
    path = config(tmp_path, cfg)
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--compress-config", path))
    assert why in msg


def test_missing_config_file(capsys, tmp_path, out_dir):
    path = tmp_path / "nope.yaml"
    msg = expect_error(capsys, out_dir, *compile_args(MODEL, out_dir, "--compress-config", path))
    assert msg == f"error: cannot read --compress-config {path}: No such file or directory"
