"""edgehls.estimate: block structure, exact DSP/BRAM mapping rules, monotonic growth."""

from __future__ import annotations

import pytest

from edgehls import estimate

HW = {"R": 8, "C": 8, "B": 8, "AW": 9, "WW": 8, "ACC_W": 23, "ADEPTH": 8, "MDEPTH": 1,
      "NT": 61, "WDEPTH": 488, "PDEPTH": 10}


@pytest.mark.parametrize("target", estimate.TARGETS)
def test_blocks_and_total(target):
    e = estimate.estimate(HW, target)
    assert set(e["blocks"]) == set(estimate.BLOCKS)
    for r in ("lut", "ff", "dsp", "bram"):
        assert e["total"][r] == pytest.approx(sum(b[r] for b in e["blocks"].values()))
    assert e["total"]["lut"] > 0 and e["total"]["ff"] > 0


def test_dsp_counts_match_yosys_mapping():
    # measured: 8x8 digits -> 80 MULT18X18D (64 PEs + 2 per 23x17 requantizer), 72 DSP48E1
    assert estimate.estimate(HW, "ecp5")["total"]["dsp"] == 80
    assert estimate.estimate(HW, "xilinx")["total"]["dsp"] == 72
    assert estimate.estimate(HW, "ice40")["total"]["dsp"] == 0


def test_bram_configurations():
    assert estimate.bram_blocks(488, 64, "ecp5") == 2      # 512x36
    assert estimate.bram_blocks(1880, 16, "ecp5") == 2     # 2048x9
    assert estimate.bram_blocks(488, 64, "xilinx") == 1    # RAMB36 512x72
    assert estimate.bram_blocks(952, 16, "xilinx") == 0.5  # one RAMB18
    assert estimate.bram_blocks(100, 16, "ice40") == 1


def test_mults():
    assert estimate.mults(9, 8, "ecp5") == 1
    assert estimate.mults(23, 17, "ecp5") == 2
    assert estimate.mults(23, 17, "xilinx") == 1
    assert estimate.mults(9, 8, "ice40") == 0


def test_grows_with_the_array():
    small = estimate.estimate({**HW, "R": 4, "C": 4, "B": 4}, "ecp5")["total"]
    big = estimate.estimate(HW, "ecp5")["total"]
    assert big["lut"] > small["lut"] and big["ff"] > small["ff"]


def test_unknown_target():
    with pytest.raises(ValueError, match="unknown target"):
        estimate.estimate(HW, "vhdl")
