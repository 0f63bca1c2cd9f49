"""``featurelens explore``: the explorer of a model folder, as a static site or served live.

Writes, atomically, to ``--out`` (default ``MODEL_DIR/explorer``) the site of
:func:`featurelens.explore.write_site`; open its ``index.html`` from disk or publish the folder.
``--serve`` serves it (reusing a site written for the same weights) on a local server where
users can drop their own images (:mod:`featurelens.explore.serve`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featurelens.errors import InputError

DEFAULT_PORT = 8000


def add_parser(sub: Any, add_data_args: Callable[[argparse.ArgumentParser], None]) -> None:
    from featurelens.explore.export import BUDGET_MB, DEFAULT_IMAGES, DEFAULT_STEPS, DEFAULT_TOP
    from featurelens.explore.records import DEFAULT_METHODS, METHODS

    p = sub.add_parser("explore", help="click through the model in the browser: a static site (or --serve, live)",
                       description="Write a self-contained static site (HTML, CSS, JavaScript, images; no server, "
                       "no CDN; opens from disk) to click through a model: pick a test image, see its prediction, "
                       "explanation maps and the feature maps of every layer, open a layer's channels and each "
                       "channel's atlas entry, the training history and the confusion matrix. The seed CNN's site "
                       f"of {DEFAULT_IMAGES} images takes about 22 MB and a few minutes on 2 CPU cores.")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N",
                   help=f"test images in the site, balanced over classes, half of them mistakes where there are "
                        f"enough (default {DEFAULT_IMAGES}; about 70 KB each for the seed CNN)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL_DIR/explorer)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), metavar="M1,M2",
                   help=f"explanation methods precomputed per image, from {', '.join(METHODS)} "
                        f"(default {','.join(DEFAULT_METHODS)}); '' for none")
    p.add_argument("--atlas-images", type=int, default=None, metavar="N",
                   help="test images streamed for each channel's top patches and statistics (default all)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="K",
                   help=f"top dataset patches per channel (default {DEFAULT_TOP})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="N",
                   help=f"feature-visualization steps per conv layer (default {DEFAULT_STEPS}; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and the feature visualization")
    p.add_argument("--max-mb", type=float, default=BUDGET_MB, metavar="MB",
                   help=f"size budget: refuse, after the first images, a site that would be larger (default "
                        f"{BUDGET_MB:g} MB); 0 for none")
    p.add_argument("--serve", action="store_true",
                   help="serve the site live on a local server where you can drop your own images (needs "
                        "pip install 'featurelens[serve]'); reuses --out when it was written for these weights")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_args(p)


def parse_methods(text: str) -> list[str]:
    """Method names from ``--methods`` (comma-separated, empty for none)."""
    from featurelens.explore.records import METHODS

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise InputError(f"--methods: unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of the folder's weights file: which weights a site was written for."""
    from featurelens.modeldir import WEIGHTS_FILE

    digest = hashlib.sha256()
    with open(model_dir / WEIGHTS_FILE, "rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def site_source(out: Path) -> dict[str, Any] | None:
    """The ``source`` recorded in an existing site's ``data/site.js`` (None without one)."""
    path = out / "data" / "site.js"
    if not path.is_file():
        return None
    match = re.search(r'"source":(\{[^{}]*\})', path.read_text(encoding="utf-8"))
    return json.loads(match.group(1)) if match else None


def _check(args: argparse.Namespace) -> None:
    for flag, value, low in (("--images", args.images, 1), ("--top", args.top, 1), ("--steps", args.steps, 0),
                             ("--atlas-images", args.atlas_images, 1), ("--port", args.port, 0)):
        if value is not None and value < low:
            raise InputError(f"{flag} must be at least {low}, got {value}")
    if args.max_mb < 0:
        raise InputError(f"--max-mb must be positive (0: no budget), got {args.max_mb}")


def cmd_explore(args: argparse.Namespace, load: Callable[..., Any]) -> int:
    """The command: ``load(args, model=model)`` gives the data as ``featurelens visualize`` loads it."""
    from featurelens.explore.export import write_site
    from featurelens.explore.records import make_plan
    from featurelens.model import load_model

    _check(args)
    methods = parse_methods(args.methods)
    if args.serve:
        from featurelens.explore.serve import flask_module

        flask_module()  # a missing extra fails before minutes of work
    model = load_model(args.model_dir)
    out = args.out or args.model_dir / "explorer"
    source = {"model_dir": str(args.model_dir.resolve()), "weights_sha256": weights_digest(args.model_dir),
              "methods": methods}
    existing = site_source(out)
    if not (args.serve and existing == source):
        data, _ = load(args, model=model)
        summary = write_site(model, data, out, images=args.images, methods=methods, atlas_images=args.atlas_images,
                             top=args.top, steps=args.steps, seed=args.seed, budget_mb=args.max_mb or None,
                             source=source, progress=not args.no_progress)
        for note in summary.notes:
            print(f"note: {note}")
        print(f"Wrote the explorer of {args.model_dir} ({summary.images} test images, {summary.megabytes:.1f} MB, "
              f"{summary.seconds['total']:.0f} s) to {out}; open {out / 'index.html'}")
    else:
        print(f"Serving the explorer already in {out} (written for these weights)")
    if args.serve:
        from featurelens.explore.serve import serve

        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: serving on {args.host}: other machines on the network can reach this server")
        serve(model, out, make_plan(model, methods), host=args.host, port=args.port)
    return 0
