"""Exceptions raised by featurelens.

Every error says what was wrong, what was expected and what to do. They all derive from
:class:`FeaturelensError` so callers can catch the library's errors in one place, and the ones
caused by bad arguments also derive from :class:`ValueError`.
"""

from __future__ import annotations

import re


class FeaturelensError(Exception):
    """Base class of every error featurelens raises on purpose. Its message is one line: line breaks
    in text it quotes (a parser's multi-line complaint) become spaces."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (re.sub(r"\s*\n\s*", " ", args[0]),)
        super().__init__(*args)


class SpecError(FeaturelensError, ValueError):
    """A model spec or one of its fields is invalid."""


class InputError(FeaturelensError, ValueError):
    """An argument passed to a featurelens function is invalid (images of the wrong shape, say)."""


class ConfigError(FeaturelensError, ValueError):
    """A training configuration field is invalid."""


class DataError(FeaturelensError):
    """A dataset is missing, corrupted, truncated or unsafe."""


class BackendError(FeaturelensError):
    """A backend is unknown, not installed or failed to load."""


class ModelFolderError(FeaturelensError):
    """A saved model folder is missing files, malformed or from an unknown format."""


class OutputExistsError(FeaturelensError, FileExistsError):
    """An output folder already exists and overwriting it was not asked for."""


class RunFolderError(FeaturelensError):
    """A training run folder is missing, unfinished, finished, damaged or does not match what resumes it."""


class TrainingDivergedError(FeaturelensError):
    """The training loss became NaN or infinite, or exploded: training stopped and returned no model.

    ``epoch`` is 1-based; ``batch`` (0-based within the epoch) is None when the epoch's mean loss gave
    it away. ``history`` holds the epochs completed before (its ``stop_reason`` is ``"diverged"``);
    ``checkpoint`` names the last good checkpoint when a run folder keeps one.
    """

    def __init__(self, epoch: int, batch: int | None, loss: float, learning_rate: float, *, why: str = "",
                 history: object = None, checkpoint: str | None = None) -> None:
        self.epoch, self.batch, self.loss, self.learning_rate = epoch, batch, loss, learning_rate
        self.why, self.history, self.checkpoint = why, history, checkpoint
        where = f"epoch {epoch}, batch {batch}" if batch is not None else f"epoch {epoch}"
        what = why or f"the training loss is {loss}"
        kept = f"; {checkpoint}" if checkpoint else ""
        super().__init__(f"training diverged at {where}: {what} (learning rate {learning_rate:.3g}), so it was "
                         f"stopped and no model was saved{kept}; try a lower learning rate (learning_rate, "
                         "--lr), e.g. a tenth of it")

    def with_checkpoint(self, checkpoint: str) -> TrainingDivergedError:
        """The same error, saying where the last good checkpoint is kept."""
        return TrainingDivergedError(self.epoch, self.batch, self.loss, self.learning_rate, why=self.why,
                                     history=self.history, checkpoint=checkpoint)
class LoggerError(FeaturelensError):
    """An experiment logger is unknown, not installed, or failed before training started."""


class NonFiniteError(FeaturelensError, ArithmeticError):
    """A model's outputs hold NaN or infinite values (diverged training or damaged weights)."""


class ModelFolderWarning(UserWarning):
    """A model folder loads, but a part of it could not be used or checked (a damaged history, a
    folder written before featurelens recorded hashes); the message says which and what to do."""
