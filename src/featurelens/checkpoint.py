"""The run folder: checkpoints while a model trains, the model folder once training ends.

::

    RUN/                     while training (``featurelens train --out RUN``, ``train(..., run_dir=RUN)``)
      run.json               what the run trains -- backend, spec, config, class names, normalization,
                             a fingerprint of the training data, the caller's record (the CLI's dataset),
                             world size -- and which checkpoint is the current one
      checkpoint-0007/       the state after epoch 7 (the current one)
        state.safetensors    the backend's arrays: weights, optimizer state, best weights (no pickle)
        checkpoint.json      epoch, History so far, the backend's JSON state, world size, versions, and the
                             sha256 of the checkpoint's files (checked when resuming)
        snapshots.safetensors  the training snapshots recorded so far (if the config records them)

A checkpoint is written into a temporary folder beside the current one, flushed to disk, renamed
to ``checkpoint-NNNN``, and only then does ``run.json`` (replaced atomically) name it; the previous
checkpoint is removed after that. A run killed at any moment -- even while writing -- keeps a
complete checkpoint that ``run.json`` names. When training ends the finished model folder
(:mod:`featurelens.modeldir`) replaces the whole run folder, checkpoints included: a folder holds
either an unfinished run (``run.json``) or a finished model (``featurelens.json``), never both.
Only the main process of a data-parallel run writes (:mod:`featurelens.distributed`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from featurelens import distributed
from featurelens._atomic import _DIR_MODE, write_json
from featurelens._version import __version__
from featurelens.backends.contract import Backend
from featurelens.backends.state import TrainingState
from featurelens.checks import Bool, Check, Int, ListOf, MapOf, Nullable, Object, Text, check_fields
from featurelens.config import MAX_EPOCHS, TrainConfig
from featurelens.errors import ConfigError, ModelFolderError, OutputExistsError, RunFolderError, SpecError
from featurelens.history import History
from featurelens.integrity import SHA256_HEX, digest_file
from featurelens.modeldir import META_FILE
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import Snapshots

RUN_FILE = "run.json"
STATE_FILE = "state.safetensors"
CHECKPOINT_FILE = "checkpoint.json"
SNAPSHOTS_FILE = "snapshots.safetensors"
FORMAT = "featurelens-run"
FORMAT_VERSION = 1
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_PROCESSES = Int(1, 2**20, "the number of processes that trained")

#: The checks of ``run.json`` (the spec, config and normalization are checked by their own classes).
RUN_FIELDS: dict[str, Check] = {
    "format_version": Int(0, 10**6),
    "status": Text(32),
    "checkpoint": Nullable(Text(64, r"checkpoint-\d{4,9}", "the current checkpoint's folder, checkpoint-NNNN")),
    "backend": Text(100, min_length=1),
    "spec": Object("the model spec"),
    "config": Object("the training options"),
    "normalization": Object("the per-channel mean and std"),
    "class_names": ListOf(Text(200), 100_000, hint="one name per class"),
    "data": Object("the training data's fingerprint, count and shape"),
    "info": Object(),
    "world_size": _PROCESSES,
}
#: The checks of ``run.json``'s ``"data"``.
DATA_FIELDS: dict[str, Check] = {
    "fingerprint": Text(128),
    "count": Int(0, 2**62),
    "shape": ListOf(Int(0, 2**31), 8, hint="an image's (height, width, channels)"),
}
#: The checks of a checkpoint's ``checkpoint.json`` (the History is checked by its own class).
CHECKPOINT_FIELDS: dict[str, Check] = {
    "epoch": Int(0, MAX_EPOCHS),
    "finished": Bool(),
    "backend": Text(100, min_length=1),
    "world_size": _PROCESSES,
    "history": Object("the History so far"),
    "values": Object("the trainer's JSON state"),
    "snapshots": Nullable(Object("the snapshots' description")),
    "sha256": MapOf(Text(64, SHA256_HEX.pattern, "a sha256 in hex"), "file name -> sha256"),
}


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A hash of the training images and labels as given (shape, dtype and bytes): resuming checks it."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def folder_kind(path: str | os.PathLike[str]) -> str:
    """``absent``, ``empty``, ``model`` (a finished model folder), ``run`` (an unfinished run) or ``other``."""
    path = Path(path)
    if not path.exists():
        return "absent"
    if not path.is_dir():
        return "other"
    if (path / META_FILE).is_file():
        return "model"
    if (path / RUN_FILE).is_file():
        return "run"
    return "empty" if not any(path.iterdir()) else "other"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms whose folders cannot be opened (Windows): the rename is what counts
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@dataclass
class Run:
    """An unfinished run folder: what it trains, and its checkpoints (read, written on the main process)."""

    path: Path
    meta: dict[str, Any]
    writer: bool

    # -- what the run trains ---------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return str(self.meta["backend"])

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.meta["spec"])

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.meta["config"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(name) for name in self.meta["class_names"])

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.meta["normalization"])

    @property
    def info(self) -> dict[str, Any]:
        """The caller's record (the CLI keeps its dataset and ``--train-per-class`` here)."""
        info = self.meta.get("info")
        return dict(info) if isinstance(info, dict) else {}

    @property
    def current(self) -> str | None:
        """The current checkpoint's folder name, None before the first."""
        name = self.meta.get("checkpoint")
        return str(name) if name else None

    def describe(self) -> str:
        """``runs/x (checkpoint of epoch 3 of 50)``, for messages."""
        epochs = self.meta.get("config", {}).get("epochs", "?")
        match = _CHECKPOINT_DIR.match(self.current or "")
        done = f"checkpoint of epoch {int(match.group(1))} of {epochs}" if match else "no checkpoint yet"
        return f"{self.path} ({done})"

    def check_data(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Raise :class:`RunFolderError` unless these are the images and labels the run started with."""
        recorded = self.meta.get("data", {})
        if fingerprint(images, labels) != recorded.get("fingerprint"):
            raise RunFolderError(
                f"the training images and labels differ from those {self.path} was started with ({len(labels)} "
                f"images of shape {tuple(np.shape(images)[1:])} now, {recorded.get('count')} of shape "
                f"{tuple(recorded.get('shape', ()))} then); resume with the same data (the same dataset, folder and "
                "--train-per-class)")

    # -- checkpoints -------------------------------------------------------------------------------

    def load_state(self, backend: Backend) -> tuple[TrainingState | None, Snapshots | None]:
        """The current checkpoint's training state and snapshots (both None before the first checkpoint)."""
        if backend.name != self.backend:
            raise RunFolderError(f"{self.path} was trained with the {self.backend} backend, whose checkpoints only "
                                 f"it can continue; resume with --backend {self.backend}, not {backend.name}")
        if self.current is None:
            return None, None
        folder = self.path / self.current
        data = _read_json(folder / CHECKPOINT_FILE, f"the checkpoint {folder}")
        _check(folder / CHECKPOINT_FILE, data, CHECKPOINT_FIELDS)
        _check_hashes(folder, data.get("sha256") or {})
        arrays = _read_arrays(folder / STATE_FILE)
        try:
            state = TrainingState(epoch=int(data["epoch"]), finished=bool(data["finished"]),
                                  history=History.from_dict(data["history"]), arrays=arrays,
                                  values=dict(data["values"]), backend=str(data["backend"]))
        except ModelFolderError as exc:  # the History's own checks
            raise RunFolderError(f"the checkpoint {folder}: history: {exc}; it is damaged") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFolderError(f"the checkpoint {folder} is incomplete ({type(exc).__name__}: {exc}); it is "
                                 "damaged") from exc
        if state.backend != backend.name:
            raise RunFolderError(f"the checkpoint {folder} holds a {state.backend} training state, which the "
                                 f"{backend.name} backend cannot continue")
        saved_world = int(data.get("world_size", 1))
        if saved_world != distributed.world_size() and distributed.is_main_process():
            warnings.warn(f"featurelens: {self.path} was checkpointed by {saved_world} process(es) and continues "
                          f"on {distributed.world_size()}: the global batch, the order of the images and the "
                          "augmentation stay the same, but dropout's random streams are split differently, so the "
                          "result is not bit-identical to an uninterrupted run", RuntimeWarning, stacklevel=3)
        snapshots = None
        if isinstance(data.get("snapshots"), dict):
            from featurelens.atlas.snapshots import Snapshots

            try:
                snapshots = Snapshots.from_arrays(_read_arrays(folder / SNAPSHOTS_FILE), data["snapshots"],
                                                  where=f"the snapshots in {folder}")
            except ModelFolderError as exc:
                raise RunFolderError(str(exc)) from None
        return state, snapshots

    def save(self, state: TrainingState, snapshots: Snapshots | None = None) -> Path:
        """Write ``state`` (and ``snapshots``) as the current checkpoint, atomically (see the module)."""
        name = f"checkpoint-{state.epoch:04d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=self.path))
        try:
            record: dict[str, Any] = {
                "epoch": state.epoch, "finished": state.finished, "backend": state.backend,
                "world_size": distributed.world_size(), "history": state.history.to_dict(),
                "values": state.values, "versions": self.meta.get("versions", {}), "saved_at": _now()}
            save_file({k: np.asarray(v, order="C") for k, v in state.arrays.items()}, str(tmp / STATE_FILE),
                      metadata={"format": "featurelens-training-state", "backend": state.backend})
            _fsync_file(tmp / STATE_FILE)
            if snapshots is not None:
                self._save_snapshots(snapshots, tmp / SNAPSHOTS_FILE)
                record["snapshots"] = snapshots.metadata()
            record["sha256"] = {name: digest_file(tmp / name) for name in (STATE_FILE, SNAPSHOTS_FILE)
                                if (tmp / name).is_file()}
            (tmp / CHECKPOINT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            _fsync_file(tmp / CHECKPOINT_FILE)
            os.chmod(tmp, _DIR_MODE)
            target = self.path / name
            if target.exists():  # left by a run killed between this rename and run.json's (never current)
                shutil.rmtree(target)
            os.replace(tmp, target)
            _fsync_dir(self.path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self._point_at(name)
        return target

    def _save_snapshots(self, snapshots: Snapshots, path: Path) -> None:
        """Write the snapshots, or hard-link the current checkpoint's file when none was recorded since."""
        previous = self.path / self.current / SNAPSHOTS_FILE if self.current else None
        if previous is not None and previous.is_file():
            described = _read_json(self.path / self.current / CHECKPOINT_FILE, "the current checkpoint")  # type: ignore[operator]
            if (described.get("snapshots") or {}).get("epochs") == list(snapshots.epochs):
                try:
                    os.link(previous, path)
                    return
                except OSError:
                    pass  # a file system without hard links: write it again
        save_file(snapshots.to_arrays(), str(path), metadata={"format": "featurelens-snapshots"})
        _fsync_file(path)

    def _point_at(self, name: str) -> None:
        self.meta = {**self.meta, "checkpoint": name, "updated_at": _now()}
        write_json(self.path / RUN_FILE, self.meta)
        _fsync_dir(self.path)
        for stale in self.path.iterdir():  # older checkpoints and temporary folders of killed writes
            if stale.name != name and (_CHECKPOINT_DIR.match(stale.name) or stale.name.startswith(".checkpoint-")):
                shutil.rmtree(stale, ignore_errors=True)

    def mark(self, status: str, **details: Any) -> None:
        """Record how the run stopped (``diverged``, ...) in ``run.json``."""
        if self.writer:
            self.meta = {**self.meta, "status": status, **details, "updated_at": _now()}
            write_json(self.path / RUN_FILE, self.meta)

    def checkpointer(self, every: int) -> RunCheckpointer:
        return RunCheckpointer(self, every)


class RunCheckpointer:
    """The :class:`~featurelens.backends.Checkpointer` the core hands a backend: saves every ``every``
    epochs and when training finishes, on the main process only; adds the training snapshots."""

    def __init__(self, run: Run, every: int) -> None:
        self.run = run
        self.every = every
        self.snapshots: Snapshots | None = None  # set by the core when a recorder runs
        self.last: int | None = None

    def due(self, epoch: int, finished: bool) -> bool:
        return self.run.writer and self.every > 0 and (finished or epoch % self.every == 0)

    def save(self, state: TrainingState) -> None:
        self.run.save(state, self.snapshots)
        self.last = state.epoch


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"cannot read {what} ({path}: {exc}); the run folder is damaged") from exc
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a JSON object; the run folder is damaged")
    return data


def _check(file: Path, values: dict[str, Any], table: dict[str, Check], where: str = "") -> None:
    """Check ``values`` (read from ``file``) against ``table``: a :class:`RunFolderError` naming the field."""
    try:
        check_fields(RunFolderError, where, values, table)
    except RunFolderError as exc:
        raise RunFolderError(f"{file}: {exc}; the run folder is damaged") from None


def _check_hashes(folder: Path, recorded: dict[str, str]) -> None:
    """Compare the checkpoint's files with the sha256 recorded when it was written (checkpoints of
    older versions have none): flipped bytes inside a tensor would otherwise resume silently."""
    for name, expected in recorded.items():
        path = folder / name
        if name not in (STATE_FILE, SNAPSHOTS_FILE) or not path.is_file():
            raise RunFolderError(f"{folder / CHECKPOINT_FILE}: sha256 names {name!r}, which is not a file of the "
                                 "checkpoint; the run folder is damaged")
        if digest_file(path) != expected:
            raise RunFolderError(f"{path} differs from the checkpoint that was written (its sha256 does not match); "
                                 "the run folder is damaged: resume is not possible from this checkpoint, start "
                                 "again with --overwrite")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunFolderError(f"{path} is not a readable safetensors file ({exc}); the run folder is damaged") from exc


def check_new_run_folder(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse (``OutputExistsError``) a folder that holds something, unless ``overwrite``; say what it holds."""
    path = Path(path)
    kind = folder_kind(path)
    if kind == "absent" or overwrite:
        return
    if kind == "model":
        raise OutputExistsError(f"{path} holds a finished model; choose another folder, or pass --overwrite "
                                "(overwrite=True) to train a new one in its place")
    if kind == "run":
        run = open_run(path)
        raise OutputExistsError(f"{run.describe()} holds an unfinished run; continue it with --resume {path} "
                                "(featurelens.resume), or start again with --overwrite (overwrite=True)")
    raise OutputExistsError(f"{path} already exists; choose another folder, or pass --overwrite (overwrite=True) "
                            "to replace it")


def start_run(path: str | os.PathLike[str], *, overwrite: bool, backend: Backend, spec: ModelSpec,
              config: TrainConfig, class_names: tuple[str, ...], normalization: Normalization,
              images: np.ndarray, labels: np.ndarray, info: Mapping[str, Any] | None = None) -> Run:
    """Create the run folder (on the main process; the others only describe it) with its ``run.json``."""
    path = Path(path)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "status": "training", "checkpoint": None,
        "backend": backend.name, "spec": spec.to_dict(), "class_names": list(class_names),
        "normalization": normalization.to_dict(), "config": config.to_dict(),
        "data": {"fingerprint": fingerprint(images, labels), "count": int(len(labels)),
                 "shape": list(np.shape(images)[1:])},
        "info": dict(info or {}), "world_size": distributed.world_size(),
        "versions": {"featurelens": __version__, "python": platform.python_version(), "numpy": np.__version__,
                     **backend.versions()},
        "started_at": _now(),
    }
    _check_json(meta)
    writer = distributed.is_main_process()
    if writer:
        check_new_run_folder(path, overwrite)
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, trash / path.name)
            shutil.rmtree(trash, ignore_errors=True)
        path.mkdir(parents=True)
        write_json(path / RUN_FILE, meta)
    return Run(path, meta, writer)


def _check_json(meta: dict[str, Any]) -> None:
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the run's record is not JSON-serialisable ({exc}); pass plain values in run_info") from exc


def open_run(path: str | os.PathLike[str]) -> Run:
    """The unfinished run in ``path``, or a :class:`RunFolderError` saying what the folder is instead."""
    path = Path(path)
    kind = folder_kind(path)
    if kind == "absent":
        raise RunFolderError(f"{path} does not exist; pass the --out folder of the run to continue")
    if kind == "model":
        raise RunFolderError(f"{path} holds a finished model, so there is nothing to resume; evaluate or load it, "
                             "or train again from the start with --overwrite (overwrite=True)")
    if kind != "run":
        raise RunFolderError(f"{path} is not a featurelens run folder (it has no {RUN_FILE}); pass the --out folder "
                             "of a run that was interrupted")
    meta = _read_json(path / RUN_FILE, f"the run description {path / RUN_FILE}")
    if meta.get("format") != FORMAT:
        raise RunFolderError(f"{path / RUN_FILE} is not a featurelens run description")
    _check(path / RUN_FILE, meta, RUN_FIELDS)
    _check(path / RUN_FILE, meta.get("data", {}), DATA_FIELDS, "data")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise RunFolderError(f"{path} was started by a newer featurelens (run format {meta['format_version']}); "
                             "upgrade with: pip install -U featurelens")
    for key in ("backend", "spec", "config", "class_names", "normalization", "data"):
        if key not in meta:
            raise RunFolderError(f"{path / RUN_FILE} lacks {key!r}; the run folder is damaged")
    run = Run(path, meta, distributed.is_main_process())
    try:
        run.spec, run.config, run.normalization  # noqa: B018 - parse them now: a damaged folder fails here
    except (SpecError, ConfigError, KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"{path / RUN_FILE} does not describe a valid run ({exc}); the run folder is "
                             "damaged") from exc
    if len(meta["class_names"]) != run.spec.num_classes:
        raise RunFolderError(f"{path / RUN_FILE}: class_names has {len(meta['class_names'])} names for the spec's "
                             f"{run.spec.num_classes} classes; the run folder is damaged")
    if run.current is not None and not (path / run.current / CHECKPOINT_FILE).is_file():
        raise RunFolderError(f"{path / RUN_FILE} names the checkpoint {run.current}, which is missing; the run "
                             "folder is damaged")
    return run


def describe_stop(run: Run) -> str:
    """Where the last good checkpoint is, for a divergence message."""
    if run.current is None:
        return f"no checkpoint was written before it, so {run.path} has none to resume from"
    return f"the last good checkpoint, {run.describe()}, is kept"

