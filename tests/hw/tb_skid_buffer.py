"""cocotb bench for edgehls_skid_buffer: random idle cycles and back-pressure (seeded), every
handshake sampled at the rising edge; order, no loss, no duplicate, the hold rule, throughput."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

N_BEATS = 2000


def uint(handle) -> int:
    """A signal's value as an unsigned int (1-bit signals read as Logic, wider as LogicArray)."""
    return int(str(handle.value), 2)


class TB:
    def __init__(self, dut) -> None:
        self.dut = dut
        self.W = int(dut.W.value)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self) -> None:
        self.dut.in_valid.value = 0
        self.dut.in_data.value = 0
        self.dut.out_ready.value = 0
        self.dut.rst_n.value = 0
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst_n.value = 1

    async def stream(self, beats: list[int], p_idle: float, p_stall: float,
                     max_cycles: int) -> tuple[list[int], int]:
        """Source, sink and monitor in one loop, driven and sampled at each rising edge.

        The source keeps a presented beat until it is taken (the rule applies upstream too).
        Returns the beats received in order and the cycles used.
        """
        d, rng = self.dut, self.rng
        received: list[int] = []
        sent = 0
        held: int | None = None  # out_data while out_valid && !out_ready in the previous cycle
        d.in_valid.value = 0
        d.out_ready.value = 0
        for cycle in range(max_cycles):
            await RisingEdge(d.clk)  # the values read here are the ones the edge sampled
            in_valid, in_ready = uint(d.in_valid), uint(d.in_ready)
            out_valid, out_ready = uint(d.out_valid), uint(d.out_ready)
            out_data = uint(d.out_data) if out_valid else None
            if held is not None:
                assert out_valid and out_data == held, (
                    f"cycle {cycle}: stalled beat {held:#x} changed to {out_valid=} {out_data}")
            held = out_data if out_valid and not out_ready else None
            if out_valid and out_ready:
                received.append(out_data)
            if in_valid and in_ready:
                sent += 1
                in_valid = 0
            if len(received) == len(beats):
                return received, cycle + 1
            # next cycle's inputs
            if not in_valid and sent < len(beats) and rng.random() >= p_idle:
                d.in_valid.value = 1
                d.in_data.value = beats[sent]
            elif not in_valid:
                d.in_valid.value = 0
                d.in_data.value = rng.getrandbits(self.W)  # garbage while not valid
            d.out_ready.value = int(rng.random() >= p_stall)
        raise AssertionError(f"timeout: {len(received)} of {len(beats)} beats after "
                             f"{max_cycles} cycles")


@cocotb.test()
async def random_traffic(dut) -> None:
    """Random idle cycles and back-pressure: every beat once, in order, stalled data held."""
    tb = TB(dut)
    await tb.reset()
    beats = [tb.rng.getrandbits(tb.W) for _ in range(N_BEATS)]
    for p_idle, p_stall in ((0.3, 0.3), (0.0, 0.5), (0.6, 0.1)):
        got, _ = await tb.stream(beats, p_idle, p_stall, max_cycles=20 * N_BEATS)
        assert got == beats, "beats lost, duplicated or reordered"


@cocotb.test()
async def full_throughput(dut) -> None:
    """With out_ready high and the source always valid, one beat passes every cycle."""
    tb = TB(dut)
    await tb.reset()
    beats = [tb.rng.getrandbits(tb.W) for _ in range(200)]
    got, cycles = await tb.stream(beats, p_idle=0.0, p_stall=0.0, max_cycles=1000)
    assert got == beats
    assert cycles <= len(beats) + 3, f"{len(beats)} beats took {cycles} cycles"
