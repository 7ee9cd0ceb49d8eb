"""ONNX backend node-test conformance: a table op x (passed, rejected, failed), printed.

Every single-node test of the onnx==1.22.0 wheel whose op edgehls supports (``frontend.SUPPORTED``)
is run by ``tests/conformance/node_check.py``; the wheel is downloaded once into the cache (see
``tests/conformance/wheel.py``). A second table does the same for the supplementary tests of
``tests/conformance/extra.py``. ``canon`` and ``quant`` count the passed tests whose
canonicalized graph also matched and whose quantized run stayed within its bound; ``err/bound``
is, for the test closest to its bound, the quantized error and the bound in output LSBs;
``known`` counts failures that are known bugs (``node_check.KNOWN_BUGS``, xfail in pytest).
Exit status 1 if a test failed that is not a known bug.

    .venv/bin/python bench/conformance.py [--details] [--ops Conv MaxPool]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# tests/ first: this script's own name would otherwise shadow the tests/conformance package
sys.path.insert(0, str(ROOT / "tests"))
from conformance import extra, node_check, wheel  # noqa: E402

from edgehls.frontend import SUPPORTED  # noqa: E402

COLUMNS = ("passed", "rejected", "failed")


def table(results: list[node_check.Result], ops: tuple[str, ...]) -> str:
    head = f"{'op':<20}{'tests':>6}{'passed':>8}{'rejected':>10}{'failed':>8}{'known':>7}" \
           f"{'canon':>7}{'quant':>7}  {'err/bound (LSB)':>16}"
    lines = [head, "-" * len(head)]
    total = dict.fromkeys((*COLUMNS, "known", "canon", "quant", "tests"), 0)
    for op in ops:
        rs = [r for r in results if r.op == op]
        row = {c: sum(r.status == c for r in rs) for c in COLUMNS}
        row.update(tests=len(rs), canon=sum(r.canonical for r in rs),
                   known=sum(r.status == "failed" and r.test in node_check.KNOWN_BUGS
                             for r in rs),
                   quant=sum(r.quantized for r in rs))
        for k, v in row.items():
            total[k] += v
        q = [r for r in rs if r.err_lsb is not None]
        worst = max(q, key=lambda r: r.err_lsb / max(r.bound_lsb, 1e-30), default=None)
        eb = f"{worst.err_lsb:.2f}/{worst.bound_lsb:.2f}" if worst else "-"
        lines.append(f"{op:<20}{row['tests']:>6}{row['passed']:>8}{row['rejected']:>10}"
                     f"{row['failed']:>8}{row['known']:>7}{row['canon']:>7}{row['quant']:>7}"
                     f"  {eb:>16}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<20}{total['tests']:>6}{total['passed']:>8}{total['rejected']:>10}"
                 f"{total['failed']:>8}{total['known']:>7}{total['canon']:>7}{total['quant']:>7}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--details", action="store_true", help="one line per node test")
    ap.add_argument("--ops", nargs="+", default=list(SUPPORTED), choices=SUPPORTED)
    args = ap.parse_args()
    try:
        path = wheel.wheel_path()
    except wheel.WheelUnavailable as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    ops = tuple(args.ops)
    sets = [(f"ONNX {wheel.VERSION} backend node tests ({path.name})",
             wheel.node_tests(path, ops)),
            ("supplementary node tests (tests/conformance/extra.py)",
             [t for t in extra.extra_tests() if t.op in ops])]
    bad = False
    for title, tests in sets:
        results = [node_check.check(t) for t in tests]
        if args.details:
            for r in results:
                eb = f" [{r.err_lsb:.2f}/{r.bound_lsb:.2f} LSB]" if r.err_lsb is not None else ""
                known = " (known bug)" if r.test in node_check.KNOWN_BUGS else ""
                print(f"{r.status:<9}{r.stage:<13}{r.test}{eb}{known}  {r.detail}")
        print(f"{title}\n{table(results, ops)}\n")
        bad |= any(r.status == "failed" and r.test not in node_check.KNOWN_BUGS
                   for r in results)
    for name, why in node_check.KNOWN_BUGS.items():
        print(f"known bug {name}: {why}")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
