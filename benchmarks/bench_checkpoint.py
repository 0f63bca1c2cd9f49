"""Checkpointing's cost per epoch: the seed CNN trained with and without a checkpoint after every epoch.

Both sides train the seed CNN with ``featurelens.train``, Adam 1e-3, batch 64, fp32, validation
after every epoch, early stopping and LR reduction on (their state is in the checkpoint). The
checkpoint side trains in a run folder (``run_dir=``) with ``checkpoint_every=1``: after every epoch
the whole training state -- weights, Adam's moments, early stopping's best weights -- is exported,
written as safetensors + JSON into a new folder, flushed to disk (fsync) and swapped in. An epoch's
time is the wall time between the ends of two consecutive epochs (an epoch observer), so it
includes training, validation and the previous epoch's checkpoint; each run's first epoch (warm-up)
is left out. Runs alternate (plain, checkpoint, checkpoint, plain, ...) and the medians of all
timed epochs are compared. The target is a slowdown of at most 3%.
The time of every checkpoint write alone is measured too.

    FEATURELENS_DATA_DIR=/work/data python benchmarks/bench_checkpoint.py --train-images 9000 --val-images 1000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine_info, report
from bench_snapshots import EpochClock, load

import featurelens as fl
from featurelens.checkpoint import Run

SAVES: list[float] = []


def timed_save(original):  # noqa: ANN001, ANN202 - a benchmark's wrapper
    def save(self, state, snapshots=None):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        try:
            return original(self, state, snapshots)
        finally:
            SAVES.append(time.perf_counter() - start)
    return save


def run(x, y, args: argparse.Namespace, checkpoint: bool, epochs: int) -> list[float]:  # noqa: ANN001
    config = fl.TrainConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, device=args.device,
                            validation_split=args.val_images / (args.train_images + args.val_images))
    clock = EpochClock()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        fl.train(fl.get_preset("seed"), x, y, config, backend=args.backend, progress=False, observers=[clock],
                 run_dir=Path(tmp) / "run" if checkpoint else None)
    return clock.epoch_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-images", type=int, default=9000)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--pairs", type=int, default=2, help="timed runs of each side")
    parser.add_argument("--tmp", default=None, help="where the run folders go (default: the system's temp)")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    x, y, source = load(args.train_images, args.val_images, args.synthetic)
    Run.save = timed_save(Run.save)  # type: ignore[method-assign]
    plain: list[float] = []
    saved: list[float] = []
    order = [False, True, True, False] * ((args.pairs + 1) // 2)
    for checkpoint in order[:2 * args.pairs]:
        (saved if checkpoint else plain).extend(run(x, y, args, checkpoint, args.epochs))
    backend = fl.get_backend(args.backend)
    epoch_plain, epoch_saved = statistics.median(plain), statistics.median(saved)
    save = statistics.median(SAVES)
    report({
        "benchmark": "checkpoint every epoch vs none, seed CNN",
        "machine": machine_info(**backend.versions(), backend=args.backend, device=args.device),
        "data": f"{source}: {args.train_images} train + {args.val_images} validation images",
        "epochs_timed": {"plain": len(plain), "checkpoint": len(saved)},
        "epoch_seconds_plain": plain, "epoch_seconds_checkpoint": saved,
        "median_epoch_seconds_plain": epoch_plain, "median_epoch_seconds_checkpoint": epoch_saved,
        "slowdown_ratio": epoch_saved / epoch_plain,
        "checkpoint_write_seconds": SAVES, "median_checkpoint_write_seconds": save,
        "write_share_of_epoch": save / epoch_plain,
        "target": "slowdown <= 1.03",
    }, args.out)


if __name__ == "__main__":
    main()
