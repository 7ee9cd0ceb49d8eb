"""The whole flow on one screen: ONNX -> IR -> passes -> tiler -> codegen -> build directory."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgehls import budget, codegen, encode, frontend, golden, ir, numerics, report, romgen, tiler
from edgehls.errors import DataError, OptionError, OutputError, PassError
from edgehls.passes import calibrate, prune, share
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.prune import Prune
from edgehls.passes.quantize import Quantize
from edgehls.passes.share import Share

log = logging.getLogger(__name__)

Pass = Callable[[ir.Graph], ir.Graph]
T = TypeVar("T")


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
    clock_mhz: float = 100.0
    prune: str | None = None  # "MODE:SPARSITY" (edgehls.passes.prune)
    share_bits: int = 0  # 0: no weight sharing
    compress: dict | None = None  # the --compress-config file, parsed
    calibrate: str = "minmax"  # --calibrate METHOD (edgehls.passes.calibrate)
    scale: str = "pow2"  # --scale pow2|mult
    per_channel: bool = True  # weights scaled per output channel (else per tensor)
    precision: dict | None = None  # the --precision file, parsed
    input_range: tuple[float, float] = (-1.0, 1.0)  # random calibration inputs without --calib
    encode: str = "auto"  # sparsity encoding of the weight ROM (edgehls.encode.OPTIONS)
    pack_input: bool = True  # pack a first convolution's taps into rows (tiler.packed_layers)
    acc_bits: int | None = None  # --acc-bits: the accumulator width (None: what the model needs)
    max_memory: int | None = None  # --max-memory: on-chip memory budget in bits
    max_bram: int | None = None  # --max-bram: budget in 18 Kb block RAMs


def passes(opts: Options) -> list[Pass]:
    c = compression(opts)
    mode, sparsity = c.prune or ("unstructured", 0.0)
    return [Canonicalize(),
            *([Prune(mode, sparsity, opts.pe, c.layers)] if c.prune or c.layers else []),
            Quantize(wbits=opts.wbits, abits=opts.abits, per_channel=opts.per_channel,
                     calib=opts.calib, seed=opts.seed,
                     method=calibrate.parse(opts.calibrate), scale=opts.scale,
                     precision=precision_rules(opts.precision), input_range=opts.input_range),
            *([Share(c.share_bits, opts.seed)] if c.share_bits else [])]


# --- compression settings: flags and --compress-config ----------------------------------------

CONFIG_KEYS = ("prune", "share_bits", "layers")


@dataclass(frozen=True)
class Compression:
    """The compression to apply, flags and config merged: prune (mode, sparsity) or None,
    share bits (0: none) and per-layer prune overrides (layer, mode, sparsity)."""

    prune: tuple[str, float] | None = None
    share_bits: int = 0
    layers: tuple[tuple[str, str, float], ...] = ()


def compression(opts: Options) -> Compression:
    """Merge --prune/--share-bits with the config; a setting given in both must agree."""
    cfg = opts.compress or {}
    where = "--compress-config"
    if not isinstance(cfg, dict) or set(cfg) - set(CONFIG_KEYS):
        extra = sorted(map(str, set(cfg) - set(CONFIG_KEYS))) if isinstance(cfg, dict) else []
        raise OptionError(f"{where}: unknown key(s) {', '.join(extra) or repr(cfg)}; a config "
                          f"has keys {', '.join(CONFIG_KEYS)}")
    spec = prune.parse_spec(opts.prune) if opts.prune is not None else None
    if "prune" in cfg:
        spec = _agree(spec, prune.parse_spec(cfg["prune"], f"{where} prune"), "prune",
                      opts.prune, cfg["prune"])
    bits = share.check_bits(opts.share_bits) if opts.share_bits else None
    if "share_bits" in cfg:
        bits = _agree(bits, share.check_bits(cfg["share_bits"], f"{where} share_bits"),
                      "share_bits", opts.share_bits, cfg["share_bits"])
    layers = cfg.get("layers") or {}
    if not isinstance(layers, dict):
        raise OptionError(f"{where}: layers must map layer names to {{prune: MODE:SPARSITY}}")
    overrides = []
    for name, entry in layers.items():
        if not isinstance(entry, dict) or set(entry) != {"prune"}:
            raise OptionError(f"{where}: layer {name!r} may set only prune (e.g. {{prune: "
                              "unstructured:0.9}); share_bits is global because the hardware "
                              "stores one index width")
        mode, s = prune.parse_spec(entry["prune"], f"{where} layer {name!r}")
        prune.check(mode, s, f"{where} layer {name!r}", prune.LAYER_MODES)
        overrides.append((str(name), mode, s))
    return Compression(spec, bits or 0, tuple(overrides))


def _agree(flag: T | None, config: T, key: str, flag_text: object, config_text: object) -> T:
    if flag is not None and flag != config:
        raise OptionError(f"--{key.replace('_', '-')} {flag_text} conflicts with {key}: "
                          f"{config_text} in --compress-config: set it in one place")
    return config


def load_config(path: Path, flag: str = "--compress-config",
                example: str = '{"prune": "tile:0.5", "share_bits": 4, "layers": {...}}'
                ) -> dict:
    """Read a config FILE: YAML for a .yaml/.yml suffix, else JSON; a mapping."""
    import yaml  # only compiles with a config need it

    try:
        text = path.read_text()
        cfg = (yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml")
               else json.loads(text))
    except OSError as e:
        raise OptionError(f"cannot read {flag} {path}: {e.strerror}") from e
    except (ValueError, yaml.YAMLError) as e:
        why = " ".join(str(e).split())  # parser messages span lines; the CLI prints one
        raise OptionError(f"{flag} {path} is not valid "
                          f"{'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                          f"{why}") from e
    if not isinstance(cfg, dict):
        raise OptionError(f"{flag} {path}: expected a mapping like {example}")
    return cfg


PRECISION_EXAMPLE = '{"layers": {"conv1": {"wbits": 8, "abits": 8}, "conv*": {"wbits": 4}}}'


def precision_rules(cfg: dict | None) -> tuple[tuple[str, int | None, int | None], ...]:
    """The --precision file -> (pattern, wbits, abits) rules in file order. The file maps layer
    names or glob patterns to {wbits, abits} (either may be left out), at the top level or
    under "layers"."""
    if not cfg:
        return ()
    where = "--precision"
    layers = cfg["layers"] if set(cfg) == {"layers"} else cfg
    if not isinstance(layers, dict):
        raise OptionError(f"{where}: expected a mapping like {PRECISION_EXAMPLE}")
    rules = []
    for pattern, entry in layers.items():
        if not isinstance(entry, dict) or not entry or set(entry) - {"wbits", "abits"}:
            raise OptionError(f"{where}: layer {pattern!r} must map to {{wbits: B, abits: B}} "
                              f"(either may be left out), got {entry!r}")
        vals = []
        for key in ("wbits", "abits"):
            v = entry.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise OptionError(f"{where}: layer {pattern!r} {key} {v!r} is not a whole "
                                  "number of bits")
            vals.append(v)
        rules.append((str(pattern), vals[0], vals[1]))
    return tuple(rules)


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
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
                raise DataError(f"{path}: array {k} has dtype {a.dtype}; expected numbers")
        return arrays
    raise DataError(f"{path} has arrays [{found}]; expected {' and '.join(keys)} "
                    f"(or {' and '.join(k.split('_')[0] for k in keys)})")


#: every top-level entry compile writes into the output directory
OUTPUTS = ("rtl", "rom", "golden", "sim", "synth", "manifest.json", "report.json", "report.md",
           "filelist.f", "Makefile", "vivado", "quartus", "edgehls.core")


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
        data = golden.model_samples(g, opts.calib)[: opts.samples]
        if len(data) >= opts.samples:
            return data.astype(np.float32)
    rng = np.random.default_rng(opts.seed)
    return rng.uniform(*opts.input_range, size=(opts.samples, *shape)).astype(np.float32)


def check_eval(opts: Options, classes: int | None = None) -> None:
    """Evaluation data needs one label per sample, each a class index below ``classes`` (the
    model's outputs per sample)."""
    if opts.eval_x is None or opts.eval_y is None:
        return
    y = np.asarray(opts.eval_y).astype(np.float64)
    n_x, n_y = len(np.atleast_1d(opts.eval_x)), y.size
    if n_x != n_y:
        raise DataError(f"evaluation data has {n_x} samples but {n_y} labels: y_test must "
                        "hold one class index per sample")
    bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0)
    if classes is not None:
        bad |= y >= classes
    if bad.any():
        first = f"{y.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]:g}"
        limit = f" 0..{classes - 1} (the model has {classes} outputs)" if classes else ""
        raise DataError(f"evaluation label {first} is not a class index{limit}: y_test must "
                        "hold one whole-number class index per sample")


def evaluate(g_float: ir.Graph, g_canon: ir.Graph, g: ir.Graph, pipe: list[Pass],
             opts: Options) -> dict | None:
    """Top-1 accuracy of the float and the integer model; with compression, "quantized" is
    the uncompressed integer model (the pipeline without Prune and Share), "compressed" the
    compiled one, and "agreement" compares the compiled model with float."""
    if not any(isinstance(p, Prune | Share) for p in pipe):
        return report.accuracy(g_float, g, opts.eval_x, opts.eval_y)
    if opts.eval_x is None or opts.eval_y is None:
        return None
    plain = run_passes(g_canon, [p for p in pipe[1:] if not isinstance(p, Prune | Share)])
    acc = report.accuracy(g_float, plain, opts.eval_x, opts.eval_y)
    comp = report.accuracy(g_float, g, opts.eval_x, opts.eval_y)
    return {**acc, "compressed": comp["quantized"], "agreement": comp["agreement"]}


def compile_model(model: Path, out: Path, opts: Options, force: bool = False) -> dict:
    """Compile ``model`` into ``out``; return the report dictionary."""
    r, c = opts.pe
    numerics.check_bits("--wbits", opts.wbits)
    numerics.check_bits("--abits", opts.abits)
    budget.check_acc_bits(opts.acc_bits)
    pipe = passes(opts)  # bad compression settings fail before the model is read
    encode.check(opts.encode)
    g_float = frontend.load(model, opts.input_shape)
    g_canon = run_passes(g_float, pipe[:1])
    g = run_passes(g_canon, pipe[1:])
    sched = tiler.schedule(g, r, c, opts.pack_input)
    hw = budget.accumulators(g, romgen.hw_params(g, sched, opts.encode), opts.acc_bits)
    budget.check(sched, hw, opts.max_memory, opts.max_bram)  # too big: write nothing
    x = golden_samples(g, opts)
    x_q = golden.quantize_input(g, x)
    y_q = golden.run_int_samples(g, x_q)
    check_eval(opts, g.tensor(g.outputs[0]).size)
    accuracy = evaluate(g_float, g_canon, g, pipe, opts)  # bad data: write nothing
    prepare_output(out, force)
    files = codegen.write(g, sched, hw, out, model.name, opts.clock_mhz)
    (out / "golden").mkdir()
    # in the ONNX model's shapes (not the IR's): what onnxruntime takes and gives
    x_in, y_out = g.inputs[0], g.outputs[0]
    for name, arr in (("inputs", golden.to_model(g, x_in, x)),
                      ("inputs_q", golden.to_model(g, x_in, x_q)),
                      ("outputs_q", golden.to_model(g, y_out, y_q)),
                      ("outputs", golden.to_model(g, y_out, golden.dequantize_output(g, y_q))),
                      ("outputs_float", golden.to_model(
                          g_canon, g_canon.outputs[0], golden.run_float_samples(g_canon, x)))):
        np.save(out / "golden" / f"{name}.npy", arr)
    rep = report.build(g, sched, hw, out, model.name, opts, accuracy)
    manifest = report.manifest(g, sched, hw, model.name, opts, files, len(x))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "report.json").write_text(json.dumps(rep, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(report.markdown(rep))
    return rep
