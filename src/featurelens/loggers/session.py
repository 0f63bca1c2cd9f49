"""One training run's loggers: made, started, called after every epoch, ended, whatever happens.

:class:`LoggerSession` is an :class:`~featurelens.backends.EpochObserver`. It makes the loggers a
run asks for (by registered name, or :class:`~featurelens.backends.Logger` objects), starts them
with a :class:`~featurelens.backends.RunStart`, hands each finished epoch to them with one shared
:class:`~featurelens.backends.EpochView`, and ends them with a
:class:`~featurelens.backends.RunEnd`. Failures follow :mod:`featurelens.backends.loggers`: before
training a :class:`~featurelens.errors.LoggerError`, during training a :class:`LoggerWarning` and
the logger is switched off. Only the main process of a distributed run logs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.layers import LayerInfo
from featurelens.backends.loggers import EpochView, Logger, LoggerEntry, RunEnd, RunStart
from featurelens.backends.registry import registry
from featurelens.config import TrainConfig
from featurelens.distributed import is_main_process
from featurelens.errors import LoggerError
from featurelens.history import EpochRecord, History
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec

#: A logger as ``train(loggers=...)`` takes it: a registered name or a Logger object.
LoggerLike = str | Logger
#: How many held-out images the loggers' feature maps are of.
PROBE_IMAGES = 1


class LoggerWarning(UserWarning):
    """A logger failed during training and was switched off; training went on."""


def available_loggers() -> dict[str, LoggerEntry]:
    """Every registered experiment logger (the built-in ones and those of plugins), by name."""
    return dict(registry.loggers)


def _unknown(name: str) -> LoggerError:
    known = ", ".join(registry.loggers) or "none"
    failed = "".join(f"; the plugin {f.name!r} ({f.target}) failed to load: {f.error}" for f in registry.failures)
    return LoggerError(f"unknown logger {name!r}; choose one of: {known} (`featurelens loggers` lists them){failed}")


def logger_entry(name: str) -> LoggerEntry:
    """The registered logger ``name``, or a :class:`LoggerError` if it is unknown or not installed."""
    entry = registry.loggers.get(name)
    if entry is None:
        raise _unknown(name)
    missing = entry.missing()
    if missing:
        raise LoggerError(f"the {name!r} logger needs {', '.join(missing)}, which is not installed; install it "
                          f"with: {entry.install or 'pip install ' + ' '.join(missing)}")
    return entry


def create_loggers(loggers: Sequence[LoggerLike]) -> list[tuple[str, Logger]]:
    """``(name, logger)`` for each registered name or Logger object, with a clear error for one that
    is unknown, not installed or fails to be made."""
    if isinstance(loggers, (str, Logger)):
        loggers = [loggers]
    made: list[tuple[str, Logger]] = []
    for item in loggers:
        if isinstance(item, Logger):
            made.append((type(item).__name__, item))
            continue
        if not isinstance(item, str):
            raise LoggerError(f"loggers must be registered names or featurelens.backends.Logger objects, not {item!r}")
        entry = logger_entry(item)
        try:
            logger = entry.create()
        except Exception as exc:
            raise LoggerError(f"the {item!r} logger could not be created: {type(exc).__name__}: {exc}") from exc
        if not isinstance(logger, Logger):
            raise LoggerError(f"the {item!r} logger's create() returned {logger!r}, not a featurelens.backends.Logger")
        made.append((item, logger))
    names = [name for name, _ in made]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise LoggerError(f"the logger {twice[0]!r} is asked for twice; name each logger once")
    return made


class _Reader:
    """Reads what an :class:`EpochView` shows from the native model through the backend."""

    def __init__(self, backend: Backend, layers: Sequence[LayerInfo], probe: np.ndarray) -> None:
        from featurelens.atlas.snapshots import conv_read_at

        self.backend = backend
        self.read_at = conv_read_at(layers) if layers else {}
        self.probe = probe

    def filters(self, native: Any) -> dict[str, np.ndarray]:
        first = next(iter(self.read_at), None)
        return {} if first is None else {first: np.array(self.backend.filters(native, first), np.float32)}

    def maps(self, native: Any) -> dict[str, np.ndarray]:
        from featurelens.atlas.snapshots import read_conv_maps

        if not self.read_at or not len(self.probe):
            return {}
        return read_conv_maps(self.backend, native, self.probe, self.read_at)


class LoggerSession:
    """The loggers of one run, as one epoch observer; build it with :meth:`start`."""

    def __init__(self, loggers: list[tuple[str, Logger]], run: RunStart, reader: _Reader) -> None:
        self.active = list(loggers)
        self.run = run
        self.reader = reader
        self.records: list[EpochRecord] = []
        self.failed: dict[str, str] = {}

    @classmethod
    def start(cls, loggers: Sequence[LoggerLike], log_dir: str | os.PathLike[str], name: str, backend: Backend,
              native: Any, spec: ModelSpec | None, config: TrainConfig, class_names: Sequence[str],
              input_shape: tuple[int, int, int], train_size: int, held_out: np.ndarray, source: str,
              normalization: Normalization) -> LoggerSession | None:
        """Make and begin the loggers (None when there are none or this is not the main process);
        any failure is a :class:`LoggerError` before training starts, with the begun loggers ended."""
        if not loggers or not is_main_process():
            return None
        made = create_loggers(loggers)
        folder = Path(log_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoggerError(f"cannot create the log folder {folder}: {exc}; choose another log_dir (--log-dir)") \
                from exc
        layers = tuple(backend.layers(native, input_shape)) if backend.supports(Capability.INTROSPECT) else ()
        indices = _probe(len(held_out), config.seed)
        probe = np.asarray(held_out)[indices]
        from featurelens.visualize.images import to_display

        run = RunStart(name=name, log_dir=folder, backend=backend.name, device=backend.device(native), spec=spec,
                       layers=layers, config=config, class_names=tuple(class_names), input_shape=input_shape,
                       train_size=train_size, validation_size=len(held_out) if source == "validation" else 0,
                       probe_images=to_display(probe, normalization) if len(probe) else
                       np.zeros((0, *input_shape[:2], 3), np.float32), probe_source=source)
        session = cls(made, run, _Reader(backend, layers, probe))
        begun: list[tuple[str, Logger]] = []
        for logger_name, logger in made:
            try:
                logger.begin(run)
            except Exception as exc:
                session.active = begun
                session.end(error=f"the {logger_name!r} logger failed to start")
                raise LoggerError(f"the {logger_name!r} logger failed to start: {type(exc).__name__}: {exc}") from exc
            begun.append((logger_name, logger))
        return session

    def __call__(self, epoch: int, record: EpochRecord, native: Any) -> None:
        """The observer: this epoch to every logger still on."""
        self.records.append(record)
        view = EpochView(epoch, lambda: self.reader.filters(native), lambda: self.reader.maps(native))
        for name, logger in list(self.active):
            try:
                logger.epoch(record, view)
            except Exception as exc:
                self._switch_off(name, logger, f"at epoch {epoch}", exc)

    def _switch_off(self, name: str, logger: Logger, when: str, exc: Exception) -> None:
        self.active = [(n, lg) for n, lg in self.active if lg is not logger]
        self.failed[name] = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"the {name!r} logger failed {when} ({type(exc).__name__}: {exc}) and is switched off; "
                      "training goes on without it", LoggerWarning, stacklevel=2)

    def end(self, history: History | None = None, error: str | None = None) -> None:
        """End every logger still on with the run's History (or, when training failed, the epochs seen
        and the error)."""
        if history is None:
            history = History(epochs=list(self.records), backend=self.run.backend, device=self.run.device,
                              stop_reason="error")
        outcome = RunEnd(history, error)
        for name, logger in list(self.active):
            try:
                logger.end(outcome)
            except Exception as exc:
                self._switch_off(name, logger, "at the end of training", exc)
        self.active = []


def _probe(total: int, seed: int) -> np.ndarray:
    from featurelens.atlas.snapshots import probe_indices

    return probe_indices(total, PROBE_IMAGES, seed) if total else np.zeros(0, np.int64)
