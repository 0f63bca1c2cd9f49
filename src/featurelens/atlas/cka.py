"""Linear centred kernel alignment (CKA; Kornblith, Norouzi, Lee and Hinton, ICML 2019).

CKA compares two representations of the same ``n`` examples, ``x`` (n, p) and ``y`` (n, q), with
any numbers of features: 1 for representations equal up to an orthogonal transform and an
isotropic scaling, near 0 for unrelated ones. Unlike a difference of activations it does not care
in which order channels were learned, so it can say that two trainings, or one layer at epoch 5
and at the end, represent the images alike. With centred columns,

    CKA(x, y) = ||yᵀx||²_F / (||xᵀx||_F ||yᵀy||_F) = <K, L>_F / (||K||_F ||L||_F)

where ``K = x xᵀ`` and ``L = y yᵀ`` are the (n, n) Gram matrices; :func:`linear_cka` takes the
cheaper form (Grams when features outnumber examples, as for feature maps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from featurelens.errors import InputError

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import Snapshots


def _prepare(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise InputError(f"{name} must be (n, features) or (n, ...) per example, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{name} must be numeric, not {a.dtype}")
    flat = a.reshape(len(a), -1)
    dtype = np.float64 if flat.dtype == np.float64 or np.issubdtype(flat.dtype, np.integer) else np.float32
    centred = flat.astype(dtype) - flat.mean(axis=0, dtype=np.float64).astype(dtype)
    top = float(np.abs(centred).max()) if centred.size else 0.0
    if top == 0 or not np.isfinite(top):  # constant (no information) or not finite (refused by the caller)
        return centred
    centred = centred / top  # no overflow in the norm, whatever the activations' scale
    return centred / float(np.linalg.norm(centred))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same examples, in [0, 1].

    ``x`` (n, p) and ``y`` (n, q) hold one row per example (more axes are flattened: feature maps
    (n, H, W, C) can be given as they are). Columns are centred. Computed in float64 for float64
    inputs, else with float32 products and float64 sums. A representation that is constant over
    the examples carries no information to compare: its CKA with anything is 0 (not NaN).
    """
    xs, ys = _prepare(x, "x"), _prepare(y, "y")
    if len(xs) != len(ys):
        raise InputError(f"x and y must describe the same examples, got {len(xs)} and {len(ys)} rows")
    if len(xs) < 2:
        raise InputError(f"CKA needs at least 2 examples, got {len(xs)}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise InputError("x and y must be finite: CKA of NaN or infinite activations is undefined")
    n, p, q = len(xs), xs.shape[1], ys.shape[1]
    if n * (p + q) < p * q + p * p + q * q:  # (n, n) Grams are cheaper than (p, q) cross-covariances
        k, l_ = xs @ xs.T, ys @ ys.T
        cross = float(np.vdot(k.astype(np.float64), l_.astype(np.float64)))
        norms = float(np.linalg.norm(k.astype(np.float64))) * float(np.linalg.norm(l_.astype(np.float64)))
    else:
        cross = float(np.linalg.norm((ys.T @ xs).astype(np.float64)) ** 2)
        norms = (float(np.linalg.norm((xs.T @ xs).astype(np.float64)))
                 * float(np.linalg.norm((ys.T @ ys).astype(np.float64))))
    if norms <= 0 or not np.isfinite(norms):
        return 0.0
    return float(min(max(cross / norms, 0.0), 1.0))


def cka_over_training(snapshots: Snapshots) -> np.ndarray:
    """Linear CKA of every layer's probe representation at every recorded epoch against the model
    as returned by training: an (epochs, layers) float64 array, rows in ``snapshots.epochs`` order
    (0: as initialized) and columns in ``snapshots.layers`` order."""
    out = np.zeros((len(snapshots.epochs), len(snapshots.layers)))
    for j, layer in enumerate(snapshots.layers):
        final = snapshots.final_maps[layer]
        for i, epoch in enumerate(snapshots.epochs):
            out[i, j] = linear_cka(snapshots.maps[epoch][layer], final)
    return out
