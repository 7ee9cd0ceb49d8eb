"""pytest entry: edgehls_skid_buffer under random idle cycles and back-pressure."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import HW, run_cocotb


@pytest.mark.parametrize("width", [1, 8, 33])
def test_skid_buffer(width: int, tmp_path: Path) -> None:
    run_cocotb("edgehls_skid_buffer", [HW / "skid_buffer.v"], "tb_skid_buffer",
               tmp_path / "build", parameters={"W": width}, seed=2024)
