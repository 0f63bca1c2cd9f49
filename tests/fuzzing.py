"""Hypothesis strategies that damage valid inputs the way people and disks do, and a hard time guard.

The property tests (``test_properties*.py``) start from valid specs, configs, model folders and
dataset files and let :func:`mutated` (JSON-like data) or :func:`damaged_bytes` (files) break
them: fields deleted, wrong types, extreme and non-finite numbers, long and unicode strings,
unknown keys, flipped, cut and inserted bytes. Every case must end in a featurelens error or a
valid, finite result, within :func:`hard_limit`'s seconds.

How many cases: :func:`cases` scales each test's CI count by the profile that
``FEATURELENS_HYPOTHESIS_PROFILE`` names (``ci``, the default: derandomized, so CI runs the same
cases every time; ``fuzz``: 25 times as many, randomized; the ``fuzz`` tox env selects it).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")
PROFILE_ENV = "FEATURELENS_HYPOTHESIS_PROFILE"
PROFILES = {"ci": 1, "fuzz": 25}
PROFILE = os.environ.get(PROFILE_ENV, "ci")
if PROFILE not in PROFILES:
    raise RuntimeError(f"{PROFILE_ENV}={PROFILE!r}: choose one of {', '.join(PROFILES)}")


def cases(count: int, deadline_s: float = 2.0) -> settings:
    """Hypothesis settings running ``count`` cases in CI (times the profile's factor), each within
    ``deadline_s`` (generous: the machine is shared; :func:`hard_limit` catches real hangs)."""
    return settings(max_examples=count * PROFILES[PROFILE], deadline=timedelta(seconds=deadline_s),
                    derandomize=PROFILE == "ci", database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def outcome(error: type[Exception], make: Callable[[], T]) -> T | None:
    """``make()``'s result, or None when it raised ``error`` with a clear message: one line, not a
    megabyte of repr. Any other exception propagates, and the property fails."""
    try:
        return make()
    except error as exc:
        text = str(exc)
        assert text and "\n" not in text and len(text) < 3000, text[:3000]
        return None


class Hang(AssertionError):
    """A case ran past its hard time limit: featurelens hung on it instead of answering."""


@contextlib.contextmanager
def hard_limit(seconds: float = 20.0) -> Iterator[None]:
    """Fail (:class:`Hang`) if the block runs longer than ``seconds`` (a timer signal interrupts it)."""
    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


#: Values that do not belong where a mutation puts them.
ODD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 7, 2**31, 2**63, 9223372036854775808, 10**30, -(10**12)]),
    st.integers(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.5, 1.0, 1e-9]),
    st.floats(),
    st.text(max_size=12), st.sampled_from(["", "relu", "../../etc/passwd", "weights.safetensors", "/tmp/x",
                                           "x" * 5000, "é" * 300, "\u0000", "\ud800", "cuda:0", "val_loss"]),
    st.lists(st.integers(-3, 3), max_size=4), st.builds(list), st.builds(dict),  # fresh objects: mutations
    st.dictionaries(st.text(max_size=4), st.integers(-2, 2), max_size=3),  # may change them in place later
    st.builds(lambda: [[[[[[[[[[]]]]]]]]]]),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) to a value inside ``data``, the root included."""
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*prefix, i))
    return out


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def _numeric_twist(value: Any, draw: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return draw(ODD_VALUES)
    how = draw(st.sampled_from(["neg", "big", "tiny", "float", "plus", "zero"]))
    return {"neg": -value, "big": value * 10**draw(st.integers(3, 30)), "tiny": value * 1e-30,
            "float": float(value) + 0.5, "plus": value + 1, "zero": 0}[how]


@st.composite
def mutated(draw: Any, data: Any, max_mutations: int = 3) -> Any:
    """``data`` (JSON-like: dicts, lists, scalars) after 1 to ``max_mutations`` random damages."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace", "replace", "twist", "add_key", "duplicate", "wrap"]))
        if not path:  # the root itself
            if op in ("replace", "wrap"):
                data = draw(ODD_VALUES) if op == "replace" else [data]
            continue
        parent, key = _parent(data, path), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(ODD_VALUES)
        elif op == "twist":
            parent[key] = _numeric_twist(parent[key], draw)
        elif op == "add_key" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(ODD_VALUES)
        elif op == "duplicate" and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] + parent[key][: draw(st.integers(1, 3))]
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, str(parent[key])[:50]]))
    return data


@st.composite
def damaged_bytes(draw: Any, data: bytes, max_damages: int = 3) -> bytes:
    """``data`` after 1 to ``max_damages`` flips, overwrites, cuts or insertions (never unchanged)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_damages))):
        op = draw(st.sampled_from(["flip", "flip", "overwrite", "truncate", "insert", "delete"]))
        if not out:
            out += draw(st.binary(min_size=1, max_size=8))
            continue
        at = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            out[at:at + len(chunk)] = chunk
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[at:at + draw(st.integers(1, 64))]
    if bytes(out) == data:
        out.append(0)
    return bytes(out)
