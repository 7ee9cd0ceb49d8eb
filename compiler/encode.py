"""Sparsity encoding of the weight ROM: the rows of the non-zero tiles the tiler keeps, stored
raw or as a bitmap, per layer, and decoded by hw/sparse_decoder.v at one row per cycle.

A tile row is C elements of w bits (w = wbits, or the --share-bits index width). Formats, LSB
first in the stream:
- raw: the C elements, column j at [j*w +: w] (the unencoded ROM word);
- bitmap: a C-bit mask, bit j set when column j is not the layer's zero element (0, or with
  sharing the index of 0 in the layer's codebook), then the set columns' elements in column
  order, w bits each: C + nnz * w bits;
- bitmap-z: a 1-bit flag, 0 for a row of zero elements (1 bit in all), else 1 then the bitmap
  row: 1 + C + nnz * w. Pays where whole rows are zero: pruned input channels, a depthwise
  layer's block-diagonal tiles, the padding rows of a layer with fewer than R input channels.
Tile padding (rows past k_rows, columns past n_cols) is the zero element in a bitmap row.

Options (``--encode``): raw (every layer raw, the plain addressable ROM, no decoder), bitmap or
bitmap-z (every layer), auto (per layer the format storing the fewest bits, raw unless another
stores strictly fewer; if no layer gains, exactly the raw design). bench/sparsity_encoding.py
measured the candidates: run-length coding (EIE's 4-bit relative index) beats the plain bitmap
only on very sparse or mostly-padding layers, bitmap-z beats it there too (it spends one bit on
an empty row), and placing a row's values from run fields needs a serial prefix sum where a
bitmap needs a popcount, so run-length is not a format here.

The encoded ROM is one bit stream: every row of every scheduled tile in schedule order (the
order the weight loader reads them, once per inference), concatenated without alignment and cut
into words of ``width`` = the longest row (the last word zero padded). Why the decoder keeps
the array's load rate, so the cycle model is unchanged, is in hw/sparse_decoder.v.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgehls.errors import OptionError

FORMATS = ("raw", "bitmap", "bitmap-z")
OPTIONS = ("auto", *FORMATS)


def check(option: str) -> str:
    if option not in OPTIONS:
        raise OptionError(f"--encode {option!r}: choose one of {', '.join(OPTIONS)}")
    return option


def row_bits(row: np.ndarray, fmt: str, zero: int, w: int) -> int:
    c, nnz = row.size, int((row != zero).sum())
    if fmt == "raw":
        return c * w
    if fmt == "bitmap-z":
        return 1 + c + nnz * w if nnz else 1
    return c + nnz * w


def row_chunks(row: np.ndarray, fmt: str, zero: int, w: int) -> list[tuple[int, int]]:
    """The row as (value, width) pairs, LSB first."""
    if fmt == "raw":
        return [(int(v), w) for v in row]
    nz = row != zero
    if fmt == "bitmap-z" and not nz.any():
        return [(0, 1)]
    mask = sum(1 << int(j) for j in np.flatnonzero(nz))
    flag = [(1, 1)] if fmt == "bitmap-z" else []
    return flag + [(mask, row.size)] + [(int(v), w) for v in row[nz]]


def with_zero_padding(block: np.ndarray, live: np.ndarray, zero: int) -> np.ndarray:
    return np.where(live, block, zero)


@dataclass(frozen=True)
class Plan:
    """The per-layer formats and the stream they give."""

    formats: tuple[str, ...]  # per layer
    zeros: tuple[int, ...]  # per layer: the element a clear mask bit stands for
    layer_bits: tuple[int, ...]  # stream bits of each layer's rows
    raw_bits: tuple[int, ...]  # the same rows unencoded
    width: int  # stream word width; 0 when every layer is raw (plain ROM, no decoder)
    words: tuple[int, ...]

    @property
    def encoded(self) -> bool:
        return self.width > 0


def plan(option: str, blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], zeros: Sequence[int],
         w: int) -> Plan:
    """Choose each layer's format under ``option`` and build the stream.

    ``blocks``: per scheduled tile, (layer, R x C elements, live mask), in schedule order;
    ``zeros``: per layer, its zero element; ``w``: element bits.
    """
    check(option)
    rows = padded_rows(blocks, zeros)
    bits = {f: [0] * len(zeros) for f in FORMATS}
    for layer, row in rows:
        for f in FORMATS:
            bits[f][layer] += row_bits(row, f, zeros[layer], w)
    if option == "auto":  # min() keeps the first of equals: raw, then bitmap
        formats = [min(FORMATS, key=lambda f, i=i: bits[f][i]) for i in range(len(zeros))]
    else:
        formats = [option] * len(zeros)
    return build(formats, blocks, zeros, w)


def padded_rows(blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], zeros: Sequence[int]
                ) -> list[tuple[int, np.ndarray]]:
    return [(layer, row) for layer, block, live in blocks
            for row in with_zero_padding(block, live, zeros[layer])]


def build(formats: Sequence[str], blocks: Sequence[tuple[int, np.ndarray, np.ndarray]],
          zeros: Sequence[int], w: int) -> Plan:
    """The stream of the rows in ``blocks`` with layer l's rows in ``formats[l]``."""
    rows = padded_rows(blocks, zeros)
    raw = [0] * len(zeros)
    bits = [0] * len(zeros)
    chunks = []
    for layer, row in rows:
        raw[layer] += row_bits(row, "raw", zeros[layer], w)
        bits[layer] += row_bits(row, formats[layer], zeros[layer], w)
        chunks.append(row_chunks(row, formats[layer], zeros[layer], w))
    if set(formats) == {"raw"}:
        return Plan(tuple(formats), tuple(zeros), tuple(raw), tuple(raw), 0, ())
    width = max(sum(n for _, n in ch) for ch in chunks)
    return Plan(tuple(formats), tuple(zeros), tuple(bits), tuple(raw), width,
                tuple(pack_stream([x for ch in chunks for x in ch], width)))


def pack_stream(chunks: list[tuple[int, int]], width: int) -> list[int]:
    """(value, bits) pairs, two's complement, concatenated LSB first and cut into words."""
    stream, pos = 0, 0
    for value, n in chunks:
        stream |= (int(value) & ((1 << n) - 1)) << pos
        pos += n
    count = max(1, -(-pos // width))
    mask = (1 << width) - 1
    return [(stream >> (i * width)) & mask for i in range(count)]


def decode(words: Sequence[int], width: int, layers: Sequence[int], formats: Sequence[str],
           zeros: Sequence[int], c: int, w: int) -> list[list[int]]:
    """Reference model of hw/sparse_decoder.v's output: the rows of the stream, one per entry
    of ``layers`` (the layer of each row loaded, in order), elements as unsigned w-bit fields."""
    stream = sum(int(x) << (i * width) for i, x in enumerate(words))
    pos, out = 0, []
    fmask = (1 << w) - 1
    for layer in layers:
        if formats[layer] == "raw":
            out.append([(stream >> (pos + j * w)) & fmask for j in range(c)])
            pos += c * w
            continue
        if formats[layer] == "bitmap-z":
            pos += 1
            if not (stream >> (pos - 1)) & 1:
                out.append([zeros[layer] & fmask] * c)
                continue
        mask = (stream >> pos) & ((1 << c) - 1)
        pos += c
        row = []
        for j in range(c):
            if mask >> j & 1:
                row.append((stream >> pos) & fmask)
                pos += w
            else:
                row.append(zeros[layer] & fmask)
        out.append(row)
    return out
