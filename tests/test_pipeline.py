"""edgehls.pipeline: the pass manager, data loading, golden inputs and the output directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from models import mlp, save

from edgehls import frontend, ir, pipeline
from edgehls.errors import DataError, OptionError, OutputError, PassError, UnsupportedError
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize

SIZES = [12, 8, 5]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> ir.Graph:
    path = save(mlp(SIZES, seed=3, softmax=True), tmp_path_factory.mktemp("m") / "m.onnx")
    return frontend.load(path)


def kinds(g: ir.Graph) -> list[str]:
    return [n.op.kind for n in g.nodes()]


# --- pass manager ----------------------------------------------------------------------------

def test_passes_are_objects_with_their_options():
    p = pipeline.passes(pipeline.Options(wbits=6, abits=5, seed=7))
    assert [pipeline.pass_name(x) for x in p] == ["canonicalize", "quantize"]
    assert p[1] == Quantize(wbits=6, abits=5, seed=7)
    assert "wbits=6" in repr(p[1])


def test_after_frontend_returns_the_graph_unchanged(graph):
    g = pipeline.run_passes(graph, pipeline.passes(pipeline.Options()), after="frontend")
    assert g is graph
    assert {"Gemm", "Relu", "Softmax"} <= set(kinds(g))


def test_after_canonicalize(graph):
    before = kinds(graph)
    g = pipeline.run_passes(graph, pipeline.passes(pipeline.Options()), after="canonicalize")
    assert kinds(g) == ["Input", "Dense", "Dense"]
    assert kinds(graph) == before  # passes do not modify their input


@pytest.mark.parametrize("after", ["quantize", None])
def test_after_quantize_or_none_runs_everything(graph, after):
    g = pipeline.run_passes(graph, pipeline.passes(pipeline.Options()), after=after)
    assert kinds(g) == ["Input", "QDense", "QDense"]
    g.verify()
    assert all(g.tensor(t).q is not None for t in (*g.inputs, *g.outputs))


def test_empty_pipeline(graph):
    assert pipeline.run_passes(graph, []) is graph


@pytest.mark.parametrize("after", ["bogus", "Quantize", "golden", ""])
def test_unknown_pass(graph, after):
    with pytest.raises(OptionError) as e:
        pipeline.run_passes(graph, pipeline.passes(pipeline.Options()), after=after)
    assert str(e.value) == (f"--after {after!r}: no such pass; passes: frontend, canonicalize, "
                            "quantize")


def test_unknown_pass_lists_the_pipeline_given(graph):
    with pytest.raises(OptionError, match=r"passes: frontend, canonicalize$"):
        pipeline.run_passes(graph, [Canonicalize()], after="quantize")


def test_pass_error_names_the_pass_and_those_before(graph):
    # Quantize straight on the frontend graph is an ordering bug: the error says where
    with pytest.raises(PassError) as e:
        pipeline.run_passes(graph, [Quantize()])
    assert str(e.value).startswith("pass quantize (after frontend): Quantize requires Input, "
                                   "Dense, Conv, MaxPool and AddAct nodes")
    assert isinstance(e.value.__cause__, PassError)


@dataclass(frozen=True)
class Breaks:
    """A pass that returns a graph failing verify()."""

    def __call__(self, g: ir.Graph) -> ir.Graph:
        g = g.copy()
        g.outputs = ["no_such_tensor"]
        return g


def test_verify_runs_after_every_pass(graph):
    with pytest.raises(PassError) as e:
        pipeline.run_passes(graph, [Canonicalize(), Breaks()])
    assert str(e.value) == ("pass breaks (after frontend, canonicalize): graph input/output "
                            "'no_such_tensor' is not produced by any node")


def test_user_errors_pass_through_unwrapped(tmp_path):
    path = save(mlp([4, 3], seed=0), tmp_path / "m.onnx")
    g = frontend.load(path)

    @dataclass(frozen=True)
    class Rejects:
        def __call__(self, g: ir.Graph) -> ir.Graph:
            raise UnsupportedError("node 'x' (Conv): not supported")

    with pytest.raises(UnsupportedError, match=r"^node 'x' \(Conv\): not supported$"):
        pipeline.run_passes(g, [Rejects()])


# --- golden samples --------------------------------------------------------------------------

def test_golden_samples_random_without_calib(graph):
    opts = pipeline.Options(samples=5, seed=4)
    x = pipeline.golden_samples(graph, opts)
    assert x.shape == (5, 1, SIZES[0]) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and np.unique(x).size == x.size
    np.testing.assert_array_equal(x, pipeline.golden_samples(graph, opts))
    assert not np.array_equal(x, pipeline.golden_samples(graph, pipeline.Options(samples=5)))


def test_golden_samples_from_calib(graph):
    calib = np.arange(6 * SIZES[0], dtype=np.float64).reshape(6, SIZES[0])
    x = pipeline.golden_samples(graph, pipeline.Options(samples=4, calib=calib))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, calib[:4, None, :].astype(np.float32))


def test_golden_samples_random_when_calib_is_short(graph):
    calib = np.full((2, SIZES[0]), 7.0, np.float32)
    x = pipeline.golden_samples(graph, pipeline.Options(samples=3, calib=calib))
    assert x.shape == (3, 1, SIZES[0]) and np.abs(x).max() <= 1.0


def test_golden_samples_bad_calib_shape(graph):
    with pytest.raises(DataError, match=r"does not match model input"):
        pipeline.golden_samples(graph, pipeline.Options(calib=np.zeros((8, SIZES[0] + 1))))


# --- load_npz --------------------------------------------------------------------------------

def test_load_npz_exact_keys(tmp_path):
    a, b = np.ones((3, 4)), np.zeros(3, np.int64)
    np.savez(tmp_path / "d.npz", x_test=a, y_test=b, x_calib=a * 2)
    got = pipeline.load_npz(tmp_path / "d.npz", ("x_test", "y_test"))
    assert sorted(got) == ["x_test", "y_test"]
    np.testing.assert_array_equal(got["x_test"], a)
    np.testing.assert_array_equal(got["y_test"], b)
    np.testing.assert_array_equal(pipeline.load_npz(tmp_path / "d.npz", ("x_calib",))["x_calib"],
                                  a * 2)


def test_load_npz_prefers_exact_keys_over_fallback(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros(2), x_calib=np.ones(2))
    np.testing.assert_array_equal(
        pipeline.load_npz(tmp_path / "d.npz", ("x_calib",))["x_calib"], np.ones(2))


def test_load_npz_fallback_calib(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((2, 4), 3.0))
    got = pipeline.load_npz(tmp_path / "d.npz", ("x_calib",))
    assert list(got) == ["x_calib"] and got["x_calib"].shape == (2, 4)


def test_load_npz_fallback_eval(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 4)), y=np.arange(5))
    got = pipeline.load_npz(tmp_path / "d.npz", ("x_test", "y_test"))
    assert sorted(got) == ["x_test", "y_test"]
    np.testing.assert_array_equal(got["y_test"], np.arange(5))


def test_load_npz_bool_labels_are_numbers(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((2, 4)), y=np.array([True, False]))
    assert pipeline.load_npz(tmp_path / "d.npz", ("x_test", "y_test"))["y_test"].dtype == bool


@pytest.mark.parametrize("arrays", [{"x_test": 1, "y": 2}, {"y_test": 1, "y": 2}, {"z": 1}, {}])
def test_load_npz_missing_keys(tmp_path, arrays):
    np.savez(tmp_path / "d.npz", **{k: np.full(2, v) for k, v in arrays.items()})
    with pytest.raises(DataError) as e:
        pipeline.load_npz(tmp_path / "d.npz", ("x_test", "y_test"))
    found = ", ".join(sorted(arrays))
    assert str(e.value) == (f"{tmp_path / 'd.npz'} has arrays [{found}]; expected x_test and "
                            "y_test (or x and y)")


def test_load_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"cannot read .*nope\.npz: no such file"):
        pipeline.load_npz(tmp_path / "nope.npz", ("x_calib",))


def test_load_npz_directory(tmp_path):
    with pytest.raises(DataError, match=r"no such file"):
        pipeline.load_npz(tmp_path, ("x_calib",))


@pytest.mark.parametrize("content", ["text", "npy", "empty"])
def test_load_npz_not_an_npz(tmp_path, content):
    path = tmp_path / "d.npz"
    if content == "npy":
        with open(path, "wb") as f:  # given a bare path, np.save would append .npy
            np.save(f, np.zeros(3))
    else:
        path.write_text("0.1, 0.2\n" if content == "text" else "")
    with pytest.raises(DataError, match=r"is not an \.npz archive: write it with numpy\.savez"):
        pipeline.load_npz(path, ("x_calib",))


def test_load_npz_object_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", x_calib=np.array([None, 1], dtype=object))
    with pytest.raises(DataError, match=r"cannot read .*allow_pickle"):
        pipeline.load_npz(tmp_path / "d.npz", ("x_calib",))


def test_load_npz_strings(tmp_path):
    np.savez(tmp_path / "d.npz", x_calib=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"array x_calib has dtype <U1; expected numbers"):
        pipeline.load_npz(tmp_path / "d.npz", ("x_calib",))


# --- evaluation data and the output directory ------------------------------------------------

def test_check_eval():
    pipeline.check_eval(pipeline.Options())
    pipeline.check_eval(pipeline.Options(eval_x=np.zeros((3, 1, 4)), eval_y=np.zeros(3)))
    with pytest.raises(DataError, match=r"3 samples but 6 labels"):
        pipeline.check_eval(pipeline.Options(eval_x=np.zeros((3, 4)), eval_y=np.zeros((3, 2))))


@pytest.mark.parametrize(("labels", "shown"), [([0, 1, 99], "99"), ([0, 0.5, 1], "0.5"),
                                                ([0, -1, 2], "-1"), ([0, np.nan, 1], "nan")])
def test_check_eval_wants_class_indices(labels, shown):
    opts = pipeline.Options(eval_x=np.zeros((3, 4)), eval_y=np.array(labels))
    with pytest.raises(DataError, match=f"evaluation label {shown} is not a class index "
                                        r"0\.\.3 \(the model has 4 outputs\)"):
        pipeline.check_eval(opts, 4)
    pipeline.check_eval(pipeline.Options(eval_x=np.zeros((3, 4)), eval_y=np.array([0, 3, 2.0])), 4)
    pipeline.check_eval(pipeline.Options(eval_x=np.zeros((2, 4)), eval_y=np.array([True, False])),
                        4)


def test_complex_data_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x_calib=np.zeros((2, 3), np.complex64))
    with pytest.raises(DataError, match="expected numbers"):
        pipeline.load_npz(path, ("x_calib",))


def test_prepare_output(tmp_path):
    out = tmp_path / "a" / "b"
    pipeline.prepare_output(out, force=False)
    assert out.is_dir()
    (out / "f").write_text("x")
    with pytest.raises(OutputError, match=r"not empty; pass --force"):
        pipeline.prepare_output(out, force=False)
    assert (out / "f").is_file()
    (out / "report.md").write_text("old")
    (out / "golden").mkdir()
    pipeline.prepare_output(out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["f"]  # only compile's outputs go


def test_prepare_output_errors(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"exists and is not a directory"):
        pipeline.prepare_output(tmp_path / "f", force=True)
    with pytest.raises(OutputError, match=r"cannot create output directory .*Not a directory"):
        pipeline.prepare_output(tmp_path / "f" / "sub", force=False)
    assert (tmp_path / "f").read_text() == "x"


def test_compile_model_returns_the_report(tmp_path):
    model = save(mlp(SIZES, seed=3), tmp_path / "m.onnx")
    rep = pipeline.compile_model(model, tmp_path / "out", pipeline.Options(pe=(2, 3), samples=2))
    assert rep["pe"] == [2, 3] and len(rep["layers"]) == 2 and rep["accuracy"] is None
    assert np.load(tmp_path / "out" / "golden" / "inputs.npy").shape == (2, 1, SIZES[0])


def test_compile_model_checks_bits_before_reading(tmp_path):
    with pytest.raises(OptionError, match=r"--abits 20 is out of range"):
        pipeline.compile_model(Path("/nonexistent.onnx"), tmp_path / "out",
                               pipeline.Options(abits=20))
    assert not (tmp_path / "out").exists()
