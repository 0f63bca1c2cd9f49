"""The long-run side of ``featurelens train``: the run folder, ``--resume``, ``--devices`` and the end of a run.

* ``--out RUN`` is the run folder: checkpoints while training (``--checkpoint-every N`` epochs, 1 by
  default), the finished model folder at the end (:mod:`featurelens.checkpoint`).
* ``--resume RUN`` continues an interrupted run from its last checkpoint with everything it was
  started with -- spec, training options, backend, dataset, ``--train-per-class``, device count;
  flags that would change them are refused. ``--data-dir`` may point at where the data is now.
* ``--devices N`` trains on N devices: the backend either gives the command that starts N processes
  (torch: ``torchrun``), which runs in the foreground with this process's exit status, or spreads
  training over N devices itself (Keras on JAX).
* Ctrl-C keeps the last completed epoch's checkpoint and prints how to resume (exit status 130).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featurelens import distributed
from featurelens.backends.contract import Backend, Capability
from featurelens.checkpoint import Run, folder_kind, open_run
from featurelens.errors import FeaturelensError

#: Flags that change what a run trains; ``--resume`` refuses them (dest -> flag).
RESUME_CONFLICTS = {
    "preset": "--preset", "spec": "--spec", "config": "--config", "epochs": "--epochs", "batch_size": "--batch-size",
    "optimizer": "--optimizer", "learning_rate": "--lr", "validation_split": "--validation-split",
    "patience": "--patience", "no_early_stopping": "--no-early-stopping", "lr_patience": "--lr-patience",
    "lr_factor": "--lr-factor", "min_lr": "--min-lr", "no_reduce_lr": "--no-reduce-lr", "augment": "--augment",
    "seed": "--seed", "device": "--device", "label_smoothing": "--label-smoothing", "lr_schedule": "--lr-schedule",
    "warmup_epochs": "--warmup-epochs", "weight_averaging": "--weight-averaging", "precision": "--precision",
    "compile": "--compile", "train_per_class": "--train-per-class", "snapshot_every": "--snapshot-every",
    "checkpoint_every": "--checkpoint-every", "sync_batchnorm": "--sync-batchnorm",
    "divergence_factor": "--divergence-factor", "out": "--out", "overwrite": "--overwrite", "dataset": "--dataset",
    "image_size": "--image-size", "channels": "--channels", "test_fraction": "--test-fraction",
}


def add_run_args(p: argparse.ArgumentParser) -> None:
    """``featurelens train``'s options for long runs and several devices."""
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the interrupted run in RUN (its --out folder) from its last checkpoint, with the "
                        "spec, options and data it was started with")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="write a checkpoint to the run folder every N epochs (default 1; 0: none)")
    p.add_argument("--devices", type=int, metavar="N",
                   help="train data-parallel on N devices of this machine (torch: N processes with torchrun, NCCL "
                        "on GPUs, gloo on CPUs; keras: keras.distribution on JAX)")
    p.add_argument("--sync-batchnorm", action="store_true", default=None,
                   help="data-parallel: batch-norm statistics over the global batch instead of each process's part")
    p.add_argument("--divergence-factor", type=float, metavar="F",
                   help="stop as diverged when an epoch's mean training loss exceeds F times that of guessing "
                        "(default 3; 0: off; NaN or infinite losses always stop training)")


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields these options set."""
    changes = {"checkpoint_every": args.checkpoint_every, "sync_batchnorm": args.sync_batchnorm,
               "divergence_factor": args.divergence_factor}
    return {k: v for k, v in changes.items() if v is not None}


def check_resume_flags(args: argparse.Namespace) -> None:
    """Refuse the flags that would change what the resumed run trains."""
    given = [flag for dest, flag in RESUME_CONFLICTS.items() if getattr(args, dest, None) not in (None, False)]
    if given:
        raise FeaturelensError(f"--resume continues {args.resume} with the spec, training options and data it was "
                               f"started with; drop {', '.join(given)} (to change them, start again with --out "
                               f"{args.resume} --overwrite)")


def devices_for(args: argparse.Namespace, run: Run | None = None) -> int:
    """How many devices to train on: under torchrun its processes; else ``--devices``, else what the
    resumed run used, else 1."""
    if args.devices is not None and args.devices < 1:
        raise FeaturelensError(f"--devices {args.devices} is invalid: give a positive number of devices")
    if distributed.is_distributed():
        if args.devices is not None and args.devices != distributed.world_size():
            raise FeaturelensError(f"--devices {args.devices} under torchrun, which started {distributed.world_size()} "
                                   "processes; leave --devices out (torchrun's --nproc-per-node sets the number)")
        return distributed.world_size()
    if args.devices is not None:
        return int(args.devices)
    recorded = run.info.get("devices", 1) if run is not None else 1
    return int(recorded) if isinstance(recorded, int) and recorded > 0 else 1


def without_devices(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--devices N`` (what each launched process runs)."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--devices":
            skip = True
        elif not token.startswith("--devices="):
            out.append(token)
    return out


def launch(backend: Backend, devices: int, argv: Sequence[str]) -> int | None:
    """Train on ``devices`` devices: run the backend's launch command and return its exit status, or
    set the backend up to use the devices in this process and return None (go on training here)."""
    if devices == 1 or distributed.is_distributed():  # one device, or one of torchrun's processes
        return None
    backend.require(Capability.DATA_PARALLEL, f"train on {devices} devices")
    command = backend.launch_command(devices, without_devices(argv))
    if command is None:
        backend.use_devices(devices)
        return None
    return run_in_foreground(command)


def run_in_foreground(command: Sequence[str]) -> int:
    """Run ``command`` and return its exit status. It shares this process's group, so a terminal's
    Ctrl-C reaches every process of the run directly (this one ignores it meanwhile); SIGTERM and
    SIGHUP sent to this process are passed on."""
    child = subprocess.Popen(list(command))

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)

    handled = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, forward) for sig in handled}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def launched(status: int, out: Path) -> int:
    """The launched processes' exit status; when they failed or were stopped but left an unfinished run
    (not a diverged one), say how to continue it."""
    if status != 0 and folder_kind(out) == "run":
        run = open_run(out)
        if run.meta.get("status") != "diverged":
            print(f"The run is kept in {run.describe()}. Continue it with: featurelens train --resume {out}",
                  file=sys.stderr)
    return status


def interrupted(out: object) -> int:
    """Say where the interrupted run is kept and how to continue it; the exit status 130."""
    try:
        where = open_run(str(out)).describe()
    except FeaturelensError:
        where = str(out)
    print(f"Interrupted; the run is kept in {where}. Continue it with: featurelens train --resume {out}",
          file=sys.stderr)
    return 130
