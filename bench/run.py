"""`make bench`: measured figures for the foundation (printed, never asserted).

- digits MLP at --pe 8x8: compile time, Icarus wall time per inference, predicted and
  measured run cycles;
- a [256, 256] x [256, 256] MatMul at --pe 16x16: predicted and measured cycles against the
  compute bound MACs / (R*C), i.e. utilization;
- with --synth: Yosys generic synthesis of the digits design (cells, latches, time).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgehls import pipeline, simulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402  (bench/models.py, beside this script)


def best_of(n: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_case(name: str, model: Path, pe: tuple[int, int], calib, work: Path,
             samples: int) -> dict:
    out = work / name
    opts = pipeline.Options(pe=pe, calib=calib, samples=samples)
    t_compile, rep = best_of(3, lambda: pipeline.compile_model(model, out, opts, force=True))
    t0 = time.perf_counter()
    res = simulate.simulate(out, samples=samples, gaps=0.0)
    t_sim = time.perf_counter() - t0
    r, c = pe
    macs = rep["total"]["macs"]
    bound = -(-macs // (r * c))
    return {"case": name, "pe": f"{r}x{c}", "macs": macs, "predicted": res["predicted_cycles"],
            "measured": res["cycles"], "bit_exact": res["mismatches"] == 0,
            "bound": bound, "ratio": res["cycles"] / bound,
            "utilization": macs / (res["cycles"] * r * c), "compile_s": t_compile,
            "sim_s_per_inference": t_sim / samples, "design": out}


def synth(design: Path) -> str:
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "-C", str(design), "synth"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"synthesis failed: {proc.stderr[-500:]}"
    stat = (design / "synth" / "stat.txt").read_text()
    cells = re.findall(r"Number of cells:\s+(\d+)", stat)
    latches = len(re.findall(r"DLATCH", stat))
    return (f"Yosys generic synthesis of {design.name}: {cells[-1] if cells else '?'} cells, "
            f"{latches} latch types, {time.perf_counter() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synth", action="store_true", help="also run Yosys on the digits design")
    ap.add_argument("--quick", action="store_true", help="skip the 256^3 MatMul")
    a = ap.parse_args()
    data = np.load(ROOT / "examples/digits_mlp/data.npz")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [run_case("digits_mlp", ROOT / "examples/digits_mlp/model.onnx", (8, 8),
                         data["x_calib"], work, samples=4)]
        if not a.quick:
            mm = work / "matmul_256.onnx"
            models.matmul_256(mm)
            rows.append(run_case("matmul_256", mm, (16, 16), None, work, samples=1))
        print(f"{'case':<12} {'pe':>5} {'MACs':>9} {'predicted':>9} {'measured':>9} "
              f"{'exact':>5} {'MACs/RC':>8} {'x bound':>7} {'util':>6} {'compile':>8} "
              f"{'sim/inf':>8}")
        for r in rows:
            print(f"{r['case']:<12} {r['pe']:>5} {r['macs']:>9} {r['predicted']:>9} "
                  f"{r['measured']:>9} {str(r['bit_exact']):>5} {r['bound']:>8} "
                  f"{r['ratio']:>7.3f} {r['utilization']:>6.1%} {r['compile_s']:>7.3f}s "
                  f"{r['sim_s_per_inference']:>7.2f}s")
        if a.synth:
            print(synth(rows[0]["design"]))


if __name__ == "__main__":
    main()
