"""How feature visualization describes an image: decorrelated colour and a 1/f Fourier basis.

Optimizing pixels directly gives high-frequency noise: the gradient of a CNN is dominated by high
frequencies. Olah et al. (Distill 2017) optimize instead in a basis where natural images are
"white": Fourier coefficients scaled by one over their frequency (natural images have a roughly
1/f amplitude spectrum, so equal steps on every coefficient give image-like changes), and
colours in a decorrelated basis (the square root of the data's colour covariance maps
independent unit channels to the data's correlated colours). A sigmoid keeps pixels in the
display range. Every piece here is linear or elementwise and has its exact adjoint (the chain
rule runs in numpy); :class:`ImageParam` strings them together.

The colour covariance comes from the user's own training images (:func:`colour_correlation`),
not from ImageNet's: CIFAR-sized data sets have their own colour statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurelens.errors import InputError


def colour_correlation(images: np.ndarray, pixel_scale: float = 255.0, max_pixels: int = 1_000_000,
                       seed: int = 0) -> np.ndarray:
    """The (C, C) symmetric square root of the pixel colour covariance of ``images`` (N, H, W, C),
    as loaded (``pixel_scale`` is white: 255 for uint8-like data), in display units [0, 1].

    At most ``max_pixels`` pixels, drawn at random with ``seed``, enter the estimate (a million
    pixels pin a 3x3 covariance down to a fraction of a percent). Computed with ``eigh``:
    ``V sqrt(L) V^T``.
    """
    array = np.asarray(images)
    if array.ndim != 4 or array.size == 0 or array.dtype.kind not in "fiu":
        raise InputError(f"colour_correlation needs numeric images (N, H, W, C) as loaded, got {array.dtype} "
                         f"{array.shape}")
    if not pixel_scale > 0:
        raise InputError(f"pixel_scale must be positive (255 for 0-255 images), got {pixel_scale!r}")
    channels = array.shape[-1]
    pixels = array.reshape(-1, channels)
    if len(pixels) > max_pixels:
        pick = np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)
        pixels = pixels[np.sort(pick)]
    pixels = pixels.astype(np.float64) / float(pixel_scale)
    covariance = np.atleast_2d(np.cov(pixels, rowvar=False))
    values, vectors = np.linalg.eigh(covariance)
    return ((vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T).astype(np.float32)


def colour_matrix(colour: np.ndarray | None, channels: int, pixel_scale: float = 255.0) -> np.ndarray:
    """The (C, C) colour recorrelation the parameterization uses, from what the user passed.

    ``None``: the identity (colours vary independently); a (C, C) matrix: that square root of a
    covariance; images (N, H, W, C) as loaded: :func:`colour_correlation` of them. The matrix is
    divided by its largest column norm so that one unit in any decorrelated channel moves a
    pixel by at most one unit before the sigmoid, whatever the data's contrast.
    """
    if colour is None:
        matrix = np.eye(channels, dtype=np.float64)
    else:
        array = np.asarray(colour)
        if array.ndim == 4:
            if array.shape[-1] != channels:
                raise InputError(f"colour images have {array.shape[-1]} channel(s); the model takes {channels}")
            matrix = colour_correlation(array, pixel_scale).astype(np.float64)
        elif array.shape == (channels, channels) and array.dtype.kind in "fiu":
            matrix = array.astype(np.float64)
            if not np.isfinite(matrix).all():
                raise InputError("the colour matrix has non-finite entries")
        else:
            raise InputError(f"colour must be None, training images (N, H, W, {channels}) as loaded, or a "
                             f"({channels}, {channels}) matrix (the square root of their colour covariance); got "
                             f"shape {array.shape}")
    norm = float(np.linalg.norm(matrix, axis=0).max())
    if not norm > 1e-6:
        raise InputError("the colour matrix is (almost) zero: the images have a single colour; pass colour=None")
    return (matrix / norm).astype(np.float32)


def frequency_scale(size: tuple[int, int], decay: float = 1.0) -> np.ndarray:
    """(H, W // 2 + 1) weights of the half spectrum: ``(f_min / max(f, f_min)) ** decay``, f in
    cycles per pixel and f_min one cycle per image: 1 for the coarsest patterns, 1/f above."""
    h, w = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    lowest = 1.0 / max(h, w)
    return ((lowest / np.maximum(np.sqrt(fy**2 + fx**2), lowest)) ** decay).astype(np.float32)


def _column_weights(w: int) -> np.ndarray:
    """How many times each half-spectrum column appears in the full spectrum (1 or 2)."""
    weights = np.full(w // 2 + 1, 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


class Fourier:
    """Spatial images (N, H, W, C) from half-spectrum coefficients (N, C, H, W // 2 + 1) complex64:
    ``irfft2(scale * coefficients, norm="ortho") * gain``, a real-linear map.

    ``gain`` is sqrt(H * W): a coefficient of 1 at the lowest frequency is then a pattern of
    amplitude about 1 (2 for columns whose mirror image is implicit), whatever the image size.
    """

    def __init__(self, size: tuple[int, int], decay: float = 1.0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.scale = frequency_scale(self.size, decay)
        self.gain = float(np.sqrt(self.size[0] * self.size[1]))
        self.columns = _column_weights(self.size[1]).astype(np.float32)

    @property
    def spectrum_shape(self) -> tuple[int, int]:
        return self.size[0], self.size[1] // 2 + 1

    def forward(self, coefficients: np.ndarray) -> np.ndarray:
        spatial = np.fft.irfft2(coefficients * self.scale, s=self.size, norm="ortho")  # (N, C, H, W)
        return (spatial.transpose(0, 2, 3, 1) * self.gain).astype(np.float32)

    def adjoint(self, grads: np.ndarray) -> np.ndarray:
        """The gradient with respect to the real and imaginary parts, as one complex64 array.

        ``irfft2`` reads each column of the half spectrum once (column 0 and, for even widths, the
        last) or twice (the others, as themselves and as their mirrored conjugates), and reads
        only the real part of the self-conjugate coefficients: its adjoint is ``rfft2`` with the
        columns weighted by that count (the imaginary parts it ignores get rfft2's zeros there).
        """
        spectrum = np.fft.rfft2(grads.transpose(0, 3, 1, 2), norm="ortho") * self.columns
        return np.ascontiguousarray(spectrum * self.scale * self.gain, dtype=np.complex64)


def colour_forward(matrix: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Each pixel's decorrelated colour vector through ``matrix`` (C, C): ``out = matrix @ pixel``."""
    return np.einsum("ij,nhwj->nhwi", matrix, images, dtype=np.float32).astype(np.float32)


def colour_adjoint(matrix: np.ndarray, grads: np.ndarray) -> np.ndarray:
    return np.einsum("ij,nhwi->nhwj", matrix, grads, dtype=np.float32).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # no overflow for large |x|


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p)).astype(np.float32)


@dataclass
class ImageParam:
    """Display images (N, H, W, C) in [0, 1] from Fourier coefficients:

    ``sigmoid(colour @ fourier(coefficients) + logit(mean))``, ``mean`` the data's mean colour in
    [0, 1] (so all-zero coefficients give a uniform image of the mean colour, which the model sees
    as an all-zero normalized input).
    """

    fourier: Fourier
    colour: np.ndarray
    offset: np.ndarray

    @classmethod
    def create(cls, size: tuple[int, int], colour: np.ndarray, mean: np.ndarray, decay: float = 1.0) -> ImageParam:
        return cls(Fourier(size, decay), np.asarray(colour, np.float32), logit(np.asarray(mean)).reshape(-1))

    def forward(self, coefficients: np.ndarray) -> np.ndarray:
        """The display images (N, H, W, C) float32 in [0, 1]."""
        return sigmoid(colour_forward(self.colour, self.fourier.forward(coefficients)) + self.offset)

    def adjoint(self, display: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """The gradient with respect to the coefficients from one with respect to the display images
        (``display`` is :meth:`forward`'s output, which the sigmoid's derivative needs)."""
        before_sigmoid = grads * display * (1.0 - display)
        return self.fourier.adjoint(colour_adjoint(self.colour, before_sigmoid))
