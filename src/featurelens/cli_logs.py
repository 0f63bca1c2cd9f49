"""Experiment logs on the command line: ``featurelens train --log NAME [--log-dir DIR]`` and
``featurelens loggers``.

The logs go beside the model folder, in ``<--out>-logs`` (``runs/seed-torch-logs`` by default),
not inside it: the model folder is written in one step when training ends, while logs are written
as it runs and must survive a run that never gets there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from featurelens import distributed
from featurelens.backends.registry import registry
from featurelens.errors import FeaturelensError
from featurelens.loggers.session import available_loggers, logger_entry


def add_log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", action="append", metavar="NAME", default=None,
                   help="write experiment logs while training: tensorboard, csv, jsonl or a plugin's "
                        "(repeatable; `featurelens loggers` lists them)")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="folder for the logs (default: beside the model folder, <--out>-logs)")


def log_dir(args: argparse.Namespace, out: Path) -> Path | None:
    """The run's log folder (None without ``--log``), after checking the loggers are installed and
    the folder holds no earlier run's logs unless ``--overwrite`` was given."""
    if not args.log:
        return None
    for name in args.log:
        logger_entry(name)
    folder: Path = args.log_dir or out.parent / f"{out.name or out.resolve().name}-logs"
    # only the main process writes logs, and checks: the others may start after it has begun them
    if distributed.is_main_process() and folder.is_dir() and any(folder.iterdir()) and not args.overwrite:
        raise FeaturelensError(f"the log folder {folder} already holds logs; pass --overwrite to replace them or "
                               "choose another --log-dir")
    return folder


def describe(names: list[str], folder: Path) -> str:
    """Where the logs went and, for TensorBoard, how to look at them."""
    text = f"Logs ({', '.join(names)}): {folder}"
    if "tensorboard" in names:
        text += f"; view them with: tensorboard --logdir {folder}"
    return text


def cmd_loggers(args: argparse.Namespace) -> int:
    for name, entry in available_loggers().items():
        missing = entry.missing()
        state = f" [not installed: {entry.install or 'pip install ' + ' '.join(missing)}]" if missing else ""
        print(f"{name:<12} {entry.description}{state}")
    for failure in registry.failures:
        print(f"plugin {failure.name!r} ({failure.target}) failed to load: {failure.error}")
    return 0
