"""The built-in experiment loggers, registered through the ``featurelens_register_loggers`` hook.

This module is the ``loggers`` entry point of featurelens's own distribution: ``tensorboard``,
``csv`` and ``jsonl`` register exactly as a third-party package's loggers do. Registering imports
nothing; the ``tensorboard`` package is imported when a run asks for that logger.
"""

from __future__ import annotations

from collections.abc import Callable

from featurelens.backends import Logger, LoggerEntry, hookimpl
from featurelens.loggers.tabular import CSV_FILE, JSONL_FILE, CsvLogger, JsonLinesLogger


def _tensorboard() -> Logger:
    from featurelens.loggers.tensorboard import TensorBoardLogger  # imports tensorboard

    return TensorBoardLogger()


@hookimpl
def featurelens_register_loggers(register: Callable[[LoggerEntry], None]) -> None:
    register(LoggerEntry("tensorboard", _tensorboard, requires=("tensorboard",),
                         install="pip install 'featurelens[tensorboard]'",
                         description="TensorBoard event files in train/ and validation/: losses, accuracies, LR, "
                                     "epoch time, filters and feature maps per epoch, the layer table"))
    register(LoggerEntry("csv", CsvLogger, description=f"{CSV_FILE}: one row per epoch"))
    register(LoggerEntry("jsonl", JsonLinesLogger,
                         description=f"{JSONL_FILE}: one JSON object per line: the run's start, every epoch, its end"))
