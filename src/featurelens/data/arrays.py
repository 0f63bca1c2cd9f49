"""Seeded, stratified splits and per-class subsets of (images, labels) arrays."""

from __future__ import annotations

import numpy as np

from featurelens.errors import InputError


def _check(images: np.ndarray, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} labels; they must match one to one")


def train_val_split(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of every class for validation (seeded, stratified).

    Returns ``train_images, train_labels, val_images, val_labels``; both parts keep the original
    order of the examples they contain.
    """
    _check(images, labels)
    if not 0 <= fraction < 1:
        raise InputError(f"validation fraction {fraction!r} must be in [0, 1)")
    if fraction == 0:
        return images, labels, images[:0], labels[:0]
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(labels), bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_val = int(round(len(idx) * fraction))
        val_mask[rng.choice(idx, size=n_val, replace=False)] = True
    if val_mask.all() or not val_mask.any():
        raise InputError(f"a validation fraction of {fraction} leaves one side empty with "
                         f"{len(labels)} examples; use more data or another fraction")
    return images[~val_mask], labels[~val_mask], images[val_mask], labels[val_mask]


def per_class_subset(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``per_class`` examples of every class, chosen with ``seed``, in original order."""
    _check(images, labels)
    if per_class < 1:
        raise InputError(f"per_class={per_class} must be >= 1")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        keep[rng.choice(idx, size=min(per_class, len(idx)), replace=False)] = True
    return images[keep], labels[keep]
