"""What the explorer shows of one image, computed through the Model API: the same code for the
static site (hundreds of images at once) and the live server (one uploaded image).

An image's record holds its class probabilities, each strip layer's per-channel range and mean
(dense layers: their values), and how its explanation maps were scaled; its pixels (every
channel of every spatial layer, then the explanation maps) go into one gray sprite sheet whose
layout, the same for every image, is the :class:`Plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featurelens import explain as ex
from featurelens.backends.contract import Capability
from featurelens.errors import InputError
from featurelens.explore.sprites import Block, layout, paste, quantize
from featurelens.explore.strip import StripLayer, strip_layers
from featurelens.model import Model

METHODS = {"gradcam": "Grad-CAM", "saliency": "Saliency", "smoothgrad": "SmoothGrad",
           "integrated_gradients": "Integrated Gradients", "gradcam++": "Grad-CAM++", "layercam": "LayerCAM",
           "scorecam": "Score-CAM", "occlusion": "Occlusion"}
"""The methods the explorer can precompute, with the names the page shows."""
DEFAULT_METHODS = ("gradcam", "saliency", "smoothgrad", "integrated_gradients")
METHOD_OPTIONS: dict[str, dict[str, Any]] = {"smoothgrad": {"samples": 16}, "integrated_gradients": {"steps": 32}}
"""Cheaper than the methods' defaults (25 noisy copies, 64 steps), for hundreds of images."""
FORWARD_ONLY = ("scorecam", "occlusion")
EXPLANATIONS = "explanations"
DIGITS = 5


def rounded(values: Any, digits: int = DIGITS) -> list[float]:
    """Floats with ``digits`` significant digits (short JSON; NaN and infinities as 0)."""
    flat = np.nan_to_num(np.asarray(values, np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    return [float(f"{v:.{digits}g}") for v in flat]


@dataclass(frozen=True)
class Plan:
    """The strip, the explanation methods and the sheet layout shared by every image of a site."""

    strip: list[StripLayer]
    methods: list[str]
    blocks: dict[str, Block]
    width: int
    height: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [{"name": s.name, "kind": s.kind, "shape": list(s.shape), "atlas": s.atlas}
                           for s in self.strip],
                "methods": [{"name": m, "label": METHODS[m]} for m in self.methods],
                "sheet": {"width": self.width, "height": self.height,
                          "blocks": {name: block.to_dict() for name, block in self.blocks.items()}}}


def make_plan(model: Model, methods: tuple[str, ...] | list[str] = DEFAULT_METHODS) -> Plan:
    """The plan for ``model``; gradient methods are left out (with a note) on a backend without gradients."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown explanation method {unknown[0]!r}; the explorer takes {', '.join(METHODS)}")
    notes = []
    chosen = list(dict.fromkeys(methods))
    if not model.backend.supports(Capability.GRADIENTS):
        dropped = [m for m in chosen if m not in FORWARD_ONLY]
        chosen = [m for m in chosen if m in FORWARD_ONLY]
        if dropped:
            notes.append(f"the {model.backend.name} backend computes no gradients: left out {', '.join(dropped)}")
    strip = strip_layers(model.layers())
    h, w = model.input_shape[:2]
    wanted = {s.name: (s.shape[0], s.shape[1], s.shape[2]) for s in strip if s.spatial}
    if chosen:
        wanted[EXPLANATIONS] = (h, w, len(chosen))
    blocks, width, height = layout(wanted)
    return Plan(strip, chosen, blocks, width, height, notes)


def compute_records(model: Model, images: np.ndarray, plan: Plan) -> list[tuple[dict[str, Any], np.ndarray]]:
    """For each of ``images`` (as loaded): its record and its uint8 (height, width) sheet.

    One forward pass gives the probabilities and every strip layer; each method explains the
    predicted class.
    """
    images = model.check_images(images)
    probabilities = model.predict(images)
    predicted = probabilities.argmax(axis=1)
    maps = model.feature_maps(images, [s.name for s in plan.strip])
    explained = {m: ex.explain(model, images, predicted, method=m, **METHOD_OPTIONS.get(m, {})).maps
                 for m in plan.methods}
    out = []
    for i in range(len(images)):
        sheet = np.zeros((plan.height, plan.width), np.uint8)
        layers: dict[str, Any] = {}
        for s in plan.strip:
            values = np.asarray(maps[s.name][i], np.float32)
            if not s.spatial:
                layers[s.name] = {"values": rounded(values)}
                continue
            tiles, lo, hi = quantize(values)
            paste(sheet, plan.blocks[s.name], tiles)
            entry = {"hi": rounded(hi, 4), "mean": rounded(values.mean(axis=(0, 1)))}
            if (lo < 0).any():
                entry["lo"] = rounded(lo, 4)
            layers[s.name] = entry
        methods = {}
        if plan.methods:
            stack = np.stack([explained[m][i] for m in plan.methods], axis=-1)
            signed = [bool((explained[m][i] < 0).any()) for m in plan.methods]
            method_tiles: list[np.ndarray] = []
            for k, m in enumerate(plan.methods):
                tile, lo, hi = quantize(stack[..., k:k + 1], signed=signed[k])
                method_tiles.append(tile[0])
                methods[m] = {"peak": rounded(np.maximum(-lo, hi))[0], "signed": signed[k]}
            paste(sheet, plan.blocks[EXPLANATIONS], np.stack(method_tiles))
        record = {"probabilities": rounded(probabilities[i]), "predicted": int(predicted[i]),
                  "layers": layers, "explanations": methods}
        out.append((record, sheet))
    return out
