"""pytest entry: edgehls_systolic_array (and edgehls_pe) against the timing contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import HW, run_cocotb

SOURCES = [HW / "mult.v", HW / "pe.v", HW / "systolic_array.v"]


@pytest.mark.parametrize(
    "params",
    [
        {"R": 1, "C": 1},
        {"R": 2, "C": 3},
        {"R": 4, "C": 4},
        {"R": 3, "C": 2},
        {"R": 3, "C": 4, "AW": 17, "WW": 16, "ACC_W": 48},
    ],
    ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()),
)
def test_systolic_array(params: dict, tmp_path: Path) -> None:
    run_cocotb("edgehls_systolic_array", SOURCES, "tb_systolic_array", tmp_path / "build",
               parameters=params, seed=1234)
