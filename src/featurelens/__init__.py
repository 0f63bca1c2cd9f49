"""featurelens: build, train and look inside convolutional networks, on PyTorch or Keras 3.

Importing featurelens never imports a deep-learning framework; a backend's framework is imported
the first time that backend is used. Plugins (backends, presets, figures, datasets) use
:mod:`featurelens.backends`; the conformance kit for backends is :mod:`featurelens.testing`.
"""

from __future__ import annotations

from featurelens._version import __version__
from featurelens.backends.layers import LayerInfo, LayerNotFoundError
from featurelens.backends.registry import (
    available_backends,
    backend_status,
    get_backend,
    register_plugin,
)
from featurelens.config import EarlyStopping, ReduceLROnPlateau, TrainConfig
from featurelens.data import (
    Dataset,
    available_datasets,
    load_cifar10,
    load_dataset,
    load_image_folder,
    per_class_subset,
    train_val_split,
)
from featurelens.distributed import is_main_process
from featurelens.errors import (
    BackendError,
    ConfigError,
    DataError,
    FeaturelensError,
    InputError,
    ModelFolderError,
    ModelFolderWarning,
    NonFiniteError,
    RunFolderError,
    SpecError,
    TrainingDivergedError,
)
from featurelens.evaluation import Evaluation
from featurelens.folder_check import PartCheck, accept_folder, verify_folder
from featurelens.history import EpochRecord, History
from featurelens.model import Model, SpecModel, WrappedModel, load_model
from featurelens.normalization import Normalization
from featurelens.presets import available_presets, get_preset
from featurelens.spec import ConvBlock, DenseBlock, LayerSpec, ModelSpec
from featurelens.training import build_model, fit, resume, train
from featurelens.wrap import wrap

__all__ = [
    "BackendError", "ConfigError", "ConvBlock", "DataError", "Dataset", "DenseBlock", "EarlyStopping",
    "EpochRecord", "Evaluation", "FeaturelensError", "History", "InputError", "LayerInfo",
    "LayerNotFoundError", "LayerSpec", "Model", "ModelFolderError", "ModelFolderWarning", "ModelSpec",
    "NonFiniteError", "Normalization", "PartCheck", "ReduceLROnPlateau", "SpecError", "SpecModel", "TrainConfig",
    "WrappedModel", "__version__", "accept_folder", "verify_folder",
    "available_backends", "available_datasets", "fit", "available_presets", "backend_status",
    "build_model", "get_backend", "get_preset", "load_cifar10", "load_dataset", "load_image_folder",
    "load_model", "per_class_subset", "register_plugin", "train", "train_val_split", "wrap",
    "RunFolderError", "TrainingDivergedError", "is_main_process", "resume",
]
