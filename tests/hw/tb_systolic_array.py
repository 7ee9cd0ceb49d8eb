"""cocotb bench for edgehls_systolic_array: tiles streamed back to back with double-buffered
weights, checked cycle by cycle against a tile-level reference model (the timing contract)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def pack(values: list[int], bits: int) -> int:
    mask = (1 << bits) - 1
    return sum((v & mask) << (k * bits) for k, v in enumerate(values))


@dataclass
class Step:
    """One step of a tile: the value each row presents (skewed by the caller)."""

    tile: int
    first: bool
    valid: list[bool]
    data: list[int]


@dataclass
class Schedule:
    """Slots in unskewed step time (None: idle), the weights of each tile and the load cycles."""

    slots: list[Step | None] = field(default_factory=list)
    weights: list[list[list[int]]] = field(default_factory=list)  # [tile][row][col]
    loads: dict[int, tuple[int, list[int]]] = field(default_factory=dict)  # cycle -> row, w


class TB:
    def __init__(self, dut) -> None:
        self.dut = dut
        self.R, self.C = int(dut.R.value), int(dut.C.value)
        self.AW, self.WW, self.ACC_W = int(dut.AW.value), int(dut.WW.value), int(dut.ACC_W.value)
        self.RW = max(1, (self.R - 1).bit_length())
        self.rng = random.Random(cocotb.RANDOM_SEED)
        Clock(dut.clk, 10, unit="ns").start()
        # cycle of slot 0's row 0; tile 0 is presented in cycles 0..R-1 (written one edge later)
        self.offset = self.R + 1

    async def reset(self) -> None:
        """Hold reset long enough for the (unreset) partial sums to flush to zero."""
        self.idle()
        self.dut.rst_n.value = 0
        for _ in range(self.R + self.C + 4):
            await RisingEdge(self.dut.clk)
        self.dut.rst_n.value = 1

    def value(self, bits: int) -> int:
        """A random signed value, extremes and zero often."""
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        rnd = self.rng.randint(lo, hi)
        return self.rng.choice([lo, hi, 0, -1, 1, rnd, rnd])

    def idle(self) -> None:
        """Inputs when nothing is presented: no valid, no first, no load, garbage data."""
        d = self.dut
        d.in_valid.value = 0
        d.in_first.value = 0
        d.in_data.value = self.rng.getrandbits(self.R * self.AW)
        d.w_load.value = 0
        d.w_row.value = self.rng.getrandbits(self.RW)
        d.w_data.value = self.rng.getrandbits(self.C * self.WW)

    # --- stimulus -------------------------------------------------------------------------------

    def make_schedule(self, n_tiles: int, p_idle: float) -> Schedule:
        """Random tiles, loaded one row a cycle inside each row's legal window (see the RTL)."""
        R, C, rng = self.R, self.C, self.rng
        sch = Schedule()
        sch.weights = [[[self.value(self.WW) for _ in range(C)] for _ in range(R)]
                       for _ in range(n_tiles)]
        for k in range(n_tiles):
            start = len(sch.slots)
            n_steps = rng.randint(1, 2 * max(R, C) + 2)
            for m in range(n_steps):
                while rng.random() < p_idle and m > 0:
                    sch.slots.append(None)
                valid = [rng.random() < 0.8 for _ in range(R)]
                data = [self.value(self.AW) for _ in range(R)]
                sch.slots.append(Step(k, m == 0, valid, data))
            while rng.random() < p_idle:
                sch.slots.append(None)
            # the next tile's rows are presented in cycles offset+start+C-2+d+i (the array
            # registers them: written one edge later), at most two cycles before the next
            # tile's first step enters row i; the block must clear the one before it
            d_min = max(0, R - C) if k > 0 else 0
            while len(sch.slots) - start < C + d_min:
                sch.slots.append(None)
            if k + 1 < n_tiles:
                self.plan_loads(sch, k + 1, start, len(sch.slots), d_min)
        for i in range(R):  # tile 0 before any step: row i in cycle i
            sch.loads[i] = (i, sch.weights[0][i])
        return sch

    def plan_loads(self, sch: Schedule, tile: int, start: int, next_start: int, d_min: int) -> None:
        R, C, rng = self.R, self.C, self.rng
        d = rng.randint(d_min, next_start - start - C)
        base = self.offset + start + C - 2
        for i in range(R):
            # a garbage load earlier in the window must be overwritten by the real one
            if d > d_min and rng.random() < 0.3:
                junk = base + i + rng.randint(d_min, d - 1)
                if junk not in sch.loads and junk not in range(base + d, base + d + R):
                    sch.loads[junk] = (i, [self.value(self.WW) for _ in range(C)])
            sch.loads[base + d + i] = (i, sch.weights[tile][i])

    def drive(self, sch: Schedule, t: int) -> None:
        """Inputs of cycle t: row i shows slot t - offset - i (the caller's skew)."""
        d = self.dut
        self.idle()
        valid = first = 0
        data = [self.rng.getrandbits(self.AW) for _ in range(self.R)]
        for i in range(self.R):
            s = t - self.offset - i
            step = sch.slots[s] if 0 <= s < len(sch.slots) else None
            if step is not None:
                valid |= step.valid[i] << i
                first |= step.first << i
                if step.valid[i]:
                    data[i] = step.data[i]
        d.in_valid.value = valid
        d.in_first.value = first
        d.in_data.value = pack(data, self.AW)
        if t in sch.loads:
            row, w = sch.loads[t]
            d.w_load.value = 1
            d.w_row.value = row
            d.w_data.value = pack(w, self.WW)
        elif self.R < (1 << self.RW) and self.rng.random() < 0.2:
            d.w_load.value = 1  # a row that does not exist: must load nothing
            d.w_row.value = self.rng.randint(self.R, (1 << self.RW) - 1)

    # --- reference model ------------------------------------------------------------------------

    def expected(self, sch: Schedule, t: int) -> list[int]:
        """Column j during cycle t carries slot t - offset - LAT - j (0 when idle or no slot);
        LAT = R + 2: one cycle a row, plus the registered multiplier inputs and product."""
        out = []
        for j in range(self.C):
            s = t - self.offset - (self.R + 2) - j
            step = sch.slots[s] if 0 <= s < len(sch.slots) else None
            acc = 0
            if step is not None:
                w = sch.weights[step.tile]
                acc = sum(step.data[i] * w[i][j] for i in range(self.R) if step.valid[i])
            out.append(acc)
        return out

    async def run(self, sch: Schedule) -> int:
        n_cycles = self.offset + len(sch.slots) + self.R + self.C + 4
        errors = 0
        self.drive(sch, 0)
        for t in range(n_cycles):
            await RisingEdge(self.dut.clk)  # values read here are those of cycle t
            raw = self.dut.out_psum.value
            word = raw.to_unsigned() if raw.is_resolvable else None
            got = [signed(word >> (j * self.ACC_W), self.ACC_W) for j in range(self.C)
                   ] if word is not None else str(raw)
            exp = self.expected(sch, t)
            if got != exp:
                errors += 1
                self.dut._log.error("cycle %d: out_psum %s, expected %s", t, got, exp)
            self.drive(sch, t + 1)
        return errors


@cocotb.test()
async def back_to_back_tiles(dut) -> None:
    """Tiles with no bubble between them where the loading allows, weights swapped per tile."""
    tb = TB(dut)
    await tb.reset()
    sch = tb.make_schedule(n_tiles=8, p_idle=0.0)
    assert await tb.run(sch) == 0


@cocotb.test()
async def tiles_with_gaps(dut) -> None:
    """Idle slots inside and between tiles (the sequencer stalls): outputs still line up."""
    tb = TB(dut)
    await tb.reset()
    sch = tb.make_schedule(n_tiles=8, p_idle=0.25)
    assert await tb.run(sch) == 0
