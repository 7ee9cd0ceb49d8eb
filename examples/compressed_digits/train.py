"""Train the digits MLP (64-40-24-10) with Deep Compression in the loop; write model.onnx and
data.npz beside this script.

Same data as examples/digits_mlp (scikit-learn's bundled 8x8 digits, x / 16, stratified 75/25
split, random_state=0) and the same layer sizes, trained in plain numpy (Adam, minibatches, fixed
seed) in three stages, as Han et al. do in Deep Compression:

1. dense training;
2. iterative tile pruning: in ``ROUNDS`` steps, the 8 x 8 weight tiles of lowest L2 norm are set
   to zero (towards ``KEEP_TILES`` live tiles per layer) and the network is retrained with the
   mask fixed. Tiles are cut exactly as edgehls's tiler cuts W [K, N] (Gemm, transB=0) at
   ``--pe 8x8``: rows kt*8.., columns nt*8.., edge tiles smaller; a zero tile costs no ROM bits
   and no cycles;
3. weight sharing: per layer, the surviving weights are clustered into 2**SHARE_BITS - 1 values
   (plus the exact zero) by k-means with linear initialisation (scikit-learn, fixed seed), and
   the centroids are fine-tuned with the gradients summed over each cluster.

Why the clustering runs on integer weights: edgehls quantizes each output column n to int8 with
its own power-of-two scale 2**-frac[n] (frac[n] from the column's max |w|). Clustering float
weights would give 16 floats per layer but many more integers once every column is scaled. So
the codebook holds integers v (|v| <= 127), column n's weights are v * 2**-frac[n], and each
non-empty column keeps one weight with |v| >= 64 so the compiler derives the same frac[n] again:
the layer then has <= 2**SHARE_BITS distinct int8 weights and `--share-bits` is lossless.

The ONNX graph is written by hand with onnx.helper, as in examples/digits_mlp/train.py (whose
docstring says why): Gemm(transB=0) + Relu, Gemm + Relu, Gemm (logits), Softmax. The model's
metadata records the dense float test accuracy, the yardstick for the compressed model.

Contract: running the script twice writes byte-identical model.onnx and data.npz (fixed seeds, no
timestamps). data.npz keys: x_calib, x_test, y_test, as `edgehls compile --calib/--eval` read.

Usage: python examples/compressed_digits/train.py [--out DIR]   (about 3 s on two cores)
"""

from __future__ import annotations

import argparse
import io
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
SIZES = (64, 40, 24, 10)
TILE = 8  # the --pe R = C this model is pruned for
KEEP_TILES = (14, 8, 5)  # live 8x8 tiles per layer, of 40, 15 and 6
SHARE_BITS = 3  # 7 shared non-zero values + 0 per layer
ROUNDS = 4
SEED = 0
N_CALIB = 256
QMAX = 127  # int8 weights, as `edgehls compile --wbits 8` (the default) stores them
OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17; every onnxruntime >= 1.13 reads it

Params = list[tuple[np.ndarray, np.ndarray]]  # (W [K, N], b [N]) per layer


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return x_train, x_test, y_train, y_test: float32 pixels in [0, 1], int64 labels."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


# --- the network in numpy ----------------------------------------------------------------------

def forward(params: Params, x: np.ndarray) -> list[np.ndarray]:
    """Activations: the input, each hidden ReLU output, then the logits."""
    acts = [x]
    for i, (w, b) in enumerate(params):
        z = acts[-1] @ w + b
        acts.append(np.maximum(z, 0.0) if i < len(params) - 1 else z)
    return acts


def grads(params: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradients of the mean softmax cross-entropy."""
    acts = forward(params, x)
    z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    delta = p / len(y)
    out = []
    for i in range(len(params) - 1, -1, -1):
        out.append((acts[i].T @ delta, delta.sum(axis=0)))
        if i:
            delta = (delta @ params[i][0].T) * (acts[i] > 0)
    return out[::-1]


def accuracy(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x)[-1].argmax(axis=1) == y).mean())


@dataclass
class Adam:
    lr: float
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.t = 0

    def step(self, ps: list[np.ndarray], gs: list[np.ndarray]) -> None:
        if not self.m:
            self.m = [np.zeros_like(p) for p in ps]
            self.v = [np.zeros_like(p) for p in ps]
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, g, m, v in zip(ps, gs, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def batches(rng: np.random.Generator, n: int, size: int = 64):
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i:i + size]


def train(params: Params, masks: list[np.ndarray], x: np.ndarray, y: np.ndarray,
          epochs: int, lr: float, rng: np.random.Generator, decay: float = 1e-4) -> None:
    """Adam with L2 weight decay; masked weights stay exactly zero."""
    opt = Adam(lr)
    flat = [a for wb in params for a in wb]
    for _ in range(epochs):
        for idx in batches(rng, len(x)):
            gs = grads(params, x[idx], y[idx])
            gflat = []
            for (w, _b), (gw, gb), mask in zip(params, gs, masks, strict=True):
                gflat += [(gw + decay * w) * mask, gb]
            opt.step(flat, gflat)


# --- tile pruning ------------------------------------------------------------------------------

def tile_norms(w: np.ndarray) -> np.ndarray:
    """L2 norm of each TILE x TILE tile of w [K, N], cut as edgehls's tiler cuts it."""
    kts, nts = -(-w.shape[0] // TILE), -(-w.shape[1] // TILE)
    padded = np.zeros((kts * TILE, nts * TILE))
    padded[: w.shape[0], : w.shape[1]] = w
    return np.sqrt((padded.reshape(kts, TILE, nts, TILE) ** 2).sum(axis=(1, 3)))


def tile_mask(w: np.ndarray, mask: np.ndarray, keep: int) -> np.ndarray:
    """The mask with all but the ``keep`` highest-norm tiles of w * mask zeroed. Each column
    group keeps its best tile: the tiler spends a tile on a group without one anyway (its
    bias pass), and the group's units would be constants."""
    norms = tile_norms(w * mask)
    first = np.zeros(norms.shape, dtype=bool)
    first[np.argmax(norms, axis=0), np.arange(norms.shape[1])] = True
    order = np.lexsort((-norms.ravel(), ~first.ravel()))  # the column bests, then by norm
    live = np.zeros(norms.size, dtype=bool)
    live[order[:keep]] = True
    live = live.reshape(norms.shape)
    full = np.repeat(np.repeat(live, TILE, axis=0), TILE, axis=1)
    return mask * full[: w.shape[0], : w.shape[1]]


def prune(params: Params, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
          ) -> list[np.ndarray]:
    """Iterative pruning: each round drops tiles towards KEEP_TILES, then retrains."""
    masks = [np.ones_like(w) for w, _ in params]
    for r in range(1, ROUNDS + 1):
        for i, (w, _b) in enumerate(params):
            total = tile_norms(w).size
            keep = round(total - (total - KEEP_TILES[i]) * r / ROUNDS)
            masks[i] = tile_mask(w, masks[i], keep)
            w *= masks[i]
        train(params, masks, x, y, epochs=60, lr=1e-3, rng=rng)
    drop_dead_units(params, masks, x)
    return masks


def drop_dead_units(params: Params, masks: list[np.ndarray], x: np.ndarray) -> None:
    """Make hidden units that no training sample moves exact constants: zero their weights
    (and their outgoing weights when the constant is 0).

    Under Adam with weight decay such a unit's weights only decay, towards 1e-30 and below;
    per-channel quantization would scale those up to full int8 range (and edgehls would then
    lower the scale for the bias's sake, leaving the codebook). Exact zeros say what they are.
    """
    acts = forward(params, x)
    for i in range(len(params) - 1):
        (w, b), (w_next, _) = params[i], params[i + 1]
        z = acts[i] @ w + b
        dead = z.max(axis=0) <= 0.0
        const = np.abs(z - b).max(axis=0) < 1e-3  # weights too small to matter
        masks[i][:, dead | const] = 0.0
        w[:, dead | const] = 0.0
        b[dead] = np.minimum(b[dead], 0.0)  # the unit outputs 0, as it did on every sample
        off = dead | (const & (b <= 0.0))
        masks[i + 1][off, :] = 0.0
        w_next[off, :] = 0.0


# --- weight sharing in the integer domain --------------------------------------------------------

def column_fracs(w: np.ndarray) -> np.ndarray:
    """The power-of-two weight scale per output column that edgehls derives (int8, per channel):
    the largest frac with max|w[:, n]| * 2**frac <= 127."""
    fracs = []
    for col in np.abs(w).T:
        m = float(col.max())
        f = math.floor(math.log2(QMAX / m)) if m > 0 else 0
        while m > 0 and m * 2.0**f > QMAX:
            f -= 1
        fracs.append(f)
    return np.array(fracs, dtype=np.int64)


@dataclass
class Shared:
    """One layer's shared weights: W = book[idx] * 2**-frac[column]; idx -1 is the zero."""

    book: np.ndarray  # float centroids in int8 units, [2**SHARE_BITS - 1]
    idx: np.ndarray  # int [K, N], -1 where the weight is pruned
    frac: np.ndarray  # int [N]

    def weights(self) -> np.ndarray:
        vals = np.where(self.idx >= 0, self.book[np.maximum(self.idx, 0)], 0.0)
        return vals * 2.0 ** -self.frac[None, :].astype(np.float64)

    def grad(self, gw: np.ndarray) -> np.ndarray:
        """d loss / d centroid: the weight gradients of each cluster, summed (Deep Compression)."""
        g = gw * 2.0 ** -self.frac[None, :].astype(np.float64)
        live = self.idx >= 0
        return np.bincount(self.idx[live], weights=g[live], minlength=self.book.size)


def cluster(w: np.ndarray, mask: np.ndarray) -> Shared:
    """k-means of the layer's live int8-scaled weights, linear init, then anchor columns."""
    frac = column_fracs(w * mask)
    u = w * 2.0 ** frac[None, :].astype(np.float64)
    live = mask > 0
    k = (1 << SHARE_BITS) - 1
    vals = u[live].reshape(-1, 1)
    init = np.linspace(vals.min(), vals.max(), k).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=init, n_init=1, random_state=SEED).fit(vals)
    idx = np.full(w.shape, -1, dtype=np.int64)
    idx[live] = km.labels_
    book = km.cluster_centers_.ravel().copy()
    _anchor(u, idx, book)
    return Shared(book, idx, frac)


def _anchor(u: np.ndarray, idx: np.ndarray, book: np.ndarray) -> None:
    """Give each non-empty column one weight on a centroid with |v| >= 64, so that the column's
    max |v| stays in [64, 127] and edgehls derives the same frac (else its int8 weights would
    be the shared values times 2, outside the codebook): a column's largest weight moves to
    the nearest such centroid when its own is smaller."""
    half = (QMAX + 1) // 2
    if not (np.abs(book) >= half).any():  # few, small centroids: stretch the widest one
        i = int(np.argmax(np.abs(book)))
        book[i] = half if book[i] >= 0 else -half
    big = np.abs(book) >= half
    for n in range(u.shape[1]):
        rows = np.flatnonzero(idx[:, n] >= 0)
        if rows.size == 0 or big[idx[rows, n]].any():
            continue
        r = rows[np.argmax(np.abs(u[rows, n]))]
        cand = np.flatnonzero(big)
        idx[r, n] = cand[np.argmin(np.abs(book[cand] - u[r, n]))]


def finetune(params: Params, shared: list[Shared], x: np.ndarray, y: np.ndarray,
             rng: np.random.Generator, epochs: int = 60) -> None:
    """Train the centroids (and biases) with the cluster assignment fixed; the centroids that
    anchor a column stay at |v| >= 64; at the end they are rounded to integers."""
    opt = Adam(lr=0.05)
    biases = [b for _, b in params]
    half = (QMAX + 1) // 2
    for _ in range(epochs):
        for ids in batches(rng, len(x)):
            for (w, _b), s in zip(params, shared, strict=True):
                w[...] = s.weights()
            gs = grads(params, x[ids], y[ids])
            opt.step([s.book for s in shared] + biases,
                     [s.grad(gw) for s, (gw, _) in zip(shared, gs, strict=True)]
                     + [gb for _, gb in gs])
            for s in shared:
                big = np.abs(s.book) >= half - 0.5
                s.book[...] = np.clip(s.book, -QMAX, QMAX)
                s.book[big] = np.sign(s.book[big]) * np.maximum(np.abs(s.book[big]), half)
    for (w, _b), s in zip(params, shared, strict=True):
        s.book[...] = np.floor(s.book + 0.5)
        w[...] = s.weights()


# --- export ------------------------------------------------------------------------------------

def to_onnx(params: Params, dense_acc: float) -> onnx.ModelProto:
    """Gemm(transB=0: W stored [K, N] as the tiler cuts it) [+ Relu] per layer, then Softmax."""
    nodes, inits = [], []
    x = "input"
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        wname, bname, y = f"fc{i + 1}.weight", f"fc{i + 1}.bias", f"fc{i + 1}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w, np.float32), wname))
        inits.append(numpy_helper.from_array(b.astype(np.float32), bname))
        nodes.append(helper.make_node("Gemm", [x, wname, bname], [y], name=y))
        x = y
        if i < last:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i + 1}"], name=f"relu{i + 1}"))
            x = f"relu{i + 1}"
    nodes.append(helper.make_node("Softmax", [x], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, "compressed_digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZES[0]])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", SIZES[-1]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgehls examples/compressed_digits/train.py",
        doc_string=f"numpy MLP 64-40-24-10 on load_digits, x/16; {TILE}x{TILE} tiles kept "
                   f"{'/'.join(map(str, KEEP_TILES))}, {2**SHARE_BITS - 1} shared values + 0 "
                   "per layer")
    helper.set_model_props(model, {"dense_float_accuracy": f"{dense_acc:.6f}"})
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


def init(rng: np.random.Generator) -> Params:
    """He-uniform weights, zero biases, float64 for a stable numpy training."""
    return [(rng.uniform(-1, 1, (k, n)) * math.sqrt(6.0 / k), np.zeros(n))
            for k, n in zip(SIZES[:-1], SIZES[1:], strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: here)")
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    x_train, x_test, y_train, y_test = load_data()
    xt, xv = x_train.astype(np.float64), x_test.astype(np.float64)
    rng = np.random.default_rng(SEED)
    params = init(rng)
    train(params, [np.ones_like(w) for w, _ in params], xt, y_train, 150, 2e-3, rng)
    dense_acc = accuracy(params, xv, y_test)
    print(f"dense:   float test accuracy {dense_acc:.4f}")

    masks = prune(params, xt, y_train, rng)
    pruned_acc = accuracy(params, xv, y_test)
    live = [int((tile_norms(m) > 0).sum()) for m in masks]
    print(f"pruned:  float test accuracy {pruned_acc:.4f} (live 8x8 tiles per layer "
          f"{live} of {[tile_norms(w).size for w, _ in params]})")

    shared = [cluster(w, m) for (w, _b), m in zip(params, masks, strict=True)]
    for (w, _b), s in zip(params, shared, strict=True):
        w[...] = s.weights()
    print(f"shared:  float test accuracy {accuracy(params, xv, y_test):.4f} "
          f"(k-means, {2**SHARE_BITS - 1} values + 0 per layer, before fine-tuning)")
    finetune(params, shared, xt, y_train, rng)
    comp_acc = accuracy(params, xv, y_test)

    model = to_onnx(params, dense_acc)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_acc = float((sess.run(None, {"input": x_test})[0].argmax(axis=1) == y_test).mean())
    print(f"tuned:   float test accuracy {comp_acc:.4f} (onnxruntime {ort_acc:.4f}), "
          f"{len(y_test)} test samples; dense -> compressed {comp_acc - dense_acc:+.2%}")
    (out / "model.onnx").write_bytes(model.SerializeToString())
    save_npz(out / "data.npz",
             {"x_calib": x_train[:N_CALIB], "x_test": x_test, "y_test": y_test})
    print(f"wrote {out / 'model.onnx'} and {out / 'data.npz'} "
          f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
