"""Field checks shared by every input featurelens reads: specs, training configs, model folders.

Each check is a small frozen value (:class:`Int`, :class:`Number`, :class:`Bool`, :class:`OneOf`,
:class:`Text`, :class:`ListOf`, :class:`MapOf`, :class:`Nullable`, :class:`Object`) called with the
error class to raise, the field's path (``blocks[0].convs``, ``normalization.std[2]``) and the value. A value
that does not fit raises ``error("<path>: <value> is invalid: <what was expected>")``; one that
fits comes back, normalized where that helps (a list as a tuple, an int as a float). So the input
kinds each keep one table of their fields with the bounds (:data:`featurelens.spec.CONV_FIELDS`,
:data:`featurelens.config.TRAIN_FIELDS`, ...), and adding a field is one line.

Hand-written rather than a schema library on purpose: the tables validate frozen dataclasses that
users also build directly (``ConvBlock(32)``), the messages keep the project's form (what was
wrong, what was expected, what to do) with exact field paths, and the core keeps its few
dependencies. Values are shown through :mod:`reprlib`, so a megabyte string or a huge number in a
hand-edited file never makes a megabyte message.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from featurelens.errors import FeaturelensError

ErrorType = type[FeaturelensError]
_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 30
_REPR.maxlist = _REPR.maxtuple = 8
_REPR.maxdict = 6
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """A short ``repr`` of ``value`` for a message (long strings, lists and numbers are cut)."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit, a deeply nested list
        return f"<a {type(value).__name__}>"


def fail(error: ErrorType, path: str, value: Any, why: str) -> NoReturn:
    """Raise ``error("<path>: <value> is invalid: <why>")``."""
    raise error(f"{path}: {shown(value)} is invalid: {why}")


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""


def is_int(value: Any) -> bool:
    """An integer that is not a boolean (JSON's ``true`` is no number of filters)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a boolean (finite or not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]``; ``hint`` says what the field is for."""

    low: int
    high: int
    hint: str = ""

    def __call__(self, error: ErrorType, path: str, value: Any) -> int:
        if not is_int(value):
            fail(error, path, value, f"expected an integer{_hint(self.hint)}")
        if not self.low <= value <= self.high:
            fail(error, path, value, f"must be >= {self.low} and <= {self.high}{_hint(self.hint)}")
        return int(value)


@dataclass(frozen=True)
class Number:
    """A finite number in ``[low, high]`` (``low_open``/``high_open``: the bound itself is excluded).

    With ``finite=False`` NaN passes too, and so does an infinity on an unbounded side (a diverged
    run's recorded loss, say)."""

    low: float
    high: float
    hint: str = ""
    low_open: bool = False
    high_open: bool = False
    finite: bool = True

    def __call__(self, error: ErrorType, path: str, value: Any) -> float:
        if not is_number(value):
            fail(error, path, value, f"expected a number{_hint(self.hint)}")
        if isinstance(value, float) and not math.isfinite(value):
            if self.finite:
                fail(error, path, value, f"must be a finite number{_hint(self.hint)}")
            if math.isnan(value) or (value > 0 and self.high == math.inf) or (value < 0 and self.low == -math.inf):
                return value
        too_low = value < self.low or (self.low_open and value == self.low)
        too_high = value > self.high or (self.high_open and value == self.high)
        if too_low or too_high:
            low = f"> {self.low}" if self.low_open else f">= {self.low}"
            high = f"< {self.high}" if self.high_open else f"<= {self.high}"
            fail(error, path, value, f"must be {low} and {high}{_hint(self.hint)}")
        return value


@dataclass(frozen=True)
class Bool:
    """``true`` or ``false`` (not 0, 1, ``"yes"`` or ``[]``)."""

    def __call__(self, error: ErrorType, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            fail(error, path, value, "expected true or false")
        return value


@dataclass(frozen=True)
class OneOf:
    """One of ``choices`` (strings); ``hint`` is added after the list."""

    choices: tuple[str, ...]
    hint: str = ""

    def __call__(self, error: ErrorType, path: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            fail(error, path, value, f"choose one of {', '.join(self.choices)}{_hint(self.hint)}")
        return value


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_length`` characters matching ``pattern`` (when given)."""

    max_length: int
    pattern: str = ""
    hint: str = ""
    min_length: int = 0

    def __call__(self, error: ErrorType, path: str, value: Any) -> str:
        if not isinstance(value, str):
            fail(error, path, value, f"expected a string{_hint(self.hint)}")
        if not self.min_length <= len(value) <= self.max_length:
            fail(error, path, value, f"expected {self.min_length} to {self.max_length} characters{_hint(self.hint)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            fail(error, path, value, self.hint or f"expected text of the form {self.pattern}")
        return value


Check = Callable[[ErrorType, str, Any], Any]


@dataclass(frozen=True)
class Nullable:
    """``null`` (None) or what ``inner`` accepts."""

    inner: Check

    def __call__(self, error: ErrorType, path: str, value: Any) -> Any:
        return None if value is None else self.inner(error, path, value)


@dataclass(frozen=True)
class ListOf:
    """A list (or tuple) of ``min_length`` to ``max_length`` items, each checked by ``item``; a tuple back."""

    item: Check
    max_length: int
    min_length: int = 0
    hint: str = ""

    def __call__(self, error: ErrorType, path: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            fail(error, path, value, f"expected a list{_hint(self.hint)}")
        if not self.min_length <= len(value) <= self.max_length:
            count = (f"exactly {self.max_length}" if self.min_length == self.max_length
                     else f"{self.min_length} to {self.max_length}")
            fail(error, path, value, f"expected {count} items{_hint(self.hint)}")
        return tuple(self.item(error, f"{path}[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True)
class MapOf:
    """A JSON object whose every value is checked by ``value`` (the keys are any strings); a dict back."""

    value: Check
    hint: str = ""

    def __call__(self, error: ErrorType, path: str, value: Any) -> dict[str, Any]:
        checked = require_object(error, path, value, self.hint)
        return {k: self.value(error, f"{path}.{k}", v) for k, v in checked.items()}


@dataclass(frozen=True)
class Object:
    """A JSON object (dict with string keys); its fields are checked with :func:`check_object`."""

    hint: str = ""

    def __call__(self, error: ErrorType, path: str, value: Any) -> dict[str, Any]:
        return require_object(error, path, value, self.hint)


def require_object(error: ErrorType, path: str, value: Any, hint: str = "") -> dict[str, Any]:
    """``value`` if it is a JSON object (a dict with string keys), else the error."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        fail(error, path, value, f"expected an object{_hint(hint)}")
    return dict(value)


def join(path: str, name: str) -> str:
    """``path.name`` (just ``name`` at the top level)."""
    return f"{path}.{name}" if path else name


def check_fields(error: ErrorType, path: str, values: Mapping[str, Any], table: Mapping[str, Check],
                 *, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Check every field of ``values`` that ``table`` names; unknown keys are refused when ``known`` is
    given (the names the object may have), and missing ones are left to the caller's defaults."""
    values = require_object(error, path or "the object", values)
    if known is not None:
        for key in values:
            if key not in known:
                raise error(f"{path or 'the object'}: unknown field {shown(key)}; the known fields are "
                            f"{', '.join(known)}")
    return {name: table[name](error, join(path, name), value) if name in table else value
            for name, value in values.items()}


def check_dataclass(error: ErrorType, path: str, obj: Any, table: Mapping[str, Check]) -> None:
    """Check the fields of a (frozen) dataclass instance against ``table``, replacing each with its
    normalized value (a list becomes a tuple, say)."""
    for f in fields(obj):
        if f.name in table:
            object.__setattr__(obj, f.name, table[f.name](error, join(path, f.name), getattr(obj, f.name)))


def unchecked_fields(cls: type, table: Mapping[str, Check]) -> list[str]:
    """The dataclass fields of ``cls`` that ``table`` has no check for (a test keeps this empty)."""
    return [f.name for f in fields(cls) if f.name not in table]


def parse_json(text: str | bytes, error: ErrorType, where: str, hint: str = "") -> Any:
    """``json.loads(text)``, any failure (bad syntax, a number past Python's digit limit, nesting too
    deep) raised as ``error`` naming ``where``; ``hint`` says what to do."""
    import json

    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise error(f"{where} is not valid JSON ({detail[:200]}){'; ' + hint if hint else ''}") from exc
