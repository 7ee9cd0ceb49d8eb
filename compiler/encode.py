"""Sparsity encoding of the weight ROM: the rows of the non-zero tiles the tiler keeps, stored
raw or as a bitmap, per layer, and decoded by hw/sparse_decoder.v at one row per cycle.

A tile row is C elements of w bits. Without weight sharing w is the row's layer's own weight
width (its ``wbits``; a max pool's or residual Add's tiles, which have no weights of their own,
take the array's W): a 4-bit layer of an 8-bit design stores 4 bits a weight and the decoder
sign-extends each element to the array's W bits. With --share-bits every layer stores indices of
that one width. Formats, LSB first in the stream:
- raw: the C elements, column j at [j*w +: w] (the unencoded ROM word when w = W);
- bitmap: a C-bit mask, bit j set when column j is not the layer's zero element (0, or with
  sharing the index of 0 in the layer's codebook), then the set columns' elements in column
  order, w bits each: C + nnz * w bits;
- bitmap-z: a 1-bit flag, 0 for a row of zero elements (1 bit in all), else 1 then the bitmap
  row: 1 + C + nnz * w. Pays where whole rows are zero: pruned input channels, a depthwise
  layer's block-diagonal tiles, the padding rows of a layer with fewer than R input channels.
Tile padding (rows past k_rows, columns past n_cols) is the zero element in a bitmap row.

Options (``--encode``): raw (every layer raw at the full width W: the plain addressable ROM, no
decoder, whatever the layers' widths), bitmap or bitmap-z (every layer, each at its own width),
auto (per layer the format storing the fewest bits at the layer's own width, raw unless another
stores strictly fewer; but if that saves less than AUTO_MIN_SAVING of the plain ROM's bits, or
every layer is raw at the full width, exactly the raw design: a design without a real sparsity
or precision gain keeps the plain ROM and its Fmax, and a mixed-precision one is a stream
whose narrow layers are stored narrow). bench/sparsity_encoding.py
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
from itertools import groupby

import numpy as np

from edgehls.errors import OptionError

FORMATS = ("raw", "bitmap", "bitmap-z")
#: ``auto`` encodes only if that stores at least this fraction fewer weight bits than the plain
#: ROM: the decoder costs logic (about 2.5k LUT4 at 8 columns) and Fmax (its barrel shifter sits
#: behind the ROM read: 128 -> 66 MHz for the digits MLP on ECP5 at 8x8, where it saved 2.7 %)
AUTO_MIN_SAVING = 0.25
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
    raw_bits: tuple[int, ...]  # the same rows unencoded (raw at the full width W)
    width: int  # stream word width; 0 when every layer is raw at W (plain ROM, no decoder)
    words: tuple[int, ...]
    widths: tuple[int, ...] = ()  # per layer: its element width in the stream

    @property
    def encoded(self) -> bool:
        return self.width > 0


def layer_widths(w: int, widths: Sequence[int] | None, n: int) -> list[int]:
    """Per layer element widths: ``widths``, or ``w`` for every layer."""
    out = [w] * n if widths is None else [int(x) for x in widths]
    if len(out) != n or any(not 1 <= x <= w for x in out):
        raise ValueError(f"element widths {out} must be 1..{w}, one per layer ({n})")
    return out


def plan(option: str, blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], zeros: Sequence[int],
         w: int, widths: Sequence[int] | None = None) -> Plan:
    """Choose each layer's format under ``option`` and build the stream.

    ``blocks``: per scheduled tile, (layer, R x C elements, live mask), in schedule order;
    ``zeros``: per layer, its zero element; ``w``: the array's element bits; ``widths``: per
    layer, its own element bits (default ``w``). ``raw`` ignores ``widths``: the plain ROM.
    """
    check(option)
    wl = layer_widths(w, None if option == "raw" else widths, len(zeros))
    groups = layer_rows(blocks, zeros)
    bits = {f: [0] * len(zeros) for f in FORMATS}
    for layer, rows in groups:
        for f in FORMATS:
            bits[f][layer] += int(rows_bits(rows, f, zeros[layer], wl[layer]).sum())
    if option == "auto":  # min() keeps the first of equals: raw, then bitmap
        formats = [min(FORMATS, key=lambda f, i=i: bits[f][i]) for i in range(len(zeros))]
        raw = sum(rows.size * w for _, rows in groups)
        stored = sum(bits[f][i] for i, f in enumerate(formats))
        if stored > (1 - AUTO_MIN_SAVING) * raw:  # the decoder would not pay: the plain ROM
            return _build(["raw"] * len(zeros), groups, zeros, w, [w] * len(zeros))
    else:
        formats = [option] * len(zeros)
    return _build(formats, groups, zeros, w, wl)


def padded_rows(blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], zeros: Sequence[int]
                ) -> list[tuple[int, np.ndarray]]:
    return [(layer, row) for layer, block, live in blocks
            for row in with_zero_padding(block, live, zeros[layer])]


def layer_rows(blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], zeros: Sequence[int]
               ) -> list[tuple[int, np.ndarray]]:
    """``padded_rows`` a run of consecutive blocks of one layer at a time: (layer, rows [n, C]),
    in schedule order."""
    out = []
    for layer, run in groupby(blocks, key=lambda b: b[0]):
        run = list(run)
        block = np.stack([b for _, b, _ in run])
        live = np.stack([x for _, _, x in run])
        rows = with_zero_padding(block, live, zeros[layer])
        out.append((layer, rows.reshape(-1, block.shape[-1])))
    return out


def rows_bits(rows: np.ndarray, fmt: str, zero: int, w: int) -> np.ndarray:
    """``row_bits`` of every row of ``rows`` [n, C]."""
    n, c = rows.shape
    if fmt == "raw":
        return np.full(n, c * w, dtype=np.int64)
    nnz = (rows != zero).sum(axis=1, dtype=np.int64)
    if fmt == "bitmap-z":
        return np.where(nnz > 0, 1 + c + nnz * w, 1)
    return c + nnz * w


def element_bits(values: np.ndarray, w: int) -> np.ndarray:
    """The w-bit two's complement fields of ``values``, LSB first: shape values.shape + (w,),
    0/1 as uint8."""
    size = next(n for n in (1, 2, 4, 8) if w <= 8 * n)
    fields = (np.asarray(values, dtype=np.int64) & ((1 << w) - 1)).astype(f"<u{size}")
    return np.unpackbits(fields[..., None].view(np.uint8), axis=-1, bitorder="little")[..., :w]


def rows_stream(rows: np.ndarray, fmt: str, zero: int, w: int) -> np.ndarray:
    """The stream bits (0/1 uint8, LSB first) of ``rows`` [n, C] in ``fmt``: the ``row_chunks``
    of each row, concatenated."""
    n, c = rows.shape
    elements = element_bits(rows, w).reshape(n, c * w)
    if fmt == "raw":
        return elements.reshape(-1)
    nz = rows != zero
    parts = [nz.astype(np.uint8), elements]
    keep = [np.ones((n, c), bool), np.repeat(nz, w, axis=1)]
    if fmt == "bitmap-z":  # an empty row is its clear flag alone
        flag = nz.any(axis=1, keepdims=True)
        parts = [flag.astype(np.uint8), *parts]
        keep = [np.ones((n, 1), bool), np.repeat(flag, c, axis=1), keep[1]]
    return np.concatenate(parts, axis=1)[np.concatenate(keep, axis=1)]


def pack_bits(bits: np.ndarray, width: int) -> list[int]:
    """``pack_stream`` of a stream given as bits (0/1, LSB first): cut into words of ``width``
    bits, the last zero padded (one zero word for an empty stream)."""
    n = max(1, -(-bits.size // width))
    padded = np.zeros(n * width, dtype=np.uint8)
    padded[:bits.size] = bits
    packed = np.packbits(padded.reshape(n, width), axis=1, bitorder="little")
    if packed.shape[1] <= 8:  # words fit 64 bits: let numpy make the integers
        wide = np.zeros((n, 8), dtype=np.uint8)
        wide[:, :packed.shape[1]] = packed
        return wide.view("<u8").reshape(-1).tolist()
    data, k = packed.tobytes(), packed.shape[1]
    return [int.from_bytes(data[i:i + k], "little") for i in range(0, n * k, k)]


def raw_words(blocks: Sequence[tuple[int, np.ndarray, np.ndarray]], w: int) -> list[int]:
    """The plain ROM: one word per row of every block as stored (padding included), column j
    at bits [j*w +: w]."""
    if not blocks:
        return [0]
    rows = np.concatenate([b for _, b, _ in blocks])
    return pack_bits(element_bits(rows, w).reshape(-1), rows.shape[1] * w)


def build(formats: Sequence[str], blocks: Sequence[tuple[int, np.ndarray, np.ndarray]],
          zeros: Sequence[int], w: int, widths: Sequence[int] | None = None) -> Plan:
    """The stream of the rows in ``blocks`` with layer l's rows in ``formats[l]`` and its
    elements ``widths[l]`` bits wide (default ``w``, the array's element width)."""
    return _build(formats, layer_rows(blocks, zeros), zeros, w, layer_widths(w, widths, len(zeros)))


def _build(formats: Sequence[str], groups: list[tuple[int, np.ndarray]], zeros: Sequence[int],
           w: int, wl: list[int]) -> Plan:
    raw = [0] * len(zeros)
    bits = [0] * len(zeros)
    row_sizes = []
    for layer, rows in groups:
        raw[layer] += rows.size * w
        row_sizes.append(rows_bits(rows, formats[layer], zeros[layer], wl[layer]))
        bits[layer] += int(row_sizes[-1].sum())
    if set(formats) == {"raw"} and set(wl) <= {w}:
        return Plan(tuple(formats), tuple(zeros), tuple(raw), tuple(raw), 0, (), tuple(wl))
    width = max(int(n.max()) for n in row_sizes)
    stream = np.concatenate([rows_stream(rows, formats[layer], zeros[layer], wl[layer])
                             for layer, rows in groups])
    return Plan(tuple(formats), tuple(zeros), tuple(bits), tuple(raw), width,
                tuple(pack_bits(stream, width)), tuple(wl))


def pack_stream(chunks: list[tuple[int, int]], width: int) -> list[int]:
    """(value, bits) pairs, two's complement, concatenated LSB first and cut into words."""
    # a small accumulator flushed word by word: OR-ing into one growing integer was quadratic
    # (2.5 s of MobileNetV1's 4 s compile)
    words: list[int] = []
    acc, bits = 0, 0
    mask = (1 << width) - 1
    for value, n in chunks:
        acc |= (int(value) & ((1 << n) - 1)) << bits
        bits += n
        while bits >= width:
            words.append(acc & mask)
            acc >>= width
            bits -= width
    if bits or not words:
        words.append(acc)
    return words


def sign_extend(field: int, n: int, w: int) -> int:
    """The n-bit two's complement ``field`` as an unsigned w-bit field (n <= w)."""
    if n < w and field >> (n - 1) & 1:
        field |= ((1 << w) - 1) ^ ((1 << n) - 1)
    return field


def decode(words: Sequence[int], width: int, layers: Sequence[int], formats: Sequence[str],
           zeros: Sequence[int], c: int, w: int, widths: Sequence[int] | None = None
           ) -> list[list[int]]:
    """Reference model of hw/sparse_decoder.v's output: the rows of the stream, one per entry
    of ``layers`` (the layer of each row loaded, in order), elements as unsigned w-bit fields
    (a layer stored at ``widths[l]`` < w bits sign-extended to w)."""
    wl = layer_widths(w, widths, len(formats))
    stream = sum(int(x) << (i * width) for i, x in enumerate(words))
    pos, out = 0, []
    wmask = (1 << w) - 1
    for layer in layers:
        n = wl[layer]
        fmask = (1 << n) - 1
        if formats[layer] == "raw":
            out.append([sign_extend((stream >> (pos + j * n)) & fmask, n, w) for j in range(c)])
            pos += c * n
            continue
        if formats[layer] == "bitmap-z":
            pos += 1
            if not (stream >> (pos - 1)) & 1:
                out.append([zeros[layer] & wmask] * c)
                continue
        mask = (stream >> pos) & ((1 << c) - 1)
        pos += c
        row = []
        for j in range(c):
            if mask >> j & 1:
                row.append(sign_extend((stream >> pos) & fmask, n, w))
                pos += n
            else:
                row.append(zeros[layer] & wmask)
        out.append(row)
    return out
