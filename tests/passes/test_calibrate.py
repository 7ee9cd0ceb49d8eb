"""Calibration methods, real-scale requantization and mixed precision (issue 6): each method's
choice on data whose best range is known, the numerics of ``requant_real`` and
``add_weights_real``, and the Quantize pass under --scale mult, --per-tensor and --precision."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import golden, numerics
from edgehls.errors import OptionError
from edgehls.passes import calibrate
from edgehls.passes.calibrate import Method
from edgehls.passes.quantize import Quantize

from .test_quantize import max_error, mlp

CALIB = np.random.default_rng(1).normal(size=(64, 1, 16))


def heavy_tail(n: int = 20000) -> np.ndarray:
    """Gaussian values plus a few huge outliers: clipping them pays."""
    v = np.random.default_rng(0).normal(size=n)
    v[:5] = [60.0, -55.0, 70.0, 40.0, -65.0]
    return v


def mse(v: np.ndarray, scale: float, lo: int, hi: int) -> float:
    return float(np.mean((numerics.quantize_scaled(v, scale, lo, hi) * scale - v) ** 2))


@pytest.mark.parametrize(("spec", "method"), [
    ("minmax", Method("minmax")), ("percentile", Method("percentile", 99.99)),
    ("percentile:99.9", Method("percentile", 99.9)), ("mse", Method("mse"))])
def test_parse(spec: str, method: Method) -> None:
    assert calibrate.parse(spec) == method
    assert str(calibrate.parse(spec)) == (spec if ":" in spec or spec != "percentile"
                                          else "percentile:99.99")


@pytest.mark.parametrize("spec", ["max", "mse:3", "percentile:0", "percentile:101",
                                  "percentile:x", ""])
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(OptionError, match="--calibrate"):
        calibrate.parse(spec)


@pytest.mark.parametrize("scale_mode", ["pow2", "mult"])
def test_minmax_covers_everything(scale_mode: str) -> None:
    v = heavy_tail()
    frac, real = calibrate.choose_scale(v, Method("minmax"), scale_mode, -128, 127)
    scale = 2.0**-frac if real is None else real
    assert np.abs(v).max() / scale <= 127 + 1e-9  # nothing clipped
    if scale_mode == "mult":
        assert real == pytest.approx(70.0 / 127)


@pytest.mark.parametrize("scale_mode", ["pow2", "mult"])
def test_percentile_and_mse_clip_outliers(scale_mode: str) -> None:
    """At 4 bits the outliers' steps cost more than clipping them; mse finds that."""
    v = heavy_tail()
    picked = {}
    for name in ("minmax", "percentile", "mse"):
        frac, real = calibrate.choose_scale(v, Method(name, 99.9), scale_mode, -8, 7)
        picked[name] = 2.0**-frac if real is None else real
    assert picked["percentile"] < picked["minmax"] / 4
    assert picked["mse"] < picked["minmax"] / 4
    errors = {k: mse(v, s, -8, 7) for k, s in picked.items()}
    assert errors["mse"] <= min(errors.values()) + 1e-12
    assert errors["mse"] < 0.9 * errors["minmax"]


def test_unsigned_ranges_count_only_positive_values() -> None:
    v = np.concatenate([np.linspace(0, 3.0, 100), [-50.0]])
    _, real = calibrate.choose_scale(v, Method("minmax"), "mult", 0, 255)
    assert real == pytest.approx(3.0 / 255)


def test_weight_scales_per_channel_and_tensor() -> None:
    w = np.array([[1.0, 0.1], [-0.5, 0.05]])
    fr, real = calibrate.weight_scales(w, 8, True, Method("minmax"), "mult")
    np.testing.assert_allclose(real, [1.0 / 127, 0.1 / 127])
    fr, real = calibrate.weight_scales(w, 8, False, Method("minmax"), "mult")
    np.testing.assert_allclose(real, [1.0 / 127, 1.0 / 127])
    fr, real = calibrate.weight_scales(w, 8, True, Method("minmax"), "pow2")
    assert real is None and list(fr) == [numerics.frac_for(1.0, 127), numerics.frac_for(0.1, 127)]


@pytest.mark.parametrize("ratio", [1.0, 0.5, 3.7e-3, 1.23456789e-7, 2.0**-40, 1000.5, 65535.0])
def test_requant_real_is_a_16_bit_multiplier_within_half_an_lsb(ratio: float) -> None:
    mult, shift = numerics.requant_real(np.array([ratio]))
    m, s = int(mult[0]), int(shift[0])
    assert 1 <= m <= numerics.MAX_MULT and 0 <= s <= numerics.MAX_SHIFT
    assert abs(m * 2.0**-s - ratio) <= 2.0**-(s + 1)
    if s < numerics.MAX_SHIFT and ratio < numerics.MAX_MULT / 2:
        assert m >= 1 << (numerics.MULT_BITS - 1)  # the largest shift: full precision
    acc = np.arange(-5000, 5000, 7, dtype=np.int64)
    exact = np.floor(acc * (m * 2.0**-s) + 0.5)  # round half up of acc * mult / 2**shift
    np.testing.assert_array_equal(numerics.requantize(acc, mult, shift, -(1 << 40), 1 << 40),
                                  exact)


@pytest.mark.parametrize("ratio", [0.0, -1.0, np.inf, 2.0**17, 2.0**-80])
def test_requant_real_rejects(ratio: float) -> None:
    with pytest.raises(OptionError, match="requantization ratio"):
        numerics.requant_real(np.array([ratio]))


@pytest.mark.parametrize(("sa", "sb", "wa", "wb"), [
    (0.1, 0.1, 1, 1), (0.2, 0.1, 2, 1), (0.05, 0.2, 1, 4), (0.15, 0.1, 3, 2)])
def test_add_weights_real_exact_ratios(sa: float, sb: float, wa: int, wb: int) -> None:
    got = numerics.add_weights_real(sa, sb, 8)
    assert got[:2] == (wa, wb)
    assert got[2] == pytest.approx(sa / wa) and got[2] == pytest.approx(sb / wb)


def test_add_weights_real_approximates_and_rejects() -> None:
    wa, wb, _ = numerics.add_weights_real(0.1234, 0.0567, 8)
    assert max(wa, wb) <= 127 and abs(wa / wb - 0.1234 / 0.0567) / (0.1234 / 0.0567) < 1e-3
    with pytest.raises(OptionError, match="residual Add"):
        numerics.add_weights_real(1.0, 1e-4, 4)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("scale", ["pow2", "mult"])
def test_quantize_methods_stay_close_to_float(method: str, scale: str) -> None:
    g = mlp()
    q = Quantize(calib=CALIB, method=calibrate.parse(method), scale=scale)(g)
    err, lsb = max_error(q, g, CALIB[:16])
    assert err < 12 * lsb, (method, scale, err / lsb)
    fmt = q.tensor("fc0").q
    assert (fmt.real is None) == (scale == "pow2")


def test_mult_scales_are_finer_than_pow2() -> None:
    """Real scales use the whole code range: on average closer to float than power of two."""
    g = mlp()
    errs = {}
    for scale in ("pow2", "mult"):
        q = Quantize(wbits=4, abits=6, calib=CALIB, scale=scale)(g)
        y = golden.dequantize_output(q, golden.run_int_samples(q, golden.quantize_input(q, CALIB)))
        errs[scale] = float(np.mean((y - golden.run_float_samples(g, CALIB)) ** 2))
    assert errs["mult"] < errs["pow2"]


def test_per_tensor_weights_share_one_scale() -> None:
    q = Quantize(calib=CALIB, per_channel=False)(mlp())
    node = q.node("fc1")
    assert len(set(q.const(node, "shift").tolist())) == 1


def test_precision_rules_set_each_layer() -> None:
    q = Quantize(calib=CALIB, precision=(("fc1", 4, 4), ("fc*", None, 6)))(mlp())
    assert (q.node("fc1").op.wbits, q.tensor("fc1").q.bits) == (4, 4)
    assert (q.node("fc0").op.wbits, q.tensor("fc0").q.bits) == (8, 6)
    assert (q.node("fc2").op.wbits, q.tensor("fc2").q.bits) == (8, 6)
    assert q.tensor("x").q.bits == 8  # the graph input keeps --abits
    assert np.abs(q.const(q.node("fc1"), "weight")).max() <= 7
    # fc2 reads fc1's 4-bit unsigned output: its accumulator is sized for it
    assert q.node("fc2").op.acc_bits == numerics.acc_bits(8, 4, 32)


@pytest.mark.parametrize(("rules", "match"), [
    ((("conv*", 4, None),), "matches no layer"),
    ((("fc1", 1, None),), "out of range"),
    ((("fc1", None, 17),), "out of range")])
def test_precision_rules_rejected(rules: tuple, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        Quantize(calib=CALIB, precision=rules)(mlp())
