"""The whole flow on one screen: ONNX -> IR -> passes -> tiler -> codegen -> build directory."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehls import codegen, frontend, golden, ir, numerics, report, romgen, tiler
from edgehls.errors import DataError, OptionError, OutputError, PassError
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

log = logging.getLogger(__name__)

Pass = Callable[[ir.Graph], ir.Graph]


@dataclass(frozen=True)
class Options:
    pe: tuple[int, int] = (8, 8)
    wbits: int = 8
    abits: int = 8
    samples: int = 8
    seed: int = 0
    calib: np.ndarray | None = field(default=None, compare=False, repr=False)
    eval_x: np.ndarray | None = field(default=None, compare=False, repr=False)
    eval_y: np.ndarray | None = field(default=None, compare=False, repr=False)
    input_shape: dict[str, tuple[int, ...]] | None = None


def passes(opts: Options) -> list[Pass]:
    return [Canonicalize(),
            Quantize(wbits=opts.wbits, abits=opts.abits, calib=opts.calib, seed=opts.seed)]


def pass_name(p: Pass) -> str:
    return type(p).__name__.lower()


def run_passes(g: ir.Graph, pipeline: list[Pass], after: str | None = None) -> ir.Graph:
    """Run the passes in order (verifying the IR after each); stop after the pass ``after``."""
    names = [pass_name(p) for p in pipeline]
    if after is not None and after not in names + ["frontend"]:
        raise OptionError(f"--after {after!r}: no such pass; passes: frontend, "
                          + ", ".join(names))
    if after == "frontend":
        return g
    for i, p in enumerate(pipeline):
        try:
            g = p(g)
            g.verify()
        except PassError as e:
            raise PassError(f"pass {names[i]} (after {', '.join(['frontend'] + names[:i])}): "
                            f"{e}") from e
        log.debug("after %s:\n%s", names[i], g.summary())
        if names[i] == after:
            break
    return g


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The numeric arrays ``keys`` of ``path`` (or their prefixes: x_calib -> x)."""
    if not path.is_file():
        raise DataError(f"cannot read {path}: no such file")
    if not zipfile.is_zipfile(path):  # np.load would return a bare .npy array or try pickle
        raise DataError(f"{path} is not an .npz archive: write it with numpy.savez")
    try:
        with np.load(path) as data:
            for group in (keys, tuple(k.split("_")[0] for k in keys)):
                if all(k in data for k in group):
                    arrays = {k: np.asarray(data[g]) for k, g in zip(keys, group, strict=True)}
                    break
            else:
                arrays, found = None, ", ".join(sorted(data.files))
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if arrays is not None:
        for k, a in arrays.items():
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
                raise DataError(f"{path}: array {k} has dtype {a.dtype}; expected numbers")
        return arrays
    raise DataError(f"{path} has arrays [{found}]; expected {' and '.join(keys)} "
                    f"(or {' and '.join(k.split('_')[0] for k in keys)})")


#: every top-level entry compile writes into the output directory
OUTPUTS = ("rtl", "rom", "golden", "sim", "synth", "manifest.json", "report.json", "report.md",
           "filelist.f", "Makefile")


def prepare_output(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise OutputError(f"output directory {out} is not empty; pass --force to overwrite")
        # --force replaces what compile writes and nothing else: `-o . --force` must not
        # delete a user's other files
        for name in OUTPUTS:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output directory {out}: {e.strerror}") from e


def golden_samples(g: ir.Graph, opts: Options) -> np.ndarray:
    shape = g.tensor(g.inputs[0]).shape
    if opts.calib is not None:
        data = golden.as_samples(g, opts.calib)[: opts.samples]
        if len(data) >= opts.samples:
            return data.astype(np.float32)
    rng = np.random.default_rng(opts.seed)
    return rng.uniform(-1.0, 1.0, size=(opts.samples, *shape)).astype(np.float32)


def check_eval(opts: Options) -> None:
    """Evaluation data needs one label per sample."""
    if opts.eval_x is None or opts.eval_y is None:
        return
    n_x, n_y = len(np.atleast_1d(opts.eval_x)), np.asarray(opts.eval_y).size
    if n_x != n_y:
        raise DataError(f"evaluation data has {n_x} samples but {n_y} labels: y_test must "
                        "hold one class index per sample")


def compile_model(model: Path, out: Path, opts: Options, force: bool = False) -> dict:
    """Compile ``model`` into ``out``; return the report dictionary."""
    r, c = opts.pe
    numerics.check_bits("--wbits", opts.wbits)
    numerics.check_bits("--abits", opts.abits)
    g_float = frontend.load(model, opts.input_shape)
    g_canon = run_passes(g_float, passes(opts)[:1])
    g = run_passes(g_canon, passes(opts)[1:])
    sched = tiler.schedule(g, r, c)
    hw = romgen.hw_params(g, sched)
    x = golden_samples(g, opts)
    x_q = golden.quantize_input(g, x)
    y_q = golden.run_int_samples(g, x_q)
    check_eval(opts)
    accuracy = report.accuracy(g_float, g, opts.eval_x, opts.eval_y)  # bad data: write nothing
    prepare_output(out, force)
    files = codegen.write(g, sched, hw, out, model.name)
    (out / "golden").mkdir()
    for name, arr in (("inputs", x), ("inputs_q", x_q), ("outputs_q", y_q),
                      ("outputs", golden.dequantize_output(g, y_q)),
                      ("outputs_float", golden.run_float_samples(g_canon, x))):
        np.save(out / "golden" / f"{name}.npy", arr)
    rep = report.build(g, sched, hw, out, model.name, opts, accuracy)
    manifest = report.manifest(g, sched, hw, model.name, opts, files, len(x))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "report.json").write_text(json.dumps(rep, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(report.markdown(rep))
    return rep
