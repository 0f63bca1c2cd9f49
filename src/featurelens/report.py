"""Write every figure of a model as PNG plus an ``index.html`` that shows them with captions."""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from matplotlib.figure import Figure

from featurelens import visualize as viz
from featurelens._atomic import atomic_dir, write_json
from featurelens.backends import ReportContext, ReportFigure, registry
from featurelens.backends.figures import FigureResult
from featurelens.compare import feature_map_differences
from featurelens.data.cifar10 import Dataset
from featurelens.errors import InputError
from featurelens.model import Model


@dataclass(frozen=True)
class FigureFile:
    filename: str
    title: str
    caption: str


def _check_index(image_index: int, count: int) -> None:
    if not 0 <= image_index < count:
        raise InputError(f"image index {image_index} is outside the {count} test images; "
                         f"choose 0..{count - 1}")


def _panels(figure: ReportFigure, result: FigureResult) -> Iterable[tuple[str, Figure, str, str]]:
    if result is None:
        return []
    if isinstance(result, Figure):
        return [(figure.name, result, figure.title, figure.caption)]
    return [(f"{figure.name}_{panel.key}", panel.figure, panel.title, panel.caption) for panel in result]


def write_report(model: Model, data: Dataset, out: str | os.PathLike[str], image_index: int = 0,
                 dpi: int = 110, figures: Iterable[ReportFigure] | None = None) -> list[FigureFile]:
    """Every registered report figure for ``model`` on ``data``'s test split, written atomically to
    ``out`` with an ``index.html``. A figure that fails is left out with a warning, and the page says so."""
    _check_index(image_index, len(data.test_images))
    context = ReportContext(model, data, image_index)
    written: list[FigureFile] = []
    failed: list[str] = []
    with atomic_dir(out, overwrite=True) as tmp:
        for figure in (registry.figures.values() if figures is None else figures):
            try:
                panels = list(_panels(figure, figure.make(context)))
            except Exception as exc:  # one plugin's broken figure must not cost the whole report
                message = f"the figure {figure.name!r} failed: {type(exc).__name__}: {exc}"
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                failed.append(message)
                continue
            for stem, fig, title, caption in panels:
                fig.savefig(tmp / f"{stem}.png", dpi=dpi)
                written.append(FigureFile(f"{stem}.png", title, caption))
        gif = _filters_gif(model, tmp)
        if gif is not None:  # beside the still figure of the same kernels
            after = [i for i, f in enumerate(written) if f.filename == "filters_over_training.png"]
            written.insert(after[0] + 1 if after else len(written), gif)
        heading = f"Inside {model.name} ({model.backend.name} backend)"
        (tmp / "index.html").write_text(index_html(heading, written, failed), encoding="utf-8")
    return written


def _filters_gif(model: Model, folder: os.PathLike[str] | str) -> FigureFile | None:
    """The first conv layer's kernels over training as an animated GIF, for models with snapshots."""
    snapshots = getattr(model, "snapshots", None)  # a stand-in model may lack the attribute
    if snapshots is None or not snapshots.layers:
        return None
    from featurelens.visualize.drift import write_filters_gif

    labels, arrays = snapshots.layer_filters(snapshots.layers[0])
    write_filters_gif(arrays, labels, os.path.join(folder, "filters_over_training.gif"))
    return FigureFile("filters_over_training.gif", f"{snapshots.layers[0]} over training (animated)",
                      "The same kernels as above, one frame per snapshot.")


def write_comparison(a: Model, b: Model, data: Dataset, out: str | os.PathLike[str],
                     labels: tuple[str, str], image_index: int = 0, dpi: int = 110) -> list[FigureFile]:
    """Side-by-side figures of two models of one spec, plus ``differences.json``, written atomically."""
    images = data.test_images
    _check_index(image_index, len(images))
    written: list[FigureFile] = []
    with atomic_dir(out, overwrite=True) as tmp:
        def save(fig: Figure, filename: str, title: str, caption: str) -> None:
            fig.savefig(tmp / filename, dpi=dpi)
            written.append(FigureFile(filename, title, caption))

        if a.history is not None or b.history is not None:
            save(viz.comparison_histories_figure((a.history, b.history), labels), "histories.png",
                 "Training histories", "Loss and accuracy of both models per epoch, on shared axes.")
        first = a.conv_layers()[0]
        save(viz.comparison_filters_figure((a.filters(first), b.filters(first)), labels, first), "filters.png",
             "First-layer filters", "The first conv layer's kernels of each model.")
        layers = ReportContext(a, data, image_index).activation_layers
        image = images[image_index:image_index + 1]
        maps = [{k: v[0] for k, v in m.feature_maps(image, layers).items()} for m in (a, b)]
        save(viz.comparison_feature_maps_figure(images[image_index], maps, labels), "feature_maps.png",
             "Feature maps", f"Test image {image_index} through both models, with each layer's relative difference.")
        sample = images[: min(256, len(images))]
        differences = feature_map_differences(a, b, sample)
        save(viz.comparison_differences_figure(differences), "differences.png", "Differences per layer",
             f"Relative difference of every layer's feature maps over {len(sample)} test images.")
        write_json(tmp / "differences.json", {"labels": list(labels), "images": len(sample),
                                              "layers": [d.to_dict() for d in differences]})
        (tmp / "index.html").write_text(index_html(f"{labels[0]} vs {labels[1]}", written), encoding="utf-8")
    return written


def index_html(heading: str, figures: list[FigureFile], failed: list[str] | None = None) -> str:
    """A page showing ``figures`` (in the same folder) with their titles and captions."""
    problems = "".join(f'<p class="failed">{html.escape(m)}</p>' for m in failed or [])
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
figcaption {{ color: #57606a; margin-top: .4em; }} .failed {{ color: #cf222e; }} nav {{ line-height: 1.8; }}
</style></head><body>
<h1>{html.escape(heading)}</h1>
<nav>{toc}</nav>
{problems}
{items}
</body></html>
"""
