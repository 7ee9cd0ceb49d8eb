"""Packed input (issue 4): a convolution on the model input with few channels stores that input
flat and zero padded along w (or h, W-major), so a K-tile is a run of up to R (kw, c) rows of
one kernel row (or (kh, c) rows of one kernel column) (edgehls.tiler.packed_layers). Tiler
tests, and end to end in Icarus: bit-exact, run cycles equal to the cycle model's, fewer than
with --no-pack-input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from cnn_models import _Net
from models import save
from test_e2e import compile_and_simulate

from edgehls import frontend, lowering, pipeline, romgen, simulate, tiler
from edgehls.passes.canonicalize import Canonicalize
from edgehls.passes.quantize import Quantize


def conv_model(cin: int, hw: tuple[int, int], kernel: tuple[int, int], stride: int,
               pads: tuple[int, int, int, int] | None, cout: int = 5, seed: int = 0,
               auto_pad: str | None = None, second: bool = True) -> onnx.ModelProto:
    """input [1, cin, H, W] -> Conv (+BN, Relu) -> (a 1x1 Conv) -> output."""
    net = _Net(seed)
    kh, kw = kernel
    if auto_pad:
        w = net.rng.normal(0.0, np.sqrt(2.0 / (cin * kh * kw)), size=(cout, cin, kh, kw))
        x = net.node("Conv", ["input", net.const("conv1.weight", w)], "conv1",
                     kernel_shape=[kh, kw], strides=[stride, stride], auto_pad=auto_pad)
        x = net.relu(net.bn(x, "conv1.bn", cout), "conv1.relu")
    else:
        x = net.conv_bn("input", "conv1", cin, cout, kernel, stride=stride, pads=pads,
                        bias=True)
    if auto_pad:
        oh, ow = -(-hw[0] // stride), -(-hw[1] // stride)
    else:
        oh = (hw[0] + pads[0] + pads[2] - kh) // stride + 1
        ow = (hw[1] + pads[1] + pads[3] - kw) // stride + 1
    if second:
        x = net.conv_bn(x, "conv2", cout, 3, (1, 1), relu=False)
    return net.model("packed", [1, cin, *hw], [1, 3 if second else cout, oh, ow])


def quantized(model: onnx.ModelProto, tmp: Path):
    g = Canonicalize()(frontend.load(save(model, tmp / "m.onnx")))
    return Quantize(wbits=8, abits=8, seed=0)(g)


CONVS = {  # name: (cin, hw, kernel, stride, pads)
    "c3k3s1": (3, (6, 7), (3, 3), 1, (1, 1, 1, 1)),
    "c1k10x4s2": (1, (12, 10), (10, 4), 2, (4, 1, 5, 2)),  # DS-CNN's conv1, asymmetric pads
    "c3k3s2": (3, (9, 8), (3, 3), 2, (0, 0, 1, 1)),  # MobileNet-like, pad only at the end
    "c1k3s1nopad": (1, (5, 6), (3, 3), 1, (0, 0, 0, 0)),
    "c3k3s2p2": (3, (7, 9), (3, 3), 2, (2, 2, 0, 1)),  # left pad 2, window past the right edge
    "c2k3s2p2": (2, (7, 9), (3, 3), 2, (2, 2, 0, 1)),
    "c3k5s1": (3, (6, 7), (5, 5), 1, (2, 2, 2, 2)),  # at R = 4: 15 rows a kernel row, 4 tiles
    # packed along h at R = 4 and 5: 15 (kh, c) rows a kernel column, split inside a pixel
    "c3k5x3s2": (3, (9, 7), (5, 3), 2, (2, 1, 2, 1)),
}


def axis_tiles(cin: int, kernel: tuple[int, int], r: int) -> dict[str, int]:
    """K-tiles unpacked, packed along w and along h."""
    kh, kw = kernel
    return {"": kh * kw * math.ceil(cin / r), "w": kh * math.ceil(kw * cin / r),
            "h": kw * math.ceil(kh * cin / r)}


def saves_tiles(cin: int, kernel: tuple[int, int], r: int) -> bool:
    t = axis_tiles(cin, kernel, r)
    return min(t["w"], t["h"]) < t[""]


@pytest.mark.parametrize("pe", [(4, 4), (5, 3), (16, 16)], ids=lambda p: f"{p[0]}x{p[1]}")
@pytest.mark.parametrize("name", sorted(CONVS))
def test_packed_tiles_cover_the_kernel_and_walk_the_flat_layout(tmp_path, name, pe):
    cin, hw, kernel, stride, pads = CONVS[name]
    g = quantized(conv_model(cin, hw, kernel, stride, pads), tmp_path)
    r, c = pe
    s = tiler.schedule(g, r, c)
    if not saves_tiles(cin, kernel, r):  # e.g. cin 3, 3x3 at R = 4: 9 tiles either way
        assert s.packed is None and s.tiles == tiler.schedule(g, r, c, False).tiles
        return
    plain = tiler.schedule(g, r, c, pack_input=False)
    geo = lowering.geometry(g, g.node("conv1"))
    kh_n, kw_n = kernel
    kt = axis_tiles(cin, kernel, r)
    axis = "h" if kt["h"] < kt["w"] else "w"
    lo, hi = s.packed.pad_lo, s.packed.pad_hi
    assert (s.layers[0].geom.packed, s.layers[1].geom.packed) == (axis, "")
    assert plain.packed is None and not any(t.packed for t in plain.tiles)
    assert s.layers[0].k_tiles == kt[axis] < plain.layers[0].k_tiles
    assert s.total_cycles < plain.total_cycles
    if axis == "w":
        ihp, iwp = hw[0], hw[1] + lo + hi
        assert lo == pads[1] and (geo.ow - 1) * stride + kw_n <= iwp
    else:
        ihp, iwp = hw[0] + lo + hi, hw[1]
        assert lo == pads[0] and (geo.oh - 1) * stride + kh_n <= ihp
    # the packed region holds IHp * IWp * cin elements flat
    b = s.B
    words = math.ceil(ihp * iwp * cin / b)
    assert s.base["input"] + words <= s.adepth
    # every weight row (kh, kw, c) of every column group is in exactly one live tile, once
    for nt in range(s.layers[0].n_tiles):
        seen = np.zeros((kh_n, kw_n, cin), dtype=int)
        for t in (t for t in s.tiles if t.layer == 0 and t.nt == nt):
            assert t.packed == axis and 1 <= t.k_rows <= r
            assert (t.off_w if axis == "w" else t.off_h) == 0
            rows = tiler.tile_rows(geo, t.kh, t.kw, t.krow0, t.k_rows, axis)
            for i in range(t.k_rows):
                kh, kw = t.kh, t.kw
                if axis == "w":
                    kw, ch = divmod(t.krow0 + i, cin)
                else:
                    kh, ch = divmod(t.krow0 + i, cin)
                seen[kh, kw, ch] += 1
                assert (rows[i] == geo.weight[kh, kw, ch]).all()
        n0 = nt * c
        live = geo.weight[..., n0:n0 + c].any(axis=-1)
        assert (seen[live] == 1).all() and (seen <= 1).all()
    # the sequencer's walk (word, rotation per step) reads element F of the flat layout
    tab = s.layers[0].geom
    for t in (t for t in s.tiles if t.layer == 0):
        word, rot = t.rd_base, t.rd_rot
        for m in range(t.m):
            oh, ow = divmod(m, geo.ow)
            if axis == "w":
                f = ((oh * stride + t.off_h) * iwp + ow * stride) * cin + t.krow0
            else:
                f = ((ow * stride + t.off_w) * ihp + oh * stride) * cin + t.krow0
            assert (word - s.base["input"]) * b + rot == f
            a, rs = (tab.a_wrap, tab.r_wrap) if ow == geo.ow - 1 else (tab.a_step, tab.r_step)
            rot += rs
            word += a + (rot >= b)
            rot -= b if rot >= b else 0


def test_packing_needs_fewer_k_tiles_and_a_model_input(tmp_path):
    """cin = R: packing saves no tile, the layer stays as it was; a convolution that does not
    read the model input is never packed."""
    g = quantized(conv_model(4, (5, 5), (3, 3), 1, (1, 1, 1, 1), cout=4), tmp_path)
    assert tiler.schedule(g, 4, 4).packed is None
    g = quantized(conv_model(1, (6, 6), (3, 3), 1, (1, 1, 1, 1), cout=2), tmp_path)
    s = tiler.schedule(g, 4, 4)
    assert [p.geom.packed for p in s.layers] == ["w", ""]
    p = romgen.hw_params(g, s)
    assert (p.PK, p.PK_W, p.PK_LO, p.PK_HI) == (1, 6, 1, 1)
    g = quantized(conv_model(1, (12, 10), (10, 4), 2, (4, 1, 5, 2), cout=2), tmp_path)
    p = romgen.hw_params(g, tiler.schedule(g, 16, 16))  # DS-CNN's conv1: 4 tiles along h
    assert (p.PK, p.PK_W, p.PK_LO, p.PK_HI) == (2, 10, 4, 5)
    assert romgen.hw_params(g, tiler.schedule(g, 4, 4, pack_input=False)).PK == 0


# (conv, pe): the default run simulates a few (about 15 s), the rest are slow
E2E = [("c3k5s1", (4, 4)), ("c1k10x4s2", (5, 3)), ("c3k3s2p2", (5, 3)), ("c3k5x3s2", (4, 4)),
       ("c3k5x3s2", (5, 3)), ("c1k10x4s2", (16, 16)),
       ("c1k10x4s2", (4, 4)), ("c2k3s2p2", (4, 4)), ("c3k3s2", (5, 3)),
       ("c1k3s1nopad", (5, 3)), ("c3k3s1", (5, 3)), ("c3k3s1", (16, 16))]
# along w: c3k5s1 at 4x4, c3k3s2p2 at 5x3 (a tie: w); along h: the others
E2E_DEFAULT = {("c3k5s1", (4, 4)), ("c1k10x4s2", (5, 3)), ("c3k3s2p2", (5, 3)),
               ("c3k5x3s2", (4, 4))}


@pytest.mark.parametrize(("name", "pe"), [
    pytest.param(n, pe, id=f"{n}-{pe[0]}x{pe[1]}",
                 marks=() if (n, pe) in E2E_DEFAULT else pytest.mark.slow) for n, pe in E2E])
def test_packed_conv_is_bit_exact(tmp_path, name, pe):
    cin, hw, kernel, stride, pads = CONVS[name]
    model = save(conv_model(cin, hw, kernel, stride, pads), tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (8, cin, *hw)).astype(np.float32)
    opts = pipeline.Options(pe=pe, samples=2, calib=calib)
    res = compile_and_simulate(model, tmp_path / "design", f"conv_model{CONVS[name]}", opts)
    top = (tmp_path / "design" / "rtl" / "edgehls_top.v").read_text()
    g = quantized(conv_model(cin, hw, kernel, stride, pads), tmp_path)
    axis = tiler.schedule(g, *pe).packed.packed
    assert f"localparam integer PK = {1 if axis == 'w' else 2};" in top
    assert res["cycles"] == res["predicted_cycles"]


@pytest.mark.slow
def test_same_upper_auto_pad_is_bit_exact(tmp_path):
    model = save(conv_model(3, (7, 6), (3, 3), 2, None, auto_pad="SAME_UPPER"),
                 tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (8, 3, 7, 6)).astype(np.float32)
    compile_and_simulate(model, tmp_path / "design", "SAME_UPPER conv",
                         pipeline.Options(pe=(4, 4), samples=2, calib=calib))


def test_no_pack_input_gives_the_unpacked_design(tmp_path):
    """--no-pack-input: the old schedule and cycles, PK absent from the design, bit-exact."""
    cin, hw, kernel, stride, pads = CONVS["c3k5s1"]
    model = save(conv_model(cin, hw, kernel, stride, pads), tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (8, cin, *hw)).astype(np.float32)
    opts = pipeline.Options(pe=(4, 4), samples=1, calib=calib, pack_input=False)
    res = compile_and_simulate(model, tmp_path / "design", "c3k5s1 --no-pack-input", opts)
    g = quantized(conv_model(cin, hw, kernel, stride, pads), tmp_path)
    assert res["cycles"] == tiler.schedule(g, 4, 4, pack_input=False).total_cycles
    assert "PK" not in (tmp_path / "design" / "rtl" / "edgehls_top.v").read_text()


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not on PATH")
@pytest.mark.parametrize("name,pe", [("c3k3s2p2", (5, 3)), ("c1k10x4s2", (4, 4)),
                                     ("c3k5x3s2", (4, 4))])
def test_packed_design_lints_clean(tmp_path, name, pe):
    """The generated design with PK = 1 (rotation walk, padded loader), no waiver at all."""
    cin, hw, kernel, stride, pads = CONVS[name]
    model = save(conv_model(cin, hw, kernel, stride, pads), tmp_path / "model.onnx")
    out = tmp_path / "design"
    pipeline.compile_model(model, out, pipeline.Options(pe=pe, samples=1))
    assert "localparam integer PK = 0;" not in (out / "rtl" / "edgehls_top.v").read_text()
    assert "localparam integer PK = " in (out / "rtl" / "edgehls_top.v").read_text()
    cmd = ["verilator", "--lint-only", "-Wall", "--Mdir", str(tmp_path / "obj"), "-f",
           "filelist.f", "--top-module", "edgehls_top"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


def test_report_and_manifest_say_which_layer_is_packed(tmp_path):
    cin, hw, kernel, stride, pads = CONVS["c1k10x4s2"]
    model = save(conv_model(cin, hw, kernel, stride, pads), tmp_path / "model.onnx")
    for pack, axis in ((True, "h"), (False, "")):
        out = tmp_path / f"design{pack}"
        rep = pipeline.compile_model(model, out, pipeline.Options(pe=(16, 16), samples=1,
                                                                  pack_input=pack))
        assert [ly["packed"] for ly in rep["layers"]] == [axis, ""]
        assert rep["pack_input"] is pack
        man = json.loads((out / "manifest.json").read_text())
        assert man["schedule"]["packed_layers"] == (["conv1"] if pack else [])
        assert man["hw"]["PK"] == (2 if pack else 0)
        md = (out / "report.md").read_text()
        assert ("conv1 reads the model input stored flat and zero padded along h" in md) is pack
        assert ("Packed input: off (--no-pack-input)" in md) is not pack


def test_input_load_cycles_count_the_pad_writes(tmp_path):
    """manifest schedule.input_load_cycles, against Icarus without stream gaps: the cycles
    outside run_cycles grow from the unpacked design by the pad writes (w: interleaved with the
    beats; h: a zero pass first)."""
    for name, axis, pe in (("c1k10x4s2", "h", (16, 16)), ("c3k5s1", "w", (4, 4))):
        cin, hw, kernel, stride, pads = CONVS[name]
        model = save(conv_model(cin, hw, kernel, stride, pads), tmp_path / f"{name}.onnx")
        outside, load = {}, {}
        for pack in (False, True):
            out = tmp_path / f"{name}{pack}"
            pipeline.compile_model(model, out, pipeline.Options(pe=pe, samples=1,
                                                                pack_input=pack))
            r = simulate.simulate(out, gaps=0.0)
            assert r["passed"]
            man = json.loads((out / "manifest.json").read_text())
            assert man["hw"]["PK"] == (0 if not pack else 1 if axis == "w" else 2)
            outside[pack] = r["total_cycles"][0] - r["cycles"]
            load[pack] = man["schedule"]["input_load_cycles"]
        assert load[False] == cin * hw[0] * hw[1]  # one cycle an element
        assert load[True] > load[False]  # the pads cost cycles
        # the same, but for the first pad writes, which overlap the cycles before the first
        # beat reaches the loader through the skid buffer (2 in this bench)
        assert 0 <= (load[True] - load[False]) - (outside[True] - outside[False]) <= 2, name
