"""The PyTorch implementation of :class:`featurelens.Backend`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from featurelens import Backend
from featurelens.config import TrainConfig
from featurelens.history import History
from featurelens.spec import ModelSpec
from featurelens_torch import io, train
from featurelens_torch.build import SpecNet, build_net


class TorchBackend(Backend):
    name = "torch"

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def build(self, spec: ModelSpec, seed: int = 0) -> SpecNet:
        return build_net(spec, seed)

    def fit(self, native: SpecNet, spec: ModelSpec, train_data, validation, config: TrainConfig,
            progress: bool = True) -> History:
        return train.fit(native, train_data, validation, config, progress=progress)

    @torch.no_grad()
    def predict(self, native: SpecNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        native.eval()
        device = next(native.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            batch = train.to_tensor(images[start:start + batch_size], device)
            out.append(torch.softmax(native.logits(batch).float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, native.head_dense.out_features), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def save_weights(self, native: SpecNet, path: Path) -> None:
        io.save_weights(native, path)

    def load_weights(self, spec: ModelSpec, path: Path) -> SpecNet:
        return io.load_weights(spec, path)

    def device(self, native: SpecNet) -> str:
        return str(next(native.parameters()).device)
