"""Calibration: from observed float values to a tensor's scale.

Three ways to pick the clipping range m of a tensor (``--calibrate``):

- ``minmax``: the largest magnitude seen (nothing is clipped);
- ``percentile[:P]``: the P-th percentile of the magnitudes (default 99.99), so rare outliers
  are clipped and the common values get finer steps;
- ``mse``: the range, among candidates from the largest magnitude down to 1/16 of it, whose
  quantize-dequantize round trip has the smallest mean squared error on the observed values.

The scale is then 2**-frac with the largest frac keeping m * 2**frac <= qmax (``pow2``), or
m / qmax (``mult``). For ``pow2`` the mse candidates are the powers of two themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgehls import numerics
from edgehls.errors import OptionError

METHODS = ("minmax", "percentile", "mse")
SCALES = ("pow2", "mult")
DEFAULT_PERCENTILE = 99.99
MSE_CANDIDATES = 64  # real-scale candidates between max/16 and max
MSE_POW2_STEPS = 5  # power-of-two candidates: frac_for(max) .. +4
MAX_VALUES = 1 << 20  # values an mse search looks at (an even subsample beyond)


@dataclass(frozen=True)
class Method:
    """A parsed ``--calibrate`` value."""

    name: str = "minmax"
    percentile: float = DEFAULT_PERCENTILE

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.name == "percentile" else self.name


def parse(spec: str, where: str = "--calibrate") -> Method:
    """'minmax' | 'percentile' | 'percentile:P' (0 < P <= 100) | 'mse' -> Method."""
    name, _, arg = str(spec).partition(":")
    if name not in METHODS or (arg and name != "percentile"):
        raise OptionError(f"{where} {spec!r} is not a calibration method: choose minmax, "
                          "percentile[:P] (e.g. percentile:99.9) or mse")
    if not arg:
        return Method(name)
    try:
        p = float(arg)
    except ValueError:
        p = float("nan")
    if not 0.0 < p <= 100.0:
        raise OptionError(f"{where} {spec!r}: the percentile must be a number in (0, 100]")
    return Method(name, p)


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise OptionError(f"--scale {scale!r} is not a scale mode: choose pow2 (fixed point, "
                          "power-of-two scales) or mult (integer multiplier and shift)")
    return scale


def sample_step(size: int) -> int:
    """The stride of the deterministic even subsample of ``size`` values (1: all of them)."""
    return -(-size // MAX_VALUES) if size > MAX_VALUES else 1


def _sample(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return v[::sample_step(v.size)]


def _mse(v: np.ndarray, scale: float, lo: int, hi: int) -> float:
    return float(np.mean((numerics.quantize_scaled(v, scale, lo, hi) * scale - v) ** 2))


def choose_scale(values: np.ndarray, method: Method, scale_mode: str, lo: int, hi: int
                 ) -> tuple[int, float | None]:
    """(frac, real) for a tensor of ``values`` quantized to [lo, hi] (lo = 0: unsigned, only
    the positive side counts): real is None for ``pow2``, else the scale and frac its rounded
    -log2."""
    v = _sample(values)
    mag = np.maximum(v, 0.0) if lo == 0 else np.abs(v)
    qmax = hi
    top = float(mag.max(initial=0.0))
    if method.name == "percentile" and mag.size:
        top = float(np.percentile(mag, method.percentile))
    if scale_mode == "pow2":
        frac = numerics.frac_for(top, qmax)
        if method.name == "mse" and top > 0:
            fracs = [frac + i for i in range(MSE_POW2_STEPS)
                     if frac + i <= numerics.FRAC_LIMIT]
            frac = min(fracs, key=lambda f: (_mse(v, 2.0**-f, lo, hi), f))
        return frac, None
    scale = numerics.scale_for(top, qmax)
    if method.name == "mse" and top > 0:
        cands = top * np.geomspace(1.0 / 16, 1.0, MSE_CANDIDATES)
        scale = min((numerics.scale_for(float(m), qmax) for m in cands),
                    key=lambda s: (_mse(v, s, lo, hi), -s))
    return numerics.frac_of(scale), scale


def weight_scales(w: np.ndarray, wbits: int, per_channel: bool, method: Method,
                  scale_mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Scales of a weight matrix w [K, N], per column or one for all: (fracs int [N], reals
    float [N] or None for pow2). Weights are clipped only by ``mse`` (a percentile of weights
    would cut the few large weights that matter most), symmetric at +-weight_max(wbits)."""
    qmax = numerics.weight_max(wbits)
    m = method if method.name == "mse" else Method("minmax")
    cols = [w[:, n] for n in range(w.shape[1])] if per_channel else [w]
    picked = [choose_scale(c, m, scale_mode, -qmax, qmax) for c in cols]
    if not per_channel:
        picked = picked * w.shape[1]
    fracs = np.array([f for f, _ in picked], dtype=np.int64)
    reals = None if scale_mode == "pow2" else np.array([r for _, r in picked], np.float64)
    return fracs, reals
