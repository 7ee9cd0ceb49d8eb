"""The numerics contract, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import numerics as nm
from edgehls.errors import OptionError


def test_check_bits_names_the_flag() -> None:
    assert nm.check_bits("--wbits", 2) == 2
    assert nm.check_bits("--wbits", 16) == 16
    for bad in (0, 1, 17):
        with pytest.raises(OptionError, match=rf"--abits {bad} is out of range.*2\.\.16"):
            nm.check_bits("--abits", bad)


def test_clog2_and_acc_bits() -> None:
    assert [nm.clog2(n) for n in (1, 2, 3, 4, 5, 1024, 1025)] == [0, 1, 2, 2, 3, 10, 11]
    assert nm.acc_bits(8, 8, 1) == 17
    assert nm.acc_bits(8, 8, 100) == 8 + 8 + 7 + 1
    assert nm.acc_bits(4, 4, 16) == 13
    assert nm.weight_max(8) == 127 and nm.weight_max(2) == 1


def test_frac_for_hand_values() -> None:
    assert nm.frac_for(1.0, 127) == 6  # 64 <= 127 < 128
    assert nm.frac_for(127 / 64, 127) == 6  # exactly qmax at frac 6
    assert nm.frac_for(2.0, 255) == 6
    assert nm.frac_for(0.5, 1) == 1 and nm.frac_for(1.0, 1) == 0 and nm.frac_for(4.0, 1) == -2
    assert nm.frac_for(0.0, 127) == 0 and nm.frac_for(float("nan"), 127) == 0
    assert nm.frac_for(1e-30, 127) == nm.FRAC_LIMIT
    assert nm.frac_for(1e30, 127) == -nm.FRAC_LIMIT


@pytest.mark.parametrize("qmax", [1, 7, 127, 255, 32767])
def test_frac_for_is_largest_at_powers_of_two(qmax: int) -> None:
    rng = np.random.default_rng(qmax)
    exact = [qmax * 2.0**e for e in range(-20, 21)]  # maxabs * 2**frac hits qmax exactly
    for m in exact + list(rng.uniform(1e-6, 1e6, 300)) + [2.0**e for e in range(-20, 21)]:
        f = nm.frac_for(m, qmax)
        assert m * 2.0**f <= qmax < m * 2.0 ** (f + 1), (m, f)


def test_round_half_up_and_quantize() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.49, -2.51])
    assert nm.round_half_up(x).tolist() == [-2, -1, 0, 1, 2, 2, -3]
    q = nm.quantize(np.array([0.3, -0.3, 10.0, -10.0, 0.0625, -0.0625]), 3, -8, 7)
    assert q.dtype == np.int64
    assert q.tolist() == [2, -2, 7, -8, 1, 0]  # 0.5 -> 1, -0.5 -> 0: half up
    assert nm.dequantize(np.array([3, -4]), 2).tolist() == [0.75, -1.0]
    assert nm.dequantize(np.array([3]), -1).tolist() == [6.0]
    assert nm.dequantize(np.array([[1, 1]]), np.array([1, 2])).tolist() == [[0.5, 0.25]]


def test_quantize_weights_per_channel_and_tensor() -> None:
    w = np.array([[1.0, 0.1], [-0.5, -0.05]])
    wq, f = nm.quantize_weights(w, 8, per_channel=True)
    assert f.tolist() == [6, 10]  # 127/0.1 = 1270 -> 2**10
    assert wq.tolist() == [[64, 102], [-32, -51]]
    wq, f = nm.quantize_weights(w, 8, per_channel=False)
    assert f.tolist() == [6, 6]
    assert wq.tolist() == [[64, 6], [-32, -3]]
    wq, f = nm.quantize_weights(np.array([[-1.0, 0.0]]), 8)
    assert wq.tolist() == [[-64, 0]] and f.tolist() == [6, 0]  # zero column: frac 0
    wq, _ = nm.quantize_weights(np.array([[0.7], [-0.7]]), 2)
    assert wq.tolist() == [[1], [-1]]  # symmetric: never -2 at 2 bits


def test_quantize_bias_clips_to_dot_bound() -> None:
    assert nm.bias_bound(8, 8, 16) == (1 << 19) - 1
    bq = nm.quantize_bias(np.array([0.5, -0.25, 1e9, -1e9]), np.array([4, 4, 4, 4]), 8, 8, 16)
    assert bq.tolist() == [8, -4, (1 << 19) - 1, -(1 << 19) + 1]


def test_requant_params_positive_and_negative_shift() -> None:
    mult, shift = nm.requant_params(np.array([10, 6, 3]), 6)
    assert mult.tolist() == [1, 1, 8] and shift.tolist() == [4, 0, 0]
    mult, shift = nm.requant_params(np.array([0, 63]), 0)
    assert mult.tolist() == [1, 1] and shift.tolist() == [0, 63]
    mult, _ = nm.requant_params(np.array([6]), 21)  # s = -15, the widest multiplier
    assert mult.tolist() == [1 << 15] and mult[0] <= nm.MAX_MULT
    with pytest.raises(OptionError, match="requantization shift -16"):
        nm.requant_params(np.array([6]), 22)
    with pytest.raises(OptionError, match="requantization shift"):
        nm.requant_params(np.array([64]), 0)


def test_requantize_rounds_half_up_and_saturates() -> None:
    def rq(acc: int, mult: int, shift: int, lo: int = -128, hi: int = 127) -> int:
        return int(nm.requantize(np.array([acc]), np.array([mult]), np.array([shift]), lo, hi)[0])

    assert rq(-3, 1, 1) == -1  # (-3 + 1) >> 1 = -1: -1.5 rounds up to -1
    assert rq(3, 1, 1) == 2 and rq(-1, 1, 1) == 0 and rq(-2, 1, 1) == -1
    assert rq(5, 1, 2) == 1 and rq(6, 1, 2) == 2 and rq(-6, 1, 2) == -1 and rq(-7, 1, 2) == -2
    assert rq(7, 1, 0) == 7 and rq(-7, 1, 0) == -7  # shift 0: no rounding constant
    assert rq(3, 8, 0) == 24 and rq(-3, 8, 0) == -24
    assert rq(1000, 1, 0) == 127 and rq(-1000, 1, 0) == -128
    assert rq(-5, 1, 0, 0, 255) == 0 and rq(300, 1, 0, 0, 255) == 255  # ReLU folded into lo


def test_requantize_matches_quantize_rounding() -> None:
    rng = np.random.default_rng(1)
    acc = rng.integers(-(1 << 30), 1 << 30, size=5000)
    for s in (1, 2, 7, 20):
        got = nm.requantize(acc, np.array([1]), np.array([s]), -(1 << 40), 1 << 40)
        assert (got == nm.quantize(acc * 2.0**-s, 0, -(1 << 40), 1 << 40)).all()


def test_dense_hand_example() -> None:
    x = np.array([[1, 2], [-1, 0]])
    w = np.array([[3, -1], [4, 2]])
    y = nm.dense(x, w, np.array([1, -1]), np.array([1, 1]), np.array([1, 0]), -128, 127)
    # acc = [[12, 2], [-2, 0]]; channel 0 >> 1 with rounding: 13 >> 1 = 6, -1 >> 1 = -1
    assert y.tolist() == [[6, 2], [-1, 0]]


@pytest.mark.parametrize("signed_in", [True, False])
def test_worst_case_accumulator_fits(signed_in: bool) -> None:
    """Max-magnitude weights and activations of aligned sign plus a clipped bias fit acc_bits."""
    rng = np.random.default_rng(7)
    for _ in range(400):
        wb, ab = (int(v) for v in rng.integers(2, 17, size=2))
        k = int(rng.integers(1, 3000))
        wmax = nm.weight_max(wb)
        xlo, xhi = (-(1 << (ab - 1)), (1 << (ab - 1)) - 1) if signed_in else (0, (1 << ab) - 1)
        col = rng.choice([-wmax, wmax], size=k)
        w = np.stack([col, col], axis=1)  # channel 0 gets bias +bound, channel 1 -bound
        x = np.stack([np.where(col > 0, xhi, xlo), np.where(col > 0, xlo, xhi)])  # max, min
        b = nm.quantize_bias(np.array([1e30, -1e30]), np.array([0, 0]), wb, ab, k)
        acc = x @ w + b
        bits = nm.acc_bits(wb, ab, k)
        assert acc[0, 0] == acc.max() and acc[1, 1] == acc.min()
        assert -(1 << (bits - 1)) <= acc.min() and acc.max() <= (1 << (bits - 1)) - 1, (wb, ab, k)
