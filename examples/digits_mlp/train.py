"""Train the digits MLP (64-40-24-10) and write model.onnx and data.npz beside this script.

The network is scikit-learn's MLPClassifier on the bundled 8x8 digits set (no download), pixels
scaled to [0, 1]. The hidden sizes 40 and 24 are deliberately not multiples of 8, so the compiler's
tiling of partial tiles is exercised by the demo.

Why the ONNX export is written by hand with onnx.helper rather than skl2onnx: skl2onnx exports the
whole classifier, not the network. It appends ArgMax, Cast, ZipMap (a map-typed output) and label
lookup nodes that are post-processing, not arithmetic to put in hardware, and it adds a dependency.
The graph written here is exactly the network: Gemm + Relu, Gemm + Relu, Gemm (logits), Softmax.
The compiler drops the final Softmax and reports logits (argmax is unchanged).

Contract: running the script twice writes byte-identical model.onnx and data.npz (fixed seeds, no
timestamps: data.npz is written with a fixed zip date). data.npz keys are those that
`edgehls compile --calib/--eval` read: x_calib, x_test, y_test.

Usage: python examples/digits_mlp/train.py
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
HIDDEN = (40, 24)
N_CALIB = 256
OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17; every onnxruntime >= 1.13 reads it


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return x_train, x_test, y_train, y_test: float32 pixels in [0, 1], int64 labels."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def train(x_train: np.ndarray, y_train: np.ndarray) -> MLPClassifier:
    # sklearn's defaults (adam, tol=1e-4) converge in under 300 epochs; the cap just leaves room.
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", max_iter=1000,
                        random_state=0)
    return clf.fit(x_train, y_train)


def to_onnx(clf: MLPClassifier) -> onnx.ModelProto:
    """Gemm(transB=1) [+ Relu] per layer, then Softmax; weights stored [N, K] as torch does."""
    nodes, inits = [], []
    x = "input"
    last = len(clf.coefs_) - 1
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        wname, bname, y = f"fc{i + 1}.weight", f"fc{i + 1}.bias", f"fc{i + 1}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T, np.float32), wname))
        inits.append(numpy_helper.from_array(b.astype(np.float32), bname))
        nodes.append(helper.make_node("Gemm", [x, wname, bname], [y], name=y, transB=1))
        x = y
        if i < last:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i + 1}"], name=f"relu{i + 1}"))
            x = f"relu{i + 1}"
    nodes.append(helper.make_node("Softmax", [x], ["probs"], name="softmax", axis=1))
    n_out = clf.coefs_[-1].shape[1]
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgehls examples/digits_mlp/train.py",
                              doc_string="sklearn MLPClassifier 64-40-24-10 on load_digits, x/16")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with a fixed zip timestamp so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def main() -> None:
    x_train, x_test, y_train, y_test = load_data()
    clf = train(x_train, y_train)
    sk_acc = float(np.mean(clf.predict(x_test) == y_test))

    model = to_onnx(clf)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"input": x_test})[0]
    ort_pred = probs.argmax(axis=1)
    ort_acc = float(np.mean(ort_pred == y_test))
    agree = float(np.mean(ort_pred == clf.predict(x_test)))
    if agree != 1.0:
        raise SystemExit(f"onnxruntime disagrees with sklearn on {1 - agree:.2%} of test samples")

    (HERE / "model.onnx").write_bytes(model.SerializeToString())
    save_npz(HERE / "data.npz", {"x_calib": x_train[:N_CALIB], "x_test": x_test, "y_test": y_test})
    print(f"float test accuracy: sklearn {sk_acc:.4f}, onnxruntime {ort_acc:.4f} "
          f"({len(y_test)} test samples, {clf.n_iter_} epochs)")
    print(f"wrote {HERE / 'model.onnx'} and {HERE / 'data.npz'}")


if __name__ == "__main__":
    main()
