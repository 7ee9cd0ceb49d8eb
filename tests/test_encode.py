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


# --- mixed precision: each layer's elements at its own width ---------------------------------

def test_narrow_rows_and_sign_extension():
    row = np.array([0, 1, 0, -2])  # 2-bit elements
    assert encode.row_bits(row, "raw", 0, 2) == 8
    assert encode.row_bits(row, "bitmap", 0, 2) == 4 + 2 * 2
    blocks = [(0, np.array([[3, -4, 0], [0, 0, -1]]), np.ones((2, 3), bool)),
              (1, row[:3].reshape(1, 3), np.ones((1, 3), bool))]
    for fmt in ("raw", "bitmap", "bitmap-z"):
        p = encode.build([fmt, fmt], blocks, [0, 0], 8, [3, 2])
        assert p.encoded and p.widths == (3, 2)
        assert p.raw_bits == (2 * 3 * 8, 3 * 8)  # the plain ROM's rows, at W = 8
        rows = encode.decode(p.words, p.width, [0, 0, 1], p.formats, p.zeros, 3, 8, p.widths)
        # sign-extended from 3 and 2 bits to unsigned 8-bit fields
        assert rows == [[3, 0xFC, 0], [0, 0, 0xFF], [0, 1, 0]]
    assert encode.sign_extend(0b101, 3, 8) == 0xFD and encode.sign_extend(0b011, 3, 8) == 3
    assert encode.sign_extend(0b101, 3, 3) == 0b101


def test_auto_stores_a_narrow_layer_narrow():
    """Dense rows: a layer of 4 bits in an 8-bit stream is narrow raw, 4 bits a weight; a
    uniform design with no sparsity gain stays the plain ROM; --encode raw stays plain."""
    dense = np.array([[1, -2], [3, -4]])
    blocks = [(0, dense * 20, np.ones((2, 2), bool)), (1, dense, np.ones((2, 2), bool))]
    p = encode.plan("auto", blocks, [0, 0], 8, [8, 4])
    assert p.encoded and p.formats == ("raw", "raw") and p.layer_bits == (32, 16)
    assert p.width == 16 and p.raw_bits == (32, 32)
    assert not encode.plan("auto", blocks, [0, 0], 8, [8, 8]).encoded
    raw = encode.plan("raw", blocks, [0, 0], 8, [8, 4])
    assert not raw.encoded and raw.layer_bits == (32, 32)
    with pytest.raises(ValueError, match="element widths"):
        encode.plan("auto", blocks, [0, 0], 8, [9, 4])


MIXED_MLP = {"layers": {"fc0": {"wbits": 3}, "fc1": {"wbits": 5}}}


def rom_layer_bits(g, s, p, words: list[int]) -> list[int]:
    """Decode rom/weights.hex back to every tile row and check it against the layers' weights
    (sign-extended to the array's width); return each layer's stream bits, recounted from the
    decoded rows at the layer's own width (the last layer also holds the last word's padding)."""
    blocks = romgen.weight_blocks(g, s, p)
    zeros = romgen.zero_elements(g, p)
    widths = romgen.stream_widths(s, p)
    formats = romgen.stream_plan(g, s, p).formats
    w = p.SHARE or p.WW
    layers = [ly for ly, _, _ in blocks for _ in range(s.R)]
    rows = encode.decode(words, p.EW, layers, formats, zeros, s.C, w, widths)
    padded = encode.padded_rows(blocks, zeros)
    assert rows == [[int(v) & ((1 << w) - 1) for v in row] for _, row in padded]
    bits = [0] * p.NL
    for layer, row in padded:
        bits[layer] += encode.row_bits(row, formats[layer], zeros[layer], widths[layer])
    bits[-1] += len(words) * p.EW - sum(bits)
    assert 0 <= bits[-1] and len(words) * p.EW - sum(bits) < p.EW
    return bits


def compiled(model: Path, out: Path, opts: pipeline.Options):
    """Compile ``model`` into ``out``; return (graph, schedule, HwParams, ROM words on disk)."""
    rep = pipeline.compile_model(model, out, opts, force=True)
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
    s = tiler.schedule(g, *opts.pe)
    p = romgen.hw_params(g, s, opts.encode)
    words = [int(x, 16) for x in (out / "rom" / "weights.hex").read_text().split()]
    assert rep["total"]["rom_bits"]["weights.hex"] == len(words) * p.ROM_W
    return g, s, p, words


@pytest.mark.parametrize("enc", ["auto", "bitmap", "bitmap-z"])
def test_mixed_rom_on_disk_decodes_at_each_layers_width(tmp_path, enc):
    model = save(mlp([13, 11, 7], seed=15), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=1, precision=MIXED_MLP, encode=enc,
                            prune="unstructured:0.3" if enc == "auto" else None)
    g, s, p, words = compiled(model, tmp_path / "design", opts)
    assert p.WW == 5 and romgen.stream_widths(s, p) == [3, 5] and p.EW
    bits = rom_layer_bits(g, s, p, words)
    rep = json.loads((tmp_path / "design" / "report.json").read_text())
    assert [ly["weight_bits_stored"] for ly in rep["layers"]] == bits
    assert ".WL(16'h503)" in (tmp_path / "design" / "rtl" / "edgehls_top.v").read_text()


def test_mixed_under_raw_is_the_plain_full_width_rom(tmp_path):
    model = save(mlp([13, 11, 7], seed=15), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(3, 5), samples=1, precision=MIXED_MLP, encode="raw")
    g, s, p, words = compiled(model, tmp_path / "design", opts)
    assert not p.EW and not p.WL and words == romgen.weight_words(g, s, p)
    assert p.ROM_W == 5 * 5
    top = (tmp_path / "design" / "rtl" / "edgehls_top.v").read_text()
    assert "sparse_decoder" not in top


# --- uniform precision: byte-identical to the design before per-layer widths -----------------

UNIFORM_GOLDEN = Path(__file__).parent / "fixtures" / "encode_uniform.json"
DIGITS_CNN = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn"
UNIFORM_CASES = {
    "mlp-auto-prune": ("mlp", dict(pe=(3, 5), prune="unstructured:0.7")),
    "mlp-bitmapz-share": ("mlp", dict(pe=(3, 5), prune="global:0.8", share_bits=3,
                                      encode="bitmap-z")),
    "mlp-raw": ("mlp", dict(pe=(4, 4), encode="raw")),
    # recorded before the first conv's input was packed (fewer, fuller tiles): unpacked here
    "digits-w4-auto": ("digits", dict(pe=(4, 4), wbits=4, pack_input=False)),
}


def uniform_fingerprint(name: str, tmp: Path) -> dict:
    """What a uniform design's weight ROM looks like: weights.hex's hash, the decoder's
    parameters in the top level, each layer's stored bits and encoding."""
    import hashlib
    import re
    model, kw = UNIFORM_CASES[name]
    if model == "mlp":
        path = save(mlp([13, 11, 7], seed=15), tmp / "m.onnx")
        opts = pipeline.Options(samples=1, **kw)
    else:
        path = DIGITS_CNN / "model.onnx"
        opts = pipeline.Options(samples=1, calib=np.load(DIGITS_CNN / "data.npz")["x_calib"],
                                **kw)
    out = tmp / name
    rep = pipeline.compile_model(path, out, opts, force=True)
    top = (out / "rtl" / "edgehls_top.v").read_text()
    m = re.search(r"edgehls_sparse_decoder #\((.*?)\) u_decode", top, re.S)
    return {"weights.hex": hashlib.sha256((out / "rom" / "weights.hex").read_bytes()).hexdigest(),
            "decoder": m.group(1) if m else None,
            "stored": [ly["weight_bits_stored"] for ly in rep["layers"]],
            "encoding": [ly["encoding"] for ly in rep["layers"]]}


@pytest.mark.parametrize("name", sorted(UNIFORM_CASES))
def test_uniform_precision_design_is_unchanged(tmp_path, name):
    """Recorded from the encoder before layers had their own widths (regenerate with
    `python tests/test_encode.py` only for an intended change of the uniform stream)."""
    want = json.loads(UNIFORM_GOLDEN.read_text())[name]
    assert uniform_fingerprint(name, tmp_path) == want


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        UNIFORM_GOLDEN.write_text(json.dumps(
            {n: uniform_fingerprint(n, Path(d)) for n in sorted(UNIFORM_CASES)}, indent=1) + "\n")


def test_pack_stream_concatenates_lsb_first_and_cuts_words():
    """Against the definition: the chunks as one integer, LSB first, cut into width-bit words
    (at least one word); negative values two's complement in their n bits."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        width = int(rng.integers(1, 70))
        chunks = [(int(rng.integers(-2**20, 2**20)), int(rng.integers(1, 40)))
                  for _ in range(int(rng.integers(0, 30)))]
        whole = sum((v & ((1 << n) - 1)) << sum(m for _, m in chunks[:i])
                    for i, (v, n) in enumerate(chunks))
        count = max(1, -(-sum(n for _, n in chunks) // width))
        assert encode.pack_stream(chunks, width) == [
            (whole >> (i * width)) & ((1 << width) - 1) for i in range(count)]


@pytest.mark.parametrize("fmt", encode.FORMATS)
@pytest.mark.parametrize(("c", "w", "zero"), [(4, 4, 0), (8, 8, 0), (5, 3, 2), (16, 16, -1),
                                              (3, 1, 0), (7, 12, 5)])
def test_vectorised_rows_match_the_per_row_definitions(fmt, c, w, zero):
    """rows_bits, rows_stream + pack_bits (what plan/build use) against row_bits and
    row_chunks + pack_stream row by row, on random rows: dense, sparse and all-zero ones."""
    rng = np.random.default_rng(c * 100 + w)
    lo, hi = -(1 << (w - 1)), 1 << (w - 1)
    rows = rng.integers(lo, hi, (60, c))
    rows[rng.random((60, c)) < 0.6] = zero
    rows[::7] = zero
    rows[::11] = rng.integers(lo, hi, c)
    assert encode.rows_bits(rows, fmt, zero, w).tolist() == [
        encode.row_bits(row, fmt, zero, w) for row in rows]
    chunks = [x for row in rows for x in encode.row_chunks(row, fmt, zero, w)]
    stream = encode.rows_stream(rows, fmt, zero, w)
    assert stream.size == sum(n for _, n in chunks)
    for width in (1, 7, c * w, 64, 65, 1 + c + c * w):
        assert encode.pack_bits(stream, width) == encode.pack_stream(chunks, width)


def test_pack_bits_of_an_empty_stream_is_one_zero_word():
    assert encode.pack_bits(np.zeros(0, np.uint8), 9) == encode.pack_stream([], 9) == [0]


def test_raw_words_pack_each_row_as_stored():
    rng = np.random.default_rng(2)
    blocks = [(i % 2, rng.integers(-8, 8, (3, 5)), rng.random((3, 5)) < 0.5) for i in range(4)]
    assert encode.raw_words(blocks, 4) == [
        encode.pack_stream([(int(v), 4) for v in row], 20)[0]
        for _, block, _ in blocks for row in block]
    assert encode.raw_words([], 4) == [0]


@pytest.mark.parametrize("fmt", ["auto", "bitmap-z", "raw"])
def test_hw_params_leaves_the_stream_it_chose(tmp_path, fmt):
    """stream_plan reads the plan hw_params built (one build per compile); it is the stream
    that p's formats and widths give when built afresh."""
    model = save(mlp([13, 11, 7], seed=15), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=(3, 5), prune="unstructured:0.7", encode=fmt)
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
    s = tiler.schedule(g, 3, 5)
    p = romgen.hw_params(g, s, fmt)
    assert romgen.stream_plan(g, s, p) is s.memo[("stream", p)]
    assert romgen.stream_plan(g, s, p) == romgen._build_stream(g, s, p)
    assert romgen.stream_plan(g, s, p).encoded == (fmt != "raw")
