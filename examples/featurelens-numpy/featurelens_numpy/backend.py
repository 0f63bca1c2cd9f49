"""The ``numpy`` backend: featurelens models run layer by layer in float32 NumPy.

The native model is a :class:`NumpyModel`, the spec plus its weights in featurelens's canonical
layouts (Keras's: conv kernels ``(kh, kw, C_in, C_out)``, dense kernels ``(in, out)``), so
``get_weights`` and ``set_weights`` are copies, and images stay channels last (N, H, W, C) from
the first layer to the last. The forward pass follows ``spec.layers()``:

- ``conv2d``: 'same' padding (the spec only allows odd kernels, so it is symmetric), then
  *im2col*: a strided view of every kh x kw window, copied once into a (N*H*W, kh*kw*C_in) matrix
  and multiplied with the kernel reshaped to (kh*kw*C_in, C_out), one BLAS call per layer;
- ``batch_norm``: inference mode, with the moving statistics;
- ``max_pool``: non-overlapping windows, flooring odd sizes as every framework does;
- ``flatten``: a reshape of (N, H, W, C), hence (H, W, C) order, the canonical one;
- ``global_max_pool`` / ``global_avg_pool``: each channel's maximum / mean over positions;
- ``dropout``: the identity at inference; ``relu``, ``gelu`` (exact, erf), ``dense``, ``scale`` and
  ``softmax`` as written.

Training is not implemented, so the backend declares only :attr:`Capability.INTROSPECT`; the
conformance kit skips its training checks and featurelens refuses ``fit`` with a clear message.
NumPy cannot attach anything to a model, so ``attachments`` keeps the base class's empty answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from featurelens.backends import (
    BN_PARAMS,
    Backend,
    Capability,
    InputError,
    LayerInfo,
    LayerSpec,
    ModelSpec,
    canonical_shapes,
    unknown_layer,
)
from featurelens_numpy import __version__

#: Images per forward pass in ``predict``: enough for fast matrix products, while the im2col
#: matrix of a 32x32x32 layer stays near 20 MB.
CHUNK = 64


class NumpyModel:
    """The native model: a spec and its canonical float32 weights."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.weights = weights
        self.layers: list[LayerSpec] = spec.layers()
        self.layer_names = [layer.name for layer in self.layers]

    def __repr__(self) -> str:
        return f"NumpyModel({self.spec.name!r}, {len(self.layers)} layers)"


# -- the layers -------------------------------------------------------------------------------------


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' convolution of (N, H, W, C_in) with a (kh, kw, C_in, C_out) kernel, odd kh and kw."""
    kh, kw, c_in, c_out = kernel.shape
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))  # (N, H, W, C_in, kh, kw): a view
    columns = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, kh * kw * c_in)  # the one copy
    out = columns @ kernel.reshape(kh * kw * c_in, c_out)
    out += bias
    return out.reshape(n, h, w, c_out)


def batch_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str, epsilon: float, out: np.ndarray | None = None,
               ) -> np.ndarray:
    """Inference-mode batch norm as one affine map per channel (computed in float64, applied in float32)."""
    gamma, beta, mean, variance = (w[f"{name}.{p}"].astype(np.float64) for p in BN_PARAMS)
    scale = gamma / np.sqrt(variance + epsilon)
    x = np.multiply(x, scale.astype(np.float32), out=out)
    x += (beta - mean * scale).astype(np.float32)
    return x


def max_pool(x: np.ndarray, p: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x[:, :h // p * p, :w // p * p].reshape(n, h // p, p, w // p, p, c).max(axis=(2, 4))


_erf = np.vectorize(math.erf, otypes=[np.float32])


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x * Phi(x), as torch's ``nn.GELU()`` and Keras's ``gelu`` compute it."""
    return (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(model: NumpyModel, x: np.ndarray, keep: set[str]) -> dict[str, np.ndarray]:
    """Run the layers up to the last one in ``keep``; return the outputs of those in ``keep``."""
    w, images = model.weights, x
    out: dict[str, np.ndarray] = {}
    if not keep:
        return out
    last = max(model.layer_names.index(name) for name in keep)
    for layer in model.layers[:last + 1]:
        name, kind, o = layer.name, layer.kind, layer.options
        # batch norm and ReLU overwrite x when nothing else holds it (neither the caller's images nor a kept map)
        free = None if any(np.may_share_memory(x, held) for held in (images, *out.values())) else x
        if kind == "conv2d":
            x = conv2d(x, w[f"{name}.kernel"], w[f"{name}.bias"])
        elif kind == "batch_norm":
            x = batch_norm(x, w, name, o["epsilon"], out=free)
        elif kind == "relu":
            x = np.maximum(x, np.float32(0), out=free)
        elif kind == "gelu":
            x = gelu(x)
        elif kind == "max_pool":
            x = max_pool(x, o["pool_size"])
        elif kind == "flatten":
            x = x.reshape(len(x), -1)  # (N, H, W, C) -> (N, H*W*C): (H, W, C) order
        elif kind == "global_max_pool":
            x = x.max(axis=(1, 2))
        elif kind == "global_avg_pool":
            x = x.mean(axis=(1, 2), dtype=np.float32)
        elif kind == "scale":
            x = x * np.float32(o["scale"])
        elif kind == "dense":
            x = x @ w[f"{name}.kernel"] + w[f"{name}.bias"]
        elif kind == "softmax":
            x = softmax(x)
        elif kind != "dropout":  # dropout: the identity at inference
            raise InputError(f"the numpy backend does not know the layer kind {kind!r} (layer {name!r})")
        if name in keep:  # flatten and dropout would share memory with the layer before: copy
            out[name] = x.copy() if kind in ("flatten", "dropout") else x
    return out


# -- the backend ------------------------------------------------------------------------------------


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Keras's default kernel initializer, for (kh, kw, C_in, C_out) and (in, out) kernels."""
    receptive = int(np.prod(shape[:-2]))  # kh * kw, or 1 for a dense kernel
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


class NumpyBackend(Backend):
    """Inference and introspection in float32 NumPy; no training."""

    name = "numpy"  # equal to the BackendEntry's name in featurelens_numpy.plugin
    capabilities = frozenset({Capability.INTROSPECT})

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, "featurelens-numpy": __version__}

    # -- core -------------------------------------------------------------------------------------

    def build(self, spec: ModelSpec, seed: int = 0) -> NumpyModel:
        """Glorot-uniform kernels, zero biases, batch norm as the identity; the same seed, the same weights."""
        rng = np.random.default_rng(seed)
        weights = {}
        for key, shape in canonical_shapes(spec).items():
            param = key.rsplit(".", 1)[1]
            if param == "kernel":
                value = glorot_uniform(rng, shape)
            elif param in ("gamma", "moving_variance"):
                value = np.ones(shape)
            else:  # bias, beta, moving_mean
                value = np.zeros(shape)
            weights[key] = value.astype(np.float32)
        return NumpyModel(spec, weights)

    def get_weights(self, native: NumpyModel) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in native.weights.items()}

    def set_weights(self, native: NumpyModel, weights: dict[str, np.ndarray]) -> None:
        expected = canonical_shapes(native.spec)
        wrong = sorted(set(expected) ^ set(weights))
        wrong += [key for key, shape in expected.items() if key in weights and np.shape(weights[key]) != shape]
        if wrong:
            raise InputError(f"the weights do not match the spec {native.spec.name!r}: {', '.join(wrong[:5])}")
        native.weights = {key: np.array(weights[key], dtype=np.float32) for key in expected}  # copies

    def predict(self, native: NumpyModel, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = _images(native, images)
        step = min(_batch_size(batch_size), CHUNK)
        head = native.layer_names[-1]
        parts = [forward(native, x[i:i + step], {head})[head] for i in range(0, len(x), step)]
        return np.concatenate(parts) if parts else np.zeros((0, native.spec.num_classes), np.float32)

    # -- Capability.INTROSPECT --------------------------------------------------------------------

    def layers(self, native: NumpyModel, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
        if tuple(input_shape) != native.spec.input_shape:
            raise InputError(f"this model takes inputs of shape {native.spec.input_shape}, not {tuple(input_shape)}")
        return [LayerInfo(s.name, s.kind, tuple(s.output_shape), s.params) for s in native.layers]

    def filters(self, native: NumpyModel, layer: str) -> np.ndarray:
        kinds = {s.name: s.kind for s in native.layers}
        if layer not in kinds:
            raise unknown_layer(layer, native.layer_names)
        if kinds[layer] != "conv2d":
            convs = [name for name, kind in kinds.items() if kind == "conv2d"]
            raise InputError(f"{layer!r} is a {kinds[layer]} layer, not a convolution; the conv layers are: "
                             f"{', '.join(convs)}")
        return native.weights[f"{layer}.kernel"].transpose(3, 0, 1, 2).copy()  # (C_out, kh, kw, C_in)

    def feature_maps(self, native: NumpyModel, images: np.ndarray, layers: list[str] | None,
                     batch_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
        # Checked here, when called, rather than inside the generator: bad arguments fail before any work.
        names = list(native.layer_names if layers is None else layers)
        for name in names:
            if name not in native.layer_names:
                raise unknown_layer(name, native.layer_names)
        x = _images(native, images)
        return _batches(native, x, names, _batch_size(batch_size))


def _batches(native: NumpyModel, x: np.ndarray, names: list[str], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(x), batch_size):
        maps = forward(native, x[start:start + batch_size], set(names))
        yield {name: maps[name] for name in names}


def _images(native: NumpyModel, images: np.ndarray) -> np.ndarray:
    """Normalized (N, H, W, C) images as float32, or an InputError saying which shape was expected."""
    shape = np.shape(images)
    if len(shape) != 4 or tuple(shape[1:]) != native.spec.input_shape:
        h, w, c = native.spec.input_shape
        raise InputError(f"expected normalized images of shape (N, {h}, {w}, {c}), channels last; got {shape}")
    return np.asarray(images, dtype=np.float32)


def _batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)
