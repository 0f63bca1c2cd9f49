"""Read the official pickled dataset files without letting them run code.

The CIFAR batches are pickles. They are read with an unpickler that accepts only the few numpy
constructors the official files use (and how Python 3 writes bytes), so a tampered file cannot
run code; any other global is refused.

It is the pure-Python unpickler, not the C one: the C unpickler sizes its memo by the largest
index a file names, so one flipped bit in an index (a ``LONG_BINPUT`` of 2**31) makes it allocate
and clear gigabytes, where the pure-Python one keeps a dict. The opcodes that allocate as much as
a file claims (``BYTEARRAY8``) or need out-of-band buffers, none of which the official
protocol-2 files use, are refused. For these files, whose time goes into a few large strings,
both unpicklers take the same time.
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


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as the official files call it (bytes written as latin-1 text), and only so."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing to encode with {encoding!r}: not part of an official dataset file")
    return codecs.encode(text, "latin1")


def _refused(unpickler: Any) -> None:
    raise pickle.UnpicklingError("refusing a protocol-5 buffer opcode: not part of an official dataset file")


class SafeUnpickler(pickle._Unpickler):
    """Unpickles plain data and numpy arrays only; any other global, and the buffer opcodes, are refused."""

    dispatch = {**pickle._Unpickler.dispatch,
                **{op[0]: _refused for op in (pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER)}}

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at protocol 2
            return _latin1
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
