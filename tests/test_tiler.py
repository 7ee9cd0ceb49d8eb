"""edgehls.tiler: tile counts and edges, flags, activation-buffer addressing, and the cycle model
(hand-computed on small tile lists, and the 256x256x256 figure measured in RTL by `make bench`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from models import matmul_model, mlp, save

from edgehls import frontend, ir, pipeline, tiler
from edgehls.errors import PassError


def quantized(model: onnx.ModelProto, tmp: Path) -> ir.Graph:
    g = frontend.load(save(model, tmp / "model.onnx"))
    return pipeline.run_passes(g, pipeline.passes(pipeline.Options()))


# (model, pe): ragged edges on both sides, a batch (M > 1), B = lcm(R, C) neither R nor C,
# B = R * C, and the 1x1 array.
CASES = {
    "ragged_3x5": (lambda: mlp([13, 11, 7], seed=15, batch=3), (3, 5)),
    "deep_6x4": (lambda: mlp([20, 1, 16, 3, 8], seed=14, style="gemm_t0"), (6, 4)),
    "exact_4x4": (lambda: mlp([16, 8, 4], seed=2, batch=2), (4, 4)),
    "pe_1x1": (lambda: mlp([5, 3, 2], seed=4), (1, 1)),
    "pe_2x3": (lambda: mlp([7, 5, 4], seed=3), (2, 3)),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory) -> tuple[ir.Graph, tiler.Schedule]:
    build, (r, c) = CASES[request.param]
    g = quantized(build(), tmp_path_factory.mktemp(request.param))
    return g, tiler.schedule(g, r, c)


def layer_shapes(g: ir.Graph) -> list[tuple[int, int, int]]:
    shapes = []
    for node in tiler.dense_layers(g):
        k, n = g.const(node, "weight").shape
        shapes.append((g.tensor(node.inputs[0]).size // k, k, n))
    return shapes


def live_tiles(w: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    """(nt, kt) of the tiles the tiler must keep: non-zero ones, and kt=0 of an all-zero group."""
    kts, nts = math.ceil(w.shape[0] / r), math.ceil(w.shape[1] / c)
    out = []
    for nt in range(nts):
        live = [kt for kt in range(kts) if w[kt * r:(kt + 1) * r, nt * c:(nt + 1) * c].any()]
        out += [(nt, kt) for kt in live or [0]]
    return out


def test_tile_counts_are_ceil_k_over_r_times_ceil_n_over_c(case):
    g, s = case
    shapes = layer_shapes(g)
    assert [(p.M, p.K, p.N) for p in s.layers] == shapes
    for p, (_, k, n) in zip(s.layers, shapes, strict=True):
        assert (p.k_tiles, p.n_tiles) == (math.ceil(k / s.R), math.ceil(n / s.C))
        assert p.tiles == p.k_tiles * p.n_tiles
        assert sum(t.layer == p.index for t in s.tiles) == p.tiles - p.skipped_tiles
        assert s.tiles[p.first_tile].layer == p.index
        assert s.tiles[p.first_tile].nt == 0
    assert len(s.tiles) == sum(p.tiles - p.skipped_tiles for p in s.layers)
    assert s.B == math.lcm(s.R, s.C)


def test_tiles_run_column_group_major_and_skip_exactly_the_zero_tiles(case):
    g, s = case
    for p, node in zip(s.layers, tiler.dense_layers(g), strict=True):
        mine = [(t.nt, t.kt) for t in s.tiles if t.layer == p.index]
        assert mine == live_tiles(g.const(node, "weight"), s.R, s.C)
    for p, node in zip(s.layers, tiler.dense_layers(g), strict=True):
        w = g.const(node, "weight")
        covered = np.zeros((p.K, p.N), dtype=int)
        for t in (t for t in s.tiles if t.layer == p.index):
            covered[t.kt * s.R:t.kt * s.R + t.k_rows, t.nt * s.C:t.nt * s.C + t.n_cols] += 1
        assert (covered <= 1).all() and (covered[w != 0] == 1).all(), node.name


def test_zero_tiles_are_skipped_and_an_all_zero_group_keeps_one_pass(tmp_path):
    g = quantized(mlp([8, 6, 5], seed=6), tmp_path)
    dense = tiler.dense_layers(g)[0]
    w = np.array(g.const(dense, "weight"))
    full = tiler.schedule(g, 4, 3)
    w[0:4, 0:3] = 0  # group 0 keeps only kt=1
    w[:, 3:6] = 0  # group 1 is all zero: one pass remains for its bias
    g.add_const(dense.const_name("weight"), w)
    s = tiler.schedule(g, 4, 3)
    first = [(t.nt, t.kt, t.clear, t.last, t.barrier) for t in s.tiles if t.layer == 0]
    assert first == [(0, 1, True, True, False), (1, 0, True, True, False)]
    assert (s.layers[0].tiles, s.layers[0].skipped_tiles) == (4, 2)
    second = [t for t in s.tiles if t.layer == 1]
    assert second[0].barrier and sum(t.barrier for t in s.tiles) == 1
    assert [t.w_addr for t in s.tiles] == [i * 4 for i in range(len(s.tiles))]
    assert s.total_cycles < full.total_cycles


def test_edges_k_rows_and_n_cols(case):
    _, s = case
    for t in s.tiles:
        p = s.layers[t.layer]
        assert t.k_rows == min(s.R, p.K - t.kt * s.R) >= 1
        assert t.n_cols == min(s.C, p.N - t.nt * s.C) >= 1
        assert t.m == p.M


def test_flags_clear_last_barrier(case):
    _, s = case
    for i, t in enumerate(s.tiles):
        p = s.layers[t.layer]
        assert t.clear == (t.kt == 0)
        assert t.last == (t.kt == p.k_tiles - 1)
        assert t.barrier == (t.layer > 0 and i == p.first_tile)
    assert not s.tiles[0].barrier
    assert sum(t.barrier for t in s.tiles) == len(s.layers) - 1


def test_read_and_write_addresses_follow_the_bank_layout(case):
    """Element (m, w) of a [M, W] tensor: bank w mod B, word m * ceil(W / B) + w // B.

    The hardware (hw/core.v) gives array row i bank (rd_rot + i) mod B at word
    rd_base + m * rd_stride (+1 if the bank wrapped below rd_rot); columns likewise with wr_*.
    """
    g, s = case
    b = s.B
    layers = tiler.dense_layers(g)

    def hw_place(base: int, stride: int, rot: int, m: int, i: int) -> tuple[int, int]:
        bank = (rot + i) % b
        return bank, base + m * stride + (1 if bank < rot else 0)

    for t in s.tiles:
        p = s.layers[t.layer]
        node = layers[t.layer]
        in_base, out_base = s.base[node.inputs[0]], s.base[node.outputs[0]]
        assert t.rd_stride == math.ceil(p.K / b)
        assert t.wr_stride == math.ceil(p.N / b)
        for m in range(t.m):
            for i in range(t.k_rows):
                w = t.kt * s.R + i
                expected = (w % b, in_base + m * math.ceil(p.K / b) + w // b)
                assert hw_place(t.rd_base, t.rd_stride, t.rd_rot, m, i) == expected
            for j in range(t.n_cols):
                w = t.nt * s.C + j
                expected = (w % b, out_base + m * math.ceil(p.N / b) + w // b)
                assert hw_place(t.wr_base, t.wr_stride, t.wr_rot, m, j) == expected


def test_weight_and_post_addresses(case):
    _, s = case
    p_base = 0
    for p in s.layers:
        assert p.p_base == p_base
        p_base += p.n_tiles
    for i, t in enumerate(s.tiles):
        assert t.w_addr == i * s.R
        assert t.p_addr == s.layers[t.layer].p_base + t.nt
    assert s.pdepth == max(1, p_base)
    assert s.wdepth == len(s.tiles) * s.R
    # one post word per (layer, column group), no two share an address
    assert len({(t.layer, t.nt) for t in s.tiles}) == len({t.p_addr for t in s.tiles}) == p_base


def test_activation_regions(case):
    """Every tensor has a region; a layer's input and output regions do not overlap; the
    memory is as deep as the highest region end; chains reuse memory (two regions suffice)."""
    g, s = case
    b = s.B
    layers = tiler.dense_layers(g)
    size = {}
    for p, node in zip(s.layers, layers, strict=True):
        size[node.inputs[0]] = p.M * math.ceil(p.K / b)
        size[node.outputs[0]] = p.M * math.ceil(p.N / b)
    assert s.adepth == max(s.base[t] + n for t, n in size.items())
    for node in layers:
        (a0, an), (b0, bn) = ((s.base[t], size[t]) for t in (node.inputs[0], node.outputs[0]))
        assert a0 + an <= b0 or b0 + bn <= a0, node.name
    assert s.adepth <= 2 * max(size.values())
    assert s.mdepth == max(p.M for p in s.layers)
    # every read and write lands inside the memory
    for t in s.tiles:
        top = t.m - 1
        assert t.rd_base + top * t.rd_stride + (1 if t.rd_rot + t.k_rows > b else 0) < s.adepth
        assert t.wr_base + top * t.wr_stride + (1 if t.wr_rot + t.n_cols > b else 0) < s.adepth


def test_layer_cycles_sum_to_total(case):
    _, s = case
    cycles = s.layer_cycles()
    assert len(cycles) == len(s.layers)
    assert all(c > 0 for c in cycles)
    assert sum(cycles) == s.total_cycles
    assert (s.decide, s.load, s.total_cycles) == tiler.cycle_model(s.tiles, s.R, s.C)


def test_unquantized_graph_is_rejected(tmp_path):
    g = frontend.load(save(mlp([4, 3], seed=1), tmp_path / "m.onnx"))
    g = pipeline.run_passes(g, pipeline.passes(pipeline.Options()), after="canonicalize")
    with pytest.raises(PassError, match="quantized graph"):
        tiler.schedule(g, 2, 2)


# --- the cycle model on hand-made tile lists ---------------------------------------------------

BLANK = tiler.Tile(layer=0, kt=0, nt=0, m=1, k_rows=1, n_cols=1, w_addr=0, clear=True,
                   last=True, barrier=False, rd_base=0, rd_stride=1, rd_rot=0,
                   wr_base=0, wr_stride=1, wr_rot=0, p_addr=0)


def tiles(*specs: tuple[int, bool]) -> list[tiler.Tile]:
    """Tiles of M rows, each with or without a barrier."""
    return [dataclasses.replace(BLANK, m=m, barrier=b) for m, b in specs]


def test_drain():
    assert tiler.drain(4, 4) == 19
    assert tiler.drain(16, 16) == 43


def test_empty_schedule_takes_no_cycles():
    assert tiler.cycle_model([], 4, 4) == ([], [], 0)


def test_one_row_tiles_are_bound_by_the_shadow_weights():
    # R = C = 4: a load may start only C + 1 cycles after the previous decision.
    # L = 0, max(4, 0+5)=5, max(9, 5+5)=10; D = L; total = 10 + 1 + 19
    assert tiler.cycle_model(tiles((1, False), (1, False), (1, False)), 4, 4) == (
        [0, 5, 10], [0, 5, 10], 30)


def test_one_row_tiles_are_bound_by_the_weight_loader():
    # R = 8, C = 2: the loader (R cycles a tile) is the bottleneck; drain 21
    assert tiler.cycle_model(tiles((1, False), (1, False), (1, False)), 8, 2) == (
        [0, 8, 16], [0, 8, 16], 16 + 1 + 21)


def test_many_row_tiles_are_compute_bound():
    # M = 100: a tile streams for M cycles; the next load waits for D + 1 + C
    # L = 0, max(4, 0+5)=5, max(9, 100+5)=105; D = 0, max(5, 100)=100, max(105, 200)=200
    assert tiler.cycle_model(tiles((100, False), (100, False), (100, False)), 4, 4) == (
        [0, 100, 200], [0, 5, 105], 200 + 100 + 19)


def test_two_row_tiles_step_no_faster_than_every_two_cycles():
    # R = C = 1: L = 0, max(1, 0+2)=2; D_1 = max(2, 0 + max(1, 2)) = 2
    assert tiler.cycle_model(tiles((1, False), (1, False)), 1, 1) == ([0, 2], [0, 2], 2 + 1 + 13)


def test_a_barrier_waits_for_the_previous_layer_to_drain():
    # M = 3 at 4x4: without the barrier D_1 = max(5, 3) = 5; with it D_1 = 0 + 3 + 19 - 1 = 21
    assert tiler.cycle_model(tiles((3, False), (3, False)), 4, 4) == ([0, 5], [0, 5], 5 + 3 + 19)
    assert tiler.cycle_model(tiles((3, False), (3, True)), 4, 4) == ([0, 21], [0, 5], 43)
    # the tile after the barrier: L = max(5+4, 21+5) = 26, D = max(26, 21+3) = 26
    assert tiler.cycle_model(tiles((3, False), (3, True), (3, False)), 4, 4) == (
        [0, 21, 26], [0, 5, 26], 26 + 3 + 19)


def test_matmul_256_at_16x16_matches_the_rtl_measurement(tmp_path):
    """`make bench` measured 65579 run cycles in Icarus for this design."""
    g = quantized(matmul_model(256, 256, 256, seed=0), tmp_path)
    s = tiler.schedule(g, 16, 16)
    assert len(s.tiles) == 256
    assert s.total_cycles == 65579 == 255 * 256 + 256 + tiler.drain(16, 16)
    assert s.layer_cycles() == [65579]


@pytest.mark.parametrize(("cins", "r", "c"), [([5], 2, 3), ([7, 3], 4, 4), ([8, 1, 6], 3, 5)])
def test_nonzero_tiles_match_the_tile_by_tile_check(cins, r, c):
    """_nonzero_tiles against slicing each (K-tile, column group) block and testing it."""
    rng = np.random.default_rng(sum(cins) + r)
    weight = rng.integers(-2, 3, (2, 3, sum(cins), 11)) * (rng.random((2, 3, sum(cins), 11)) < 0.1)
    krow = [sum(cins[:i]) for i in range(len(cins))]
    ktiles = [(src, kh, kw, cb) for src in range(len(cins)) for kh in range(2) for kw in range(3)
              for cb in range(-(-cins[src] // r))]
    want = [[weight[kh, kw, krow[src] + cb * r:krow[src] + min((cb + 1) * r, cins[src]),
                    n0:n0 + c].any() for n0 in range(0, 11, c)] for src, kh, kw, cb in ktiles]
    got = tiler._nonzero_tiles(weight, cins, r, c)
    assert got.tolist() == want and 0 < got.sum() < got.size
