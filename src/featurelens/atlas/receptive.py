"""Receptive fields: which input pixels a unit of a layer can see.

A unit at row ``y`` of a layer sees input rows ``offset + y * jump`` to ``offset + y * jump + size - 1``
(the same along columns), clipped to the image. For spec-built models the three numbers are
exact, composed layer by layer from the spec: a 'same' convolution with kernel ``k`` (padding
``(k - 1) // 2``) keeps the jump, grows the size by ``(k - 1) * jump`` and moves the offset back by
the padding; a ``p x p`` max pool (stride ``p``, no padding) multiplies the jump by ``p`` and grows
the size by ``(p - 1) * jump``; batch norm, ReLU and dropout change nothing; dense layers see the
whole image. For a model the user built, nothing says how its layers are wired, so the field is
estimated from input gradients (:func:`estimate_field`): the pixels that move a unit near the
centre of the map, over a few random images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurelens.backends.contract import Capability
from featurelens.backends.layers import unknown_layer
from featurelens.backends.objectives import Unit
from featurelens.errors import InputError
from featurelens.spec import ModelSpec

Box = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` in input pixels, bottom and right exclusive (numpy slicing)."""


@dataclass(frozen=True)
class ReceptiveField:
    """Per axis (rows, columns): field size, jump between neighbouring units and offset of unit 0.

    ``exact`` is True when computed from a spec, False when estimated from gradients.
    """

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    offset: tuple[int, int]
    exact: bool = True

    def box(self, y: int, x: int, image_hw: tuple[int, int]) -> Box:
        """The input pixels unit ``(y, x)`` sees, clipped to an image of ``image_hw``."""
        top = self.offset[0] + int(y) * self.jump[0]
        left = self.offset[1] + int(x) * self.jump[1]
        return (max(top, 0), max(left, 0), min(top + self.size[0], image_hw[0]), min(left + self.size[1], image_hw[1]))

    def unclipped(self, y: int, x: int) -> Box:
        """The field of unit ``(y, x)`` before clipping (it may start above or left of the image)."""
        top = self.offset[0] + int(y) * self.jump[0]
        left = self.offset[1] + int(x) * self.jump[1]
        return (top, left, top + self.size[0], left + self.size[1])


def spec_fields(spec: ModelSpec) -> dict[str, ReceptiveField]:
    """The exact receptive field of every spatial layer of ``spec``, by layer name."""
    size, jump, offset = 1, 1, 0
    fields: dict[str, ReceptiveField] = {}
    for layer in spec.layers():
        if len(layer.output_shape) != 3:
            break  # flatten and dense layers see the whole image
        if layer.kind == "conv2d":
            k = int(layer.options["kernel_size"])
            offset -= (k - 1) // 2 * jump
            size += (k - 1) * jump
        elif layer.kind == "max_pool":
            p = int(layer.options["pool_size"])
            size += (p - 1) * jump
            jump *= p
        fields[layer.name] = ReceptiveField(layer.name, (size, size), (jump, jump), (offset, offset))
    return fields


def estimate_field(model: object, layer: str, *, images: int = 8, seed: int = 0,
                   batch_size: int = 64) -> ReceptiveField:
    """The receptive field of ``layer`` estimated from input gradients (models the user built).

    For the unit at the centre of the map (summed over a few channels), the input pixels with a
    non-zero gradient on any of ``images`` random images (uniform in the 0-255 range) give the
    size; the jump is the input size over the map size (a stride the model's layers compose), and
    the offset places the centre unit's field. Layers that pool unevenly or crop are outside what
    three numbers describe; the estimate then is what the centre unit sees.
    """
    from featurelens.model import Model  # the model module imports nothing from here

    if not isinstance(model, Model):
        raise InputError(f"estimate_field needs a featurelens Model, got {type(model).__name__}")
    model.backend.require(Capability.GRADIENTS, "estimate receptive fields from gradients")
    infos = {info.name: info for info in model.layers()}
    if layer not in infos:
        raise unknown_layer(layer, list(infos))
    shape = tuple(infos[layer].output_shape)
    if len(shape) != 3:
        raise InputError(f"layer {layer!r} is not spatial (output {shape}); receptive fields are for (h, w, c) "
                         "feature maps")
    h, w, c = (int(d) for d in shape)
    height, width = model.input_shape[:2]
    rng = np.random.default_rng(seed)
    x = model.normalization.apply(rng.uniform(0, 255, (images, *model.input_shape)).astype(np.float32))
    cy, cx = h // 2, w // 2
    seen = np.zeros((height, width), bool)
    for channel in range(min(c, 4)):
        grads = model.backend.value_and_grad(model.native, x, Unit(layer, channel, cy, cx), batch_size=batch_size)
        assert grads.input_grad is not None, "the backend returned no input gradient"
        seen |= (grads.input_grad != 0).any(axis=(0, 3))
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    jump = (max(height // h, 1), max(width // w, 1))
    if not len(rows):  # no gradient at all: the whole image, the honest fallback
        return ReceptiveField(layer, (height, width), jump, (0 - cy * jump[0], 0 - cx * jump[1]), exact=False)
    size = (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    # Centre the field on the unit's own centre: clipping at the border must not shift it.
    centre = (cy * jump[0] + (jump[0] - 1) / 2, cx * jump[1] + (jump[1] - 1) / 2)
    seen_centre = ((rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2)
    inside = all(0 < lo and hi < limit - 1 for lo, hi, limit in
                 ((rows[0], rows[-1], height), (cols[0], cols[-1], width)))
    if not inside:  # clipped by the border: assume a field symmetric about the unit's centre
        size = (int(2 * max(centre[0] - rows[0], rows[-1] - centre[0]) + 1),
                int(2 * max(centre[1] - cols[0], cols[-1] - centre[1]) + 1))
        seen_centre = centre
    offset = (int(round(seen_centre[0] - (size[0] - 1) / 2)) - cy * jump[0],
              int(round(seen_centre[1] - (size[1] - 1) / 2)) - cx * jump[1])
    return ReceptiveField(layer, size, jump, offset, exact=False)


def receptive_field(model: object, layer: str) -> ReceptiveField:
    """``layer``'s receptive field: exact for a spec-built model, else estimated from gradients."""
    from featurelens.model import SpecModel

    if isinstance(model, SpecModel):
        fields = spec_fields(model.spec)
        if layer in fields:
            return fields[layer]
        names = [lay.name for lay in model.spec.layers()]
        if layer not in names:
            raise unknown_layer(layer, names)
        raise InputError(f"layer {layer!r} is not spatial; receptive fields are for (h, w, c) feature maps: "
                         f"{', '.join(fields)}")
    return estimate_field(model, layer)


def crop(image: np.ndarray, field: ReceptiveField, y: int, x: int, fill: float = np.nan) -> np.ndarray:
    """The part of ``image`` (H, W, C) unit ``(y, x)`` sees, as a full ``size`` patch.

    Where the field reaches past the image border (where the network saw zero padding) the patch
    holds ``fill``, so patches line up and a field cut by the border looks cut.
    """
    top, left, bottom, right = field.unclipped(y, x)
    height, width = image.shape[:2]
    patch = np.full((field.size[0], field.size[1], image.shape[2]), fill, np.float32)
    t, lft, b, r = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if t < b and lft < r:
        patch[t - top:b - top, lft - left:r - left] = image[t:b, lft:r]
    return patch
