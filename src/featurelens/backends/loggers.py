"""Experiment loggers as plugins: where a training run's metrics and pictures go while it trains.

A :class:`LoggerEntry` names a ``create`` callable returning a :class:`Logger`; it is registered
through the hook ``featurelens_register_loggers``. The built-in ``tensorboard``, ``csv`` and
``jsonl`` loggers register exactly as a third-party package's (MLflow, Weights & Biases ...) do.
Registration is cheap: a logger's library is imported by ``create``, when a run asks for it.

A logger sees three moments of a run, as plain data (never a framework object):

- :meth:`Logger.begin` with a :class:`RunStart`: the run's name and log folder, backend, spec and
  layer table, config, class names, data sizes and the probe images;
- :meth:`Logger.epoch` after every finished epoch, with its
  :class:`~featurelens.backends.EpochRecord` and an :class:`EpochView` of the model at that epoch
  (first-layer filters and the probe images' feature maps, read once and shared by all loggers);
- :meth:`Logger.end` with a :class:`RunEnd`: the History (why training stopped, the best epoch),
  or the error that ended training. It is called however the run ends.

What happens when a logger raises: before training starts (``create`` or ``begin``) the run does
not start and a :class:`~featurelens.errors.LoggerError` names the logger; once training runs, a
failing logger is reported once (a ``LoggerWarning`` naming it, the epoch and the error) and
switched off, and training and the other loggers go on: a run of hours is never lost to a full
disk or a tracking server that went away, and the failure is never silent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from featurelens.backends.contract import missing_modules
from featurelens.errors import BackendError

if TYPE_CHECKING:
    from featurelens.backends.layers import LayerInfo
    from featurelens.config import TrainConfig
    from featurelens.history import EpochRecord, History
    from featurelens.spec import ModelSpec

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class RunStart:
    """A run as it starts: what a logger may record once (hyper-parameters, the model's layers).

    ``log_dir`` is the run's log folder (created; loggers that write files write them there under
    their own names, replacing an earlier run's). ``layers`` is the model's layer table (empty when
    the backend cannot introspect); ``probe_images`` are the held-out images (N, H, W, 3), float32
    in [0, 1] for display, whose feature maps every :class:`EpochView` holds (``probe_source``:
    ``validation``, or ``training`` without a validation split).
    """

    name: str
    log_dir: Path
    backend: str
    device: str
    spec: ModelSpec | None
    layers: tuple[LayerInfo, ...]
    config: TrainConfig
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    train_size: int
    validation_size: int
    probe_images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), np.float32))
    probe_source: str = "validation"

    @property
    def parameter_count(self) -> int:
        """Parameters of the model (from its layer table)."""
        return sum(info.params for info in self.layers)

    def layer_table(self) -> str:
        """The layer table as aligned text: layer, kind, output shape, parameters."""
        rows = [("layer", "kind", "output shape", "params")]
        rows += [(i.name, i.kind, "x".join(map(str, i.output_shape)), f"{i.params:,}") for i in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {self.parameter_count:,}")
        return "\n".join(lines)


class EpochView:
    """The model after one epoch, as numpy arrays a logger may look at; nothing is read until asked.

    :meth:`filters` and :meth:`feature_maps` read the model through its backend the first time
    any logger asks and are shared by every logger of the run, so a logger that asks for nothing
    costs nothing. Both are empty for models without conv layers or backends that cannot
    introspect.
    """

    def __init__(self, epoch: int, read_filters: Callable[[], dict[str, np.ndarray]],
                 read_maps: Callable[[], dict[str, np.ndarray]]) -> None:
        self.epoch = epoch
        self._readers = {"filters": read_filters, "maps": read_maps}
        self._read: dict[str, dict[str, np.ndarray]] = {}

    def _get(self, what: str) -> dict[str, np.ndarray]:
        if what not in self._read:
            self._read[what] = self._readers[what]()
        return self._read[what]

    def filters(self) -> dict[str, np.ndarray]:
        """``{first conv layer: kernels (C_out, kh, kw, C_in) float32}``: the layer whose filters
        are colour images for RGB inputs."""
        return self._get("filters")

    def feature_maps(self) -> dict[str, np.ndarray]:
        """``{conv layer: (N, H, W, C) float32}``: every conv layer's channels for the run's probe
        images (:attr:`RunStart.probe_images`), read where the channel passes them on (its ReLU)."""
        return self._get("maps")


@dataclass(frozen=True)
class RunEnd:
    """A run as it ends: its History and, when an exception ended training, that error.

    ``history`` holds the epochs that finished. After a normal end (the epoch limit, early
    stopping, or Ctrl-C: ``history.stop_reason`` says which) ``error`` is None; when training
    failed it is ``"ExceptionType: message"`` and the history has no best epoch.
    """

    history: History
    error: str | None = None

    @property
    def stop_reason(self) -> str:
        return "error" if self.error is not None else self.history.stop_reason

    @property
    def best_epoch(self) -> int | None:
        return self.history.best_epoch


class Logger:
    """Base class of experiment loggers; override what your logger records (each does nothing here).

    A logger is made for one run by its entry's ``create`` and receives, in order, one
    :meth:`begin`, an :meth:`epoch` per finished epoch and one :meth:`end`. Only the main process
    of a distributed run (rank 0) makes and calls loggers.
    """

    def begin(self, run: RunStart) -> None:
        """The run starts: record its description; open files or connections here."""

    def epoch(self, record: EpochRecord, view: EpochView) -> None:
        """An epoch finished: ``record`` holds its metrics, ``view`` the model at that epoch."""

    def end(self, run: RunEnd) -> None:
        """The run ended (however it ended): record the outcome, flush and close."""


@dataclass(frozen=True)
class LoggerEntry:
    """A registered logger, cheap to create: its library is imported only by ``create``.

    ``create()`` returns a new :class:`Logger` for one run. ``requires`` names the modules it
    needs (checked before ``create`` is called, so a missing one gets ``install`` as advice).
    Names are lower case (letters, digits, ``-``, ``_``, ``.``); ``--log NAME`` selects one.
    """

    name: str
    create: Callable[[], Logger]
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise BackendError(f"a logger name must be lower-case letters, digits, '-', '_' or '.'; got {self.name!r}")

    def missing(self) -> list[str]:
        """The required modules that are not importable here."""
        return missing_modules(self.requires)
