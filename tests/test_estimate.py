"""edgehls.estimate: block structure, exact DSP/BRAM mapping rules, monotonic growth, and the
estimate against recorded Yosys figures (three array sizes and more, two targets, 25 %)."""

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
    # measured: 8x8 digits -> 80 MULT18X18D and 80 DSP48E1 (64 PEs + the requantizer's two
    # 18 x 17 partial products per column)
    assert estimate.estimate(HW, "ecp5")["total"]["dsp"] == 80
    assert estimate.estimate(HW, "xilinx")["total"]["dsp"] == 80
    assert estimate.estimate(HW, "ice40")["total"]["dsp"] == 0


def test_bram_configurations():
    assert estimate.bram_blocks(488, 64, "ecp5") == 2      # 512x36
    assert estimate.bram_blocks(1880, 16, "ecp5") == 2     # 2048x9
    assert estimate.bram_blocks(488, 64, "xilinx") == 1    # RAMB36 512x72
    assert estimate.bram_blocks(952, 16, "xilinx") == 0.5  # one RAMB18
    assert estimate.bram_blocks(100, 16, "ice40") == 1
    # deep memories take the cheapest configuration, not the widest that holds the depth
    assert estimate.bram_blocks(23728, 32, "ecp5") == 47   # 512x36, 47 deep
    assert estimate.bram_blocks(13312, 9, "ecp5") == 7     # 2048x9
    assert estimate.bram_blocks(13312, 9, "xilinx") == 3.5  # 7 RAMB18 2048x9


def test_resnet8_block_rams_against_yosys():
    # ResNet-8 (tests/cnn_models.py) at 4x4, Yosys 0.70: 85 DP16KD; 71 RAMB18E1 + 4 RAMB36E1
    hw = {"R": 4, "C": 4, "B": 4, "AW": 9, "WW": 8, "ACC_W": 27, "ADEPTH": 13312,
          "MDEPTH": 1024, "NT": 5932, "WDEPTH": 23728, "PDEPTH": 131}
    assert abs(estimate.estimate(hw, "ecp5")["total"]["bram"] - 85) <= 0.25 * 85
    assert abs(estimate.estimate(hw, "xilinx")["total"]["bram"] - 39.5) <= 0.25 * 39.5


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


# Yosys 0.70 (YoWASP) `edgehls synth --no-pnr` of examples/digits_mlp (w8/a8) at commit 215a79b,
# recorded by `bench/synth.py --designs digits_mlp --pe 2x2 4x4 8x8 16x16 --targets ecp5
# xilinx --no-pnr --no-skip`; the hardware parameters are the designs' manifest.json "hw".
DIGITS_HW = {
    "2x2": {"R": 2, "C": 2, "B": 2, "AW": 9, "WW": 8, "ACC_W": 23, "ADEPTH": 52, "MDEPTH": 1,
            "NT": 940, "WDEPTH": 1880, "PDEPTH": 37},
    "4x4": {"R": 4, "C": 4, "B": 4, "AW": 9, "WW": 8, "ACC_W": 23, "ADEPTH": 26, "MDEPTH": 1,
            "NT": 238, "WDEPTH": 952, "PDEPTH": 19},
    "8x8": {"R": 8, "C": 8, "B": 8, "AW": 9, "WW": 8, "ACC_W": 23, "ADEPTH": 13, "MDEPTH": 1,
            "NT": 61, "WDEPTH": 488, "PDEPTH": 10},
    "16x16": {"R": 16, "C": 16, "B": 16, "AW": 9, "WW": 8, "ACC_W": 23, "ADEPTH": 7, "MDEPTH": 1,
              "NT": 20, "WDEPTH": 320, "PDEPTH": 6},
}
YOSYS = {  # (target, array): lut, ff, dsp, bram
    ("ecp5", "2x2"): (2096, 1291, 8, 2),
    ("ecp5", "4x4"): (2940, 2555, 24, 2),
    ("ecp5", "8x8"): (5959, 6093, 80, 2),
    ("ecp5", "16x16"): (13764, 18314, 288, 4),
    ("xilinx", "2x2"): (1071, 853, 8, 1),
    ("xilinx", "4x4"): (1579, 1585, 24, 1),
    ("xilinx", "8x8"): (3081, 3602, 80, 1),
    ("xilinx", "16x16"): (5725, 10025, 288, 2),
}


@pytest.mark.parametrize("target,pe", sorted(YOSYS), ids=[f"{t}-{p}" for t, p in sorted(YOSYS)])
def test_within_25_percent_of_yosys(target, pe):
    lut, ff, dsp, bram = YOSYS[(target, pe)]
    e = estimate.estimate(DIGITS_HW[pe], target)["total"]
    assert e["dsp"] == dsp and e["bram"] == bram
    assert abs(e["lut"] - lut) <= 0.25 * lut, (e["lut"], lut)
    assert abs(e["ff"] - ff) <= 0.25 * ff, (e["ff"], ff)
