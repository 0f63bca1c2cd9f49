"""The built-in report figures, registered through the figures hook exactly as a plugin's are.

Each function sees a :class:`~featurelens.backends.ReportContext` and hands arrays to
:mod:`featurelens.visualize`; ``featurelens visualize`` writes whatever is registered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from featurelens import explain as ex
from featurelens import visualize as viz
from featurelens.backends import Capability, Panel, ReportContext, ReportFigure, hookimpl
from featurelens.backends.figures import FigureResult
from featurelens.evaluation import evaluate_probabilities
from featurelens.modeldir import HISTORY_FILE, SNAPSHOTS_FILE


def samples(ctx: ReportContext) -> Figure:
    return viz.samples_figure(ctx.images, ctx.labels, ctx.class_names, per_class=8,
                              title=f"Test images: 8 random examples of each class ({len(ctx.labels):,} in all)")


def _unavailable(ctx: ReportContext, file: str, title: str) -> Figure | None:
    """A notice saying why the model folder's ``file`` could not be drawn from, if it was damaged."""
    problem = getattr(ctx.model, "folder_problems", {}).get(file)
    if problem is None:
        return None
    return viz.notice_figure(f"{title}: not available", f"{problem}. The model loaded without it and the rest of "
                             f"this report is unaffected. Restore {file} from a copy of the model folder, or delete it "
                             "and run `featurelens verify --accept MODEL_DIR`.")


def history(ctx: ReportContext) -> Figure | None:
    h = ctx.model.history
    if h is not None and h.epochs:
        return viz.history_figure(h)
    return _unavailable(ctx, HISTORY_FILE, "Training history")


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


EXPLAINED = 8  # images per explanation figure: Grad-CAM and saliency cost one backward pass each


def _explainable(ctx: ReportContext) -> bool:
    """Gradient methods need the backend's gradients and a conv layer for Grad-CAM."""
    model = ctx.model
    return (model.backend.supports(Capability.GRADIENTS) and model.backend.supports(Capability.INTROSPECT)
            and bool(model.conv_layers()))


def _labelled(ctx: ReportContext, indices: np.ndarray) -> list[str]:
    predicted = ctx.probabilities[indices].argmax(axis=1)
    return [f"true: {ctx.class_names[ctx.labels[i]]}\npred: {ctx.class_names[p]} {ctx.probabilities[i, p]:.0%}"
            for i, p in zip(indices, predicted)]


def where_it_looks(ctx: ReportContext) -> Figure | None:
    if not _explainable(ctx):
        return None
    first = np.arange(min(EXPLAINED, len(ctx.images)))
    images = ctx.images[first]
    with warnings.catch_warnings():  # a zero CAM shows as such in the figure
        warnings.simplefilter("ignore", ex.ExplanationWarning)
        cam = ex.gradcam(ctx.model, images)
    grads = ex.saliency(ctx.model, images, cam.targets)
    return viz.methods_grid_figure(images, {f"Grad-CAM ({cam.layer})": cam.maps, "saliency": grads.maps},
                                   _labelled(ctx, first),
                                   title="Where the model looks: evidence for the predicted class")


def mistakes_explained(ctx: ReportContext) -> Figure | None:
    if not _explainable(ctx):
        return None
    wrong = viz.confident_mistakes(ctx.labels, ctx.probabilities, EXPLAINED)
    if not len(wrong):
        return None
    images, labels = ctx.images[wrong], ctx.labels[wrong]
    predicted = ctx.probabilities[wrong].argmax(axis=1)
    with warnings.catch_warnings():  # a zero CAM shows as such in the figure
        warnings.simplefilter("ignore", ex.ExplanationWarning)
        for_predicted = ex.gradcam(ctx.model, images, predicted)
        for_true = ex.gradcam(ctx.model, images, labels)
    return viz.mistakes_explained_figure(images, for_predicted.maps, for_true.maps, labels, predicted,
                                        ctx.class_names, ctx.probabilities[wrong],
                                        method=f"Grad-CAM on {for_predicted.layer}")


ATLAS_CHANNELS = 12
ATLAS_STEPS = 128


def channel_atlas(ctx: ReportContext) -> list[Panel] | None:
    """Each block's last conv layer: its most class-selective channels, with feature visualization
    where the backend has gradients (the full atlas is ``featurelens atlas``)."""
    from featurelens import atlas
    from featurelens.atlas.featurevis import feature_visualization
    from featurelens.visualize.atlas import channel_atlas_figure

    model = ctx.model
    if not model.backend.supports(Capability.INTROSPECT) or not model.conv_layers():
        return None
    layers = atlas.default_atlas_layers(model)
    found = atlas.dataset_examples(model, ctx.images, layers, top=8, labels=ctx.labels,
                                   num_classes=len(ctx.class_names))
    gradients = model.backend.supports(Capability.GRADIENTS)
    panels = []
    for name in layers:
        examples = found[name]
        selectivity = examples.stats.selectivity
        order = np.argsort(-selectivity) if selectivity is not None else np.arange(examples.channels)
        chosen = np.sort(order[:ATLAS_CHANNELS])
        images = None
        if gradients:
            result = feature_visualization(model, name, channels=chosen,
                                           steps=ATLAS_STEPS, colour=ctx.data.train_images[:5000]
                                           if len(ctx.data.train_images) else ctx.images[:5000], progress=False)
            images = np.zeros((examples.channels, *result.images.shape[1:]), np.float32)
            images[chosen] = result.images
        patches = examples.patches(ctx.images) if examples.field is not None else None
        figure = channel_atlas_figure(name, chosen, kernels=model.filters(name), feature_vis=images, patches=patches,
                                      mean=examples.stats.mean, never_active=examples.stats.never_active,
                                      class_mean=examples.stats.class_mean, class_names=ctx.class_names,
                                      measured_at=examples.measured_at,
                                      title=f"{name}: its {len(chosen)} most class-selective channels")
        dead = int(examples.stats.dead.sum())
        panels.append(Panel(name, figure, f"What the channels of {name} detect",
                            f"Its {len(chosen)} most class-selective channels (of {examples.channels}; {dead} dead) "
                            f"over the {len(ctx.images):,} test images: kernel, "
                            + ("an image optimized to excite the channel, " if gradients else "")
                            + "the receptive-field patches of the images that excite it most, and its mean "
                            "activation per class. featurelens atlas draws every channel."))
    return panels


def filters_over_training(ctx: ReportContext) -> Figure | None:
    """The first conv layer's kernels at every snapshot (models trained with snapshots)."""
    from featurelens.visualize.drift import filters_over_epochs_figure

    snapshots = ctx.model.snapshots
    if snapshots is None or not snapshots.layers:
        return _unavailable(ctx, SNAPSHOTS_FILE, "How the filters formed")
    labels, arrays = snapshots.layer_filters(snapshots.layers[0])
    return filters_over_epochs_figure(arrays, labels, snapshots.layers[0])


def similarity_over_training(ctx: ReportContext) -> Figure | None:
    """Linear CKA of each conv layer at every snapshot against the trained model."""
    from featurelens.atlas.cka import cka_over_training
    from featurelens.visualize.drift import cka_heatmap_figure

    snapshots = ctx.model.snapshots
    if snapshots is None or not snapshots.layers:
        return None
    return cka_heatmap_figure(cka_over_training(snapshots), [f"epoch {e}" for e in snapshots.epochs],
                              snapshots.layers, probe=len(snapshots.probe))


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
    ("explanations", "Where the model looks", f"Grad-CAM (coarse: which region) and saliency (fine: which "
     f"pixels) of the predicted class for the first {EXPLAINED} test images, each map scaled to its own "
     "maximum. Backends with gradients only.", where_it_looks),
    ("mistakes_explained", "Mistakes explained", f"Grad-CAM of the {EXPLAINED} most confident mistakes: the "
     "evidence the model saw for the class it predicted beside the evidence for the true class. Backends "
     "with gradients only.", mistakes_explained),
    ("atlas", "What each channel detects", "Dataset examples, feature visualization and statistics per "
     "channel of each block's last conv layer.", channel_atlas),
    ("filters_over_training", "How the filters formed", "The first conv layer's kernels at every snapshot "
     "taken during training (train --snapshot-every), each scaled on its own; filters_over_training.gif "
     "animates them.", filters_over_training),
    ("similarity_over_training", "When each layer settled", "Linear CKA (Kornblith et al. 2019) of each "
     "conv layer's representation of a fixed probe batch at every snapshot against the trained model: "
     "1 means it already computed what it computes at the end, up to a rotation and a scale. Early "
     "layers usually settle first.", similarity_over_training),
]
ORDERS = {"explanations": 850, "mistakes_explained": 910, "atlas": 420, "filters_over_training": 320,
          "similarity_over_training": 330}
"""Figures added later keep the older ones' orders (100 to 900) and stay before plugins' (950 in the docs);
the drift figures follow the filters, the atlas the feature maps and the hierarchy."""


@hookimpl
def featurelens_register_figures(register: Callable[[ReportFigure], None]) -> None:
    for i, (name, title, caption, make) in enumerate(BUILTIN):
        register(ReportFigure(name, title, caption, make, order=ORDERS.get(name, 100 * (i + 1))))
