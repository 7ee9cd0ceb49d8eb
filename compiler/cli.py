"""The `edgehls` command line: compile, simulate, inspect.

Every error the user can cause prints one line, `error: ...`, and exits with status 2; a
simulation that finds a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import NoReturn

import edgehls
from edgehls import budget, encode, frontend, pipeline, synth
from edgehls.errors import EdgeHLSError
from edgehls.passes import share

PE_RE = re.compile(r"^(\d+)x(\d+)$")
MAX_PE = 64


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's contract for a malformed option: one `error:` line, status 2
    (argparse's own prints the usage first, then `edgehls compile: error: ...`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def pe_size(text: str) -> tuple[int, int]:
    m = PE_RE.match(text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ROWSxCOLS: write the array size like 16x16 or 8x4")
    r, c = int(m.group(1)), int(m.group(2))
    if not (1 <= r <= MAX_PE and 1 <= c <= MAX_PE):
        raise argparse.ArgumentTypeError(
            f"{text!r}: rows and columns must each be 1..{MAX_PE}")
    return r, c


def bits(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bits") from None


def positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return v


def non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return v


def memory_size(text: str) -> int:
    try:
        return budget.parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def megahertz(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive clock frequency in MHz, "
                                         "e.g. 100")
    return v


def input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=D0,D1,...: e.g. --input-shape input=1,64")
    return name, shape


def value_range(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition(",")
    try:
        r = (float(lo), float(hi))
    except ValueError:
        r = (1.0, 0.0)
    if not sep or not r[0] < r[1] or not all(map(math.isfinite, r)):
        raise argparse.ArgumentTypeError(f"{text!r} is not LO,HI with LO < HI: e.g. -1,1")
    return r


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="edgehls", description="Compile an ONNX network into Verilog for a systolic MAC "
        "array, with a bit-exact golden model and a cocotb bench.")
    p.add_argument("--version", action="version", version=f"edgehls {edgehls.__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="compile MODEL.onnx into a design directory",
                       description="Compile MODEL.onnx into DIR: rtl/, rom/, manifest.json, "
                       "golden/, report.md, report.json, filelist.f, Makefile, synth/.")
    c.add_argument("model", type=Path, help="the ONNX model")
    c.add_argument("--pe", type=pe_size, required=True, metavar="RxC",
                   help="systolic array rows x columns, e.g. 16x16")
    c.add_argument("-o", "--output", type=Path, default=Path("build"), metavar="DIR",
                   help="output directory (default: build/)")
    c.add_argument("--wbits", type=bits, default=8, help="weight bits, 2..16 (default 8)")
    c.add_argument("--abits", type=bits, default=8, help="activation bits, 2..16 (default 8)")
    c.add_argument("--calib", type=Path, metavar="DATA.npz",
                   help="calibration inputs: array x_calib (or x)")
    c.add_argument("--eval", type=Path, metavar="DATA.npz",
                   help="evaluation data: x_test and y_test (or x and y); reports accuracy")
    c.add_argument("--samples", type=positive, default=8,
                   help="golden samples written to golden/ (default 8)")
    c.add_argument("--seed", type=non_negative, default=0,
                   help="seed for random inputs (default 0)")
    c.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME=D0,D1,..",
                   help="fix a dynamic input shape (repeatable)")
    c.add_argument("--prune", metavar="MODE:SPARSITY",
                   help="magnitude pruning: unstructured (per layer), global or tile (whole "
                   "RxC tiles of --pe), sparsity in [0, 1), e.g. tile:0.5")
    c.add_argument("--share-bits", type=bits, metavar="B",
                   help="weight sharing: 2**B shared values per layer, B in 2..8")
    c.add_argument("--compress-config", type=Path, metavar="FILE",
                   help="JSON or YAML: {prune: SPEC, share_bits: B, layers: {NAME: {prune: "
                   "SPEC}}}; layer names as `inspect --after canonicalize` prints them")
    c.add_argument("--calibrate", default="minmax", metavar="METHOD",
                   help="activation ranges from --calib data: minmax (default), percentile[:P] "
                   "(P-th percentile of |x|, default 99.99) or mse (clipping range with the "
                   "least quantization error; also searches each weight channel's)")
    c.add_argument("--scale", default="pow2", choices=("pow2", "mult"),
                   help="pow2: power-of-two scales, pure fixed point (default); mult: real "
                   "scales, requantized by a 16-bit multiplier and a shift")
    c.add_argument("--per-tensor", action="store_true",
                   help="one weight scale per layer instead of one per output channel")
    c.add_argument("--precision", type=Path, metavar="FILE",
                   help="mixed precision, JSON or YAML: {layers: {NAME_OR_GLOB: {wbits: B, "
                   "abits: B}}}; a layer's abits are its output's; first match wins")
    c.add_argument("--input-range", type=value_range, default=(-1.0, 1.0), metavar="LO,HI",
                   help="range of the random inputs used when there is no --calib "
                   "(default -1,1)")
    c.add_argument("--encode", choices=encode.OPTIONS, default="auto",
                   help="sparsity encoding of the weight ROM: auto (per layer the cheapest of "
                   "raw, bitmap and bitmap-z, default; the plain ROM unless that saves >= 25%% "
                   "of its bits, as the decoder costs logic and Fmax), or one format for every "
                   "layer: raw, "
                   "bitmap (mask + non-zeros), bitmap-z (plus a 1-bit empty-row flag); decoded "
                   "at one row per cycle, cycles unchanged. Encoded, each layer's weights are "
                   "stored at its own --precision width; raw is the plain ROM, every layer at "
                   "the widest width")
    c.add_argument("--no-pack-input", action="store_true",
                   help="do not pack a first convolution's kernel taps into array rows (by "
                   "default a convolution on a model input with few channels stores that input "
                   "flat and zero padded along w, so a tile holds R (kw, channel) rows instead "
                   "of cin); for A/B comparison")
    c.add_argument("--acc-bits", type=bits, metavar="N",
                   help="accumulator width (default: the widest layer's need, wbits + abits + "
                   "ceil(log2 K) + 1, so nothing overflows); narrower than that is an error")
    c.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="on-chip memory budget: bits, or with a unit (Kb, Mb, KB, MB), e.g. "
                   "2Mb; a design that needs more (weight ROM, activations, accumulators, "
                   "post-processing ROM; report.json memory) is an error")
    c.add_argument("--max-bram", type=positive, metavar="N",
                   help="budget in 18 Kb block RAMs (as report.json memory.bram18 counts them)")
    c.add_argument("--clock-mhz", type=megahertz, default=100.0, metavar="F",
                   help="clock constraint written to vivado/ and quartus/ (default 100)")
    c.add_argument("--force", action="store_true", help="overwrite a non-empty output DIR")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    s = sub.add_parser("simulate", help="simulate a compiled design in Icarus Verilog",
                       description="Run the golden samples of DIR through the RTL in Icarus "
                       "Verilog (cocotb bench, random valid gaps and back-pressure); write "
                       "DIR/sim/result.json. Exit status 1 on any mismatch.")
    s.add_argument("design", type=Path, metavar="DIR", help="a directory made by compile")
    s.add_argument("--seed", type=int, default=1, help="seed of gaps/back-pressure")
    s.add_argument("--samples", type=positive, help="simulate only the first N samples")
    s.add_argument("--no-gaps", action="store_true", help="stream at full rate")
    s.add_argument("--waves", action="store_true", help="dump waveforms")

    synth.add_parser(sub)

    i = sub.add_parser("inspect", help="print the IR after the frontend or a pass",
                       description="Print the IR (nodes, ops, shapes, parameters) of MODEL.")
    i.add_argument("model", type=Path)
    i.add_argument("--after", default="quantize", metavar="PASS",
                   help="frontend, canonicalize or quantize (default quantize)")
    i.add_argument("--wbits", type=bits, default=8)
    i.add_argument("--abits", type=bits, default=8)
    i.add_argument("--calib", type=Path, metavar="DATA.npz")
    i.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME=D0,..")
    return p


def options(a: argparse.Namespace) -> pipeline.Options:
    calib = pipeline.load_npz(a.calib, ("x_calib",))["x_calib"] if a.calib else None
    ev = pipeline.load_npz(a.eval, ("x_test", "y_test")) if getattr(a, "eval", None) else {}
    if getattr(a, "share_bits", None) is not None:
        share.check_bits(a.share_bits)  # 0 is "off" in Options, an error on the command line
    config = getattr(a, "compress_config", None)
    return pipeline.Options(
        pe=getattr(a, "pe", (8, 8)), wbits=a.wbits, abits=a.abits,
        samples=getattr(a, "samples", 8), seed=getattr(a, "seed", 0), calib=calib,
        eval_x=ev.get("x_test"), eval_y=ev.get("y_test"),
        input_shape=dict(a.input_shape) if a.input_shape else None,
        clock_mhz=getattr(a, "clock_mhz", 100.0), prune=getattr(a, "prune", None),
        share_bits=getattr(a, "share_bits", None) or 0,
        compress=pipeline.load_config(config) if config else None,
        calibrate=getattr(a, "calibrate", "minmax"), scale=getattr(a, "scale", "pow2"),
        per_channel=not getattr(a, "per_tensor", False),
        precision=(pipeline.load_config(a.precision, "--precision", pipeline.PRECISION_EXAMPLE)
                   if getattr(a, "precision", None) else None),
        input_range=getattr(a, "input_range", (-1.0, 1.0)),
        encode=getattr(a, "encode", "auto"),
        pack_input=not getattr(a, "no_pack_input", False),
        acc_bits=getattr(a, "acc_bits", None), max_memory=getattr(a, "max_memory", None),
        max_bram=getattr(a, "max_bram", None))


def cmd_compile(a: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rep = pipeline.compile_model(a.model, a.output, options(a), force=a.force)
    if a.quiet:
        return 0
    if a.calib is None and rep["quantization"]["scale"] != "imported":
        print("warning: no --calib data: activation ranges were calibrated on random inputs "
              f"uniform in [{a.input_range[0]:g}, {a.input_range[1]:g}]; accuracy on real data "
              "may suffer (report.md says so too)", file=sys.stderr)
    t = rep["total"]
    print(f"compiled {a.model} -> {a.output}/ in {time.perf_counter() - t0:.2f} s")
    print(f"  {len(rep['layers'])} layers, {t['macs']} MACs, {t['tiles']} tiles on a "
          f"{rep['pe'][0]}x{rep['pe'][1]} array; predicted {t['predicted_cycles']} cycles "
          f"({t['utilization']:.1%} utilization)")
    print(f"  weights: {t['weight_bits_raw']} bits float32 -> {t['weight_bits_stored']} bits "
          f"in rom/ (w{rep['wbits']}/a{rep['abits']})")
    if rep["accuracy"]:
        acc = rep["accuracy"]
        print(f"  accuracy on {acc['samples']} samples: float {acc['float']:.2%}, "
              f"quantized {acc['quantized']:.2%}"
              + (f", compressed {acc['compressed']:.2%}" if "compressed" in acc else "")
              + f" (top-1 agreement {acc['agreement']:.2%})")
    for note in rep["notes"]:
        print(f"  note: {note}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from edgehls import simulate

    t0 = time.perf_counter()
    r = simulate.simulate(a.design, seed=a.seed, samples=a.samples,
                          gaps=0.0 if a.no_gaps else 0.3, waves=a.waves)
    for s in r["per_sample"]:
        ran = (f"{s['cycles']} run cycles ({s['total_cycles']} with I/O)"
               if s.get("cycles") is not None else "hung")
        print(f"sample {s['sample']:3d}: {'PASS' if s['passed'] else 'FAIL'}  {ran}"
              + (f", {s['mismatches']} mismatches" if s["mismatches"] else "")
              + ("".join(f", {e}" for e in s["errors"])))
    exact = r["samples"] - sum(1 for s in r["per_sample"] if s["mismatches"] or s["errors"])
    measured = (f"cycles measured {r['cycles']}" if r.get("cycles") is not None
                else "no cycles measured (the design hung)")
    print(f"RTL vs golden: {exact}/{r['samples']} bit-exact; {measured}, "
          f"predicted {r['predicted_cycles']} ({'match' if r['cycles_match'] else 'DIFFER'}); "
          f"{time.perf_counter() - t0:.1f} s in Icarus")
    if not r.get("layer_cycles_match", True):
        names = simulate.check_design(a.design)["schedule"].get("layer_names", [])
        diff = [f"{names[i] if i < len(names) else i}: {m} measured, {p} predicted"
                for i, (m, p) in enumerate(zip(r["layer_cycles"] or [],
                                               r["layer_cycles_predicted"], strict=False))
                if m != p]
        print("per-layer cycles differ: " + "; ".join(diff))
    print(f"wrote {a.design}/sim/result.json")
    return 0 if r["passed"] else 1


def cmd_inspect(a: argparse.Namespace) -> int:
    opts = options(a)
    g = frontend.load(a.model, opts.input_shape)
    print(pipeline.run_passes(g, pipeline.passes(opts), after=a.after).summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"compile": cmd_compile, "simulate": cmd_simulate, "synth": synth.main,
                "inspect": cmd_inspect}[a.command](a)
    except EdgeHLSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
