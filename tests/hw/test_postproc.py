"""pytest entry: edgehls_postproc against edgehls.numerics.requantize, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import HW, run_cocotb


@pytest.mark.parametrize(
    "params",
    [
        {},  # defaults: ACC_W 32, OUT_W 9, MB 16, SB 6, TW 1
        {"ACC_W": 20, "OUT_W": 5, "TW": 3},
        {"ACC_W": 40, "OUT_W": 9, "TW": 4},
    ],
    ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()) or "default",
)
def test_postproc(params: dict, tmp_path: Path) -> None:
    run_cocotb("edgehls_postproc", [HW / "mult.v", HW / "postproc.v"], "tb_postproc",
               tmp_path / "build", parameters=params, seed=4321)
