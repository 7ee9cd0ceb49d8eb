"""pytest entry: edgehls_sparse_decoder decodes edgehls.encode streams at one row per load,
each layer's elements at its own width (sign-extended to W) or all at W."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgehls import encode, romgen

from .runner import HW, run_cocotb

WRAPPER = """`timescale 1ns/1ps
`default_nettype none
module tb_sparse_decoder_top #(
    parameter integer C = {C}, parameter integer W = {W}, parameter integer EW = {EW},
    parameter integer DEPTH = {DEPTH}, parameter integer CSW = {CSW}
) (
    input  wire clk, input wire rst_n, input wire restart, input wire load,
    input  wire [CSW-1:0] layer, output wire [C*W-1:0] row
);
    wire [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] addr;
    wire [EW-1:0] word;
    edgehls_rom #(.W(EW), .DEPTH(DEPTH), .FILE("{hex}")) u_rom (
        .clk(clk), .addr(addr), .data(word));
    edgehls_sparse_decoder #(.C(C), .W(W), .EW(EW), .DEPTH(DEPTH), .CSW(CSW),
                             .BITMAP({BITMAP}), .EMPTY({EMPTY}), .ZERO({ZERO}){WL}) u_dut (
        .clk(clk), .rst_n(rst_n), .restart(restart), .rom_addr(addr), .rom_data(word),
        .load(load), .layer(layer), .row(row));
endmodule
`default_nettype wire
"""


def blocks(rng: np.random.Generator, r: int, c: int, w: int, zeros: list[int], tiles: int,
           widths: list[int] | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Random tiles cycling through the layers, densities 0..1 per tile, some partial; a layer
    of ``widths[l]`` bits holds signed values of that width (its full range), else w-bit
    unsigned fields (indices, or weights as stored)."""
    out = []
    for t in range(tiles):
        layer = t * len(zeros) // tiles
        if widths is None:
            vals = rng.integers(0, 1 << w, size=(r, c))
        else:
            n = widths[layer]
            vals = rng.integers(-(1 << (n - 1)), 1 << (n - 1), size=(r, c))
        density = [0.0, 1.0, 0.1, 0.5, 0.9][t % 5]
        keep = rng.random((r, c)) < density
        block = np.where(keep, vals, zeros[layer])
        live = np.zeros((r, c), bool)
        live[:r - (t % 3 == 2), :c - (t % 4 == 3)] = True
        out.append((layer, block, live))
    return out


@pytest.mark.parametrize(("r", "c", "w", "formats", "zeros", "gap_p", "widths"), [
    (4, 4, 3, ("bitmap", "raw"), (0, 0), 0.0, None),
    (3, 8, 4, ("raw", "bitmap", "bitmap-z"), (0, 5, 0), 0.3, None),
    (2, 1, 2, ("bitmap-z",), (1,), 0.5, None),
    (4, 16, 8, ("bitmap-z", "bitmap", "raw", "bitmap-z"), (0, 0, 0, 200), 0.1, None),
    # mixed precision: 2-bit and odd widths, narrow raw beside bitmaps, one layer at W
    (4, 4, 8, ("raw", "bitmap", "bitmap-z", "raw"), (0, 0, 0, 0), 0.2, (2, 5, 3, 8)),
    (3, 8, 7, ("bitmap-z", "raw", "bitmap"), (0, 0, 0), 0.0, (7, 3, 2)),
    (2, 1, 5, ("raw", "bitmap-z"), (0, 0), 0.5, (2, 3)),
    (4, 16, 16, ("raw", "bitmap", "raw"), (0, 0, 0), 0.1, (9, 4, 16)),
])
def test_sparse_decoder(r, c, w, formats, zeros, gap_p, widths, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    blk = blocks(rng, r, c, w, list(zeros), 40, None if widths is None else list(widths))
    plan = encode.build(list(formats), blk, list(zeros), w, widths)
    assert plan.encoded
    rows = encode.padded_rows(blk, list(zeros))
    # the Python reference model decodes the stream to the same rows (as unsigned w-bit
    # fields: a narrow layer's elements sign-extended to w)
    ref = encode.decode(plan.words, plan.width, [ly for ly, _ in rows], formats, zeros, c, w,
                        widths)
    assert ref == [[int(v) & ((1 << w) - 1) for v in row] for _, row in rows]
    if widths is not None:  # each layer's rows are stored at its own width
        assert plan.layer_bits == tuple(
            sum(encode.row_bits(row, formats[i], zeros[i], widths[i]) for ly, row in rows
                if ly == i) for i in range(len(formats)))
    hexfile = tmp_path / "stream.hex"
    hexfile.write_text(romgen.hex_lines(list(plan.words), plan.width))
    csw = max(1, (len(formats) - 1).bit_length())
    nsel = 1 << csw
    bitmap = sum(1 << i for i, f in enumerate(formats) if f != "raw")
    empty = sum(1 << i for i, f in enumerate(formats) if f == "bitmap-z")
    zero = romgen.pack([(z, w) for z in zeros])
    top = tmp_path / "top.v"
    top.write_text(WRAPPER.format(C=c, W=w, EW=plan.width, DEPTH=len(plan.words), CSW=csw,
                                  hex=hexfile, BITMAP=f"{nsel}'h{bitmap:x}",
                                  EMPTY=f"{nsel}'h{empty:x}",
                                  ZERO=f"{nsel * w}'h{zero:x}",
                                  WL="" if widths is None else
                                  f", .WL({nsel * 8}'h{romgen.pack([(x, 8) for x in widths]):x})"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "R": r, "gap_p": gap_p, "layers": [ly for ly, _ in rows],
        "rows": [romgen.pack([(int(v), w) for v in row]) for _, row in rows]}))
    run_cocotb("tb_sparse_decoder_top", [HW / "rom.v", HW / "sparse_decoder.v", top],
               "tb_sparse_decoder", tmp_path / "build", seed=2024,
               extra_env={"SPARSE_SPEC": str(spec)})
