"""The explorer's sample of test images: balanced over classes, right and wrong.

A random sample of a 70%-accurate model would be mostly right answers of the commonest classes;
a learner clicking through wants every class and the model's mistakes beside its successes. So
each class gets the same share of the sample, and within a class up to ``wrong_share`` of it are
mistakes, taken in turn from each wrong predicted class (so most confusion-matrix cells have an
example), the rest right answers; a class short of one kind is filled with the other.
"""

from __future__ import annotations

import numpy as np

from featurelens.errors import InputError


def _take_spread(candidates: np.ndarray, groups: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` of ``candidates``, taken round robin over their ``groups`` (each group shuffled)."""
    pools = []
    for group in np.unique(groups):
        members = candidates[groups == group].copy()
        rng.shuffle(members)
        pools.append(list(members))
    rng.shuffle(pools)  # which group gives first depends on the seed only
    taken: list[int] = []
    while len(taken) < count and any(pools):
        for pool in pools:
            if pool and len(taken) < count:
                taken.append(int(pool.pop()))
    return taken


def balanced_sample(labels: np.ndarray, predicted: np.ndarray, count: int, *, wrong_share: float = 0.5,
                    seed: int = 0) -> np.ndarray:
    """Indices (sorted) of ``count`` images, ``count / classes`` per class, up to ``wrong_share`` of
    each class's share being mistakes spread over the wrong predicted classes."""
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise InputError(f"labels {labels.shape} and predictions {predicted.shape} must be two (N,) arrays")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InputError(f"the sample needs a positive number of images, got {count!r}")
    if not 0.0 <= wrong_share <= 1.0:
        raise InputError(f"wrong_share must be between 0 and 1, got {wrong_share}")
    count = min(int(count), len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    base, extra = divmod(count, len(classes))
    chosen: list[int] = []
    for position, c in enumerate(classes):
        share = base + (1 if position < extra else 0)
        members = np.flatnonzero(labels == c)
        wrong = members[predicted[members] != c]
        right = members[predicted[members] == c]
        n_wrong = min(len(wrong), round(share * wrong_share))
        n_right = min(len(right), share - n_wrong)
        n_wrong = min(len(wrong), share - n_right)  # fewer right answers than wanted: more mistakes
        chosen += _take_spread(wrong, predicted[wrong], n_wrong, rng)
        chosen += _take_spread(right, np.zeros(len(right), np.int64), n_right, rng)
    if len(chosen) < count:  # small classes: top up from whatever is left
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        chosen += [int(i) for i in rng.choice(rest, count - len(chosen), replace=False)]
    return np.sort(np.asarray(chosen, np.int64))
