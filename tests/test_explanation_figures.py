"""The explanation figures on synthetic arrays: no framework, only maps and images."""

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from featurelens import visualize as viz
from featurelens.errors import InputError
from featurelens.visualize.explanations import scale_maps

NAMES = ["cat", "dog", "ship"]


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))


def blobs(n: int, size: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.exp(-((yy - 2 * i) ** 2 + (xx - 8) ** 2) / 10.0) for i in range(n)]).astype(np.float32)


IMAGES = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)


def test_scale_maps_each_or_shared_and_signed():
    maps = np.stack([np.full((2, 2), 2.0), np.zeros((2, 2)), np.array([[-4.0, 1], [0, 2]])])
    each, signed = scale_maps(maps)
    assert signed and each[0].max() == 1 and (each[1] == 0).all() and each[2].min() == -1
    shared, _ = scale_maps(maps, shared=True)
    assert shared[0, 0, 0] == 0.5 and shared[2, 0, 0] == -1
    assert not scale_maps(np.abs(maps))[1]


def test_overlay_shows_every_map_over_its_image_with_a_colour_bar():
    fig = viz.explanation_overlay_figure(IMAGES, blobs(4) * 7, [f"img {i}" for i in range(4)], cols=2)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(panels) == 4 and all(len(ax.images) == 2 for ax in panels)  # image + heat map
    heat = panels[0].images[1].get_array()
    assert heat.max() == pytest.approx(1.0)  # scaled to its own maximum
    np.testing.assert_allclose(panels[0].images[0].get_array(), IMAGES[0] / 255.0)  # shown as loaded
    assert "1 = strongest evidence" in texts(fig) and "img 3" in texts(fig)


def test_signed_maps_get_a_signed_colour_bar():
    fig = viz.explanation_overlay_figure(IMAGES[:2], blobs(2) - 0.5)
    assert "blue: against" in texts(fig) and "1 = strongest" not in texts(fig)


def test_methods_grid_has_one_column_per_method():
    maps = {"gradcam": blobs(3), "integrated_gradients": blobs(3) - 0.2}
    fig = viz.methods_grid_figure(IMAGES[:3], maps, ["a", "b", "c"])
    titles = [ax.get_title() for ax in fig.axes]
    assert {"image", "gradcam", "integrated_gradients"} <= set(titles)
    assert sum(1 for ax in fig.axes if ax.images) == 3 * 3
    assert "blue: against" in texts(fig) and "1 = strongest evidence" in texts(fig)  # both colour bars
    with pytest.raises(InputError, match="'saliency'"):
        viz.methods_grid_figure(IMAGES[:3], {"gradcam": blobs(3), "saliency": blobs(2)}, ["a", "b", "c"])


def test_all_classes_shares_one_scale_and_frames_the_prediction():
    probabilities = np.array([0.2, 0.7, 0.1], np.float32)
    maps = blobs(3) * probabilities[:, None, None]
    fig = viz.all_classes_figure(IMAGES[0], maps, NAMES, probabilities, method="gradcam")
    by_title = {ax.get_title().split("\n")[0]: ax for ax in fig.axes if ax.images}
    assert set(by_title) == {"image", *NAMES}
    assert by_title["dog"].images[1].get_array().max() == pytest.approx(1.0)
    assert by_title["ship"].images[1].get_array().max() == pytest.approx(0.1 / 0.7, rel=1e-3)
    assert by_title["dog"].spines["left"].get_linewidth() == 3
    assert "70.0%" in texts(fig) and "all classes on one scale" in texts(fig)
    with pytest.raises(InputError, match="one value per class"):
        viz.all_classes_figure(IMAGES[0], maps, NAMES, probabilities[:2])


def test_mistakes_put_the_predicted_class_beside_the_true_one():
    probabilities = np.array([[0.1, 0.8, 0.1], [0.6, 0.1, 0.3]], np.float32)
    fig = viz.mistakes_explained_figure(IMAGES[:2], blobs(2), blobs(2) * 0.5, np.array([0, 2]), np.array([1, 0]),
                                        NAMES, probabilities, per_row=1)
    words = texts(fig)
    assert "predicted: dog\n80%" in words and "true: cat\n10%" in words and "true: ship\n30%" in words
    shown = [ax for ax in fig.axes if len(ax.images) == 2]
    assert len(shown) == 4
    assert shown[1].images[1].get_array().max() == pytest.approx(0.5)  # the pair shares one scale
    with pytest.raises(InputError, match="labels and predicted"):
        viz.mistakes_explained_figure(IMAGES[:2], blobs(2), blobs(2), np.array([0]), np.array([1, 0]), NAMES,
                                      probabilities)


def curve(kind: str, rate: float) -> SimpleNamespace:
    fractions = np.linspace(0, 1, 9)
    p = np.exp(-rate * fractions) if kind == "deletion" else 1 - np.exp(-rate * fractions)
    probs = np.stack([p, p])
    return SimpleNamespace(kind=kind, fractions=fractions, probabilities=probs,
                           auc=(((probs[:, 1:] + probs[:, :-1]) / 2) * np.diff(fractions)).sum(axis=1))


def test_deletion_insertion_legend_gives_the_aucs():
    curves = {"gradcam": (curve("deletion", 5), curve("insertion", 5)),
              "saliency": (curve("deletion", 1), curve("insertion", 1))}
    fig = viz.deletion_insertion_figure(curves)
    deletion, insertion = fig.axes[:2]
    assert len(deletion.lines) == 2 and len(insertion.lines) == 2
    labels = [t.get_text() for t in deletion.get_legend().get_texts()]
    assert labels[0] == f"gradcam (AUC {curves['gradcam'][0].auc.mean():.3f})"
    assert "lower area" in deletion.get_title() and "higher area" in insertion.get_title()
    with pytest.raises(InputError, match="deletion curve"):
        viz.deletion_insertion_figure({"gradcam": (curve("insertion", 1), curve("deletion", 1))})


def test_maps_must_match_the_images():
    with pytest.raises(InputError, match="one map per image"):
        viz.explanation_overlay_figure(IMAGES, np.zeros((4, 16)))
    with pytest.raises(InputError, match="matching the maps"):
        viz.explanation_overlay_figure(IMAGES, np.zeros((4, 8, 8)))
