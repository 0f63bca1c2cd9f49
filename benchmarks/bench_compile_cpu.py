"""What ``torch.compile`` (inductor) gives featurelens's torch trainer on the CPU.

The seed CNN trains on CIFAR-sized images (random ones, or CIFAR-10 when FEATURELENS_DATA_DIR
holds it) with ``compile="off"`` and ``compile="on"`` side by side, alternating, fp32. Epoch time
comes from the History (compilation left out); compile time is reported separately. A compiled
run trains on full batches only (the last partial batch of each epoch is left out), so
throughput is images actually trained per second.

    python benchmarks/bench_compile_cpu.py --train-images 2000 --epochs 2 --repeats 1 \\
        --out benchmarks/results/compile-cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import torch
from _common import machine_info, report

import featurelens as fl


def images(n: int, m: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    if os.environ.get("FEATURELENS_DATA_DIR"):
        data = fl.load_cifar10(download=False, progress=False)
        norm = fl.Normalization.from_images(data.train_images[:n])
        return ((norm.apply(data.train_images[:n]), data.train_labels[:n]),
                (norm.apply(data.train_images[n:n + m]), data.train_labels[n:n + m]), "cifar10")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n + m, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, n + m)
    return (x[:n], y[:n]), (x[n:], y[n:]), "random"


def run(train, val, epochs: int, batch: int, compile: str, seed: int) -> dict:
    torch._dynamo.reset()  # every compiled run compiles afresh: its compile time is measured
    backend = fl.get_backend("torch")
    spec = fl.get_preset("seed")
    config = fl.TrainConfig(epochs=epochs, batch_size=batch, early_stopping=None, reduce_lr=None, device="cpu",
                            seed=seed, precision="fp32", compile=compile)
    net = backend.build(spec, seed=seed)
    history = backend.fit(net, spec, train, val, config, progress=False)
    trained = len(train[0]) - (len(train[0]) % batch if compile == "on" else 0)
    seconds = [r.seconds for r in history.epochs]
    return {"epoch_seconds": seconds, "compile_seconds": getattr(history, "compile_seconds", 0.0),
            "images_per_second": trained * len(seconds) / sum(seconds),
            "val_accuracy": history.epochs[-1].val_accuracy}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", help="write the results as JSON here (e.g. benchmarks/results/compile-cpu.json)")
    args = p.parse_args()

    train, val, source = images(args.train_images, args.val_images)
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for r in range(args.repeats):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            runs[mode].append(run(train, val, args.epochs, args.batch_size, mode, r))
            last = runs[mode][-1]
            print(f"repeat {r + 1} compile={mode:<3} {last['images_per_second']:.0f} img/s, "
                  f"compile {last['compile_seconds']:.1f} s", file=sys.stderr, flush=True)
    rate = {k: statistics.median(x["images_per_second"] for x in v) for k, v in runs.items()}
    report({
        "benchmark": "torch trainer on the CPU, compile off vs on (inductor), seed CNN, fp32, Adam",
        "data": source, "train_images": args.train_images, "val_images": args.val_images,
        "epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats,
        "runs": runs, "median_images_per_second": rate, "speedup_on_over_off": rate["on"] / rate["off"],
        "median_compile_seconds": statistics.median(x["compile_seconds"] for x in runs["on"]),
        "machine": machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads()),
    }, args.out)


if __name__ == "__main__":
    main()
