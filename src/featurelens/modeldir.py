"""The model folder: everything needed to use a trained model again, and no code.

::

    model/
      featurelens.json     format, backend, spec, class names, normalization, config, versions
      weights.safetensors  every weight in the canonical layout of featurelens.weights (no pickle),
                           so the folder loads in any backend
      history.json         the training history (if the model was trained)

A folder is written under a temporary name and renamed into place, so it is either complete or
absent. Reading parses JSON and safetensors only, so it never executes code from the folder. This
module reads and writes the parts; :func:`featurelens.load_model` builds the model from them.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from featurelens._atomic import atomic_dir, write_json
from featurelens._version import __version__
from featurelens.errors import ModelFolderError
from featurelens.history import History
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec
from featurelens.weights import load_weights, save_weights

META_FILE = "featurelens.json"
WEIGHTS_FILE = "weights.safetensors"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
FORMAT = "featurelens-model"
FORMAT_VERSION = 2  # 2: canonical, backend-neutral weights (1 held torch state dicts)


@dataclass(frozen=True)
class FolderContents:
    """What a model folder holds, read and checked."""

    backend: str
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    normalization: Normalization
    class_names: tuple[str, ...]
    history: History | None
    train_config: dict[str, Any] | None
    meta: dict[str, Any]


def write_folder(folder: str | os.PathLike[str], *, backend: str, backend_versions: dict[str, str],
                 spec: ModelSpec, weights: dict[str, np.ndarray], normalization: Normalization,
                 class_names: tuple[str, ...], history: History | None,
                 train_config: dict[str, Any] | None, overwrite: bool = False) -> Path:
    """Write a model folder atomically; see the module docstring for the layout."""
    folder = Path(folder)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": backend,
        "spec": spec.to_dict(),
        "class_names": list(class_names),
        "normalization": normalization.to_dict(),
        "train_config": train_config,
        "versions": {"featurelens": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, **backend_versions},
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": WEIGHTS_FILE,
    }
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        save_weights(tmp / WEIGHTS_FILE, spec, weights)
        if history is not None:
            history.save(tmp / HISTORY_FILE)
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


def read_folder(folder: str | os.PathLike[str]) -> FolderContents:
    """Read and check every part of a model folder (no backend involved)."""
    folder = Path(folder)
    meta = read_metadata(folder)
    spec = ModelSpec.from_dict(meta["spec"])
    weights = folder / meta.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ModelFolderError(f"{folder} has no {weights.name}; the folder is incomplete")
    history_path = folder / HISTORY_FILE
    return FolderContents(
        backend=meta["backend"], spec=spec, weights=load_weights(weights, spec),
        normalization=Normalization.from_dict(meta["normalization"]),
        class_names=tuple(meta["class_names"]),
        history=History.load(history_path) if history_path.is_file() else None,
        train_config=meta.get("train_config"), meta=meta)


def write_evaluation(folder: str | os.PathLike[str], evaluation: dict[str, Any]) -> Path:
    """Store a test evaluation next to the model (``evaluation.json``)."""
    path = Path(folder) / EVALUATION_FILE
    write_json(path, evaluation)
    return path
