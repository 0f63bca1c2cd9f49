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

Random streams (the shuffle, augmentation, dropout) are re-seeded at every epoch's start from the
config's seed and the epoch (:func:`featurelens.backends.stream_seed`), so a run resumed from a
checkpoint (:mod:`featurelens_torch.state`) draws what the uninterrupted run drew. A NaN or
infinite batch loss stops training (:mod:`featurelens_torch.watch` for when it is noticed).
Data-parallel training under torchrun is described in :mod:`featurelens_torch.parallel`.
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

from featurelens.backends import (
    Checkpointer,
    EarlyStopper,
    EpochObserver,
    EpochRecord,
    History,
    LRReducer,
    RunFolderError,
    TrainConfig,
    TrainingDivergedError,
    TrainingState,
    is_main_process,
    stream_seed,
)
from featurelens_torch import augment, fastpath, parallel, state
from featurelens_torch.build import SpecNet
from featurelens_torch.device import select_device
from featurelens_torch.parallel import Parallel
from featurelens_torch.scores import are_probabilities, class_scores, cross_entropy
from featurelens_torch.watch import LossWatch, first_bad

EVAL_BATCH = 512
AUGMENT_CHUNK = 8192  # images augmented at once by the compiled path (bounds index memory)
SHUFFLE, AUGMENT, DROPOUT = 0, 1, 2  # the random streams of an epoch (stream_seed keys)


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

    def __init__(self, net: torch.nn.Module, label_smoothing: float = 0.0,
                 train_forward: torch.nn.Module | None = None) -> None:
        self.net = net
        self.label_smoothing = label_smoothing
        self.probabilities: bool | None = False if isinstance(net, SpecNet) else None
        self.train_forward = train_forward  # the DDP-wrapped scores, used in training mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.train_forward is not None and self.net.training:
            scores = class_scores(self.train_forward(x))
        elif isinstance(self.net, SpecNet):
            return self.net.logits(x)
        else:
            scores = class_scores(self.net(x))
        if self.probabilities is None:
            self.probabilities = are_probabilities(scores)
        return scores

    def loss(self, scores: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return cross_entropy(scores, target, bool(self.probabilities), reduction, self.label_smoothing)


@torch.no_grad()
def measure(scorer: Scorer, x: torch.Tensor, y: torch.Tensor, autocast: torch.dtype | None = None,
            par: Parallel | None = None) -> tuple[float, float]:
    """Mean cross-entropy (label-smoothed as in training) and accuracy in eval mode; in data-parallel
    training each process measures its part and the sums are all-reduced."""
    par = par or Parallel()
    lo, hi = par.bounds(len(x))
    x, y = x[lo:hi], y[lo:hi]
    scorer.net.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        with _autocast(x.device, autocast):
            scores = scorer(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss += scorer.loss(scores.float(), target, reduction="sum")
        correct += (scores.argmax(1) == target).sum()
    if not par.active:
        return loss.item() / len(x), correct.item() / len(x)
    sums = par.all_sum(torch.stack([loss.double(), correct.double(), torch.tensor(float(len(x)), device=x.device,
                                                                            dtype=torch.float64)]))
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def fit(net: torch.nn.Module, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
        progress: bool = True, observers: Sequence[EpochObserver] = (), checkpoint: Checkpointer | None = None,
        resume: TrainingState | None = None) -> History:
    """Train ``net`` in place and return its :class:`History`; ``observers`` see every finished epoch,
    ``checkpoint`` saves the state after epochs, training goes on from ``resume`` when given."""
    with parallel.joined(config) as (par, device):
        device = device or select_device(config.device)
        cudnn_benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = cudnn_benchmark or device.type == "cuda"  # fixed input size
        synced = config.sync_batchnorm and par.active
        try:
            with parallel.synced_batchnorm(net, device) if synced else contextlib.nullcontext():
                run = _Run(net, train, validation, config, device, observers, par, checkpoint, resume)
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
                 device: torch.device, observers: Sequence[EpochObserver] = (), par: Parallel | None = None,
                 checkpoint: Checkpointer | None = None, resume: TrainingState | None = None) -> None:
        torch.manual_seed(config.seed)
        self.par = par or Parallel()
        self.net, self.config, self.device = net.to(device), config, device
        self.autocast = fastpath.autocast_dtype(config, device)
        self.compiled = fastpath.wants_compile(config, device) and not self.par.active
        if self.par.active:
            parallel.warn_no_compile(config)
        self.channels_last = device.type == "cuda" and (self.compiled or self.autocast is not None)
        self.x, self.y = _on_device(train, device)
        self.validation = _on_device(validation, device) if validation is not None else None
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.x = self.x.contiguous(memory_format=torch.channels_last)
            if self.validation is not None:
                self.validation = (self.validation[0].contiguous(memory_format=torch.channels_last),
                                   self.validation[1])
        self.ddp = parallel.wrap(net, device) if self.par.active else None
        self.scorer = Scorer(net, config.label_smoothing, train_forward=self.ddp)
        self.optimizer = make_optimizer(net, config, device, compiled=self.compiled)
        self.average = fastpath.WeightAverage(net, config.weight_averaging) if config.weight_averaging else None
        self.stopper = EarlyStopper(config.early_stopping) if config.early_stopping else None
        self.reducer = LRReducer(config.reduce_lr) if config.reduce_lr else None
        self.history = History(monitor=config.monitor(validation is not None), backend="torch",
                               device=str(device))
        self.best_state: dict[str, torch.Tensor] | None = None
        self.observers = tuple(observers)
        self.checkpoint = checkpoint
        self.watch = LossWatch(device, self.par)
        self.base_lr = config.learning_rate
        n, bs = len(self.x), config.batch_size
        self.batch = min(bs, n) if self.compiled else bs
        last = n % bs  # under DDP a last batch smaller than the number of processes is left out
        self.steps_per_epoch = n // self.batch if self.compiled else n // bs + (1 if last >= max(1, self.par.world)
                                                                                else 0)
        self.total_steps = self.steps_per_epoch * config.effective_epochs()
        self.warmup_steps = min(config.warmup_epochs * self.steps_per_epoch, self.total_steps)  # cut at the end
        self.step_count = 0
        self.compile_seconds = 0.0
        self.start_epoch, self.finished, self.stopped_early = 0, False, False
        self.order_gen = self.augment_gen = torch.Generator()
        if resume is not None:
            self.restore(resume)
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

    def seed_epoch(self, epoch: int) -> None:
        """This epoch's random streams, from the seed and the epoch only: the shuffle and the
        augmentation are the same on every process, dropout is each process's own."""
        seed = self.config.seed
        self.order_gen = torch.Generator().manual_seed(stream_seed(seed, epoch, SHUFFLE))
        self.augment_gen = torch.Generator().manual_seed(stream_seed(seed, epoch, AUGMENT))
        torch.manual_seed(stream_seed(seed, epoch, DROPOUT, self.par.rank))

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

    def parallel_step(self, xb: torch.Tensor, yb: torch.Tensor, global_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A data-parallel step on this process's part of a global batch of ``global_size`` images:
        the part's summed loss times ``world / global_size``, so DDP's average is the global mean's
        gradient. Returns the part's mean loss and predicted classes."""
        with _autocast(self.device, self.autocast):
            scores = self.scorer(xb)
        summed = self.scorer.loss(scores if self.autocast is None else scores.float(), yb, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        (summed * (self.par.world / global_size)).backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return summed.detach() / len(xb), scores.detach().argmax(1)

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
        show = progress and is_main_process()
        interactive = sys.stderr.isatty()
        stopped_early = self.stopped_early
        try:
            for epoch in range(self.start_epoch, self.start_epoch if self.finished else epochs):
                started, lr = time.perf_counter(), self.lr
                compiled_before = self.compile_seconds
                self.seed_epoch(epoch)
                bar = tqdm(total=self.steps_per_epoch * self.batch if self.compiled else len(self.x), unit="img",
                           unit_scale=True, desc=f"Epoch {epoch + 1}/{epochs}",
                           disable=not (show and interactive), leave=True, dynamic_ncols=True)
                with contextlib.ExitStack() as weights:
                    with bar:
                        metrics = self.train_epoch(bar, epoch)
                        self.par.share_buffers(self.net)
                        weights.enter_context(self.averaged())
                        if self.validation is not None:
                            metrics["val_loss"], metrics["val_accuracy"] = measure(
                                self.scorer, *self.validation, autocast=self.autocast, par=self.par)
                        bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()} | {"lr": f"{lr:.2g}"})
                    compiling = self.compile_seconds - compiled_before
                    record = EpochRecord(epoch + 1, metrics["loss"], metrics["accuracy"], metrics.get("val_loss"),
                                         metrics.get("val_accuracy"), lr,
                                         time.perf_counter() - started - compiling)
                    if show and not interactive:  # logs and CI: one line per epoch instead of a bar
                        values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                        extra = f", compiling {compiling:.1f} s more" if compiling else ""
                        print(f"Epoch {epoch + 1}/{epochs}: {values} lr={lr:.2g} ({record.seconds:.1f} s{extra})",
                              file=sys.stderr, flush=True)
                    self.history.append(record)
                    stop = self.after_epoch(epoch, metrics, record)
                stopped_early = stopped_early or stop
                self.save_checkpoint(epoch + 1, stop or epoch + 1 == epochs, stopped_early)
                if stop:
                    break
        except KeyboardInterrupt:
            self.history.stop_reason = "interrupted"
        self.finish(stopped_early)

    def train_epoch(self, bar: tqdm, epoch: int = 0) -> dict[str, float]:
        """One pass over the shuffled training set; metrics are read from the device once, at the end."""
        if self.compiled:
            return self.train_epoch_static(bar, epoch)
        net, x, y, bs, par = self.net, self.x, self.y, self.config.batch_size, self.par
        n = len(x)
        net.train()
        order = torch.randperm(n, generator=self.order_gen).to(self.device)
        losses: list[torch.Tensor] = []  # summed once per epoch: no host synchronisation inside the epoch
        total = torch.zeros((), dtype=torch.float64 if self.device.type != "mps" else torch.float32,
                            device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        count = 0
        scheduled = self.config.lr_schedule != "constant"
        for begin in range(0, n, bs):
            idx = order[begin:begin + bs]
            size = len(idx)
            if size < par.world:  # a last batch smaller than the number of processes: left out
                break
            lo, hi = par.bounds(size)
            xb, yb = x[idx[lo:hi]], y[idx[lo:hi]]
            if self.config.augment:  # drawn for the global batch, so equal for any number of processes
                xb = augment.apply(xb, augment.draw(size, self.augment_gen)[lo:hi])
            if scheduled:
                self.set_lr(self.base_lr * self.factor())
            loss, classes = self.parallel_step(xb, yb, size) if par.active else self.step(xb, yb)
            self.step_count += 1
            losses.append(loss)
            if self.watch.bad(loss):
                self.diverged(epoch, losses)
            total += loss * (hi - lo)
            correct += (classes == yb).sum()
            count += hi - lo
            bar.update(size)
        if self.watch.flush():
            self.diverged(epoch, losses)
        if par.active:
            sums = par.all_sum(torch.stack([total.double(), correct.double(),
                                            torch.tensor(float(count), dtype=torch.float64, device=self.device)]))
            return {"loss": float(sums[0] / sums[2]), "accuracy": float(sums[1] / sums[2])}
        return {"loss": float(total) / count, "accuracy": int(correct) / count}

    def train_epoch_static(self, bar: tqdm, epoch: int = 0) -> dict[str, float]:
        """The compiled path's epoch: one shuffle and one augmentation of the whole epoch on the
        device, then full batches only (the last partial one is left out)."""
        bs, steps = self.batch, self.steps_per_epoch
        used = bs * steps
        self.net.train()
        order = torch.randperm(len(self.x), generator=self.order_gen).to(self.device)[:used]
        xs, ys = self.x[order], self.y[order]
        if self.config.augment:
            xs = torch.cat([augment.flip_and_crop(xs[i:i + AUGMENT_CHUNK], self.augment_gen)
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
            if self.watch.bad(losses[i]):
                self.diverged(epoch, losses[:i + 1])
            bar.update(bs)
        if self.watch.flush():
            self.diverged(epoch, losses)
        return {"loss": float(losses.mean()), "accuracy": int((predicted == ys).sum()) / used}

    def diverged(self, epoch: int, losses: list[torch.Tensor] | torch.Tensor) -> None:
        """Stop: raise :class:`TrainingDivergedError` naming the first bad batch of the epoch."""
        batch, loss = first_bad(losses, len(losses))
        self.history.stop_reason = "diverged"
        why = "" if batch is not None else "another process's training loss is not finite"
        raise TrainingDivergedError(epoch + 1, batch if batch is not None else len(losses) - 1, loss, self.lr,
                                    why=why, history=self.history)

    def factor(self) -> float:
        return fastpath.lr_factor(self.config.lr_schedule, self.step_count, self.total_steps, self.warmup_steps)

    def after_epoch(self, epoch: int, metrics: dict[str, float], record: EpochRecord | None = None) -> bool:
        """The observers (with this epoch's weights), then early stopping and LR reduction,
        Keras-exact; True when training should stop. In data-parallel training every process
        decides on the same all-reduced metrics, and rank 0's decision is broadcast anyway."""
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
        if self.par.active:
            decision = self.par.from_main(torch.tensor([float(stop), self.base_lr], dtype=torch.float64,
                                                       device=self.device))
            stop, self.base_lr = bool(decision[0]), float(decision[1])
        if self.reducer is not None and self.config.lr_schedule == "constant":
            self.set_lr(self.base_lr)
        return stop

    # -- checkpoints --------------------------------------------------------------------------------

    def save_checkpoint(self, epoch: int, finished: bool, stopped_early: bool) -> None:
        if self.checkpoint is not None and self.checkpoint.due(epoch, finished):
            self.checkpoint.save(self.export(epoch, finished, stopped_early))

    def export(self, epoch: int, finished: bool, stopped_early: bool) -> TrainingState:
        """The state after ``epoch`` (see :mod:`featurelens_torch.state`)."""
        exported = TrainingState(epoch, finished, History.from_dict(self.history.to_dict()), backend="torch")
        exported.put("model", state.to_numpy(self.net.state_dict()))
        slots, optimizer_values = state.optimizer_state(self.optimizer)
        exported.put("optimizer", slots)
        if self.average is not None:
            exported.put("average", state.to_numpy({str(i): a for i, a in enumerate(self.average.average)}))
        if self.best_state is not None:
            exported.put("best", state.to_numpy(self.best_state))
        exported.values.update({
            "base_lr": self.base_lr, "step_count": self.step_count, "stopped_early": stopped_early,
            "optimizer": optimizer_values, "probabilities": self.scorer.probabilities,
            "stopper": self.stopper.state() if self.stopper is not None else None,
            "reducer": self.reducer.state() if self.reducer is not None else None})
        return exported

    def restore(self, saved: TrainingState) -> None:
        """Continue after ``saved``'s epoch: weights, optimizer, average, best weights, callbacks, History.
        A state that does not fit (a damaged or hand-edited checkpoint) is a :class:`RunFolderError`."""
        try:
            self._restore(saved)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            raise RunFolderError(f"the checkpoint's training state does not fit this run ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:300]}); the run folder is damaged") from exc

    def _restore(self, saved: TrainingState) -> None:
        state.load_module_state(self.net, saved.group("model"), "weights")
        state.load_optimizer_state(self.optimizer, saved.group("optimizer"), saved.value("optimizer"))
        if self.average is not None:
            averages = saved.group("average")
            with torch.no_grad():
                for i, tensor in enumerate(self.average.average):
                    tensor.copy_(torch.from_numpy(np.array(averages[str(i)])))
        best = saved.group("best")
        self.best_state = {k: v.to(self.device) for k, v in state.to_tensors(best).items()} if best else None
        if self.stopper is not None:
            self.stopper.load_state(saved.value("stopper"))
        if self.reducer is not None:
            self.reducer.load_state(saved.value("reducer"))
        self.base_lr = float(saved.value("base_lr"))
        self.step_count = int(saved.value("step_count"))
        self.scorer.probabilities = saved.value("probabilities")
        self.set_lr(self.base_lr * self.factor() if self.config.lr_schedule != "constant" else self.base_lr)
        self.history = History.from_dict({**saved.history.to_dict(), "backend": "torch", "device": str(self.device)})
        self.start_epoch, self.finished = saved.epoch, saved.finished
        self.stopped_early = bool(saved.value("stopped_early"))

    def finish(self, stopped_early: bool) -> None:
        self.ddp = self.scorer.train_forward = None
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
