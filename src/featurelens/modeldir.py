"""The model folder: everything needed to use a trained model again, and no code.

::

    model/
      featurelens.json     format, backend, spec, class names, normalization, config, versions
      weights.safetensors  every weight in the canonical layout of featurelens.weights (no pickle),
                           so the folder loads in any backend
      history.json         the training history (if the model was trained)
      snapshots.safetensors  training snapshots (if recorded; featurelens.atlas.snapshots), described
                           by featurelens.json's "snapshots" entry

A model the user built (:func:`featurelens.fit`, :func:`featurelens.wrap`) is saved the same way
with ``"kind": "wrapped"``: no spec, but the input shape, the backend's record of the architecture
(the class name; Keras adds its JSON config) and the framework's own weight names in the
safetensors file. Loading it needs the backend that wrote it and, unless the backend can rebuild
the architecture from its record without running stored code, the model (or a function building
it) from the user: ``featurelens.load_model(folder, model=MyNet)``.

A folder is written under a temporary name and renamed into place, so it is either complete or
absent. Reading parses JSON and safetensors only, so it never executes code from the folder. This
module reads and writes the parts; :func:`featurelens.load_model` builds the model from them.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from featurelens._atomic import atomic_dir, write_json
from featurelens._version import __version__
from featurelens.errors import ModelFolderError
from featurelens.history import History
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec
from featurelens.weights import load_weights, save_weights

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import Snapshots

META_FILE = "featurelens.json"
WEIGHTS_FILE = "weights.safetensors"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
SNAPSHOTS_FILE = "snapshots.safetensors"
FORMAT = "featurelens-model"
FORMAT_VERSION = 2  # 2: canonical, backend-neutral weights (1 held torch state dicts)


SPEC_KIND, WRAPPED_KIND = "spec", "wrapped"


@dataclass(frozen=True)
class FolderContents:
    """What a model folder holds, read and checked. ``spec`` is None for a wrapped model, whose
    ``weights`` carry the framework's own names and whose ``architecture`` is the backend's record."""

    backend: str
    spec: ModelSpec | None
    weights: dict[str, np.ndarray]
    normalization: Normalization
    class_names: tuple[str, ...]
    history: History | None
    train_config: dict[str, Any] | None
    meta: dict[str, Any]
    input_shape: tuple[int, int, int]
    architecture: dict[str, Any] | None = None
    snapshots: Snapshots | None = None

    @property
    def wrapped(self) -> bool:
        return self.spec is None


def _meta(kind_fields: dict[str, Any], *, backend: str, backend_versions: dict[str, str],
          normalization: Normalization, class_names: tuple[str, ...] | None,
          train_config: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **kind_fields,
        "backend": backend,
        "class_names": list(class_names) if class_names is not None else None,
        "normalization": normalization.to_dict(),
        "train_config": train_config,
        "versions": {"featurelens": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, **backend_versions},
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": WEIGHTS_FILE,
    }


def _write(folder: Path, meta: dict[str, Any], write_weights: Callable[[Path], None], history: History | None,
           overwrite: bool, snapshots: Snapshots | None = None) -> Path:
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        write_weights(tmp / WEIGHTS_FILE)
        if history is not None:
            history.save(tmp / HISTORY_FILE)
        if snapshots is not None:
            save_file(snapshots.to_arrays(), str(tmp / SNAPSHOTS_FILE), metadata={"format": "featurelens-snapshots"})
            meta = {**meta, "snapshots": {**snapshots.metadata(), "file": SNAPSHOTS_FILE}}
        write_json(tmp / META_FILE, meta)
    return folder


def write_folder(folder: str | os.PathLike[str], *, backend: str, backend_versions: dict[str, str],
                 spec: ModelSpec, weights: dict[str, np.ndarray], normalization: Normalization,
                 class_names: tuple[str, ...], history: History | None,
                 train_config: dict[str, Any] | None, overwrite: bool = False,
                 snapshots: Snapshots | None = None) -> Path:
    """Write a model folder atomically; see the module docstring for the layout."""
    meta = _meta({"spec": spec.to_dict()}, backend=backend, backend_versions=backend_versions,
                 normalization=normalization, class_names=class_names, train_config=train_config)
    return _write(Path(folder), meta, lambda path: save_weights(path, spec, weights), history, overwrite,
                  snapshots)


def write_wrapped_folder(folder: str | os.PathLike[str], *, backend: str, backend_versions: dict[str, str],
                         architecture: dict[str, Any], input_shape: tuple[int, int, int],
                         weights: dict[str, np.ndarray], normalization: Normalization,
                         class_names: tuple[str, ...] | None, history: History | None,
                         train_config: dict[str, Any] | None, overwrite: bool = False,
                         snapshots: Snapshots | None = None) -> Path:
    """Write a user-built model's folder atomically: native weight names, architecture record."""
    meta = _meta({"kind": WRAPPED_KIND, "architecture": architecture, "input_shape": list(input_shape)},
                 backend=backend, backend_versions=backend_versions, normalization=normalization,
                 class_names=class_names, train_config=train_config)
    arrays = {k: np.ascontiguousarray(v) for k, v in weights.items()}

    def write_weights(path: Path) -> None:
        save_file(arrays, str(path), metadata={"format": "featurelens-native", "backend": backend})

    return _write(Path(folder), meta, write_weights, history, overwrite, snapshots)


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
    needed = ("backend", "architecture", "input_shape", "normalization") if meta.get("kind") == WRAPPED_KIND \
        else ("backend", "spec", "class_names", "normalization")
    for key in needed:
        if key not in meta:
            raise ModelFolderError(f"{path} lacks the {key!r} entry; the folder is damaged")
    return meta


def read_folder(folder: str | os.PathLike[str]) -> FolderContents:
    """Read and check every part of a model folder (no backend involved)."""
    folder = Path(folder)
    meta = read_metadata(folder)
    weights = folder / meta.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ModelFolderError(f"{folder} has no {weights.name}; the folder is incomplete")
    history_path = folder / HISTORY_FILE
    history = History.load(history_path) if history_path.is_file() else None
    normalization = Normalization.from_dict(meta["normalization"])
    snapshots = read_snapshots(folder, meta)
    if meta.get("kind") == WRAPPED_KIND:
        return FolderContents(
            backend=meta["backend"], spec=None, weights=_read_native(weights), normalization=normalization,
            class_names=tuple(meta["class_names"] or ()), history=history, train_config=meta.get("train_config"),
            meta=meta, input_shape=_input_shape(meta["input_shape"], folder), architecture=meta["architecture"],
            snapshots=snapshots)
    spec = ModelSpec.from_dict(meta["spec"])
    return FolderContents(
        backend=meta["backend"], spec=spec, weights=load_weights(weights, spec), normalization=normalization,
        class_names=tuple(meta["class_names"]), history=history, train_config=meta.get("train_config"),
        meta=meta, input_shape=spec.input_shape, snapshots=snapshots)


def read_snapshots(folder: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Snapshots | None:
    """The training snapshots of a model folder, or None when it has none (older folders never do)."""
    from featurelens.atlas.snapshots import Snapshots  # not at import: the atlas imports the model

    folder = Path(folder)
    meta = read_metadata(folder) if meta is None else meta
    described = meta.get("snapshots")
    if described is None:
        return None
    if not isinstance(described, dict):
        raise ModelFolderError(f"{folder / META_FILE}: the 'snapshots' entry is not an object; the folder is damaged")
    path = folder / str(described.get("file", SNAPSHOTS_FILE))
    if not path.is_file():
        raise ModelFolderError(f"{folder} describes snapshots but has no {path.name}; the folder is incomplete")
    return Snapshots.from_arrays(_read_native(path), described, where=f"the snapshots in {folder}")


def _read_native(path: Path) -> dict[str, np.ndarray]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{path} is not a readable safetensors file ({exc})") from exc


def _input_shape(value: Any, folder: Path) -> tuple[int, int, int]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ModelFolderError(f"{folder / META_FILE}: input_shape {value!r} is invalid; expected "
                               "[height, width, channels] of positive integers")
    return (value[0], value[1], value[2])


def write_evaluation(folder: str | os.PathLike[str], evaluation: dict[str, Any]) -> Path:
    """Store a test evaluation next to the model (``evaluation.json``)."""
    path = Path(folder) / EVALUATION_FILE
    write_json(path, evaluation)
    return path
