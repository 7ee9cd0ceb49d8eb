"""Codegen: render the model-specific Verilog, write the ROM images, copy the hw/ library, and
write the filelist, the build Makefile and the synthesis script.

Python precomputes a plain context; the templates in templates/ only loop and print. Output is
deterministic: sorted, no timestamps, no absolute paths.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import jinja2

import edgehls
from edgehls import ir, vendor
from edgehls.romgen import HwParams, rom_images
from edgehls.tiler import Schedule

TOP = "edgehls_top"
HW_FILES = ("pe.v", "systolic_array.v", "postproc.v", "skid_buffer.v", "fifo.v", "ram_sdp.v",
            "rom.v", "rom_async.v", "table.v", "codebook.v", "sparse_decoder.v", "column.v",
            "sequencer.v", "core.v", "mult.v")
# target-specific versions of HW_FILES modules (hw/<target>/<name> -> rtl/<target>/edgehls_<name>,
# not in filelist.f): that target's synthesis flow reads them instead (edgehls.synth.target_rtl)
TARGET_FILES = {"ecp5": ("mult.v",)}
CORE_PARAMS = ("R", "C", "B", "AW", "WW", "ACC_W", "ADEPTH", "MDEPTH", "NT", "WDEPTH", "PDEPTH",
               "MB", "SB", "IN_BITS", "IN_TW", "IN_M", "IN_K", "OUT_TW", "OUT_M", "OUT_N",
               "OUT_BASE", "IN_BASE", "CSW", "DW", "STW", "LTW")
PK_PARAMS = ("PK", "PK_W", "PK_LO", "PK_HI")  # a packed input (set only when PK != 0)


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(importlib.resources.files("edgehls.templates"))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)


def hw_source(name: str) -> str:
    return importlib.resources.files("edgehls.hw").joinpath(name).read_text()


def tdata_bits(bits: int) -> int:
    return 8 * -(-bits // 8)


def stream_params(g: ir.Graph, s: Schedule) -> dict[str, int]:
    """The model's input/output stream geometry, as edgehls_core parameters."""
    tin, tout = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    producer = g.producer(tout.name)
    last = next(p for p in s.layers if p.name == producer.name)
    reader = next(p for p in s.layers if tin.name in g.node(p.name).inputs)
    in_k = reader.geom.cin
    if isinstance(g.node(reader.name).op, ir.QConcat):  # the input may be any of its sources
        in_k = tin.shape[1] if len(tin.shape) == 4 else tin.shape[-1]
    in_bits = tin.q.stream(signed_only=True)[0]
    return {"IN_BITS": in_bits, "IN_TW": tdata_bits(in_bits),
            "IN_M": reader.geom.ih * reader.geom.iw, "IN_K": in_k,
            "OUT_TW": tdata_bits(tout.q.stream()[0]), "OUT_M": last.M, "OUT_N": last.N,
            "OUT_BASE": s.base[tout.name], "IN_BASE": s.base[tin.name]}


def write(g: ir.Graph, s: Schedule, p: HwParams, out: Path, source: str,
          clock_mhz: float = 100.0) -> dict[str, list[str]]:
    """Write rtl/, rom/, filelist.f, Makefile, synth/ and the vendor projects into ``out``;
    return the file lists."""
    env = environment()
    sp = stream_params(g, s)
    values = {**{k: getattr(p, k) for k in CORE_PARAMS if hasattr(p, k)}, **sp}
    params = [(k, values[k]) for k in CORE_PARAMS] + [
        ("SW", p.SW), ("PW", p.PW), ("WROM_W", p.WROM_W), ("NL", p.NL)]
    if p.SHARE:
        params += [("SHARE", p.SHARE)]
    if p.NEG:
        params += [("NEG", p.NEG)]
    if p.RED:
        params += [("RED", p.RED)]
    if p.PK:
        params += [(k, getattr(p, k)) for k in PK_PARAMS]
    if p.NLUT:
        params += [("NLUT", p.NLUT), ("LIW", p.LIW)]
    if p.EW:
        params += [("EW", p.EW), ("EDEPTH", p.EDEPTH),
                   ("EAW", max(1, (p.EDEPTH - 1).bit_length()))]
    nsel = 1 << p.CSW  # the decoder's per-layer tables cover every layer-select value
    rtl, rom = out / "rtl", out / "rom"
    rtl.mkdir(parents=True, exist_ok=True)
    rom.mkdir(parents=True, exist_ok=True)
    for name in HW_FILES:
        (rtl / f"edgehls_{name}").write_text(hw_source(name))
    for target, names in sorted(TARGET_FILES.items()):
        (rtl / target).mkdir(exist_ok=True)
        for name in names:
            (rtl / target / f"edgehls_{name}").write_text(hw_source(f"{target}/{name}"))
    top = env.get_template("top.v.j2").render(
        version=edgehls.__version__, source=source, top=TOP, params=params,
        core_params=[(k, v) for k, v in params
                     if k in CORE_PARAMS + ("NEG", "NLUT", "LIW", "RED") + PK_PARAMS],
        in_tw=sp["IN_TW"], out_tw=sp["OUT_TW"], C=s.C, rom_dir="rom/", share=p.SHARE,
        encoded=bool(p.EW), bitmap=f"{nsel}'h{p.BITMAP:x}", empty=f"{nsel}'h{p.EMPTY:x}",
        zero=f"{nsel * (p.SHARE or p.WW)}'h{p.ZERO:x}",
        widths=f"{nsel * 8}'h{p.WL:x}" if p.WL else "")
    (rtl / f"{TOP}.v").write_text(top)
    roms = rom_images(g, s, p)
    for name, (text, _) in sorted(roms.items()):
        (rom / name).write_text(text)
    files = {"rtl": [f"rtl/edgehls_{n}" for n in HW_FILES] + [f"rtl/{TOP}.v"],
             "rom": [f"rom/{n}" for n in sorted(roms)]}

    (out / "filelist.f").write_text("".join(f"{f}\n" for f in files["rtl"]))
    ctx = {"version": edgehls.__version__, "source": source, "top": TOP, "rtl": files["rtl"]}
    (out / "Makefile").write_text(env.get_template("Makefile.j2").render(**ctx))
    (out / "synth").mkdir(exist_ok=True)
    (out / "synth" / "yosys.ys").write_text(env.get_template("yosys.ys.j2").render(**ctx))
    vendor.write(out, vendor.Context.from_files(TOP, files, source, clock_mhz))
    return files
