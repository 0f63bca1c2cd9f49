"""Choose a backend by name: argument, then ``FEATURELENS_BACKEND``, then the first installed."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from featurelens.backend import Backend, BackendEntry
from featurelens.errors import BackendError
from featurelens.plugins import registry

BACKEND_ENV = "FEATURELENS_BACKEND"
#: Built-ins come first when picking a default; third-party backends follow by name.
PREFERRED_ORDER = ("torch", "keras")


@dataclass(frozen=True)
class BackendStatus:
    name: str
    installed: bool
    missing: tuple[str, ...]
    install: str
    description: str


def _ordered(entries: dict[str, BackendEntry]) -> list[BackendEntry]:
    def key(name: str) -> tuple[int, str]:
        return (PREFERRED_ORDER.index(name) if name in PREFERRED_ORDER else len(PREFERRED_ORDER), name)

    return [entries[n] for n in sorted(entries, key=key)]


def backend_status() -> list[BackendStatus]:
    """Every registered backend, installed or not, with how to install it."""
    return [BackendStatus(e.name, not e.missing(), tuple(e.missing()), e.install, e.description)
            for e in _ordered(registry().backends)]


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, in default-choice order."""
    return [s.name for s in backend_status() if s.installed]


def default_backend_name() -> str:
    env = os.environ.get(BACKEND_ENV, "").strip()
    if env:
        return env
    names = available_backends()
    if not names:
        raise BackendError(_explain("no backend is installed"))
    return names[0]


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name`` (default: ``FEATURELENS_BACKEND``, else the first installed)."""
    return _load(name or default_backend_name())


@functools.cache
def _load(name: str) -> Backend:
    entries = registry().backends
    if name not in entries:
        raise BackendError(_explain(f"unknown backend {name!r}"))
    entry = entries[name]
    missing = entry.missing()
    if missing:
        raise BackendError(
            f"the {name!r} backend needs {', '.join(missing)}, which is not installed; "
            f"install it with: {entry.install or 'pip install ' + ' '.join(missing)}"
        )
    try:
        backend = entry.load()
    except Exception as exc:
        raise BackendError(
            f"the {name!r} backend failed to load: {type(exc).__name__}: {exc} "
            "(the traceback above shows where)"
        ) from exc
    if not isinstance(backend, Backend):
        raise BackendError(f"the {name!r} backend's loader returned {backend!r}, not a Backend")
    return backend


def _explain(problem: str) -> str:
    lines = [problem + "."]
    statuses = backend_status()
    installed = [s.name for s in statuses if s.installed]
    lines.append("Installed backends: " + (", ".join(installed) if installed else "none") + ".")
    for s in statuses:
        if not s.installed:
            lines.append(f"Not installed: {s.name} (install with: {s.install}).")
    if not installed and not any(not s.installed for s in statuses):
        lines.append("Install one with: pip install 'featurelens[torch]'.")
    for failure in registry().failures:
        lines.append(f"The plugin {failure.name!r} ({failure.target}) failed to load: {failure.error}")
    return " ".join(lines)


def clear_cache() -> None:
    _load.cache_clear()
