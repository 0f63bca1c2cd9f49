"""featurelens: build, train and look inside convolutional networks, on PyTorch or Keras 3.

Importing featurelens never imports a deep-learning framework; a backend's framework is imported
the first time that backend is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from featurelens.backend import Backend, BackendEntry
from featurelens.backends import available_backends, backend_status, get_backend
from featurelens.config import EarlyStopping, ReduceLROnPlateau, TrainConfig
from featurelens.data import Dataset, load_cifar10, per_class_subset, train_val_split
from featurelens.errors import (
    BackendError,
    ConfigError,
    DataError,
    FeaturelensError,
    ModelFolderError,
    SpecError,
)
from featurelens.evaluation import Evaluation
from featurelens.history import EpochRecord, History
from featurelens.hookspecs import hookimpl
from featurelens.introspect import LayerInfo, LayerNotFoundError
from featurelens.model import Model
from featurelens.modeldir import load_model
from featurelens.normalization import Normalization
from featurelens.plugins import register_plugin
from featurelens.presets import available_presets, get_preset
from featurelens.spec import ConvBlock, DenseBlock, LayerSpec, ModelSpec
from featurelens.training import build_model, train
from featurelens.wrap import wrap

__all__ = [
    "Backend", "BackendEntry", "BackendError", "ConfigError", "ConvBlock", "DataError", "Dataset",
    "DenseBlock", "EarlyStopping", "EpochRecord", "Evaluation", "FeaturelensError", "History",
    "LayerSpec", "Model", "ModelFolderError", "ModelSpec", "Normalization", "ReduceLROnPlateau",
    "SpecError", "TrainConfig", "__version__", "available_backends", "available_presets",
    "backend_status", "build_model", "get_backend", "get_preset", "hookimpl", "load_cifar10",
    "load_model", "per_class_subset", "register_plugin", "train", "train_val_split", "wrap",
    "LayerInfo", "LayerNotFoundError",
]
