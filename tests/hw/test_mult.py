"""pytest entry: edgehls_mult, the generic hw/mult.v and the ECP5 hw/ecp5/mult.v (its registers
inside a MULT18X18D, simulated with tests/hw/ecp5_mult18x18d.v), against the same contract; and
the array and the requantizer built on the ECP5 version against their own benches."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import HW, run_cocotb

ECP5_MODEL = Path(__file__).resolve().parent / "ecp5_mult18x18d.v"
IMPLS = {"generic": [HW / "mult.v"], "ecp5": [ECP5_MODEL, HW / "ecp5" / "mult.v"]}
WIDTHS = [(9, 8), (18, 18), (17, 16), (1, 1), (19, 8), (8, 24)]  # the last two: wider than 18


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("in_reg", [1, 0])
@pytest.mark.parametrize("aw,bw", WIDTHS, ids=[f"{a}x{b}" for a, b in WIDTHS])
def test_mult(impl: str, in_reg: int, aw: int, bw: int, tmp_path: Path) -> None:
    run_cocotb("edgehls_mult", IMPLS[impl], "tb_mult", tmp_path / "build",
               parameters={"AW": aw, "BW": bw, "IN_REG": in_reg}, seed=99)


@pytest.mark.parametrize("params", [{"R": 3, "C": 4}, {"R": 2, "C": 2, "AW": 17, "WW": 16,
                                                       "ACC_W": 40}],
                         ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
def test_systolic_array_on_ecp5_mult(params: dict, tmp_path: Path) -> None:
    sources = IMPLS["ecp5"] + [HW / "pe.v", HW / "systolic_array.v"]
    run_cocotb("edgehls_systolic_array", sources, "tb_systolic_array", tmp_path / "build",
               parameters=params, seed=4321)


@pytest.mark.parametrize("params", [{}, {"ACC_W": 16, "OUT_W": 8}],
                         ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()) or "default")
def test_postproc_on_ecp5_mult(params: dict, tmp_path: Path) -> None:
    run_cocotb("edgehls_postproc", IMPLS["ecp5"] + [HW / "postproc.v"], "tb_postproc",
               tmp_path / "build", parameters=params, seed=4321)
