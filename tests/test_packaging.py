"""`pip install .` ships everything `edgehls compile` needs: the hw/ library and templates/ are
package data, so a non-editable install compiles from any directory.

The install goes into a fresh venv under tmp_path from a copy of the source (pip builds in the
tree it is given, and nothing may be written into the source tree). The fresh venv sees this
environment's packages (numpy, onnx, ...) through a .pth line, which does not run this
environment's editable-install hook, so `edgehls` can only come from the new install.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from edgehls.codegen import HW_FILES, TARGET_FILES, TOP

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "digits_mlp" / "model.onnx"
SOURCES = ("pyproject.toml", "README.md", "compiler", "hw", "templates", "sim")


def _run(cmd: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout}\n{p.stderr}"
    return p


def _can_build_here() -> bool:
    """True if this environment's setuptools can build the wheel (>= 70.1 has bdist_wheel), so
    the build stays offline; otherwise pip fetches setuptools into an isolated build env."""
    try:
        major, minor = (int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


@pytest.mark.slow
def test_pip_install_compiles_from_any_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    (site / "_edgehls_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    isolation = ["--no-build-isolation"] if _can_build_here() else []
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", *isolation, src],
         tmp_path)
    shutil.rmtree(src)  # the install must not depend on the tree it was built from

    where = _run([py, "-c", "import edgehls; print(edgehls.__file__)"], tmp_path).stdout.strip()
    assert Path(where).is_relative_to(site), where

    work = tmp_path / "elsewhere"
    work.mkdir()
    script = env_dir / "bin" / "edgehls"
    p = _run([script, "compile", MODEL, "--pe", "4x4", "-o", "out"], work)
    assert p.stdout.startswith(f"compiled {MODEL} -> out/"), p.stdout
    rtl = work / "out" / "rtl"
    assert sorted(f.name for f in rtl.iterdir()) == sorted(
        [f"edgehls_{n}" for n in HW_FILES] + [f"{TOP}.v"] + list(TARGET_FILES))
    for n in HW_FILES:
        assert (rtl / f"edgehls_{n}").read_text() == (ROOT / "hw" / n).read_text(), n
    for target, names in TARGET_FILES.items():
        for n in names:
            assert (rtl / target / f"edgehls_{n}").read_text() == (
                ROOT / "hw" / target / n).read_text(), n
    assert f"module {TOP}" in (rtl / f"{TOP}.v").read_text()
    assert (work / "out" / "Makefile").is_file() and (work / "out" / "synth" / "yosys.ys").is_file()
    # the cocotb bench ships too: simulate imports it as edgehls.sim.tb_top
    _run([py, "-c", "import importlib.util as u; assert u.find_spec('edgehls.sim.tb_top')"], work)
