"""cocotb bench for edgehls_sparse_decoder behind an edgehls_rom: the rows of an encoded stream
(edgehls.encode.build, raw and bitmap layers, rows from all-zero to fully dense) come out one
per load cycle, in order, from the minimum lead after `restart` (the first load four cycles
after it, as edgehls_core's first weight load) and with back-to-back or randomly gapped loads
(seeded); a second `restart` replays the stream."""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

LEAD = 4  # cycles from restart to the first load (edgehls_core: start -> go -> first w_load)


def uint(handle) -> int:
    return int(str(handle.value), 2)


@cocotb.test()
async def rows_at_full_rate(dut) -> None:
    spec = json.loads(open(os.environ["SPARSE_SPEC"]).read())
    rows, layers, gap_p = spec["rows"], spec["layers"], spec["gap_p"]
    rng = random.Random(cocotb.RANDOM_SEED)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst_n.value = 0
    dut.restart.value = 0
    dut.load.value = 0
    dut.layer.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    for replay in range(2):
        # the cycle plan: restart, LEAD - 1 idle cycles, then every row, gaps between tiles
        plan = [(1, None)] + [(0, None)] * (LEAD - 1)
        for i in range(len(rows)):
            if i % spec["R"] == 0 and i and rng.random() < gap_p:
                plan += [(0, None)] * rng.randint(1, 3)
            plan.append((0, i))
        got = 0
        for restart, i in plan:
            await RisingEdge(dut.clk)
            dut.restart.value = restart
            dut.load.value = int(i is not None)
            dut.layer.value = layers[i] if i is not None else 0
            await ReadOnly()
            if i is not None:
                value = uint(dut.row)
                assert value == rows[i], (
                    f"replay {replay}, row {i} (layer {layers[i]}): got {value:#x}, "
                    f"expected {rows[i]:#x}")
                got += 1
        assert got == len(rows)
        await RisingEdge(dut.clk)
        dut.load.value = 0
        for _ in range(rng.randint(0, 5)):
            await RisingEdge(dut.clk)
