"""Spearman rank correlation in numpy: how alike two maps order their pixels (no scipy needed)."""

from __future__ import annotations

import numpy as np

from featurelens.errors import InputError


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties sharing their average rank (scipy's ``average``)."""
    values = np.asarray(values).reshape(-1)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1])) if len(values) else np.zeros(0, bool)
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(values))
    average = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(len(values), np.float64)
    ranks[order] = average[group]
    return ranks


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``a[i]`` and ``b[i]`` for each i, as (N,) float64.

    Both are (N, ...) arrays of the same shape (maps). Rho is the Pearson correlation of the
    ranks; it is NaN where either map is constant, since a constant map ranks nothing.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 2:
        raise InputError(f"rank_correlation needs two (N, ...) arrays of one shape, got {a.shape} and {b.shape}")
    out = np.empty(len(a), np.float64)
    for i, (x, y) in enumerate(zip(a.reshape(len(a), -1), b.reshape(len(b), -1))):
        rx, ry = rankdata(x), rankdata(y)
        rx -= rx.mean()
        ry -= ry.mean()
        norm = np.sqrt((rx * rx).sum() * (ry * ry).sum())
        out[i] = (rx * ry).sum() / norm if norm > 0 else np.nan
    return out
