"""The plugin surface: everything a backend, figure or dataset plugin imports from featurelens.

A plugin imports ``featurelens`` and ``featurelens.backends`` and nothing else of featurelens; the
built-in PyTorch and Keras backends are held to that by a test. Here are the contract
(:class:`Backend`, :class:`Capability`, :class:`BackendEntry`, :class:`LayerInfo`), the objectives
of :meth:`Backend.value_and_grad` (:class:`ClassScore`, :class:`ChannelMean`, :class:`Unit`) and its
result (:class:`Gradients`), feature maps reduced per channel (:class:`ChannelSummary`,
:data:`Floors`, :data:`UNLOCATED`, :func:`flat_to_yx`), the :class:`EpochObserver` a trainer calls
after every epoch, the training state a trainer exports and resumes from (:class:`TrainingState`,
:class:`Checkpointer`, :func:`stream_seed`), the error a diverged run raises
(:class:`TrainingDivergedError`), which process this is in a data-parallel run
(:func:`is_main_process`, :func:`process_rank`, :func:`local_rank`, :func:`world_size`), the dataset
entry (:class:`DatasetEntry`), experiment loggers (:class:`LoggerEntry`, :class:`Logger` and what it
receives: :class:`RunStart`, :class:`EpochView`, :class:`RunEnd`), the hook marker and the
:data:`registry`, and the parts of the core a backend needs: the spec it builds, the training config
it follows, the Keras-exact early-stopping and LR-reduction state machines, the History it returns,
the canonical weight names, and probability helpers.

The conformance kit, :mod:`featurelens.testing`, checks a backend against this contract.
"""

from featurelens.backends.contract import Backend, BackendEntry, Capability, EpochObserver
from featurelens.backends.datasets import DatasetEntry
from featurelens.backends.figures import Panel, ReportContext, ReportFigure
from featurelens.backends.hookspecs import hookimpl
from featurelens.backends.layers import LayerInfo, LayerNotFoundError, unknown_layer
from featurelens.backends.loggers import EpochView, Logger, LoggerEntry, RunEnd, RunStart
from featurelens.backends.objectives import ChannelMean, ClassScore, Gradients, Objective, Unit, checked_request
from featurelens.backends.registry import (
    BackendStatus,
    PluginFailure,
    Registry,
    available_backends,
    backend_status,
    get_backend,
    register_plugin,
    registry,
    unregister_plugin,
)
from featurelens.backends.state import Checkpointer, TrainingState, stream_seed
from featurelens.backends.summaries import UNLOCATED, ChannelSummary, Floors, flat_to_yx
from featurelens.callbacks import EarlyStopper, LRReducer, mode_for
from featurelens.config import EarlyStopping, ReduceLROnPlateau, TrainConfig
from featurelens.distributed import is_main_process, local_rank, process_rank, world_size
from featurelens.errors import (
    BackendError,
    ConfigError,
    DataError,
    FeaturelensError,
    InputError,
    RunFolderError,
    SpecError,
    TrainingDivergedError,
)
from featurelens.evaluation import as_probabilities, looks_like_probabilities
from featurelens.history import EpochRecord, History
from featurelens.spec import LayerSpec, ModelSpec
from featurelens.weights import BN_PARAMS, canonical_shapes

__all__ = [
    "BN_PARAMS", "Backend", "BackendEntry", "BackendError", "BackendStatus", "Capability", "ChannelMean",
    "ChannelSummary", "ClassScore", "ConfigError", "DataError", "DatasetEntry", "EarlyStopper", "EarlyStopping",
    "EpochObserver", "EpochRecord",
    "EpochView", "FeaturelensError", "Gradients", "History", "InputError", "LRReducer", "LayerInfo",
    "LayerNotFoundError", "LayerSpec", "Logger", "LoggerEntry", "ModelSpec", "Objective", "Panel", "PluginFailure",
    "ReduceLROnPlateau", "Registry", "ReportContext", "ReportFigure", "RunEnd", "RunStart", "SpecError", "TrainConfig",
    "Unit", "as_probabilities", "checked_request", "available_backends",
    "backend_status", "canonical_shapes", "get_backend", "hookimpl", "looks_like_probabilities", "mode_for",
    "register_plugin", "registry", "unknown_layer", "unregister_plugin",
    "Checkpointer", "RunFolderError", "TrainingState", "TrainingDivergedError", "stream_seed",
    "is_main_process", "local_rank", "process_rank", "world_size",
    "Floors", "UNLOCATED", "flat_to_yx",
]
