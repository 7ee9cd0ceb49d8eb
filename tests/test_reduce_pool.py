"""Global average pooling in reduce mode (issue 4): the whole-map depthwise QConv that
Canonicalize makes of GlobalAveragePool / an AveragePool over the whole map runs as a 1 x 1
diagonal layer over all H*W pixels whose steps sum into one accumulator entry. The end-to-end
Icarus checks are tests/test_e2e_cnn.py (ds_cnn_small and resnet8_small at 4x4 by default,
at 3x5 slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cnn_models import BUILDERS, SHAPES
from models import save

from edgehls import frontend, ir, lowering, numerics, pipeline, report, romgen, tiler


def _quantized(name: str, tmp: Path) -> ir.Graph:
    g = frontend.load(save(BUILDERS[name](0, global_pool=True), tmp / "model.onnx"))
    calib = np.random.default_rng(3).uniform(-1, 1, (8, *SHAPES[name][0][1:]))
    opts = pipeline.Options(calib=calib.astype(np.float32))
    return pipeline.run_passes(g, pipeline.passes(opts))


@pytest.fixture(scope="module", params=["ds_cnn_small", "resnet8_small"])
def graph(request, tmp_path_factory) -> ir.Graph:
    return _quantized(request.param, tmp_path_factory.mktemp(request.param))


def _pool(g: ir.Graph) -> ir.Node:
    return next(n for n in lowering.compute_layers(g) if n.name == "pool")


def test_the_global_pool_lowers_to_a_reduce_layer(graph):
    node = _pool(graph)
    _, c, h, w = graph.tensor(node.inputs[0]).shape
    geo = lowering.geometry(graph, node)
    weight = graph.const(node, "weight")
    assert geo.reduce and geo.kernel == (1, 1) and (geo.ih, geo.iw, geo.oh, geo.ow) == (h, w, h, w)
    assert geo.m == h * w and geo.out_m == 1 and geo.macs == h * w * c
    assert np.array_equal(geo.weight[0, 0], np.diag(weight[:, 0, 0, 0]))
    # the other layers keep their mapping
    assert not any(lowering.geometry(graph, n).reduce for n in lowering.compute_layers(graph)
                   if n is not node)


@pytest.mark.parametrize("pe", [(4, 4), (3, 5)])
def test_reduce_tiles_step_over_every_pixel_and_write_one(graph, pe):
    r, c = pe
    s = tiler.schedule(graph, r, c)
    li = next(p.index for p in s.layers if p.name == "pool")
    node = _pool(graph)
    _, ch, h, w = graph.tensor(node.inputs[0]).shape
    tiles = [t for t in s.tiles if t.layer == li]
    assert tiles and all(t.m == h * w and t.wr_stride == 0 for t in tiles)
    # only the diagonal blocks are live: channel block kb meets column group nt
    assert {(t.cb, t.nt) for t in tiles} == {
        (kb, nt) for kb in range(-(-ch // r)) for nt in range(-(-ch // c))
        if kb * r < (nt + 1) * c and nt * c < (kb + 1) * r}
    assert s.layers[li].geom.reduce and not any(p.geom.reduce for p in s.layers if p.index != li)
    out = node.outputs[0]
    assert s.base[out] + tiler.tensor_words((1, ch, 1, 1), s.B) <= s.adepth
    # the layer table's reduce bit is its top bit (below r_step, r_wrap with a packed input)
    hp = romgen.hw_params(graph, s)
    words = romgen.layer_words(s, hp)
    bit = hp.LTW - 1 - (2 * hp.BW if hp.PK else 0)
    assert words[li] >> bit & 1 == 1
    assert all(x >> bit & 1 == 0 for i, x in enumerate(words) if s.table_layer(i) != li)


def test_reduce_mode_costs_hw_cycles_per_tile_not_r_per_kernel_position(graph, monkeypatch):
    reduced = tiler.schedule(graph, 4, 4)
    li = next(p.index for p in reduced.layers if p.name == "pool")
    monkeypatch.setattr(lowering, "_global_pool", lambda *a: False)
    window = tiler.schedule(graph, 4, 4)
    assert window.layers[li].tiles > reduced.layers[li].tiles
    assert reduced.layer_cycles()[li] < window.layer_cycles()[li]
    assert reduced.total_cycles < window.total_cycles


def test_the_lowered_sum_is_the_golden_window_convolution(graph):
    """sum over the pixels of x * diag(w) + bias, requantized, is numerics.conv of the QConv:
    the reduce layer computes the same integers."""
    node = _pool(graph)
    op = node.op
    _, c, h, w = graph.tensor(node.inputs[0]).shape
    geo = lowering.geometry(graph, node)
    q = graph.tensor(node.inputs[0]).q
    rng = np.random.default_rng(7)
    x = rng.integers(q.lo, q.hi + 1, (h, w, c))
    consts = {k: graph.const(node, k) for k in ("weight", "bias", "mult", "shift")}
    want = numerics.conv(x, consts["weight"], consts["bias"], consts["mult"], consts["shift"],
                         op.lo, op.hi, op.kernel, op.strides, op.pads, op.dilations, op.group)
    acc = x.reshape(h * w, c).astype(np.int64) @ geo.weight[0, 0]
    got = numerics.requantize(acc.sum(axis=0) + consts["bias"], consts["mult"],
                              consts["shift"], op.lo, op.hi)
    assert want.shape == (1, 1, c) and np.array_equal(got, want[0, 0])


def test_the_report_calls_each_layer_by_what_it_computes(graph):
    """report.json's ``kind``: the reduce-mode pool is a global_avg_pool, not a "Conv"."""
    s = tiler.schedule(graph, 4, 4)
    kinds = {p.name: report.layer_kind(n, p) for p, n in zip(s.layers, tiler.dense_layers(graph),
                                                              strict=True)}
    assert kinds["pool"] == "global_avg_pool"
    assert kinds["fc"] == "dense"
    assert set(kinds.values()) >= {"conv", "global_avg_pool", "dense"}
    assert "depthwise_conv" in kinds.values() or "add" in kinds.values()


def test_only_a_uniform_whole_map_depthwise_conv_is_a_reduce_layer():
    op = ir.QConv(kernel=(3, 5), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=4,
                  relu=False, wbits=8, acc_bits=24, lo=-128, hi=127)
    w = np.repeat(np.arange(1, 5)[:, None, None, None], 15, axis=2).reshape(4, 1, 3, 5)
    assert lowering._global_pool(op, w, (3, 5), (1, 1), 4)
    ragged = w.copy()
    ragged[2, 0, 1, 1] += 1  # a position of another weight: a true convolution
    assert not lowering._global_pool(op, ragged, (3, 5), (1, 1), 4)
    assert not lowering._global_pool(op, w, (3, 5), (1, 2), 4)  # more than one output pixel
    padded = ir.QConv(kernel=(3, 5), strides=(1, 1), pads=(1, 0, 0, 0), dilations=(1, 1),
                      group=4, relu=False, wbits=8, acc_bits=24, lo=-128, hi=127)
    assert not lowering._global_pool(padded, w, (3, 5), (1, 1), 4)


@pytest.mark.parametrize("pe", [(4, 4), pytest.param((3, 5), marks=pytest.mark.slow)])
def test_global_average_pool_end_to_end(tmp_path, pe):
    """ds_cnn_small with GlobalAveragePool (a 5 x 6 map, 30 steps a tile) in Icarus: bit-exact
    and run cycles == predicted (compile_and_simulate checks both)."""
    from test_e2e import compile_and_simulate

    model = save(BUILDERS["ds_cnn_small"](0, global_pool=True), tmp_path / "model.onnx")
    calib = np.random.default_rng(3).uniform(-1, 1, (16, *SHAPES["ds_cnn_small"][0][1:]))
    opts = pipeline.Options(pe=pe, samples=2, calib=calib.astype(np.float32))
    result = compile_and_simulate(model, tmp_path / "design", "ds_cnn_small(0, gap)", opts)
    assert result["cycles"] == result["predicted_cycles"] > 0


def test_the_mean_factor_of_a_non_power_of_two_map_is_in_mult_not_in_the_weight(graph):
    """ds_cnn_small's 6 x 5 map: each channel's weight is the quantized 1 (not 1/30 rounded to
    a power-of-two grid) and mult * 2**-shift carries 1/30 (numerics.requant_real); resnet8's
    2 x 2 map keeps the exact power-of-two weight 1/4 and requant_params."""
    node = _pool(graph)
    _, c, h, w = graph.tensor(node.inputs[0]).shape
    weight, mult, shift = (graph.const(node, k) for k in ("weight", "mult", "shift"))
    fin, fout = graph.tensor(node.inputs[0]).q, graph.tensor(node.outputs[0]).q
    wq = weight[:, 0, 0, 0]
    fw = np.array([int(v).bit_length() - 1 for v in wq])  # the weights are powers of two
    assert np.array_equal(wq, 1 << fw)
    n = h * w
    if n & (n - 1):  # the weight's frac is fw (wq = 1 * 2**fw): ratio = s_in 2**-fw / n / s_out
        ratio = fin.scale * 2.0 ** -fw.astype(float) / n / fout.scale
        want = numerics.requant_real(ratio)
        assert np.array_equal(mult, want[0]) and np.array_equal(shift, want[1])
        assert np.allclose(mult * 2.0 ** -shift.astype(float), ratio, rtol=1e-4)
    else:  # weight 2**fw * 2**-fw' = 1/n exactly: nothing to fold
        assert np.array_equal(mult, np.ones(c, np.int64))
