"""Reports and the manifest: what was built, what it costs, and how to drive it.

report.json / report.md: per layer shape, MACs, tiles, predicted cycles, utilization, weight
bits; totals; accuracy when evaluation data is given. manifest.json: the interface, numerics,
schedule summary and files, read by the generic cocotb bench and by users' scripts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

import edgehls
from edgehls import estimate, golden, ir, numerics, romgen
from edgehls.romgen import HwParams
from edgehls.tiler import Schedule, dense_layers, drain


def accuracy(g_float: ir.Graph, g_q: ir.Graph, x: np.ndarray | None, y: np.ndarray | None
             ) -> dict[str, Any] | None:
    """Float and integer top-1 accuracy on (x, y), and their top-1 agreement."""
    if x is None or y is None:
        return None
    xs = golden.as_samples(g_float, x)
    f = golden.run_float_samples(g_float, xs).reshape(len(xs), -1)
    xq = golden.quantize_input(g_q, golden.model_samples(g_q, xs))
    q = golden.run_int_samples(g_q, xq).reshape(len(xs), -1)
    labels = np.asarray(y).reshape(-1)
    pf, pq = f.argmax(axis=1), q.argmax(axis=1)
    return {"samples": int(len(xs)), "float": float((pf == labels).mean()),
            "quantized": float((pq == labels).mean()), "agreement": float((pf == pq).mean())}


def stream_order(g: ir.Graph, t: ir.Tensor) -> str:
    """How a graph input or output streams: a 4-D map NHWC (channels fastest), as the
    convolution layers lay it out; a tensor a Dense layer reads or writes, row-major (the Dense
    sees it as its [M, K] rows whatever its ONNX shape)."""
    if len(t.shape) != 4:
        return "row-major"
    users = [g.node(n) for n in g.consumers(t.name)] + [g.producer(t.name)]
    dense = [n for n in users if n is not None and isinstance(n.op, ir.QDense)]
    return "row-major" if dense else "NHWC"


def stream_axes(g: ir.Graph, t: ir.Tensor) -> tuple[list[int], list[int]]:
    """How a sample in the model's shape (golden/, ``Graph.model_io``) streams:
    ``sample.reshape(stream_shape).transpose(stream_perm).reshape(-1)`` is the beat order (the
    IR tensor in ``stream_order``: NHWC for a map, else row-major)."""
    m = g.model_tensor(t.name)
    to_model = m.perm or tuple(range(len(t.shape)))  # model = ir.transpose(to_model).reshape
    back = [int(i) for i in np.argsort(to_model)]
    order = (0, 2, 3, 1) if stream_order(g, t) == "NHWC" else range(len(t.shape))
    return [int(t.shape[i]) for i in to_model], [back[i] for i in order]


def io_entry(g: ir.Graph, t: ir.Tensor, logits: bool = False) -> dict[str, Any]:
    width, signed = t.q.stream(signed_only=t.name in g.inputs)
    model = g.model_tensor(t.name)  # the ONNX model's name and shape (golden/ has them too)
    stream_shape, stream_perm = stream_axes(g, t)
    entry = {"name": model.name, "shape": list(model.shape), "dtype": t.q.dtype, "bits": t.q.bits,
             "signed": t.q.signed, "frac": t.q.frac, "scale": t.q.scale, "zero_point": 0,
             # an imported tensor's ONNX zero point: the stream carries q_onnx - onnx_zero_point
             "onnx_zero_point": t.q.zero_point, "lo": t.q.lo, "hi": t.q.hi,
             "stream_bits": width, "stream_signed": signed,
             "tdata_bits": 8 * -(-width // 8), "stream_order": stream_order(g, t),
             "stream_shape": stream_shape, "stream_perm": stream_perm}
    if logits:
        entry["logits"] = True
    return entry


def build(g: ir.Graph, s: Schedule, p: HwParams, out: Path, source: str, opts: Any,
          acc: dict | None) -> dict[str, Any]:
    rc = s.R * s.C
    layers = []
    cycles = s.layer_cycles()
    stream = romgen.stream_plan(g, s, p)
    encoded = list(stream.layer_bits)
    if stream.encoded:  # the stream's last word is padded; its padding is the last layer's
        encoded[-1] += len(stream.words) * stream.width - sum(encoded)
    element = romgen.stream_widths(s, p)  # bits a stored weight (or index) takes in the ROM
    for plan, node, cyc in zip(s.layers, dense_layers(g), cycles, strict=True):
        # no weight tensor: identity (or power-of-two) tiles the tiler makes
        pool = isinstance(node.op, ir.QMaxPool | ir.QAdd | ir.QConcat)
        w = np.zeros(0, np.int64) if pool else g.const(node, "weight")
        wbits = p.WW if pool else node.op.wbits
        live = plan.tiles - plan.skipped_tiles
        codebook = (1 << p.SHARE) * p.WW if p.SHARE else 0
        g_ = plan.geom
        layers.append({
            "name": plan.name, "op": plan.op.removeprefix("Q"), "kind": layer_kind(node, plan),
            "relu": bool(getattr(node.op, "relu", False)), "M": plan.M, "K": plan.K,
            "N": plan.N, "macs": plan.macs, "tiles": plan.tiles,
            "skipped_tiles": plan.skipped_tiles, "predicted_cycles": cyc,
            "input_map": [g_.ih, g_.iw, g_.cin], "output_pixels": plan.M,
            "compute_bound_cycles": -(-plan.macs // rc),
            "memory_bound_cycles": live * s.R,
            "utilization": plan.macs / (cyc * rc) if cyc else 0.0,
            "sparsity": float((w == 0).mean()) if w.size else 0.0,
            "distinct_weights": int(np.unique(w).size),
            "weight_bits_raw": int(w.size) * 32,
            "weight_bits_quantized": int(w.size) * wbits,
            "weight_bits_pruned": live * rc * wbits,
            # the raw ROM word holds every layer's weights at the widest layer's width
            "weight_bits_unencoded": live * rc * (p.SHARE or p.WW) + codebook,
            "weight_bits_stored": encoded[plan.index] + codebook,
            "encoding": stream.formats[plan.index],
            # an encoded stream stores a layer at its own width; the plain ROM at the widest
            "element_bits": element[plan.index],
            "share_bits": p.SHARE, "acc_bits": getattr(node.op, "acc_bits", p.ACC_W),
            "wbits": wbits, "abits": g.tensor(node.outputs[0]).q.bits,
            # its input stored flat, zero padded along "w" or "h" (W-major): (kw, c) rows of a
            # kernel row or (kh, c) rows of a kernel column packed into tiles; "": not packed
            "packed": g_.packed})
    widths = {"schedule.hex": p.SW, "weights.hex": p.ROM_W, "codebook.hex": p.WW,
              "layers.hex": p.LTW, "lut.hex": p.AW}
    rom_bits = {f.name: len(f.read_text().split()) * widths.get(f.name, p.PW)
                for f in sorted((out / "rom").iterdir())}
    total = {k: sum(layer[k] for layer in layers) for k in
             ("macs", "predicted_cycles", "weight_bits_raw", "weight_bits_quantized",
              "weight_bits_pruned", "weight_bits_unencoded", "weight_bits_stored", "tiles",
              "skipped_tiles")}
    total["predicted_cycles"] = s.total_cycles
    total["utilization"] = total["macs"] / (s.total_cycles * rc) if s.total_cycles else 0.0
    total["rom_bits"] = rom_bits
    total["weight_rom_bits"] = rom_bits["weights.hex"] + rom_bits.get("codebook.hex", 0)
    total["compression"] = (total["weight_bits_raw"] / total["weight_bits_stored"]
                            if total["weight_bits_stored"] else 0.0)
    return {"generator": f"edgehls {edgehls.__version__}", "source": source,
            "pe": [s.R, s.C],
            # an imported model's widths are its own: the widest layer's
            "wbits": opts.wbits if g.imported is None else p.WW,
            "abits": opts.abits if g.imported is None else p.AW - 1,
            "quantization": quantization(g, opts), "encode": getattr(opts, "encode", "raw"),
            "pack_input": s.pack_input,
            "layers": layers, "total": total, "accuracy": acc, "notes": list(g.notes),
            "estimate": estimate.report_entry(dataclasses.asdict(p)),
            "memory": memory(s, p)}


def quantization(g: ir.Graph, opts: Any) -> dict[str, Any]:
    """How the model was quantized: scales, calibration and whether per-layer widths differ."""
    widths = {(n.op.wbits, g.tensor(n.outputs[0]).q.bits) for n in dense_layers(g)
              if hasattr(n.op, "wbits")}
    if g.imported is not None:
        return {"scale": "imported", "calibration": f"the model's own ({g.imported.source})",
                "per_channel": any(s.size > 1 for s, _ in g.imported.weights.values()),
                "mixed_precision": len(widths) > 1, "imported": g.imported.source}
    return {"scale": getattr(opts, "scale", "pow2"),
            "calibration": getattr(opts, "calibrate", "minmax")
            if getattr(opts, "calib", None) is not None else "random inputs",
            "per_channel": bool(getattr(opts, "per_channel", True)),
            "mixed_precision": len(widths) > 1}


def blocks(instances: int, depth: int, width: int, kbits: int) -> int:
    """Block RAMs of ``kbits`` Kb for ``instances`` memories of depth x width (whole blocks
    per instance; a block is at most 36 (or 72) bits wide)."""
    per = max(-(-depth * width // (kbits * 1024)), -(-width // (2 * kbits)))
    return instances * per


def memory(s: Schedule, p: HwParams) -> dict[str, int]:
    """On-chip memory in bits, and in 18 Kb / 36 Kb block RAMs (every memory as its own)."""
    mems = {"activation": (s.B, s.adepth, p.AW), "accumulator": (s.C, s.mdepth, p.ACC_W),
            "weight_rom": (1, p.ROM_DEPTH, p.ROM_W), "post_rom": (s.C, s.pdepth, p.PW)}
    if p.NLUT:  # table activations: one table ROM per column
        mems["lut_rom"] = (s.C, p.LUT_DEPTH, p.AW)
    out = {f"{k}_bits": n * d * w for k, (n, d, w) in mems.items()}
    out["bram18"] = sum(blocks(n, d, w, 18) for n, d, w in mems.values())
    out["bram36"] = sum(blocks(n, d, w, 36) for n, d, w in mems.values())
    return out


def layer_kind(node: ir.Node, plan: Any) -> str:
    """What a layer computes, finer than its IR op (a QConv may be a depthwise convolution or a
    global average pool): dense, conv, grouped_conv, depthwise_conv, max_pool,
    global_avg_pool (reduce mode), add or concat."""
    op = node.op
    if isinstance(op, ir.QConv):
        if plan.geom is not None and plan.geom.reduce:
            return "global_avg_pool"
        if op.group > 1:
            return "depthwise_conv" if op.group == plan.geom.cin else "grouped_conv"
        return "conv"
    return {ir.QDense: "dense", ir.QMaxPool: "max_pool", ir.QAdd: "add",
            ir.QConcat: "concat"}[type(op)]


def op_label(ly: dict[str, Any]) -> str:
    """A layer's op in report.md: the IR op, and its kind where that says more
    ("Conv, depthwise_conv"; "Dense")."""
    kind = ly.get("kind", "")
    return ly["op"] if kind.replace("_", "") in ("", ly["op"].lower()) else f"{ly['op']}, {kind}"


def markdown(rep: dict[str, Any]) -> str:
    t = rep["total"]
    lines = [f"# edgehls report: {rep['source']}", "",
             f"Array {rep['pe'][0]}x{rep['pe'][1]}, weights {rep['wbits']} bit, activations "
             f"{rep['abits']} bit{quant_text(rep.get('quantization'))}. "
             f"Generated by {rep['generator']}.", "",
             "| layer | w/a bits | M x K x N | MACs | tiles (skipped) | predicted cycles | "
             "utilization | sparsity | weight bits: float32 | quantized | pruned | unencoded | "
             "encoding | stored |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| --- | ---: |"]
    for ly in rep["layers"]:
        lines.append(
            f"| {ly['name']} ({op_label(ly)}) | {ly['wbits']}/{ly['abits']} | "
            f"{ly['M']} x {ly['K']} x {ly['N']} | {ly['macs']} | "
            f"{ly['tiles']} ({ly['skipped_tiles']}) | {ly['predicted_cycles']} | "
            f"{ly['utilization']:.1%} | {ly['sparsity']:.1%} | {ly['weight_bits_raw']} | "
            f"{ly['weight_bits_quantized']} | {ly['weight_bits_pruned']} | "
            f"{ly['weight_bits_unencoded']} | {ly['encoding']} | {ly['weight_bits_stored']} |")
    lines.append(f"| **total** | | | {t['macs']} | {t['tiles']} ({t['skipped_tiles']}) | "
                 f"{t['predicted_cycles']} | {t['utilization']:.1%} | | {t['weight_bits_raw']} | "
                 f"{t['weight_bits_quantized']} | {t['weight_bits_pruned']} | "
                 f"{t.get('weight_bits_unencoded', '')} | | {t['weight_bits_stored']} |")
    lines += ["", f"Weight compression: {t['compression']:.1f}x fewer bits than float32 "
              f"({t['weight_rom_bits']} bits in rom/weights.hex"
              + (" + rom/codebook.hex" if "codebook.hex" in t["rom_bits"] else "") + ")."]
    bitmaps = [f"{ly['name']} {ly['encoding']}" for ly in rep["layers"]
               if ly["encoding"] != "raw"]
    lines += ["", f"Sparsity encoding (--encode {rep.get('encode', 'raw')}): "
              + (f"{len(bitmaps)} of {len(rep['layers'])} layers store tile rows as bitmaps "
                 f"({', '.join(bitmaps)}); {t['weight_bits_stored']} bits stored against "
                 f"{t['weight_bits_unencoded']} unencoded "
                 f"({t['weight_bits_stored'] / t['weight_bits_unencoded']:.3f}x), decoded at "
                 "one row per cycle (cycles unchanged)." if bitmaps else
                 "none: every layer stores raw rows (a bitmap would not save bits).")]
    narrow = [f"{ly['name']} {ly['element_bits']}" for ly in rep["layers"]
              if ly.get("element_bits", 0) < max(x.get("element_bits", 0) for x in rep["layers"])]
    if narrow:
        lines += ["", "Mixed precision: layers stored at their own widths in the ROM "
                  f"({', '.join(narrow)} bits a weight), sign-extended as they are decoded."]
    packed = [ly["name"] for ly in rep["layers"] if ly.get("packed")]
    if packed or not rep.get("pack_input", True):
        lines += ["", "Packed input: " + (
            "; ".join(f"{ly['name']} reads the model input stored flat and zero padded along "
                      f"{ly['packed']}, each weight tile holding up to R "
                      + ("(kernel column, channel) rows of one kernel row" if ly["packed"] == "w"
                         else "(kernel row, channel) rows of one kernel column")
                      for ly in rep["layers"] if ly.get("packed"))
            + " (--no-pack-input turns this off)." if packed else
            "off (--no-pack-input): a convolution on the model input uses one tile per "
            "kernel position and block of R channels.")]
    m = rep["memory"]
    lines += ["", "On-chip memory (bits): " + ", ".join(f"{k} {v}" for k, v in m.items()), ""]
    if rep["accuracy"]:
        a = rep["accuracy"]
        parts = [f"{k} {a[k]:.2%}" for k in ("float", "quantized", "compressed") if k in a]
        lines += [f"Accuracy on {a['samples']} samples (top-1): " + ", ".join(parts)
                  + f"; agreement with float {a['agreement']:.2%}.", ""]
    lines += [f"Note: {n}." for n in rep["notes"]]
    return "\n".join(lines) + "\n"


def quant_text(q: dict | None) -> str:
    if not q:
        return ", power-of-two scales"
    scale = {"pow2": "power-of-two scales", "mult": "real scales (multiplier and shift)",
             "imported": "the model's own quantization"}.get(q["scale"], q["scale"])
    return (f", {scale}, weights per {'channel' if q['per_channel'] else 'tensor'}, "
            f"calibration {q['calibration']}"
            + (", mixed precision (per layer below)" if q["mixed_precision"] else ""))


def input_load_cycles(g: ir.Graph, p: HwParams) -> int:
    """Cycles the core's loader writes the input for, at one beat a cycle (before `run_cycles`
    start): one per element, plus the zeros of a packed input's pads (hw/core.v, PK): along w
    each map row's pad columns, interleaved with the beats; along h a zero pass over the whole
    padded region first."""
    t = g.tensor(g.inputs[0])
    pads = p.PK_LO + p.PK_HI  # along the packed axis
    if p.PK == 1:  # IH rows of (pads + IW) * cin elements, PK_W = IW
        return t.size + pads * (t.size // p.PK_W)
    if p.PK == 2:  # IW columns of (pads + IH) * cin zeros, then the beats
        return t.size + t.size + p.PK_W * pads * t.shape[1]
    return t.size


def manifest(g: ir.Graph, s: Schedule, p: HwParams, source: str, opts: Any,
             files: dict[str, list[str]], samples: int) -> dict[str, Any]:
    logits = any("Softmax" in n for n in g.notes)
    return {
        "generator": f"edgehls {edgehls.__version__}", "source": source, "top": "edgehls_top",
        "pe": [s.R, s.C],
        "inputs": [io_entry(g, g.tensor(t)) for t in g.inputs],
        "outputs": [io_entry(g, g.tensor(t), logits) for t in g.outputs],
        "numerics": {"scale": quantization(g, opts)["scale"], "wbits": opts.wbits,
                     "abits": opts.abits, "per_channel": bool(getattr(opts, "per_channel", True)),
                     "rounding": "half-up", "acc_bits": p.ACC_W,
                     "mult_bits": numerics.MULT_BITS, "shift_bits": numerics.SHIFT_BITS},
        "interface": {"clock": "clk", "reset": "rst_n (active low, synchronous)",
                      "control": "start pulse; busy; done pulse; run_cycles",
                      "input": "s_axis (one element a beat, NHWC order)",
                      "output": "m_axis (one element a beat, tlast on the last)"},
        "hw": {k: getattr(p, k) for k in ("R", "C", "B", "AW", "WW", "ACC_W", "ADEPTH",
                                          "MDEPTH", "NT", "WDEPTH", "PDEPTH", "EW",
                                          "EDEPTH", "PK")},
        "schedule": {"tiles": len(s.tiles), "layers": len(s.layers),
                     "pack_input": s.pack_input,
                     "packed_layers": [p.name for p in s.layers if p.geom.packed],
                     "predicted_cycles": s.total_cycles, "drain_cycles": drain(s.R, s.C, s.xlat),
                     "layer_cycles": s.layer_cycles(),
                     # schedule index of each layer's first tile: the bench measures a layer
                     # from its first tile's issue to the next layer's (as layer_cycles counts)
                     "layer_first_tile": [p.first_tile for p in s.layers],
                     "layer_names": [p.name for p in s.layers],
                     "input_load_cycles": input_load_cycles(g, p)},
        "golden": {"samples": samples, "inputs": "golden/inputs.npy",
                   "inputs_q": "golden/inputs_q.npy", "outputs_q": "golden/outputs_q.npy"},
        "files": files, "notes": list(g.notes)}
