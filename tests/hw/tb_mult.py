"""cocotb bench for edgehls_mult (hw/mult.v or hw/ecp5/mult.v): a fresh random operand pair every
cycle, p checked every cycle against a * b of the pair presented 1 + IN_REG edges earlier."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class TB:
    def __init__(self, dut) -> None:
        self.dut = dut
        self.AW, self.BW = int(dut.AW.value), int(dut.BW.value)
        self.latency = 1 + int(dut.IN_REG.value)  # (registered inputs), registered product
        self.rng = random.Random(cocotb.RANDOM_SEED)
        Clock(dut.clk, 10, unit="ns").start()

    def value(self, bits: int) -> int:
        """A random signed value, the extremes, 0 and +-1 often."""
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        rnd = self.rng.randint(lo, hi)
        return self.rng.choice([lo, hi, 0, -1, min(1, hi), rnd, rnd, rnd])


@cocotb.test()
async def product_after_the_latency(dut) -> None:
    """Every cycle: p == a * b of the operands presented 1 + IN_REG edges before."""
    tb = TB(dut)
    sent: list[tuple[int, int]] = []
    errors = 0
    await RisingEdge(dut.clk)  # start clear of the clock's first edge at time 0
    for t in range(600):
        a, b = tb.value(tb.AW), tb.value(tb.BW)
        dut.a.value = a & ((1 << tb.AW) - 1)
        dut.b.value = b & ((1 << tb.BW) - 1)
        sent.append((a, b))
        await RisingEdge(dut.clk)  # a, b are taken at this edge; p read here is from before it
        if t >= tb.latency:
            ea, eb = sent[t - tb.latency]
            got = signed(dut.p.value.to_unsigned(), tb.AW + tb.BW)
            if got != ea * eb:
                errors += 1
                dut._log.error("cycle %d: p %d, expected %d * %d", t, got, ea, eb)
    assert errors == 0
