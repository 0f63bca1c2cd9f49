"""Write the explorer: a static site (HTML, CSS, JavaScript, PNG sheets, data as ``<script>`` files)
that opens from ``file://`` or any web server, for a model and a sample of its test images.

::

    explorer/
      index.html  explorer.css  explorer.js     the page (package data, no build step, no CDN)
      data/site.js         model, classes, accuracy, confusion, history, strip, sample, colour maps
      data/thumbs.png      every sampled image (RGB sheet)
      data/images/N.js     one image's record (probabilities, per-channel ranges and means, ...)
      data/images/N.webp   its gray sheet: every channel of every spatial layer, the explanation maps
      data/atlas/L.js      one conv layer's atlas (statistics, top examples); L_vis/patches.webp, L_kernels.png
      data/live.js         empty here; the live server (featurelens.explore.serve) answers it

Data are ``<script>`` files that call ``FL.site(...)``, ``FL.image(...)`` and ``FL.atlas(...)``,
because Chromium refuses ``fetch()`` of local files.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from tqdm.auto import tqdm

from featurelens._atomic import atomic_dir
from featurelens.backends.contract import Capability
from featurelens.data.dataset import Dataset
from featurelens.errors import InputError
from featurelens.evaluation import evaluate_probabilities
from featurelens.explain.result import ExplanationWarning
from featurelens.explore.atlas_data import atlas_entry, compute_atlases
from featurelens.explore.records import DEFAULT_METHODS, compute_records, make_plan, rounded
from featurelens.explore.sample import balanced_sample
from featurelens.explore.sprites import EXTENSIONS, colour_sheet, encode
from featurelens.explore.strip import atlas_layers
from featurelens.model import Model
from featurelens.visualize.images import to_display

DEFAULT_IMAGES = 300
DEFAULT_STEPS = 128
DEFAULT_TOP = 9
BUDGET_MB = 30.0
"""The default size budget: the seed CNN's explorer of 300 images takes 22 MB (benchmarks/RESULTS.md)."""
BATCH = 32
THUMB_COLS = 32
ASSETS = ("index.html", "explorer.css", "explorer.js")
COLOUR_MAPS = {"viridis": "viridis", "heat": "jet", "signed": "RdBu_r"}
COLOUR_STOPS = 17


class SizeBudgetWarning(UserWarning):
    """The explorer came out larger than its size budget."""


@dataclass
class SiteSummary:
    """What :func:`write_site` wrote: where, how many images, megabytes and seconds per stage."""

    out: Path
    images: int
    megabytes: float
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "images": self.images, "megabytes": round(self.megabytes, 2),
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()}, "notes": self.notes}


def colour_tables() -> dict[str, list[list[float]]]:
    """Each colour map the page uses as R, G and B tables for an SVG ``feComponentTransfer``."""
    stops = np.linspace(0, 1, COLOUR_STOPS)
    return {key: np.round(colormaps[name](stops)[:, :3].T, 4).tolist() for key, name in COLOUR_MAPS.items()}


def _script(call: str, payload: Any) -> str:
    return f"{call}({json.dumps(payload, separators=(',', ':'), allow_nan=False)});\n"


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _history(model: Model) -> dict[str, Any] | None:
    history = model.history
    if history is None or not history.epochs:
        return None
    return {"epochs": [r.epoch for r in history.epochs], "loss": rounded(history.metric("loss"), 4),
            "accuracy": rounded(history.metric("accuracy"), 4),
            "val_loss": None if history.epochs[0].val_loss is None else rounded(history.metric("val_loss"), 4),
            "val_accuracy": None if history.epochs[0].val_accuracy is None
            else rounded(history.metric("val_accuracy"), 4),
            "learning_rate": rounded(history.metric("learning_rate"), 4), "best_epoch": history.best_epoch,
            "lr_reductions": history.lr_reductions, "stop_reason": history.stop_reason}


def _check(model: Model, data: Dataset, images: int, top: int, steps: int, atlas_images: int | None) -> None:
    for what, value, low in (("images", images, 1), ("top", top, 1), ("steps", steps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{what} must be an int of at least {low}, got {value!r}")
    if atlas_images is not None and (not isinstance(atlas_images, (int, np.integer)) or atlas_images < 1):
        raise InputError(f"atlas_images must be a positive int or None (all test images), got {atlas_images!r}")
    if not len(data.test_images):
        raise InputError("the dataset has no test images to explore; the explorer samples the test split")
    model.check_images(data.test_images[:1])


def write_site(model: Model, data: Dataset, out: str | os.PathLike[str], *, images: int = DEFAULT_IMAGES,
               methods: tuple[str, ...] | list[str] = DEFAULT_METHODS, atlas_images: int | None = None,
               top: int = DEFAULT_TOP, steps: int = DEFAULT_STEPS, seed: int = 0, wrong_share: float = 0.5,
               budget_mb: float | None = BUDGET_MB, source: dict[str, Any] | None = None,
               overwrite: bool = True, progress: bool = True) -> SiteSummary:
    """Write the explorer of ``model`` on ``data``'s test split to the folder ``out``.

    ``images`` test images are sampled (:func:`~featurelens.explore.sample.balanced_sample`); each
    is explained with ``methods``. The atlas of the conv layers the strip's channels come from is
    computed on the first ``atlas_images`` test images (default all): ``top`` dataset examples per
    channel and ``steps`` of feature visualization (0: none). After the first batch of images the
    site's size is estimated; over ``budget_mb`` (None: no budget) the call stops with an
    :class:`InputError` saying which ``images`` would fit, before the expensive atlas. ``source``
    (JSON-able) is recorded in the site (the CLI puts the model folder and its weights' hash there).
    """
    _check(model, data, images, top, steps, atlas_images)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    class_names = tuple(model.class_names or data.class_names)
    plan = make_plan(model, methods)
    notes = list(plan.notes)
    conv = atlas_layers(plan.strip) if model.backend.supports(Capability.INTROSPECT) else []
    steps = steps if model.backend.supports(Capability.GRADIENTS) else 0
    atlas_count = len(data.test_images) if atlas_images is None else min(atlas_images, len(data.test_images))
    layer_channels = {info.name: int(info.output_shape[-1]) for info in model.layers()}
    vis_channels = sum(layer_channels[name] for name in conv) if steps else 0
    bar = tqdm(total=math.ceil(len(data.test_images) / 256) + min(images, len(data.test_images)) + 1 + vis_channels,
               desc="explorer", unit="task", disable=not progress)
    with bar, atomic_dir(out, overwrite=overwrite) as tmp:
        bar.set_postfix_str("predicting the test set")
        parts = []
        for i in range(0, len(data.test_images), 256):
            parts.append(model.predict(data.test_images[i:i + 256]))
            bar.update(1)
        probabilities = np.concatenate(parts)
        evaluation = evaluate_probabilities(probabilities, data.test_labels, class_names)
        predicted = probabilities.argmax(axis=1)
        chosen = balanced_sample(data.test_labels, predicted, images, wrong_share=wrong_share, seed=seed)
        seconds["predict"] = time.perf_counter() - started
        (tmp / "data" / "images").mkdir(parents=True)
        (tmp / "data" / "atlas").mkdir()
        bar.set_postfix_str("feature maps and explanations")
        mark = time.perf_counter()
        for start in range(0, len(chosen), BATCH):
            batch = chosen[start:start + BATCH]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ExplanationWarning)
                computed = compute_records(model, data.test_images[batch], plan)
            _note_warnings(caught, notes)
            for index, (record, sheet) in zip(batch, computed):
                record.update(index=int(index), label=int(data.test_labels[index]),
                              sheet=f"data/images/{index}.{EXTENSIONS['maps']}")
                (tmp / "data" / "images" / f"{index}.{EXTENSIONS['maps']}").write_bytes(encode(sheet, "maps"))
                (tmp / "data" / "images" / f"{index}.js").write_text(_script("FL.image", record), encoding="utf-8")
            bar.update(len(batch))
            if start == 0 and budget_mb is not None:
                _check_budget(tmp, len(batch), len(chosen), budget_mb)
        seconds["images"] = time.perf_counter() - mark
        mark = time.perf_counter()
        atlas_meta = []
        if conv:
            bar.set_postfix_str("channel atlas")
            colour = data.train_images[:5000] if len(data.train_images) else None
            atlases = compute_atlases(model, data.test_images[:atlas_count], data.test_labels[:atlas_count], conv,
                                      top=top, steps=steps, colour=colour, seed=seed, advance=bar.update)
            for number, (name, atlas) in enumerate(atlases.items()):
                entry, sheets = atlas_entry(atlas, data.test_labels, steps)
                stem = f"atlas{number}"
                for kind, sheet in sheets.items():
                    encoding = "exact" if kind == "kernels" else "photo"
                    file = f"data/atlas/{stem}_{kind}.{EXTENSIONS[encoding]}"
                    (tmp / file).write_bytes(encode(sheet, encoding))
                    entry["sheets"][kind]["file"] = file
                (tmp / "data" / "atlas" / f"{stem}.js").write_text(_script("FL.atlas", entry), encoding="utf-8")
                atlas_meta.append({"layer": name, "file": f"data/atlas/{stem}.js"})
        seconds["atlas"] = time.perf_counter() - mark
        bar.set_postfix_str("writing")
        thumbs = to_display(data.test_images[chosen])
        (tmp / "data" / "thumbs.png").write_bytes(encode(colour_sheet(thumbs, THUMB_COLS), "exact"))
        site = {
            "model": {"name": model.name, "backend": model.backend.name, "input_shape": list(model.input_shape),
                      "parameters": int(sum(info.params for info in model.layers()))},
            "dataset": data.name or "dataset", "class_names": list(class_names),
            "evaluation": {"accuracy": evaluation.accuracy, "loss": evaluation.loss, "count": evaluation.count,
                           "per_class_accuracy": evaluation.per_class_accuracy,
                           "confusion": evaluation.confusion.tolist()},
            "history": _history(model), **plan.to_dict(), "atlas": atlas_meta, "colour_maps": colour_tables(),
            "sample": {"indices": chosen.tolist(), "labels": data.test_labels[chosen].tolist(),
                       "predicted": predicted[chosen].tolist(),
                       "confidence": rounded(probabilities[chosen, predicted[chosen]], 3),
                       "thumbs": {"file": "data/thumbs.png", "cols": min(THUMB_COLS, len(chosen)),
                                  "h": int(model.input_shape[0]), "w": int(model.input_shape[1])},
                       "wrong_share": wrong_share, "seed": seed},
            "settings": {"top": top, "steps": steps, "atlas_images": atlas_count,
                         "methods": list(plan.methods)},
            "source": source or {}, "notes": notes}
        (tmp / "data" / "site.js").write_text(_script("FL.site", site), encoding="utf-8")
        (tmp / "data" / "live.js").write_text("FL.live = null;\n", encoding="utf-8")
        assets = resources.files("featurelens.explore") / "site"
        for name in ASSETS:
            (tmp / name).write_bytes((assets / name).read_bytes())
        size = _folder_size(tmp)
        seconds["total"] = time.perf_counter() - started
        bar.set_postfix_str("done")
    summary = SiteSummary(Path(out), len(chosen), size / 2**20, seconds, notes)
    if budget_mb is not None and summary.megabytes > budget_mb:
        warnings.warn(f"the explorer takes {summary.megabytes:.1f} MB, over its budget of {budget_mb:g} MB",
                      SizeBudgetWarning, stacklevel=2)
    return summary


def _note_warnings(caught: list[warnings.WarningMessage], notes: list[str]) -> None:
    """Explanation warnings become one note per kind (the first message's text before its counts);
    other warnings are shown."""
    for w in caught:
        if issubclass(w.category, ExplanationWarning):
            kind = str(w.message).split(" for ")[0]
            if not any(note.startswith(kind) for note in notes):
                notes.append(f"{w.message} (first batch of images where it happened)")
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _check_budget(folder: Path, written: int, total: int, budget_mb: float) -> None:
    """Stop early when the images alone, extrapolated from the first batch, would pass the budget."""
    per_image = _folder_size(folder) / max(written, 1)
    expected = per_image * total / 2**20
    if expected > budget_mb:
        fits = max(1, math.floor(budget_mb * 2**20 / per_image * 0.9))
        raise InputError(f"{total} images would take about {expected:.0f} MB ({per_image / 1024:.0f} KB each), "
                         f"over the size budget of {budget_mb:g} MB; ask for at most about {fits} images, or raise "
                         "the budget (--max-mb, budget_mb=)")

