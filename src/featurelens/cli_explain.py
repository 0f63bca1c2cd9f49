"""``featurelens explain``: attribution maps of a model folder's test images, with their trust checks.

Writes, atomically, to ``--out`` (default ``MODEL_DIR/explanations``): one overlay figure and one
``.npy`` of (N, H, W) maps per method, the methods side by side, the deletion and insertion curves,
"what would make it each class" for the first image, the mistakes beside their true class (with
``--mistakes``) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from featurelens import explain as ex
from featurelens._atomic import atomic_dir, write_json
from featurelens.errors import FeaturelensError, InputError
from featurelens.explain.inputs import require_gradients, spatial_layer
from featurelens.model import Model, SpecModel

SMOOTHGRAD_SAMPLES = 16
IG_STEPS = 32
CURVE_STEPS = 32
DEFAULT_IMAGES = "0:16"
CLI_METHODS = {"gradcam": "gradcam", "gradcam++": "gradcam++", "layercam": "layercam", "scorecam": "scorecam",
               "saliency": "saliency", "smoothgrad": "smoothgrad", "ig": "integrated_gradients",
               "occlusion": "occlusion"}
"""Command-line names of the methods, and their names in :data:`featurelens.explain.METHODS`."""
LAYERED = ("gradcam", "gradcam++", "layercam", "scorecam")
OPTIONS: dict[str, dict[str, Any]] = {"smoothgrad": {"samples": SMOOTHGRAD_SAMPLES},
                                      "integrated_gradients": {"steps": IG_STEPS}}
FILES = {"gradcam++": "gradcam_plus_plus"}
DPI = 110


def add_parser(sub: Any, add_data_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("explain", help="attribution maps (Grad-CAM, saliency, IG, ...) of test images, "
                       "with sanity and deletion/insertion checks")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--method", default="gradcam", metavar="METHOD",
                   help=f"{'|'.join(CLI_METHODS)} or all, or several separated by commas (default gradcam). "
                        f"smoothgrad averages {SMOOTHGRAD_SAMPLES} noisy copies, ig integrates over {IG_STEPS} "
                        "steps, occlusion slides an 8x8 patch by 4 pixels; all 8 on 16 images take seconds to "
                        "a few minutes on a CPU")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--images", metavar="START:STOP",
                       help=f"which test images, a Python slice or one index (default {DEFAULT_IMAGES})")
    which.add_argument("--mistakes", type=int, metavar="N",
                       help="the N most confident mistakes, each explained for the predicted and the true class")
    p.add_argument("--target", metavar="CLASS", help="explain this class (a name or an index) instead of the "
                   "predicted one")
    p.add_argument("--layer", metavar="NAME", help="the spatial layer of the CAM methods (default: the last "
                   "conv layer of at least 8x8, or its ReLU)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL_DIR/explanations)")
    add_data_args(p)


def parse_methods(text: str) -> list[str]:
    """Method names as :func:`featurelens.explain.explain` takes them, from ``--method``."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if "all" in names:
        return list(CLI_METHODS.values())
    unknown = [n for n in names if n not in CLI_METHODS and n not in CLI_METHODS.values()]
    if unknown or not names:
        raise InputError(f"unknown method {(unknown or [text])[0]!r}; choose {', '.join(CLI_METHODS)} or all "
                         "(several separated by commas)")
    chosen = [CLI_METHODS.get(n, n) for n in names]
    return list(dict.fromkeys(chosen))


def parse_images(text: str, count: int) -> np.ndarray:
    """Test-image indices from ``START:STOP`` (a Python slice, negative ends included) or ``INDEX``."""
    match = re.fullmatch(r"\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?", text)
    if not match or not text.strip():
        raise InputError(f"--images must be START:STOP (e.g. 0:16) or one index, got {text!r}")
    if ":" not in text:
        index = int(text)
        if not -count <= index < count:
            raise InputError(f"--images {text}: index outside the {count} test images (0..{count - 1})")
        return np.array([index % count])
    start, stop = (int(g) if g is not None else None for g in match.groups())
    indices = np.arange(count)[slice(start, stop)]
    if not len(indices):
        raise InputError(f"--images {text} selects none of the {count} test images; e.g. 0:{min(count, 16)}")
    return indices


def parse_target(text: str, class_names: tuple[str, ...]) -> int:
    """A class index from a class name or an index."""
    if text in class_names:
        return class_names.index(text)
    if re.fullmatch(r"-?\d+", text.strip()):
        index = int(text)
        if 0 <= index < len(class_names):
            return index
    raise InputError(f"--target {text!r} is not a class of the model; its classes are 0 to {len(class_names) - 1}: "
                     f"{', '.join(class_names)}")


def _mean(values: np.ndarray | None) -> float | None:
    if values is None:
        return None
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _options(method: str, layer: str | None) -> dict[str, Any]:
    options = dict(OPTIONS.get(method, {}))
    if layer is not None and method in LAYERED:
        options["layer"] = layer
    return options


def _check_layer(model: Model, methods: list[str], layer: str | None) -> None:
    """A bad --layer fails before any work: unknown, not spatial, or given to input-space methods only."""
    if layer is None:
        return
    if not any(m in LAYERED for m in methods):
        raise InputError(f"--layer applies to the CAM methods ({', '.join(LAYERED)}); {', '.join(methods)} "
                         "attribute to the input pixels")
    spatial_layer(model, layer)


def run(args: argparse.Namespace, model: Model, images: np.ndarray, labels: np.ndarray,
        indices: np.ndarray, class_names: tuple[str, ...], out: Path, selection: str) -> list[str]:
    """Explain ``images`` with every method of ``args.method`` and write the results to ``out``."""
    from featurelens import visualize as viz  # matplotlib only when figures are drawn

    methods = parse_methods(args.method)
    target = parse_target(args.target, class_names) if args.target is not None else None
    _check_layer(model, methods, args.layer)
    for method in methods:
        if method != "scorecam" and method != "occlusion":
            require_gradients(model, method)
    mistakes = args.mistakes is not None
    probabilities = model.predict(images)
    predicted = probabilities.argmax(axis=1)
    targets = predicted if target is None else np.full(len(images), target, np.int64)
    which = "pred" if target is None else "target"
    titles = [f"#{i} true: {class_names[t]}\n{which}: {class_names[c]} {probabilities[k, c]:.0%}"
              for k, (i, t, c) in enumerate(zip(indices, labels, targets))]
    notes: list[str] = []
    summary: dict[str, Any] = {
        "model": str(args.model_dir), "selection": selection, "indices": indices.tolist(),
        "labels": labels.tolist(), "predicted": predicted.tolist(), "class_names": list(class_names),
        "target": None if target is None else class_names[target], "methods": {}}
    maps: dict[str, np.ndarray] = {}
    curves: dict[str, tuple[ex.Curve, ex.Curve]] = {}
    with atomic_dir(out, overwrite=True) as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ex.ExplanationWarning)
        for method in methods:
            options = _options(method, args.layer)
            if isinstance(model, SpecModel):
                check = ex.randomization_check(model, images, targets, method=method, **options)
                explanation, spearman = check.trained, _mean(check.spearman)
            else:
                explanation, spearman = ex.explain(model, images, targets, method=method, **options), None
                notes.append(f"{method}: no randomization check for a model featurelens did not build")
            deletion = ex.deletion_curve(model, images, explanation, steps=CURVE_STEPS)
            insertion = ex.insertion_curve(model, images, explanation, steps=CURVE_STEPS)
            stem = FILES.get(method, method)
            np.save(tmp / f"{stem}.npy", explanation.maps)
            viz.explanation_overlay_figure(images, explanation.maps, titles,
                                           title=_heading(method, explanation.layer, target, class_names)
                                           ).savefig(tmp / f"{stem}.png", dpi=DPI)
            entry: dict[str, Any] = {
                "layer": explanation.layer, "targets": explanation.targets.tolist(),
                "target_names": [class_names[t] for t in explanation.targets],
                "options": {k: v for k, v in options.items() if k != "layer"},
                "randomization_spearman_mean": spearman,
                "deletion_auc_mean": _mean(deletion.auc), "insertion_auc_mean": _mean(insertion.auc),
                "maps": f"{stem}.npy", "figure": f"{stem}.png"}
            if explanation.completeness_error is not None:
                entry["completeness_error_mean"] = _mean(explanation.completeness_error)
            if mistakes and target is None:
                true = ex.explain(model, images, labels, method=method, **options)
                np.save(tmp / f"{stem}_true_class.npy", true.maps)
                viz.mistakes_explained_figure(images, explanation.maps, true.maps, labels, predicted, class_names,
                                              probabilities, method=method).savefig(tmp / f"mistakes_{stem}.png",
                                                                                    dpi=DPI)
                entry.update(true_class_maps=f"{stem}_true_class.npy", mistakes_figure=f"mistakes_{stem}.png")
            summary["methods"][method] = entry
            maps[method], curves[method] = explanation.maps, (deletion, insertion)
            _collect(caught, notes, f"{method} (with its randomization check on a re-initialized model)")
        if len(maps) > 1:
            viz.methods_grid_figure(images, maps, titles).savefig(tmp / "methods.png", dpi=DPI)
        viz.deletion_insertion_figure(curves).savefig(tmp / "deletion_insertion.png", dpi=DPI)
        cheap = next((m for m in methods if m in ("gradcam", "gradcam++", "layercam", "saliency")), None)
        if cheap is not None:
            every = ex.explain(model, np.repeat(images[:1], len(class_names), axis=0), np.arange(len(class_names)),
                               method=cheap, **_options(cheap, args.layer))
            viz.all_classes_figure(images[0], every.maps, class_names, probabilities[0], method=cheap
                                   ).savefig(tmp / "all_classes.png", dpi=DPI)
            _collect(caught, notes, f"all_classes.png ({cheap} for every class of test image {indices[0]})")
        _collect(caught, notes, "")
        summary["notes"] = notes
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + ["summary.json"]
        write_json(tmp / "summary.json", summary)
    return notes


def _collect(caught: list[warnings.WarningMessage], notes: list[str], context: str) -> None:
    """Move the warnings recorded so far into ``notes`` (explanation warnings, with ``context``) or show them."""
    for w in caught:
        if issubclass(w.category, ex.ExplanationWarning):
            line = f"{context}: {w.message}" if context else str(w.message)
            if line not in notes:
                notes.append(line)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    caught.clear()


def _heading(method: str, layer: str | None, target: int | None, class_names: tuple[str, ...]) -> str:
    on = f" on {layer}" if layer else ""
    what = f"class {class_names[target]}" if target is not None else "the predicted class"
    return f"{method}{on}: evidence for {what} (titles: test index, true class, explained class and its probability)"


def cmd_explain(args: argparse.Namespace, load: Callable[..., Any]) -> int:
    """The command: ``load(args, model=model)`` gives the data as ``featurelens visualize`` loads it."""
    from featurelens import visualize as viz
    from featurelens.model import load_model

    model = load_model(args.model_dir)
    parse_methods(args.method)  # bad flags fail before the data is loaded
    if args.mistakes is not None and args.mistakes < 1:
        raise InputError(f"--mistakes must be a positive number of images, got {args.mistakes}")
    data, _ = load(args, model=model)
    class_names = tuple(model.class_names or data.class_names)
    if args.target is not None:
        parse_target(args.target, class_names)
    count = len(data.test_images)
    if args.mistakes is not None:
        indices = viz.confident_mistakes(data.test_labels, model.predict(data.test_images), args.mistakes)
        if not len(indices):
            raise FeaturelensError(f"the model makes no mistake on the {count} test images; use --images")
        selection = f"the {len(indices)} most confident mistakes"
    else:
        text = args.images or DEFAULT_IMAGES
        indices = parse_images(text if args.images else f"0:{min(count, 16)}", count)
        selection = f"test images {text}"
    out = args.out or args.model_dir / "explanations"
    notes = run(args, model, data.test_images[indices], data.test_labels[indices], indices, class_names, out,
                selection)
    for note in notes:
        print(f"note: {note}")
    print(f"Explained {selection} with {', '.join(parse_methods(args.method))}; wrote the figures, maps and "
          f"summary.json to {out}")
    return 0
