"""cocotb bench for edgehls_postproc: random vectors against edgehls.numerics.requantize (with
its negative-side pair, a LeakyRelu's), the result checked exactly LAT = 6 cycles after its
inputs, back to back and with gaps."""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from edgehls.numerics import requantize

LAT = 6
N_VECTORS = 3000


def uint(handle) -> int:
    """A signal's value as an unsigned int (1-bit signals read as Logic, wider as LogicArray)."""
    return int(str(handle.value), 2)


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class TB:
    def __init__(self, dut) -> None:
        self.dut = dut
        self.ACC_W, self.OUT_W = int(dut.ACC_W.value), int(dut.OUT_W.value)
        self.MB, self.SB, self.TW = int(dut.MB.value), int(dut.SB.value), int(dut.TW.value)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self) -> None:
        self.drive(None)
        self.dut.rst_n.value = 0
        for _ in range(LAT + 1):
            await RisingEdge(self.dut.clk)
        self.dut.rst_n.value = 1

    def vector(self) -> dict[str, int]:
        """Random inputs with acc + bias inside ACC_W; rounding ties and clip edges often."""
        rng, acc_max = self.rng, (1 << (self.ACC_W - 1)) - 1
        max_shift = (1 << self.SB) - 1
        shift = rng.choice([0, 1, 2, rng.randint(0, 16), rng.randint(0, max_shift), max_shift])
        mult = rng.choice([1, 1 << rng.randint(0, self.MB - 1), rng.randint(1, 1 << 15),
                           rng.randint(0, (1 << self.MB) - 1)])
        out_max = (1 << (self.OUT_W - 1)) - 1
        near = rng.randint(-out_max - 3, out_max + 3)  # an output near or inside the range
        kind = rng.random()
        if kind < 0.3:  # a rounding tie (or one off it), mult = 1
            mult = 1
            s = near * (1 << shift) + (1 << shift >> 1) + rng.choice([-1, 0, 0, 1])
        elif kind < 0.5 and mult > 0:  # aim at an output near the range, any mult
            s = (near << shift) // mult + rng.randint(-2, 2)
        elif kind < 0.6:
            s = rng.choice([-acc_max - 1, acc_max, 0, -1, 1])
        elif kind < 0.8:
            s = rng.randint(-(1 << rng.randint(0, self.ACC_W - 1)), 1 << rng.randint(0, 12))
        else:
            s = rng.randint(-acc_max - 1, acc_max)
        s = max(-acc_max - 1, min(acc_max, s))
        acc = rng.randint(max(-acc_max - 1, s - acc_max), min(acc_max, s + acc_max + 1))
        lo, hi = rng.choice([(-out_max - 1, out_max), (0, out_max),
                             tuple(sorted(rng.randint(-out_max - 1, out_max) for _ in range(2))),
                             (rng.randint(-out_max - 1, out_max), rng.randint(-out_max - 1,
                                                                              out_max))])
        # the negative-side pair (LeakyRelu): the same as (mult, shift) or a slope's
        mult_n, shift_n = rng.choice([(mult, shift), (0, 0), (rng.randint(0, (1 << self.MB) - 1),
                                                              rng.randint(0, max_shift)),
                                      (rng.randint(1 << (self.MB - 1), (1 << self.MB) - 1),
                                       min(max_shift, shift + rng.randint(0, 16)))])
        return {"in_acc": acc, "bias": s - acc, "mult": mult, "shift": shift, "lo": lo, "hi": hi,
                "mult_n": mult_n, "shift_n": shift_n, "in_tag": rng.getrandbits(self.TW)}

    def drive(self, vec: dict[str, int] | None) -> None:
        """Present one vector (valid) or garbage (not valid) for the coming cycle."""
        d, rng = self.dut, self.rng
        d.in_valid.value = int(vec is not None)
        widths = {"in_acc": self.ACC_W, "bias": self.ACC_W, "mult": self.MB, "shift": self.SB,
                  "mult_n": self.MB, "shift_n": self.SB, "lo": self.OUT_W, "hi": self.OUT_W,
                  "in_tag": self.TW}
        for name, bits in widths.items():
            v = rng.getrandbits(bits) if vec is None else vec[name] & ((1 << bits) - 1)
            getattr(d, name).value = v

    def model(self, vec: dict[str, int]) -> int:
        return int(requantize(vec["in_acc"] + vec["bias"], vec["mult"], vec["shift"], vec["lo"],
                              vec["hi"], neg=(vec["mult_n"], vec["shift_n"])))


@cocotb.test()
async def random_vectors(dut) -> None:
    """Every output equals numerics.requantize of the inputs of exactly LAT cycles before."""
    tb = TB(dut)
    await tb.reset()
    sent: deque[dict[str, int] | None] = deque([None] * LAT)  # inputs of cycles t-LAT+1 .. t
    n_sent = n_checked = errors = 0
    bins = {"lo": 0, "hi": 0, "inside": 0}  # coverage: saturated low, high, or neither
    gap_p = 0.0
    while n_checked < N_VECTORS:
        if n_sent == N_VECTORS // 2:
            gap_p = 0.3  # first half back to back, second half with random gaps
        vec = None
        if n_sent < N_VECTORS and tb.rng.random() >= gap_p:
            vec = tb.vector()
            n_sent += 1
        tb.drive(vec)
        sent.append(vec)
        await RisingEdge(dut.clk)  # values read here are those of the cycle just driven
        exp = sent.popleft()  # presented LAT cycles before the outputs seen now
        valid = uint(dut.out_valid)
        if valid != (exp is not None):
            errors += 1
            dut._log.error("out_valid %d, expected %d", valid, exp is not None)
        elif exp is not None:
            n_checked += 1
            got = signed(uint(dut.out_data), tb.OUT_W)
            tag = uint(dut.out_tag)
            want = tb.model(exp)
            lo, hi = exp["lo"], exp["hi"]
            bins["hi" if want == hi else "lo" if want == lo else "inside"] += 1
            if got != want or tag != exp["in_tag"]:
                errors += 1
                dut._log.error("%s: out %d tag %d, expected %d tag %d", exp, got, tag, want,
                               exp["in_tag"])
        assert errors < 20, "too many mismatches"
    assert errors == 0
    dut._log.info("coverage %s", bins)
    assert min(bins.values()) > N_VECTORS // 20, f"weak stimulus: {bins}"
