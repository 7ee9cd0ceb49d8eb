"""Shared pytest helper: build one hw/ block with Icarus and run a cocotb bench against it."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

HW = Path(__file__).resolve().parents[2] / "hw"
BENCH_DIR = Path(__file__).resolve().parent


def run_cocotb(toplevel: str, sources: list[Path], test_module: str, build_dir: Path,
               parameters: dict | None = None, seed: int | None = None,
               extra_env: Mapping[str, str] | None = None) -> None:
    """Build ``sources`` with ``toplevel`` on top, run the cocotb module ``test_module``
    (a ``tb_*.py`` beside this file) and fail unless every cocotb test passed.

    Everything the simulator writes (build, results xml) stays under ``build_dir``.
    """
    if str(BENCH_DIR) not in sys.path:  # the runner hands sys.path to the simulator's Python
        sys.path.append(str(BENCH_DIR))
    runner = get_runner("icarus")
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                 parameters=parameters or {}, always=True, timescale=("1ns", "1ps"))
    results = build_dir / "results.xml"
    try:
        runner.test(hdl_toplevel=toplevel, test_module=test_module, test_dir=BENCH_DIR,
                    build_dir=build_dir, seed=seed, results_xml=str(results),
                    extra_env={"PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})})
    except SystemExit as e:  # cocotb's runner exits on failure; report it as a test failure
        raise AssertionError(f"cocotb {test_module} on {toplevel} failed (exit {e.code}); "
                             f"see the log above and {build_dir}") from None
    n_tests, n_failed = get_results(results)
    assert n_tests > 0 and n_failed == 0, (
        f"cocotb {test_module} on {toplevel}: {n_failed} of {n_tests} tests failed")
