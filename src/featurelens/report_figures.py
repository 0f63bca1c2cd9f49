"""The built-in report figures, registered through the figures hook exactly as a plugin's are.

Each function sees a :class:`~featurelens.backends.ReportContext` and hands arrays to
:mod:`featurelens.visualize`; ``featurelens visualize`` writes whatever is registered.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from featurelens import visualize as viz
from featurelens.backends import Panel, ReportContext, ReportFigure, hookimpl
from featurelens.backends.figures import FigureResult
from featurelens.evaluation import evaluate_probabilities


def samples(ctx: ReportContext) -> Figure:
    return viz.samples_figure(ctx.images, ctx.labels, ctx.class_names, per_class=8,
                              title=f"Test images: 8 random examples of each class ({len(ctx.labels):,} in all)")


def history(ctx: ReportContext) -> Figure | None:
    h = ctx.model.history
    return viz.history_figure(h) if h is not None and h.epochs else None


def filters(ctx: ReportContext) -> list[Panel]:
    return [Panel(layer, viz.filters_figure(ctx.model.filters(layer), layer), f"Filters of {layer}",
                  "The learned kernels of this layer. First-layer filters are colour images (they "
                  "respond to edges and colour blobs); deeper ones are shown per input channel or "
                  "averaged, red positive and blue negative.")
            for layer in ctx.model.conv_layers()]


def _shown(ctx: ReportContext) -> np.ndarray:
    return viz.to_display(ctx.images[ctx.image_index:ctx.image_index + 1])[0]


def feature_maps(ctx: ReportContext) -> list[Panel]:
    label = ctx.class_names[ctx.labels[ctx.image_index]]
    return [Panel(layer, viz.feature_maps_figure(array, layer, _shown(ctx)), f"Feature maps of {layer}",
                  f"What every channel of {layer} computes for test image {ctx.image_index} ({label}); "
                  "bright means strongly activated.")
            for layer, array in ctx.activation_maps.items()]


def hierarchy(ctx: ReportContext) -> Figure:
    return viz.hierarchy_figure(_shown(ctx), ctx.activation_maps)


def predictions(ctx: ReportContext) -> Figure:
    first = np.arange(min(24, len(ctx.images)))
    return viz.predictions_figure(viz.to_display(ctx.images[first]), ctx.labels[first],
                                  ctx.probabilities[first], ctx.class_names)


def topk(ctx: ReportContext) -> Figure:
    few = np.arange(min(4, len(ctx.images)))
    return viz.topk_figure(viz.to_display(ctx.images[few]), ctx.probabilities[few], ctx.class_names,
                           ctx.labels[few])


def confusion(ctx: ReportContext) -> Figure:
    evaluation = evaluate_probabilities(ctx.probabilities, ctx.labels, ctx.class_names)
    return viz.confusion_figure(evaluation.confusion, ctx.class_names)


def mistakes(ctx: ReportContext) -> Figure | None:
    wrong = viz.confident_mistakes(ctx.labels, ctx.probabilities, 18)
    if not len(wrong):
        return None
    return viz.predictions_figure(viz.to_display(ctx.images[wrong]), ctx.labels[wrong],
                                  ctx.probabilities[wrong], ctx.class_names, title="The most confident mistakes")


BUILTIN: list[tuple[str, str, str, Callable[[ReportContext], FigureResult]]] = [
    ("samples", "Dataset samples", "Eight random test images of every class, as loaded.", samples),
    ("history", "Training history", "Loss and accuracy per epoch on the training and validation images; "
     "the learning rate below, dotted lines where it was reduced, a star at the best epoch.", history),
    ("filters", "Filters", "The learned kernels of every conv layer.", filters),
    ("feature_maps", "Feature maps", "What every channel computes for one test image.", feature_maps),
    ("hierarchy", "From edges to parts", "The same image through the network: early layers keep the "
     "image's layout (edges, colours), deeper ones are coarser and more abstract.", hierarchy),
    ("predictions", "Predictions", "The first test images with the true and predicted class and its "
     "probability.", predictions),
    ("topk", "Top-5 probabilities", "How sure the model is: its five most likely classes per image.", topk),
    ("confusion", "Confusion matrix", "Which classes are mistaken for which, and the accuracy of each "
     "class.", confusion),
    ("mistakes", "Most confident mistakes", "Wrong predictions the model was surest of: often ambiguous "
     "or unusual images.", mistakes),
]


@hookimpl
def featurelens_register_figures(register: Callable[[ReportFigure], None]) -> None:
    for i, (name, title, caption, make) in enumerate(BUILTIN):
        register(ReportFigure(name, title, caption, make, order=100 * (i + 1)))
