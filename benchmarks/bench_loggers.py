"""Experiment logs' cost per epoch: the seed CNN trained with and without the TensorBoard logger.

Both sides train the seed CNN with ``featurelens.train``, Adam 1e-3, batch 64, fp32, validation
after every epoch, early stopping and LR reduction off. The logging side writes TensorBoard files
with everything the logger records per epoch: six scalars, the first-layer filters and every conv
layer's feature maps of the probe image as PNG images (``loggers=["tensorboard"]``); a third side
adds ``csv`` and ``jsonl``. An epoch's time is the wall time between the ends of two consecutive
epochs (an epoch observer's clock), so it includes training, validation and the previous epoch's
logging; each run's first epoch (warm-up) is left out. Runs alternate (none, tensorboard, all,
all, tensorboard, none, ...) after one untimed warm-up of each, and the medians of all timed epochs
are compared. The time the TensorBoard logger takes per epoch (reading the filters and maps
through the backend, drawing and encoding the pictures, writing) is measured on its own too.
A record, no target.

    FEATURELENS_DATA_DIR=/work/data python benchmarks/bench_loggers.py --train-images 3000 --val-images 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import report
from bench_snapshots import EpochClock, load, machine, parse_args

import featurelens as fl
from featurelens.loggers.tensorboard import TensorBoardLogger


class TimedTensorBoard(TensorBoardLogger):
    """The TensorBoard logger, noting how long each epoch's logging took."""

    def __init__(self) -> None:
        super().__init__(images=True)
        self.seconds: list[float] = []

    def epoch(self, record: fl.EpochRecord, view: object) -> None:
        start = time.perf_counter()
        super().epoch(record, view)
        self.seconds.append(time.perf_counter() - start)


SIDES = {"none": (), "tensorboard": ("tensorboard",), "all": ("tensorboard", "csv", "jsonl")}


def run(x: np.ndarray, y: np.ndarray, args: argparse.Namespace, side: str, seed: int, epochs: int,
        log_root: Path) -> tuple[list[float], list[float]]:
    config = fl.TrainConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, early_stopping=None, reduce_lr=None,
                            validation_split=args.val_images / (args.train_images + args.val_images),
                            device=args.device, seed=seed)
    clock, timed = EpochClock(), TimedTensorBoard()
    loggers = [timed if name == "tensorboard" else name for name in SIDES[side]]
    fl.train(fl.get_preset("seed"), x, y, config, backend=args.backend, progress=False, observers=[clock],
             loggers=loggers, log_dir=log_root / f"{side}-{seed}")
    return clock.epoch_seconds(), timed.seconds


def main() -> None:
    args = parse_args(__doc__, train_images=3000, val_images=500, repeats=3)

    x, y, source = load(args.train_images, args.val_images, args.synthetic)
    epochs: dict[str, list[float]] = {side: [] for side in SIDES}
    logging_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in SIDES:  # warm-up: allocator, lazy imports (tensorboard, protobuf, Pillow's PNG encoder)
            run(x, y, args, side, 99, 1, Path(tmp))
            print(f"warm-up {side} done", file=sys.stderr, flush=True)
        for r in range(args.repeats):
            for side in (list(SIDES) if r % 2 == 0 else list(SIDES)[::-1]):
                seconds, logged = run(x, y, args, side, r, args.epochs, Path(tmp))
                epochs[side].extend(seconds)
                logging_seconds.extend(logged)
                print(f"repeat {r + 1} {side:<12} epochs {', '.join(f'{s:.2f}' for s in seconds)} s",
                      file=sys.stderr, flush=True)
        event_bytes = sum(f.stat().st_size for f in Path(tmp).glob("tensorboard-0/*/events.out.tfevents.*"))
    median = {k: statistics.median(v) for k, v in epochs.items()}
    logger_median = statistics.median(logging_seconds)
    result = {
        "benchmark": "epoch time with and without experiment logs (tensorboard with images; + csv + jsonl), seed CNN",
        "backend": args.backend, "device": args.device, "data": source, "train_images": args.train_images,
        "val_images": args.val_images, "epochs_per_run": args.epochs, "repeats": args.repeats,
        "epoch_seconds": epochs, "median_epoch_seconds": median,
        "ratio_tensorboard_over_none": median["tensorboard"] / median["none"],
        "ratio_all_over_none": median["all"] / median["none"],
        "tensorboard_logger_seconds_per_epoch": logger_median,
        "tensorboard_logger_over_plain_epoch": logger_median / median["none"],
        "tensorboard_event_bytes_per_run": event_bytes,
        "machine": machine(args.backend, args.device),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
