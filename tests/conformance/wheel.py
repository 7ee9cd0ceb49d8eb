"""The ONNX backend node tests, read from the ``onnx==1.22.0`` wheel (later wheels dropped them).

The wheel is fetched once with ``pip download`` into ``$EDGEHLS_CACHE`` (default
``~/.cache/edgehls/onnx-1.22.0``) and read as a zip: it is never installed, so the onnx the
compiler uses stays the one in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

VERSION = "1.22.0"
PREFIX = "onnx/backend/test/data/node/"
DOWNLOAD_TIMEOUT = 300  # seconds; the wheel is ~19 MB


class WheelUnavailable(RuntimeError):
    """The wheel is not cached and ``pip download`` failed (e.g. offline)."""


def cache_dir() -> Path:
    env = os.environ.get("EDGEHLS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgehls" / f"onnx-{VERSION}"


def wheel_path() -> Path:
    """The cached wheel, downloaded first if absent; ``WheelUnavailable`` if that fails."""
    cache = cache_dir()
    found = sorted(cache.glob(f"onnx-{VERSION}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"onnx=={VERSION}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(cache)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WheelUnavailable(f"pip download onnx=={VERSION} failed: {e}") from e
    found = sorted(cache.glob(f"onnx-{VERSION}-*.whl"))
    if run.returncode != 0 or not found:
        tail = " ".join((run.stderr or run.stdout).split()[-30:])
        raise WheelUnavailable(f"pip download onnx=={VERSION} into {cache} failed "
                               f"(exit {run.returncode}): {tail}")
    return found[0]


@dataclass(frozen=True)
class NodeTest:
    """One backend node test: its model and the first test data set, as bytes/arrays."""

    name: str
    op: str
    model: bytes
    inputs: tuple[bytes, ...]  # serialized protos of input_0.pb, input_1.pb, ...
    outputs: tuple[bytes, ...]

    def proto(self) -> onnx.ModelProto:
        return onnx.load_from_string(self.model)


def node_tests(wheel: Path, ops: tuple[str, ...]) -> list[NodeTest]:
    """Every single-node test whose node's op type is in ``ops``, sorted by name."""
    tests = []
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for entry in sorted(n for n in names if n.startswith(PREFIX)
                            and n.endswith("/model.onnx")):
            base = entry[: -len("model.onnx")]
            model = z.read(entry)
            nodes = onnx.load_from_string(model).graph.node
            if len(nodes) != 1 or nodes[0].op_type not in ops:
                continue
            data = base + "test_data_set_0/"
            read = [tuple(z.read(f"{data}{kind}_{i}.pb") for i in range(64)
                          if f"{data}{kind}_{i}.pb" in names) for kind in ("input", "output")]
            tests.append(NodeTest(base[len(PREFIX):-1], nodes[0].op_type, model, *read))
    return tests


def tensor(data: bytes) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)
