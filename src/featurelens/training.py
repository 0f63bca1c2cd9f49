"""Train with any backend: a featurelens spec (:func:`train`) or a model the user built (:func:`fit`).

Both hold out ``config.validation_split`` of every class (seeded), compute the per-channel
normalization from the remaining training images and hand the backend's trainer normalized
arrays, so early stopping, LR reduction, History, progress and augmentation are the same.
Both record training snapshots when the config asks for them (:mod:`featurelens.atlas.snapshots`),
call the given epoch observers (:class:`~featurelens.backends.EpochObserver`) after every epoch
and write experiment logs through the given loggers (:mod:`featurelens.loggers`).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from featurelens.backends.contract import Backend, Capability, EpochObserver
from featurelens.backends.registry import get_backend, registry
from featurelens.backends.state import TrainingState
from featurelens.checkpoint import Run, describe_stop, open_run, start_run
from featurelens.config import TrainConfig
from featurelens.data.arrays import train_val_split
from featurelens.divergence import DivergenceGuard
from featurelens.errors import BackendError, InputError, TrainingDivergedError
from featurelens.history import History
from featurelens.model import Model, SpecModel, WrappedModel
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import SnapshotRecorder, Snapshots
    from featurelens.loggers.session import LoggerLike, LoggerSession


def _resolve_backend(backend: str | Backend | None) -> Backend:
    return backend if isinstance(backend, Backend) else get_backend(backend)


def build_model(spec: ModelSpec, normalization: Normalization, class_names: Sequence[str],
                backend: str | Backend | None = None, seed: int = 0) -> SpecModel:
    """An untrained model of ``spec`` on ``backend``."""
    chosen = _resolve_backend(backend)
    return SpecModel(chosen, chosen.build(spec, seed=seed), spec, normalization, tuple(class_names))


@dataclass(frozen=True)
class _Split:
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    normalization: Normalization


def _split(model_check: Model, images: np.ndarray, labels: np.ndarray, config: TrainConfig,
           num_classes: int, normalization: Normalization | None) -> _Split:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be a 1-D array of integer class indices, got {labels.dtype} of shape "
                         f"{labels.shape}")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"labels must be in 0..{num_classes - 1} for this {num_classes}-class model, "
                         f"got {labels.min()}..{labels.max()}")
    train_x, train_y, val_x, val_y = train_val_split(images, labels, config.validation_split, config.seed)
    model_check.check_images(train_x)
    norm = normalization if normalization is not None else Normalization.from_images(train_x)
    validation = (norm.apply(val_x), val_y) if len(val_y) else None
    return _Split((norm.apply(train_x), train_y), validation, norm)


class TrainingWarning(UserWarning):
    """A training setting that will not do what it is meant to in this run."""


def _check_averaging(config: TrainConfig, train_images: int) -> None:
    """Warn when weight averaging cannot forget the initial weights in this run's steps."""
    if not config.weight_averaging:
        return
    steps = -(-train_images // config.batch_size) * config.effective_epochs()
    horizon = 1.0 / (1.0 - config.weight_averaging)
    if steps < 3 * horizon:
        left = config.weight_averaging ** steps
        warnings.warn(f"weight_averaging={config.weight_averaging:g} averages over about {horizon:.0f} steps, but this "
                      f"run has only {steps}: the returned (and validated) weights are still {left:.0%} the initial "
                      "ones. Train longer, lower weight_averaging (e.g. 0.9), or set it to 0.", TrainingWarning,
                      stacklevel=4)


def _takes(backend: Backend, parameter: str) -> bool:
    """Whether the backend's ``fit`` takes ``parameter`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(backend.fit).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return any(p.name == parameter or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _fit(backend: Backend, model: Model, spec: ModelSpec | None, split: _Split, config: TrainConfig,
         progress: bool, observers: Sequence[EpochObserver], num_classes: int, run: Run | None = None,
         resume: tuple[TrainingState | None, Snapshots | None] = (None, None), loggers: Sequence[LoggerLike] = (),
         log_dir: str | os.PathLike[str] | None = None) -> None:
    """Run the backend's trainer with the divergence guard, the snapshot recorder (if configured),
    ``observers``, ``loggers`` and the run folder's checkpoints; set the model's ``history``,
    ``snapshots`` and ``train_config``. A diverged run raises :class:`TrainingDivergedError` saying
    where the last good checkpoint is."""
    observers = list(observers)
    if (observers or config.snapshots or loggers) and not _takes(backend, "observers"):
        what = "record training snapshots" if config.snapshots else "call epoch observers"
        raise BackendError(f"the {backend.name!r} backend cannot {what}: its fit() takes no observers= "
                           "(see featurelens.backends.Backend.fit); update the backend, or train without "
                           + ("snapshot_every/snapshot_epochs" if config.snapshots else "observers"))
    state, saved_snapshots = resume
    if state is None:
        _check_averaging(config, len(split.train[1]))
    recorder = _recorder(backend, model, config, split) if config.snapshots else None
    if recorder is not None:
        if saved_snapshots is not None:
            recorder.snapshots = saved_snapshots
        observers.insert(0, recorder)
    guard = DivergenceGuard(config, num_classes, state.history if state is not None else None)
    if _takes(backend, "observers"):
        observers.insert(0, guard)
    logs = _logger_session(backend, model, spec, split, config, loggers, log_dir) if loggers else None
    if logs is not None:
        observers.append(logs)
    extra: dict[str, Any] = {"observers": observers} if observers else {}
    checkpointer = run.checkpointer(config.checkpoint_every) if run is not None else None
    if checkpointer is not None:
        checkpointer.snapshots = recorder.snapshots if recorder is not None else None
        extra["checkpoint"] = checkpointer
    if state is not None:
        extra["resume"] = state
    try:
        history = backend.fit(model.native, spec, split.train, split.validation, config, progress=progress, **extra)
        if guard not in observers:  # a backend without observers: check its History afterwards
            for record in history.epochs[len(guard.history.epochs):]:
                guard(record.epoch, record, model.native)
    except BaseException as exc:
        if logs is not None:
            logs.end(error=f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, TrainingDivergedError):
            raise
        if isinstance(exc.history, History):
            exc.history.stop_reason = "diverged"
        if run is None:
            raise
        run.mark("diverged", diverged_at={"epoch": exc.epoch, "batch": exc.batch, "loss": repr(exc.loss)})
        raise exc.with_checkpoint(describe_stop(run)) from None
    if logs is not None:
        logs.end(history)
    model.history = history
    if recorder is not None:
        model.snapshots = recorder.finish(model.native, _returned_epoch(history))
    model.train_config = {**config.to_dict(), **(run.info if run is not None else {})}


def _recorder(backend: Backend, model: Model, config: TrainConfig, split: _Split) -> SnapshotRecorder:
    from featurelens.atlas.snapshots import SnapshotRecorder

    held_out, source = (split.validation[0], "validation") if split.validation is not None \
        else (split.train[0], "training")
    return SnapshotRecorder.start(backend, model.native, config, model.input_shape, held_out, source)


def _logger_session(backend: Backend, model: Model, spec: ModelSpec | None, split: _Split, config: TrainConfig,
                    loggers: Sequence[LoggerLike], log_dir: str | os.PathLike[str] | None) -> LoggerSession | None:
    """The run's loggers, started (default folder: ``runs/<name>-<backend>-logs``)."""
    from featurelens.loggers.session import LoggerSession

    name = f"{model.name}-{backend.name}"
    held_out, source = (split.validation[0], "validation") if split.validation is not None \
        else (split.train[0], "training")
    return LoggerSession.start(loggers, log_dir if log_dir is not None else os.path.join("runs", f"{name}-logs"),
                               name, backend, model.native, spec, config, model.class_names or (), model.input_shape,
                               len(split.train[1]), held_out, source, split.normalization)


def _returned_epoch(history: History) -> int | None:
    """The epoch whose weights training returned: the best when they were restored, else the last."""
    if history.restored_best_weights and history.best_epoch is not None:
        return history.best_epoch
    return history.epochs[-1].epoch if history.epochs else None


def train(spec: ModelSpec, images: np.ndarray, labels: np.ndarray,
          config: TrainConfig | None = None, *, backend: str | Backend | None = None,
          class_names: Sequence[str] | None = None, progress: bool = True,
          observers: Sequence[EpochObserver] = (), run_dir: str | os.PathLike[str] | None = None,
          overwrite: bool = False, run_info: Mapping[str, Any] | None = None, loggers: Sequence[LoggerLike] = (),
          log_dir: str | os.PathLike[str] | None = None) -> SpecModel:
    """Train ``spec`` on images as loaded (N, H, W, C) and integer labels.

    ``observers`` are called after every epoch as ``observer(epoch, record, native)`` (see
    :class:`~featurelens.backends.EpochObserver`). With ``config.snapshot_every`` or
    ``config.snapshot_epochs`` the model's ``snapshots`` record how its filters and feature maps
    formed (:mod:`featurelens.atlas.snapshots`); ``save`` stores them in the folder.

    With ``run_dir`` (a folder that does not exist yet, or ``overwrite``), training writes
    a checkpoint there every ``config.checkpoint_every`` epochs (:mod:`featurelens.checkpoint`) and,
    when it ends, the finished model folder in its place; :func:`resume` continues an interrupted
    run. ``run_info`` (JSON-able) is kept in the run and in the model's ``train_config``. A run
    stopped by Ctrl-C returns the model (``history.stop_reason == "interrupted"``) and leaves the
    folder an unfinished run, to resume. A loss that becomes NaN or infinite, or explodes, raises
    :class:`~featurelens.TrainingDivergedError` and saves nothing.

    ``loggers`` write experiment logs while it trains: registered names (``"tensorboard"``,
    ``"csv"``, ``"jsonl"``, a plugin's; :func:`featurelens.loggers.available_loggers`) or
    :class:`~featurelens.backends.Logger` objects, into ``log_dir`` (default
    ``runs/<spec name>-<backend>-logs``). See :mod:`featurelens.loggers`.
    """
    config = config or TrainConfig()
    chosen = _resolve_backend(backend)
    chosen.require(Capability.TRAIN, "train models")
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(spec.num_classes))
    identity = Normalization((0.0,) * spec.input_shape[2], (1.0,) * spec.input_shape[2])
    model = build_model(spec, identity, names, chosen, seed=config.seed)
    split = _split(model, images, labels, config, spec.num_classes, None)
    model.normalization = split.normalization
    run = None
    if run_dir is not None:
        chosen.require(Capability.RESUME, "checkpoint training in a run folder")
        run = start_run(run_dir, overwrite=overwrite, backend=chosen, spec=spec, config=config, class_names=names,
                        normalization=split.normalization, images=images, labels=labels, info=run_info)
    _fit(chosen, model, spec, split, config, progress, observers, spec.num_classes, run, loggers=loggers,
         log_dir=log_dir)
    _finish_run(model, run)
    return model


def resume(run_dir: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, *,
           backend: str | Backend | None = None, progress: bool = True,
           observers: Sequence[EpochObserver] = (), loggers: Sequence[LoggerLike] = (),
           log_dir: str | os.PathLike[str] | None = None) -> SpecModel:
    """Continue the interrupted run in ``run_dir`` from its last checkpoint, on the same data.

    ``images`` and ``labels`` must be those :func:`train` was given (their fingerprint is checked);
    spec, config, class names and normalization come from the run. On the CPU the result is
    bit-identical to an uninterrupted run (timings aside). A folder that is not a run, a finished
    model, other data or another backend raise a clear :class:`~featurelens.FeaturelensError`.
    ``loggers`` and ``log_dir`` as for :func:`train` (the resumed epochs are logged).
    """
    run = open_run(run_dir)
    chosen = _resolve_backend(backend if backend is not None else run.backend)
    chosen.require(Capability.RESUME, "resume training")
    spec, config = run.spec, run.config
    saved = run.load_state(chosen)
    run.check_data(images, labels)
    model = build_model(spec, run.normalization, run.class_names, chosen, seed=config.seed)
    split = _split(model, images, labels, config, spec.num_classes, run.normalization)
    _fit(chosen, model, spec, split, config, progress, observers, spec.num_classes, run, saved, loggers=loggers,
         log_dir=log_dir)
    _finish_run(model, run)
    return model


def _finish_run(model: SpecModel, run: Run | None) -> None:
    """Replace the run folder by the finished model folder (main process), unless training was interrupted."""
    if run is None or not run.writer:
        return
    assert model.history is not None  # _fit sets it
    if model.history.stop_reason == "interrupted":
        run.mark("interrupted")
        return
    model.save(run.path, overwrite=True)


def _probe(backend: Backend, native: Any, image: np.ndarray) -> int:
    """How many class scores the model returns for one image, with a clear error if it cannot run."""
    try:
        return int(backend.predict(native, image, batch_size=1).shape[1])
    except Exception as exc:
        shape = image.shape[1:]
        hint = ("; they look channels-first: give (N, H, W, C) images, e.g. images.transpose(0, 2, 3, 1)"
                if shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4) else "")
        raise InputError(f"the model could not run on images of shape (H, W, C) = {shape}: "
                         f"{type(exc).__name__}: {exc}{hint}") from exc


def fit(native: Any, images: np.ndarray, labels: np.ndarray, config: TrainConfig | None = None, *,
        backend: str | Backend | None = None, class_names: Sequence[str] | None = None,
        normalization: Normalization | str | None = "auto", progress: bool = True,
        observers: Sequence[EpochObserver] = (), loggers: Sequence[LoggerLike] = (),
        log_dir: str | os.PathLike[str] | None = None) -> WrappedModel:
    """Train a model you built yourself (a ``torch.nn.Module``, a Keras model) with featurelens's trainer.

    The same validation split, early stopping, LR reduction, History, progress and augmentation
    as :func:`train`. ``normalization="auto"`` computes the per-channel mean and std from the
    training images (as for spec models); pass a :class:`~featurelens.Normalization` to use yours,
    or ``None`` to feed the images unchanged. The model must take (N, H, W, C) images in the
    framework's own layout (channels first for torch) and return one row of class scores per image,
    logits or probabilities. It is trained in place and returned wrapped, with its ``history``
    (and ``snapshots`` when the config asks for them; ``observers``, ``loggers`` and ``log_dir`` as for
    :func:`train`, the default log folder being ``runs/<model class>-<backend>-logs``);
    ``.save(folder)`` writes it, ``featurelens.load_model(folder, model=...)`` loads it.
    """
    config = config or TrainConfig()
    chosen = _resolve_backend(backend) if backend is not None else registry.detect(native)
    chosen.require(Capability.TRAIN, "train models")
    chosen.require(Capability.WRAP, "train models users built")
    if not chosen.accepts(native):
        raise InputError(f"the {chosen.name!r} backend cannot train a {type(native).__qualname__}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(f"expected images of shape (N, H, W, C), channels last, got {images.shape}")
    input_shape = (int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))
    channels = input_shape[2]
    identity = Normalization((0.0,) * channels, (1.0,) * channels)
    outputs = _probe(chosen, native, identity.apply(images[:1])) if len(images) else 0
    labels = np.asarray(labels)
    num_classes = len(class_names) if class_names is not None else outputs
    if class_names is not None and outputs != num_classes:
        raise InputError(f"the model returns {outputs} scores per image but {num_classes} class names were given; "
                         "its last layer needs one output per class")
    if not isinstance(normalization, Normalization) and normalization not in ("auto", None):
        raise InputError(f"normalization must be 'auto', None or a featurelens.Normalization, not {normalization!r}")
    model = WrappedModel(chosen, native, identity, class_names, input_shape)
    given = normalization if isinstance(normalization, Normalization) else (identity if normalization is None else None)
    split = _split(model, images, labels, config, num_classes, given)
    model.normalization = split.normalization
    _fit(chosen, model, None, split, config, progress, observers, num_classes, loggers=loggers, log_dir=log_dir)
    return model
