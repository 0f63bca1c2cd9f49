"""The hooks a featurelens plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`featurelens.backends.hookimpl`,
announced to featurelens through the ``featurelens`` entry-point group of its distribution::

    [project.entry-points.featurelens]
    mybackend = "mypackage.plugin"

The built-in PyTorch and Keras backends, the built-in report figures, datasets and experiment
loggers register through exactly this mechanism.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from featurelens.backends.contract import BackendEntry
    from featurelens.backends.datasets import DatasetEntry
    from featurelens.backends.figures import ReportFigure
    from featurelens.backends.loggers import LoggerEntry
    from featurelens.spec import ModelSpec

PROJECT = "featurelens"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def featurelens_register_backends(register: Callable[[BackendEntry], None]) -> None:
    """Register training/introspection backends by calling ``register(BackendEntry(...))``.

    Called once, when featurelens first needs its backends. Registration must be cheap: the entry
    names the framework modules it ``requires`` and a ``load`` callable that imports the framework
    only when the backend is used, so listing backends never imports torch or keras.
    """


@hookspec
def featurelens_register_presets(register: Callable[[str, Callable[[], ModelSpec]], None]) -> None:
    """Register named model specs by calling ``register(name, factory)``.

    ``factory()`` returns a :class:`~featurelens.spec.ModelSpec`; the name becomes usable as
    ``--preset NAME`` on the command line and with :func:`featurelens.get_preset`.
    """


@hookspec
def featurelens_register_figures(register: Callable[[ReportFigure], None]) -> None:
    """Register report figures by calling ``register(ReportFigure(...))``.

    A :class:`~featurelens.backends.ReportFigure` names a function of a
    :class:`~featurelens.backends.ReportContext` (the model, the test data and what the report
    already computed) that returns a matplotlib Figure, several (one per layer, say) or ``None``
    when it does not apply to this model. ``featurelens visualize`` writes every registered
    figure, in ``order``, with its title and caption, into the PNG folder and its ``index.html``.
    """


@hookspec
def featurelens_register_datasets(register: Callable[[DatasetEntry], None]) -> None:
    """Register datasets by calling ``register(DatasetEntry(...))``.

    A :class:`~featurelens.backends.DatasetEntry` names a ``load`` callable taking the keyword
    arguments ``data_dir``, ``download`` and ``progress`` and returning a
    :class:`featurelens.Dataset`; the name becomes usable with :func:`featurelens.load_dataset`
    and as ``--dataset NAME`` on the command line. Registration must be cheap: read nothing until
    ``load`` is called. Two datasets of one name are an error.
    """


@hookspec
def featurelens_register_loggers(register: Callable[[LoggerEntry], None]) -> None:
    """Register experiment loggers by calling ``register(LoggerEntry(...))``.

    A :class:`~featurelens.backends.LoggerEntry` names a ``create`` callable returning a new
    :class:`~featurelens.backends.Logger` for one training run, which then receives the run's
    start, every finished epoch (its metrics and the model's first-layer filters and probe
    feature maps, as numpy arrays) and its end. The name becomes usable as ``--log NAME`` on the
    command line and in ``featurelens.train(..., loggers=[NAME])``. Registration must be cheap:
    ``requires`` names the modules the logger needs and ``create`` imports them. Two loggers of
    one name are an error.
    """
