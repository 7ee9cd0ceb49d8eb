"""Train the digits CNN with PyTorch and write model.onnx and data.npz beside this script.

The network is a small LeNet-style CNN on scikit-learn's bundled 8x8 digits (no download),
pixels scaled to [0, 1], the same stratified 75/25 split as examples/digits_mlp:

    Conv3x3(1->8, pad 1) + BatchNorm + ReLU, MaxPool 2x2      8x8x1 -> 4x4x8
    Conv3x3(8->16, pad 1) + BatchNorm + ReLU, MaxPool 2x2     4x4x8 -> 2x2x16
    Flatten (C, H, W order, 64 values), Linear(64 -> 10)      logits, no softmax

It is exported with PyTorch's legacy TorchScript exporter (`dynamo=False`, opset 17), input
"input" [N, 1, 8, 8] with a dynamic batch axis, output "logits". The export keeps the
BatchNormalization nodes (`training=TrainingMode.PRESERVE` on a model in eval mode skips the
exporter's own Conv+BN fusion), so folding them is the compiler's job, as it is for a model a
user exports. The Flatten of a 2x2x16 map exercises the compiler's mapping of the activation
memory order onto the classifier's weight rows.

Contract: running the script twice writes byte-identical model.onnx and data.npz (fixed seeds,
deterministic algorithms on one thread, doc strings stripped, data.npz written with a fixed zip
date). data.npz keys are those that `edgehls compile --calib/--eval` read: x_calib (256 training
rows), x_test, y_test. onnxruntime's predictions on the test split must equal torch's.

Needs torch, onnx, onnxruntime and scikit-learn (the demo and the tests need only the files).
Usage: python examples/digits_cnn/train.py [--out DIR]   (about 10 s on two cores)
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
N_CALIB = 256
OPSET = 17
EPOCHS = 40
BATCH = 32
LR = 3e-3


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return x_train, x_test [N, 1, 8, 8] float32 pixels in [0, 1], y_train, y_test int64."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def make_net() -> nn.Sequential:
    """Named modules, so the ONNX nodes and weights read conv1, bn1, ..., fc in reports."""
    layers: dict[str, nn.Module] = {}
    for i, (cin, cout) in enumerate([(1, 8), (8, 16)], start=1):
        layers |= {f"conv{i}": nn.Conv2d(cin, cout, 3, padding=1), f"bn{i}": nn.BatchNorm2d(cout),
                   f"relu{i}": nn.ReLU(), f"pool{i}": nn.MaxPool2d(2)}
    layers |= {"flatten": nn.Flatten(), "fc": nn.Linear(16 * 2 * 2, 10)}
    return nn.Sequential(OrderedDict(layers))


def train(net: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    """Adam on shuffled minibatches, cosine learning-rate decay; the order comes from SEED."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH):
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    net.eval()


def export(net: nn.Module, path: Path) -> onnx.ModelProto:
    """Legacy TorchScript export, BatchNormalization kept; doc strings stripped for stable bytes."""
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and a constant-folding caution that concerns
        # models exported in training mode (this one is in eval mode: nothing to fold mutates).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            net, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    model = onnx.load(path)
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
    model.producer_name = f"edgehls examples/digits_cnn/train.py (torch {torch.__version__})"
    model.producer_version = ""
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: here)")
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    x_train, x_test, y_train, y_test = load_data()
    net = make_net()
    train(net, x_train, y_train)
    with torch.no_grad():
        torch_pred = net(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    torch_acc = float(np.mean(torch_pred == y_test))

    model = export(net, out / "model.onnx")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_pred = sess.run(None, {"input": x_test})[0].argmax(axis=1)
    ort_acc = float(np.mean(ort_pred == y_test))
    if not np.array_equal(ort_pred, torch_pred):
        raise SystemExit(f"onnxruntime disagrees with torch on "
                         f"{int(np.sum(ort_pred != torch_pred))} test samples")

    save_npz(out / "data.npz", {"x_calib": x_train[:N_CALIB], "x_test": x_test,
                                "y_test": y_test})
    print(f"float test accuracy: torch {torch_acc:.4f}, onnxruntime {ort_acc:.4f} "
          f"({len(y_test)} test samples, {EPOCHS} epochs, {time.perf_counter() - t0:.1f} s)")
    print(f"wrote {out / 'model.onnx'} and {out / 'data.npz'}")


if __name__ == "__main__":
    main()
