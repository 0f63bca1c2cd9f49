"""The PyTorch training loop: whole dataset on the device, Keras-equivalent callbacks.

The data is moved to the device once; each epoch draws one permutation and slices batches from
it, so there is no DataLoader and no per-batch host copy. Metrics are accumulated on the device
and read once per epoch, which keeps the GPU free of host synchronisation inside an epoch.
"""

from __future__ import annotations

import copy
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from featurelens.callbacks import EarlyStopper, LRReducer
from featurelens.config import TrainConfig
from featurelens.history import EpochRecord, History
from featurelens_torch.augment import flip_and_crop
from featurelens_torch.build import SpecNet
from featurelens_torch.device import select_device

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


@torch.no_grad()
def measure(net: SpecNet, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    net.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        logits = net.logits(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return loss.item() / len(x), correct.item() / len(x)


def fit(net: SpecNet, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
        progress: bool = True) -> History:
    """Train ``net`` in place and return its :class:`History`."""
    device = select_device(config.device)
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark or device.type == "cuda"  # fixed input size
    try:
        return _fit(net, train, validation, config, progress, device)
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark


def _fit(net: SpecNet, train: tuple[np.ndarray, np.ndarray],
         validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
         progress: bool, device: torch.device) -> History:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    net.to(device)
    x, y = to_tensor(train[0], device), torch.from_numpy(np.asarray(train[1], np.int64)).to(device)
    if validation is not None:
        vx, vy = to_tensor(validation[0], device), torch.from_numpy(np.asarray(validation[1], np.int64)).to(device)
    optimizer = make_optimizer(net, config, device)
    stopper = EarlyStopper(config.early_stopping) if config.early_stopping else None
    reducer = LRReducer(config.reduce_lr) if config.reduce_lr else None
    monitor = config.early_stopping.monitor if stopper else ("val_loss" if validation else "loss")
    history = History(monitor=monitor, backend="torch", device=str(device))
    best_state = None
    epochs = config.effective_epochs()
    n, bs = len(x), config.batch_size
    interactive = sys.stderr.isatty()
    try:
        for epoch in range(epochs):
            start_time = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            net.train()
            order = torch.randperm(n, generator=generator).to(device)
            losses = []  # summed once per epoch: no host synchronisation inside the epoch
            predicted = torch.empty(n, dtype=torch.long, device=device)
            with tqdm(total=n, unit="img", unit_scale=True, desc=f"Epoch {epoch + 1}/{epochs}",
                      disable=not (progress and interactive), leave=True, dynamic_ncols=True) as bar:
                for begin in range(0, n, bs):
                    idx = order[begin:begin + bs]
                    xb, yb = x[idx], y[idx]
                    if config.augment:
                        xb = flip_and_crop(xb, generator)
                    logits = net.logits(xb)
                    loss = F.cross_entropy(logits, yb)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.detach())
                    torch.argmax(logits.detach(), 1, out=predicted[begin:begin + bs])
                    bar.update(len(idx))
                sizes = torch.full((len(losses),), float(bs), device=device)
                sizes[-1] = n - bs * (len(losses) - 1)
                metrics = {"loss": float((torch.stack(losses) * sizes).sum()) / n,
                           "accuracy": int((predicted == y[order]).sum()) / n}
                if validation is not None:
                    metrics["val_loss"], metrics["val_accuracy"] = measure(net, vx, vy)
                bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()} | {"lr": f"{lr:.2g}"})
            record = EpochRecord(epoch + 1, metrics["loss"], metrics["accuracy"],
                                 metrics.get("val_loss"), metrics.get("val_accuracy"), lr,
                                 time.perf_counter() - start_time)
            if progress and not interactive:  # logs and CI: one line per epoch instead of a bar
                values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                print(f"Epoch {epoch + 1}/{epochs}: {values} lr={lr:.2g} ({record.seconds:.1f} s)",
                      file=sys.stderr, flush=True)
            history.append(record)
            stop = False
            if stopper is not None:
                improved, stop = stopper.update(epoch, metrics)
                if improved and stopper.restore_best_weights:
                    best_state = copy.deepcopy(net.state_dict())
            if reducer is not None:
                new_lr = reducer.update(epoch, metrics, lr)
                for group in optimizer.param_groups:
                    group["lr"] = new_lr
            if stop:
                history.stop_reason = "early_stopping"
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
    if stopper is not None and stopper.best is not None:
        history.best_epoch = stopper.best_epoch + 1
    else:
        history.best_epoch = history.best_epoch_by_monitor()
    if best_state is not None:
        net.load_state_dict(best_state)
        history.restored_best_weights = True
    net.eval()
    return history
