"""A model folder's description, ``featurelens.json``, checked field by field before anything is built.

:func:`check_metadata` is the one validation pass over it: the format, the kind, the backend's
name, the spec (or a wrapped model's input shape and architecture record), one class name per
class, one finite mean and one std > 0 per input channel, the training config and its dataset
record, the plain names of the weights and snapshots files, and the recorded hashes. Every
problem is a :class:`~featurelens.ModelFolderError` naming the file and the field
(``featurelens.json: normalization.std[1]``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from featurelens.checks import (
    Check,
    Int,
    ListOf,
    Nullable,
    Number,
    Object,
    OneOf,
    Text,
    check_fields,
    fail,
    require_object,
)
from featurelens.config import MAX_SEED
from featurelens.errors import ModelFolderError, SpecError
from featurelens.integrity import Recorded, recorded
from featurelens.normalization import Normalization
from featurelens.spec import MAX_CHANNELS, MAX_CLASSES, MAX_SIDE, ModelSpec

FORMAT = "featurelens-model"
FORMAT_VERSION = 2  # 2: canonical, backend-neutral weights (1 held torch state dicts); hashes are optional
SPEC_KIND, WRAPPED_KIND = "spec", "wrapped"
WEIGHTS_FILE = "weights.safetensors"
SNAPSHOTS_FILE = "snapshots.safetensors"
#: Where ``featurelens train`` records the data a model was trained on, inside ``train_config``.
DATASET_KEY = "dataset"
_E = ModelFolderError


def check_file_name(error: type[ModelFolderError], path: str, value: Any) -> str:
    """A plain file name inside the folder: no folder part, no ``..``, nothing a path could climb with."""
    name = Text(255, min_length=1, hint="the plain name of a file inside the model folder")(error, path, value)
    if name in (".", "..") or any(c in name for c in "/\\:\0"):
        fail(error, path, value, "expected the plain name of a file inside the model folder, e.g. weights.safetensors")
    return name


_CLASS_NAME = Text(200, min_length=1, hint="a class name")
_CLASS_NAMES = ListOf(_CLASS_NAME, MAX_CLASSES, hint="one name per class")
_SIDE = Int(1, MAX_SIDE)
_INPUT_SHAPE = ListOf(_SIDE, 3, 3, hint="[height, width, channels] of positive integers")

#: The checks of the dataset record ``featurelens train`` keeps in ``train_config.dataset``.
DATASET_FIELDS: dict[str, Check] = {
    "name": Text(200, min_length=1),
    "data_dir": Nullable(Text(4096, r"[^\x00]*", "expected a folder's path, without NUL characters")),
    "image_size": ListOf(_SIDE, 2, 2, hint="[height, width]"),
    "channels": Int(1, 3, "1 for grayscale, 3 for RGB"),
    "test_fraction": Number(0, 1, low_open=True, high_open=True),
    "split_seed": Int(0, MAX_SEED),
}


@dataclass(frozen=True)
class FolderMeta:
    """What ``featurelens.json`` says, checked. ``raw`` is the parsed file as it is."""

    raw: dict[str, Any]
    kind: str
    backend: str
    spec: ModelSpec | None
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...] | None
    normalization: Normalization
    train_config: dict[str, Any] | None
    architecture: dict[str, Any] | None
    weights_file: str
    snapshots: dict[str, Any] | None
    hashes: Recorded | None

    @property
    def wrapped(self) -> bool:
        return self.kind == WRAPPED_KIND


def _require(meta: dict[str, Any], key: str, where: str) -> Any:
    if key not in meta:
        raise _E(f"{where} lacks the {key!r} entry; the folder is damaged")
    return meta[key]


def _class_names(meta: dict[str, Any], spec: ModelSpec | None, where: str) -> tuple[str, ...] | None:
    value = _require(meta, "class_names", where) if spec is not None else meta.get("class_names")
    names = (_CLASS_NAMES if spec is not None else Nullable(_CLASS_NAMES))(_E, f"{where}: class_names", value)
    if names is None:
        return None
    if spec is not None and len(names) != spec.num_classes:
        fail(_E, f"{where}: class_names", value, f"{len(names)} names for the spec's {spec.num_classes} classes; "
                                                 "give one name per class")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        fail(_E, f"{where}: class_names", value, f"{repeated[0]!r} is there twice; every class needs its own name")
    return tuple(names)


def _spec(meta: dict[str, Any], where: str) -> ModelSpec:
    try:
        return ModelSpec.from_dict(_require(meta, "spec", where))
    except SpecError as exc:
        text = str(exc)
        raise _E(f"{where}: {text if text.startswith('spec') else 'spec.' + text}") from exc


def _train_config(meta: dict[str, Any], where: str) -> dict[str, Any] | None:
    config = Nullable(Object("the training config"))(_E, f"{where}: train_config", meta.get("train_config"))
    if config is not None and DATASET_KEY in config:
        path = f"{where}: train_config.{DATASET_KEY}"
        record = require_object(_E, path, config[DATASET_KEY], "the data the model was trained on")
        check_fields(_E, path, record, DATASET_FIELDS)
        if record.get("channels") == 2:
            fail(_E, f"{path}.channels", 2, "1 for grayscale, 3 for RGB")
    return config


def check_metadata(meta: Any, where: str) -> FolderMeta:
    """Check a parsed ``featurelens.json`` (``where`` names it in messages) and return what it says."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _E(f"{where} is not a featurelens model description")
    version = meta.get("format_version", 0)
    Int(0, 10**6, "the folder format's version")(_E, f"{where}: format_version", version)
    if version > FORMAT_VERSION:
        raise _E(f"{where} was written by a newer featurelens (format {version}, this one reads up to "
                 f"{FORMAT_VERSION}); upgrade with: pip install -U featurelens")
    if version < FORMAT_VERSION:
        raise _E(f"{where} was written by a pre-release featurelens (format {version}, with backend-specific "
                 "weights); train the model again with this version")
    kind = OneOf((SPEC_KIND, WRAPPED_KIND))(_E, f"{where}: kind", meta.get("kind", SPEC_KIND))
    backend = Text(100, min_length=1, hint="the backend's name")(_E, f"{where}: backend",
                                                                 _require(meta, "backend", where))
    spec = architecture = None
    if kind == WRAPPED_KIND:
        shape = _INPUT_SHAPE(_E, f"{where}: input_shape", _require(meta, "input_shape", where))
        Int(1, MAX_CHANNELS)(_E, f"{where}: input_shape[2]", shape[2])
        input_shape = (shape[0], shape[1], shape[2])
        architecture = Object("the backend's record of the architecture")(
            _E, f"{where}: architecture", _require(meta, "architecture", where))
        if "class" in architecture:
            Text(1000)(_E, f"{where}: architecture.class", architecture["class"])
    else:
        spec = _spec(meta, where)
        input_shape = spec.input_shape
    class_names = _class_names(meta, spec, where)
    normalization = Normalization.from_dict(_require(meta, "normalization", where), input_shape[2],
                                            error=_E, path=f"{where}: normalization")
    snapshots = Nullable(Object("the description of snapshots.safetensors"))(
        _E, f"{where}: snapshots", meta.get("snapshots"))
    if snapshots is not None:
        check_file_name(_E, f"{where}: snapshots.file", snapshots.get("file", SNAPSHOTS_FILE))
    return FolderMeta(
        raw=meta, kind=kind, backend=backend, spec=spec, input_shape=input_shape, class_names=class_names,
        normalization=normalization, train_config=_train_config(meta, where), architecture=architecture,
        weights_file=check_file_name(_E, f"{where}: weights", meta.get("weights", WEIGHTS_FILE)),
        snapshots=snapshots, hashes=recorded(meta, where))
