"""Stored weight bits per layer under candidate encodings of a tile row (issue 5), printed.

For each model and compression setting, the rows edgehls loads (C weights, or C codebook
indices with --share-bits, of every tile the tiler keeps) are costed as:
- raw: C * w bits (what the ROM stores without encoding);
- bitmap: a C-bit mask + the non-zeros, C + nnz * w;
- bitmap-z: a 1-bit non-empty flag, then (if set) the bitmap row: 1, or 1 + C + nnz * w;
- rle: EIE-style relative indices within the row: a clog2(C+1)-bit entry count, then per
  non-zero a 4-bit count of zeros before it and its w-bit value (a run of more than 15 zeros
  spends an extra entry: a zero value with run 15);
"best" is the cheapest format per layer; "auto" is what edgehls's --encode auto stores (per
layer the cheapest of raw, bitmap and bitmap-z, plus the stream's final-word padding). w is each
layer's own element width (its wbits, or the --share-bits index width), as the stream stores it.

Mixed precision: the digits CNN with its second convolution at w4a4 (the configuration of
tests/test_quantize_rtl.py) and with first/last layers at 8 bits and the body at 4: weight ROM
bits per layer in the plain ROM (--encode raw, every layer at the widest width), in the auto
stream with every layer at the widest width (what edgehls stored before layers had their own
widths), and in the auto stream at each layer's own width (now), measured from rom/ of the
compiled designs.

With --simulate, each model (pruned 75 %, the digits MLP also shared) is compiled with
--encode raw and --encode auto and simulated in Icarus: cycles measured against predicted, and
bit-exactness, for both.

    .venv/bin/python bench/sparsity_encoding.py [--pe 8x8] [--simulate]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgehls import encode, frontend, numerics, pipeline, romgen, simulate, tiler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import cnn_models  # noqa: E402  (tests/cnn_models.py)
from models import save  # noqa: E402


def rle_bits(row: np.ndarray, zero: int, w: int) -> int:
    bits = numerics.clog2(row.size + 1)
    run = 0
    for v in row:
        if v == zero:
            run += 1
            continue
        bits += (run // 16) * (4 + w) + 4 + w
        run = 0
    return bits


def costs(model: Path, opts: pipeline.Options) -> tuple[list[str], dict[str, list[int]]]:
    pipe = pipeline.passes(opts)
    g = pipeline.run_passes(frontend.load(model, opts.input_shape), pipe)
    s = tiler.schedule(g, *opts.pe)
    p = romgen.hw_params(g, s)
    zeros = romgen.zero_elements(g, p)
    w = p.SHARE or p.WW
    widths = romgen.element_widths(g, p)
    names = [ly.name for ly in s.layers]
    out = {k: [0] * len(names) for k in ("raw", "bitmap", "bitmap-z", "rle")}
    blocks = romgen.weight_blocks(g, s, p)
    for layer, block, live in blocks:
        z, wl = zeros[layer], widths[layer]
        for row in encode.with_zero_padding(block, live, z):
            out["raw"][layer] += encode.row_bits(row, "raw", z, wl)
            out["bitmap"][layer] += encode.row_bits(row, "bitmap", z, wl)
            out["bitmap-z"][layer] += encode.row_bits(row, "bitmap-z", z, wl)
            out["rle"][layer] += rle_bits(row, z, wl)
    auto = encode.plan("auto", blocks, zeros, w, widths)
    out["auto"] = list(auto.layer_bits)
    if auto.encoded:  # the final word's padding is stored too
        out["auto"][-1] += len(auto.words) * auto.width - sum(auto.layer_bits)
    return names, out


def stream_bits(plan: encode.Plan) -> list[int]:
    """Per layer stream bits, the final word's padding counted in the last layer's."""
    bits = list(plan.layer_bits)
    if plan.encoded:
        bits[-1] += len(plan.words) * plan.width - sum(bits)
    return bits


def mixed_table(pe: tuple[int, int], work: Path, simulate_too: bool) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from quant import mixed  # noqa: E402  (bench/quant.py: first/last w8, body at 4)

    digits = ROOT / "examples" / "digits_cnn"
    with np.load(digits / "data.npz") as d:
        calib = d["x_calib"]
    model = digits / "model.onnx"
    configs = [("conv2 w4a4", {"layers": {"/conv2/Conv": {"wbits": 4, "abits": 4},
                                          "/conv1/Conv": {"abits": 6}}}),
               ("first/last w8, body w4a4", mixed(frontend.load(model), 4))]
    print(f"\nMixed precision, digits CNN at --pe {pe[0]}x{pe[1]}: weight ROM bits per layer "
          "(rom/weights.hex of compiled designs; 'before' = the auto stream with every layer "
          "at the widest width)\n")
    print("| config | layer | wbits | raw ROM | auto before | auto now | encoding now |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for label, prec in configs:
        reps = {}
        for enc in ("raw", "auto"):
            out = work / f"digits_cnn-mixed-{label[:5].replace(' ', '')}-{enc}"
            opts = pipeline.Options(pe=pe, calib=calib, precision=prec, samples=2, encode=enc)
            reps[enc] = pipeline.compile_model(model, out, opts, force=True), out
        g = pipeline.run_passes(frontend.load(model), pipeline.passes(opts))
        s = tiler.schedule(g, *pe)
        p = romgen.hw_params(g, s, "auto")
        before = stream_bits(encode.plan("auto", romgen.weight_blocks(g, s, p),
                                         romgen.zero_elements(g, p), p.SHARE or p.WW))
        raw, auto = reps["raw"][0], reps["auto"][0]
        for i, (lr, la) in enumerate(zip(raw["layers"], auto["layers"], strict=True)):
            print(f"| {label} | {la['name']} | {la['wbits']} | {lr['weight_bits_stored']} | "
                  f"{before[i]} | {la['weight_bits_stored']} | {la['encoding']} |")
        print(f"| {label} | **total (rom/weights.hex)** | | "
              f"{raw['total']['rom_bits']['weights.hex']} | {sum(before)} | "
              f"{auto['total']['rom_bits']['weights.hex']} | |")
        if simulate_too:
            res = simulate.simulate(reps["auto"][1])
            print(f"| {label} | Icarus (auto now): cycles {res['cycles']} / predicted "
                  f"{res['predicted_cycles']}, bit-exact "
                  f"{res['passed'] and res['mismatches'] == 0} | | | | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pe", default="8x8")
    ap.add_argument("--simulate", action="store_true",
                    help="also compile and simulate raw vs auto (about a minute)")
    a = ap.parse_args()
    pe = tuple(int(x) for x in a.pe.split("x"))
    work = Path("build/bench_sparsity")
    work.mkdir(parents=True, exist_ok=True)
    digits = ROOT / "examples" / "digits_mlp"
    with np.load(digits / "data.npz") as d:
        calib = d["x_calib"]
    resnet = save(cnn_models.resnet8_small(), work / "resnet8_small.onnx")
    dscnn = save(cnn_models.ds_cnn_small(), work / "ds_cnn_small.onnx")
    sparsities = (None, 0.5, 0.75, 0.9)
    # (name, model, --prune, calibration, share bits); the CNNs run without sharing: romgen
    # finds no codebook for a residual Add, nor an entry for a depthwise layer's block-diagonal
    # zeros (a limitation of --share-bits, not of the encodings)
    cases = [("compressed_digits", ROOT / "examples/compressed_digits/model.onnx", None, calib,
              (0, 3))]
    cases += [("digits_mlp", digits / "model.onnx", f"unstructured:{s}", calib, (0, 4))
              for s in sparsities]
    cases += [("ds_cnn_small", dscnn, f"unstructured:{s}", None, (0,)) for s in sparsities]
    cases += [("resnet8_small", resnet, f"unstructured:{s}", None, (0,)) for s in sparsities]
    kinds = ("raw", "bitmap", "bitmap-z", "rle", "auto")
    mixed_table(pe, work, a.simulate)
    print(f"\n--pe {a.pe}; bits per layer (and total); 'best' = cheapest row format\n")
    print(f"| model | prune | share | layer | {' | '.join(kinds)} | best | auto/raw |")
    print("| --- | --- | ---: | --- |" + " ---: |" * (len(kinds) + 2))
    totals = []
    for name, model, prune, cal, shares in cases:
        prune = None if prune and prune.endswith("None") else prune
        for share in shares:
            opts = pipeline.Options(pe=pe, prune=prune, share_bits=share, calib=cal)
            layers, c = costs(model, opts)
            rows = [(ly, [c[k][i] for k in kinds]) for i, ly in enumerate(layers)]
            rows.append(("**total**", [sum(c[k]) for k in kinds]))
            totals.append((name, prune, share, rows[-1][1]))
            for ly, v in rows:
                best = kinds[int(np.argmin(v[:4]))]
                print(f"| {name} | {prune or '-'} | {share or '-'} | {ly} | "
                      + " | ".join(str(x) for x in v) + f" | {best} | {v[4] / v[0]:.3f} |")
    print("\nTotals only:\n")
    print(f"| model | prune | share | {' | '.join(kinds)} | auto/raw | rle/bitmap-z |")
    print("| --- | --- | ---: |" + " ---: |" * (len(kinds) + 2))
    for name, prune, share, v in totals:
        print(f"| {name} | {prune or '-'} | {share or '-'} | " + " | ".join(map(str, v))
              + f" | {v[4] / v[0]:.3f} | {v[3] / v[2]:.3f} |")
    if a.simulate:
        runs = [("compressed_digits", cases[0][1], None, calib, 3),
                ("digits_mlp", digits / "model.onnx", "unstructured:0.75", calib, 0),
                ("digits_mlp", digits / "model.onnx", "unstructured:0.75", calib, 4),
                ("ds_cnn_small", dscnn, "unstructured:0.75", None, 0),
                ("resnet8_small", resnet, "unstructured:0.75", None, 0)]
        print(f"\nIcarus at --pe {a.pe}, 4 samples each:\n")
        print("| model | prune | share | encode | weight ROM bits | predicted | measured "
              "| bit-exact |")
        print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |")
        for name, model, prune, cal, share in runs:
            for enc in ("raw", "auto"):
                out = work / f"{name}-{prune}-{share}-{enc}"
                opts = pipeline.Options(pe=pe, prune=prune, share_bits=share, calib=cal,
                                        samples=4, encode=enc)
                rep = pipeline.compile_model(model, out, opts, force=True)
                res = simulate.simulate(out)
                fmts = "/".join(sorted({ly["encoding"] for ly in rep["layers"]}))
                print(f"| {name} | {prune or '-'} | {share or '-'} | {enc}: {fmts} | "
                      f"{rep['total']['weight_rom_bits']} | {res['predicted_cycles']} | "
                      f"{res['cycles']} | {res['passed'] and res['mismatches'] == 0} |")


if __name__ == "__main__":
    main()
