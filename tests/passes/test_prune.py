"""Prune: which weights become zero (structure) and what the network computes after (numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from edgehls import golden, ir
from edgehls.errors import OptionError, PassError
from edgehls.passes.prune import Prune, parse_spec, tile_norms
from edgehls.passes.quantize import Quantize

SIZES = (20, 36, 17, 10)  # not multiples of the tile: edge tiles are smaller
X = np.random.default_rng(5).normal(size=(32, SIZES[0]))


def mlp(sizes: tuple[int, ...] = SIZES, seed: int = 0) -> ir.Graph:
    """Input [1, sizes[0]] -> Dense(ReLU) ... -> Dense, layers fc0, fc1, ..."""
    rng = np.random.default_rng(seed)
    g = ir.Graph("mlp")
    g.add_tensor(ir.Tensor("x", (1, sizes[0])))
    g.add_node(ir.Node("in", ir.Input(), (), ("x",)))
    src = "x"
    for i, (k, n) in enumerate(zip(sizes, sizes[1:], strict=False)):
        name = f"fc{i}"
        g.add_tensor(ir.Tensor(name, (1, n)))
        w = g.add_const(f"{name}.weight", rng.normal(size=(k, n)).astype(np.float32))
        b = g.add_const(f"{name}.bias", rng.normal(scale=0.1, size=n).astype(np.float32))
        g.add_node(ir.Node(name, ir.Dense(relu=i < len(sizes) - 2), (src,), (name,),
                           (("weight", w), ("bias", b))))
        src = name
    g.inputs, g.outputs = ["x"], [src]
    return g


def weights(g: ir.Graph) -> dict[str, np.ndarray]:
    return {n.name: g.const(n, "weight") for n in g.nodes() if isinstance(n.op, ir.Dense)}


def sparsity(w: np.ndarray) -> float:
    return float((w == 0).mean())


def check_only_zeroed(before: ir.Graph, after: ir.Graph) -> None:
    """Every weight is either unchanged (bit for bit) or zero; biases untouched."""
    for n in before.nodes():
        if isinstance(n.op, ir.Dense):
            w0, w1 = before.const(n, "weight"), after.const(after.node(n.name), "weight")
            assert w1.dtype == w0.dtype and w1.shape == w0.shape
            assert ((w1 == w0) | (w1 == 0)).all()
            assert np.array_equal(before.const(n, "bias"), after.const(after.node(n.name),
                                                                       "bias"))


# --- SPEC ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("tile:0.5", ("tile", 0.5)),
                                            ("unstructured:0.8", ("unstructured", 0.8)),
                                            (" global:0 ", ("global", 0.0))])
def test_parse_spec(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize("text, why", [
    ("tile", "is not MODE:SPARSITY"), ("tile:", "is not MODE:SPARSITY"),
    ("tile:half", "is not MODE:SPARSITY"), ("0.5", "is not MODE:SPARSITY"),
    ("random:0.5", "unknown pruning mode 'random'; choose unstructured, global, tile"),
    ("tile:1", "sparsity 1 is outside [0, 1)"), ("tile:-0.1", "sparsity -0.1 is outside"),
    ("unstructured:1.5", "outside [0, 1)"), ("tile:nan", "is not MODE:SPARSITY")])
def test_bad_spec(text, why):
    with pytest.raises(OptionError, match="^--prune") as e:
        parse_spec(text)
    assert why in str(e.value)


# --- structure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["unstructured", "global", "tile"])
def test_sparsity_zero_is_identity(mode):
    g = mlp()
    p = Prune(mode, 0.0, pe=(4, 4))(g)
    p.verify()
    for name, w in weights(g).items():
        assert np.array_equal(weights(p)[name], w)
    assert p.notes == g.notes
    assert np.array_equal(golden.run_float_samples(p, X), golden.run_float_samples(g, X))


@pytest.mark.parametrize("s", [0.1, 0.29, 0.5, 0.8, 0.95])
def test_unstructured_reaches_the_target_in_every_layer(s):
    g = mlp()
    before = g.summary()
    p = Prune("unstructured", s)(g)
    p.verify()
    assert g.summary() == before  # the input graph is untouched
    check_only_zeroed(g, p)
    for name, w in weights(p).items():
        w0 = weights(g)[name]
        assert sparsity(w) >= s
        assert (w == 0).sum() == int(np.ceil(round(s * w.size, 9)))  # no more than needed
        # the zeroed weights are the smallest: every survivor is at least as large
        assert np.abs(w0[w == 0]).max() <= np.abs(w0[w != 0]).min()
    assert [n for n in p.notes if n.startswith("layer ")] == [
        f"layer {n}: pruned to {sparsity(w):.1%} sparsity (unstructured, target {s:.1%})"
        for n, w in weights(p).items()]


def test_existing_zeros_count_toward_the_target():
    g = mlp()
    node = g.node("fc1")
    w = g.const(node, "weight").copy()
    w.ravel()[::2] = 0  # half the layer is already pruned
    g.add_const(node.const_name("weight"), w)
    p = Prune("unstructured", 0.3)(g)
    assert np.array_equal(weights(p)["fc1"], w)  # nothing more to prune, nothing restored
    p = Prune("unstructured", 0.6)(g)
    assert (weights(p)["fc1"] == 0).sum() == int(np.ceil(0.6 * w.size))
    check_only_zeroed(g, p)


@pytest.mark.parametrize("s", [0.3, 0.7, 0.9])
def test_global_uses_one_threshold(s):
    g = mlp()
    p = Prune("global", s)(g)
    check_only_zeroed(g, p)
    w0 = np.concatenate([w.ravel() for w in weights(g).values()])
    w1 = np.concatenate([w.ravel() for w in weights(p).values()])
    assert sparsity(w1) >= s and (w1 == 0).sum() == int(np.ceil(s * w1.size))
    assert np.abs(w0[w1 == 0]).max() <= np.abs(w0[w1 != 0]).min()
    layer = [sparsity(w) for w in weights(p).values()]
    assert max(layer) > min(layer)  # per-layer sparsity varies: the threshold is shared


@pytest.mark.parametrize("pe", [(4, 4), (8, 4), (3, 5), (1, 1)])
@pytest.mark.parametrize("s", [0.25, 0.5, 0.75])
def test_tile_zeroes_whole_aligned_tiles(pe, s):
    r, c = pe
    g = mlp()
    p = Prune("tile", s, pe=pe)(g)
    check_only_zeroed(g, p)
    for name, w in weights(p).items():
        w0 = weights(g)[name]
        k, n = w.shape
        kts, nts = -(-k // r), -(-n // c)
        zero_tiles = 0
        for kt in range(kts):
            for nt in range(nts):
                tile = w[kt * r:(kt + 1) * r, nt * c:(nt + 1) * c]
                orig = w0[kt * r:(kt + 1) * r, nt * c:(nt + 1) * c]
                assert not tile.any() or np.array_equal(tile, orig)  # all or nothing
                zero_tiles += not tile.any()
        assert zero_tiles == int(np.floor(s * kts * nts + 1e-9))
        norms0, norms1 = tile_norms(w0, r, c), tile_norms(w, r, c)
        assert norms0[norms1 == 0].max() <= norms0[norms1 != 0].min()  # lowest norms go
        note = next(x for x in p.notes if x.startswith(f"layer {name}:"))
        assert f"(tile, target {s:.1%}; {zero_tiles} of {kts * nts} {r}x{c} tiles all zero)" \
            in note


def test_tile_count_rounds_down():
    g = mlp((8, 8, 4))  # fc0 4 tiles of 4x4, fc1 2 tiles
    p = Prune("tile", 0.6, pe=(4, 4))(g)
    assert (tile_norms(weights(p)["fc0"], 4, 4) == 0).sum() == 2
    assert (tile_norms(weights(p)["fc1"], 4, 4) == 0).sum() == 1


def test_tile_keeps_all_zero_tiles_and_counts_them():
    g = mlp((8, 8, 4))
    node = g.node("fc0")
    w = g.const(node, "weight").copy()
    w[4:, 4:] = 0  # one tile pruned in training
    g.add_const(node.const_name("weight"), w)
    p = Prune("tile", 0.25, pe=(4, 4))(g)
    assert np.array_equal(weights(p)["fc0"], w)
    p = Prune("tile", 0.5, pe=(4, 4))(g)
    assert (tile_norms(weights(p)["fc0"], 4, 4) == 0).sum() == 2


def test_overrides_per_layer():
    g = mlp()
    p = Prune("global", 0.5, pe=(4, 4),
              overrides=(("fc2", "unstructured", 0.0), ("fc1", "tile", 0.5)))(g)
    assert np.array_equal(weights(p)["fc2"], weights(g)["fc2"])
    assert (tile_norms(weights(p)["fc1"], 4, 4) == 0).sum() == int(0.5 * 9 * 5)
    assert sparsity(weights(p)["fc0"]) >= 0.5  # the global pool is fc0 alone
    assert [x.split(":")[0] for x in p.notes] == ["layer fc0", "layer fc1"]


def test_override_unknown_layer_lists_the_layers():
    with pytest.raises(OptionError) as e:
        Prune("tile", 0.5, overrides=(("fc9", "tile", 0.5),))(mlp())
    assert str(e.value) == ("compression config names layer 'fc9', which the model does not "
                            "have; its layers are: fc0, fc1, fc2")


def test_override_global_is_rejected():
    with pytest.raises(OptionError, match="layer 'fc1': unknown pruning mode 'global'; "
                                          "choose unstructured, tile"):
        Prune("tile", 0.5, overrides=(("fc1", "global", 0.5),))(mlp())


@pytest.mark.parametrize("mode, s", [("bogus", 0.5), ("tile", 1.0)])
def test_bad_options(mode, s):
    with pytest.raises(OptionError, match="^--prune"):
        Prune(mode, s)(mlp())


def test_requires_a_float_dense_graph():
    q = Quantize()(mlp())
    with pytest.raises(PassError, match="node 'fc0' is QDense: run Canonicalize first"):
        Prune("tile", 0.5)(q)


def test_repr_shows_the_options():
    assert "mode='tile', sparsity=0.5, pe=(16, 16)" in repr(Prune("tile", 0.5, (16, 16)))


# --- numbers ---------------------------------------------------------------------------------

def test_float_outputs_change_only_by_the_pruned_weights():
    """Pruned network == the dense network evaluated with those weights zeroed by hand."""
    g = mlp()
    p = Prune("unstructured", 0.5)(g)
    ref = g.copy()
    for n in g.nodes():
        if isinstance(n.op, ir.Dense):
            w = g.const(n, "weight")
            ref.add_const(n.const_name("weight"), np.where(weights(p)[n.name] == 0, 0, w))
    assert np.array_equal(golden.run_float_samples(p, X), golden.run_float_samples(ref, X))


def test_quantized_pruned_weights_stay_zero():
    g = mlp()
    p = Prune("tile", 0.5, pe=(4, 4))(g)
    q = Quantize(calib=X)(p)
    for n in q.nodes():
        if isinstance(n.op, ir.QDense):
            assert ((q.const(n, "weight") == 0) >= (weights(p)[n.name] == 0)).all()
    y = golden.run_int_samples(q, golden.quantize_input(q, X))
    assert y.shape == (len(X), 1, SIZES[-1])


def test_light_pruning_barely_moves_the_outputs():
    g = mlp()
    y0 = golden.run_float_samples(g, X)
    y1 = golden.run_float_samples(Prune("unstructured", 0.05)(g), X)
    assert np.abs(y1 - y0).max() < 0.1 * np.abs(y0).max()
