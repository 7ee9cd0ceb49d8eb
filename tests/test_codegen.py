"""edgehls.codegen: the generated design parses in Icarus, names its generator and source, lists
its files, is byte-for-byte deterministic, and its templates refuse missing variables."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
from models import mlp, save

import edgehls
from edgehls import codegen, pipeline

SOURCE = "tiny.onnx"


def compile_to(out: Path, model: Path, pe: tuple[int, int] = (2, 3)) -> dict:
    return pipeline.compile_model(model, out, pipeline.Options(pe=pe, samples=2), force=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save(mlp([7, 5, 4], seed=3), tmp_path_factory.mktemp("m") / SOURCE)


@pytest.fixture(scope="module")
def design(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("design")
    compile_to(out, model)
    return out


def filelist(design: Path) -> list[str]:
    return (design / "filelist.f").read_text().split()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
@pytest.mark.parametrize("pe", [(2, 3), (1, 1), (4, 4)])
def test_generated_top_parses_in_icarus(model, tmp_path, pe):
    compile_to(tmp_path, model, pe)
    proc = subprocess.run(
        ["iverilog", "-g2005", "-o", "/dev/null", "-s", codegen.TOP, *filelist(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_files_start_with_a_header(design):
    top = (design / "rtl" / f"{codegen.TOP}.v").read_text()
    header = top.splitlines()[0]
    assert f"edgehls {edgehls.__version__}" in header and SOURCE in header
    assert "`timescale 1ns/1ps" in top and "`default_nettype none" in top
    assert f"module {codegen.TOP}" in top
    for generated in ("Makefile", "synth/yosys.ys"):
        head = (design / generated).read_text().splitlines()[0]
        assert f"edgehls {edgehls.__version__}" in head and SOURCE in head, generated


def test_no_absolute_paths_or_timestamps(design):
    for name, data in tree(design).items():
        if name.startswith(("rtl/", "rom/", "synth/")) or name in ("Makefile", "filelist.f"):
            assert str(design).encode() not in data, name


def test_filelist_lists_existing_files_top_last(design):
    files = filelist(design)
    assert files, "empty filelist"
    assert len(files) == len(set(files))
    for f in files:
        assert not Path(f).is_absolute()
        assert (design / f).is_file(), f
    assert files[-1] == f"rtl/{codegen.TOP}.v"
    assert {f"rtl/edgehls_{n}" for n in codegen.HW_FILES} <= set(files)
    assert sorted(p.name for p in (design / "rtl").iterdir() if p.is_file()) == sorted(
        Path(f).name for f in files)


def test_hw_library_is_copied_verbatim(design):
    for name in codegen.HW_FILES:
        assert (design / "rtl" / f"edgehls_{name}").read_text() == codegen.hw_source(name)
    # target versions sit in rtl/<target>/, outside filelist.f (the target's synthesis reads them)
    assert sorted(p.name for p in (design / "rtl").iterdir() if p.is_dir()) == sorted(
        codegen.TARGET_FILES)
    for target, names in codegen.TARGET_FILES.items():
        for name in names:
            assert (design / "rtl" / target / f"edgehls_{name}").read_text() == \
                codegen.hw_source(f"{target}/{name}")


def test_rom_files_referenced_by_the_top_exist(design):
    top = (design / "rtl" / f"{codegen.TOP}.v").read_text()
    for rom in sorted((design / "rom").iterdir()):
        assert f'"rom/{rom.name}"' in top, rom.name
    assert '"rom/weights.hex"' in top and '"rom/schedule.hex"' in top


def test_two_compiles_are_byte_identical(model, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    compile_to(a, model)
    compile_to(b, model)
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb)
    differ = [n for n in ta if ta[n] != tb[n]]
    assert differ == []


def test_tdata_bits_rounds_up_to_bytes():
    assert [codegen.tdata_bits(b) for b in (1, 2, 8, 9, 16, 17)] == [8, 8, 8, 16, 16, 24]


def test_environment_is_strict():
    env = codegen.environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.trim_blocks and env.lstrip_blocks and env.keep_trailing_newline
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("top.v.j2").render()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("Makefile.j2").render(version="0", source="x.onnx")
