"""Compression figures for the 256x256 layer (issue 5), printed, never asserted.

- tile-structured pruning at --pe 16x16 (0 %, 50 %, 75 % of tiles): predicted cycles, and with
  --simulate the cycles measured in Icarus, against the dense layer;
- weight sharing with B = 4 on int8 weights: stored weight bits against int8.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edgehls import pipeline, simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402  (bench/models.py, beside this script)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--simulate", action="store_true",
                    help="also measure cycles in Icarus (about 3 min for the dense layer)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "matmul_256.onnx"
        models.matmul_256(model)
        rows = []
        for prune, share in ((None, 0), ("tile:0.5", 0), ("tile:0.75", 0), (None, 4),
                             ("tile:0.5", 4)):
            out = work / f"{prune}-{share}"
            opts = pipeline.Options(pe=(16, 16), samples=1, prune=prune, share_bits=share)
            pipeline.compile_model(model, out, opts, force=True)
            rep = json.loads((out / "report.json").read_text())
            measured = None
            if a.simulate and share == 0:
                t0 = time.perf_counter()
                res = simulate.simulate(out, gaps=0.0)
                measured = (res["cycles"], res["mismatches"] == 0, time.perf_counter() - t0)
            rows.append((prune or "none", share, rep, measured))
        dense = rows[0][2]["total"]
        print(f"{'prune':<10} {'share':>5} {'tiles':>5} {'skipped':>7} {'predicted':>9} "
              f"{'x dense':>7} {'measured':>9} {'exact':>5} {'stored bits':>11} {'x int8':>6}")
        for prune, share, rep, measured in rows:
            t = rep["total"]
            m = f"{measured[0]:>9} {str(measured[1]):>5}" if measured else f"{'-':>9} {'-':>5}"
            print(f"{prune:<10} {share:>5} {t['tiles']:>5} {t['skipped_tiles']:>7} "
                  f"{t['predicted_cycles']:>9} "
                  f"{t['predicted_cycles'] / dense['predicted_cycles']:>7.3f} {m} "
                  f"{t['weight_bits_stored']:>11} "
                  f"{t['weight_bits_stored'] / dense['weight_bits_quantized']:>6.3f}")


if __name__ == "__main__":
    main()
