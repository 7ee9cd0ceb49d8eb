"""edgehls.vendor: the Vivado, Quartus and FuseSoC files exist, name the right top, part and
clock, list only sources that exist, and are deterministic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from models import mlp, save

from edgehls import pipeline, vendor


@pytest.fixture(scope="module")
def design(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vendor")
    model = save(mlp([6, 5, 3], seed=1), root / "tiny-net.onnx")
    pipeline.compile_model(model, root / "d", pipeline.Options(pe=(2, 2), samples=1))
    return root / "d"


def context(design: Path, clock_mhz: float = 100.0) -> vendor.Context:
    m = json.loads((design / "manifest.json").read_text())
    return vendor.Context.from_files(m["top"], m["files"], m["source"], clock_mhz)


@pytest.fixture(scope="module")
def written(design) -> Path:
    vendor.write(design, context(design, 125.0))
    return design


def test_files_exist(written):
    for path in vendor.FILES:
        assert (written / path).is_file(), path


def test_tcl_reads_every_filelist_source_names_top_and_part(written):
    tcl = (written / "vivado/build.tcl").read_text()
    sources = (written / "filelist.f").read_text().split()
    assert sources and all((written / s).is_file() for s in sources)
    for s in sources:
        assert f"    {s}\n" in tcl
    assert "synth_design -top $top -part $part" in tcl
    assert "set top edgehls_top" in tcl and f"set part {vendor.XILINX_PART}" in tcl
    for step in ("opt_design", "place_design", "route_design", "report_utilization",
                 "report_timing_summary", "read_xdc vivado/edgehls.xdc"):
        assert step in tcl


def test_clock_period_from_clock_mhz(written):
    xdc = (written / "vivado/edgehls.xdc").read_text()
    sdc = (written / "quartus/edgehls.sdc").read_text()
    assert re.search(r"create_clock -period 8\.000 .*\[get_ports clk\]", xdc)
    assert "-period 8.000 [get_ports clk]" in sdc


def test_qsf_sources_exist_relative_to_quartus(written):
    qsf = (written / "quartus/edgehls.qsf").read_text()
    files = re.findall(r"VERILOG_FILE (\S+)", qsf)
    assert len(files) == len((written / "filelist.f").read_text().split())
    assert all((written / "quartus" / f).is_file() for f in files)
    assert "TOP_LEVEL_ENTITY edgehls_top" in qsf and "SDC_FILE edgehls.sdc" in qsf


def test_fusesoc_core(written):
    text = (written / "edgehls.core").read_text()
    assert text.startswith("CAPI=2:\n")
    core = yaml.safe_load(text)
    assert core["name"] == "edgehls:design:tiny_net:" + vendor.edgehls.__version__
    rtl = core["filesets"]["rtl"]["files"]
    assert rtl == (written / "filelist.f").read_text().split()
    roms = [next(iter(f)) for f in core["filesets"]["rom"]["files"]]
    assert roms == sorted(str(p.relative_to(written)) for p in (written / "rom").iterdir())
    assert set(core["targets"]) == {"default", "sim", "synth"}
    assert all(t["toplevel"] == "edgehls_top" for t in core["targets"].values())


def test_deterministic(design, tmp_path):
    a = {p: (design / p).read_text() for p in vendor.write(design, context(design))}
    b = {p: (design / p).read_text() for p in vendor.write(design, context(design))}
    assert a == b
    assert not any(str(design) in text for text in a.values())


def test_bad_clock(design, tmp_path):
    with pytest.raises(ValueError, match="positive"):
        vendor.write(tmp_path, context(design, 0.0))
