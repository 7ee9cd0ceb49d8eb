"""numerics.conv and numerics.maxpool, the integer contract the RTL implements, against
straightforward loops over plain Python integers (random shapes, strides, dilations, asymmetric
pads, groups, channel multipliers, widths up to 16 bits)."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import numerics as nm


def out_len(size: int, k: int, stride: int, pad_a: int, pad_b: int, dil: int) -> int:
    """Count the window starts whose last tap is still inside the padded axis."""
    n = 0
    while n * stride + dil * (k - 1) <= size + pad_a + pad_b - 1:
        n += 1
    return n


def taps(o: int, k: int, stride: int, pad_a: int, dil: int, size: int) -> list[tuple[int, int]]:
    """(tap index, input index) of the window at output o that fall inside the input."""
    return [(i, o * stride - pad_a + i * dil) for i in range(k)
            if 0 <= o * stride - pad_a + i * dil < size]


def ref_conv(x, w, b, mult, shift, lo, hi, kernel, strides, pads, dils, group):
    h, wd, cin = x.shape
    cout, cg, kh, kw = w.shape
    assert cg * group == cin and cout % group == 0
    oh = out_len(h, kh, strides[0], pads[0], pads[2], dils[0])
    ow = out_len(wd, kw, strides[1], pads[1], pads[3], dils[1])
    y = np.zeros((oh, ow, cout), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for o in range(cout):
                gi = o // (cout // group)
                acc = int(b[o])
                for i, iy in taps(oy, kh, strides[0], pads[0], dils[0], h):
                    for j, ix in taps(ox, kw, strides[1], pads[1], dils[1], wd):
                        for c in range(cg):
                            acc += int(x[iy, ix, gi * cg + c]) * int(w[o, c, i, j])
                s = int(shift[o])
                v = (acc * int(mult[o]) + ((1 << (s - 1)) if s > 0 else 0)) >> s  # floor
                y[oy, ox, o] = min(max(v, lo), hi)
    return y


def ref_maxpool(x, kernel, strides, pads, dils):
    h, wd, c = x.shape
    oh = out_len(h, kernel[0], strides[0], pads[0], pads[2], dils[0])
    ow = out_len(wd, kernel[1], strides[1], pads[1], pads[3], dils[1])
    y = np.zeros((oh, ow, c), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            vals = [[int(x[iy, ix, ch]) for _, iy in taps(oy, kernel[0], strides[0], pads[0],
                                                          dils[0], h)
                     for _, ix in taps(ox, kernel[1], strides[1], pads[1], dils[1], wd)]
                    for ch in range(c)]
            assert vals[0], "an all-padding window"
            y[oy, ox] = [max(v) for v in vals]
    return y


def geometry(rng: np.random.Generator, kmax: int = 5):
    """Random (H, W, kernel, strides, pads, dils) with pads < kernel, >= 1 output pixel and
    no window made of padding only."""
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, kmax + 1, 2))
        strides = tuple(int(v) for v in rng.integers(1, 4, 2))
        dils = tuple(int(v) for v in rng.integers(1, 4, 2))
        pads = tuple(int(rng.integers(0, kernel[a % 2])) for a in range(4))
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        dims = [(h, 0), (w, 1)]
        lens = [out_len(n, kernel[a], strides[a], pads[a], pads[a + 2], dils[a]) for n, a in dims]
        if min(lens) < 1:
            continue
        if all(taps(o, kernel[a], strides[a], pads[a], dils[a], n)
               for (n, a), m in zip(dims, lens, strict=True) for o in range(m)):
            return h, w, kernel, strides, pads, dils


def requant(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (mult, shift) as requant_params makes them: mult 2**-s for s < 0, else 1."""
    s = rng.integers(-6, 20, n)
    return np.where(s < 0, 1 << np.maximum(-s, 0), 1), np.maximum(s, 0)


@pytest.mark.parametrize("seed", range(40))
def test_conv_matches_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w, kernel, strides, pads, dils = geometry(rng)
    group = int(rng.choice([1, 1, 2, 3]))
    if seed % 4 == 3:  # depthwise with a channel multiplier
        cin, cout, group = 3, 3 * int(rng.integers(1, 3)), 3
    else:
        cin, cout = group * int(rng.integers(1, 4)), group * int(rng.integers(1, 4))
    abits, wbits = int(rng.integers(2, 17)), int(rng.integers(2, 17))
    signed = bool(rng.integers(0, 2))
    alo, ahi = (-(1 << (abits - 1)), (1 << (abits - 1)) - 1) if signed else (0, (1 << abits) - 1)
    x = rng.integers(alo, ahi + 1, (h, w, cin))
    qmax = nm.weight_max(wbits)
    wq = rng.integers(-qmax, qmax + 1, (cout, cin // group, *kernel))
    k = cin // group * kernel[0] * kernel[1]
    lim = nm.bias_bound(wbits, abits, k)
    b = rng.integers(-lim, lim + 1, cout)
    mult, shift = requant(rng, cout)
    lo, hi = (0, 255) if seed % 2 else (-128, 127)
    args = (x, wq, b, mult, shift, lo, hi, kernel, strides, pads, dils, group)
    y = nm.conv(*args)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, ref_conv(*args))


def test_conv_extremes_are_exact_in_int64() -> None:
    """16-bit activations and weights at their extremes, a long dot product: no overflow."""
    cin, kernel = 64, (11, 11)
    x = np.full((11, 11, cin), -(1 << 15), dtype=np.int64)
    w = np.full((2, cin, *kernel), -(1 << 15) + 1, dtype=np.int64)
    w[1] = (1 << 15) - 1
    k = cin * 121
    acc = (1 << 15) * ((1 << 15) - 1) * k
    assert acc.bit_length() < nm.acc_bits(16, 16, k) - 1
    y = nm.conv(x, w, np.zeros(2, np.int64), np.ones(2, np.int64), np.zeros(2, np.int64),
                -(1 << 62), 1 << 62, kernel, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert y.tolist() == [[[acc, -acc]]]


def test_conv_hand_values() -> None:
    """A 3x3 input, 2x2 kernel of ones, pads (1, 0, 0, 1): sums of the in-bounds taps."""
    x = np.arange(9).reshape(3, 3, 1)
    w = np.ones((1, 1, 2, 2), dtype=np.int64)
    y = nm.conv(x, w, np.array([0]), np.array([1]), np.array([0]), -100, 100, (2, 2), (1, 1),
                (1, 0, 0, 1), (1, 1), 1)
    assert y[..., 0].tolist() == [[1, 3, 2], [8, 12, 7], [20, 24, 13]]
    # requantization: (acc + 2) >> 2 with round half up, then the clamp
    y = nm.conv(x, w, np.array([1]), np.array([1]), np.array([2]), 0, 5, (2, 2), (1, 1),
                (1, 0, 0, 1), (1, 1), 1)
    assert y[..., 0].tolist() == [[1, 1, 1], [2, 3, 2], [5, 5, 4]]


@pytest.mark.parametrize("seed", range(30))
def test_maxpool_matches_loops(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    h, w, kernel, strides, pads, dils = geometry(rng, kmax=4)
    c = int(rng.integers(1, 5))
    bits = int(rng.integers(2, 17))
    lo = 0 if seed % 2 else -(1 << (bits - 1))
    x = rng.integers(lo, lo + (1 << bits), (h, w, c))
    y = nm.maxpool(x, kernel, strides, pads, dils)
    np.testing.assert_array_equal(y, ref_maxpool(x, kernel, strides, pads, dils))


def test_maxpool_ignores_padding() -> None:
    """Padding is not a zero: an all-negative input pools to negative values."""
    x = -np.arange(1, 5).reshape(2, 2, 1)
    y = nm.maxpool(x, (2, 2), (1, 1), (1, 1, 1, 1), (1, 1))
    assert y[..., 0].tolist() == [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]]


@pytest.mark.parametrize("size,k,s,pa,pb,d", [(7, 3, 1, 1, 1, 1), (7, 3, 2, 0, 1, 2),
                                               (1, 1, 1, 0, 0, 1), (10, 4, 3, 2, 0, 3),
                                               (49, 10, 2, 4, 5, 1), (5, 11, 1, 5, 5, 1)])
def test_conv_out(size: int, k: int, s: int, pa: int, pb: int, d: int) -> None:
    assert nm.conv_out(size, k, s, pa, pb, d) == out_len(size, k, s, pa, pb, d)
