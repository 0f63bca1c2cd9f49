"""Two models of the same spec compared numerically, layer by layer.

For each layer the feature maps of the same images are compared with a *relative difference*,
``||a - b|| / max(||a||, ||b||)`` over all values: 0 for identical maps, about 1.4 for unrelated
maps of the same scale. Two backends holding the same weights give about 1e-7; two trainings of
the same spec give large values, as their channels are learned in different orders.

Beside it stands the layer's *linear CKA* (:func:`featurelens.atlas.cka.linear_cka`, Kornblith et
al. 2019) of the two models' maps of the same images, each image's map a row: 1 when the two
represent the images alike up to a rotation or scaling of the features (channels in another
order included), near 0 when unrelated. So two trainings can differ a lot and still be similar.
The figures are in :mod:`featurelens.visualize.comparison`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from featurelens.atlas.cka import linear_cka
from featurelens.errors import InputError

if TYPE_CHECKING:
    from featurelens.model import Model


@dataclass(frozen=True)
class LayerDifference:
    """One layer's comparison: the relative and largest absolute difference of the two models'
    feature maps, and their linear CKA (None where it was not computed)."""

    layer: str
    relative_difference: float
    max_abs_difference: float
    cka: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a||, ||b||)``, 0 when both are 0."""
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def check_comparable(a: Model, b: Model, names: tuple[str, str] = ("the first model", "the second model")) -> None:
    """Raise a clear error unless both models are built from one spec (two backends or checkpoints)."""
    spec_a, spec_b = getattr(a, "spec", None), getattr(b, "spec", None)
    if spec_a is None or spec_b is None or spec_a != spec_b:
        what = [f"{n} ({s.name if s is not None else 'a model built by its user, without a spec'})"
                for n, s in zip(names, (spec_a, spec_b))]
        raise InputError(f"{what[0]} and {what[1]} are not the same spec; compare two backends or two "
                         "checkpoints of one spec")


def common_layers(a: Model, b: Model) -> list[str]:
    """Layer names both models have, in the first model's order."""
    other = {info.name for info in b.layers()}
    return [info.name for info in a.layers() if info.name in other]


def feature_map_differences(a: Model, b: Model, images: np.ndarray,
                            layers: list[str] | None = None) -> list[LayerDifference]:
    """Per-layer differences and linear CKA of the two models' feature maps on the same images
    (CKA needs at least 2 images; with one it is None)."""
    layers = layers or common_layers(a, b)
    if not layers:
        raise InputError("the two models share no layer name; compare models of the same spec")
    maps_a, maps_b = a.feature_maps(images, layers), b.feature_maps(images, layers)
    out = []
    for name in layers:
        if maps_a[name].shape != maps_b[name].shape:
            raise InputError(f"{name}: shapes differ ({maps_a[name].shape} vs {maps_b[name].shape}); "
                             "compare models of the same spec")
        diff = np.abs(maps_a[name] - maps_b[name])
        cka = linear_cka(maps_a[name], maps_b[name]) if len(maps_a[name]) >= 2 else None
        out.append(LayerDifference(name, relative_difference(maps_a[name], maps_b[name]), float(diff.max()), cka))
    return out
