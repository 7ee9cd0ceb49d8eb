"""Compile the compressed digits MLP over tile sparsity x share bits; tabulate and plot.

Every configuration is one `edgehls compile` at --pe 8x8 (edgehls.pipeline.compile_model) with
calibration and evaluation data from data.npz: --prune tile:S (S = 0: no --prune flag, only the
zero tiles already in the model are skipped) and --share-bits B (0: no sharing). From each
report.json it takes the compression ratio (float32 weight bits / stored weight bits), the
compressed test accuracy and the predicted cycles, prints a table, and draws accuracy against
compression ratio and against cycles (one line per share-bits setting) into sweep.png.

"Best" is the configuration with the highest compression whose test accuracy is within 1 point
of the dense float model (its accuracy is in model.onnx's metadata, written by train.py);
--simulate runs it in Icarus (edgehls.simulate) and prints bit-exactness and cycles.

Usage: python examples/compressed_digits/sweep.py [-o build/compressed_sweep] [--simulate]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import onnx

from edgehls import pipeline

HERE = Path(__file__).resolve().parent
SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8)
SHARE_BITS = (0, 8, 6, 4, 3)
PE = (8, 8)
MAX_LOSS = 0.01  # the target: <= 1 point of test accuracy below dense float


def dense_accuracy(model: Path) -> float | None:
    """The dense float test accuracy that train.py recorded in the model's metadata."""
    props = {p.key: p.value for p in onnx.load(model, load_external_data=False).metadata_props}
    return float(props["dense_float_accuracy"]) if "dense_float_accuracy" in props else None


def flags(sparsity: float, bits: int) -> str:
    return " ".join(([f"--prune tile:{sparsity:g}"] if sparsity else [])
                    + ([f"--share-bits {bits}"] if bits else []))


def run(model: Path, data: Path, out: Path) -> list[dict]:
    d = pipeline.load_npz(data, ("x_calib", "x_test", "y_test"))
    rows = []
    for bits in SHARE_BITS:
        for s in SPARSITIES:
            opts = pipeline.Options(pe=PE, calib=d["x_calib"], eval_x=d["x_test"],
                                    eval_y=d["y_test"], prune=f"tile:{s:g}" if s else None,
                                    share_bits=bits)
            design = out / f"tile{s:g}_share{bits}"
            t0 = time.perf_counter()
            rep = pipeline.compile_model(model, design, opts, force=True)
            t, acc = rep["total"], rep["accuracy"]
            row = {"sparsity": s, "share_bits": bits, "design": str(design),
                   "flags": flags(s, bits), "compression": t["compression"],
                   "stored_bits": t["weight_bits_stored"], "skipped_tiles": t["skipped_tiles"],
                   "tiles": t["tiles"], "cycles": t["predicted_cycles"],
                   "float": acc["float"], "quantized": acc["quantized"],
                   "accuracy": acc.get("compressed", acc["quantized"])}
            rows.append(row)
            print(f"[{len(rows):2d}/{len(SPARSITIES) * len(SHARE_BITS)}] tile:{s:<4g} "
                  f"share {bits or '-':>2}: {row['compression']:5.1f}x  acc "
                  f"{row['accuracy']:.2%}  {row['cycles']} cycles  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return rows


def table(rows: list[dict], dense: float) -> str:
    head = ("| --prune | --share-bits | skipped tiles | stored bits | compression | accuracy "
            "| vs dense float | predicted cycles |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        prune = f"tile:{r['sparsity']:g}" if r["sparsity"] else "-"
        lines.append(f"| {prune} | "
                     f"{r['share_bits'] or '-'} | {r['skipped_tiles']}/{r['tiles']} | "
                     f"{r['stored_bits']} | {r['compression']:.1f}x | {r['accuracy']:.2%} | "
                     f"{(r['accuracy'] - dense) * 100:+.2f} | {r['cycles']} |")
    return "\n".join(lines)


def best(rows: list[dict], dense: float) -> dict:
    """Highest compression within MAX_LOSS of dense float; ties: fewer flags, then cycles."""
    ok = [r for r in rows if r["accuracy"] >= dense - MAX_LOSS - 1e-12]
    return max(ok, key=lambda r: (round(r["compression"], 6), -r["sparsity"], -r["cycles"]))


def plot(rows: list[dict], dense: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for bits in SHARE_BITS:
        rs = [r for r in rows if r["share_bits"] == bits]
        label = f"share {bits} bits" if bits else "no sharing (int8)"
        for ax, key in zip(axes, ("compression", "cycles"), strict=True):
            ax.plot([r[key] for r in rs], [100 * r["accuracy"] for r in rs], "o-", label=label)
    for ax in axes:
        ax.axhline(100 * dense, color="k", lw=0.8, ls="--", label="dense float")
        ax.axhline(100 * (dense - MAX_LOSS), color="r", lw=0.8, ls=":", label="dense - 1 point")
        ax.grid(alpha=0.3)
    axes[0].axvline(20, color="g", lw=0.8, ls=":", label="20x target")
    axes[0].set_xscale("log")
    axes[0].xaxis.set_major_locator(matplotlib.ticker.FixedLocator([5, 10, 20, 40]))
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_xlabel("compression vs float32 weights (x, log)")
    axes[1].set_xlabel("predicted cycles per inference (--pe 8x8)")
    axes[0].set_ylabel("test accuracy, RTL-exact integer model (%)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("compressed digits MLP: tile sparsity (points) x share bits (lines)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("build/compressed_sweep"))
    ap.add_argument("--model", type=Path, default=HERE / "model.onnx")
    ap.add_argument("--data", type=Path, default=HERE / "data.npz")
    ap.add_argument("--simulate", action="store_true", help="simulate the best configuration")
    a = ap.parse_args()
    a.output.mkdir(parents=True, exist_ok=True)
    rows = run(a.model, a.data, a.output)
    dense = dense_accuracy(a.model)
    if dense is None:  # a model not written by train.py: compare with its own float accuracy
        dense = rows[0]["float"]
    print(f"\ndense float test accuracy {dense:.2%} (train.py); every row at --pe 8x8\n")
    print(table(rows, dense))
    b = best(rows, dense)
    print(f"\nbest within 1 point: {b['flags'] or '(no flags)'}: {b['compression']:.1f}x, "
          f"{b['accuracy']:.2%}, {b['cycles']} cycles -> {b['design']}")
    (a.output / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, dense, a.output / "sweep.png")
    print(f"wrote {a.output / 'sweep.png'} and {a.output / 'sweep.json'}")
    if a.simulate:
        from edgehls import simulate

        t0 = time.perf_counter()
        r = simulate.simulate(Path(b["design"]))
        exact = sum(1 for s in r["per_sample"] if not s["mismatches"] and not s["errors"])
        print(f"RTL ({b['design']}): {exact}/{r['samples']} samples bit-exact; cycles measured "
              f"{r['cycles']}, predicted {r['predicted_cycles']} "
              f"({'match' if r['cycles_match'] else 'DIFFER'}); {time.perf_counter() - t0:.1f} s")
        return 0 if r["passed"] else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
