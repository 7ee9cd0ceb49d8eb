"""The numerics contract, written once: the golden model, the quantizer and codegen all call it,
and hw/postproc.v implements ``requantize`` bit for bit.

Fixed point with power-of-two scales: a tensor's integer q stands for q * 2**-frac.

- Weights: signed ``wbits``, symmetric (-(2**(wbits-1)-1) .. 2**(wbits-1)-1), frac per output
  channel.
- Activations: ``abits`` wide, signed, or unsigned after ReLU. The hardware stores every
  activation as ``abits + 1`` signed bits so both fit one datapath.
- Accumulator: ``wbits + abits + ceil(log2 K) + 1`` bits never overflow (``acc_bits``); the bias
  is clipped to the dot product's own bound so the sum still fits.
- Requantization: ``clip((acc * mult + round) >> shift, lo, hi)`` with round = 2**(shift-1)
  (round half up) for shift > 0, an arithmetic shift, and ``lo``/``hi`` the output range with
  ReLU folded in. Power-of-two scales give mult = 1 (shift >= 0) or mult = 2**-s (s < 0).
- Real scales (``--scale mult``, imported quantized models): a tensor's integer q stands for
  q * scale; the requantization ratio r = scale_acc / scale_out becomes a ``MULT_BITS``-bit
  multiplier and a shift, mult = round_half_up(r * 2**shift) with the largest shift that keeps
  mult < 2**MULT_BITS (``requant_real``); a residual Add's inputs are weighted by small integers
  whose ratio approximates their scales' ratio (``add_weights_real``).
"""

from __future__ import annotations

import math

import numpy as np

from edgehls.errors import OptionError

MULT_BITS = 16  # unsigned requantization multiplier width in hardware
SHIFT_BITS = 6  # requantization shift width in hardware (0..63)
MAX_SHIFT = (1 << SHIFT_BITS) - 1
MAX_MULT = (1 << MULT_BITS) - 1
MIN_BITS, MAX_BITS = 2, 16
FRAC_LIMIT = 48  # |frac| bound, keeps int64 arithmetic exact


def check_bits(name: str, bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise OptionError(f"{name} {bits} is out of range: choose {MIN_BITS}..{MAX_BITS} bits")
    return bits


def clog2(n: int) -> int:
    """ceil(log2(n)) for n >= 1 (0 for n = 1)."""
    return max(0, (int(n) - 1).bit_length())


def acc_bits(wbits: int, abits: int, k: int) -> int:
    """Accumulator width that cannot overflow for a length-k dot product plus bias."""
    return wbits + abits + clog2(k) + 1


def weight_max(wbits: int) -> int:
    return (1 << (wbits - 1)) - 1


def frac_for(maxabs: float, qmax: int) -> int:
    """Largest frac with maxabs * 2**frac <= qmax (0 for an all-zero tensor)."""
    if not np.isfinite(maxabs) or maxabs <= 0.0:
        return 0
    f = math.floor(math.log2(qmax / maxabs))
    # guard against log2 rounding at exact powers of two
    while maxabs * 2.0**f > qmax:
        f -= 1
    return int(max(-FRAC_LIMIT, min(FRAC_LIMIT, f)))


def round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def quantize(x: np.ndarray, frac: int, lo: int, hi: int) -> np.ndarray:
    """Float -> integer at scale 2**-frac, round half up, saturate to [lo, hi]."""
    q = round_half_up(np.asarray(x, dtype=np.float64) * 2.0**frac)
    return np.clip(q, lo, hi).astype(np.int64)


def quantize_scaled(x: np.ndarray, scale: float | np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Float -> integer at any scale: clip(round_half_up(x / scale), lo, hi). For scale
    2**-frac it equals ``quantize(x, frac, lo, hi)`` exactly (division by a power of two)."""
    q = round_half_up(np.asarray(x, dtype=np.float64) / np.asarray(scale, dtype=np.float64))
    return np.clip(q, lo, hi).astype(np.int64)


def frac_of(scale: float) -> int:
    """The frac of the power of two nearest a real scale (log2 rounded), for display and for
    the parts of a real-scale design that want one: -log2(scale) rounded, within FRAC_LIMIT."""
    return int(np.clip(round(-np.log2(scale)), -FRAC_LIMIT, FRAC_LIMIT))


def scale_for(maxabs: float, qmax: int) -> float:
    """The real scale mapping maxabs to qmax (1.0 for an all-zero tensor)."""
    if not np.isfinite(maxabs) or maxabs <= 0.0:
        return 1.0
    return float(maxabs) / qmax


def requant_real(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (mult, shift) with mult * 2**-shift ~= ratio: the largest shift <= MAX_SHIFT
    keeping mult <= MAX_MULT, mult = round_half_up(ratio * 2**shift). OptionError if a ratio is
    not positive and finite, or too large or too small for the post-processing unit."""
    r = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    mult, shift = np.zeros(r.shape, np.int64), np.zeros(r.shape, np.int64)
    for i, v in enumerate(r):
        if not np.isfinite(v) or v <= 0.0:
            raise OptionError(f"requantization ratio {v} is not a positive number")
        sh = min(MAX_SHIFT, MULT_BITS - math.frexp(float(v))[1])
        m = int(round_half_up(v * 2.0**sh))
        if m > MAX_MULT:  # v * 2**sh rounded up to 2**MULT_BITS
            sh -= 1
            m = int(round_half_up(v * 2.0**sh))
        if sh < 0 or m < 1:
            raise OptionError(
                f"requantization ratio {v:.3g} is outside what the post-processing unit "
                f"implements ({2.0**-MAX_SHIFT:.3g}..{MAX_MULT}); the model's weight or "
                "activation ranges are extreme: check the calibration data")
        mult[i], shift[i] = m, sh
    return mult, shift


def add_weights_real(scale_a: float, scale_b: float, wbits: int) -> tuple[int, int, float]:
    """(wa, wb, unit) for a residual Add of inputs at real scales: wa * unit ~= scale_a and
    wb * unit ~= scale_b with wa, wb <= ``weight_max(wbits)``, the pair whose ratio is nearest
    scale_a / scale_b (the smaller weight first among ties); exact for power-of-two ratios that
    fit. unit = the scale of a * wa + b * wb."""
    wmax = weight_max(wbits)
    big, small = max(scale_a, scale_b), min(scale_a, scale_b)
    best: tuple[float, int, int] | None = None
    for ws in range(1, wmax + 1):  # weight of the finer input
        wl = int(round_half_up(ws * big / small))
        if wl > wmax:
            break
        err = abs(wl / ws - big / small) / (big / small)
        if best is None or err < best[0] - 1e-12:
            best = (err, wl, ws)
    if best is None:
        raise OptionError(
            f"residual Add: its inputs' scales differ by {big / small:.3g}x, more than "
            f"{wbits}-bit weights can align; use more --wbits or calibrate both branches alike")
    _, wl, ws = best
    wa, wb = (wl, ws) if scale_a >= scale_b else (ws, wl)
    return wa, wb, (scale_a / wa + scale_b / wb) / 2


def dequantize(q: np.ndarray, frac: int | np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * 2.0 ** -np.asarray(frac, dtype=np.float64)


def quantize_weights(w: np.ndarray, wbits: int, per_channel: bool = True
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric weights: w [K, N] float -> (w_q int64 [K, N], frac int64 [N])."""
    qmax = weight_max(wbits)
    w = np.asarray(w, dtype=np.float64)
    if per_channel:
        fracs = np.array([frac_for(float(np.abs(w[:, n]).max(initial=0.0)), qmax)
                          for n in range(w.shape[1])], dtype=np.int64)
    else:
        f = frac_for(float(np.abs(w).max(initial=0.0)), qmax)
        fracs = np.full(w.shape[1], f, dtype=np.int64)
    wq = np.clip(round_half_up(w * 2.0 ** fracs[None, :]), -qmax, qmax).astype(np.int64)
    return wq, fracs


def bias_bound(wbits: int, abits: int, k: int) -> int:
    """|bias| limit: the dot product's own bound, so bias + dot fits ``acc_bits``."""
    return (1 << (wbits - 1 + abits + clog2(k))) - 1


def quantize_bias(b: np.ndarray, frac_acc: np.ndarray, wbits: int, abits: int, k: int
                  ) -> np.ndarray:
    """Bias at accumulator scale (2**-(frac_in + frac_w[n])), clipped to ``bias_bound``."""
    lim = bias_bound(wbits, abits, k)
    q = round_half_up(np.asarray(b, dtype=np.float64) * 2.0 ** np.asarray(frac_acc, np.float64))
    return np.clip(q, -lim, lim).astype(np.int64)


def requant_params(frac_acc: np.ndarray, frac_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (mult, shift) taking accumulator scale 2**-frac_acc to 2**-frac_out."""
    s = np.asarray(frac_acc, dtype=np.int64) - int(frac_out)
    if (s < -(MULT_BITS - 1)).any() or (s > MAX_SHIFT).any():
        raise OptionError(
            f"requantization shift {int(s.min())}..{int(s.max())} is outside what the "
            f"post-processing unit implements (-{MULT_BITS - 1}..{MAX_SHIFT}); the model's "
            "weight or activation ranges are extreme: check the calibration data")
    mult = np.where(s < 0, np.left_shift(1, np.maximum(-s, 0)), 1).astype(np.int64)
    shift = np.maximum(s, 0).astype(np.int64)
    return mult, shift


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, lo: int, hi: int,
               neg: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """clip((acc * mult + round) >> shift, lo, hi): the post-processing unit, bit for bit.

    ``acc`` [..., N] int64; ``mult``/``shift`` [N]; round = 2**(shift-1) when shift > 0, else 0;
    ``>>`` is arithmetic (floor). ``neg`` = (mult_n, shift_n) [N], when given, replaces
    (mult, shift) for the elements whose acc < 0: a LeakyRelu/PRelu slope folded into the
    requantizer (``leaky_params``).
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if neg is not None:
        below = acc < 0
        mult = np.where(below, np.asarray(neg[0], dtype=np.int64), mult)
        shift = np.where(below, np.asarray(neg[1], dtype=np.int64), shift)
    rnd = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    y = np.right_shift(acc * mult + rnd, shift)
    return np.clip(y, lo, hi)


def dense(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray, mult: np.ndarray,
          shift: np.ndarray, lo: int, hi: int,
          neg: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The integer Dense layer: requantize(x_q @ w_q + b_q). Exact in int64."""
    acc = np.asarray(x_q, dtype=np.int64) @ np.asarray(w_q, dtype=np.int64) + np.asarray(
        b_q, dtype=np.int64)
    return requantize(acc, mult, shift, lo, hi, neg)


# --- convolution and pooling: NHWC tensors [H, W, C] of one sample ----------------------------


def conv_out(size: int, k: int, stride: int, pad_a: int, pad_b: int, dil: int) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode)."""
    return (size + pad_a + pad_b - dil * (k - 1) - 1) // stride + 1


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
            pads: tuple[int, int, int, int], dils: tuple[int, int], fill: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """im2col of x [H, W, C]: (patches [OH, OW, kh, kw, C], inside [OH, OW, kh, kw]) where
    ``inside`` is False at padding positions (which hold ``fill``)."""
    h, w, c = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = kernel, strides, pads, dils
    oh, ow = conv_out(h, kh, sh, pt, pb, dh), conv_out(w, kw, sw, pl, pr, dw)
    xp = np.full((h + pt + pb, w + pl + pr, c), fill, dtype=x.dtype)
    xp[pt:pt + h, pl:pl + w] = x
    mask = np.zeros(xp.shape[:2], dtype=bool)
    mask[pt:pt + h, pl:pl + w] = True
    iy = (np.arange(oh) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    ix = (np.arange(ow) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    return xp[iy, ix], mask[iy, ix]


def conv(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray, mult: np.ndarray,
         shift: np.ndarray, lo: int, hi: int, kernel: tuple[int, int],
         strides: tuple[int, int], pads: tuple[int, int, int, int], dils: tuple[int, int],
         group: int, neg: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The integer convolution: requantize(sum over the window and the group's channels of
    x * w, padding 0, + bias). x_q [H, W, Cin] -> [OH, OW, Cout]. Exact in int64."""
    x = np.asarray(x_q, dtype=np.int64)
    w = np.asarray(w_q, dtype=np.int64)
    cout, cg = w.shape[0], w.shape[1]
    patches, _ = windows(x, kernel, strides, pads, dils)  # [OH, OW, kh, kw, Cin]
    oh, ow = patches.shape[:2]
    acc = np.empty((oh, ow, cout), dtype=np.int64)
    per_group = cout // group
    for gi in range(group):
        cols = patches[..., gi * cg:(gi + 1) * cg].reshape(oh, ow, -1)  # (kh, kw, c) order
        wg = w[gi * per_group:(gi + 1) * per_group].transpose(0, 2, 3, 1).reshape(per_group, -1)
        acc[..., gi * per_group:(gi + 1) * per_group] = cols @ wg.T
    return requantize(acc + np.asarray(b_q, dtype=np.int64), mult, shift, lo, hi, neg)


def maxpool(x_q: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
            pads: tuple[int, int, int, int], dils: tuple[int, int]) -> np.ndarray:
    """Max over the window's non-padding elements: x_q [H, W, C] -> [OH, OW, C]."""
    x = np.asarray(x_q, dtype=np.int64)
    low = np.iinfo(np.int64).min
    patches, inside = windows(x, kernel, strides, pads, dils, fill=0)
    patches = np.where(inside[..., None], patches, low)
    return patches.max(axis=(2, 3))


def add(a_q: np.ndarray, b_q: np.ndarray, wa: int, wb: int, mult: np.ndarray,
        shift: np.ndarray, lo: int, hi: int,
        neg: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The integer residual Add: requantize(a * wa + b * wb) per channel (last axis).

    wa, wb are powers of two bringing both inputs to the finer of their scales (so the sum is
    exact); mult/shift take that scale to the output's. The hardware computes it on the array
    as a 1 x 1 convolution over the two inputs with diagonal weights wa and wb.
    """
    acc = np.asarray(a_q, dtype=np.int64) * int(wa) + np.asarray(b_q, dtype=np.int64) * int(wb)
    return requantize(acc, mult, shift, lo, hi, neg)


def add_weights(frac_a: int, frac_b: int, wbits: int) -> tuple[int, int, int]:
    """(wa, wb, frac_acc) for a residual Add of inputs at 2**-frac_a and 2**-frac_b."""
    frac = max(frac_a, frac_b)
    wa, wb = 1 << (frac - frac_a), 1 << (frac - frac_b)
    if max(wa, wb) > weight_max(wbits):
        raise OptionError(
            f"residual Add: its inputs' scales differ by 2**{abs(frac_a - frac_b)}, more than "
            f"{wbits}-bit weights can align; use more --wbits or calibrate both branches alike")
    return wa, wb, frac


# --- LeakyRelu / PRelu: a second (mult, shift) for negative accumulators ---------------------


def leaky_params(alpha: np.ndarray, mult: np.ndarray, shift: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(mult_n, shift_n) [N] realising y = alpha * x for x < 0 in the requantizer.

    The factor a channel's negative accumulators need is f = alpha * mult * 2**-shift. It is
    realised as mult_n * 2**-shift_n with the largest shift_n <= MAX_SHIFT that keeps
    mult_n = round_half_up(f * 2**shift_n) <= MAX_MULT, so mult_n >= 2**(MULT_BITS-1) unless
    the shift is capped: the slope's relative error is at most ``leaky_error`` (2**-MULT_BITS,
    1.5e-5 for 16-bit multipliers). alpha = 0 gives mult_n = 0 (a ReLU for negatives).
    Negative slopes (the multiplier is unsigned) and f >= 2**MULT_BITS raise OptionError.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    f = alpha * np.asarray(mult, np.float64) * 2.0 ** -np.asarray(shift, np.float64)
    if (alpha < 0).any() or not np.isfinite(alpha).all():
        raise OptionError(f"LeakyRelu/PRelu slope {float(alpha.min())} is negative or not "
                          "finite; only slopes >= 0 are supported (the multiplier is unsigned)")
    mult_n = np.zeros(f.shape, dtype=np.int64)
    shift_n = np.zeros(f.shape, dtype=np.int64)
    for i, v in enumerate(f.reshape(-1)):
        if v == 0.0:
            continue
        if round_half_up(v) > MAX_MULT:
            raise OptionError(f"LeakyRelu/PRelu slope {float(alpha.reshape(-1)[i])}: the "
                              f"negative-side factor {v:.4g} exceeds the {MULT_BITS}-bit "
                              "requantization multiplier")
        s = min(MAX_SHIFT, max(0, math.floor(math.log2(MAX_MULT / v))))
        while s > 0 and round_half_up(v * 2.0**s) > MAX_MULT:
            s -= 1
        mult_n.reshape(-1)[i] = int(round_half_up(v * 2.0**s))
        shift_n.reshape(-1)[i] = s
    return mult_n, shift_n


def leaky_error(alpha: np.ndarray, mult: np.ndarray, shift: np.ndarray, mult_n: np.ndarray,
                shift_n: np.ndarray) -> float:
    """Largest relative error of the realised negative slope against alpha (0 where alpha is
    0): |mult_n 2**-shift_n / (mult 2**-shift) - alpha| / alpha."""
    alpha = np.asarray(alpha, dtype=np.float64)
    real = (np.asarray(mult_n, np.float64) * 2.0 ** -np.asarray(shift_n, np.float64)
            / (np.asarray(mult, np.float64) * 2.0 ** -np.asarray(shift, np.float64)))
    rel = np.where(alpha > 0, np.abs(real - alpha) / np.where(alpha > 0, alpha, 1.0), 0.0)
    return float(rel.max(initial=0.0))


# --- Concat along channels ---------------------------------------------------------------------


def concat(xs: list[np.ndarray], mult: np.ndarray, shift: np.ndarray, lo: int, hi: int
           ) -> np.ndarray:
    """The integer channel Concat: requantize(the inputs joined along the last axis) per
    channel, each channel's (mult, shift) taking its input's scale to the output's
    (``requant_params(frac_in[c], frac_out)``). The hardware computes it on the array as a
    1 x 1 convolution over the inputs stacked along K with identity weights."""
    acc = np.concatenate([np.asarray(x, dtype=np.int64) for x in xs], axis=-1)
    return requantize(acc, mult, shift, lo, hi)


# --- table activations: Sigmoid, HardSigmoid, HardSwish ----------------------------------------

TABLE_FUNCTIONS = ("sigmoid", "hardsigmoid", "hardswish")


def table_function(fn: str, x: np.ndarray, alpha: float = 0.2, beta: float = 0.5
                   ) -> np.ndarray:
    """The float activation a lookup table realises (ONNX semantics; ``alpha``/``beta`` are
    HardSigmoid's)."""
    x = np.asarray(x, dtype=np.float64)
    if fn == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if fn == "hardsigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if fn == "hardswish":
        return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)
    raise OptionError(f"table activation {fn!r} is not one of {', '.join(TABLE_FUNCTIONS)}")


def table_lipschitz(fn: str, alpha: float = 0.2) -> float:
    """max |f'|: how much an input error can grow through the activation."""
    return {"sigmoid": 0.25, "hardsigmoid": abs(alpha), "hardswish": 1.5}[fn]


def build_table(fn: str, bits: int, frac_in: int, frac_out: int, lo: int, hi: int,
                alpha: float = 0.2, beta: float = 0.5, scale_in: float | None = None,
                scale_out: float | None = None) -> np.ndarray:
    """The lookup table of an activation on a signed ``bits``-wide input code z (scale
    2**-frac_in, or ``scale_in`` when given): entry z + 2**(bits-1), for z = -2**(bits-1) ..
    2**(bits-1)-1, is the output code quantize_scaled(f(z * scale_in), scale_out, lo, hi)
    (round half up, saturated; scale_out defaults to 2**-frac_out). 2**bits int64 entries."""
    s_in = 2.0**-frac_in if scale_in is None else scale_in
    s_out = 2.0**-frac_out if scale_out is None else scale_out
    z = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
    return quantize_scaled(table_function(fn, z * s_in, alpha, beta), s_out, lo, hi)


def lookup(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[z + 2**(bits-1)], bits = log2(len(table)): the hardware's index is z's low bits
    with the sign bit inverted."""
    table = np.asarray(table, dtype=np.int64)
    return table[np.asarray(z, dtype=np.int64) + (table.size >> 1)]


def table_error(fn: str, table: np.ndarray, frac_in: int, frac_out: int, lo: int, hi: int,
                alpha: float = 0.2, beta: float = 0.5, scale_in: float | None = None,
                scale_out: float | None = None) -> float:
    """max |dequantized table entry - f(entry's input)| over the codes z in [lo, hi] the
    producing layer can output, in real units (divide by the output scale for output LSBs)."""
    s_in = 2.0**-frac_in if scale_in is None else scale_in
    s_out = 2.0**-frac_out if scale_out is None else scale_out
    z = np.arange(lo, hi + 1, dtype=np.int64)
    ref = table_function(fn, z * s_in, alpha, beta)
    return float(np.abs(lookup(z, table) * s_out - ref).max(initial=0.0))
