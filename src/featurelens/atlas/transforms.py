"""Random jitter, zoom and rotation as linear maps with exact adjoints, in numpy.

Feature visualization asks the backend only for the gradient with respect to the image the model
sees; the chain rule back through the random transforms is done here. A transform is a
:class:`Resample`: each output pixel is a weighted sum of (at most four) input pixels of the same
image, with the weights of bilinear interpolation, and positions outside the input read as zero.
In normalized space zero is the dataset's mean colour, so the border a shift or a zoom-out exposes
is padded with the mean colour, as lucent pads with grey before its random crops: the pad, the
jitter (a random crop of the padded image is a shift), the zoom and the rotation are one
resampling. ``forward`` gathers, ``adjoint`` scatters the same weights back (``<A x, y> == <x, A^T
y>`` up to float rounding).

Transforms act on channels-last batches (N, H, W, C), each image with its own parameters. Sizes
are in pixels of the model's input: at 32x32 a shift of two pixels and a zoom of 10% already move
a feature across a good part of a 3x3 kernel's neighbourhood; lucent's ImageNet sizes (a pad of
12 pixels, jitter of 8) would move it off a CIFAR image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurelens.errors import InputError


@dataclass(frozen=True)
class Resample:
    """A linear map from (N, Hi, Wi, C) to (N, Ho, Wo, C): ``out[n, y, x] = sum_k w[n, y, x, k] in[n, src_k]``.

    ``index`` (N, Ho, Wo, K) are flat indices into one input image (``y * Wi + x``), ``weight``
    (N, Ho, Wo, K) their weights; a weight of zero reads nothing (its index is any valid one).
    """

    index: np.ndarray
    weight: np.ndarray
    in_size: tuple[int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        return int(self.index.shape[1]), int(self.index.shape[2])

    def _flat(self) -> np.ndarray:
        n = len(self.index)
        pixels = self.in_size[0] * self.in_size[1]
        return self.index + (np.arange(n) * pixels)[:, None, None, None]

    def _check(self, images: np.ndarray, size: tuple[int, int], what: str) -> None:
        if images.ndim != 4 or images.shape[0] != len(self.index) or tuple(images.shape[1:3]) != size:
            raise InputError(f"the transform's {what} is ({len(self.index)}, {size[0]}, {size[1]}, C); got "
                             f"{images.shape}")

    def forward(self, images: np.ndarray) -> np.ndarray:
        """The transformed images, (N, Ho, Wo, C) float32."""
        self._check(images, self.in_size, "input")
        flat = images.reshape(-1, images.shape[-1])
        taps = flat[self._flat()]  # (N, Ho, Wo, K, C)
        return np.einsum("nyxk,nyxkc->nyxc", self.weight, taps, dtype=np.float32).astype(np.float32)

    def adjoint(self, grads: np.ndarray) -> np.ndarray:
        """The transpose applied to ``grads`` (N, Ho, Wo, C): back to (N, Hi, Wi, C) float32."""
        self._check(grads, self.out_size, "output")
        n, c = grads.shape[0], grads.shape[-1]
        size = n * self.in_size[0] * self.in_size[1]
        flat = self._flat().reshape(-1)
        weighted = (self.weight[..., None] * grads[:, :, :, None, :]).reshape(-1, c)
        out = np.empty((size, c), np.float64)
        for channel in range(c):
            out[:, channel] = np.bincount(flat, weights=weighted[:, channel], minlength=size)
        return out.reshape(n, *self.in_size, c).astype(np.float32)


def affine(size: tuple[int, int], scale: np.ndarray, angle: np.ndarray | None = None,
           shift: np.ndarray | None = None) -> Resample:
    """Zoom each image by ``scale[n]`` (> 1 enlarges) and rotate it by ``angle[n]`` radians about its
    centre, then shift it by ``shift[n]`` (dy, dx) pixels; bilinear, zeros outside, same size out."""
    scale = np.asarray(scale, np.float64).reshape(-1)
    n = len(scale)
    if (scale <= 0).any():
        raise InputError(f"scale factors must be positive, got {scale[scale <= 0][:3]}")
    angle = np.zeros(n) if angle is None else np.asarray(angle, np.float64).reshape(n)
    shift = np.zeros((n, 2)) if shift is None else np.asarray(shift, np.float64).reshape(n, 2)
    h, w = size
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = yy[None] - cy - shift[:, 0, None, None]
    dx = xx[None] - cx - shift[:, 1, None, None]
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    sy = cy + cos * dy - sin * dx  # where each output pixel reads the input: the inverse map
    sx = cx + sin * dy + cos * dx
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    index, weight = [], []
    for oy, ox, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        ty, tx = y0 + oy, x0 + ox
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        index.append(np.where(inside, np.clip(ty, 0, h - 1) * w + np.clip(tx, 0, w - 1), 0).astype(np.int64))
        weight.append(np.where(inside, wgt, 0.0).astype(np.float32))
    return Resample(np.stack(index, axis=-1), np.stack(weight, axis=-1), size)


@dataclass(frozen=True)
class TransformSettings:
    """The random transforms of each optimization step, in pixels of the model's input.

    - ``jitter``: a whole-pixel shift of up to this many pixels on each axis (a pad with the mean
      colour and a random crop);
    - ``scale``: a random zoom factor in ``(low, high)`` about the centre (bilinear);
    - ``rotate``: a random rotation of up to this many degrees either way;
    - ``shift``: a final sub-pixel shift of up to this many pixels (bilinear), so no pixel grid is
      favoured.
    """

    jitter: int = 2
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 5.0
    shift: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, np.integer)) or self.jitter < 0:
            raise InputError(f"jitter must be a whole number of pixels >= 0, got {self.jitter!r}")
        low, high = (float(v) for v in self.scale)
        if not 0 < low <= high:
            raise InputError(f"scale must be (low, high) with 0 < low <= high, got {self.scale!r}")
        if not 0 <= float(self.rotate) < 180 or not 0 <= float(self.shift):
            raise InputError(f"rotate must be in [0, 180) degrees and shift >= 0, got {self.rotate!r}, {self.shift!r}")

    @property
    def identity(self) -> bool:
        return self.jitter == 0 and tuple(self.scale) == (1.0, 1.0) and self.rotate == 0 and self.shift == 0

    def draw(self, keys: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Resample:
        """One random transform per image, as one :class:`Resample`; ``keys`` (N,) picks each image's
        draws out of ``rng``'s stream, so an image's transform depends on its key, not on its batch.

        The whole-pixel jitter and the sub-pixel shift add up to one shift of :func:`affine`.
        """
        keys = np.asarray(keys, np.int64)
        count = int(keys.max()) + 1 if keys.size else 0
        u = rng.random((count, 6))[keys]  # row k is the same whatever count is: key k's draws
        whole = np.minimum(np.floor(u[:, :2] * (2 * self.jitter + 1)), 2 * self.jitter) - self.jitter
        low, high = np.log(float(self.scale[0])), np.log(float(self.scale[1]))
        scale = np.exp(low + u[:, 2] * (high - low))
        angle = np.deg2rad((2 * u[:, 3] - 1) * float(self.rotate))
        fraction = (2 * u[:, 4:6] - 1) * float(self.shift)
        return affine(size, scale, angle, whole + fraction)
