"""edgehls.romgen: bit packing, hex text, and every ROM image unpacked field by field with the
layouts hw/sequencer.v and hw/column.v state (written out here, not taken from romgen)."""

from __future__ import annotations

import numpy as np
import pytest
from models import mlp, save

from edgehls import frontend, ir, pipeline, romgen, tiler


def unpack(word: int, widths: list[int], signed: list[bool] | None = None) -> list[int]:
    """Split ``word`` into fields LSB first; signed fields are read two's complement."""
    out = []
    for i, w in enumerate(widths):
        v = word & ((1 << w) - 1)
        if signed and signed[i] and w and v >> (w - 1):
            v -= 1 << w
        out.append(v)
        word >>= w
    assert word == 0, "bits above the last field"
    return out


# (sizes, batch, pe, wbits, abits): ragged edges, B neither R nor C, odd bit widths
CASES = {
    "ragged_3x5": ([13, 11, 7], 3, (3, 5), 8, 8),
    "deep_6x4_w4": ([20, 1, 16, 3, 8], 1, (6, 4), 4, 6),
    "pe_2x3_w12": ([7, 5, 4], 2, (2, 3), 12, 8),
    "pe_1x1": ([5, 3, 2], 1, (1, 1), 8, 8),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    sizes, batch, (r, c), wbits, abits = CASES[request.param]
    path = save(mlp(sizes, seed=5, batch=batch), tmp_path_factory.mktemp("m") / "m.onnx")
    opts = pipeline.Options(wbits=wbits, abits=abits)
    g = pipeline.run_passes(frontend.load(path), pipeline.passes(opts))
    s = tiler.schedule(g, r, c)
    return g, s, romgen.hw_params(g, s)


# --- pack and hex_lines ------------------------------------------------------------------------

def test_pack_is_lsb_first():
    assert romgen.pack([(1, 1), (0, 2), (5, 4)]) == 0b101_00_1
    assert romgen.pack([(0xA, 4), (0x3, 4), (0x1, 8)]) == 0x013A
    assert romgen.pack([]) == 0


def test_pack_takes_twos_complement_and_masks_to_width():
    assert romgen.pack([(-1, 3)]) == 0b111
    assert romgen.pack([(-2, 4), (1, 1)]) == 0b1_1110
    assert romgen.pack([(-128, 8), (127, 8)]) == 0x7F80
    assert romgen.pack([(17, 4), (0, 1)]) == 1  # overflow does not spill into the next field
    assert romgen.pack([(True, 1), (False, 1), (True, 1)]) == 0b101


def test_hex_lines_width_and_digits():
    assert romgen.hex_lines([0x1F, 0], 5) == "1f\n00\n"
    assert romgen.hex_lines([0xABC], 12) == "abc\n"
    assert romgen.hex_lines([0xABC], 13) == "0abc\n"
    assert romgen.hex_lines([1, 0], 1) == "1\n0\n"
    assert romgen.hex_lines([0], 0) == "0\n"
    assert romgen.hex_lines([], 8) == ""


def test_hex_lines_numpy_path_matches_the_format_path():
    """Words of up to 64 bits are written by numpy; the same text as formatting each."""
    rng = np.random.default_rng(4)
    for width in (1, 3, 4, 8, 13, 31, 63, 64, 65, 100):
        words = [int(x) for x in rng.integers(0, 1 << min(width, 62), 50)]
        words += [(1 << width) - 1, 0]
        digits = max(1, -(-width // 4))
        assert romgen.hex_lines(words, width) == "".join(f"{w:0{digits}x}\n" for w in words)


def test_unpack_inverts_pack():
    fields = [(-3, 4), (200, 9), (1, 1), (-1, 16)]
    word = romgen.pack(fields)
    assert unpack(word, [w for _, w in fields], [True, False, False, True]) == [-3, 200, 1, -1]


# --- widths ------------------------------------------------------------------------------------

def test_hw_params_widths(case):
    g, s, p = case
    layers = tiler.dense_layers(g)
    assert (p.R, p.C, p.B) == (s.R, s.C, s.B)
    assert p.WW == max(n.op.wbits for n in layers)
    assert p.ACC_W == max(n.op.acc_bits for n in layers)
    assert (p.ADEPTH, p.MDEPTH, p.NT, p.WDEPTH, p.PDEPTH) == (
        s.adepth, s.mdepth, len(s.tiles), s.wdepth, s.pdepth)
    # every field value fits its width
    for t in s.tiles:
        assert t.w_addr < 2 ** p.WAW and t.m < 2 ** p.MCW
        assert t.k_rows < 2 ** p.RCW and t.n_cols < 2 ** p.CCW
        for v in (t.rd_base, t.rd_stride, t.wr_base, t.wr_stride):
            assert v < 2 ** p.AAW
        assert t.rd_rot < 2 ** p.BW and t.wr_rot < 2 ** p.BW and t.p_addr < 2 ** p.PAW


# --- ROM images --------------------------------------------------------------------------------

def schedule_widths(p: romgen.HwParams) -> list[int]:
    # hw/sequencer.v: w_addr m_count k_rows n_cols clear last barrier rd_base rd_rot
    # wr_base wr_stride wr_rot p_addr layer off_h off_w mlo mhi
    return [p.WAW, p.MCW, p.RCW, p.CCW, 1, 1, 1, p.XAW, p.BW, p.AAW, p.AAW, p.BW,
            p.PAW, p.CSW, p.SDW, p.SDW, p.CCW, p.CCW]


SCHEDULE_FIELDS = ("w_addr", "m", "k_rows", "n_cols", "clear", "last", "barrier",
                   "rd_base", "rd_rot", "wr_base", "wr_stride", "wr_rot", "p_addr",
                   "layer", "off_h", "off_w", "mlo", "mhi")
SIGNED_FIELDS = {"rd_base", "off_h", "off_w"}


def test_schedule_words_round_trip(case):
    _, s, p = case
    widths = schedule_widths(p)
    assert sum(widths) == p.SW
    words = romgen.schedule_words(s, p)
    assert len(words) == len(s.tiles)
    for word, t in zip(words, s.tiles, strict=True):
        signed = [f in SIGNED_FIELDS for f in SCHEDULE_FIELDS]
        assert unpack(word, widths, signed) == [int(getattr(t, f)) for f in SCHEDULE_FIELDS]


def test_weight_words_hold_each_tile_padded_with_zeros(case):
    g, s, p = case
    layers = tiler.dense_layers(g)
    words = romgen.weight_words(g, s, p)
    assert len(words) == len(s.tiles) * s.R == s.wdepth
    for t in s.tiles:
        w_q = g.const(layers[t.layer], "weight")
        for r in range(s.R):
            row = unpack(words[t.w_addr + r], [p.WW] * s.C, [True] * s.C)
            for j in range(s.C):
                k, n = t.kt * s.R + r, t.nt * s.C + j
                inside = r < t.k_rows and j < t.n_cols
                assert row[j] == (int(w_q[k, n]) if inside else 0), (t, r, j)


def test_post_words_per_column(case):
    g, s, p = case
    cols = romgen.post_words(g, s, p)
    assert len(cols) == s.C and all(len(c) == s.pdepth for c in cols)
    widths = [p.ACC_W, p.MB, p.SB, p.AW, p.AW]
    signed = [True, False, False, True, True]
    assert sum(widths) == p.PW
    for plan, node in zip(s.layers, tiler.dense_layers(g), strict=True):
        bias, mult, shift = (g.const(node, k) for k in ("bias", "mult", "shift"))
        for nt in range(plan.n_tiles):
            for j in range(s.C):
                word = cols[j][plan.p_base + nt]
                n = nt * s.C + j
                if n >= plan.N:
                    assert word == 0
                    continue
                assert unpack(word, widths, signed) == [
                    int(bias[n]), int(mult[n]), int(shift[n]), node.op.lo, node.op.hi]


def test_rom_images_names_and_line_widths(case):
    g, s, p = case
    files = romgen.rom_images(g, s, p)
    assert set(files) == {"schedule.hex", "weights.hex", "layers.hex",
                          *(f"post_c{j}.hex" for j in range(s.C))}
    widths = {"schedule.hex": p.SW, "weights.hex": s.C * p.WW, "layers.hex": p.LTW,
              **{f"post_c{j}.hex": p.PW for j in range(s.C)}}
    depths = {"schedule.hex": len(s.tiles), "weights.hex": s.wdepth, "layers.hex": len(s.layers),
              **{f"post_c{j}.hex": s.pdepth for j in range(s.C)}}
    for name, (text, width) in files.items():
        assert width == widths[name], name
        lines = text.splitlines()
        assert text.endswith("\n")
        assert len(lines) == depths[name], name
        digits = -(-widths[name] // 4)
        assert all(len(line) == digits for line in lines), name
        assert all(int(line, 16) < 2 ** widths[name] for line in lines), name
    assert [int(x, 16) for x in files["weights.hex"][0].split()] == romgen.weight_words(g, s, p)
    assert [int(x, 16) for x in files["schedule.hex"][0].split()] == romgen.schedule_words(s, p)


def test_graph_consts_are_integers(case):
    g, _, _ = case
    for node in tiler.dense_layers(g):
        assert isinstance(node.op, ir.QDense)
        w = g.const(node, "weight")
        assert w.dtype.kind == "i"
        assert abs(int(w.min())) <= 2 ** (node.op.wbits - 1)
        assert int(w.max()) < 2 ** (node.op.wbits - 1)


@pytest.mark.parametrize("pe,share", [((4, 8), 3), ((3, 5), 4), ((1, 1), 2)])
def test_shared_weights_decode_through_the_codebook(tmp_path, pe, share):
    """With sharing the ROM holds indices; codebook.hex at {layer, index} gives the weight."""
    model = save(mlp([13, 11, 7], seed=15), tmp_path / "m.onnx")
    opts = pipeline.Options(pe=pe, share_bits=share, prune="tile:0.3")
    g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
    s = tiler.schedule(g, *pe)
    p = romgen.hw_params(g, s)
    assert p.SHARE == share and p.WROM_W == pe[1] * share
    files = romgen.rom_images(g, s, p)
    book = [unpack(int(x, 16), [p.WW], [True])[0] for x in files["codebook.hex"][0].split()]
    assert len(book) == p.NL << share
    words = romgen.weight_words(g, s, p)
    layers = tiler.dense_layers(g)
    for t in s.tiles:
        w_q = g.const(layers[t.layer], "weight")
        for r in range(t.k_rows):
            idx = unpack(words[t.w_addr + r], [share] * s.C)
            for j in range(t.n_cols):
                got = book[(t.layer << share) + idx[j]]
                assert got == w_q[t.kt * s.R + r, t.nt * s.C + j], (t, r, j)
