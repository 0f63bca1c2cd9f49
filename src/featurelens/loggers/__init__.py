"""Experiment logs: where a training run's metrics and pictures go while it trains.

``featurelens.train(..., loggers=["tensorboard", "csv"], log_dir="runs/seed-logs")`` (and
``featurelens train --log tensorboard --log csv``) write, after every epoch, through *loggers*:
plugins registered with the ``featurelens_register_loggers`` hook
(:mod:`featurelens.backends.loggers` has the contract). Built in, registered through that hook
exactly as a third party's:

- ``tensorboard``: TensorBoard event files (losses, accuracies, learning rate and epoch time per
  epoch; the first-layer filters and the probe image's feature maps per epoch as images; the layer
  table, config and run description as text), written with the ``tensorboard`` package's record
  writer and protocol buffers, never TensorFlow, on every backend
  (``pip install "featurelens[tensorboard]"``);
- ``csv``: ``metrics.csv``, one row per epoch;
- ``jsonl``: ``run.jsonl``, a JSON object per line: the run's start, every epoch, its end.

A logger that fails before training starts stops the run with a
:class:`~featurelens.errors.LoggerError`; one that fails during training is reported once with a
:class:`LoggerWarning` and switched off while training goes on. Only the main process of a
distributed run logs.
"""

from __future__ import annotations

from featurelens.distributed import is_main_process
from featurelens.loggers.session import LoggerSession, LoggerWarning, available_loggers, create_loggers

__all__ = ["LoggerSession", "LoggerWarning", "available_loggers", "create_loggers", "is_main_process"]
