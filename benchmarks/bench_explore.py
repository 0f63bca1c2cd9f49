"""The explorer: how long ``featurelens explore`` takes for its default sample, how big the site is,
and how fast the page opens from disk in Chromium (issue 14).

1. Generation: :func:`featurelens.explore.write_site` with the command's defaults (300 test images,
   Grad-CAM, saliency, SmoothGrad and Integrated Gradients per image, the atlas of every conv layer
   over the 10,000 test images with 128 feature-visualization steps), seconds per stage.
2. Size: the whole site, the images (sheet + record per image) and the atlas, against the 30 MB budget.
3. Opening: the page loaded from ``file://`` in headless Chromium (Playwright) until its first image
   is drawn, median of ``--opens``; and opening one channel's atlas entry.

The model is a trained model folder (``--model``); without one, the seed CNN is trained as the
gallery trains it (1,000 images per class, 8 epochs, seed 0) into ``--cache``.

    python benchmarks/bench_explore.py --model runs/seed-torch --out benchmarks/results/explore-cpu.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine_info, report

import featurelens as fl
from featurelens.explore import write_site
from featurelens.explore.export import BUDGET_MB, DEFAULT_IMAGES, DEFAULT_STEPS


def trained_seed(cache: Path) -> Path:
    folder = cache / "seed-torch"
    if not (folder / "featurelens.json").is_file():
        data = fl.load_cifar10(train_per_class=1000, download=False, progress=False)
        model = fl.train(fl.get_preset("seed"), data.train_images, data.train_labels,
                         fl.TrainConfig(epochs=8, seed=0), backend="torch", class_names=data.class_names,
                         progress=False)
        model.save(folder, overwrite=True)
    return folder


def megabytes(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths) / 2**20, 2)


def open_times(site: Path, opens: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    first, channel = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(opens):
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                started = time.perf_counter()
                page.goto((site / "index.html").as_uri())
                page.wait_for_selector("body[data-ready]", timeout=30_000)
                first.append(time.perf_counter() - started)
                page.click(".card[data-layer='block3_relu2']")
                started = time.perf_counter()
                page.click("#channels .channel.best")
                page.wait_for_selector("body[data-channel-ready]", timeout=30_000)
                channel.append(time.perf_counter() - started)
                page.close()
        finally:
            browser.close()
    return {"first_image_median_s": round(statistics.median(first), 3),
            "first_image_all_s": [round(t, 3) for t in first],
            "channel_atlas_median_s": round(statistics.median(channel), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained model folder (default: train the gallery's seed CNN)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "featurelens-bench-explore")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--opens", type=int, default=5)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    model_dir = args.model or trained_seed(args.cache)
    model = fl.load_model(model_dir)
    data = fl.load_cifar10(train_per_class=500, download=False, progress=False)
    site = args.cache / "site"
    load_before = os.getloadavg()
    started = time.perf_counter()
    summary = write_site(model, data, site, images=args.images, steps=args.steps, progress=False)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    images = sorted((site / "data" / "images").iterdir())
    atlas = sorted((site / "data" / "atlas").iterdir())
    result = {
        "benchmark": "explorer generation, size and opening (issue 14)",
        "machine": machine_info(torch=__import__("torch").__version__,
                                load_average_before=[round(v, 2) for v in load_before],
                                load_average_after=[round(v, 2) for v in load_after],
                                note="load averages include this benchmark's own work (about 2 on 2 cores)"),
        "model": {"folder": str(model_dir), "name": model.name, "parameters": sum(i.params for i in model.layers())},
        "settings": {"images": args.images, "steps": args.steps, "atlas_images": len(data.test_images),
                     "methods": ["gradcam", "saliency", "smoothgrad", "integrated_gradients"]},
        "generation_s": round(seconds, 1), "stages_s": {k: round(v, 1) for k, v in summary.seconds.items()},
        "size_mb": {"total": round(summary.megabytes, 2), "budget": BUDGET_MB, "images": megabytes(images),
                    "per_image_kb": round(megabytes(images) * 1024 / summary.images, 1), "atlas": megabytes(atlas),
                    "sheets_webp": megabytes([p for p in images if p.suffix == ".webp"]),
                    "records_js": megabytes([p for p in images if p.suffix == ".js"])},
        "open": open_times(site, args.opens),
        "notes": summary.notes,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
