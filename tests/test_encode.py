"""edgehls.encode: row formats, the per-layer choice of --encode auto, the stream written to
rom/weights.hex (decoded back to the raw rows), and bad options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from models import mlp, save
from test_cli import MODEL, compile_args, expect_error

from edgehls import encode, frontend, pipeline, romgen, tiler
from edgehls.errors import OptionError


def test_row_formats():
    row = np.array([0, 5, 0, -1])
    assert encode.row_bits(row, "raw", 0, 4) == 16
    assert encode.row_bits(row, "bitmap", 0, 4) == 4 + 2 * 4
    assert encode.row_chunks(row, "bitmap", 0, 4) == [(0b1010, 4), (5, 4), (-1, 4)]
    assert encode.row_chunks(row, "raw", 0, 4) == [(0, 4), (5, 4), (0, 4), (-1, 4)]
    # with sharing the zero element is the index of 0 in the codebook, not 0
    assert encode.row_bits(np.array([3, 3, 1, 3]), "bitmap", 3, 3) == 4 + 3
    # bitmap-z: one bit for an empty row, else a set flag and the bitmap row
    assert encode.row_bits(np.zeros(4, int), "bitmap-z", 0, 4) == 1
    assert encode.row_chunks(np.zeros(4, int), "bitmap-z", 0, 4) == [(0, 1)]
    assert encode.row_chunks(row, "bitmap-z", 0, 4) == [(1, 1), (0b1010, 4), (5, 4), (-1, 4)]


def _blocks(dense: np.ndarray, sparse: np.ndarray) -> list:
    live = np.ones((2, 2), bool)
    return [(0, dense, live), (1, sparse, live)]


def test_auto_encodes_only_where_it_saves_bits():
    dense = np.array([[1, 2], [3, 4]])
    sparse = np.array([[0, 0], [0, 7]])
    p = encode.plan("auto", _blocks(dense, sparse), [0, 0], 8)
    assert p.formats == ("raw", "bitmap")
    assert p.raw_bits == (32, 32) and p.layer_bits == (32, 2 + 2 + 8)
    assert p.width == 16  # the longest row: a raw one
    assert sum(p.layer_bits) <= len(p.words) * p.width < sum(p.layer_bits) + p.width
    forced = encode.plan("bitmap", _blocks(dense, sparse), [0, 0], 8)
    assert forced.formats == ("bitmap", "bitmap") and forced.layer_bits[0] == 2 * (2 + 16)
    assert forced.width == 18
    none = encode.plan("auto", _blocks(dense, dense), [0, 0], 8)
    assert not none.encoded and none.words == () and none.layer_bits == none.raw_bits


def test_auto_takes_bitmap_z_where_rows_are_empty():
    empty_rows = np.array([[0, 0], [0, 0], [0, 0], [5, 0]])
    live = np.ones((4, 2), bool)
    p = encode.plan("auto", [(0, empty_rows, live)], [0], 8)
    assert p.formats == ("bitmap-z",)
    assert p.layer_bits == (3 + 1 + 2 + 8,) and p.raw_bits == (64,)
    assert encode.decode(p.words, p.width, [0] * 4, p.formats, p.zeros, 2, 8) == [
        [0, 0], [0, 0], [0, 0], [5, 0]]


def test_padding_is_the_zero_element():
    block = np.array([[9, 9], [9, 9]])
    live = np.array([[True, False], [False, False]])
    p = encode.plan("bitmap", [(0, block, live)], [2], 4)
    rows = encode.decode(p.words, p.width, [0, 0], p.formats, p.zeros, 2, 4)
    assert rows == [[9, 2], [2, 2]]
    assert p.layer_bits == (2 + 4 + 2,)


def test_bad_option():
    with pytest.raises(OptionError, match="--encode 'rle'"):
        encode.check("rle")
    with pytest.raises(OptionError, match="--encode"):
        pipeline.compile_model(Path("unused.onnx"), Path("unused"),
                               pipeline.Options(encode="rle"))


def test_cli_rejects_an_unknown_encoding(capsys, tmp_path):
    out = tmp_path / "out"
    msg = expect_error(capsys, out, *compile_args(MODEL, out, "--encode", "rle"),
                       argparse_option="--encode")
    assert "rle" in msg


@pytest.mark.parametrize(("prune", "share", "fmt"), [("unstructured:0.7", 0, "bitmap"),
                                                     ("global:0.8", 3, "bitmap"),
                                                     ("global:0.8", 3, "bitmap-z")])
def test_rom_on_disk_decodes_to_the_raw_rows(tmp_path, prune, share, fmt):
    model = save(mlp([13, 11, 7], seed=15), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=1, prune=prune, share_bits=share, encode=fmt)
    out = tmp_path / "design"
    pipeline.compile_model(model, out, opts)
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
    s = tiler.schedule(g, 3, 5)
    p = romgen.hw_params(g, s, fmt)
    words = [int(x, 16) for x in (out / "rom" / "weights.hex").read_text().split()]
    blocks = romgen.weight_blocks(g, s, p)
    zeros = romgen.zero_elements(g, p)
    w = p.SHARE or p.WW
    if share:
        assert any(zeros), "a codebook whose zero is not index 0 exercises ZERO"
    rows = encode.decode(words, p.EW, [ly for ly, _, _ in blocks for _ in range(s.R)],
                         (fmt,) * p.NL, zeros, s.C, w)
    want = [[int(v) & ((1 << w) - 1) for v in row]
            for _, row in encode.padded_rows(blocks, zeros)]
    assert rows == want
    # live weights are the raw ROM's, bit for bit
    raw = romgen.weight_words(g, s, romgen.hw_params(g, s, "raw"))
    for i, (_, _, live) in enumerate(blocks):
        for r in range(s.R):
            got = romgen.pack([(v, w) for v in rows[i * s.R + r]])
            keep = romgen.pack([(((1 << w) - 1) if x else 0, w) for x in live[r]])
            assert got & keep == raw[i * s.R + r] & keep


def test_auto_without_gain_is_the_raw_design(tmp_path):
    """--encode auto on a dense model with no padding: byte-identical to --encode raw."""
    model = save(mlp([16, 8, 4], seed=3), tmp_path / "m.onnx")
    trees = []
    for enc in ("auto", "raw"):
        out = tmp_path / enc
        rep = pipeline.compile_model(model, out, pipeline.Options(pe=(4, 4), samples=1,
                                                                  encode=enc))
        assert [ly["encoding"] for ly in rep["layers"]] == ["raw", "raw"]
        trees.append({p.relative_to(out).as_posix(): p.read_bytes()
                      for p in sorted(out.rglob("*")) if p.is_file()
                      and p.name not in ("report.json", "report.md")})
    assert trees[0] == trees[1]
    assert "sparse_decoder" not in trees[0]["rtl/edgehls_top.v"].decode()
    rep = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert rep["total"]["weight_bits_stored"] == rep["total"]["weight_bits_unencoded"]
