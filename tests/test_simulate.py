"""edgehls.simulate and the generic bench: a correct design passes, and the bench catches a wrong
golden output, a corrupted weight ROM and a wrong cycle prediction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from models import mlp, save

from edgehls import cli, frontend, golden, ir, pipeline, simulate, tiler
from edgehls.errors import OptionError

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                reason="iverilog is not installed")

PE = (2, 3)
# raw rows: the corrupted-ROM test flips a bit at a row's address (--encode raw)
OPTS = pipeline.Options(pe=PE, samples=2, encode="raw")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save(mlp([7, 5, 4], seed=3), tmp_path_factory.mktemp("m") / "mlp.onnx")


@pytest.fixture(scope="module")
def compiled(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("design")
    pipeline.compile_model(model, out, OPTS, force=True)
    return out


@pytest.fixture
def design(compiled, tmp_path) -> Path:
    """A private copy of the compiled design, free to corrupt."""
    out = tmp_path / "design"
    shutil.copytree(compiled, out, ignore=shutil.ignore_patterns("sim"))
    return out


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@needs_iverilog
def test_correct_design_passes(design):
    r = simulate.simulate(design)
    assert r["passed"] and r["cycles_match"]
    assert r["samples"] == 2 and r["mismatches"] == 0
    assert r["cycles"] == r["predicted_cycles"] == json.loads(
        (design / "manifest.json").read_text())["schedule"]["predicted_cycles"]
    assert all(s["passed"] and not s["errors"] for s in r["per_sample"])
    assert json.loads((design / "sim" / "result.json").read_text()) == r
    # per layer, measured from the sequencer's issue index: the cycle model's layer_cycles
    sched = json.loads((design / "manifest.json").read_text())["schedule"]
    assert r["layer_cycles_match"] and len(sched["layer_cycles"]) == 2
    assert r["layer_cycles"] == r["layer_cycles_predicted"] == sched["layer_cycles"]
    assert sum(r["layer_cycles"]) == r["cycles"]
    assert all(s["layer_cycles"] == sched["layer_cycles"] for s in r["per_sample"])


@needs_iverilog
def test_wrong_golden_output_is_a_mismatch(design):
    path = design / "golden" / "outputs_q.npy"
    y = np.load(path)
    y.flat[y.size - 1] += 1  # the last element of the last sample
    np.save(path, y)
    r = simulate.simulate(design)
    assert not r["passed"]
    assert r["mismatches"] == 1
    assert r["cycles_match"]
    assert [s["passed"] for s in r["per_sample"]] == [True, False]


def quantized(model: Path) -> ir.Graph:
    return pipeline.run_passes(frontend.load(model), pipeline.passes(OPTS))


def with_weight(g: ir.Graph, node: ir.Node, k: int, n: int, value: int) -> ir.Graph:
    g = g.copy()
    w = np.array(g.const(node, "weight"))
    w[k, n] = value
    g.consts[node.const_name("weight")] = w
    return g


def flip_bit(line: str, bit: int) -> str:
    """Flip bit ``bit`` (LSB = 0) of a hex word: one nibble of the text changes."""
    pos = len(line) - 1 - bit // 4
    return line[:pos] + f"{int(line[pos], 16) ^ (1 << bit % 4):x}" + line[pos + 1:]


@needs_iverilog
def test_corrupted_weight_rom_is_a_mismatch(design, model):
    """Flip the sign bit of one weight the golden samples depend on: the bench must see it, and
    the RTL must then agree with the golden model run on the same corrupted weight."""
    g = quantized(model)
    s = tiler.schedule(g, *PE)
    layers = tiler.dense_layers(g)
    ww = json.loads((design / "manifest.json").read_text())["hw"]["WW"]
    x_q = np.load(design / "golden" / "inputs_q.npy")
    y_q = np.load(design / "golden" / "outputs_q.npy")
    # the first weight (in schedule order) whose flip changes the golden outputs
    for t in s.tiles:
        node = layers[t.layer]
        w = g.const(node, "weight")
        hits = []
        for r in range(t.k_rows):
            for j in range(t.n_cols):
                k, n = t.kt * PE[0] + r, t.nt * PE[1] + j
                flipped = int(w[k, n]) ^ (1 << (ww - 1))
                flipped -= (1 << ww) if flipped >> (ww - 1) else 0
                y_bad = golden.run_int_samples(with_weight(g, node, k, n, flipped), x_q)
                if not np.array_equal(y_bad, y_q):
                    hits.append((t.w_addr + r, j * ww + ww - 1, y_bad))
        if hits:
            line_no, bit, y_bad = hits[0]
            break
    else:
        pytest.fail("no single weight flip changes the golden outputs")
    rom = design / "rom" / "weights.hex"
    lines = rom.read_text().split()
    lines[line_no] = flip_bit(lines[line_no], bit)
    rom.write_text("".join(f"{line}\n" for line in lines))

    r = simulate.simulate(design)
    assert not r["passed"]
    assert r["mismatches"] >= 1
    assert r["mismatches"] == int((y_bad != y_q).sum())

    np.save(design / "golden" / "outputs_q.npy", y_bad)
    assert simulate.simulate(design)["passed"]


@needs_iverilog
def test_wrong_cycle_prediction_fails(design):
    edit_json(design / "manifest.json",
              lambda m: m["schedule"].update(predicted_cycles=m["schedule"]["predicted_cycles"]
                                             + 1))
    r = simulate.simulate(design)
    assert not r["passed"]
    assert not r["cycles_match"]
    assert r["mismatches"] == 0
    assert r["cycles"] == r["predicted_cycles"] - 1


@needs_iverilog
def test_wrong_layer_cycle_prediction_fails(design):
    """Totals equal, one layer's split wrong: the per-layer measurement catches it."""
    def shift(m):
        lc = m["schedule"]["layer_cycles"]
        m["schedule"]["layer_cycles"] = [lc[0] + 1, lc[1] - 1]

    edit_json(design / "manifest.json", shift)
    r = simulate.simulate(design)
    assert not r["passed"] and not r["cycles_match"] and not r["layer_cycles_match"]
    assert r["cycles"] == r["predicted_cycles"] and r["mismatches"] == 0
    assert r["layer_cycles"] != r["layer_cycles_predicted"]


@needs_iverilog
def test_cli_exit_status(design, capsys):
    assert cli.main(["simulate", str(design), "--samples", "1"]) == 0
    assert "1/1 bit-exact" in capsys.readouterr().out
    path = design / "golden" / "outputs_q.npy"
    y = np.load(path)
    y[0].flat[0] += 1
    np.save(path, y)
    assert cli.main(["simulate", str(design), "--samples", "1"]) == 1
    out = capsys.readouterr().out
    assert "0/1 bit-exact" in out and "FAIL" in out


@needs_iverilog
def test_samples_limits_the_run(design):
    r = simulate.simulate(design, samples=1, gaps=0.0)
    assert r["passed"] and r["samples"] == 1


@needs_iverilog
def test_failing_bench_under_pytest_returns_a_result(design, monkeypatch):
    """Regression: with PYTEST_CURRENT_TEST set, cocotb_tools' runner.test() calls sys.exit(1)
    when the bench fails; simulate() must still return the result and write result.json."""
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "test_simulate.py::x (call)")
    path = design / "golden" / "outputs_q.npy"
    y = np.load(path)
    y.flat[0] += 1
    np.save(path, y)
    r = simulate.simulate(design, samples=1)
    assert not r["passed"] and r["mismatches"] == 1
    assert (design / "sim" / "result.json").is_file()


def test_directory_without_manifest_is_an_option_error(tmp_path, capsys):
    with pytest.raises(OptionError, match="manifest.json"):
        simulate.simulate(tmp_path)
    assert cli.main(["simulate", str(tmp_path)]) == 2
    assert "compile" in capsys.readouterr().err


def test_unreadable_manifest_is_an_option_error(design):
    (design / "manifest.json").write_text("{ not json")
    with pytest.raises(OptionError, match="compile the design again"):
        simulate.simulate(design)


def test_check_design_returns_the_manifest(design):
    m = simulate.check_design(design)
    assert m["top"] == "edgehls_top" and m["pe"] == list(PE)


def _hang(design: Path, key: str, golden_file: str, size: int) -> None:
    """Make the bench stream ``size`` elements of the manifest's input/output ``key`` (as one
    row): fewer inputs than the design reads, or more outputs than it writes, so it never
    finishes an inference."""
    path = design / "golden" / golden_file
    a = np.load(path).reshape(len(np.load(path)), -1)
    a = np.pad(a, ((0, 0), (0, max(0, size - a.shape[1]))))[:, :size]
    np.save(path, a)
    edit_json(design / "manifest.json", lambda m: m[key][0].update(
        shape=[size], stream_shape=[size], stream_perm=[0]))


@needs_iverilog
def test_design_that_never_answers_times_out(design, capsys):
    """The bench waited for m_axis_tvalid without bound: one input short, the design waits for
    it and `edgehls simulate` hung. Now the sample fails after a bound, the bench runs no more
    samples, result.json is written and the CLI exits 1 naming the timeout."""
    _hang(design, "inputs", "inputs_q.npy", 6)  # the MLP reads 7
    assert cli.main(["simulate", str(design)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  hung" in out and "no output after" in out and "0 of 4 outputs received" in out
    assert "no cycles measured (the design hung)" in out and "None" not in out
    r = json.loads((design / "sim" / "result.json").read_text())
    assert not r["passed"] and r["samples"] == 1 and r["timeouts"] == [0]
    s = r["per_sample"][0]
    assert s["timeout"] and s["mismatches"] == 4 and s["cycles"] is None
    m = json.loads((design / "manifest.json").read_text())
    bound = 4 * (m["schedule"]["predicted_cycles"] + m["schedule"]["input_load_cycles"]
                 + (6 + 4) / 0.7) + 1000
    assert s["total_cycles"] == int(bound) and f"no output after {int(bound)} cycles" in \
        s["errors"][0]


@needs_iverilog
def test_missing_outputs_time_out(design):
    """Golden expecting more outputs than the design writes: the bench takes the 4 it gets,
    then gives up (the 4 outputs it got are compared; the missing ones count as mismatches)."""
    _hang(design, "outputs", "outputs_q.npy", 6)
    r = simulate.simulate(design, samples=2)
    assert not r["passed"] and r["timeouts"] == [0] and r["samples"] == 1
    s = r["per_sample"][0]
    assert "4 of 6 outputs received" in s["errors"][0] and s["mismatches"] == 2
    assert s["got"] == s["expected"][:4]
