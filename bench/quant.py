"""Quantization figures (issue 6), printed, never asserted.

1. Post-training quantization of the digits CNN and MLP (examples/): top-1 accuracy on the test
   split against float, per configuration: bit widths, scales (pow2 or mult), weights per channel
   or per tensor, calibration (minmax, percentile, mse), and mixed precision (first and last
   layer at 8 bits, the body at 4).
2. Quantized ONNX models (tests/fixtures/quantized, made by onnxruntime.quantization and by
   hand for QONNX): the largest difference from onnxruntime's integer outputs in LSBs and how
   often any difference occurs.
3. The ONNX node tests of QuantizeLinear, DequantizeLinear, QLinearConv and QLinearMatMul
   (tests/conformance/test_quant_nodes.py): passed, rejected with a clear error, failed.

Run: .venv/bin/python bench/quant.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgehls import frontend, pipeline, report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CONFIGS: list[tuple[str, dict]] = [
    ("w8a8 pow2 minmax", {}),
    ("w8a8 mult minmax", {"scale": "mult"}),
    ("w4a8 pow2 minmax", {"wbits": 4}),
    ("w4a8 pow2 mse", {"wbits": 4, "calibrate": "mse"}),
    ("w4a8 mult minmax", {"wbits": 4, "scale": "mult"}),
    ("w4a8 mult percentile:99.9", {"wbits": 4, "scale": "mult", "calibrate": "percentile:99.9"}),
    ("w4a8 mult mse", {"wbits": 4, "scale": "mult", "calibrate": "mse"}),
    ("w4a8 mult mse per-tensor", {"wbits": 4, "scale": "mult", "calibrate": "mse",
                                  "per_channel": False}),
    ("w4a4 mult mse (uniform 4 bit)", {"wbits": 4, "abits": 4, "scale": "mult",
                                       "calibrate": "mse"}),
    ("w3a3 mult mse (uniform 3 bit)", {"wbits": 3, "abits": 3, "scale": "mult",
                                       "calibrate": "mse"}),
]


def mixed(g_float, bits: int) -> dict:
    """First and last layer at 8 bits, every other layer at ``bits``."""
    canon = pipeline.run_passes(g_float, pipeline.passes(pipeline.Options())[:1])
    layers = [n.name for n in canon.nodes() if n.const_name("weight")]
    rules = {name: {"wbits": bits, "abits": bits} for name in layers[1:-1]}
    rules[layers[0]] = {"wbits": 8, "abits": bits}  # its output feeds the body
    rules[layers[-1]] = {"wbits": 8, "abits": 8}
    return {"layers": rules}


def ptq_table(example: str) -> None:
    path = ROOT / "examples" / example / "model.onnx"
    data = np.load(ROOT / "examples" / example / "data.npz")
    g = frontend.load(path)
    rows = list(CONFIGS)
    for bits in (4, 3):
        rows.append((f"mixed: first/last w8, body w{bits}a{bits}, mult mse",
                     {"wbits": bits, "abits": bits, "scale": "mult", "calibrate": "mse",
                      "precision": mixed(g, bits)}))
    print(f"\n{example}: top-1 on {len(data['y_test'])} test samples")
    print("| configuration | float | quantized | loss (points) | agreement |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, kw in rows:
        opts = pipeline.Options(calib=data["x_calib"], **kw)
        q = pipeline.run_passes(g, pipeline.passes(opts))
        acc = report.accuracy(g, q, data["x_test"], data["y_test"])
        print(f"| {label} | {acc['float']:.2%} | {acc['quantized']:.2%} | "
              f"{100 * (acc['float'] - acc['quantized']):+.2f} | {acc['agreement']:.2%} |")


def import_table() -> None:
    import onnx
    from test_qimport import DIGITS, lsb_diff, qonnx_reference

    fix = ROOT / "tests" / "fixtures" / "quantized"
    rng = np.random.default_rng(7)
    cases = [("digits_cnn_qdq", DIGITS["x_test"], None),
             ("digits_cnn_qop", DIGITS["x_test"], None),
             ("resnet_block_qdq", rng.normal(size=(64, 3, 8, 8)), None),
             ("tf_nhwc_qdq", rng.normal(size=(64, 8, 8, 1)), None),
             ("qonnx_cnn", rng.uniform(-1.5, 1.5, (256, 1, 8, 8)),
              qonnx_reference(onnx.load(str(fix / "qonnx_cnn.onnx"))))]
    print("\nQuantized ONNX models against onnxruntime (integer outputs)")
    print("| model | samples | max difference (LSB) | elements that differ |")
    print("| --- | ---: | ---: | ---: |")
    for name, x, ref in cases:
        worst, frac = lsb_diff(fix / f"{name}.onnx", x, ref)
        print(f"| {name} | {len(x)} | {worst} | {frac:.2%} |")


def node_table() -> None:
    import tempfile
    from collections import Counter

    from conformance import test_quant_nodes as qn

    with tempfile.TemporaryDirectory() as tmp:
        results = [qn.result(name, Path(tmp)) for name in sorted(qn.TESTS)]
    print("\nONNX node tests of the quantization ops (onnx 1.22.0 wheel data)")
    print("| op | tests | passed | rejected | failed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for op in qn.OPS:
        c = Counter(r.status for r in results if r.op == op)
        print(f"| {op} | {sum(c.values())} | {c['passed']} | {c['rejected']} | {c['failed']} |")


def main() -> None:
    for example in ("digits_cnn", "digits_mlp"):
        ptq_table(example)
    import_table()
    node_table()


if __name__ == "__main__":
    main()
