"""The plugin manager: finds plugins through entry points and collects what they register.

Built lazily on first use and cached. Plugins listed in ``FEATURELENS_DISABLE_PLUGINS``
(comma-separated entry-point names) are skipped. A plugin that fails to import is remembered with
its real error, so that the error a user finally sees names the cause instead of only saying a
backend is unknown.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from featurelens import hookspecs
from featurelens.backend import BackendEntry
from featurelens.errors import BackendError
from featurelens.spec import ModelSpec

ENTRY_POINT_GROUP = "featurelens"
DISABLE_ENV = "FEATURELENS_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin whose entry point could not be loaded, with the real cause."""

    name: str
    target: str
    error: str
    traceback: str


@dataclass
class Registry:
    """Everything the plugins registered."""

    backends: dict[str, BackendEntry] = field(default_factory=dict)
    presets: dict[str, Callable[[], ModelSpec]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def add_backend(self, entry: BackendEntry) -> None:
        if not isinstance(entry, BackendEntry):
            raise BackendError(
                f"a plugin registered {entry!r}; register featurelens.BackendEntry objects"
            )
        if entry.name in self.backends:
            raise BackendError(
                f"two plugins register a backend named {entry.name!r}; disable one with "
                f"{DISABLE_ENV}=<entry point name>"
            )
        self.backends[entry.name] = entry

    def add_preset(self, name: str, factory: Callable[[], ModelSpec]) -> None:
        self.presets[name] = factory


_failures: list[PluginFailure] = []


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every enabled entry-point plugin registered."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    _failures.clear()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure must reach the user with its cause
            _failures.append(PluginFailure(ep.name, ep.value, f"{type(exc).__name__}: {exc}",
                                           traceback.format_exc()))
            continue
        pm.register(plugin, name=ep.name)
    pm.check_pending()
    return pm


@functools.cache
def registry() -> Registry:
    """Backends and presets registered by every plugin (built once, then cached)."""
    pm = get_plugin_manager()
    reg = Registry(failures=list(_failures))
    pm.hook.featurelens_register_backends(register=reg.add_backend)
    pm.hook.featurelens_register_presets(register=reg.add_preset)
    return reg


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin object or module (notebooks, tests, gallery examples)."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    pm.check_pending()
    registry.cache_clear()


def unregister_plugin(name: str) -> None:
    get_plugin_manager().unregister(name=name)
    registry.cache_clear()


def reset() -> None:
    """Forget every plugin so the next use rediscovers entry points (tests use this)."""
    registry.cache_clear()
    get_plugin_manager.cache_clear()
