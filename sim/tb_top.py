"""Generic cocotb bench for any design edgehls compiled: reads manifest.json and golden/.

Per golden sample: pulse `start`, stream the integer input with random tvalid gaps, sleep
(no per-clock wake-ups) until the output stream begins, take it with random tready
back-pressure, check the stream rules and every element against golden/outputs_q.npy, and read
`run_cycles` (compare against the cycle model). Results go to $EDGEHLS_RESULT as JSON.

Environment: EDGEHLS_DESIGN (design directory), EDGEHLS_RESULT (JSON path), EDGEHLS_SAMPLES
(optional count), EDGEHLS_GAPS (optional probability of an idle cycle, default 0.3).

Per-layer cycles: a monitor wakes only when the sequencer's issue index (u_core.u_seq.is_idx)
changes, once per tile, and reads the run-cycle counter, so each layer's measured cycles (from
its first tile's issue to the next layer's, the cycle model's layer_cycles) cost no per-clock
callbacks.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Edge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

PERIOD_NS = 10
# an inference that takes longer than this many times what it should (run cycles, input load,
# the streams at the bench's gap rate) plus a constant has hung: it fails, the bench stops
TIMEOUT_FACTOR = 4
TIMEOUT_SLACK = 1000


def stream(a: np.ndarray, order: str | dict) -> list[int]:
    """A sample's tensor in stream order. ``order`` is a manifest input/output entry: the
    sample (golden/, in the model's shape) reshaped to its ``stream_shape`` and transposed by
    its ``stream_perm``; or, for a design compiled before those fields (its golden/ in the
    IR's shapes), its ``stream_order``: "NHWC" (channels fastest) or "row-major"."""
    a = np.asarray(a)
    if isinstance(order, dict) and "stream_perm" in order:
        return [int(v) for v in
                a.reshape(order["stream_shape"]).transpose(order["stream_perm"]).reshape(-1)]
    if isinstance(order, dict):
        order = order.get("stream_order", "NHWC")
    if a.ndim == 4 and order == "NHWC":
        a = a.transpose(0, 2, 3, 1)
    return [int(v) for v in a.reshape(-1)]


def to_bits(v: int, bits: int) -> int:
    return int(v) & ((1 << bits) - 1)


def from_bits(v: int, bits: int, signed: bool) -> int:
    return v - (1 << bits) if signed and v >> (bits - 1) else v


class TB:
    def __init__(self, dut, design: Path, seed: int) -> None:
        self.dut = dut
        self.m = json.loads((design / "manifest.json").read_text())
        self.x_q = np.load(design / self.m["golden"]["inputs_q"])
        self.y_q = np.load(design / self.m["golden"]["outputs_q"])
        self.rng = random.Random(seed)
        self.gap = float(os.environ.get("EDGEHLS_GAPS", "0.3"))
        self.inp, self.out = self.m["inputs"][0], self.m["outputs"][0]
        self.decided: dict[int, int] = {}  # tile -> run cycle it issued at, this inference

    async def watch_tiles(self) -> None:
        """Record the run cycle each tile issues at (tile i's D_i), for layer_cycles. After the
        clock edge of tile i's issue, is_idx is i + 1 and the cycle counter D_i + 1."""
        try:
            seq = self.dut.u_core.u_seq
            idx, cyc = seq.is_idx, seq.cyc
        except AttributeError:  # not an edgehls_top hierarchy: no per-layer figures
            return
        while True:
            await Edge(idx)
            await ReadOnly()
            i = idx.value.to_unsigned()
            if i > 0:
                self.decided[i - 1] = cyc.value.to_unsigned() - 1
            await RisingEdge(self.dut.clk)

    def layer_cycles(self, run_cycles: int) -> list[int] | None:
        first = self.m["schedule"].get("layer_first_tile")
        if not first or any(t not in self.decided for t in first):
            return None
        starts = [self.decided[t] for t in first] + [run_cycles]
        return [b - a for a, b in zip(starts, starts[1:], strict=False)]

    async def reset(self) -> None:
        d = self.dut
        cocotb.start_soon(Clock(d.clk, PERIOD_NS, unit="ns").start())
        d.rst_n.value = 0
        d.start.value = 0
        d.s_axis_tvalid.value = 0
        d.s_axis_tdata.value = 0
        d.s_axis_tlast.value = 0
        d.m_axis_tready.value = 0
        await ClockCycles(d.clk, 3)
        d.rst_n.value = 1
        await RisingEdge(d.clk)

    async def send(self, values: list[int]) -> None:
        d, bits = self.dut, self.inp["tdata_bits"]
        i, valid = 0, False
        while True:
            await RisingEdge(d.clk)
            if valid and d.s_axis_tready.value:
                i, valid = i + 1, False
            if i == len(values):
                d.s_axis_tvalid.value = 0
                return
            if not valid and self.rng.random() >= self.gap:
                d.s_axis_tdata.value = to_bits(values[i], bits)
                d.s_axis_tlast.value = int(i == len(values) - 1)
                valid = True
            d.s_axis_tvalid.value = int(valid)

    async def receive(self, n: int, got: list[int]) -> tuple[list[int], list[str]]:
        """Take n beats into ``got`` (which shows how far a timed-out inference came)."""
        d, bits = self.dut, self.out["tdata_bits"]
        errors: list[str] = []
        held: tuple[int, int] | None = None
        if not d.m_axis_tvalid.value:
            await RisingEdge(d.m_axis_tvalid)
        while len(got) < n:
            ready = self.rng.random() >= self.gap
            d.m_axis_tready.value = int(ready)
            await RisingEdge(d.clk)
            valid = bool(d.m_axis_tvalid.value)
            data = d.m_axis_tdata.value.to_unsigned() if valid else None
            if held is not None and (not valid or data != held[0]):
                errors.append(f"beat {held[1]} changed while stalled")
            if valid and d.m_axis_tready.value:
                last = bool(d.m_axis_tlast.value)
                if last != (len(got) == n - 1):
                    errors.append(f"tlast {int(last)} on beat {len(got)} of {n}")
                got.append(from_bits(data, bits, self.out.get("stream_signed", self.out["signed"])))
                held = None
            else:
                held = (data, len(got)) if valid else None
        d.m_axis_tready.value = 0
        return got, errors

    def timeout_cycles(self, n_in: int, n_out: int) -> int:
        """The bound on one inference: a generous multiple of the cycles it should take."""
        sched = self.m["schedule"]
        streams = (n_in + n_out) / max(1.0 - self.gap, 0.01)  # beats at the gap rate
        expected = sched["predicted_cycles"] + sched.get("input_load_cycles", n_in) + streams
        return int(TIMEOUT_FACTOR * expected) + TIMEOUT_SLACK

    async def run(self, x: list[int], n: int, got: list[int]) -> tuple[list[int], list[str]]:
        """One inference: start, stream x in, take n outputs into got, wait for done."""
        d = self.dut
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0
        await self.send(x)
        got, errors = await self.receive(n, got)
        if not d.done.value:  # sleep until done rises, then to the clock edge that samples it
            await RisingEdge(d.done)
            await RisingEdge(d.clk)
        return got, errors

    async def infer(self, s: int) -> dict:
        d = self.dut
        x = stream(self.x_q[s], self.inp)
        expected = stream(self.y_q[s], self.out)
        t0 = get_sim_time(unit="ns")
        self.decided = {}
        limit = self.timeout_cycles(len(x), len(expected))
        got: list[int] = []
        try:
            got, errors = await with_timeout(self.run(x, len(expected), got),
                                             limit * PERIOD_NS, "ns")
        except SimTimeoutError:
            d.s_axis_tvalid.value = 0
            d.m_axis_tready.value = 0
            wrong = sum(a != b for a, b in zip(got, expected, strict=False))
            what = "done" if len(got) == len(expected) else \
                f"{len(got)} of {len(expected)} outputs"
            return {"sample": s, "passed": False, "timeout": True,
                    "mismatches": wrong + len(expected) - len(got), "cycles": None,
                    "total_cycles": limit, "layer_cycles": None, "got": got,
                    "expected": expected,
                    "errors": [f"no output after {limit} cycles: the design hung ({what} "
                               f"received; the bound is {TIMEOUT_FACTOR} x (predicted run cycles "
                               f"+ input load + stream beats) + {TIMEOUT_SLACK})"]}
        total = int((get_sim_time(unit="ns") - t0) // PERIOD_NS)
        mismatches = sum(a != b for a, b in zip(got, expected, strict=True))
        run_cycles = d.run_cycles.value.to_unsigned()
        return {"sample": s, "passed": mismatches == 0 and not errors,
                "mismatches": mismatches, "errors": errors[:5],
                "cycles": run_cycles, "total_cycles": total,
                "layer_cycles": self.layer_cycles(run_cycles),
                "got": got if mismatches else None, "expected": expected if mismatches else None}


@cocotb.test()
async def golden_samples(dut) -> None:
    """Every golden sample, bit-exact, with random gaps and back-pressure."""
    design = Path(os.environ["EDGEHLS_DESIGN"])
    tb = TB(dut, design, int(os.environ.get("EDGEHLS_SEED", "1")))
    await tb.reset()
    cocotb.start_soon(tb.watch_tiles())
    count = min(int(os.environ.get("EDGEHLS_SAMPLES", len(tb.x_q))), len(tb.x_q))
    results = []
    for s in range(count):
        r = await tb.infer(s)
        results.append(r)
        if r.get("timeout"):  # the design hung: the next samples cannot run
            dut._log.error("sample %d: FAIL, %s", s, r["errors"][0])
            break
        dut._log.info("sample %d: %s, %d run cycles", s, "PASS" if r["passed"] else "FAIL",
                      r["cycles"])
    Path(os.environ["EDGEHLS_RESULT"]).write_text(json.dumps(results, indent=1))
    assert all(r["passed"] for r in results), "mismatches against the golden model"
