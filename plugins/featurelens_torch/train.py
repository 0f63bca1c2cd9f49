"""The PyTorch training loop: whole dataset on the device, Keras-equivalent callbacks.

The data is moved to the device once; each epoch draws one permutation and slices batches from
it, so there is no DataLoader and no per-batch host copy. Metrics are accumulated on the device
and read once per epoch, which keeps the GPU free of host synchronisation inside an epoch.

The fast path (:mod:`featurelens_torch.fastpath`; on by default on CUDA): bfloat16 autocast,
channels_last, and the whole training step (forward, loss, backward, optimizer step, weight
averaging) compiled with static shapes. A compiled run trains on full batches only: the last
``n % batch_size`` images of each epoch's shuffle are left out of that epoch (a different few each
epoch), so that no second shape is compiled; a training set smaller than one batch is one batch.
The eager path keeps the last partial batch. The learning rate then lives in a tensor, so the
schedule and plateau reduction change it without recompiling.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from featurelens.backends import EarlyStopper, EpochObserver, EpochRecord, History, LRReducer, TrainConfig
from featurelens_torch import fastpath
from featurelens_torch.augment import flip_and_crop
from featurelens_torch.build import SpecNet
from featurelens_torch.device import select_device
from featurelens_torch.scores import are_probabilities, class_scores, cross_entropy

EVAL_BATCH = 512
AUGMENT_CHUNK = 8192  # images augmented at once by the compiled path (bounds index memory)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, C) float32 numpy -> (N, C, H, W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2).contiguous().to(device)


def make_optimizer(net: torch.nn.Module, config: TrainConfig, device: torch.device,
                   compiled: bool = False) -> torch.optim.Optimizer:
    """The optimizer; for a compiled step its learning rate is a tensor (changing it recompiles
    nothing) and, on CUDA, its state is capturable (CUDA graphs) instead of fused."""
    params = net.parameters()
    lr: float | torch.Tensor = config.learning_rate
    options: dict[str, Any] = {}
    if compiled:
        lr = torch.tensor(config.learning_rate, dtype=torch.float32, device=device)
        if device.type == "cuda" and config.optimizer != "sgd":
            options = {"capturable": True, "foreach": True}
    elif device.type == "cuda":
        options = {"fused": True}  # one kernel for all parameters
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay, **options)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay, **options)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.momentum > 0, **options)


class Scorer:
    """The scores the loss is taken from: a SpecNet's logits (its softmax skipped), or a user's
    model's output, logits or probabilities (told apart on the first batch it sees)."""

    def __init__(self, net: torch.nn.Module, label_smoothing: float = 0.0) -> None:
        self.net = net
        self.label_smoothing = label_smoothing
        self.probabilities: bool | None = False if isinstance(net, SpecNet) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, SpecNet):
            return self.net.logits(x)
        scores = class_scores(self.net(x))
        if self.probabilities is None:
            self.probabilities = are_probabilities(scores)
        return scores

    def loss(self, scores: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return cross_entropy(scores, target, bool(self.probabilities), reduction, self.label_smoothing)


@torch.no_grad()
def measure(scorer: Scorer, x: torch.Tensor, y: torch.Tensor,
            autocast: torch.dtype | None = None) -> tuple[float, float]:
    """Mean cross-entropy (label-smoothed as in training) and accuracy in eval mode."""
    scorer.net.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        with _autocast(x.device, autocast):
            scores = scorer(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss += scorer.loss(scores.float(), target, reduction="sum")
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
    """One training run: data on the device, optimizer, callbacks and the History being written.

    The History records, per epoch, the *base* learning rate the epoch started with: the rate
    plateau reduction sets, before the per-step schedule factor. With weight averaging the
    validation metrics, the observers, restored best weights and the returned model are the
    averaged weights'. Epoch seconds leave out compilation, which is logged and kept in
    ``history.compile_seconds`` (saved in history.json).
    """

    def __init__(self, net: torch.nn.Module, train: tuple[np.ndarray, np.ndarray],
                 validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
                 device: torch.device, observers: Sequence[EpochObserver] = ()) -> None:
        torch.manual_seed(config.seed)
        self.net, self.config, self.device = net.to(device), config, device
        self.autocast = fastpath.autocast_dtype(config, device)
        self.compiled = fastpath.wants_compile(config, device)
        self.channels_last = device.type == "cuda" and (self.compiled or self.autocast is not None)
        self.scorer = Scorer(net, config.label_smoothing)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.x, self.y = _on_device(train, device)
        self.validation = _on_device(validation, device) if validation is not None else None
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.x = self.x.contiguous(memory_format=torch.channels_last)
            if self.validation is not None:
                self.validation = (self.validation[0].contiguous(memory_format=torch.channels_last),
                                   self.validation[1])
        self.optimizer = make_optimizer(net, config, device, compiled=self.compiled)
        self.average = fastpath.WeightAverage(net, config.weight_averaging) if config.weight_averaging else None
        self.stopper = EarlyStopper(config.early_stopping) if config.early_stopping else None
        self.reducer = LRReducer(config.reduce_lr) if config.reduce_lr else None
        self.history = History(monitor=config.monitor(validation is not None), backend="torch",
                               device=str(device))
        self.best_state: dict[str, torch.Tensor] | None = None
        self.observers = tuple(observers)
        self.base_lr = config.learning_rate
        n, bs = len(self.x), config.batch_size
        self.batch = min(bs, n) if self.compiled else bs
        self.steps_per_epoch = n // self.batch if self.compiled else -(-n // bs)
        self.total_steps = self.steps_per_epoch * config.effective_epochs()
        self.warmup_steps = min(config.warmup_epochs * self.steps_per_epoch, self.total_steps)  # cut at the end
        self.step_count = 0
        self.compile_seconds = 0.0
        self.first_call = self.compiled  # the compiled step's first call compiles (timed, may fall back)
        self.step_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self.step
        if self.compiled:
            self.step_fn = self.compile()

    @property
    def lr(self) -> float:
        """The base learning rate (plateau reduction's), without the schedule's factor."""
        return self.base_lr

    def set_lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)  # in place: a compiled step sees it without recompiling
            else:
                group["lr"] = value

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; the batch's loss and predicted classes, left on the device."""
        with _autocast(self.device, self.autocast):
            scores = self.scorer(xb)
        loss = self.scorer.loss(scores if self.autocast is None else scores.float(), yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return loss.detach(), scores.detach().argmax(1)

    def compile(self) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """The compiled step, or the eager one (with a warning) if torch.compile refuses."""
        if self.scorer.probabilities is None:  # a user model: tell logits from probabilities eagerly
            with torch.no_grad():
                self.net.eval()
                self.scorer(self.x[:self.batch])
        try:
            return fastpath.compile_step(self.step, self.device)
        except Exception as exc:  # noqa: BLE001 - any failure to compile means: train eagerly
            self.fall_back(exc)
            return self.step

    def fall_back(self, exc: BaseException) -> None:
        fastpath.warn_fallback(exc)
        self.step_fn = self.step
        self.first_call = False

    def run_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step, timing the compiled step's first call (compilation) and falling back to the
        eager step if that first call fails."""
        if not self.first_call:
            return self.step_fn(xb, yb)
        self.first_call = False
        _sync(self.device)
        started = time.perf_counter()
        try:
            out = self.step_fn(xb, yb)
        except Exception as exc:  # noqa: BLE001 - compilation errors come in many types
            self.fall_back(exc)
            return self.step(xb, yb)
        _sync(self.device)
        self.compile_seconds = time.perf_counter() - started
        return out

    def averaged(self) -> contextlib.AbstractContextManager[None]:
        """The averaged weights in the model for validation, observers and best weights."""
        return self.average.swapped_in() if self.average is not None else contextlib.nullcontext()

    def train(self, progress: bool) -> None:
        epochs = self.config.effective_epochs()
        interactive = sys.stderr.isatty()
        stopped_early = False
        try:
            for epoch in range(epochs):
                started, lr = time.perf_counter(), self.lr
                compiled_before = self.compile_seconds
                bar = tqdm(total=self.steps_per_epoch * self.batch if self.compiled else len(self.x), unit="img",
                           unit_scale=True, desc=f"Epoch {epoch + 1}/{epochs}",
                           disable=not (progress and interactive), leave=True, dynamic_ncols=True)
                with contextlib.ExitStack() as weights:
                    with bar:
                        metrics = self.train_epoch(bar)
                        weights.enter_context(self.averaged())
                        if self.validation is not None:
                            metrics["val_loss"], metrics["val_accuracy"] = measure(
                                self.scorer, *self.validation, autocast=self.autocast)
                        bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()} | {"lr": f"{lr:.2g}"})
                    compiling = self.compile_seconds - compiled_before
                    record = EpochRecord(epoch + 1, metrics["loss"], metrics["accuracy"], metrics.get("val_loss"),
                                         metrics.get("val_accuracy"), lr,
                                         time.perf_counter() - started - compiling)
                    if progress and not interactive:  # logs and CI: one line per epoch instead of a bar
                        values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                        extra = f", compiling {compiling:.1f} s more" if compiling else ""
                        print(f"Epoch {epoch + 1}/{epochs}: {values} lr={lr:.2g} ({record.seconds:.1f} s{extra})",
                              file=sys.stderr, flush=True)
                    self.history.append(record)
                    stop = self.after_epoch(epoch, metrics, record)
                if stop:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            self.history.stop_reason = "interrupted"
        self.finish(stopped_early)

    def train_epoch(self, bar: tqdm) -> dict[str, float]:
        """One pass over the shuffled training set; metrics are read from the device once, at the end."""
        if self.compiled:
            return self.train_epoch_static(bar)
        net, x, y, bs = self.net, self.x, self.y, self.config.batch_size
        n = len(x)
        net.train()
        order = torch.randperm(n, generator=self.generator).to(self.device)
        losses = []  # summed once per epoch: no host synchronisation inside the epoch
        predicted = torch.empty(n, dtype=torch.long, device=self.device)
        scheduled = self.config.lr_schedule != "constant"
        for begin in range(0, n, bs):
            idx = order[begin:begin + bs]
            xb, yb = x[idx], y[idx]
            if self.config.augment:
                xb = flip_and_crop(xb, self.generator)
            if scheduled:
                self.set_lr(self.base_lr * self.factor())
            loss, classes = self.step(xb, yb)
            self.step_count += 1
            losses.append(loss)
            predicted[begin:begin + bs] = classes
            bar.update(len(idx))
        sizes = torch.full((len(losses),), float(bs), device=self.device)
        sizes[-1] = n - bs * (len(losses) - 1)
        return {"loss": float((torch.stack(losses) * sizes).sum()) / n,
                "accuracy": int((predicted == y[order]).sum()) / n}

    def train_epoch_static(self, bar: tqdm) -> dict[str, float]:
        """The compiled path's epoch: one shuffle and one augmentation of the whole epoch on the
        device, then full batches only (the last partial one is left out)."""
        bs, steps = self.batch, self.steps_per_epoch
        used = bs * steps
        self.net.train()
        order = torch.randperm(len(self.x), generator=self.generator).to(self.device)[:used]
        xs, ys = self.x[order], self.y[order]
        if self.config.augment:
            xs = torch.cat([flip_and_crop(xs[i:i + AUGMENT_CHUNK], self.generator)
                            for i in range(0, used, AUGMENT_CHUNK)])
        if self.channels_last:
            xs = xs.contiguous(memory_format=torch.channels_last)
        losses = torch.empty(steps, device=self.device)
        predicted = torch.empty(used, dtype=torch.long, device=self.device)
        scheduled = self.config.lr_schedule != "constant"
        for i in range(steps):
            if scheduled:
                self.set_lr(self.base_lr * self.factor())
            loss, classes = self.run_step(xs[i * bs:(i + 1) * bs], ys[i * bs:(i + 1) * bs])
            self.step_count += 1
            losses[i] = loss  # copies out of the (CUDA-graph) output buffers before the next step
            predicted[i * bs:(i + 1) * bs] = classes
            bar.update(bs)
        return {"loss": float(losses.mean()), "accuracy": int((predicted == ys).sum()) / used}

    def factor(self) -> float:
        return fastpath.lr_factor(self.config.lr_schedule, self.step_count, self.total_steps, self.warmup_steps)

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
            self.base_lr = self.reducer.update(epoch, metrics, self.base_lr)
            if self.config.lr_schedule == "constant":
                self.set_lr(self.base_lr)
        return stop

    def finish(self, stopped_early: bool) -> None:
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        elif self.average is not None:
            self.average.copy_to_model()
        if self.channels_last:  # saved weights must be contiguous (safetensors)
            self.net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        ran = self.stopper is not None and self.stopper.best is not None
        self.history.finish(stopped_early=stopped_early,
                            best_epoch=self.stopper.best_epoch + 1 if ran and self.stopper else None,
                            restored_best_weights=self.best_state is not None)
        if self.compiled:
            self.history.compile_seconds = self.compile_seconds
        self.net.eval()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _on_device(data: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensor(data[0], device), torch.from_numpy(np.asarray(data[1], np.int64)).to(device)
