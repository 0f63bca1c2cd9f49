"""Data-parallel throughput on the CPU: 2 gloo processes (torchrun) beside 1 process, the seed CNN.

Both sides train the seed CNN with ``featurelens.train`` on the same images (Adam 1e-3, global batch
64, fp32, validation after every epoch, early stopping and LR reduction off): one process with
torch's default threads (one per core), and two processes launched by ``torchrun --standalone
--nproc-per-node 2`` (which gives each process one thread), DistributedDataParallel over gloo.
Images/s = training images / the median of the epochs' seconds (rank 0's History), the first
epoch of each run left out (warm-up). Runs alternate (one, two, two, one, ...). A record, no
target: on a 2-core CPU both sides use both cores, and DDP adds an all-reduce per step.

    FEATURELENS_DATA_DIR=/work/data python benchmarks/bench_ddp.py --train-images 4500 --val-images 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine_info, report
from bench_snapshots import load

import featurelens as fl


def worker(args: argparse.Namespace) -> None:
    """One training run (one of the processes under torchrun); rank 0 writes the epochs' seconds."""
    x, y, source = load(args.train_images, args.val_images, args.synthetic)
    config = fl.TrainConfig(epochs=args.epochs, batch_size=64, early_stopping=None, reduce_lr=None, device="cpu",
                            validation_split=args.val_images / (args.train_images + args.val_images))
    model = fl.train(fl.get_preset("seed"), x, y, config, backend="torch", progress=False)
    if fl.is_main_process():
        seconds = [r.seconds for r in model.history.epochs]
        Path(args.result).write_text(json.dumps({"seconds": seconds, "source": source}))


def run(args: argparse.Namespace, processes: int) -> tuple[list[float], str]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        own = [__file__, "--worker", "--result", str(result), "--train-images", str(args.train_images),
               "--val-images", str(args.val_images), "--epochs", str(args.epochs)] + (["--synthetic"] if args.synthetic
                                                                                      else [])
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)] \
            if processes > 1 else [sys.executable]
        subprocess.run([*launch, *own], check=True, env={**os.environ})
        data = json.loads(result.read_text())
    return data["seconds"][1:], data["source"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=4500)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    seconds: dict[int, list[float]] = {1: [], 2: []}
    source = ""
    for processes in ([1, 2, 2, 1] * args.pairs)[:2 * args.pairs]:
        timed, source = run(args, processes)
        seconds[processes].extend(timed)
    one, two = (args.train_images / statistics.median(seconds[n]) for n in (1, 2))
    import torch

    report({
        "benchmark": "DDP on the CPU: 2 gloo processes vs 1 process, seed CNN",
        "machine": machine_info(torch=torch.__version__, threads_single=torch.get_num_threads()),
        "data": f"{source}: {args.train_images} train + {args.val_images} validation images, global batch 64",
        "epoch_seconds": {"one_process": seconds[1], "two_processes": seconds[2]},
        "images_per_second": {"one_process": one, "two_processes": two},
        "ratio_two_over_one": two / one,
        "target": "none (a record)",
    }, args.out)


if __name__ == "__main__":
    main()
