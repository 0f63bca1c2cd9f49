"""The model folder: everything needed to use a trained model again, and no code.

::

    model/
      featurelens.json     format, backend, spec, class names, normalization, config, versions
      weights.safetensors  every weight in the canonical layout of featurelens.weights (no pickle),
                         so the folder loads in any backend
      history.json         the training history (if the model was trained)

A folder is written under a temporary name and renamed into place, so it is either complete or
absent. Loading reads JSON and safetensors only, so it never executes code from the folder.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from featurelens._atomic import atomic_dir, write_json
from featurelens.backend import WEIGHTS_FILE
from featurelens.errors import FeaturelensError, ModelFolderError
from featurelens.history import History
from featurelens.model import Model
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec
from featurelens.weights import load_weights, save_weights

META_FILE = "featurelens.json"
HISTORY_FILE = "history.json"
FORMAT = "featurelens-model"
FORMAT_VERSION = 2  # 2: canonical, backend-neutral weights (1 held torch state dicts)


def _versions(model: Model) -> dict[str, str]:
    from featurelens import __version__

    return {"featurelens": __version__, "python": platform.python_version(),
            "numpy": np.__version__, **model.backend.versions()}


def save_model(model: Model, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``model`` to ``folder`` atomically; see the module docstring for the layout."""
    folder = Path(folder)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": model.backend.name,
        "spec": model.spec.to_dict(),
        "class_names": list(model.class_names),
        "normalization": model.normalization.to_dict(),
        "train_config": model.train_config,
        "versions": _versions(model),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": WEIGHTS_FILE,
    }
    weights = model.backend.get_weights(model.native)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        save_weights(tmp / WEIGHTS_FILE, model.spec, weights)
        if model.history is not None:
            model.history.save(tmp / HISTORY_FILE)
        write_json(tmp / META_FILE, meta)
    return folder


def read_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``featurelens.json`` of a model folder, checked for the known format."""
    folder = Path(folder)
    path = folder / META_FILE
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder; pass the folder `featurelens train` wrote")
    if not path.is_file():
        raise ModelFolderError(f"{folder} has no {META_FILE}; it is not a featurelens model folder")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path} is not valid JSON ({exc}); the folder is damaged") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFolderError(f"{path} is not a featurelens model description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFolderError(
            f"{folder} was written by a newer featurelens (format {meta['format_version']}, this "
            f"one reads up to {FORMAT_VERSION}); upgrade with: pip install -U featurelens")
    if meta.get("format_version", 0) < FORMAT_VERSION:
        raise ModelFolderError(
            f"{folder} was written by a pre-release featurelens (format {meta.get('format_version')}, with "
            "backend-specific weights); train the model again with this version")
    for key in ("backend", "spec", "class_names", "normalization"):
        if key not in meta:
            raise ModelFolderError(f"{path} lacks the {key!r} entry; the folder is damaged")
    return meta


def load_model(folder: str | os.PathLike[str], backend: str | None = None) -> Model:
    """Load a model folder with the backend that wrote it (or ``backend`` to override)."""
    from featurelens.backends import get_backend

    folder = Path(folder)
    meta = read_metadata(folder)
    spec = ModelSpec.from_dict(meta["spec"])
    weights = folder / meta.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ModelFolderError(f"{folder} has no {weights.name}; the folder is incomplete")
    chosen = get_backend(backend or meta["backend"])
    arrays = load_weights(weights, spec)
    native = chosen.build(spec)
    try:
        chosen.set_weights(native, arrays)
    except FeaturelensError:
        raise
    except Exception as exc:
        raise ModelFolderError(f"the {chosen.name} backend could not take the weights in {weights}: {exc}") from exc
    history_path = folder / HISTORY_FILE
    history = History.load(history_path) if history_path.is_file() else None
    return Model(chosen, native, spec, Normalization.from_dict(meta["normalization"]),
                 meta["class_names"], history=history, train_config=meta.get("train_config"))


def write_evaluation(folder: str | os.PathLike[str], evaluation: dict[str, Any]) -> Path:
    """Store a test evaluation next to the model (``evaluation.json``)."""
    path = Path(folder) / "evaluation.json"
    write_json(path, evaluation)
    return path
