"""Write every figure of a model as PNG plus an ``index.html`` that shows them with captions."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

import numpy as np

from featurelens._atomic import atomic_dir
from featurelens.data.cifar10 import Dataset
from featurelens.model import Model


@dataclass(frozen=True)
class FigureFile:
    filename: str
    title: str
    caption: str


def activation_layers(model: Model) -> list[str]:
    """For each conv layer, the layer whose output is its feature map: its ReLU if one follows."""
    infos = model.layers()
    out = []
    for i, info in enumerate(infos):
        if info.kind == "conv2d":  # conv, maybe batch norm, then the ReLU whose output we want
            following = next((x.name for x in infos[i + 1:i + 3] if x.kind == "relu"), None)
            out.append(following or info.name)
    return out or [infos[0].name]


def write_report(model: Model, data: Dataset, out: str | os.PathLike[str], image_index: int = 0,
                 dpi: int = 110) -> list[FigureFile]:
    """All figures for ``model`` on ``data``'s test split, written atomically to ``out``."""
    from featurelens import visualize as viz

    images, labels = data.test_images, data.test_labels
    if not 0 <= image_index < len(images):
        raise ValueError(f"image index {image_index} is outside the {len(images)} test images")
    names = model.class_names or data.class_names
    written: list[FigureFile] = []

    def save(fig, filename: str, title: str, caption: str) -> None:
        fig.savefig(tmp / filename, dpi=dpi)
        written.append(FigureFile(filename, title, caption))

    with atomic_dir(out, overwrite=True) as tmp:
        save(viz.samples_figure(images, labels, names, per_class=8,
                                title=f"Test images: 8 random examples of each class ({len(labels):,} in all)"),
             "samples.png", "Dataset samples", "Eight random test images of every class, as loaded.")
        if model.history is not None and model.history.epochs:
            save(viz.history_figure(model.history), "history.png", "Training history",
                 "Loss and accuracy per epoch on the training and validation images; the learning "
                 "rate below, dotted lines where it was reduced, a star at the best epoch.")
        for layer in model.conv_layers():
            save(viz.filters_figure(model.filters(layer), layer), f"filters_{layer}.png",
                 f"Filters of {layer}", "The learned kernels of this layer. First-layer filters are "
                 "colour images (they respond to edges and colour blobs); deeper ones are shown per "
                 "input channel or averaged, red positive and blue negative.")
        image = images[image_index:image_index + 1]
        shown = viz.to_display(image)[0]
        maps = model.feature_maps(image, activation_layers(model))
        for layer, array in maps.items():
            save(viz.feature_maps_figure(array[0], layer, shown), f"feature_maps_{layer}.png",
                 f"Feature maps of {layer}", f"What every channel of {layer} computes for test image "
                 f"{image_index} ({names[labels[image_index]]}); bright means strongly activated.")
        save(viz.hierarchy_figure(shown, {k: v[0] for k, v in maps.items()}), "hierarchy.png",
             "From edges to parts", "The same image through the network: early layers keep the "
             "image's layout (edges, colours), deeper ones are coarser and more abstract.")
        probs = model.predict(images)
        evaluation_acc = float((probs.argmax(1) == labels).mean())
        first = np.arange(min(24, len(images)))
        save(viz.predictions_figure(viz.to_display(images[first]), labels[first], probs[first], names),
             "predictions.png", "Predictions", f"The first {len(first)} test images with the true "
             f"and predicted class and its probability (test accuracy {evaluation_acc:.1%}).")
        few = np.arange(min(4, len(images)))
        save(viz.topk_figure(viz.to_display(images[few]), probs[few], names, labels[few]), "topk.png",
             "Top-5 probabilities", "How sure the model is: its five most likely classes per image.")
        from featurelens.evaluation import evaluate_probabilities

        evaluation = evaluate_probabilities(probs, labels, names)
        save(viz.confusion_figure(evaluation.confusion, names), "confusion.png", "Confusion matrix",
             "Which classes are mistaken for which, and the accuracy of each class.")
        wrong = viz.confident_mistakes(labels, probs, 18)
        if len(wrong):
            save(viz.predictions_figure(viz.to_display(images[wrong]), labels[wrong], probs[wrong], names,
                                        title="The most confident mistakes"),
                 "mistakes.png", "Most confident mistakes",
                 "Wrong predictions the model was surest of: often ambiguous or unusual images.")
        name = model.spec.name if model.spec is not None else type(model.native).__name__
        (tmp / "index.html").write_text(index_html(f"Inside {name} ({model.backend.name} backend)", written),
                                        encoding="utf-8")
    return written


def write_comparison(a: Model, b: Model, data: Dataset, out: str | os.PathLike[str],
                     labels: tuple[str, str], image_index: int = 0, dpi: int = 110) -> list[FigureFile]:
    """Side-by-side figures of two models of one spec, plus ``differences.json``, written atomically."""
    from featurelens import compare
    from featurelens._atomic import write_json

    images = data.test_images
    if not 0 <= image_index < len(images):
        raise ValueError(f"image index {image_index} is outside the {len(images)} test images")
    written: list[FigureFile] = []
    with atomic_dir(out, overwrite=True) as tmp:
        def save(fig, filename: str, title: str, caption: str) -> None:
            fig.savefig(tmp / filename, dpi=dpi)
            written.append(FigureFile(filename, title, caption))

        if a.history is not None or b.history is not None:
            save(compare.histories_figure(a, b, labels), "histories.png", "Training histories",
                 "Loss and accuracy of both models per epoch, on shared axes.")
        save(compare.filters_figure(a, b, labels), "filters.png", "First-layer filters",
             "The first conv layer's kernels of each model.")
        layers = activation_layers(a)
        save(compare.feature_maps_figure(a, b, images[image_index], labels, layers), "feature_maps.png",
             "Feature maps", f"Test image {image_index} through both models, with each layer's relative difference.")
        sample = images[: min(256, len(images))]
        differences = compare.feature_map_differences(a, b, sample)
        save(compare.differences_figure(differences), "differences.png", "Differences per layer",
             f"Relative difference of every layer's feature maps over {len(sample)} test images.")
        write_json(tmp / "differences.json", {"labels": list(labels), "images": len(sample),
                                              "layers": [d.to_dict() for d in differences]})
        (tmp / "index.html").write_text(index_html(f"{labels[0]} vs {labels[1]}", written), encoding="utf-8")
    return written


def index_html(heading: str, figures: list[FigureFile]) -> str:
    """A page showing ``figures`` (in the same folder) with their titles and captions."""
    items = "\n".join(
        f'<figure id="{html.escape(f.filename[:-4])}"><h2>{html.escape(f.title)}</h2>'
        f'<img src="{html.escape(f.filename)}" alt="{html.escape(f.title)}" loading="lazy">'
        f"<figcaption>{html.escape(f.caption)}</figcaption></figure>" for f in figures)
    toc = " · ".join(f'<a href="#{html.escape(f.filename[:-4])}">{html.escape(f.title)}</a>' for f in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>featurelens: {html.escape(heading)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1f2328; }}
figure {{ margin: 2.5em 0; }} img {{ max-width: 100%; border: 1px solid #d0d7de; }}
figcaption {{ color: #57606a; margin-top: .4em; }} nav {{ line-height: 1.8; }}
</style></head><body>
<h1>{html.escape(heading)}</h1>
<nav>{toc}</nav>
{items}
</body></html>
"""
