"""The PyTorch training loop: whole dataset on the device, Keras-equivalent callbacks.

The data is moved to the device once; each epoch draws one permutation and slices batches from
it, so there is no DataLoader and no per-batch host copy. Metrics are accumulated on the device
and read once per epoch, which keeps the GPU free of host synchronisation inside an epoch.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from featurelens.backends import EarlyStopper, EpochObserver, EpochRecord, History, LRReducer, TrainConfig
from featurelens_torch.augment import flip_and_crop
from featurelens_torch.build import SpecNet
from featurelens_torch.device import select_device
from featurelens_torch.scores import are_probabilities, class_scores, cross_entropy

EVAL_BATCH = 512


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, C) float32 numpy -> (N, C, H, W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2).contiguous().to(device)


def make_optimizer(net: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = net.parameters()
    fused = {"fused": True} if device.type == "cuda" else {}  # one kernel for all parameters
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, **fused)
    return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.momentum > 0)


class Scorer:
    """The scores the loss is taken from: a SpecNet's logits (its softmax skipped), or a user's
    model's output, logits or probabilities (told apart on the first batch it sees)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net
        self.probabilities: bool | None = False if isinstance(net, SpecNet) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, SpecNet):
            return self.net.logits(x)
        scores = class_scores(self.net(x))
        if self.probabilities is None:
            self.probabilities = are_probabilities(scores)
        return scores

    def loss(self, scores: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return cross_entropy(scores, target, bool(self.probabilities), reduction)


@torch.no_grad()
def measure(scorer: Scorer, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    scorer.net.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        scores = scorer(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss += scorer.loss(scores, target, reduction="sum")
        correct += (scores.argmax(1) == target).sum()
    return loss.item() / len(x), correct.item() / len(x)


def fit(net: torch.nn.Module, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
        progress: bool = True, observers: Sequence[EpochObserver] = ()) -> History:
    """Train ``net`` in place and return its :class:`History`; ``observers`` see every finished epoch."""
    device = select_device(config.device)
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark or device.type == "cuda"  # fixed input size
    try:
        run = _Run(net, train, validation, config, device, observers)
        run.train(progress)
        return run.history
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark


class _Run:
    """One training run: data on the device, optimizer, callbacks and the History being written."""

    def __init__(self, net: torch.nn.Module, train: tuple[np.ndarray, np.ndarray],
                 validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
                 device: torch.device, observers: Sequence[EpochObserver] = ()) -> None:
        torch.manual_seed(config.seed)
        self.net, self.config, self.device = net.to(device), config, device
        self.scorer = Scorer(net)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.x, self.y = _on_device(train, device)
        self.validation = _on_device(validation, device) if validation is not None else None
        self.optimizer = make_optimizer(net, config, device)
        self.stopper = EarlyStopper(config.early_stopping) if config.early_stopping else None
        self.reducer = LRReducer(config.reduce_lr) if config.reduce_lr else None
        self.history = History(monitor=config.monitor(validation is not None), backend="torch",
                               device=str(device))
        self.best_state: dict[str, torch.Tensor] | None = None
        self.observers = tuple(observers)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def train(self, progress: bool) -> None:
        epochs = self.config.effective_epochs()
        interactive = sys.stderr.isatty()
        stopped_early = False
        try:
            for epoch in range(epochs):
                started, lr = time.perf_counter(), self.lr
                bar = tqdm(total=len(self.x), unit="img", unit_scale=True, desc=f"Epoch {epoch + 1}/{epochs}",
                           disable=not (progress and interactive), leave=True, dynamic_ncols=True)
                with bar:
                    metrics = self.train_epoch(bar)
                    if self.validation is not None:
                        metrics["val_loss"], metrics["val_accuracy"] = measure(self.scorer, *self.validation)
                    bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()} | {"lr": f"{lr:.2g}"})
                record = EpochRecord(epoch + 1, metrics["loss"], metrics["accuracy"], metrics.get("val_loss"),
                                     metrics.get("val_accuracy"), lr, time.perf_counter() - started)
                if progress and not interactive:  # logs and CI: one line per epoch instead of a bar
                    values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                    print(f"Epoch {epoch + 1}/{epochs}: {values} lr={lr:.2g} ({record.seconds:.1f} s)",
                          file=sys.stderr, flush=True)
                self.history.append(record)
                if self.after_epoch(epoch, metrics, record):
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            self.history.stop_reason = "interrupted"
        self.finish(stopped_early)

    def train_epoch(self, bar: tqdm) -> dict[str, float]:
        """One pass over the shuffled training set; metrics are read from the device once, at the end."""
        net, x, y, bs = self.net, self.x, self.y, self.config.batch_size
        n = len(x)
        net.train()
        order = torch.randperm(n, generator=self.generator).to(self.device)
        losses = []  # summed once per epoch: no host synchronisation inside the epoch
        predicted = torch.empty(n, dtype=torch.long, device=self.device)
        for begin in range(0, n, bs):
            idx = order[begin:begin + bs]
            xb, yb = x[idx], y[idx]
            if self.config.augment:
                xb = flip_and_crop(xb, self.generator)
            logits = self.scorer(xb)
            loss = self.scorer.loss(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.detach())
            torch.argmax(logits.detach(), 1, out=predicted[begin:begin + bs])
            bar.update(len(idx))
        sizes = torch.full((len(losses),), float(bs), device=self.device)
        sizes[-1] = n - bs * (len(losses) - 1)
        return {"loss": float((torch.stack(losses) * sizes).sum()) / n,
                "accuracy": int((predicted == y[order]).sum()) / n}

    def after_epoch(self, epoch: int, metrics: dict[str, float], record: EpochRecord | None = None) -> bool:
        """The observers (with this epoch's weights), then early stopping and LR reduction,
        Keras-exact; True when training should stop."""
        if record is not None:
            for observer in self.observers:
                observer(record.epoch, record, self.net)
        stop = False
        if self.stopper is not None:
            improved, stop = self.stopper.update(epoch, metrics)
            if improved and self.stopper.restore_best_weights:
                self.best_state = copy.deepcopy(self.net.state_dict())
        if self.reducer is not None:
            new_lr = self.reducer.update(epoch, metrics, self.lr)
            for group in self.optimizer.param_groups:
                group["lr"] = new_lr
        return stop

    def finish(self, stopped_early: bool) -> None:
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        ran = self.stopper is not None and self.stopper.best is not None
        self.history.finish(stopped_early=stopped_early,
                            best_epoch=self.stopper.best_epoch + 1 if ran and self.stopper else None,
                            restored_best_weights=self.best_state is not None)
        self.net.eval()


def _on_device(data: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensor(data[0], device), torch.from_numpy(np.asarray(data[1], np.int64)).to(device)
