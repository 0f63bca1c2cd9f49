"""A plain NumPy (float64) forward pass of a spec: the ground truth the kit compares backends with.

Kept deliberately literal (loops over kernel offsets, no tricks) so it is easy to trust.
"""

from __future__ import annotations

import math

import numpy as np

from featurelens.spec import ModelSpec

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' convolution (odd kernel) of (N, H, W, C_in) with a (kh, kw, C_in, C_out) kernel."""
    kh, kw = kernel.shape[:2]
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + h, j:j + w, :] @ kernel[i, j]
    return out + bias


def forward(spec: ModelSpec, weights: dict[str, np.ndarray], images: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output, ``{name: (N, ...)}`` in float64, for normalized NHWC images (inference)."""
    x = np.asarray(images, np.float64)
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    out: dict[str, np.ndarray] = {}
    for layer in spec.layers():
        name, o = layer.name, layer.options
        if layer.kind == "conv2d":
            x = _conv(x, w[f"{name}.kernel"], w[f"{name}.bias"])
        elif layer.kind == "batch_norm":
            scale = w[f"{name}.gamma"] / np.sqrt(w[f"{name}.moving_variance"] + o["epsilon"])
            x = (x - w[f"{name}.moving_mean"]) * scale + w[f"{name}.beta"]
        elif layer.kind == "relu":
            x = np.maximum(x, 0.0)
        elif layer.kind == "gelu":  # the exact (erf) GELU
            x = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
        elif layer.kind == "max_pool":
            p = o["pool_size"]
            n, h, wd, c = x.shape
            x = x[:, :h // p * p, :wd // p * p].reshape(n, h // p, p, wd // p, p, c).max(axis=(2, 4))
        elif layer.kind == "flatten":
            x = x.reshape(len(x), -1)
        elif layer.kind == "global_max_pool":
            x = x.max(axis=(1, 2))
        elif layer.kind == "global_avg_pool":
            x = x.mean(axis=(1, 2))
        elif layer.kind == "scale":
            x = x * o["scale"]
        elif layer.kind == "dense":
            x = x @ w[f"{name}.kernel"] + w[f"{name}.bias"]
        elif layer.kind == "softmax":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
        elif layer.kind != "dropout":  # dropout is the identity at inference
            raise ValueError(f"the reference forward pass does not know layer kind {layer.kind!r}")
        out[name] = x
    return out
