"""Dataset examples: time and memory against a bare forward pass, side by side in one run (issue 11).

1. Time: ``featurelens.atlas.dataset_examples`` for every conv layer of the seed CNN (read at
   their ReLUs, top 9, with per-class statistics) over ``--images`` CIFAR-10 test images, against a
   bare forward pass over the same images in the same batches (normalize, make a tensor,
   ``net(x)`` under ``no_grad``). Alternating runs after a warm-up, median of ``--repeats``;
   target: dataset examples <= 1.3x the bare pass.
2. A cProfile of one examples pass (slower under the profiler): the functions with the most own time.
3. Peak extra memory: in a fresh child process per case, the resident-set high-water mark
   (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident size just before the
   call, for the bare pass and for dataset examples, over the test images and over the 50,000
   training images; target: under 100 MB, whatever the number of images. Each case runs twice:
   with glibc's malloc as it comes, and with its mmap threshold fixed at 128 KiB
   (``MALLOC_MMAP_THRESHOLD_``). By default glibc raises that threshold when a large block is
   freed (the child frees the CIFAR-10 arrays it does not use), after which the forward pass's
   multi-megabyte maps come from the heap, whose top is not always given back: the resident size
   then settles tens of MB higher within the first hundred batches, bare pass or not, by chance
   of layout. The fixed threshold measures what the code itself holds.

    python benchmarks/bench_atlas.py --out benchmarks/results/atlas-cpu.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine_info, report
from bench_introspect import alternate

import featurelens as fl
from featurelens.atlas.examples import dataset_examples


def setup(train: bool, count: int | None) -> tuple[fl.SpecModel, np.ndarray, np.ndarray]:
    data = fl.load_cifar10(download=False, progress=False)
    images, labels = (data.train_images, data.train_labels) if train else (data.test_images, data.test_labels)
    if count is not None:
        images, labels = images[:count], labels[:count]
    norm = fl.Normalization.from_images(data.train_images[:5000])
    model = fl.build_model(fl.get_preset("seed"), norm, data.class_names, backend="torch")
    return model, images, labels


def bare_pass(model: fl.SpecModel, images: np.ndarray, batch: int) -> None:
    net = model.native.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(model.normalization.apply(images[start:start + batch])).permute(0, 3, 1, 2)
            net(x.contiguous())


def examples(model: fl.SpecModel, images: np.ndarray, labels: np.ndarray, batch: int) -> None:
    dataset_examples(model, images, top=9, labels=labels, batch_size=batch)


def profile(model: fl.SpecModel, images: np.ndarray, labels: np.ndarray, batch: int, top: int = 15) -> dict:
    """Where one examples pass spends its time (cProfile, which slows it down): the functions with the
    most time of their own."""
    profiler = cProfile.Profile()
    profiler.runcall(examples, model, images, labels, batch)
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]  # type: ignore[attr-defined]
    return {"total_s": stats.total_tt,  # type: ignore[attr-defined]
            "own_time_s": {f"{Path(file).name}:{line}({name})": round(tt, 3)
                           for (file, line, name), (_, _, tt, _, _) in rows}}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(case: str, train: bool, batch: int) -> None:
    """One measurement in this (fresh) process: print the peak resident memory above the start."""
    model, images, labels = setup(train, None)
    bare_pass(model, images[:batch], batch)  # warm-up: allocator pools, one-time imports
    examples(model, images[:batch], labels[:batch], batch)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    before = _status("VmRSS")
    start = time.perf_counter()
    if case == "bare":
        bare_pass(model, images, batch)
    else:
        examples(model, images, labels, batch)
    print(json.dumps({"case": case, "train": train, "images": len(images), "seconds": time.perf_counter() - start,
                      "peak_extra_mb": (_status("VmHWM") - before) / 1e6}))


FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def memory(batch: int) -> list[dict]:
    rows = []
    for malloc, extra_env in (("glibc default", {}), ("mmap threshold fixed", FIXED_MMAP_THRESHOLD)):
        for train in (False, True):
            for case in ("bare", "examples"):
                out = subprocess.run([sys.executable, __file__, "--child", case, "--batch", str(batch)]
                                     + (["--train"] if train else []), capture_output=True, text=True, check=True,
                                     env={**os.environ, **extra_env})
                rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "malloc": malloc})
                print(rows[-1], file=sys.stderr)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--out")
    p.add_argument("--child", choices=("bare", "examples"), help=argparse.SUPPRESS)
    p.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.train, args.batch)
        return

    model, images, labels = setup(False, args.images)
    bare_pass(model, images[:args.batch], args.batch)
    examples(model, images[:args.batch], labels[:args.batch], args.batch)
    t_bare, t_examples = alternate(lambda: bare_pass(model, images, args.batch),
                                   lambda: examples(model, images, labels, args.batch), args.repeats)
    timing = {"bare_forward_s": statistics.median(t_bare), "dataset_examples_s": statistics.median(t_examples),
              "bare_runs_s": t_bare, "examples_runs_s": t_examples}
    timing["ratio"] = timing["dataset_examples_s"] / timing["bare_forward_s"]
    # Each examples run against the bare run of the same round (adjacent): less exposed to drifts.
    timing["pair_ratios"] = [e / b for b, e in zip(t_bare, t_examples)]
    timing["median_pair_ratio"] = statistics.median(timing["pair_ratios"])
    result = {"what": "dataset examples of every conv layer of the seed CNN (read at their ReLUs, top 9, "
                      "per-class statistics) vs a bare forward pass, CIFAR-10 test images",
              "images": len(images), "batch": args.batch, "repeats": args.repeats, "timing": timing,
              "memory": None if args.no_memory else memory(args.batch),
              "profile": profile(model, images, labels, args.batch),
              "machine": machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                                      numpy=np.__version__)}
    report(result, args.out)


if __name__ == "__main__":
    main()
