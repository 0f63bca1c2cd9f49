"""featurelens's PyTorch trainer vs a hand-written PyTorch loop: same model, same data, one run.

Both train the seed CNN (552,874 parameters) with Adam 1e-3, batch 64, fp32, on the same
normalized CIFAR-10 images, evaluating on the same validation images after every epoch. Runs
alternate (hand, featurelens, featurelens, hand, ...) after one untimed warm-up of each, and the
median throughput of each side is compared. Throughput is training images per second of wall
time for the whole call (data transfer to the device, epochs and validation included).

    FEATURELENS_DATA_DIR=... python benchmarks/bench_trainer.py --device cpu --train-images 5000

``--precision`` and ``--compile`` set featurelens's fast path (default ``fp32``/``off``: the
like-for-like comparison above); e.g. on a GPU ``--precision auto --compile auto`` measures the
bf16 + channels_last + compiled step against the fp32 hand loop. A compiled run's compilation is
timed separately (``compile_seconds``) and left out of its throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from _common import machine_info, report
from torch import nn

import featurelens as fl


class HandWrittenCNN(nn.Module):
    """The seed CNN as a PyTorch user would write it by hand."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, drop: float) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(drop))

        self.features = nn.Sequential(block(3, 32, 0.2), block(32, 64, 0.3), block(64, 128, 0.4))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2048, 128), nn.BatchNorm1d(128), nn.ReLU(),
                                        nn.Dropout(0.5), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def hand_loop(train, val, epochs: int, device: torch.device, seed: int, batch_size: int = 64) -> float:
    """A plain, competent hand-written loop; returns wall seconds."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = HandWrittenCNN().to(device)
    x = torch.from_numpy(train[0]).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(train[1]).to(device)
    vx = torch.from_numpy(val[0]).permute(0, 3, 1, 2).contiguous().to(device)
    vy = torch.from_numpy(val[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(vx[i:i + 512]), vy[i:i + 512], reduction="sum")
                           for i in range(0, len(vx), 512)) / len(vx)
        float(val_loss)  # what a user prints each epoch
    sync(device)
    return time.perf_counter() - start


def featurelens_fit(train, val, epochs: int, device: torch.device, seed: int, progress: bool,
                    precision: str = "fp32", compile: str = "off", batch_size: int = 64,
                    compile_times: list[float] | None = None) -> float:
    """Wall seconds of build + fit, less the compilation time of a compiled step."""
    backend = fl.get_backend("torch")
    spec = fl.get_preset("seed")
    config = fl.TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=1e-3, early_stopping=None,
                            reduce_lr=None, device=str(device), seed=seed, precision=precision, compile=compile)
    if compile != "off":
        torch._dynamo.reset()  # each run compiles afresh (and stays under dynamo's recompile limit)
    start = time.perf_counter()
    net = backend.build(spec, seed=seed)
    history = backend.fit(net, spec, train, val, config, progress=progress)
    sync(device)
    compiling = history.compile_seconds
    if compile_times is not None:
        compile_times.append(compiling)
    return time.perf_counter() - start - compiling


def machine(device: torch.device) -> dict:
    gpu = {"gpu": torch.cuda.get_device_name(0)} if device.type == "cuda" else {}
    return machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(), **gpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-progress", action="store_true", help="featurelens without its progress bar")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"), help="featurelens's precision")
    p.add_argument("--compile", default="off", choices=("auto", "on", "off"), help="featurelens's compiled step")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    device = torch.device(args.device)
    # featurelens turns cuDNN autotuning on for its fit; give the hand-written loop the same.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    data = fl.load_cifar10(download=False, progress=False)
    n, m = args.train_images, args.val_images
    norm = fl.Normalization.from_images(data.train_images[:n])
    train = (norm.apply(data.train_images[:n]), data.train_labels[:n])
    val = (norm.apply(data.train_images[n:n + m]), data.train_labels[n:n + m])
    progress = not args.no_progress
    compile_times: list[float] = []
    bs = args.batch_size
    sides = {"hand": lambda s: hand_loop(train, val, args.epochs, device, s, bs),
             "featurelens": lambda s: featurelens_fit(train, val, args.epochs, device, s, progress, args.precision,
                                                      args.compile, bs, compile_times)}
    for side in sides.values():  # warm-up: allocator, cuDNN autotuning, lazy imports
        side(99)
    times: dict[str, list[float]] = {"hand": [], "featurelens": []}
    for r in range(args.repeats):
        order = ["hand", "featurelens"] if r % 2 == 0 else ["featurelens", "hand"]
        for name in order:
            times[name].append(sides[name](r))
            print(f"repeat {r + 1} {name:<12} {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    images = n * args.epochs
    rate = {k: images / statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": f"trainer throughput, seed CNN, batch {bs}, Adam; hand loop fp32 eager",
        "featurelens_precision": args.precision, "featurelens_compile": args.compile,
        "compile_seconds": compile_times, "batch_size": bs,
        "device": str(device), "train_images": n, "val_images": m, "epochs": args.epochs,
        "repeats": args.repeats, "featurelens_progress_bar": progress,
        "seconds": times, "images_per_second": rate,
        "ratio_featurelens_over_hand": rate["featurelens"] / rate["hand"],
        "machine": machine(device), "date": time.strftime("%Y-%m-%d"),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
