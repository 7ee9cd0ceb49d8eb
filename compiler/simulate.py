"""Simulate a compiled design in Icarus Verilog with the generic cocotb bench (sim/tb_top.py)
and write DIR/sim/result.json."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from edgehls.errors import EdgeHLSError, OptionError

log = logging.getLogger(__name__)


class SimulationError(EdgeHLSError):
    """The simulator could not build or run the design."""


def check_design(design: Path) -> dict[str, Any]:
    manifest = design / "manifest.json"
    if not manifest.is_file():
        raise OptionError(f"{design} is not an edgehls design directory (no manifest.json); "
                          "run `edgehls compile` first")
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise OptionError(f"{manifest} cannot be read ({e}); compile the design again") from e


def simulate(design: Path, seed: int = 1, samples: int | None = None, gaps: float = 0.3,
             waves: bool = False) -> dict[str, Any]:
    """Run every golden sample (or the first ``samples``); return the result dictionary."""
    from cocotb_tools.runner import get_runner

    design = design.resolve()
    m = check_design(design)
    if shutil.which("iverilog") is None:
        raise SimulationError("iverilog is not installed: `apt-get install iverilog` "
                              "(or run `make demo`, which installs it)")
    sim = design / "sim"
    sim.mkdir(exist_ok=True)
    result_path = sim / "samples.json"
    result_path.unlink(missing_ok=True)
    runner = get_runner("icarus")
    runner.build(sources=[design / f for f in m["files"]["rtl"]], hdl_toplevel=m["top"],
                 build_dir=sim / "build", always=True, timescale=("1ns", "1ps"),
                 waves=waves, log_file=sim / "build.log")
    env = {"EDGEHLS_DESIGN": str(design), "EDGEHLS_RESULT": str(result_path),
           "EDGEHLS_SEED": str(seed), "EDGEHLS_GAPS": str(gaps)}
    if samples is not None:
        env["EDGEHLS_SAMPLES"] = str(samples)
    # the bench imports numpy; keep the user's PYTHONPATH and add nothing else
    try:
        runner.test(test_module="edgehls.sim.tb_top", hdl_toplevel=m["top"], test_dir=design,
                    build_dir=sim / "build", seed=seed, extra_env={**os.environ, **env},
                    results_xml=str(sim / "results.xml"), waves=waves, log_file=sim / "sim.log")
    except SystemExit:
        # under pytest, cocotb's runner exits when the bench fails; the per-sample results
        # are still on disk and result.json must be written from them
        pass
    if not result_path.is_file():
        raise SimulationError(f"the simulation did not finish; see {sim / 'sim.log'}")
    per_sample = json.loads(result_path.read_text())
    for r in per_sample:
        if r.get("timeout"):  # the bench gave up on a hung design and ran no more samples
            log.error("sample %d: %s; see %s", r["sample"], r["errors"][0], sim / "sim.log")
    predicted = m["schedule"]["predicted_cycles"]
    cycles = per_sample[0]["cycles"] if per_sample else 0
    layers_predicted = m["schedule"].get("layer_cycles")
    layers = per_sample[0].get("layer_cycles") if per_sample else None
    layers_match = all(r.get("layer_cycles") in (None, layers_predicted) for r in per_sample)
    cycles_match = all(r["cycles"] == predicted for r in per_sample) and layers_match
    result = {
        "passed": all(r["passed"] for r in per_sample) and cycles_match,
        "samples": len(per_sample),
        "mismatches": sum(r["mismatches"] for r in per_sample),
        "cycles": cycles, "predicted_cycles": predicted,
        "cycles_match": cycles_match,
        # measured per layer (first tile's issue to the next layer's), beside the cycle model's
        "layer_cycles": layers, "layer_cycles_predicted": layers_predicted,
        "layer_cycles_match": layers_match,
        "total_cycles": [r["total_cycles"] for r in per_sample],
        # samples on which the design hung (no output, or no done, within the bench's bound)
        "timeouts": [r["sample"] for r in per_sample if r.get("timeout")],
        "seed": seed, "simulator": "icarus", "per_sample": per_sample,
    }
    (sim / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
