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


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, lo: int, hi: int
               ) -> np.ndarray:
    """clip((acc * mult + round) >> shift, lo, hi): the post-processing unit, bit for bit.

    ``acc`` [..., N] int64; ``mult``/``shift`` [N]; round = 2**(shift-1) when shift > 0, else 0;
    ``>>`` is arithmetic (floor).
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    rnd = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    y = np.right_shift(acc * mult + rnd, shift)
    return np.clip(y, lo, hi)


def dense(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray, mult: np.ndarray,
          shift: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The integer Dense layer: requantize(x_q @ w_q + b_q). Exact in int64."""
    acc = np.asarray(x_q, dtype=np.int64) @ np.asarray(w_q, dtype=np.int64) + np.asarray(
        b_q, dtype=np.int64)
    return requantize(acc, mult, shift, lo, hi)
