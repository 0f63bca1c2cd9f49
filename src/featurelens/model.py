"""A model, whatever the backend, with what it needs to be used.

Two kinds, made explicit:

- :class:`SpecModel`, built by featurelens from a :class:`~featurelens.spec.ModelSpec` (trained,
  loaded from a folder or converted): it has a spec, can be saved as a model folder and moved to
  another backend.
- :class:`WrappedModel`, a model the user built with a framework (:func:`featurelens.wrap`,
  :func:`featurelens.fit`): layers are the framework's own; it can be trained, inspected, used
  for predictions and saved (its weights under the framework's names, its architecture as far as
  the framework describes it without pickle).

Both share :class:`Model`'s interface. Users hand them images as loaded (uint8 or float in the
0-255 scale, (N, H, W, C)); the model normalizes them itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.layers import LayerInfo
from featurelens.backends.registry import get_backend
from featurelens.backends.summaries import ChannelSummary, Floors
from featurelens.errors import FeaturelensError, InputError, ModelFolderError, NonFiniteError
from featurelens.evaluation import Evaluation, evaluate_probabilities
from featurelens.history import History
from featurelens.modeldir import FolderContents, read_folder, write_folder, write_wrapped_folder
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec

if TYPE_CHECKING:
    from featurelens.atlas.snapshots import Snapshots


TTA_MODES = (None, "flip")


class Model:
    """A backend's native model plus its normalization and class names: predict and look inside."""

    def __init__(self, backend: Backend, native: Any, normalization: Normalization,
                 class_names: Sequence[str] | None, input_shape: tuple[int, int, int]) -> None:
        self.backend = backend
        self.native = native
        self.input_shape: tuple[int, int, int] = tuple(input_shape)  # type: ignore[assignment]
        self.normalization = normalization
        self.class_names = tuple(class_names) if class_names is not None else None
        self.history: History | None = None
        self.train_config: dict[str, Any] | None = None
        #: How the filters and probe feature maps formed in training, when the config recorded them.
        self.snapshots: Snapshots | None = None
        #: Parts of the folder the model was loaded from that it had to do without (``history.json``, ...),
        #: with what is wrong with each; the figures that need them say so.
        self.folder_problems: dict[str, str] = {}

    @property
    def name(self) -> str:
        """A short name for titles and messages."""
        return type(self.native).__name__

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, backend={self.backend.name!r}, "
                f"device={self.backend.device(self.native)!r})")

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Raise a clear error unless ``images`` is (N, H, W, C) as the model expects."""
        images = np.asarray(images)
        if images.ndim == 3:
            raise InputError(f"expected a batch (N, H, W, C) but got one image of shape {images.shape}; "
                             "wrap it as images[None]")
        expected = self.input_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            hint = ""
            if images.ndim == 4 and tuple(images.shape[1:]) == (expected[2], expected[0], expected[1]):
                hint = "; these look channels-first, transpose them with images.transpose(0, 2, 3, 1)"
            raise InputError(f"expected images of shape (N, {', '.join(map(str, expected))}) "
                             f"(channels last) but got {images.shape}{hint}")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise InputError(f"images must be numeric (uint8 or float), not {images.dtype}")
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            bad = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1))
            raise InputError(f"{len(bad)} of the images hold NaN or infinite pixel values (the first: index {bad[0]}); "
                             "give pixel values as loaded (0-255)")
        return images

    def normalize(self, images: np.ndarray) -> np.ndarray:
        return self.normalization.apply(self.check_images(images))

    def predict(self, images: np.ndarray, batch_size: int = 256, tta: str | None = None) -> np.ndarray:
        """Class probabilities (N, num_classes) float32; rows sum to 1.

        ``tta="flip"`` (test-time augmentation) averages the probabilities of each image and of its
        left-right mirror, the augmentation CIFAR models are trained with: one more forward pass
        for usually a few tenths of a point of accuracy.
        """
        if tta not in TTA_MODES:
            raise InputError(f"tta must be None or 'flip', got {tta!r}")
        x = self.normalize(images)
        probs = self.backend.predict(self.native, x, batch_size=batch_size)
        if tta == "flip":
            mirrored = self.backend.predict(self.native, np.ascontiguousarray(x[:, :, ::-1]), batch_size=batch_size)
            probs = ((probs.astype(np.float64) + mirrored) / 2).astype(np.float32)
        if not np.isfinite(probs).all():  # finite images in: the model itself is broken, never answer NaN
            bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
            raise NonFiniteError(f"{self.name} gives NaN or infinite probabilities for {len(bad)} of {len(probs)} "
                                 f"images (the first: index {bad[0]}): its weights are damaged or training diverged; "
                                 "train it again (a lower learning rate) or load an intact copy")
        return probs

    def evaluate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 256,
                 tta: str | None = None) -> Evaluation:
        """Loss, accuracy, per-class accuracy and confusion matrix on ``images`` (``tta``: see :meth:`predict`)."""
        probs = self.predict(images, batch_size, tta=tta)
        names = self.class_names or tuple(str(i) for i in range(probs.shape[1]))
        return evaluate_probabilities(probs, labels, names)

    # -- looking inside ----------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        """Every layer in execution order: name, kind, output shape (channels last), parameters."""
        self.backend.require(Capability.INTROSPECT, "list layers")
        return self.backend.layers(self.native, self.input_shape)

    def conv_layers(self) -> list[str]:
        """Names of the convolution layers, in order."""
        return [info.name for info in self.layers() if info.kind == "conv2d"]

    def filters(self, layer: str) -> np.ndarray:
        """The kernels of conv layer ``layer``, (C_out, kh, kw, C_in) float32."""
        self.backend.require(Capability.INTROSPECT, "show filters")
        return self.backend.filters(self.native, layer)

    def iter_feature_maps(self, images: np.ndarray, layers: list[str] | None = None,
                          batch_size: int = 256) -> Iterator[dict[str, np.ndarray]]:
        """Yield ``{layer: (n, H, W, C)}`` batch by batch: memory stays bounded for any N."""
        self.backend.require(Capability.INTROSPECT, "compute feature maps")
        for chunk in self._normalized_batches(images, batch_size):
            yield from self.backend.feature_maps(self.native, chunk, layers, batch_size)

    def iter_channel_summaries(self, images: np.ndarray, layers: list[str], batch_size: int = 64,
                               floors: Floors | None = None) -> Iterator[dict[str, ChannelSummary]]:
        """Yield ``{layer: ChannelSummary}`` batch by batch: per image and channel of each layer, the
        largest activation, its position and the mean, reduced by the backend where the maps are.

        ``floors`` (per layer, per channel; read before each batch, so the caller may raise them
        as it goes): positions are only looked up for maxima above them (``(-1, -1)`` elsewhere).
        """
        self.backend.require(Capability.INTROSPECT, "summarize feature maps")
        for chunk in self._normalized_batches(images, batch_size):
            yield from self.backend.channel_summaries(self.native, chunk, layers, batch_size, floors)

    def _normalized_batches(self, images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        """``images`` checked, then normalized ``batch_size`` at a time (only one batch in memory)."""
        images = self.check_images(images)
        for start in range(0, len(images), batch_size):
            yield self.normalization.apply(images[start:start + batch_size])

    def feature_maps(self, images: np.ndarray, layers: list[str] | str | None = None,
                     batch_size: int = 256) -> dict[str, np.ndarray]:
        """``{layer: (N, H, W, C)}`` float32 for ``layers`` (default: every layer) of ``images``.

        Images are given as loaded and normalized the way the model was trained. Each batch
        takes one forward pass in inference mode that records every requested layer. On the CPU
        the arrays may share memory with the framework's outputs (no copy is made; layers that
        return their input unchanged, such as dropout at inference, share it), so copy an array
        before changing it in place.
        """
        if isinstance(layers, str):
            layers = [layers]
        images = self.check_images(images)
        if len(images) <= batch_size:  # one pass: hand over the backend's arrays as they are
            return next(iter(self.iter_feature_maps(images, layers, batch_size)), {})
        out: dict[str, np.ndarray] = {}
        filled = 0
        for batch in self.iter_feature_maps(images, layers, batch_size):
            n = len(next(iter(batch.values())))
            for name, array in batch.items():
                if name not in out:  # allocate once: no list of batches, no concatenate copy
                    out[name] = np.empty((len(images), *array.shape[1:]), np.float32)
                out[name][filled:filled + n] = array
            filled += n
        return out


class SpecModel(Model):
    """A model featurelens built from a spec: saved as a folder, loadable by every backend."""

    def __init__(self, backend: Backend, native: Any, spec: ModelSpec, normalization: Normalization,
                 class_names: Sequence[str], history: History | None = None,
                 train_config: dict[str, Any] | None = None) -> None:
        if len(class_names) != spec.num_classes:
            raise InputError(f"{len(class_names)} class names for a {spec.num_classes}-class spec; "
                             "give one name per class")
        super().__init__(backend, native, normalization, class_names, spec.input_shape)
        self.spec = spec
        self.history = history
        self.train_config = train_config

    @property
    def name(self) -> str:
        return self.spec.name

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model folder (spec, weights, normalization, classes, history, snapshots, versions)."""
        return write_folder(folder, backend=self.backend.name, backend_versions=self.backend.versions(),
                            spec=self.spec, weights=self.backend.get_weights(self.native),
                            normalization=self.normalization, class_names=tuple(self.class_names or ()),
                            history=self.history, train_config=self.train_config, overwrite=overwrite,
                            snapshots=self.snapshots)


class WrappedModel(Model):
    """A model the user built with a framework; see :func:`featurelens.wrap` and :func:`featurelens.fit`."""

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write a model folder: the weights under the framework's own names (safetensors), the
        architecture as the backend records it, normalization, classes, history, snapshots. Load it with
        ``featurelens.load_model(folder, model=...)`` (see there)."""
        self.backend.require(Capability.WRAP, "save models users built")
        return write_wrapped_folder(
            folder, backend=self.backend.name, backend_versions=self.backend.versions(),
            architecture=self.backend.architecture(self.native), input_shape=self.input_shape,
            weights=self.backend.native_weights(self.native), normalization=self.normalization,
            class_names=self.class_names, history=self.history, train_config=self.train_config,
            overwrite=overwrite, snapshots=self.snapshots)


def load_model(folder: str | os.PathLike[str], backend: str | Backend | None = None, *,
               model: Any = None, verify: bool = True) -> Model:
    """Load a model folder with the backend that wrote it (or ``backend`` to override).

    A folder of a spec-built model loads in any backend. A folder of a model the user built loads
    in the backend that wrote it: pass ``model``, a freshly built instance of the same architecture
    or a function (or class) returning one, whose weights are then replaced by the saved ones.
    Without it the backend rebuilds the architecture from its record where it can do so without
    running stored code (Keras models made of built-in layers); otherwise the error says so.

    Every part of the folder is checked (see :func:`featurelens.modeldir.read_folder`): weights
    that are not all finite or do not fit are refused, and with ``verify`` (the default) so are a
    ``featurelens.json`` or weights that changed since the folder was saved (their sha256 differs
    from the recorded one). ``verify=False`` loads such a folder anyway;
    :func:`featurelens.accept_folder` (``featurelens verify --accept``) records its new hashes for
    good. A damaged history or snapshots file is left out with a warning and named in
    ``model.folder_problems``.
    """
    contents = read_folder(folder, verify=verify)
    chosen = backend if isinstance(backend, Backend) else get_backend(backend or contents.backend)
    if contents.spec is None:
        return _load_wrapped(folder, contents, chosen, model)
    if model is not None:
        raise InputError(f"{folder} holds a featurelens spec, which builds the model itself; drop model=")
    native = chosen.build(contents.spec)
    try:
        chosen.set_weights(native, contents.weights)
    except Exception as exc:  # a backend's own error: say which folder and backend
        raise ModelFolderError(f"the {chosen.name} backend could not take the weights of {folder}: "
                               f"{type(exc).__name__}: {exc}") from exc
    loaded = SpecModel(chosen, native, contents.spec, contents.normalization, contents.class_names,
                       history=contents.history, train_config=contents.train_config)
    loaded.snapshots, loaded.folder_problems = contents.snapshots, dict(contents.problems)
    return loaded


def _load_wrapped(folder: str | os.PathLike[str], contents: FolderContents, backend: Backend,
                  model: Any) -> WrappedModel:
    if backend.name != contents.backend:
        raise ModelFolderError(f"{folder} holds a {contents.backend} model built by its user; it loads only in "
                               f"the {contents.backend} backend, not {backend.name}")
    backend.require(Capability.WRAP, "load models users built")
    recorded = (contents.architecture or {}).get("class", "?")
    if model is None:
        try:
            native = backend.rebuild(contents.architecture or {})
        except FeaturelensError:
            raise
        except Exception as exc:  # a backend's own error on a damaged record
            raise ModelFolderError(f"the {backend.name} backend could not rebuild the {recorded} of {folder} from "
                                   f"its record ({type(exc).__name__}: {exc}); pass model= to load_model") from exc
    elif backend.accepts(model):
        native = model
    elif callable(model):
        native = model()
        if not backend.accepts(native):
            raise InputError(f"model= returned a {type(native).__qualname__}, not a {backend.name} model; "
                             f"pass a {recorded} or a function building one")
    else:
        raise InputError(f"model= must be a {backend.name} model ({recorded}) or a function building one, "
                         f"not a {type(model).__qualname__}")
    try:
        backend.load_native_weights(native, contents.weights, contents.input_shape)
    except FeaturelensError:
        raise
    except Exception as exc:
        raise ModelFolderError(f"the weights of {folder} do not fit the given model ({recorded} was saved): "
                               f"{type(exc).__name__}: {exc}") from exc
    wrapped = WrappedModel(backend, native, contents.normalization, contents.class_names or None,
                           contents.input_shape)
    wrapped.history, wrapped.train_config = contents.history, contents.train_config
    wrapped.snapshots, wrapped.folder_problems = contents.snapshots, dict(contents.problems)
    return wrapped
