"""Vendor projects for a compiled design: Vivado (non-project TCL + XDC), Quartus (QSF + SDC) and
a FuseSoC CAPI2 core, so that edalize-based flows pick the design up.

Contract: ``write(out, ctx)`` writes vivado/build.tcl, vivado/edgehls.xdc, quartus/edgehls.qsf,
quartus/edgehls.sdc and edgehls.core into ``out`` and returns their paths relative to ``out``.
Source paths in build.tcl and edgehls.core are relative to the design directory (build.tcl moves
there first: $readmemh reads rom/ relative to the working directory); the QSF's are relative to
quartus/, as Quartus resolves them. The clock constraint is ``ctx.clock_mhz`` in every file.
Output is deterministic: no timestamps, no absolute paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import edgehls

#: default devices: Arty A7-100T, DE1-SoC (Cyclone V)
XILINX_PART = "xc7a100tcsg324-1"
QUARTUS_FAMILY = "Cyclone V"
QUARTUS_PART = "5CSEMA5F31C6"


@dataclass(frozen=True)
class Context:
    """What the vendor files need to know about a design; paths relative to the design dir."""
    top: str
    rtl: tuple[str, ...]
    rom: tuple[str, ...]
    source: str
    version: str = edgehls.__version__
    clock_mhz: float = 100.0
    xilinx_part: str = XILINX_PART
    quartus_family: str = QUARTUS_FAMILY
    quartus_part: str = QUARTUS_PART

    @classmethod
    def from_files(cls, top: str, files: dict[str, list[str]], source: str,
                   clock_mhz: float = 100.0) -> Context:
        """From codegen.write's file lists {"rtl": [...], "rom": [...]}."""
        return cls(top=top, rtl=tuple(files["rtl"]), rom=tuple(sorted(files["rom"])),
                   source=source, clock_mhz=clock_mhz)

    @property
    def period_ns(self) -> str:
        return f"{1000.0 / self.clock_mhz:.3f}"

    @property
    def vlnv(self) -> str:
        """FuseSoC name: vendor:library:name:version, name made of [a-z0-9_]."""
        stem = re.sub(r"[^a-z0-9_]+", "_", Path(self.source).stem.lower()).strip("_")
        return f"edgehls:design:{stem or 'model'}:{self.version}"


FILES = {  # output path -> template
    "vivado/build.tcl": "vivado_build.tcl.j2",
    "vivado/edgehls.xdc": "vivado.xdc.j2",
    "quartus/edgehls.qsf": "quartus.qsf.j2",
    "quartus/edgehls.sdc": "quartus.sdc.j2",
    "edgehls.core": "fusesoc.core.j2",
}


def write(out: Path, ctx: Context) -> list[str]:
    """Write the vendor projects of ``ctx`` into ``out``; return the paths written."""
    from edgehls.codegen import environment  # the one Jinja2 Environment

    if ctx.clock_mhz <= 0:
        raise ValueError(f"clock_mhz must be positive, got {ctx.clock_mhz}")
    env = environment()
    values = {"top": ctx.top, "rtl": ctx.rtl, "rom": ctx.rom, "source": ctx.source,
              "version": ctx.version, "clock_mhz": f"{ctx.clock_mhz:g}",
              "period_ns": ctx.period_ns, "vlnv": ctx.vlnv}
    parts = {"vivado": {"part": ctx.xilinx_part}, "edgehls.core": {"part": ctx.xilinx_part},
             "quartus": {"part": ctx.quartus_part, "family": ctx.quartus_family}}
    for path, template in FILES.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        extra = parts.get(path.split("/")[0], {})
        target.write_text(env.get_template(template).render(**values, **extra))
    return list(FILES)
