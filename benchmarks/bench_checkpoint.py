"""Checkpointing's cost per epoch: the seed CNN with a checkpoint after every other epoch, side by side.

One run trains the seed CNN with ``featurelens.train`` in a run folder, Adam 1e-3, batch 64, fp32,
validation after every epoch, early stopping and LR reduction on (their state is in the
checkpoint), with ``checkpoint_every=2``: epochs alternate between ending with a checkpoint --
the whole training state (weights, Adam's moments, early stopping's best weights) exported,
written as safetensors + JSON into a new folder, flushed to disk (fsync) and swapped in -- and
ending without one. An epoch's time is the wall time from the end of the epoch before (an epoch
observer), so it includes training, validation and the checkpoint written after it; the first
epoch (warm-up) is left out. Alternating epoch by epoch inside one run keeps both sides under the
same load on a shared machine. The medians are compared, and each epoch with a checkpoint with the
mean of the two epochs around it (the median of those ratios resists load that drifts over
minutes); the target is a slowdown of at most 3% (a checkpoint after *every* epoch costs the
with-checkpoint epochs' time). The time of every
checkpoint alone is measured too: the write, and on torch the trainer's export of its state plus
the write.

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
EXPORTS: list[float] = []


def timed(original, into: list[float]):  # noqa: ANN001, ANN202 - a benchmark's wrapper
    def call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        start, writes = time.perf_counter(), len(SAVES)
        try:
            return original(self, *args, **kwargs)
        finally:
            if into is SAVES or len(SAVES) > writes:  # the trainer's call: only when it wrote one
                into.append(time.perf_counter() - start)
    return call


def run(x, y, args: argparse.Namespace) -> list[float]:  # noqa: ANN001
    config = fl.TrainConfig(epochs=2 * args.pairs + 2, batch_size=64, learning_rate=1e-3, device=args.device,
                            validation_split=args.val_images / (args.train_images + args.val_images),
                            checkpoint_every=2)
    clock = EpochClock()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        fl.train(fl.get_preset("seed"), x, y, config, backend=args.backend, progress=False, observers=[clock],
                 run_dir=Path(tmp) / "run")
    return clock.epoch_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-images", type=int, default=9000)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=4, help="timed epochs of each side")
    parser.add_argument("--tmp", default=None, help="where the run folders go (default: the system's temp)")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    x, y, source = load(args.train_images, args.val_images, args.synthetic)
    Run.save = timed(Run.save, SAVES)  # type: ignore[method-assign]
    if args.backend == "torch":  # the torch trainer's export of its state plus the write
        from featurelens_torch import train as torch_train

        torch_train._Run.save_checkpoint = timed(torch_train._Run.save_checkpoint, EXPORTS)
    seconds = run(x, y, args)  # from the end of epoch k to that of k + 1, for k = 1, 2, ...
    saved = seconds[1::2]  # epochs 3, 5, ...: the checkpoint of epochs 2, 4, ... is written before they end
    plain = seconds[0::2]
    # each epoch with a checkpoint against the mean of the two without around it: robust to slow load drifts
    paired = [c / ((a + b) / 2) for a, c, b in zip(plain, saved, plain[1:])]
    backend = fl.get_backend(args.backend)
    epoch_plain, epoch_saved = statistics.median(plain), statistics.median(saved)
    save = statistics.median(SAVES)
    report({
        "benchmark": "epochs with a checkpoint vs without, alternating in one run, seed CNN",
        "machine": machine_info(**backend.versions(), backend=args.backend, device=args.device),
        "data": f"{source}: {args.train_images} train + {args.val_images} validation images",
        "epochs_timed": {"plain": len(plain), "checkpoint": len(saved)},
        "epoch_seconds_plain": plain, "epoch_seconds_checkpoint": saved,
        "median_epoch_seconds_plain": epoch_plain, "median_epoch_seconds_checkpoint": epoch_saved,
        "slowdown_ratio": epoch_saved / epoch_plain,
        "paired_slowdowns": paired, "median_paired_slowdown": statistics.median(paired),
        "checkpoint_write_seconds": SAVES, "median_checkpoint_write_seconds": save,
        "write_share_of_epoch": save / epoch_plain,
        "export_and_write_seconds": EXPORTS,
        "median_export_and_write_seconds": statistics.median(EXPORTS) if EXPORTS else None,
        "target": "slowdown <= 1.03",
    }, args.out)


if __name__ == "__main__":
    main()
