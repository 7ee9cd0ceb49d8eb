"""Figures for the MLPerf Tiny reference networks (issue 4), printed, never asserted.

Per model x array: MACs, weight tiles (of which skipped), predicted run cycles, the sum over
layers of the per-layer bound max(MACs / (R*C), live tiles * R) (compute-bound or weight-load
bound), predicted / bound, utilization MACs / (cycles * R*C), and the best-of-3 compile time.
With --simulate: measured cycles of one inference in Icarus (bit-exact checked) and its wall
time. With --layers: the same per layer.

    .venv/bin/python bench/cnn.py [--simulate] [--layers] [--models resnet8 ds_cnn] [--pe 16x16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from edgehls import pipeline, simulate
from edgehls.errors import EdgeHLSError

ROOT = Path(__file__).resolve().parents[1]
# The builders live with the tests that check them (tests/test_cnn_models.py); a copy here
# could drift. Unlike tests/models.py, the name cnn_models clashes with nothing in bench/.
sys.path.insert(0, str(ROOT / "tests"))
import cnn_models  # noqa: E402

MODELS = ["resnet8", "ds_cnn", "mobilenet_v1_025", "fc_autoencoder"]
PES = [(8, 8), (16, 16)]
CALIB = 16


def layer_bound(layer: dict) -> int:
    return max(layer["compute_bound_cycles"], layer["memory_bound_cycles"])


def run_case(name: str, pe: tuple[int, int], work: Path, sim: bool) -> dict:
    out = work / f"{name}_{pe[0]}x{pe[1]}"
    model = work / f"{name}.onnx"
    model.write_bytes(cnn_models.BUILDERS[name](0).SerializeToString())
    calib = np.random.default_rng(3).uniform(-1, 1, (CALIB, *cnn_models.SHAPES[name][0][1:]))
    opts = pipeline.Options(pe=pe, samples=1, calib=calib.astype(np.float32))
    row = {"case": name, "pe": f"{pe[0]}x{pe[1]}"}
    try:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            rep = pipeline.compile_model(model, out, opts, force=True)
            times.append(time.perf_counter() - t0)
    except EdgeHLSError as e:
        return {**row, "error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # a compiler bug: show where, keep benchmarking the rest
        frame = traceback.extract_tb(e.__traceback__)[-1]
        return {**row, "error": f"{type(e).__name__}: {e} ({Path(frame.filename).name}:"
                                f"{frame.lineno})"}
    t = rep["total"]
    rc = pe[0] * pe[1]
    row.update(macs=t["macs"], tiles=t["tiles"], skipped=t["skipped_tiles"],
               predicted=t["predicted_cycles"], bound=sum(map(layer_bound, rep["layers"])),
               compile_s=min(times), layers=rep["layers"])
    row["ratio"] = row["predicted"] / row["bound"]
    row["util"] = t["macs"] / (row["predicted"] * rc)
    if sim:
        t0 = time.perf_counter()
        try:
            res = simulate.simulate(out, samples=1, gaps=0.0)
        except simulate.SimulationError as e:
            return {**row, "error": f"simulation: {e}"}
        row.update(sim_s=time.perf_counter() - t0, measured=res["cycles"],
                   exact=res["mismatches"] == 0 and res["passed"])
        for ly, cyc in zip(row["layers"], res.get("layer_cycles") or [], strict=False):
            ly["measured_cycles"] = cyc
        row["ratio"] = row["measured"] / row["bound"]
        row["util"] = t["macs"] / (row["measured"] * rc)
    return row


HEAD = (f"{'model':<17} {'pe':>5} {'MACs':>10} {'tiles (skip)':>14} {'predicted':>9} "
        f"{'bound':>9} {'x bound':>7} {'util':>6} {'compile':>8}")


def print_row(r: dict, sim: bool) -> None:
    if "error" in r and "macs" not in r:
        print(f"{r['case']:<17} {r['pe']:>5}  FAILED: {r['error']}")
        return
    tiles = f"{r['tiles']} ({r['skipped']})"
    line = (f"{r['case']:<17} {r['pe']:>5} {r['macs']:>10} {tiles:>14} {r['predicted']:>9} "
            f"{r['bound']:>9} {r['ratio']:>7.3f} {r['util']:>6.1%} {r['compile_s']:>7.2f}s")
    if sim and "measured" in r:
        line += f" {r['measured']:>9} {str(r['exact']):>5} {r['sim_s']:>8.1f}s"
    elif sim:
        line += f"  {r['error']}"
    print(line)


def print_layers(r: dict) -> None:
    sim = any("measured_cycles" in ly for ly in r["layers"])
    print(f"  {'layer':<22} {'kind':<15} {'M x K x N':>18} {'MACs':>9} {'tiles (skip)':>13} "
          f"{'predicted':>9}" + (f" {'measured':>9}" if sim else "")
          + f" {'bound':>8} {'util':>6}")
    for ly in r["layers"]:
        mkn = f"{ly['M']}x{ly['K']}x{ly['N']}"
        tiles = f"{ly['tiles']} ({ly['skipped_tiles']})"
        print(f"  {ly['name']:<22} {ly['kind']:<15} {mkn:>18} {ly['macs']:>9} {tiles:>13} "
              f"{ly['predicted_cycles']:>9}"
              + (f" {ly.get('measured_cycles', '-'):>9}" if sim else "")
              + f" {layer_bound(ly):>8} {ly['utilization']:>6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--simulate", action="store_true",
                    help="also simulate one inference in Icarus (minutes per large model)")
    ap.add_argument("--layers", action="store_true", help="print per-layer figures")
    ap.add_argument("--models", nargs="+", default=MODELS, choices=sorted(cnn_models.BUILDERS))
    ap.add_argument("--pe", nargs="+", default=[f"{r}x{c}" for r, c in PES])
    a = ap.parse_args()
    pes = [tuple(int(v) for v in p.split("x")) for p in a.pe]
    with tempfile.TemporaryDirectory() as tmp:
        print(HEAD + (f" {'measured':>9} {'exact':>5} {'sim/inf':>9}" if a.simulate else ""),
              flush=True)
        for name in a.models:
            for pe in pes:
                r = run_case(name, pe, Path(tmp), a.simulate)
                print_row(r, a.simulate)
                if a.layers and "layers" in r:
                    print_layers(r)
                sys.stdout.flush()


if __name__ == "__main__":
    main()
