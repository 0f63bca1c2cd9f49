"""Linear CKA (Kornblith et al. 2019) against its definition and its known properties, and the
snapshot arrays it is computed from (pooling, the folder format), in numpy only."""

import warnings

import numpy as np
import pytest

from featurelens.atlas.cka import cka_over_training, linear_cka
from featurelens.atlas.snapshots import Snapshots, pool_maps
from featurelens.errors import InputError, ModelFolderError


def direct_cka(x, y):
    """The definition: HSIC of the centred Gram matrices, HKH and HLH, normalised."""
    x, y = np.asarray(x, np.float64).reshape(len(x), -1), np.asarray(y, np.float64).reshape(len(y), -1)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_))


def orthogonal(size, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(size, size)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("n, p, q", [(20, 300, 500), (200, 6, 9), (50, 50, 3)], ids=["grams", "features", "mixed"])
def test_matches_the_definition_in_either_form(n, p, q):
    rng = np.random.default_rng(n + p)
    x = rng.normal(size=(n, p))
    y = x[:, :1] * rng.normal(size=(1, q)) + rng.normal(size=(n, q))  # related, not identical
    assert linear_cka(x, y) == pytest.approx(direct_cka(x, y), rel=1e-10)
    assert linear_cka(y, x) == pytest.approx(linear_cka(x, y), rel=1e-12)


def test_invariant_to_orthogonal_transforms_isotropic_scaling_and_translation():
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=(40, 12)), rng.normal(size=(40, 7))
    z = z + x[:, :7]
    reference = linear_cka(x, z)
    assert 0.05 < reference < 0.95
    rotated = x @ orthogonal(12, 2)
    assert linear_cka(rotated, z) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(3.7 * x, z) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x + 5.0, z) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x, rotated * 1e-3) == pytest.approx(1.0, abs=1e-12)  # the same representation
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    # not invariant to stretching some features only (that would make it meaningless)
    stretched = x * np.r_[np.full(6, 10.0), np.ones(6)]
    assert abs(linear_cka(stretched, z) - reference) > 1e-3


def test_bounded_and_near_zero_for_unrelated_representations():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4000, 5)), rng.normal(size=(4000, 5))
    assert 0.0 <= linear_cka(x, y) < 0.02


def test_constant_representations_give_zero_without_warnings():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert linear_cka(np.ones((10, 8)), x) == 0.0
        assert linear_cka(x, np.zeros((10, 3))) == 0.0
        assert linear_cka(np.full((10, 4), 7.0), np.zeros((10, 4))) == 0.0


def test_feature_maps_float16_and_large_values():
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(16, 8, 8, 4)).astype(np.float32)
    other = maps + 0.5 * rng.normal(size=maps.shape).astype(np.float32)
    expected = direct_cka(maps, other)
    assert linear_cka(maps, other) == pytest.approx(expected, rel=1e-5)  # (n, H, W, C) flattened
    assert linear_cka(maps.astype(np.float16), other.astype(np.float16)) == pytest.approx(expected, abs=2e-3)
    assert linear_cka(maps * 1e20, other) == pytest.approx(expected, rel=1e-5)  # no overflow


def test_bad_inputs_are_explained():
    x = np.zeros((5, 3))
    with pytest.raises(InputError, match="same examples, got 5 and 4 rows"):
        linear_cka(x, np.zeros((4, 3)))
    with pytest.raises(InputError, match="at least 2 examples"):
        linear_cka(x[:1], x[:1])
    with pytest.raises(InputError, match="finite"):
        linear_cka(np.full((5, 3), np.nan), x)
    with pytest.raises(InputError, match=r"\(n, features\)"):
        linear_cka(np.zeros(5), x)


def test_pooling_averages_to_at_most_four_by_four():
    rng = np.random.default_rng(6)
    maps = rng.normal(size=(3, 8, 8, 5)).astype(np.float32)
    pooled = pool_maps(maps)
    assert pooled.shape == (3, 4, 4, 5)
    np.testing.assert_allclose(pooled[:, 1, 2], maps[:, 2:4, 4:6].mean(axis=(1, 2)), rtol=1e-6)
    odd = pool_maps(maps[:, :6, :7])  # bins as even as the sizes allow
    assert odd.shape == (3, 4, 4, 5)
    np.testing.assert_allclose(odd[:, 0, 0], maps[:, 0:2, 0:2].mean(axis=(1, 2)), rtol=1e-6)
    assert pool_maps(maps[:, :2, :3]).shape == (3, 2, 3, 5)  # small maps stay as they are
    np.testing.assert_array_equal(pool_maps(maps[:, :2, :3]), maps[:, :2, :3])


def fake_snapshots(epochs=(0, 1, 3)):
    rng = np.random.default_rng(7)
    layers = ("conv_a", "group/conv_b")  # a Keras path with a slash
    final_maps = {"conv_a": rng.normal(size=(6, 4, 4, 2)), "group/conv_b": rng.normal(size=(6, 2, 2, 3))}
    maps = {e: {k: (v + (3 - e) * rng.normal(size=v.shape)).astype(np.float16) for k, v in final_maps.items()}
            for e in epochs}
    filters = {e: {"conv_a": rng.normal(size=(2, 3, 3, 3)).astype(np.float16),
                   "group/conv_b": rng.normal(size=(3, 3, 3, 2)).astype(np.float16)} for e in epochs}
    return Snapshots(layers=layers, epochs=list(epochs), filters=filters, maps=maps, final_filters=filters[epochs[-1]],
                     final_maps={k: v.astype(np.float16) for k, v in final_maps.items()}, final_epoch=epochs[-1],
                     probe=rng.normal(size=(6, 8, 8, 3)).astype(np.float32), probe_indices=tuple(range(6)))


def test_cka_over_training_is_epochs_by_layers_against_the_final_model():
    snaps = fake_snapshots()
    cka = cka_over_training(snaps)
    assert cka.shape == (3, 2) and np.isfinite(cka).all() and ((0 <= cka) & (cka <= 1)).all()
    snaps.maps[3] = dict(snaps.final_maps)
    np.testing.assert_allclose(cka_over_training(snaps)[-1], 1.0)


def test_snapshot_arrays_round_trip_and_damage_is_reported():
    snaps = fake_snapshots()
    arrays, meta = snaps.to_arrays(), snaps.metadata()
    assert "maps/final/group/conv_b" in arrays and arrays["filters/1/conv_a"].dtype == np.float16
    assert meta["epochs"] == [0, 1, 3] and meta["pool"] == 4 and meta["dtype"] == "float16"
    back = Snapshots.from_arrays(arrays, meta)
    assert back.layers == snaps.layers and back.epochs == snaps.epochs and back.final_epoch == 3
    np.testing.assert_array_equal(back.maps[1]["group/conv_b"], snaps.maps[1]["group/conv_b"])
    np.testing.assert_array_equal(back.probe, snaps.probe)
    labels, kernels = back.layer_filters("conv_a")
    assert labels == ["epoch 0", "epoch 1", "epoch 3", "final (epoch 3)"] and kernels[0].dtype == np.float32
    with pytest.raises(InputError, match="conv_a, group/conv_b"):
        back.layer_filters("nope")
    del arrays["maps/3/conv_a"]
    with pytest.raises(ModelFolderError, match="'maps/3/conv_a'"):
        Snapshots.from_arrays(arrays, meta)
    with pytest.raises(ModelFolderError, match="newer featurelens"):
        Snapshots.from_arrays(snaps.to_arrays(), {**meta, "format_version": 99})
    with pytest.raises(ModelFolderError, match="incomplete"):
        Snapshots.from_arrays(snaps.to_arrays(), {k: v for k, v in meta.items() if k != "layers"})
