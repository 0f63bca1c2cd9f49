"""Training snapshots' cost per epoch: the seed CNN trained with and without them, side by side.

Both sides train the seed CNN (``featurelens spec seed``) with ``featurelens.train``, Adam 1e-3,
batch 64, fp32, validation after every epoch, early stopping and LR reduction off. The snapshot
side records at the default setting at its most frequent: a snapshot after *every* epoch
(``snapshot_every=1``) with the default probe (32 held-out images, maps pooled to 4x4, float16).
An epoch's time is the wall time between the ends of two consecutive epochs, measured by an
epoch observer that runs after the snapshot recorder, so it includes training, validation and the
snapshot; each run's first epoch (warm-up) is left out. Runs alternate (plain, snapshots,
snapshots, plain, ...) after one untimed warm-up of each, and the medians of all timed epochs are
compared. The target is a slowdown under 5%. The time of one snapshot alone is measured too.

    FEATURELENS_DATA_DIR=... python benchmarks/bench_snapshots.py --device cpu --train-images 5000
    KERAS_BACKEND=jax python benchmarks/bench_snapshots.py --backend keras --device cpu

Without CIFAR-10 on disk (or with ``--synthetic``) it trains on random images of the same shape:
the timing does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _common import machine_info, report

import featurelens as fl
from featurelens.atlas.snapshots import SnapshotRecorder


def load(train_images: int, val_images: int, synthetic: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    n = train_images + val_images
    if not synthetic:
        try:
            data = fl.load_cifar10(download=False, progress=False)
            return data.train_images[:n], data.train_labels[:n], "CIFAR-10"
        except fl.DataError as exc:
            print(f"no CIFAR-10 here ({exc}); using random images", file=sys.stderr)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), "random 32x32x3"


class EpochClock:
    """An epoch observer noting when each epoch (and whatever observers ran before it) ended."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def __call__(self, epoch: int, record: fl.EpochRecord, native: object) -> None:
        self.ends.append(time.perf_counter())

    def epoch_seconds(self) -> list[float]:
        """Seconds of epochs 2, 3, ...: the first one includes warm-up and the initial snapshot."""
        return [b - a for a, b in zip(self.ends, self.ends[1:])]


def run(x: np.ndarray, y: np.ndarray, args: argparse.Namespace, snapshots: bool, seed: int,
        epochs: int) -> tuple[list[float], fl.Model]:
    config = fl.TrainConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, early_stopping=None, reduce_lr=None,
                            validation_split=args.val_images / (args.train_images + args.val_images),
                            device=args.device, seed=seed, snapshot_every=1 if snapshots else 0)
    clock = EpochClock()
    model = fl.train(fl.get_preset("seed"), x, y, config, backend=args.backend, progress=False, observers=[clock])
    return clock.epoch_seconds(), model


def snapshot_seconds(model: fl.Model, x: np.ndarray, repeats: int = 10) -> tuple[float, float]:
    """Median seconds of one snapshot of ``model``, and the megabytes it takes."""
    config = fl.TrainConfig(epochs=repeats, snapshot_every=1, device="cpu")
    recorder = SnapshotRecorder.start(model.backend, model.native, config, model.input_shape,
                                      model.normalization.apply(x[:256]))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        filters, maps = recorder.capture(model.native)
        times.append(time.perf_counter() - start)
    size = sum(a.nbytes for a in (*filters.values(), *maps.values())) / 2**20
    return statistics.median(times), size


def machine(backend: str, device: str) -> dict:
    extra: dict = {"backend": backend}
    if backend == "torch":
        import torch

        extra.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available() and device.startswith("cuda"):
            extra["gpu"] = torch.cuda.get_device_name(0)
    else:
        import keras

        extra.update(keras=keras.__version__, keras_backend=keras.backend.backend())
    return machine_info(**extra)


def parse_args(doc: str | None, train_images: int = 5000, val_images: int = 1000,
               repeats: int = 4) -> argparse.Namespace:
    """The options of a side-by-side epoch-time benchmark (this one and bench_loggers.py)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-images", type=int, default=train_images)
    p.add_argument("--val-images", type=int, default=val_images)
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    p.add_argument("--repeats", type=int, default=repeats, help="runs of each side, alternating")
    p.add_argument("--synthetic", action="store_true", help="random images instead of CIFAR-10")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2: each run's first epoch is not timed")
    return args


def main() -> None:
    args = parse_args(__doc__)

    x, y, source = load(args.train_images, args.val_images, args.synthetic)
    sides = {"plain": False, "snapshots": True}
    for name, on in sides.items():  # warm-up: allocator, autotuning, tracing, lazy imports
        run(x, y, args, on, 99, 2)
        print(f"warm-up {name} done", file=sys.stderr, flush=True)
    epochs: dict[str, list[float]] = {"plain": [], "snapshots": []}
    model = None
    for r in range(args.repeats):
        order = ["plain", "snapshots"] if r % 2 == 0 else ["snapshots", "plain"]
        for name in order:
            seconds, trained = run(x, y, args, sides[name], r, args.epochs)
            epochs[name].extend(seconds)
            model = trained if name == "snapshots" else model
            print(f"repeat {r + 1} {name:<10} epochs {', '.join(f'{s:.2f}' for s in seconds)} s",
                  file=sys.stderr, flush=True)
    assert model is not None and model.snapshots is not None
    one_snapshot, snapshot_mb = snapshot_seconds(model, x)
    median = {k: statistics.median(v) for k, v in epochs.items()}
    slowdown = median["snapshots"] / median["plain"] - 1
    result = {
        "benchmark": "epoch time with and without training snapshots (every epoch, default probe), seed CNN",
        "backend": args.backend, "device": args.device, "data": source, "train_images": args.train_images,
        "val_images": args.val_images, "epochs_per_run": args.epochs, "repeats": args.repeats,
        "epoch_seconds": epochs, "median_epoch_seconds": median, "slowdown": slowdown, "target_slowdown": 0.05,
        "one_snapshot_seconds": one_snapshot, "one_snapshot_over_plain_epoch": one_snapshot / median["plain"],
        "snapshot_mb": snapshot_mb, "probe_images": len(model.snapshots.probe),
        "machine": machine(args.backend, args.device), "date": time.strftime("%Y-%m-%d"),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
