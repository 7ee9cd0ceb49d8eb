"""Resource estimate of a compiled design before any synthesis: LUT, FF, DSP and BRAM per block
(array, columns, buffers, weight ROM, sequencer) for the targets ecp5, xilinx, ice40, generic.

The model has two layers, kept apart so that a change of hw/ needs only a re-fit:
- ``features``: what the RTL holds, counted from the hardware parameters (manifest.json "hw"):
  register bits, adder bits, multiplexer inputs, ROM bits, multipliers and memories per block.
  Multipliers and memories are mapped exactly as Yosys maps them (MULT18X18D 18x18, DSP48E1
  25x18; DP16KD, RAMB18E1/RAMB36E1 in the cheapest configuration for depth x width; small or
  asynchronous memories in LUTs), so DSP and BRAM are counts, not fits.
- ``COEF``: per target and resource, one non-negative weight per feature, fitted (largest
  relative error minimised) against YoWASP Yosys 0.70 (`edgehls synth --no-pnr`) on the digits
  MLP and a [16, 12, 4] MLP at 2x2, 4x4, 8x8, 16x16 (`bench/synth.py --designs small_mlp
  digits_mlp --pe 2x2 4x4 8x8 16x16 --targets ecp5 xilinx --no-pnr --no-skip --out
  build/synth_fit`, then `--fit`): within 13 % of every one of them; tests/test_estimate.py
  keeps the digits figures. Arrays with all-zero columns (the small MLP at 16x16) are left out:
  Yosys removes PEs whose weights are all zero, so the estimate is an upper bound there.
  Targets without measurements (ice40, generic) reuse ecp5's LUT4 weights, with multipliers
  in LUTs (iCE40 HX has no DSP).

Units follow edgehls.synth: ecp5 LUT = LUT4 + 2 per CCU2C + 2 per TRELLIS_DPR16X4; xilinx LUT =
LUT1-6 plus LUT RAM sites; xilinx BRAM in RAMB36 tiles (a RAMB18 is 0.5).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from edgehls import numerics
from edgehls.romgen import HwParams

TARGETS = ("ecp5", "xilinx", "ice40", "generic")
BLOCKS = ("array", "columns", "buffers", "weight_rom", "sequencer")

# (LUT-resource weights, FF weights) per feature; fitted, see the module docstring
COEF: dict[str, dict[str, dict[str, float]]] = {
    "ecp5": {
        "lut": {"adder": 0.767, "mux": 0.45, "rom": 0.0, "soft_mult": 1.0, "lutram": 2.0,
                "fixed": 1446.0},
        "ff": {"reg": 0.979, "pe_reg": 0.854, "fixed": 271.0},
    },
    "xilinx": {
        "lut": {"adder": 0.642, "mux": 0.0, "rom": 0.08, "soft_mult": 1.0, "lutram": 1.0,
                "fixed": 732.0},
        "ff": {"reg": 0.59, "pe_reg": 0.46, "fixed": 282.0},
    },
}
COEF["ice40"] = COEF["ecp5"]
COEF["generic"] = COEF["ecp5"]
LUT_INPUTS = {"ecp5": 4, "ice40": 4, "generic": 4, "xilinx": 6}


def hw_params(hw: dict[str, int]) -> HwParams:
    names = {f.name for f in dataclasses.fields(HwParams)}
    return HwParams(**{k: v for k, v in hw.items() if k in names})


def mults(a: int, b: int, target: str) -> int:
    """Hard multipliers Yosys uses for an a x b signed product (0: built from LUTs)."""
    if target == "ecp5":
        return math.ceil(a / 18) * math.ceil(b / 18)
    if target == "xilinx":
        big, small = max(a, b), min(a, b)
        return math.ceil(big / 25) * math.ceil(small / 18)
    return 0


def bram_blocks(depth: int, width: int, target: str) -> float:
    """Block RAMs for a depth x width memory: the cheapest configuration, each block holding
    depth d x width w (ECP5 DP16KD 512x36 .. 16Kx1; Xilinx RAMB36E1 512x72 .. 32Kx1 = 1 and
    RAMB18E1 512x36 .. 16Kx1 = 0.5; iCE40 SB_RAM40_4K 256x16 .. 2048x2)."""
    if target == "ecp5":
        configs = [(512, 36, 1.0), (1024, 18, 1.0), (2048, 9, 1.0), (4096, 4, 1.0),
                   (8192, 2, 1.0), (16384, 1, 1.0)]
    elif target == "xilinx":
        configs = [(512, 72, 1.0), (1024, 36, 1.0), (2048, 18, 1.0), (4096, 9, 1.0),
                   (8192, 4, 1.0), (16384, 2, 1.0), (32768, 1, 1.0),
                   (512, 36, 0.5), (1024, 18, 0.5), (2048, 9, 0.5), (4096, 4, 0.5),
                   (8192, 2, 0.5), (16384, 1, 0.5)]
    elif target == "ice40":
        configs = [(256, 16, 1.0), (512, 8, 1.0), (1024, 4, 1.0), (2048, 2, 1.0)]
    else:
        return 0
    best = min(math.ceil(depth / d) * math.ceil(width / w) * cost for d, w, cost in configs)
    return int(best) if float(best).is_integer() else best


def lutram_cells(depth: int, width: int, target: str) -> float:
    """LUT-resource units of a small synchronous RAM (ECP5 DPR16X4 16x4 = 2 units, Xilinx
    RAM32M 32x6 = 4 units); iCE40 has no LUT RAM: registers instead (counted as ff)."""
    if target == "xilinx":
        return math.ceil(depth / 32) * math.ceil(width / 6) * 4
    return math.ceil(depth / 16) * math.ceil(width / 4)


def in_bram(depth: int, width: int, target: str) -> bool:
    return target in ("ecp5", "xilinx", "ice40") and depth >= 128 and depth * width >= 4096


def features(hw: dict[str, int], target: str) -> dict[str, dict[str, float]]:
    """Per block: reg (register bits), adder (adder/comparator bits), mux (2:1 mux bits), rom
    (LUT ROM bits / 2**LUT inputs), lutram, soft_mult (multiplier bits in LUTs), dsp, bram."""
    p = hw_params(hw)
    R, C, B, AW, WW, ACC = p.R, p.C, p.B, p.AW, p.WW, p.ACC_W
    k = 2 ** LUT_INPUTS[target]
    f: dict[str, dict[str, float]] = {b: {} for b in BLOCKS}
    n = R * C
    pe_dsp = mults(AW, WW, target)
    # a_o, a_first_o, w_shadow, w_active, p_o; edgehls_mult's input and product registers sit
    # in the DSP block where there is one (ECP5: hw/ecp5/mult.v; Xilinx: AREG/BREG/MREG)
    pe_reg = AW + 1 + 2 * WW + ACC + (0 if pe_dsp else 2 * (AW + WW))
    f["array"] = {"pe_reg": n * pe_reg, "adder": n * ACC, "mux": n * WW,
                  "dsp": n * pe_dsp, "soft_mult": 0 if pe_dsp else n * AW * WW}
    prod = ACC + p.MB + 1
    tw = 1 + p.BW + p.AAW
    # hw/postproc.v: 18 x 18 partial products, s[16:0] and s[ACC_W-1:17] by {0, mult}
    post_dsp = (mults(18, p.MB + 1, target) + mults(ACC - 17, p.MB + 1, target) if ACC > 17
                else mults(ACC, p.MB + 1, target))
    post_bram = in_bram(p.PDEPTH, p.PW, target)
    col_reg = (3 + p.MCW + 2 * ACC + tw) + (p.MB + p.SB + 2 * AW + tw) + (prod + p.SB + 2 * AW
                                                                           + tw) + AW + tw + 3
    f["columns"] = {
        "reg": C * (col_reg + p.PW + (p.MDEPTH * ACC if p.MDEPTH <= 4 else 0)),
        "adder": C * (2 * ACC + 3 * prod), "mux": C * prod * p.SB,
        "rom": 0 if post_bram else C * p.PW * math.ceil(p.PDEPTH / k),
        "lutram": C * lutram_cells(p.MDEPTH, ACC, target) if p.MDEPTH > 4 else 0,
        "dsp": C * post_dsp, "soft_mult": 0 if post_dsp else C * ACC * (p.MB + 1),
        "bram": C * bram_blocks(p.PDEPTH, p.PW, target) if post_bram else 0}
    if p.NEG:  # the negative-side (mult, shift) select before the multiplier
        f["columns"]["mux"] += C * (p.MB + p.SB)
    if p.NLUT:  # the table stage: a table ROM per column, its registers and output select
        lut_bram = in_bram(p.LUT_DEPTH, AW, target)
        f["columns"]["reg"] += C * (2 * AW + tw + 2)
        f["columns"]["mux"] += C * AW
        f["columns"]["rom"] += 0 if lut_bram else C * AW * math.ceil(p.LUT_DEPTH / k)
        f["columns"]["bram"] += C * bram_blocks(p.LUT_DEPTH, AW, target) if lut_bram else 0
    banks, ctw = B, 3 + p.MCW + p.AAW + p.BW + p.CCW + p.PAW  # one memory of B banks
    act_bram = in_bram(p.ADEPTH, AW, target)
    f["buffers"] = {
        "reg": R * AW + R * (R - 1) // 2 * (AW + 2) + (R + C + 1) * (ctw + 1),
        "adder": banks * p.AAW, "mux": banks * (C + 1) * (p.AAW + AW) + R * 2 * B * AW,
        "lutram": 0 if act_bram else banks * lutram_cells(p.ADEPTH, AW, target),
        "bram": banks * bram_blocks(p.ADEPTH, AW, target) if act_bram else 0}
    w_bram = in_bram(p.ROM_DEPTH, p.ROM_W, target)
    f["weight_rom"] = {"reg": p.ROM_W,
                       "rom": 0 if w_bram else p.ROM_W * math.ceil(p.ROM_DEPTH / k),
                       "bram": bram_blocks(p.ROM_DEPTH, p.ROM_W, target) if w_bram else 0}
    if p.EW:  # hw/sparse_decoder.v: a 3*EW-bit buffer, two barrel shifters, C value muxes
        buf = max(3 * p.EW, 1 + C * (1 + (p.SHARE or WW)))
        f["weight_rom"]["reg"] += buf + 2 * math.ceil(math.log2(buf + 1))
        f["weight_rom"]["mux"] = (2 * buf * math.ceil(math.log2(p.EW + 1))
                                  + C * C * (p.SHARE or WW))
        f["weight_rom"]["adder"] = C * math.ceil(math.log2(C + 1)) + 4 * math.ceil(
            math.log2(buf + 1))
    f["sequencer"] = {"reg": 2 * p.SW, "adder": 4 * p.AAW,
                      "rom": 2 * p.SW * math.ceil(p.NT / k), "fixed": 1}
    if p.PK:  # packed input: the rotation walk (r_step, r_wrap, two sums and compares, the
        # word carry) and the loader's padded-row counter and pad flag
        f["sequencer"]["reg"] += 2 * p.BW + 33
        f["sequencer"]["adder"] += 4 * (p.BW + 1) + p.XAW + 3 * 32
        f["sequencer"]["mux"] = 2 * p.BW
    return f


def estimate(hw: dict[str, int], target: str) -> dict[str, Any]:
    """{"blocks": {block: {lut, ff, dsp, bram}}, "total": {...}, "target": target}."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    coef = COEF[target]
    blocks = {}
    for name, feat in features(hw, target).items():
        lut = sum(coef["lut"].get(k, 0.0) * v for k, v in feat.items())
        ff = sum(coef["ff"].get(k, 0.0) * v for k, v in feat.items())
        if target == "ice40":  # no LUT RAM: small memories become registers
            ff += feat.get("lutram", 0) * 16
        blocks[name] = {"lut": round(lut), "ff": round(ff), "dsp": int(feat.get("dsp", 0)),
                        "bram": feat.get("bram", 0)}
    total = {r: sum(b[r] for b in blocks.values()) for r in ("lut", "ff", "dsp", "bram")}
    total["bram"] = int(total["bram"]) if float(total["bram"]).is_integer() else total["bram"]
    return {"target": target, "blocks": blocks, "total": total}


def from_design(design: Path, target: str) -> dict[str, Any]:
    """The estimate of a compiled design directory, from its manifest.json."""
    hw = json.loads((design / "manifest.json").read_text())["hw"]
    return estimate(hw, target)


def report_entry(hw: dict[str, int]) -> dict[str, Any]:
    """What report.json holds: the estimate for every target."""
    return {t: estimate(hw, t) for t in TARGETS}


_ = numerics  # MULT_BITS/SHIFT_BITS reach the model through HwParams' defaults
