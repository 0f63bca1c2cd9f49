"""Each conv layer's channel atlas as the page reads it: numbers as JSON, pictures as RGB sheets.

Built on :func:`featurelens.atlas.channel_atlas` (dataset examples, statistics, kernels) and
:func:`featurelens.atlas.feature_visualization`, run here layer by layer so the explorer's progress
bar moves, with the colour correlation estimated once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib import colormaps

from featurelens.atlas.channels import ChannelAtlas, channel_atlas
from featurelens.atlas.featurevis import feature_visualization
from featurelens.atlas.param import colour_matrix
from featurelens.explore.records import rounded
from featurelens.explore.sprites import colour_sheet
from featurelens.model import Model
from featurelens.visualize.mosaic import scale_each

SHEET_COLS = 16


def compute_atlases(model: Model, images: np.ndarray, labels: np.ndarray, layers: list[str], *, top: int,
                    steps: int, colour: np.ndarray | None, seed: int,
                    advance: Callable[[int], object]) -> dict[str, ChannelAtlas]:
    """The atlas of ``layers`` over ``images``; ``advance(n)`` is called as each layer's ``n``
    channels are optimized (one batch per layer: splitting it was several times slower)."""
    atlases = channel_atlas(model, images, layers, labels=labels, top=top, steps=0)
    advance(1)
    if not steps:
        return atlases
    matrix = colour_matrix(colour if colour is not None else images, model.input_shape[2])
    for name, atlas in atlases.items():
        vis = feature_visualization(model, name, steps=steps, seed=seed, colour=matrix,
                                    batch_size=max(128, atlas.channels), progress=False)
        atlas.feature_vis, atlas.feature_vis_layer = vis.images, vis.objective_layer
        atlas.feature_vis_activation = vis.activations
        advance(atlas.channels)
    return atlases


def kernel_tiles(kernels: np.ndarray) -> np.ndarray:
    """(C, kh, kw, 3) in [0, 1]: colour kernels as images (3 inputs), else their mean over inputs
    on a blue-white-red scale (as the atlas figure draws them)."""
    if kernels.shape[-1] == 3:
        return scale_each(kernels)
    mean = kernels.mean(axis=-1)
    top = np.abs(mean).reshape(len(mean), -1).max(axis=1)
    scaled = mean / np.where(top > 0, top, 1.0)[:, None, None]
    return colormaps["RdBu_r"]((scaled + 1) / 2)[..., :3].astype(np.float32)


def atlas_entry(atlas: ChannelAtlas, labels: np.ndarray, steps: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON of one layer's atlas and its sheets (``vis``, ``patches``, ``kernels``: uint8 RGB)."""
    examples, stats = atlas.examples, atlas.examples.stats
    k = int(examples.indices.shape[1])
    valid = examples.indices >= 0
    entry: dict[str, Any] = {
        "layer": atlas.layer, "measured_at": examples.measured_at, "channels": atlas.channels, "top": k,
        "images": examples.images_seen, "steps": steps, "feature_vis_layer": atlas.feature_vis_layer,
        "field": None if examples.field is None else {"size": list(examples.field.size),
                                                      "exact": examples.field.exact},
        "mean": rounded(stats.mean, 4), "never_active": rounded(stats.never_active, 4),
        "examples": {"indices": examples.indices.tolist(),
                     "labels": np.where(valid, labels[np.maximum(examples.indices, 0)], -1).tolist(),
                     "values": [rounded(row, 4) for row in examples.values]},
        "sheets": {}}
    if stats.class_mean is not None:
        entry["class_mean"] = [rounded(row, 4) for row in stats.class_mean.T]
        entry["selectivity"] = rounded(stats.selectivity, 4)
    sheets: dict[str, np.ndarray] = {}
    if atlas.feature_vis is not None:
        sheets["vis"] = colour_sheet(atlas.feature_vis, SHEET_COLS)
        entry["sheets"]["vis"] = {"h": int(atlas.feature_vis.shape[1]), "w": int(atlas.feature_vis.shape[2]),
                                  "cols": min(SHEET_COLS, atlas.channels)}
    if atlas.patches is not None:
        patches = np.asarray(atlas.patches, np.float32)
        scale = 255.0 if np.nanmax(patches, initial=0.0) > 1.5 else 1.0
        c, k, fh, fw = patches.shape[:4]
        sheets["patches"] = colour_sheet(patches.reshape(c * k, fh, fw, -1) / scale, k)
        entry["sheets"]["patches"] = {"h": fh, "w": fw, "cols": k}
    if atlas.kernels is not None:
        tiles = kernel_tiles(np.asarray(atlas.kernels, np.float32))
        sheets["kernels"] = colour_sheet(tiles, SHEET_COLS)
        entry["sheets"]["kernels"] = {"h": int(tiles.shape[1]), "w": int(tiles.shape[2]),
                                      "cols": min(SHEET_COLS, atlas.channels),
                                      "view": "rgb" if atlas.kernels.shape[-1] == 3 else "mean"}
    return entry, sheets
