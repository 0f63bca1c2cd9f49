"""The torch trainer's fast path on the CPU: label smoothing, LR schedule, weight averaging, and the
compiled step (with torch.compile's "eager" backend, so no C++ compiler is needed; one slow test
uses inductor)."""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from featurelens_torch import fastpath  # noqa: E402
from featurelens_torch import train as torch_train  # noqa: E402
from featurelens_torch.scores import cross_entropy  # noqa: E402

from featurelens import ConfigError, ReduceLROnPlateau, TrainConfig  # noqa: E402


def tiny_net() -> torch.nn.Module:
    """No conv bias before the batch norm: its gradient is rounding noise, which Adam would amplify."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, bias=False), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 3)).astype(np.float32), rng.integers(0, 3, n)


def config(**changes: object) -> TrainConfig:
    base = dict(epochs=2, batch_size=4, early_stopping=None, reduce_lr=None, validation_split=0.0,
                device="cpu", compile="off", precision="fp32")
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def eager_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND_OVERRIDE", "eager")
    torch._dynamo.reset()


def test_label_smoothing_matches_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 2])
    s, k = 0.1, 3
    log_p = logits.log_softmax(1)
    q = torch.full((2, k), s / k)
    q[torch.arange(2), target] += 1 - s
    expected = -(q * log_p).sum(1).mean()
    assert torch.allclose(cross_entropy(logits, target, False, label_smoothing=s), expected, atol=1e-6)
    probs = logits.softmax(1)  # a model ending in a softmax: the same loss from its probabilities
    assert torch.allclose(cross_entropy(probs, target, True, label_smoothing=s), expected, atol=1e-5)
    assert torch.allclose(cross_entropy(probs, target, True, "sum", s), expected * 2, atol=1e-5)
    assert torch.equal(cross_entropy(logits, target, False), F.cross_entropy(logits, target))


def test_schedule_factors() -> None:
    f = fastpath.lr_factor
    assert f("constant", 5, 100, 0) == 1.0
    assert f("warmup_linear", 0, 100, 10) == pytest.approx(0.1)  # taken at the end of the step
    assert f("warmup_linear", 9, 100, 10) == pytest.approx(1.0)  # warm-up ends
    assert f("warmup_linear", 54, 100, 10) == pytest.approx(0.5)
    assert f("warmup_linear", 99, 100, 10) == 0.0  # the last step
    assert f("warmup_cosine", 54, 100, 10) == pytest.approx(0.5)
    assert f("warmup_cosine", 29, 90, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert f("warmup_cosine", 99, 100, 10) == pytest.approx(0.0)
    assert f("warmup_linear", 0, 4, 0) == pytest.approx(0.75)  # no warm-up: decay from the start


def test_plateau_reduction_acts_on_the_base_rate() -> None:
    cfg = config(lr_schedule="warmup_linear", warmup_epochs=0.5, epochs=4, learning_rate=0.1,
                 reduce_lr=ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5))
    run = torch_train._Run(tiny_net(), data(8), None, cfg, torch.device("cpu"))
    run.train_epoch(_Bar())
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * fastpath.lr_factor(
        "warmup_linear", 1, 8, 1.0))
    run.after_epoch(0, {"loss": 1.0})
    run.after_epoch(1, {"loss": 2.0})  # no improvement, patience 0: the base rate halves
    assert run.lr == pytest.approx(0.05)
    run.train_epoch(_Bar())
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * fastpath.lr_factor("warmup_linear", 3, 8, 1.0))


def test_history_records_the_base_rate_with_a_schedule() -> None:
    history = torch_train.fit(tiny_net(), data(8), None, config(lr_schedule="warmup_cosine", warmup_epochs=1,
                                                                 learning_rate=0.01), progress=False)
    assert history.metric("learning_rate") == [0.01, 0.01]


def test_weight_average_matches_a_hand_computed_average() -> None:
    decay = 0.8
    net = tiny_net()
    run = torch_train._Run(net, data(8), None, config(weight_averaging=decay, optimizer="sgd", learning_rate=0.1),
                           torch.device("cpu"))
    expected = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    for i in range(3):
        run.step(run.x[i:i + 4], run.y[i:i + 4])
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                expected[k] = decay * expected[k] + (1 - decay) * v
    live = {k: v.clone() for k, v in net.state_dict().items()}
    with run.average.swapped_in():  # type: ignore[union-attr]
        for k, v in net.state_dict().items():
            if k in expected:  # parameters and batch-norm running statistics alike
                assert torch.allclose(v, expected[k], atol=1e-6), k
    for k, v in net.state_dict().items():  # the live weights are back
        assert torch.equal(v, live[k]), k


def test_training_returns_the_averaged_weights() -> None:
    net = tiny_net()
    torch_train.fit(net, data(8), data(4, 1), config(weight_averaging=0.5), progress=False)
    other = tiny_net()
    torch_train.fit(other, data(8), data(4, 1), config(), progress=False)
    assert not torch.equal(net[0].weight, other[0].weight)


def test_compiled_step_gives_the_eager_weights(eager_backend: None) -> None:
    # 8 images in batches of 4: no partial batch, so compiled and eager runs see the same batches.
    eager, compiled = tiny_net(), tiny_net()
    torch_train.fit(eager, data(8), None, config(), progress=False)
    with torch._dynamo.config.patch(error_on_recompile=True):  # the LR tensor changes, nothing recompiles
        history = torch_train.fit(compiled, data(8), None, config(compile="on", lr_schedule="warmup_linear",
                                                                  warmup_epochs=0.5, learning_rate=2e-3),
                                  progress=False)
    assert history.compile_seconds > 0
    torch._dynamo.reset()
    compiled = tiny_net()
    torch_train.fit(compiled, data(8), None, config(compile="on"), progress=False)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_compiled_path_drops_the_last_partial_batch(eager_backend: None) -> None:
    # The rule: a compiled run trains on full batches only; 10 images in batches of 4 train on 8.
    run = torch_train._Run(tiny_net(), data(10), None, config(compile="on", weight_averaging=0.9,
                                                              label_smoothing=0.1), torch.device("cpu"))
    assert (run.batch, run.steps_per_epoch, run.total_steps) == (4, 2, 4)
    assert isinstance(run.optimizer.param_groups[0]["lr"], torch.Tensor)
    metrics = run.train_epoch(_Bar())
    assert run.step_count == 2 and 0 <= metrics["accuracy"] <= 1
    small = torch_train._Run(tiny_net(), data(3), None, config(compile="on"), torch.device("cpu"))
    assert (small.batch, small.steps_per_epoch) == (3, 1)  # smaller than a batch: one batch of all


def test_compile_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here.*training eagerly") as caught:
        history = torch_train.fit(tiny_net(), data(8), None, config(compile="on"), progress=False)
    assert len(history.epochs) == 2 and len([w for w in caught if "torch.compile" in str(w.message)]) == 1


def test_failing_first_compiled_call_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_step(fn: object, device: object) -> object:
        def step(*args: object) -> None:
            raise RuntimeError("InvalidCxxCompiler")
        return step

    monkeypatch.setattr(fastpath, "compile_step", compile_step)
    with pytest.warns(RuntimeWarning, match="InvalidCxxCompiler"):
        history = torch_train.fit(tiny_net(), data(8), None, config(compile="on"), progress=False)
    assert len(history.epochs) == 2


def test_precision_and_compile_validation() -> None:
    with pytest.raises(ConfigError, match="precision: 'fp16' is invalid: choose one of auto, fp32, bf16"):
        config(precision="fp16")
    with pytest.raises(ConfigError, match="compile: 'yes' is invalid: choose one of auto, on, off"):
        config(compile="yes")
    with pytest.raises(ConfigError, match="not on mps.*precision='fp32'"):
        fastpath.autocast_dtype(config(precision="bf16"), torch.device("mps"))
    cpu = torch.device("cpu")
    assert fastpath.autocast_dtype(config(precision="bf16"), cpu) is torch.bfloat16  # CPU autocast: allowed
    assert fastpath.autocast_dtype(config(precision="auto"), cpu) is None
    assert not fastpath.wants_compile(config(compile="auto"), cpu)
    assert fastpath.wants_compile(config(compile="auto"), torch.device("cuda"))


def test_bf16_on_the_cpu_trains() -> None:
    history = torch_train.fit(tiny_net(), data(8), data(4, 1), config(precision="bf16"), progress=False)
    assert all(math.isfinite(r.loss) and math.isfinite(r.val_loss or 0) for r in history.epochs)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="inductor on the CPU needs a C++ compiler")
def test_inductor_on_the_cpu() -> None:
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would be a failure here
        history = torch_train.fit(tiny_net(), data(8), None, config(compile="on"), progress=False)
    assert history.compile_seconds > 0 and len(history.epochs) == 2


class _Bar:
    def update(self, n: int) -> None:
        pass
