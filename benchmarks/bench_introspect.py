"""Introspection costs, measured side by side in one run.

1. Feature maps of every layer of the seed CNN for a batch of CIFAR-10 test images, via
   ``Model.feature_maps`` (normalization, one forward pass with hooks, canonical NHWC arrays)
   vs a bare ``net(x)`` forward pass of the same batch in eval mode without gradients.
   Target: at most 10% overhead.
2. Rendering a 128-channel layer's feature maps to PNG as one mosaic image
   (``feature_maps_figure``) vs the common one-axes-per-channel figure.

    FEATURELENS_DATA_DIR=... python benchmarks/bench_introspect.py --out results/introspect-cpu.json
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import torch
from _common import machine_info, report
from matplotlib.figure import Figure

import featurelens as fl
from featurelens import visualize as viz


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def alternate(a, b, repeats: int) -> tuple[list[float], list[float]]:
    a(), b()  # warm-up
    ta, tb = [], []
    for r in range(repeats):
        for fn, sink in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            sink.extend(timed(fn, 1))
    return ta, tb


def per_axes_figure(maps: np.ndarray) -> Figure:
    """The usual way: one subplot per channel."""
    c = maps.shape[-1]
    cols = int(np.ceil(np.sqrt(c)))
    fig = Figure(figsize=(11, 8))
    for i in range(c):
        ax = fig.add_subplot(int(np.ceil(c / cols)), cols, i + 1)
        ax.imshow(maps[..., i], cmap="viridis")
        ax.axis("off")
    return fig


def render(fig: Figure) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    args = p.parse_args()

    data = fl.load_cifar10(download=False, progress=False, test_per_class=max(1, args.batch // 10 + 1))
    images = data.test_images[:args.batch]
    spec = fl.get_preset("seed")
    norm = fl.Normalization.from_images(data.train_images[:5000])
    model = fl.build_model(spec, norm, data.class_names, backend="torch")
    net = model.native.to(args.device).eval()
    x = torch.from_numpy(norm.apply(images)).permute(0, 3, 1, 2).contiguous().to(args.device)

    def bare():
        with torch.no_grad():
            net(x)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def extract():
        maps = model.feature_maps(images)
        assert len(maps) == len(spec.layers())

    t_bare, t_maps = alternate(bare, extract, args.repeats)
    forward = {"bare_forward_s": statistics.median(t_bare), "feature_maps_all_layers_s": statistics.median(t_maps)}
    forward["overhead"] = forward["feature_maps_all_layers_s"] / forward["bare_forward_s"] - 1
    forward["layers"] = len(spec.layers())
    forward["megabytes_returned"] = sum(a.nbytes for a in model.feature_maps(images).values()) / 1e6
    if args.device.startswith("cuda"):  # the target's yardstick: one device-to-host copy of the same bytes
        total = int(forward["megabytes_returned"] * 1e6) // 4
        source = torch.empty(total, dtype=torch.float32, device=args.device)
        pinned = torch.empty(total, dtype=torch.float32, pin_memory=True)

        def one_copy():
            pinned.copy_(source, non_blocking=True)
            torch.cuda.synchronize()

        def one_pageable_copy():
            source.cpu()

        t_copy, t_maps2 = alternate(one_copy, extract, args.repeats)
        forward["single_pinned_copy_s"] = statistics.median(t_copy)
        forward["single_pageable_copy_s"] = statistics.median(timed(one_pageable_copy, args.repeats))
        forward["feature_maps_vs_single_copy"] = statistics.median(t_maps2) / forward["single_pinned_copy_s"]

    maps = model.feature_maps(images[:1], "block3_relu2")["block3_relu2"][0]
    t_axes, t_mosaic = alternate(lambda: render(per_axes_figure(maps)),
                                 lambda: render(viz.feature_maps_figure(maps, "block3_relu2")),
                                 max(3, args.repeats // 3))
    rendering = {"one_axes_per_channel_s": statistics.median(t_axes), "mosaic_s": statistics.median(t_mosaic),
                 "channels": int(maps.shape[-1])}
    rendering["speedup"] = rendering["one_axes_per_channel_s"] / rendering["mosaic_s"]

    result = {"feature_maps": forward, "rendering_128_channels": rendering, "batch": args.batch,
              "device": args.device, "repeats": args.repeats, "date": time.strftime("%Y-%m-%d"),
              "machine": machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads())}
    report(result, args.out)


if __name__ == "__main__":
    main()
