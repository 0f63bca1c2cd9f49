"""``featurelens atlas``: what each channel of a model folder's conv layers detects.

Writes, atomically, to ``--out`` (default ``MODEL_DIR/atlas``), per layer: the atlas figure in pages
of :data:`PAGE` channels (kernel, feature visualization, top dataset patches, mean activation per
class), the top images of its most class-selective channels with the patch outlined, and every
array as ``LAYER.npz``; plus ``summary.json`` (dead channels, receptive fields, most selective
channels, timings).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from featurelens._atomic import atomic_dir, write_json
from featurelens.errors import InputError

PAGE = 32
IN_CONTEXT = 3
DPI = 100
SPLITS = ("test", "train")


def add_parser(sub: Any, add_data_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("atlas", help="what each channel detects: top dataset patches with receptive fields, "
                       "feature visualization, statistics")
    p.add_argument("model_dir", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--layer", action="append", metavar="NAME",
                       help="a conv layer (repeat for several; default: each block's last conv layer)")
    which.add_argument("--all", action="store_true", help="every conv layer")
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="stream the test images (default) or the training images for the dataset examples")
    p.add_argument("--images", type=int, metavar="N", help="only the first N images of the split (default all)")
    p.add_argument("--top", type=int, default=9, metavar="K", help="dataset examples per channel (default 9)")
    p.add_argument("--steps", type=int, default=256, metavar="N",
                   help="feature-visualization steps per layer (default 256; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the feature visualization")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL_DIR/atlas)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_args(p)


MAX_TOP = 256
MAX_STEPS = 100_000
MAX_SEED = 2**32 - 1


def _check(args: argparse.Namespace) -> None:
    for flag, value, low, high in (("--top", args.top, 1, MAX_TOP), ("--steps", args.steps, 0, MAX_STEPS),
                                   ("--images", args.images, 1, None), ("--seed", args.seed, 0, MAX_SEED)):
        if value is not None and (value < low or (high is not None and value > high)):
            bound = f"from {low} to {high:,}" if high is not None else f"at least {low}"
            raise InputError(f"{flag} must be {bound}, got {value}")


def _most_selective(selectivity: np.ndarray | None, dead: np.ndarray, count: int) -> list[int]:
    if selectivity is None:
        return []
    order = [int(c) for c in np.argsort(-selectivity) if not dead[c]]
    return order[:count]


def cmd_atlas(args: argparse.Namespace, load: Callable[..., Any]) -> int:
    """The command: ``load(args, model=model)`` gives the data as ``featurelens visualize`` loads it."""
    from featurelens.atlas.channels import channel_atlas, default_atlas_layers
    from featurelens.model import load_model
    from featurelens.visualize.atlas import examples_in_context_figure

    _check(args)
    model = load_model(args.model_dir)
    conv = model.conv_layers()
    if args.all:
        layers = conv
    elif args.layer:
        layers = list(dict.fromkeys(args.layer))
        unknown = [name for name in layers if name not in conv]
        if unknown:
            raise InputError(f"--layer {unknown[0]!r} is not a conv layer of the model; its conv layers: "
                             f"{', '.join(conv)}")
    else:
        layers = default_atlas_layers(model)
    data, _ = load(args, model=model)
    images, labels = ((data.test_images, data.test_labels) if args.split == "test"
                      else (data.train_images, data.train_labels))
    if args.images is not None:
        images, labels = images[:args.images], labels[:args.images]
    if not len(images):
        raise InputError(f"the {args.split} split of the data is empty; choose --split "
                         f"{'train' if args.split == 'test' else 'test'}")
    class_names = tuple(model.class_names or data.class_names)
    colour = data.train_images[:5000] if len(data.train_images) else images[:5000]
    out = args.out or args.model_dir / "atlas"
    started = time.perf_counter()
    atlases = channel_atlas(model, images, layers, labels=labels, top=args.top, steps=args.steps,
                            colour_images=colour, seed=args.seed, progress=not args.no_progress)
    summary: dict[str, Any] = {"model": str(args.model_dir), "split": args.split, "images": len(images),
                               "top": args.top, "steps": args.steps, "seed": args.seed, "layers": {},
                               "seconds": round(time.perf_counter() - started, 2)}
    with atomic_dir(out, overwrite=True) as tmp:
        for name, atlas in atlases.items():
            files = []
            for page, start in enumerate(range(0, atlas.channels, PAGE), start=1):
                channels = range(start, min(start + PAGE, atlas.channels))
                stem = f"{name}_atlas" + (f"_{page}" if atlas.channels > PAGE else "")
                atlas.figure(channels, title=f"What each channel of {name} detects: channels {channels.start}-"
                             f"{channels.stop - 1} of {atlas.channels}").savefig(tmp / f"{stem}.png", dpi=DPI)
                files.append(f"{stem}.png")
            examples = atlas.examples
            boxes = examples.boxes if examples.boxes is not None else np.zeros((0, 0, 4), np.int64)
            for c in (_most_selective(examples.stats.selectivity, examples.stats.dead, IN_CONTEXT)
                      if examples.boxes is not None else []):
                keep = examples.indices[c] >= 0
                idx = examples.indices[c][keep]
                titles = [class_names[int(labels[i])] for i in idx]
                examples_in_context_figure(images[idx], boxes[c][keep], examples.values[c][keep], titles,
                                           channel=c, layer=name).savefig(tmp / f"{name}_channel{c}.png", dpi=DPI)
                files.append(f"{name}_channel{c}.png")
            np.savez_compressed(tmp / f"{name}.npz", **atlas.to_arrays())  # type: ignore[arg-type]
            summary["layers"][name] = {**atlas.summary(), "figures": files, "arrays": f"{name}.npz"}
        write_json(tmp / "summary.json", summary)
    for name, entry in summary["layers"].items():
        dead = entry["dead_channels"]
        print(f"{name}: {entry['channels']} channels read at {entry['measured_at']}"
              + (f", {len(dead)} dead ({', '.join(map(str, dead[:10]))})" if dead else ", none dead"))
    print(f"Wrote the channel atlas of {', '.join(atlases)} ({len(images)} {args.split} images, "
          f"{summary['seconds']:.0f} s) to {out}")
    return 0
