"""Checking what users pass to an attribution method: images, targets, baselines and layers.

Every method takes images as loaded (the model normalizes them) and explains one class per image;
bad input gets a featurelens error saying what was expected, before any gradient is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurelens.backends.contract import Capability
from featurelens.backends.layers import LayerInfo, unknown_layer
from featurelens.backends.objectives import ClassScore
from featurelens.errors import InputError
from featurelens.explain.batching import check_positive, image_chunks
from featurelens.model import Model
from featurelens.spec import ACTIVATIONS

SCORES = ("logit", "log_probability")


@dataclass(frozen=True)
class Prepared:
    """Checked images (as loaded), the target of each and the model's probability of it."""

    images: np.ndarray
    targets: np.ndarray
    probabilities: np.ndarray


def check_targets(targets: object, count: int, num_classes: int, class_names: tuple[str, ...] | None) -> None:
    """Raise an :class:`InputError` unless ``targets`` holds ``count`` class indices of the model."""
    array = np.asarray(targets)
    if array.shape != (count,):
        raise InputError(f"targets must give one class per image: {count} value(s), got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise InputError(f"targets must be integer class indices, got dtype {array.dtype}")
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        names = f" ({', '.join(class_names)})" if class_names else ""
        raise InputError(f"target {int(bad[0])} is not a class of the model: its classes are 0 to "
                         f"{num_classes - 1}{names}")


def prepare(model: Model, images: np.ndarray, targets: object, batch_size: int) -> Prepared:
    """Check images and targets; default targets are the predicted classes."""
    check_positive(batch_size, "batch_size")
    images = model.check_images(images)
    if len(images) == 0:
        raise InputError("no images to explain: got an empty batch")
    probs = np.concatenate([model.predict(images[start:stop], batch_size=batch_size)
                            for start, stop in image_chunks(len(images), batch_size)])
    if targets is None:
        chosen = probs.argmax(axis=1).astype(np.int64)
    else:
        chosen = np.asarray(targets)
        if chosen.ndim == 0 and chosen.dtype.kind in "iu":  # one class for every image
            chosen = np.full(len(images), int(chosen), np.int64)
        check_targets(chosen, len(images), probs.shape[1], model.class_names)
        chosen = chosen.astype(np.int64)
    picked = probs[np.arange(len(images)), chosen].astype(np.float32)
    return Prepared(images, chosen, picked)


def class_score(targets: np.ndarray, score: str) -> ClassScore:
    """The objective for ``targets``, checking ``score`` (``logit`` or ``log_probability``)."""
    if score not in SCORES:
        raise InputError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    return ClassScore(np.asarray(targets, np.int64), kind=score)  # type: ignore[arg-type]


def require_gradients(model: Model, method: str) -> None:
    """A clear :class:`~featurelens.BackendError` when the backend cannot differentiate."""
    model.backend.require(Capability.GRADIENTS, f"compute {method} attributions")


def no_layer(layer: str | None, method: str) -> None:
    """Input-space methods explain the image itself: a layer is a mistake worth saying."""
    if layer is not None:
        raise InputError(f"{method} attributes to the input pixels and takes no layer (got {layer!r}); "
                         "use gradcam, gradcam++, layercam or scorecam for a layer")


def normalized_baseline(model: Model, baseline: object, count: int) -> np.ndarray:
    """A normalized (count, H, W, C) baseline from ``baseline`` given as loaded.

    None is zeros in normalized space, i.e. the dataset's mean colour; a number is a uniform image
    of that pixel value; an (H, W, C) image is used for every image; an (N, H, W, C) array gives
    one baseline per image.
    """
    shape = model.input_shape
    if baseline is None:
        return np.zeros((count, *shape), np.float32)
    array = np.asarray(baseline, dtype=np.float32)
    if array.ndim == 0:
        array = np.full((1, *shape), float(array), np.float32)
    elif array.shape == shape:
        array = array[None]
    elif array.shape != (count, *shape):
        raise InputError(f"baseline must be None, a pixel value, one image {shape} or one per image "
                         f"({count}, {', '.join(map(str, shape))}); got shape {array.shape}")
    normalized = model.normalization.apply(array)
    return np.broadcast_to(normalized, (count, *shape)) if len(normalized) == 1 else normalized


def default_cam_layer(infos: list[LayerInfo]) -> str:
    """The layer a CAM uses by default.

    The last conv layer whose output is at least 8x8, so that a 32x32 network whose last conv
    maps are 8x8 still gives a usable map (the deepest layers keep the most class-specific
    evidence, coarser maps localise less); when that conv is followed by a ReLU (or a GELU, the
    other activation a spec has), with only batch norm in between (conv, batch norm, activation as
    in featurelens's specs), the activation's output instead, the rectified maps Grad-CAM was
    defined on. Without a conv layer of at least 8x8, the last conv
    layer of any size.
    """
    convs = [i for i, info in enumerate(infos) if info.kind == "conv2d" and len(info.output_shape) == 3]
    if not convs:
        raise InputError("the model has no conv layer (kind conv2d) for a CAM; pass layer= with a spatial layer")
    big = [i for i in convs if infos[i].output_shape[0] >= 8 and infos[i].output_shape[1] >= 8]
    index = (big or convs)[-1]
    for follower in infos[index + 1:]:
        if follower.kind == "batch_norm":
            continue
        if follower.kind in ACTIVATIONS and follower.output_shape == infos[index].output_shape:
            return follower.name
        break
    return infos[index].name


def spatial_layer(model: Model, layer: str | None) -> tuple[str, tuple[int, ...]]:
    """``layer`` (default: :func:`default_cam_layer`) and its (h, w, c) output, checked to be spatial."""
    model.backend.require(Capability.INTROSPECT, "list the layers a CAM needs")
    infos = model.layers()
    if layer is None:
        layer = default_cam_layer(infos)
    found = {info.name: info for info in infos}
    if layer not in found:
        raise unknown_layer(layer, list(found))
    shape = tuple(found[layer].output_shape)
    if len(shape) != 3:
        spatial = [info.name for info in infos if len(info.output_shape) == 3 and info.kind == "conv2d"]
        raise InputError(f"layer {layer!r} is not spatial: its output is {shape}, a CAM needs (h, w, c) feature "
                         f"maps; conv layers of this model: {', '.join(spatial) or 'none'}")
    return layer, shape
