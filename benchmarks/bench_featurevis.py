"""Feature visualization speed and images, featurelens beside lucent, on one torch model (issue 11).

1. ``featurelens.atlas.featurevis.feature_visualization`` of ``--channels`` channels (default all
   128) of ``--layer`` (default ``block3_conv2``) of the seed CNN, ``--steps`` steps (default 256)
   in one batched optimization, on the CPU (target: at most 60 s on 2 cores), colour statistics
   from CIFAR-10 training images;
2. lucent (``torch-lucent``) rendering the same channels of the same objective (the mean of each
   channel of the layer featurelens maximizes: the batch norm after the conv) as one batch (its
   ``objectives.channel(layer, i, batch=i)`` summed), with its defaults (Fourier parameterization,
   ImageNet colour decorrelation, Adam at 0.05, its standard transforms: pad 12, jitter 8, scale,
   rotate, jitter 4) at 32 px (``fixed_image_size=32`` instead of its upsampling to 224), our
   normalization as the preprocessing, the same number of steps;
3. for both image sets: how far each image drives its own channel, and the issue's must-hold
   check (the fraction of channels activated more by their own image than by the average of the
   other channels' images), measured without transforms;
4. a PNG with both sets side by side (``--png``), for looking at them.

Lucent is a development tool here, never a featurelens dependency (``pip install --no-deps
torch-lucent decorator "kornia<0.7"``). It imports torchvision (its ImageNet ``Normalize``, unused
here) and IPython (notebook display, unused); on this CPU build of torch torchvision's wheel does
not load, so :func:`import_lucent` puts stub modules in ``sys.modules`` for what is missing or
broken (the stubs raise if called; the names looked up are reported), and gives the kornia
functions lucent calls by their old top-level names (``kornia.warp_affine``...) those names. If it
still does not import, the comparison is skipped with the reason.

The model: ``--model`` (a saved seed-CNN folder) or the seed CNN trained here on
``--train-images`` CIFAR-10 images for ``--epochs`` (check_explain_peers.setup). The machine may
be shared: the load average before and after is recorded.

    python benchmarks/bench_featurevis.py --model runs/seed-torch --png benchmarks/results/featurevis-cpu.png \\
        --out benchmarks/results/featurevis-cpu.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import time

import numpy as np
import torch
from _common import machine_info, report
from bench_explain import load
from check_explain_peers import REPO, _stub, _usable, setup, stubbed_names_used

import featurelens as fl
from featurelens.atlas.featurevis import feature_visualization
from featurelens.data import find_cifar10


def import_lucent() -> tuple[dict[str, object] | None, dict]:
    """lucent's ``render``, ``param``, ``objectives`` and ``transform`` modules (or None), and the shims."""
    shims: dict = {}
    if importlib.util.find_spec("lucent") is None:
        return None, {"skipped": "torch-lucent is not installed (pip install --no-deps torch-lucent decorator "
                                 "'kornia<0.7')"}
    for name in ("decorator", "kornia"):
        why = _usable(name)
        if why:
            return None, {"skipped": f"lucent needs {name}, which {why} (pip install --no-deps {name})"}
    import kornia
    from kornia.geometry import transform as kt

    for old in ("get_rotation_matrix2d", "warp_affine"):
        if not hasattr(kornia, old):
            setattr(kornia, old, getattr(kt, old))
            shims[f"kornia.{old}"] = f"alias of kornia.geometry.transform.{old} (kornia {kornia.__version__})"
    why = _usable("torchvision")
    if why:
        _stub("torchvision", "torchvision.transforms")
        shims["torchvision"] = f"stubbed ({why}); lucent's ImageNet Normalize is not used (preprocess=False)"
    why = _usable("IPython")
    if why:
        _stub("IPython", "IPython.display")
        shims["IPython"] = f"stubbed ({why}); notebook display only"
    try:
        modules = {name: importlib.import_module(f"lucent.optvis.{name}")
                   for name in ("render", "param", "objectives", "transform")}
    except Exception as exc:  # noqa: BLE001 - a peer that does not import is reported, not fatal
        return None, {"skipped": f"lucent does not import: {type(exc).__name__}: {exc}", **shims}
    shims["version"] = importlib.metadata.version("torch-lucent")
    return modules, shims


def lucent_render(lucent: dict[str, object], model: fl.Model, layer: str, channels: np.ndarray,
                  steps: int) -> np.ndarray:
    """Lucent's images (K, 32, 32, 3) in [0, 1] for ``channels`` of ``layer``, one batch."""
    render, param, objectives, transform = (lucent[k] for k in ("render", "param", "objectives", "transform"))
    mean = torch.tensor(model.normalization.mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(model.normalization.std, dtype=torch.float32)[None, :, None, None]

    def normalize(image: torch.Tensor) -> torch.Tensor:  # lucent's images are [0, 1]; ours are 0-255
        return (image * 255.0 - mean) / std

    objective = None
    for i, channel in enumerate(channels):
        term = objectives.channel(layer, int(channel), batch=i)  # type: ignore[attr-defined]
        objective = term if objective is None else objective + term
    h, w, _ = model.input_shape
    torch.manual_seed(0)
    np.random.seed(0)
    net = model.native.eval()
    images = render.render_vis(  # type: ignore[attr-defined]
        net, objective, lambda: param.image(w, h=h, batch=len(channels)),  # type: ignore[attr-defined]
        transforms=[*transform.standard_transforms, normalize],  # type: ignore[attr-defined]
        thresholds=(steps,), preprocess=False, progress=False, show_image=False, fixed_image_size=h)
    for p in net.parameters():
        p.grad = None
    return np.asarray(images[-1], np.float32)


def selectivity(model: fl.Model, images: np.ndarray, layer: str, channels: np.ndarray) -> dict:
    """How much each image excites its own channel, and the issue's must-hold fraction."""
    means = model.feature_maps(np.clip(images, 0, 1) * 255.0, layer)[layer].mean(axis=(1, 2))
    k = len(channels)
    own = means[np.arange(k), channels]
    others = (means[:, channels].sum(axis=0) - own) / max(k - 1, 1)
    return {"own_channel_mean_activation_median": float(np.median(own)),
            "others_images_mean_activation_median": float(np.median(others)),
            "fraction_own_image_beats_others_average": float(np.mean(own > others)),
            "image_std_median": float(np.median(images.reshape(k, -1).std(axis=1)))}


def mosaic(images: np.ndarray, cols: int, gap: int = 2) -> np.ndarray:
    k, h, w, c = images.shape
    rows = -(-k // cols)
    canvas = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), np.float32)
    for i, image in enumerate(np.clip(images, 0, 1)):
        r, q = divmod(i, cols)
        canvas[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = image if c == 3 else image[..., :1]
    return canvas


def save_png(path: str, panels: list[tuple[str, np.ndarray]], cols: int, zoom: int = 3) -> None:
    from PIL import Image, ImageDraw

    tiles = [mosaic(images, cols) for _, images in panels]
    height = max(t.shape[0] for t in tiles) * zoom + 20
    width = sum(t.shape[1] * zoom + 20 for t in tiles)
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    x = 0
    for (title, _), tile in zip(panels, tiles):
        image = Image.fromarray((tile * 255).round().astype(np.uint8))
        out.paste(image.resize((tile.shape[1] * zoom, tile.shape[0] * zoom), Image.NEAREST), (x, 20))
        draw.text((x + 2, 4), title, fill="black")
        x += tile.shape[1] * zoom + 20
    out.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a saved seed-CNN model folder (else one is trained here)")
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--layer", default="block3_conv2")
    p.add_argument("--channels", type=int, default=128, help="the first N channels of the layer")
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--colour-images", type=int, default=5000, help="CIFAR-10 training images for the colours")
    p.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own choice)")
    p.add_argument("--no-lucent", action="store_true")
    p.add_argument("--png", help="write both image sets side by side here")
    p.add_argument("--out")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    before = load()
    if args.model:
        model = fl.load_model(args.model, backend="torch")
        about = {"model": f"loaded from {args.model}"}
    else:
        model, _, about = setup(10, args.train_images, args.epochs)
    folder = find_cifar10(REPO / ".data") or find_cifar10()
    colour = None
    if folder is not None:
        colour = fl.load_cifar10(folder.parent, download=False, progress=False).train_images[:args.colour_images]
        about["colour"] = f"estimated from {len(colour)} CIFAR-10 training images"
    else:
        about["colour"] = "identity (no CIFAR-10 copy found)"
    channels = np.arange(args.channels)
    result: dict = {**about, "layer": args.layer, "channels": args.channels, "steps": args.steps,
                    "batch_size": args.batch_size, "load_before": before}

    start = time.perf_counter()
    ours = feature_visualization(model, args.layer, channels, steps=args.steps, batch_size=args.batch_size,
                                 colour=colour, progress=False)
    seconds = time.perf_counter() - start
    target = ours.objective_layer or args.layer
    result["featurelens"] = {"seconds": seconds, "steps_per_s": args.steps / seconds, "objective_layer": target,
                             "settings": {k: v for k, v in ours.settings.items() if k != "colour_matrix"},
                             **selectivity(model, ours.images, target, channels)}
    print(f"featurelens: {seconds:.1f} s for {args.channels} channels x {args.steps} steps")
    panels = [(f"featurelens {args.layer} ({seconds:.0f} s)", ours.images)]

    lucent, shims = (None, {"skipped": "--no-lucent"}) if args.no_lucent else import_lucent()
    if lucent is None:
        print(f"SKIP the lucent comparison: {shims['skipped']}")
        result["lucent"] = shims
    else:
        start = time.perf_counter()
        theirs = lucent_render(lucent, model, target, channels, args.steps)
        peer_seconds = time.perf_counter() - start
        shims["stubbed_names_looked_up"] = stubbed_names_used()
        result["lucent"] = {"imports": shims, "seconds": peer_seconds, "steps_per_s": args.steps / peer_seconds,
                            "settings": "defaults (standard_transforms, Adam 0.05, fft + ImageNet decorrelation), "
                                        "fixed_image_size=32, our normalization as preprocessing",
                            **selectivity(model, theirs, target, channels)}
        result["speed_ratio_featurelens_over_lucent"] = peer_seconds / seconds
        print(f"lucent: {peer_seconds:.1f} s")
        panels.append((f"lucent {target}, defaults at 32 px ({peer_seconds:.0f} s)", theirs))
    if args.png:
        save_png(args.png, panels, cols=max(4, int(np.ceil(np.sqrt(args.channels)))))
        result["png"] = args.png
    result["load_after"] = load()
    result["machine"] = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                                     numpy=np.__version__)
    report(result, args.out)


if __name__ == "__main__":
    main()
