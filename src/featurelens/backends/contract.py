"""What a backend is: the contract between the core and PyTorch, Keras or a third party.

The core never imports a framework. A backend turns a :class:`~featurelens.spec.ModelSpec` into a
framework model (the *native* model), trains it, predicts and saves it, exchanging only numpy
arrays in the canonical layouts: images (N, H, W, C) float32 already normalized, labels (N,)
int64, probabilities (N, num_classes) float32, weights in the names and layouts of
:mod:`featurelens.weights`.

Every backend implements the core methods. What else it can do it declares in
:attr:`Backend.capabilities`, so the core and the conformance kit (:mod:`featurelens.testing`) know
what to expect: :attr:`Capability.TRAIN` (``fit``), :attr:`Capability.INTROSPECT` (``layers``,
``filters``, ``feature_maps``, ``attachments``; ``channel_summaries`` has a default) and
:attr:`Capability.WRAP` (``accepts`` and the native-weights methods: models users built with the
framework) and :attr:`Capability.GRADIENTS` (``value_and_grad``: gradients of declarative
objectives, for attribution methods) and
:attr:`Capability.RESUME` (``fit`` exports its training state for checkpoints and continues from
one) and :attr:`Capability.DATA_PARALLEL` (``launch_command``, ``use_devices``: training over several
devices, ``featurelens train --devices N``). A backend with both ``TRAIN`` and ``WRAP`` trains users'
own models too: ``fit`` then receives ``spec=None``.
"""

from __future__ import annotations

import abc
import enum
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from featurelens.backends.layers import LayerInfo
from featurelens.backends.summaries import ChannelSummary, Floors
from featurelens.errors import BackendError

if TYPE_CHECKING:
    from featurelens.backends.objectives import Gradients, Objective
    from featurelens.backends.state import Checkpointer, TrainingState
    from featurelens.config import TrainConfig
    from featurelens.history import EpochRecord, History
    from featurelens.spec import ModelSpec


class Capability(str, enum.Enum):
    """Optional parts of the contract a backend can declare."""

    TRAIN = "train"
    """``fit``: training with featurelens's early stopping, LR reduction and History."""
    INTROSPECT = "introspect"
    """``layers``, ``filters``, ``feature_maps`` and ``attachments`` (and ``channel_summaries``, which has
    a default built on ``feature_maps``)."""
    WRAP = "wrap"
    """``accepts``: inspecting models users built with the framework (:func:`featurelens.wrap`)."""
    GRADIENTS = "gradients"
    """``value_and_grad``: objective values and their gradients w.r.t. the input and a layer."""
    RESUME = "resume"
    """``fit(..., checkpoint=, resume=)``: export the training state after epochs and continue from one,
    bit-identically on the CPU (:mod:`featurelens.backends.state`)."""
    DATA_PARALLEL = "data_parallel"
    """``launch_command`` / ``use_devices``: training data-parallel over several devices."""

    def __str__(self) -> str:
        return self.value


class EpochObserver(Protocol):
    """Called by a trainer at the end of every epoch, once its metrics are in the History.

    ``epoch`` is 1-based (``record.epoch``); ``native`` holds that epoch's weights (before any
    early-stopping restore). Observers may read the model (predict, filters, feature maps) but must
    not change it. Snapshots (:mod:`featurelens.atlas.snapshots`) are one; logging and
    checkpointing plugins are others.
    """

    def __call__(self, epoch: int, record: EpochRecord, native: Any) -> None: ...


class Backend(abc.ABC):
    """Base class every backend implements. Methods receive and return numpy arrays."""

    #: Short name used on the command line and in saved model folders; equal to its entry's name.
    name: ClassVar[str] = ""
    #: The optional parts of the contract this backend implements.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def supports(self, capability: Capability | str) -> bool:
        """Whether this backend declares ``capability``."""
        return Capability(capability) in self.capabilities

    def require(self, capability: Capability | str, action: str) -> None:
        """Raise a clear :class:`BackendError` unless ``capability`` is declared."""
        if not self.supports(capability):
            declared = ", ".join(sorted(c.value for c in self.capabilities)) or "none"
            raise BackendError(f"the {self.name!r} backend cannot {action}: it does not declare the "
                               f"{Capability(capability).value!r} capability (it declares: {declared}); "
                               "use another backend (featurelens backends lists them)")

    # -- core: every backend ----------------------------------------------------------------------

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Framework versions to record in a saved model folder, e.g. ``{"torch": "2.13.0"}``."""

    @abc.abstractmethod
    def build(self, spec: ModelSpec, seed: int = 0) -> Any:
        """A freshly initialised native model for ``spec`` with the spec's layer names.

        The same ``seed`` gives the same weights.
        """

    @abc.abstractmethod
    def predict(self, native: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, num_classes) float32 for normalized NHWC float32 images."""

    @abc.abstractmethod
    def get_weights(self, native: Any) -> dict[str, np.ndarray]:
        """The weights in the canonical names and layouts of :mod:`featurelens.weights`."""

    @abc.abstractmethod
    def set_weights(self, native: Any, weights: dict[str, np.ndarray]) -> None:
        """Load canonical weights (already checked against the spec) into ``native``."""

    def device(self, native: Any) -> str:
        """Where the model lives (``cpu``, ``cuda:0`` ...), for messages."""
        return "cpu"

    # -- Capability.TRAIN -------------------------------------------------------------------------

    def fit(self, native: Any, spec: ModelSpec | None, train: tuple[np.ndarray, np.ndarray],
            validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
            progress: bool = True, observers: Sequence[EpochObserver] = (),
            checkpoint: Checkpointer | None = None, resume: TrainingState | None = None) -> History:
        """Train in place following ``config`` (early stopping, LR reduction, ...).

        ``spec`` is None for a model the user built (backends that also declare
        :attr:`Capability.WRAP`); its outputs may be logits or probabilities.

        Drive :class:`featurelens.backends.EarlyStopper` and :class:`~featurelens.backends.LRReducer`
        after every epoch (or the framework's own callbacks, if they agree exactly) and end with
        :meth:`History.finish <featurelens.backends.History.finish>`.

        After every epoch that ran to its end, once its :class:`~featurelens.backends.EpochRecord`
        is appended to the History, call each of ``observers`` in order as
        ``observer(record.epoch, record, native)`` (see :class:`~featurelens.backends.EpochObserver`),
        with the weights of that epoch, before early stopping restores any. An observer's exception
        ends training and propagates. The core passes ``observers`` only when there are some, so a
        backend that does not take the parameter still trains without them.

        A training loss that is NaN or infinite stops training at once (Keras's ``TerminateOnNaN``:
        checked after every batch) by raising :class:`~featurelens.backends.TrainingDivergedError`
        with the epoch, the batch, the loss and the learning rate; a backend that checks only every
        few batches (to spare a GPU host synchronisation) documents it. The core adds a check of
        every epoch's mean loss (``config.divergence_factor``).

        With :attr:`Capability.RESUME`: after every completed epoch, once the observers ran and the
        callbacks decided, ask ``checkpoint.due(epoch, finished)`` and when it is true call
        ``checkpoint.save`` with the exported :class:`~featurelens.backends.TrainingState`. Given
        ``resume`` (a state this backend exported, with the same config and data), load it into the
        freshly built ``native`` and its optimizer and go on with epoch ``resume.epoch + 1``, appending
        to ``resume.history``; a ``finished`` state trains no epoch and only ends training as the
        uninterrupted run did. On the CPU the result must be bit-identical to the uninterrupted run
        (timings aside); the conformance kit checks it. Both are passed only when used.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not train")

    # -- Capability.DATA_PARALLEL ------------------------------------------------------------------

    def launch_command(self, devices: int, argv: Sequence[str]) -> list[str] | None:
        """How ``featurelens ARGV`` trains on ``devices`` devices of this machine.

        Either the command line that starts one process per device, each running ``featurelens`` with
        ``argv`` and knowing its place from the environment (:func:`featurelens.backends.process_rank`;
        the torch backend returns a ``torchrun`` command), which the CLI runs, forwarding signals and
        the exit status; or None when this backend trains on several devices within one process, after
        :meth:`use_devices`. In each process ``fit`` averages gradients over the processes, all-reduces
        the metrics so that every process takes the same early-stopping and LR decisions, and only the
        main process (:func:`featurelens.backends.is_main_process`) saves checkpoints.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not train on several devices")

    def use_devices(self, devices: int) -> None:
        """Build and train the models of this process data-parallel over ``devices`` local devices (for
        backends whose :meth:`launch_command` is None); a clear error when there are not that many."""
        raise NotImplementedError(f"the {self.name!r} backend does not train on several devices in one process")

    # -- Capability.WRAP ----------------------------------------------------------------------------

    def accepts(self, native: Any) -> bool:
        """Whether ``native`` is a model of this backend's framework (for :func:`featurelens.wrap`)."""
        return False

    def native_weights(self, native: Any) -> dict[str, np.ndarray]:
        """Every weight and state tensor of a user's model under the framework's own names
        (a torch ``state_dict``, Keras weight paths), as numpy arrays for a safetensors file."""
        raise NotImplementedError(f"the {self.name!r} backend cannot save models users built")

    def load_native_weights(self, native: Any, weights: dict[str, np.ndarray],
                            input_shape: tuple[int, int, int]) -> None:
        """Put :meth:`native_weights`'s arrays back into ``native`` (same architecture), strictly:
        a missing, unexpected or differently shaped tensor raises a clear error. ``input_shape``
        (H, W, C) lets frameworks that create weights lazily build the model first."""
        raise NotImplementedError(f"the {self.name!r} backend cannot load models users built")

    def architecture(self, native: Any) -> dict[str, Any]:
        """A JSON-able record of a user's model: at least ``{"class": "module.QualName"}``, and
        whatever the framework can describe without pickle (Keras: its JSON config)."""
        return {"class": f"{type(native).__module__}.{type(native).__qualname__}"}

    def rebuild(self, architecture: dict[str, Any]) -> Any:
        """A fresh native model from :meth:`architecture`'s record, without running stored code,
        or a :class:`~featurelens.BackendError` saying what the user must pass instead."""
        raise BackendError(f"the {self.name!r} backend cannot rebuild a {architecture.get('class')} from its "
                           "record; pass the model (or a function building it) to featurelens.load_model(folder, "
                           "model=...)")

    # -- Capability.INTROSPECT (see featurelens.backends.layers for the layouts) -----------------

    def layers(self, native: Any, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
        """Every layer in execution order with its output shape for one (H, W, C) input."""
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")

    def filters(self, native: Any, layer: str) -> np.ndarray:
        """The kernels of conv layer ``layer`` as (C_out, kh, kw, C_in) float32."""
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")

    def feature_maps(self, native: Any, images: np.ndarray, layers: list[str] | None,
                     batch_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
        """Yield, batch by batch, ``{layer: (n, H, W, C)}`` for normalized NHWC float32 images.

        One forward pass per batch in inference mode, without gradients; every hook or helper
        model it installs is gone when the iterator finishes or fails. ``None`` means all layers.
        An unknown layer name raises :class:`~featurelens.backends.LayerNotFoundError`.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")

    def channel_summaries(self, native: Any, images: np.ndarray, layers: list[str], batch_size: int = 64,
                          floors: Floors | None = None) -> Iterator[dict[str, ChannelSummary]]:
        """Yield, batch by batch, ``{layer: ChannelSummary}``: each image's maximum, its position
        and the mean per channel of ``layers``' (n, H, W, C) maps, for normalized NHWC images.

        The dict has the layers in the order asked. ``floors`` (per layer, a (C,) array, read as
        each batch runs; the caller may raise it between batches): positions are needed only for
        maxima above their channel's floor (every one where the floor is ``-inf``), and may be
        ``(-1, -1)`` elsewhere. Optional: this default reduces :meth:`feature_maps` in
        numpy and gives every position. Override it to reduce each layer's output where and when it
        is computed (framework kernels; nothing held until the pass ends; on a GPU, only the
        summaries copied to the host), with the same results: maxima exactly those of
        :meth:`feature_maps`, positions the first maximum in row-major order, means to float32
        rounding. The rules of :meth:`feature_maps` apply (inference mode, nothing left attached,
        unknown layers), and a layer that is not spatial raises :class:`~featurelens.InputError`.
        """
        for batch in self.feature_maps(native, images, layers, batch_size):
            yield {name: ChannelSummary.of_maps(maps) for name, maps in batch.items()}

    def attachments(self, native: Any) -> list[str]:
        """What introspection left attached to ``native`` (hooks, helper models), one line each.

        Empty whenever no introspection call is running: the conformance kit checks this after
        every introspection call, successful or failed. Backends whose framework cannot attach
        anything to a model keep this default.
        """
        return []

    # -- Capability.GRADIENTS (see featurelens.backends.objectives) ---------------------------------

    def value_and_grad(self, native: Any, images: np.ndarray, objective: Objective, *, layer: str | None = None,
                       wrt_input: bool = True, batch_size: int = 64) -> Gradients:
        """Each image's ``objective`` value and its gradients, as a :class:`~featurelens.backends.Gradients`.

        ``images`` are normalized NHWC float32. ``objective`` is a
        :class:`~featurelens.backends.ClassScore`, :class:`~featurelens.backends.ChannelMean` or
        :class:`~featurelens.backends.Unit`; every image has its own value (``values``, (N,)
        float32), and the gradients are those of each image's value:

        - with ``wrt_input``, ``input_grad`` (N, H, W, C): with respect to the image itself;
        - with ``layer``, ``activations`` (that layer's output, as :meth:`feature_maps` gives it) and
          ``layer_grad`` (same shape): with respect to those activations. ``layer`` is independent
          of the objective's own layer: Grad-CAM asks for a :class:`ClassScore` with ``layer`` the
          last conv layer. Layer names are those of :meth:`layers` (``name#2`` for a second call).

        The model runs in inference mode (batch norm uses its statistics, dropout is the identity),
        ``batch_size`` images at a time so memory stays bounded; the result does not depend on
        ``batch_size``. Nothing is left behind: hooks or wrappers removed (:meth:`attachments` is
        empty afterwards, even after a failure), ``requires_grad`` flags and the training mode
        restored, no gradient accumulated in the model's parameters and no taped state kept.

        A :class:`ClassScore` ``"logit"`` is, for spec-built models, the pre-softmax output of the
        head; for a user's model returning logits, its output; for a user's model whose outputs are
        probabilities (a final softmax), the log of the probability. ``"log_probability"`` is the
        log-softmax of the logits (for probability outputs: the log of the probability).

        Unknown layers raise :class:`~featurelens.backends.LayerNotFoundError`; images of the wrong
        shape, targets (or a :class:`ChannelMean`'s per-image channels, sliced per batch like the
        targets) of the wrong length or out of range, a channel or position outside the layer's
        output raise :class:`~featurelens.InputError`.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not compute gradients: it does not declare the "
                                  f"{Capability.GRADIENTS.value!r} capability")


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend, cheap to create: the framework is imported only by ``load``.

    ``priority`` orders backends when featurelens picks a default (no name given and no
    ``FEATURELENS_BACKEND``) and when :func:`featurelens.wrap` looks for the backend that owns a
    model: higher first, then by name. The built-in backends use 20 (torch) and 10 (keras).
    """

    name: str
    load: Callable[[], Backend]
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""
    priority: int = 0

    def missing(self) -> list[str]:
        """The required modules that are not importable here."""
        return missing_modules(self.requires)


def missing_modules(requires: Sequence[str]) -> list[str]:
    """The modules of ``requires`` that are not importable here (nothing is imported)."""
    return [mod for mod in requires if importlib.util.find_spec(mod) is None]
