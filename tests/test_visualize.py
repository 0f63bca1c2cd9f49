"""Visualizers on synthetic arrays: exact mosaics, faithful un-normalization, labelled figures."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from featurelens import EpochRecord, History, Normalization
from featurelens import visualize as viz
from featurelens.visualize.mosaic import grid_shape, tile_origin


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))


def test_mosaic_places_every_pixel_exactly():
    tiles = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    out = mosaic_out = viz.mosaic(tiles, cols=2, pad=1)
    assert out.shape == (1 + 3 * (3 + 1), 1 + 2 * (4 + 1))
    for i in range(5):
        y, x = tile_origin(i, (3, 4), cols=2, pad=1)
        np.testing.assert_array_equal(out[y:y + 3, x:x + 4], tiles[i])
    # tile 3 is row 1, column 1: its top-left pixel sits at (1 + 4, 1 + 5)
    assert mosaic_out[5, 6] == tiles[3, 0, 0]
    assert np.isnan(out[0]).all() and np.isnan(out[:, 0]).all()  # padding
    assert np.isnan(out[9:12, 6:10]).all()  # the unused sixth cell


def test_mosaic_of_colour_tiles_and_grid_shape():
    tiles = np.random.default_rng(0).random((7, 2, 2, 3))
    out = viz.mosaic(tiles, pad=0)
    assert grid_shape(7) == (3, 3) and out.shape == (6, 6, 3)
    np.testing.assert_allclose(out[2:4, 0:2], tiles[3])


def test_to_display_inverts_normalization():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    norm = Normalization.from_images(images)
    shown = viz.to_display(norm.apply(images), norm)
    np.testing.assert_allclose(shown, images / 255.0, atol=1e-5)
    np.testing.assert_allclose(viz.to_display(images), images / 255.0)
    np.testing.assert_allclose(viz.to_display(images.astype(np.float32)), images / 255.0)


def test_sample_indices_pick_the_right_classes():
    labels = np.repeat(np.arange(10), 12)
    grid = viz.sample_indices(labels, per_class=5, seed=3)
    assert grid.shape == (10, 5)
    assert all((labels[grid[c]] == c).all() for c in range(10))


def test_samples_figure_labels_every_class():
    labels = np.repeat(np.arange(3), 4)
    images = np.zeros((12, 8, 8, 3), np.uint8)
    fig = viz.samples_figure(images, labels, ["cat", "dog", "ship"], per_class=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["cat", "dog", "ship"]
    assert len(fig.axes[0].images) == 1  # one mosaic, not one axes per image


def test_first_layer_filters_are_rgb_tiles_scaled_per_filter():
    filters = np.random.default_rng(2).normal(size=(6, 3, 3, 3)).astype(np.float32)
    picture, mode = viz.filter_mosaic(filters)
    assert mode == "rgb" and picture.shape == (1 + 2 * 4, 1 + 3 * 4, 3)
    tile = picture[1:4, 1:4]
    assert tile.min() == pytest.approx(0) and tile.max() == pytest.approx(1)
    fig = viz.filters_figure(filters, "block1_conv1")
    assert "each filter scaled on its own" in texts(fig) and "block1_conv1" in texts(fig)


def test_deep_filters_channel_grid_is_filter_by_input_channel():
    filters = np.zeros((4, 3, 3, 5), np.float32)
    filters[2, 1, 1, 3] = -2.0
    filters[0, 0, 0, 0] = 1.0
    picture, mode = viz.filter_mosaic(filters, scaling="shared")
    assert mode == "channels" and picture.shape == (1 + 4 * 4, 1 + 5 * 4)
    y, x = tile_origin(2 * 5 + 3, (3, 3), cols=5, pad=1)  # filter 2, input channel 3
    assert picture[y + 1, x + 1] == pytest.approx(-1.0)
    assert picture[1, 1] == pytest.approx(0.5)
    fig = viz.filters_figure(filters, "block2_conv1", scaling="shared")
    assert "one scale for the whole layer" in texts(fig)
    assert "largest |weight| in the layer" in fig.axes[1].get_ylabel()  # the labelled colour bar


def test_mean_view_for_large_layers():
    filters = np.ones((128, 3, 3, 128), np.float32)
    picture, mode = viz.filter_mosaic(filters)
    assert mode == "mean"
    assert np.nanmax(picture) == pytest.approx(1.0)


def test_feature_map_mosaic_and_strongest_channels():
    maps = np.zeros((4, 4, 6), np.float32)
    maps[..., 2] = 5.0
    maps[0, 0, 4] = 3.0
    assert viz.strongest_channels(maps, 2).tolist() == [2, 4]
    picture = viz.feature_map_mosaic(maps, cols=3)
    assert picture.shape == (1 + 2 * 5, 1 + 3 * 5)
    y, x = tile_origin(4, (4, 4), cols=3, pad=1)
    assert picture[y, x] == 1.0 and picture[y + 1, x + 1] == 0.0
    with pytest.raises(ValueError, match=r"maps\[i\]"):
        viz.feature_map_mosaic(np.zeros((2, 4, 4, 6)))


def test_feature_map_figures_have_their_panels():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 3))
    fig = viz.feature_maps_figure(rng.random((8, 8, 16)), "block1_relu1", image)
    assert "16 channels of 8x8" in texts(fig) and "input image" in texts(fig)
    maps = {"block1_relu1": rng.random((8, 8, 4)), "block2_relu1": rng.random((4, 4, 8))}
    fig = viz.hierarchy_figure(image, maps, channels=4)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("block1_relu1" in t for t in labels) and any("block2_relu1" in t for t in labels)
    assert "each channel scaled to 0-1" in texts(fig)


def test_prediction_helpers_and_figures():
    labels = np.array([0, 1, 2, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]], np.float32)
    assert viz.confident_mistakes(labels, probs).tolist() == [1]
    order, top = viz.top_k(probs, 2)
    assert order[0].tolist() == [0, 1] and top[0].tolist() == pytest.approx([0.9, 0.05])
    names = ["cat", "dog", "ship"]
    images = np.zeros((4, 8, 8, 3), np.float32)
    fig = viz.predictions_figure(images, labels, probs, names, cols=2)
    assert "3 of 4 right" in texts(fig)
    wrong_titles = [ax.title for ax in fig.axes if ax.title.get_color() == "#cf222e"]
    assert len(wrong_titles) == 1 and "true: dog" in wrong_titles[0].get_text()
    fig = viz.topk_figure(images[:2], probs[:2], names, labels[:2], k=3)
    assert "true: cat" in texts(fig)
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 4]])
    fig = viz.confusion_figure(confusion, names)
    assert "fraction of the true class" in texts(fig) + fig.axes[-1].get_ylabel() + \
        " ".join(ax.get_ylabel() for ax in fig.axes)
    assert "overall 80.0%" in texts(fig)


def test_history_figure_marks_lr_reductions_and_best_epoch():
    history = History(monitor="val_loss", best_epoch=3, stop_reason="early_stopping",
                      restored_best_weights=True, backend="torch")
    for e, (loss, lr) in enumerate([(2.0, 1e-3), (1.5, 1e-3), (1.2, 5e-4), (1.3, 5e-4), (1.4, 2.5e-4)], 1):
        history.append(EpochRecord(e, loss, 0.1 * e, loss + 0.1, 0.1 * e, lr, 1.0))
    fig = viz.history_figure(history)
    text = texts(fig)
    assert "learning rate reduced" in text and "best val_loss: epoch 3 (weights kept)" in text
    assert "early stopping" in text
    assert fig.axes[2].get_yscale() == "log" and fig.axes[2].get_ylabel() == "learning rate"
    reductions = [line for line in fig.axes[0].lines if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in reductions] == [3, 5]


def test_visualizers_never_touch_pyplot():
    """Figures are built without pyplot: no global state, no GUI window, nothing shown."""
    import subprocess
    import sys

    code = ("import sys; from featurelens import visualize as viz, History, EpochRecord;"
            "fig = viz.history_figure(History(epochs=[EpochRecord(1, 1.0, 0.5, None, None, 1e-3, 1.0)]));"
            "import io; fig.savefig(io.BytesIO(), format='png');"
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_outputs_become_probabilities_only_when_they_are_logits():
    from featurelens.evaluation import as_probabilities

    probs = np.array([[0.2, 0.8], [1.0, 0.0]], np.float32)
    assert np.array_equal(as_probabilities(probs), probs)
    logits = np.array([[2.0, 0.0], [-1.0, 3.0]], np.float32)
    out = as_probabilities(logits)
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-6)
    assert out[0, 0] > out[0, 1] and out[1, 1] > out[1, 0]
