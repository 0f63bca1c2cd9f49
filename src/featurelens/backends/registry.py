"""The registry: one object owning the plugin manager, what plugins registered, and loaded backends.

Plugins are found through the ``featurelens`` entry-point group the first time anything is asked
of the registry. Plugins listed in ``FEATURELENS_DISABLE_PLUGINS`` (comma-separated entry-point
names) are skipped. A plugin that fails to import is remembered with its real error, so that the
error a user finally sees names the cause instead of only saying a backend is unknown.
:meth:`Registry.reset` forgets all of it at once.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from featurelens.backends import hookspecs
from featurelens.backends.contract import Backend, BackendEntry, Capability
from featurelens.backends.datasets import DatasetEntry
from featurelens.backends.figures import ReportFigure
from featurelens.backends.loggers import LoggerEntry
from featurelens.errors import BackendError
from featurelens.spec import ModelSpec

ENTRY_POINT_GROUP = "featurelens"
DISABLE_ENV = "FEATURELENS_DISABLE_PLUGINS"
BACKEND_ENV = "FEATURELENS_BACKEND"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin whose entry point could not be loaded, with the real cause."""

    name: str
    target: str
    error: str
    traceback: str


@dataclass(frozen=True)
class BackendStatus:
    """A registered backend as ``featurelens backends`` reports it."""

    name: str
    installed: bool
    missing: tuple[str, ...]
    install: str
    description: str


_Named = TypeVar("_Named", BackendEntry, ReportFigure, DatasetEntry, LoggerEntry)


def _adder(store: dict[str, _Named], kind: type[_Named], what: str) -> Callable[[_Named], None]:
    """The ``register`` a hook gets: it takes ``kind`` objects with names unique in ``store``."""

    def add(entry: _Named) -> None:
        if not isinstance(entry, kind):
            raise BackendError(f"a plugin registered {entry!r} as a {what}; register "
                               f"featurelens.backends.{kind.__name__} objects")
        if entry.name in store:
            raise BackendError(f"two plugins register a {what} named {entry.name!r}; disable "
                               f"one with {DISABLE_ENV}=<entry point name>")
        store[entry.name] = entry

    return add


class Registry:
    """Plugins, what they registered (backends, presets, figures, datasets, loggers), their failures, loaded
    backends."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self._pm: pluggy.PluginManager | None = None
        self._failures: list[PluginFailure] = []
        self._collected: tuple[dict[str, BackendEntry], dict[str, Callable[[], ModelSpec]],
                               dict[str, ReportFigure], dict[str, DatasetEntry], dict[str, LoggerEntry]] | None = None
        self._loaded: dict[str, Backend] = {}

    # -- discovery -------------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager with every enabled entry-point plugin registered."""
        if self._pm is None:
            self._pm = self._discover()
        return self._pm

    def _discover(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        self._failures = []
        for ep in entry_points(group=self.group):
            if ep.name in disabled or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure must reach the user with its cause
                self._failures.append(PluginFailure(ep.name, ep.value, f"{type(exc).__name__}: {exc}",
                                                    traceback.format_exc()))
                continue
            pm.register(plugin, name=ep.name)
        pm.check_pending()
        return pm

    def _collect(self) -> tuple[dict[str, BackendEntry], dict[str, Callable[[], ModelSpec]],
                                dict[str, ReportFigure], dict[str, DatasetEntry], dict[str, LoggerEntry]]:
        if self._collected is None:
            backends: dict[str, BackendEntry] = {}
            presets: dict[str, Callable[[], ModelSpec]] = {}
            figures: dict[str, ReportFigure] = {}
            datasets: dict[str, DatasetEntry] = {}
            loggers: dict[str, LoggerEntry] = {}

            def add_preset(name: str, factory: Callable[[], ModelSpec]) -> None:
                presets[name] = factory

            hook = self.plugin_manager.hook
            hook.featurelens_register_backends(register=_adder(backends, BackendEntry, "backend"))
            hook.featurelens_register_presets(register=add_preset)
            hook.featurelens_register_figures(register=_adder(figures, ReportFigure, "figure"))
            hook.featurelens_register_datasets(register=_adder(datasets, DatasetEntry, "dataset"))
            hook.featurelens_register_loggers(register=_adder(loggers, LoggerEntry, "logger"))
            ordered = sorted(backends.values(), key=lambda e: (-e.priority, e.name))
            self._collected = ({e.name: e for e in ordered}, presets,
                               dict(sorted(figures.items(), key=lambda kv: (kv[1].order, kv[0]))),
                               dict(sorted(datasets.items())), dict(sorted(loggers.items())))
        return self._collected

    @property
    def backends(self) -> dict[str, BackendEntry]:
        """Every registered backend entry, installed or not, highest priority first."""
        return self._collect()[0]

    @property
    def presets(self) -> dict[str, Callable[[], ModelSpec]]:
        """Spec factories registered by plugins, by name."""
        return self._collect()[1]

    @property
    def figures(self) -> dict[str, ReportFigure]:
        """Report figures registered by plugins (the built-in ones included), in report order."""
        return self._collect()[2]

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        """Datasets registered by plugins (the built-in ones included), by name."""
        return self._collect()[3]

    @property
    def loggers(self) -> dict[str, LoggerEntry]:
        """Experiment loggers registered by plugins (the built-in ones included), by name."""
        return self._collect()[4]

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins whose entry point failed to import, with the cause."""
        self.plugin_manager  # noqa: B018 - discovery records the failures
        return list(self._failures)

    # -- changing what is registered ---------------------------------------------------------------

    def register_plugin(self, plugin: Any, name: str | None = None) -> None:
        """Register an in-process plugin object or module (notebooks, tests, gallery examples)."""
        self.plugin_manager.register(plugin, name=name)
        self.plugin_manager.check_pending()
        self._forget_registrations()

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin registered under ``name`` (an entry-point name or ``register_plugin``'s)."""
        self.plugin_manager.unregister(name=name)
        self._forget_registrations()

    def reset(self) -> None:
        """Forget every plugin, registration, failure and loaded backend: the next use rediscovers."""
        self._pm = None
        self._failures = []
        self._forget_registrations()

    def _forget_registrations(self) -> None:
        self._collected = None
        self._loaded.clear()

    # -- backends ------------------------------------------------------------------------------------

    def status(self) -> list[BackendStatus]:
        """Every registered backend, installed or not, with how to install it."""
        return [BackendStatus(e.name, not e.missing(), tuple(e.missing()), e.install, e.description)
                for e in self.backends.values()]

    def available(self) -> list[str]:
        """Names of the backends whose framework is installed, in default-choice order."""
        return [s.name for s in self.status() if s.installed]

    def default_name(self) -> str:
        """``FEATURELENS_BACKEND`` if set, else the installed backend of highest priority."""
        env = os.environ.get(BACKEND_ENV, "").strip()
        if env:
            return env
        names = self.available()
        if not names:
            raise BackendError(self.explain("no backend is installed"))
        return names[0]

    def get(self, name: str | None = None) -> Backend:
        """The loaded backend called ``name`` (default: :meth:`default_name`), loaded once."""
        name = name or self.default_name()
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> Backend:
        entries = self.backends
        if name not in entries:
            raise BackendError(self.explain(f"unknown backend {name!r}"))
        entry = entries[name]
        missing = entry.missing()
        if missing:
            raise BackendError(
                f"the {name!r} backend needs {', '.join(missing)}, which is not installed; "
                f"install it with: {entry.install or 'pip install ' + ' '.join(missing)}")
        try:
            backend = entry.load()
        except Exception as exc:
            raise BackendError(f"the {name!r} backend failed to load: {type(exc).__name__}: {exc} "
                               "(the traceback above shows where)") from exc
        if not isinstance(backend, Backend):
            raise BackendError(f"the {name!r} backend's loader returned {backend!r}, not a "
                               "featurelens.backends.Backend")
        if backend.name != entry.name:
            raise BackendError(f"the backend registered as {entry.name!r} calls itself {backend.name!r}; "
                               "set the Backend subclass's `name` to its BackendEntry's name")
        unknown = [c for c in backend.capabilities if not isinstance(c, Capability)]
        if unknown:
            raise BackendError(f"the {name!r} backend declares unknown capabilities {unknown!r}; use "
                               f"featurelens.backends.Capability members ({', '.join(c.value for c in Capability)})")
        return backend

    def detect(self, native: Any) -> Backend:
        """The installed backend that accepts ``native`` (a model a user built), by priority."""
        for entry in self.backends.values():
            # only frameworks the user already imported can own the object; never import one here
            if entry.requires and not all(mod in sys.modules for mod in entry.requires):
                continue
            if entry.missing():
                continue
            backend = self.get(entry.name)
            if backend.supports(Capability.WRAP) and backend.accepts(native):
                return backend
        wrappers = [e.name for e in self.backends.values() if not e.missing()]
        raise BackendError(f"no installed backend recognises a {type(native).__module__}."
                           f"{type(native).__qualname__}; pass backend=NAME explicitly (installed: "
                           f"{', '.join(wrappers) or 'none'})")

    def explain(self, problem: str) -> str:
        """``problem`` plus what is installed, what is not and which plugins failed to load."""
        lines = [problem + "."]
        statuses = self.status()
        installed = [s.name for s in statuses if s.installed]
        lines.append("Installed backends: " + (", ".join(installed) if installed else "none") + ".")
        lines += [f"Not installed: {s.name} (install with: {s.install})." for s in statuses if not s.installed]
        if not statuses:
            lines.append("Install one with: pip install 'featurelens[torch]'.")
        lines += [f"The plugin {f.name!r} ({f.target}) failed to load: {f.error}" for f in self.failures]
        return " ".join(lines)


#: The process-wide registry.
registry = Registry()


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name`` (default: ``FEATURELENS_BACKEND``, else the first installed)."""
    return registry.get(name)


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, in default-choice order."""
    return registry.available()


def backend_status() -> list[BackendStatus]:
    """Every registered backend, installed or not, with how to install it."""
    return registry.status()


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin object or module (notebooks, tests, gallery examples)."""
    registry.register_plugin(plugin, name=name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered under ``name``."""
    registry.unregister_plugin(name)
