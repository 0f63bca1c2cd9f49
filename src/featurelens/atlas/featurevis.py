"""Feature visualization: images optimized to excite one channel (or class) each, all in one batch.

Activation maximization (Erhan et al. 2009; Olah et al., Distill 2017) shows what a channel
responds to by changing an image until the channel's mean activation is as high as it goes. On
its own that gives adversarial noise; what makes the images readable is how the image is
described and what the optimization may not rely on:

- a decorrelated-colour, 1/f-scaled Fourier parameterization (:mod:`featurelens.atlas.param`)
  with the colour statistics of the user's own training images;
- random jitter, zoom and rotation at every step, sized for the model's input (a couple of
  pixels at 32x32, never an upsampling to 224) (:mod:`featurelens.atlas.transforms`);
- total-variation and L2 penalties on the displayed image;
- Adam, in numpy, with a fixed seed: the same call gives the same images.

Everything is written on top of :meth:`Backend.value_and_grad <featurelens.backends.Backend.value_and_grad>`,
so every backend with gradients can do it. One image per channel: ``ChannelMean`` takes one
channel per image, so the C images of a layer go through the model together (``batch_size`` at a
time, so memory stays bounded). The backend gives the gradient with respect to the normalized,
transformed image; the chain rule back through the transforms, the normalization, the sigmoid,
the colour matrix and the Fourier basis is the adjoint of each (each tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from featurelens.atlas.param import ImageParam, colour_matrix
from featurelens.atlas.transforms import Resample, TransformSettings
from featurelens.backends.contract import Capability
from featurelens.backends.layers import LayerInfo, unknown_layer
from featurelens.backends.objectives import ChannelMean, ClassScore, Objective
from featurelens.errors import InputError
from featurelens.model import Model

#: The defaults below were chosen by looking at the images of the seed CNN trained on CIFAR-10
#: (blocks 1 to 3, against lucent's defaults at 32 px: see benchmarks/bench_featurevis.py).
#: Transforms: without them block 2 and 3 images turn to pixel noise; a shift of two pixels, a zoom
#: of +-10% and +-5 degrees keep the first block's fine gratings, larger ones blur them.
DEFAULT_TRANSFORMS = TransformSettings(jitter=2, scale=(0.9, 1.1), rotate=5.0, shift=0.5)
#: Penalty weights (per-pixel means, display units) against a channel mean after batch norm, of
#: order 1 to 10: L2 5 stops the sigmoid saturating every pixel to pure colours; TV 1 removes
#: single-pixel speckle (TV 4 already wipes out the first block's gratings).
DEFAULT_TV = 1.0
DEFAULT_L2 = 5.0
#: Fourier amplitudes fall as 1/f**1.5: smoother than 1/f without losing the gratings.
DEFAULT_DECAY = 1.5


@dataclass(frozen=True, eq=False)
class FeatureVisualization:
    """Images that excite one channel (or class) each.

    - ``images``: (K, H, W, C) float32 in [0, 1], one per entry of ``channels``; C is the model's
      input channels (3 for colour images; 1 for grayscale models, so ``images[..., 0]`` is the
      image to show);
    - ``layer``: the layer asked for (None for class visualizations);
    - ``channels``: (K,) int64, the channel (or class) of each image;
    - ``activations``: (K,) float32, each final image's objective: the mean activation of its
      channel on ``objective_layer`` (its logit, or log-probability, for classes), without
      transforms;
    - ``objective_layer``: the layer whose channel mean was maximized: ``layer``, or the batch
      norm right after it (see :func:`feature_visualization`);
    - ``steps``: optimization steps; ``settings``: everything else that shaped the images.
    """

    images: np.ndarray
    layer: str | None
    channels: np.ndarray
    activations: np.ndarray
    objective_layer: str | None
    steps: int
    settings: dict[str, Any] = field(default_factory=dict)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _non_negative(value: object, what: str, positive: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and np.isfinite(float(value))
    if not ok or float(value) < 0 or (positive and float(value) == 0):  # type: ignore[arg-type]
        raise InputError(f"{what} must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _indices(values: object, count: int, what: str, hint: str) -> np.ndarray:
    """``values`` (None: all, an int, or a 1-D sequence) as int64 indices below ``count``."""
    if values is None:
        return np.arange(count, dtype=np.int64)
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
        raise InputError(f"{what} must be an int or a non-empty 1-D sequence of ints, got {values!r}")
    bad = array[(array < 0) | (array >= count)]
    if bad.size:
        raise InputError(f"{what} {int(bad[0])} does not exist: {hint} has {count} (0 to {count - 1})")
    return array.astype(np.int64)


def _objective_layer(infos: list[LayerInfo], index: int, after_batch_norm: bool) -> str:
    """The layer itself, or the batch norm that directly follows a conv or dense layer."""
    info = infos[index]
    if after_batch_norm and info.kind in ("conv2d", "dense") and index + 1 < len(infos):
        follower = infos[index + 1]
        if follower.kind == "batch_norm" and tuple(follower.output_shape) == tuple(info.output_shape):
            return follower.name
    return info.name


def _adam(shape: tuple[int, ...]) -> dict[str, Any]:
    return {"m": np.zeros(shape, np.float32), "v": np.zeros(shape, np.float32), "t": 0}


def _adam_ascent(params: np.ndarray, grad: np.ndarray, state: dict[str, Any], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One Adam step *up* the gradient, in place (complex parameters as pairs of reals)."""
    p, g = params.view(np.float32), grad.view(np.float32)
    state["t"] += 1
    m, v, t = state["m"], state["v"], state["t"]
    m *= betas[0]
    m += (1 - betas[0]) * g
    v *= betas[1]
    v += (1 - betas[1]) * g * g
    step = lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    p += step.astype(np.float32)


def total_variation(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the mean absolute difference between neighbouring pixels (rows and columns),
    and its gradient (a subgradient where two neighbours are equal); in the images' dtype."""
    dy = images[:, 1:] - images[:, :-1]
    dx = images[:, :, 1:] - images[:, :, :-1]
    n = images[0].size
    value = (np.abs(dy).reshape(len(images), -1).sum(1) + np.abs(dx).reshape(len(images), -1).sum(1)) / n
    grad = np.zeros_like(images)
    sy, sx = np.sign(dy) / n, np.sign(dx) / n
    grad[:, 1:] += sy
    grad[:, :-1] -= sy
    grad[:, :, 1:] += sx
    grad[:, :, :-1] -= sx
    return value.astype(images.dtype), grad.astype(images.dtype)


def l2_penalty(images: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the mean squared distance of its pixels from ``centre`` (the data's mean colour),
    and its gradient."""
    diff = images - centre
    n = images[0].size
    value = np.square(diff).reshape(len(images), -1).sum(1) / n
    return value.astype(images.dtype), (2.0 / n * diff).astype(images.dtype)


@dataclass(frozen=True)
class _Setup:
    param: ImageParam
    mean: np.ndarray  # per channel, as loaded
    std: np.ndarray
    pixel_scale: float
    transforms: TransformSettings
    tv: float
    l2: float
    lr: float
    init: float


def _objective_and_gradient(model: Model, setup: _Setup, coefficients: np.ndarray, objective: Objective,
                            transform: Resample | None, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image, ``objective - tv * TV - l2 * L2`` and its gradient with respect to the coefficients
    (the chain rule through the transform, the normalization and the parameterization), and the
    display images."""
    display = setup.param.forward(coefficients)
    normalized = ((display * setup.pixel_scale - setup.mean) / setup.std).astype(np.float32)
    if transform is not None:
        normalized = transform.forward(normalized)
    result = model.backend.value_and_grad(model.native, normalized, objective, wrt_input=True,
                                          batch_size=batch_size)
    assert result.input_grad is not None, "the backend returned no input gradient"
    grad = np.asarray(result.input_grad, np.float32)
    if transform is not None:
        grad = transform.adjoint(grad)
    grad = grad * (setup.pixel_scale / setup.std).astype(np.float32)
    total = np.asarray(result.values, np.float32).copy()
    if setup.tv:
        value, tv_grad = total_variation(display)
        total -= setup.tv * value
        grad -= setup.tv * tv_grad
    if setup.l2:
        value, l2_grad = l2_penalty(display, (setup.mean / setup.pixel_scale).astype(np.float32))
        total -= setup.l2 * value
        grad -= setup.l2 * l2_grad
    return total, setup.param.adjoint(display, grad), display


def _initial(keys: np.ndarray, channels: int, shape: tuple[int, int], std: float, seed: int) -> np.ndarray:
    """Small random coefficients; image ``i``'s depend only on ``seed`` and ``keys[i]``."""
    coefficients = np.empty((len(keys), channels, *shape), np.complex64)
    for row, key in enumerate(keys):
        draw = np.random.default_rng([seed, int(key)]).normal(0.0, std, (2, channels, *shape)).astype(np.float32)
        coefficients[row] = draw[0] + 1j * draw[1]
    return coefficients


def _optimize(model: Model, keys: np.ndarray, objective_for: Callable[[np.ndarray], Objective], setup: _Setup,
              steps: int, seed: int, batch_size: int, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """The optimized display images (K, H, W, C) and their final objective values, for ``keys`` (the
    channel or class of each image, which also picks its random draws)."""
    h, w, c = model.input_shape
    images = np.empty((len(keys), h, w, c), np.float32)
    chunks = list(range(0, len(keys), batch_size))
    bar = tqdm(total=len(chunks) * steps, desc=desc, unit="step", disable=not progress, leave=False, delay=1.0)
    try:
        for start in chunks:
            part = keys[start:start + batch_size]
            objective = objective_for(part)
            coefficients = _initial(part, c, setup.param.fourier.spectrum_shape, setup.init, seed)
            state = _adam(coefficients.view(np.float32).shape)
            for step in range(steps):
                transform = None if setup.transforms.identity else \
                    setup.transforms.draw(part, (h, w), np.random.default_rng([seed, 1, step]))
                _, grad, _ = _objective_and_gradient(model, setup, coefficients, objective, transform, batch_size)
                _adam_ascent(coefficients, grad, state, setup.lr)
                bar.update(1)
            images[start:start + len(part)] = setup.param.forward(coefficients)
    finally:
        bar.close()
    final = model.backend.value_and_grad(model.native, model.normalization.apply(images * setup.pixel_scale),
                                         objective_for(keys), wrt_input=False, batch_size=batch_size)
    return np.clip(images, 0.0, 1.0), np.asarray(final.values, np.float32)


def _setup(model: Model, colour: object, transforms: TransformSettings | None, tv: object, l2: object, lr: object,
           decay: object, pixel_scale: object, init: object) -> _Setup:
    channels = model.input_shape[2]
    scale = _non_negative(pixel_scale, "pixel_scale", positive=True)
    if transforms is None:
        transforms = TransformSettings(0, (1.0, 1.0), 0.0, 0.0)
    if not isinstance(transforms, TransformSettings):
        raise InputError(f"transforms must be a featurelens.atlas.transforms.TransformSettings or None (no "
                         f"transforms), got {type(transforms).__name__}")
    mean = np.broadcast_to(np.asarray(model.normalization.mean, np.float32), (channels,)).copy()
    std = np.broadcast_to(np.asarray(model.normalization.std, np.float32), (channels,)).copy()
    matrix = colour_matrix(colour, channels, scale)  # type: ignore[arg-type]
    param = ImageParam.create((model.input_shape[0], model.input_shape[1]), matrix, mean / scale,
                              _non_negative(decay, "decay"))
    return _Setup(param, mean, std, scale, transforms, _non_negative(tv, "tv"), _non_negative(l2, "l2"),
                  _non_negative(lr, "lr", positive=True), _non_negative(init, "init"))


def _settings(setup: _Setup, colour: object, batch_size: int, seed: int, decay: float, **extra: Any) -> dict[str, Any]:
    t = setup.transforms
    source = "identity" if colour is None else ("images" if np.asarray(colour).ndim == 4 else "matrix")
    return {"lr": setup.lr, "seed": seed, "batch_size": batch_size, "tv": setup.tv, "l2": setup.l2, "decay": decay,
            "init": setup.init, "pixel_scale": setup.pixel_scale, "colour": source,
            "colour_matrix": setup.param.colour.tolist(), "jitter": t.jitter, "scale": list(t.scale),
            "rotate": t.rotate, "shift": t.shift, **extra}


def feature_visualization(model: Model, layer: str, channels: int | Sequence[int] | np.ndarray | None = None, *,
                          steps: int = 256, lr: float = 0.05, seed: int = 0, batch_size: int = 128,
                          colour: np.ndarray | None = None,
                          transforms: TransformSettings | None = DEFAULT_TRANSFORMS, tv: float = DEFAULT_TV,
                          l2: float = DEFAULT_L2, decay: float = DEFAULT_DECAY, after_batch_norm: bool = True,
                          pixel_scale: float = 255.0, init: float = 0.01,
                          progress: bool = True) -> FeatureVisualization:
    """One image per channel of ``layer`` (default: every channel), each maximizing its channel's
    mean activation; all channels optimized together, ``batch_size`` images at a time.

    - ``colour``: the colour statistics. Pass training images (N, H, W, C) as loaded (a few
      thousand are plenty) and their colour covariance is estimated
      (:func:`~featurelens.atlas.param.colour_correlation`); or its (C, C) square root, computed
      once; or None for independent colour channels (more saturated, less natural colours).
    - ``after_batch_norm``: when ``layer`` is a conv (or dense) layer followed directly by a batch
      norm, maximize the batch norm's output instead (recorded as ``objective_layer``): batch norm
      scales each channel by its own factor, negative for some channels, so the raw conv output's
      maximum can be the channel's minimum as the network sees it, and the normalized output has a
      scale of order one for every channel, which the regularizer weights are set for.
    - ``transforms``: the random jitter, zoom, rotation and shift of each step (None: none);
      ``tv`` and ``l2``: weights of the total-variation and L2 penalties on the display image;
      ``decay``: the Fourier scaling's exponent (amplitudes fall as 1/frequency**decay); ``lr``: Adam's
      step; ``init``: the standard deviation of the initial coefficients; ``pixel_scale``: the
      pixel value of white in images as loaded (255 for 8-bit data).

    The same arguments (seed included) give the same images. A progress bar shows on long runs
    (``progress=False`` turns it off).
    """
    model.backend.require(Capability.GRADIENTS, "visualize features (feature visualization needs gradients)")
    model.backend.require(Capability.INTROSPECT, "list the layers feature visualization needs")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    infos = model.layers()
    names = [info.name for info in infos]
    if not isinstance(layer, str) or layer not in names:
        raise unknown_layer(str(layer), names)
    index = names.index(layer)
    shape = tuple(infos[index].output_shape)
    if len(shape) not in (1, 3):
        raise InputError(f"feature visualization needs a layer with (h, w, c) or (features,) outputs; {layer!r} "
                         f"gives {shape}")
    keys = _indices(channels, int(shape[-1]), "channel", f"layer {layer!r}")
    target = _objective_layer(infos, index, after_batch_norm)
    setup = _setup(model, colour, transforms, tv, l2, lr, decay, pixel_scale, init)
    images, values = _optimize(model, keys, lambda part: ChannelMean(target, part), setup, steps, int(seed),
                               batch_size, progress, f"feature visualization {layer}")
    return FeatureVisualization(images, layer, keys, values, target, steps,
                                _settings(setup, colour, batch_size, int(seed), float(decay),
                                          objective="channel_mean"))


def class_visualization(model: Model, classes: int | Sequence[int] | np.ndarray | None = None, *,
                        score: str = "logit", steps: int = 256, lr: float = 0.05, seed: int = 0,
                        batch_size: int = 128, colour: np.ndarray | None = None,
                        transforms: TransformSettings | None = DEFAULT_TRANSFORMS, tv: float = DEFAULT_TV,
                        l2: float = DEFAULT_L2, decay: float = DEFAULT_DECAY, pixel_scale: float = 255.0,
                        init: float = 0.01, progress: bool = True) -> FeatureVisualization:
    """One image per class (default: every class) maximizing its class score: the logit (``score="logit"``)
    or the log-probability (``"log_probability"``, which also pushes the other classes down).

    The other arguments are :func:`feature_visualization`'s; ``layer`` and ``objective_layer`` of
    the result are None and ``channels`` are the classes.
    """
    model.backend.require(Capability.GRADIENTS, "visualize classes (class visualization needs gradients)")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if score not in ("logit", "log_probability"):
        raise InputError(f"score must be 'logit' or 'log_probability', got {score!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    if model.class_names is not None:
        num_classes = len(model.class_names)
    else:
        num_classes = int(model.predict(np.zeros((1, *model.input_shape), np.float32)).shape[1])
    keys = _indices(classes, num_classes, "class", "the model")
    setup = _setup(model, colour, transforms, tv, l2, lr, decay, pixel_scale, init)
    images, values = _optimize(model, keys, lambda part: ClassScore(part, score),  # type: ignore[arg-type]
                               setup, steps, int(seed), batch_size, progress, "class visualization")
    return FeatureVisualization(images, None, keys, values, None, steps,
                                _settings(setup, colour, batch_size, int(seed), float(decay),
                                          objective=score))
