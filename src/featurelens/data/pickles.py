"""Read the official pickled dataset files without letting them run code.

The CIFAR batches are pickles. They are read with an unpickler that accepts only the few numpy
constructors the official files use (and how Python 3 writes bytes), so a tampered file cannot
run code; any other global is refused.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from featurelens.errors import DataError


def _numpy_reconstruct() -> Callable[..., object]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as _legacy_reconstruct
        return _legacy_reconstruct
    return _reconstruct


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at protocol 2
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of an official dataset file")


def read_pickle(path: Path, what: str) -> dict[str, Any]:
    """The dict pickled in ``path`` (a ``what``), with its bytes keys decoded."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    try:
        obj = SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # truncated (EOFError), garbage (UnpicklingError), tampered
        raise DataError(
            f"{path} is truncated or corrupted ({type(exc).__name__}: {exc}); delete the folder "
            f"{path.parent} and load again to re-download, or extract a fresh copy there"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} does not hold a {what} (found {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
