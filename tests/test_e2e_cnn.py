"""End to end on the MLPerf Tiny reference networks (tests/cnn_models.py): compile, simulate in
Icarus, demand bit-exact outputs and run cycles equal to the cycle model's (issue 4).

The default run simulates the small DS-CNN and ResNet-8 at 4x4 and the full ResNet-8 and DS-CNN
at 16x16 (about 75 s and 25 s in Icarus); `pytest -m "slow or not slow"` adds the other sizes,
the AD autoencoder and MobileNetV1-0.25. Calibration and golden inputs are random (uniform in
[-1, 1], from a seed): no dataset is needed, and bit-exactness does not depend on the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cnn_models import BUILDERS, SHAPES
from models import save
from test_e2e import compile_and_simulate

from edgehls import pipeline

CALIB = 16  # random calibration samples

# (model, pe, samples); those in DEFAULT run by default, the rest are slow
CASES = [
    ("ds_cnn_small", (4, 4), 2),
    ("resnet8_small", (4, 4), 2),
    ("ds_cnn_small", (3, 5), 2),  # global pool in reduce mode across misaligned channel blocks
    ("resnet8_small", (3, 5), 2),
    ("ds_cnn", (8, 8), 1),
    ("ds_cnn", (16, 16), 1),
    ("resnet8", (8, 8), 1),
    ("resnet8", (16, 16), 1),
    ("fc_autoencoder", (8, 8), 2),
    ("fc_autoencoder", (16, 16), 2),
    ("mobilenet_v1_025", (16, 16), 1),
]
DEFAULT = {("ds_cnn_small", (4, 4)), ("resnet8_small", (4, 4)), ("ds_cnn", (16, 16)),
           ("resnet8", (16, 16))}


def _params() -> list:
    return [pytest.param(name, pe, n, id=f"{name}-{pe[0]}x{pe[1]}",
                         marks=() if (name, pe) in DEFAULT else pytest.mark.slow)
            for name, pe, n in CASES]


@pytest.mark.parametrize(("name", "pe", "samples"), _params())
def test_reference_network(tmp_path: Path, name: str, pe: tuple[int, int], samples: int
                           ) -> None:
    model = save(BUILDERS[name](0), tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (CALIB, *SHAPES[name][0][1:]))
    opts = pipeline.Options(pe=pe, samples=samples, calib=calib.astype(np.float32))
    compile_and_simulate(model, tmp_path / "design", f"{name}(0)", opts)


@pytest.mark.parametrize("name", ["ds_cnn_small", "resnet8_small"])
def test_shared_weights_with_depthwise_and_residuals(tmp_path: Path, name: str) -> None:
    """--share-bits on depthwise convolutions (0 in their codebooks) and residual Adds (their
    diagonal weights as a codebook), bit-exact."""
    model = save(BUILDERS[name](0), tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (CALIB, *SHAPES[name][0][1:]))
    opts = pipeline.Options(pe=(4, 4), samples=1, calib=calib.astype(np.float32), share_bits=4)
    compile_and_simulate(model, tmp_path / "design", f"{name}(0) --share-bits 4", opts)
