"""The PyTorch implementation of :class:`featurelens.Backend`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch

from featurelens.backends import (
    Backend,
    Capability,
    Checkpointer,
    EpochObserver,
    Gradients,
    History,
    LayerInfo,
    ModelSpec,
    TrainConfig,
    TrainingState,
    as_probabilities,
)
from featurelens_torch import gradients, introspect, io, native, train
from featurelens_torch.build import SpecNet, build_net
from featurelens_torch.modes import evaluating


class TorchBackend(Backend):
    name = "torch"
    capabilities = frozenset({Capability.TRAIN, Capability.INTROSPECT, Capability.WRAP, Capability.GRADIENTS,
                              Capability.RESUME, Capability.DATA_PARALLEL})

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def build(self, spec: ModelSpec, seed: int = 0) -> SpecNet:
        return build_net(spec, seed)

    def fit(self, native: torch.nn.Module, spec: ModelSpec | None, train_data, validation, config: TrainConfig,
            progress: bool = True, observers: Sequence[EpochObserver] = (), checkpoint: Checkpointer | None = None,
            resume: TrainingState | None = None) -> History:
        return train.fit(native, train_data, validation, config, progress=progress, observers=observers,
                         checkpoint=checkpoint, resume=resume)

    def launch_command(self, devices: int, argv: Sequence[str]) -> list[str]:
        """``torchrun --standalone --nproc-per-node DEVICES -m featurelens ARGV``: one process per device of
        this machine (NCCL on GPUs, gloo on CPUs); see :mod:`featurelens_torch.parallel`."""
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(devices),
                "-m", "featurelens", *argv]

    @torch.no_grad()
    def predict(self, native: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        device = introspect.module_device(native)
        out = []
        with evaluating(native):
            for start in range(0, len(images), batch_size):
                batch = train.to_tensor(images[start:start + batch_size], device)
                if isinstance(native, SpecNet):
                    out.append(torch.softmax(native.logits(batch).float(), dim=1).cpu().numpy())
                else:  # a user's module: its output may be logits or already probabilities
                    out.append(introspect.logits_of(native(batch)).float().cpu().numpy())
        if not out:
            return np.zeros((0, 0), np.float32)
        outputs = np.concatenate(out)
        return outputs if isinstance(native, SpecNet) else as_probabilities(outputs)

    def get_weights(self, native: SpecNet) -> dict[str, np.ndarray]:
        return io.get_weights(native)

    def set_weights(self, native: SpecNet, weights: dict[str, np.ndarray]) -> None:
        io.set_weights(native, weights)

    def device(self, native: torch.nn.Module) -> str:
        return str(introspect.module_device(native))

    def accepts(self, native) -> bool:
        # On Keras's torch backend a Keras model is an nn.Module too; it belongs to the keras backend.
        is_keras = any(cls.__module__.startswith("keras") for cls in type(native).__mro__)
        return isinstance(native, torch.nn.Module) and not is_keras

    def layers(self, native: torch.nn.Module, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
        return introspect.layers(native, input_shape)

    def filters(self, native: torch.nn.Module, layer: str) -> np.ndarray:
        return introspect.filters(native, layer)

    def feature_maps(self, native: torch.nn.Module, images: np.ndarray, layers: list[str] | None,
                     batch_size: int = 64):
        return introspect.feature_maps(native, images, layers, batch_size)

    def channel_summaries(self, native: torch.nn.Module, images: np.ndarray, layers: list[str],
                          batch_size: int = 64, floors=None):
        return introspect.channel_summaries(native, images, layers, batch_size, floors)

    def attachments(self, native: torch.nn.Module) -> list[str]:
        return introspect.attached_hooks(native)

    def value_and_grad(self, native: torch.nn.Module, images: np.ndarray, objective, *, layer: str | None = None,
                       wrt_input: bool = True, batch_size: int = 64) -> Gradients:
        return gradients.value_and_grad(native, images, objective, layer=layer, wrt_input=wrt_input,
                                        batch_size=batch_size)

    # -- models users built (Capability.WRAP): their own weight names, no pickle --------------------

    def native_weights(self, native_model: torch.nn.Module) -> dict[str, np.ndarray]:
        return native.native_weights(native_model)

    def load_native_weights(self, native_model: torch.nn.Module, weights: dict[str, np.ndarray],
                            input_shape: tuple[int, int, int]) -> None:
        native.load_native_weights(native_model, weights, input_shape)

    def architecture(self, native_model: torch.nn.Module) -> dict:
        return native.architecture(native_model)
