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

Reading checks everything (:mod:`featurelens.folder_meta` for ``featurelens.json``; the weights fit
the spec and are finite) and compares every file with the sha256 recorded at save time
(:mod:`featurelens.integrity`): changed metadata or weights are a :class:`ModelFolderError`. A
damaged or changed history or snapshots file costs only itself: the model loads without it, with
a :class:`ModelFolderWarning`, and ``FolderContents.problems`` says what is wrong so the figures
that need it can say so too. Folders written before hashes were recorded load with a warning
(once per folder).
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from safetensors.numpy import save_file

from featurelens._atomic import atomic_dir, write_json
from featurelens._version import __version__
from featurelens.checks import parse_json
from featurelens.errors import ModelFolderError, ModelFolderWarning, NonFiniteError
from featurelens.evaluation import Evaluation
from featurelens.folder_meta import (
    FORMAT,
    FORMAT_VERSION,
    SNAPSHOTS_FILE,
    SPEC_KIND,
    WEIGHTS_FILE,
    WRAPPED_KIND,
    FolderMeta,
    check_metadata,
)
from featurelens.history import History
from featurelens.integrity import digest_bytes, metadata_digest, short, with_hashes
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec
from featurelens.weights import canonical_weights, check_finite, parse_safetensors, save_weights

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import Snapshots

__all__ = ["EVALUATION_FILE", "FORMAT", "FORMAT_VERSION", "HISTORY_FILE", "META_FILE", "SNAPSHOTS_FILE",
           "SPEC_KIND", "WEIGHTS_FILE", "WRAPPED_KIND", "FolderContents", "read_evaluation", "read_folder",
           "read_metadata", "read_snapshots", "write_evaluation", "write_folder", "write_wrapped_folder"]

META_FILE = "featurelens.json"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
T = TypeVar("T")


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
    #: Parts that could not be used, by file name, with what is wrong (a damaged history, say).
    problems: dict[str, str] = field(default_factory=dict)

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
        files = [WEIGHTS_FILE]
        if history is not None:
            history.save(tmp / HISTORY_FILE)
            files.append(HISTORY_FILE)
        if snapshots is not None:
            save_file(snapshots.to_arrays(), str(tmp / SNAPSHOTS_FILE), metadata={"format": "featurelens-snapshots"})
            meta = {**meta, "snapshots": {**snapshots.metadata(), "file": SNAPSHOTS_FILE}}
            files.append(SNAPSHOTS_FILE)
        write_json(tmp / META_FILE, with_hashes(meta, tmp, files))
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
    check_finite(arrays, "the weights to save", NonFiniteError)

    def write_weights(path: Path) -> None:
        save_file(arrays, str(path), metadata={"format": "featurelens-native", "backend": backend})

    return _write(Path(folder), meta, write_weights, history, overwrite, snapshots)


ACCEPT = "if that was on purpose, `featurelens verify --accept {folder}` checks the folder and records its new hashes"


def read_description(folder: Path) -> FolderMeta:
    """The checked description of ``folder`` (``featurelens.json``): what it says, typed."""
    path = folder / META_FILE
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder; pass the folder `featurelens train` wrote")
    if not path.is_file() and not path.is_symlink():
        raise ModelFolderError(f"{folder} has no {META_FILE}; it is not a featurelens model folder")
    data = read_part(folder, META_FILE)
    return check_metadata(parse_json(data, ModelFolderError, str(path), "the folder is damaged"), str(path))


def read_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``featurelens.json`` of a model folder, every field checked (see :mod:`featurelens.folder_meta`)."""
    return read_description(Path(folder)).raw


_warned: set[str] = set()


def _check_metadata_hash(folder: Path, info: FolderMeta) -> None:
    if info.hashes is None:
        key = str(folder.resolve())
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"{folder} was saved before featurelens recorded content hashes, so damage to its files "
                          f"cannot be detected; `featurelens verify --accept {folder}` checks it and records them",
                          ModelFolderWarning, stacklevel=4)
        return
    actual = metadata_digest(info.raw)
    if actual != info.hashes.metadata:
        raise ModelFolderError(f"{folder / META_FILE} changed after the model was saved (the sha256 of its content is "
                               f"{short(actual)}..., the recorded one {short(info.hashes.metadata)}...); "
                               + ACCEPT.format(folder=folder))


def read_part(folder: Path, name: str) -> bytes:
    """The bytes of the folder's file ``name`` (a plain name: a link out of the folder is refused)."""
    path = folder / name
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python < 3.13)
            raise ModelFolderError(f"{path} is a broken link ({exc}); copy the file into the folder") from exc
        if folder.resolve() not in target.parents:
            raise ModelFolderError(f"{path} is a link to {target}, outside the model folder; copy the file into "
                                   "the folder instead")
    if not path.is_file():
        raise ModelFolderError(f"{folder} has no {name}; the folder is incomplete")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFolderError(f"cannot read {path}: {exc}") from exc


def check_hash(folder: Path, info: FolderMeta, name: str, data: bytes) -> None:
    """Raise unless ``data`` (the file ``name``) has the sha256 recorded at save time (folders
    without hashes pass)."""
    if info.hashes is None:
        return
    path = folder / name
    expected = info.hashes.files.get(name)
    if expected is None:
        raise ModelFolderError(f"{path} was not in the folder when the model was saved (no hash is recorded for "
                               f"it); " + ACCEPT.format(folder=folder))
    actual = digest_bytes(data)
    if actual != expected:
        raise ModelFolderError(f"{path} changed after the model was saved (its sha256 is {short(actual)}..., the "
                               f"recorded one {short(expected)}...); " + ACCEPT.format(folder=folder))


def read_checked(folder: Path, info: FolderMeta, name: str, parse: Callable[[bytes], T], verify: bool) -> T:
    """The folder's file ``name`` parsed (its content checked first: damage is named as such), then
    compared with its recorded hash when ``verify``."""
    data = read_part(folder, name)
    value = parse(data)
    if verify:
        check_hash(folder, info, name, data)
    return value


def parse_weights(folder: Path, info: FolderMeta, data: bytes) -> dict[str, np.ndarray]:
    """The weights file's arrays, checked: canonical names, shapes and finite floats for a spec, finite
    floats for a wrapped model."""
    source = str(folder / info.weights_file)
    arrays = parse_safetensors(data, source)
    if info.spec is not None:
        return canonical_weights(arrays, info.spec, source)
    check_finite(arrays, f"the weights in {source}")
    return arrays


def parse_history(folder: Path, data: bytes) -> History:
    """``history.json``'s bytes as a checked History."""
    path = folder / HISTORY_FILE
    try:
        return History.from_dict(parse_json(data, ModelFolderError, "the file"))
    except ModelFolderError as exc:
        raise ModelFolderError(f"{path} is damaged: {exc}") from exc


def _optional(folder: Path, info: FolderMeta, name: str, verify: bool, parse: Callable[[bytes], T],
              described: bool = False) -> tuple[T | None, str | None]:
    """A part the model can do without: ``(value, None)``, ``(None, None)`` when absent, or
    ``(None, what is wrong)`` when damaged, changed, or missing though saved (``described``: the
    metadata says it is there)."""
    path = folder / name
    if not path.exists() and not path.is_symlink():
        saved = described or (info.hashes is not None and name in info.hashes.files)
        return None, (f"{path} is missing, though it was saved with the model" if saved else None)
    try:
        return read_checked(folder, info, name, parse, verify), None
    except ModelFolderError as exc:
        return None, str(exc)


def read_folder(folder: str | os.PathLike[str], verify: bool = True) -> FolderContents:
    """Read and check every part of a model folder (no backend involved).

    With ``verify`` (the default) every file is compared with the hash recorded when the folder
    was saved: changed metadata or weights raise :class:`ModelFolderError`. ``verify=False`` skips
    the comparison (the other checks stay). A damaged history or snapshots file is left out with a
    :class:`ModelFolderWarning` and named in ``problems``.
    """
    folder = Path(folder)
    info = read_description(folder)
    if verify:
        _check_metadata_hash(folder, info)
    weights = read_checked(folder, info, info.weights_file, lambda data: parse_weights(folder, info, data), verify)
    problems: dict[str, str] = {}
    history, problem = _optional(folder, info, HISTORY_FILE, verify, lambda data: parse_history(folder, data))
    if problem:
        problems[HISTORY_FILE] = problem
    snapshots = None
    if info.snapshots is not None:
        name = str(info.snapshots.get("file", SNAPSHOTS_FILE))
        snapshots, problem = _optional(folder, info, name, verify,
                                       lambda data: parse_snapshots(folder, name, data, info.raw["snapshots"]),
                                       described=True)
        if problem:
            problems[name] = problem
    for problem in problems.values():
        warnings.warn(f"{problem}; the model loads without it", ModelFolderWarning, stacklevel=3)
    return FolderContents(
        backend=info.backend, spec=info.spec, weights=weights, normalization=info.normalization,
        class_names=info.class_names or (), history=history, train_config=info.train_config, meta=info.raw,
        input_shape=info.input_shape, architecture=info.architecture, snapshots=snapshots, problems=problems)


def parse_snapshots(folder: Path, name: str, data: bytes, described: dict[str, Any]) -> Snapshots:
    """The snapshots file's bytes as checked Snapshots, as ``described`` in ``featurelens.json``."""
    from featurelens.atlas.snapshots import Snapshots  # not at import: the atlas imports the model

    arrays = parse_safetensors(data, str(folder / name))
    return Snapshots.from_arrays(arrays, described, where=f"the snapshots in {folder}")


def read_snapshots(folder: str | os.PathLike[str], meta: dict[str, Any] | None = None,
                   verify: bool = True) -> Snapshots | None:
    """The training snapshots of a model folder, or None when it has none (older folders never do);
    a missing, changed or damaged snapshots file is a :class:`ModelFolderError`."""
    folder = Path(folder)
    info = read_description(folder) if meta is None else check_metadata(meta, str(folder / META_FILE))
    if info.snapshots is None:
        return None
    name = str(info.snapshots.get("file", SNAPSHOTS_FILE))
    if not (folder / name).is_file():
        raise ModelFolderError(f"{folder} describes snapshots but has no {name}; the folder is incomplete")
    return read_checked(folder, info, name, lambda data: parse_snapshots(folder, name, data, info.raw["snapshots"]),
                        verify)


def read_evaluation(folder: str | os.PathLike[str]) -> Evaluation | None:
    """The test evaluation stored next to the model (``evaluation.json``), None when there is none; a
    damaged one is a :class:`ModelFolderError` (``featurelens evaluate`` writes it anew)."""
    path = Path(folder) / EVALUATION_FILE
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
        return Evaluation.from_dict(parse_json(data, ModelFolderError, "the file"))
    except (OSError, ModelFolderError) as exc:
        raise ModelFolderError(f"{path} is damaged: {exc}; `featurelens evaluate {folder}` writes it anew") from exc


def write_evaluation(folder: str | os.PathLike[str], evaluation: dict[str, Any]) -> Path:
    """Store a test evaluation next to the model (``evaluation.json``)."""
    path = Path(folder) / EVALUATION_FILE
    write_json(path, evaluation)
    return path
