"""ONNX backend node-test conformance (issue 4): every node test of the onnx==1.22.0 wheel
whose op edgehls supports, plus the supplementary tests of ``extra``, is passed (the float
golden path matches, the quantized path stays within its bound) or rejected with a clear
error; none is computed wrongly. ``bench/conformance.py`` prints the table op x (passed,
rejected, failed)."""

from __future__ import annotations

import functools

import pytest

from conformance import extra, node_check, wheel
from edgehls.frontend import SUPPORTED

try:
    WHEEL = wheel.wheel_path()
except wheel.WheelUnavailable as e:
    pytest.skip(f"ONNX backend node tests unavailable (needs onnx=={wheel.VERSION} wheel, "
                f"downloaded once): {e}", allow_module_level=True)

TESTS = {t.name: t for t in [*wheel.node_tests(WHEEL, SUPPORTED), *extra.extra_tests()]}


@functools.cache
def result(name: str) -> node_check.Result:
    return node_check.check(TESTS[name])


def _param(name: str) -> object:
    why = node_check.KNOWN_BUGS.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
    return pytest.param(name, id=name, marks=marks)


def test_known_bugs_are_tests() -> None:
    assert set(node_check.KNOWN_BUGS) <= set(TESTS)


@pytest.mark.parametrize("name", [_param(n) for n in TESTS])
def test_node(name: str) -> None:
    r = result(name)
    assert r.status != "failed", f"{name} ({r.stage}): {r.detail}"
    if r.status == "rejected":  # a clear error names what is wrong
        assert r.detail and ("node " in r.detail or "input " in r.detail
                             or "graph output" in r.detail or "tensor " in r.detail), r.detail


@pytest.mark.parametrize("op", SUPPORTED)
def test_op(op: str) -> None:
    """Per op: no failure outside the known bugs, and some test passes the float path."""
    rs = [result(n) for n, t in TESTS.items() if t.op == op]
    failed = [r.test for r in rs if r.status == "failed" and r.test not in node_check.KNOWN_BUGS]
    assert not failed, f"{op}: failed {failed}"
    assert any(r.status == "passed" for r in rs), f"{op}: no node test passes"


def test_quantized_paths_exercised() -> None:
    """The quantized check is not vacuous: most ops reach it."""
    ops = {result(n).op for n in TESTS if result(n).quantized}
    assert len(ops) >= 15, sorted(ops)
