"""The conformance kit: the built-in backends pass it, deliberately broken backends fail it by name."""

import importlib.util

import numpy as np
import pytest

from featurelens import testing
from featurelens.backends import Backend, Capability, ChannelSummary, LayerInfo, get_backend
from featurelens.cli import main

HAS_KERAS = importlib.util.find_spec("keras") is not None


def failures(results):
    return {r.check: r.message for r in results if r.failed}


@pytest.mark.torch
@pytest.mark.parametrize("check", testing.CHECKS, ids=str)
def test_torch_backend_conforms(check):
    testing.require(check, "torch")


@pytest.mark.keras
@pytest.mark.parametrize("check", testing.CHECKS, ids=str)
def test_keras_backend_conforms(check):
    testing.require(check, "keras")


# -- deliberately broken backends: each must fail the check that names its fault -------------------


def _torch_subclass(**methods):
    base = type(get_backend("torch"))
    return type("Broken", (base,), methods)()


@pytest.mark.torch
def test_wrong_layer_names_fail_layer_names():
    base = type(get_backend("torch"))

    def layers(self, native, input_shape):
        return [LayerInfo(i.name.replace("conv", "convolution"), i.kind, i.output_shape, i.params)
                for i in base.layers(self, native, input_shape)]

    results = testing.check_backend(_torch_subclass(layers=layers), only=["layer_names"])
    assert "layer_names" in failures(results)
    assert "block1_convolution1" in failures(results)["layer_names"]


@pytest.mark.torch
def test_a_leftover_hook_fails_introspection_cleanup():
    base = type(get_backend("torch"))

    def feature_maps(self, native, images, layers, batch_size=64):
        next(native.children()).register_forward_hook(lambda module, inputs, output: None)  # never removed
        yield from base.feature_maps(self, native, images, layers, batch_size)

    results = testing.check_backend(_torch_subclass(feature_maps=feature_maps), only=["introspection_cleanup"])
    message = failures(results)["introspection_cleanup"]
    assert "still attached" in message and "block1_conv1: forward hooks" in message


@pytest.mark.torch
def test_unnormalized_probabilities_fail_predict_probabilities():
    base = type(get_backend("torch"))

    def predict(self, native, images, batch_size=256):
        return base.predict(self, native, images, batch_size) * 0.5

    results = testing.check_backend(_torch_subclass(predict=predict), only=["predict_probabilities"])
    assert "rows must sum to 1" in failures(results)["predict_probabilities"]


@pytest.mark.torch
def test_channels_first_feature_maps_fail_the_layout_check():
    base = type(get_backend("torch"))

    def feature_maps(self, native, images, layers, batch_size=64):
        for batch in base.feature_maps(self, native, images, layers, batch_size):
            yield {k: (np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if v.ndim == 4 else v) for k, v in batch.items()}

    message = failures(testing.check_backend(_torch_subclass(feature_maps=feature_maps),
                                             only=["feature_maps_layout"]))["feature_maps_layout"]
    assert "(N, H, W, C)" in message


def _summaries_changed(change):
    """A torch backend whose channel summaries pass through ``change(summary, maps)``."""
    base = type(get_backend("torch"))

    def channel_summaries(self, native, images, layers, batch_size=64, floors=None):
        for batch in base.feature_maps(self, native, images, layers, batch_size):
            yield {name: change(ChannelSummary.of_maps(maps), maps) for name, maps in batch.items()}

    return _torch_subclass(channel_summaries=channel_summaries)


def _last_maximum(summary, maps):
    n, h, w, c = maps.shape
    flipped = maps.reshape(n, h * w, c)[:, ::-1].argmax(axis=1)
    where = h * w - 1 - flipped
    return ChannelSummary(summary.maxima, summary.means, np.stack([where // w, where % w], axis=-1))


@pytest.mark.torch
@pytest.mark.parametrize(("change", "said"), [
    (_last_maximum, "first maximum"),
    (lambda s, maps: ChannelSummary(s.maxima, s.means, s.positions[..., ::-1].copy()), "first maximum"),
    (lambda s, maps: ChannelSummary(s.maxima, s.means * 1.001, s.positions), "means differ"),
    (lambda s, maps: ChannelSummary(s.maxima * (1 + 1e-7), s.means, s.positions), "maxima differ"),
    (lambda s, maps: ChannelSummary(s.maxima[:, :-1], s.means[:, :-1], s.positions[:, :-1]), "expected (n, C)"),
    (lambda s, maps: ChannelSummary(s.maxima, s.means, np.full_like(s.positions, -1)), "every position"),
], ids=["last-maximum", "x-y-swapped", "means-off", "maxima-rounded", "channel-missing", "nothing-located"])
def test_wrong_channel_summaries_fail_their_check(change, said):
    message = failures(testing.check_backend(_summaries_changed(change), only=["channel_summaries"]))
    assert said in message["channel_summaries"]


def _leave_out_everything(s, floor):
    return ChannelSummary(s.maxima, s.means, np.full_like(s.positions, -1))


def _clamp_to_the_floor(s, floor):
    below = s.maxima <= floor
    return ChannelSummary(np.where(below, floor, s.maxima).astype(np.float32), s.means,
                          np.where(below[..., None], -1, s.positions))


@pytest.mark.torch
@pytest.mark.parametrize(("change", "said"), [(_leave_out_everything, "above its floor"),
                                              (_clamp_to_the_floor, "maxima (with floors) differ")],
                         ids=["positions-left-out", "maxima-clamped"])
def test_wrong_summaries_under_floors_fail_the_summaries_check(change, said):
    base = type(get_backend("torch"))

    def channel_summaries(self, native, images, layers, batch_size=64, floors=None):
        for batch in base.channel_summaries(self, native, images, layers, batch_size, floors):
            yield {name: s if floors is None else change(s, floors[name]) for name, s in batch.items()}

    message = failures(testing.check_backend(_torch_subclass(channel_summaries=channel_summaries),
                                             only=["channel_summaries"]))["channel_summaries"]
    assert said in message


@pytest.mark.torch
def test_ignoring_early_stopping_fails_its_check():
    base = type(get_backend("torch"))

    def fit(self, native, spec, train, validation, config, progress=True):
        return base.fit(self, native, spec, train, validation, config.replace(early_stopping=None), progress)

    message = failures(testing.check_backend(_torch_subclass(fit=fit), only=["early_stopping"]))["early_stopping"]
    assert "stops after epoch 2" in message and "6 epochs" in message


@pytest.mark.torch
def test_forgetting_the_optimizer_state_fails_the_resume_check():
    from featurelens_torch import train as torch_train

    def fit(self, native, spec, train, validation, config, progress=True, observers=(), checkpoint=None, resume=None):
        if resume is not None:
            resume.arrays = {k: v for k, v in resume.arrays.items() if not k.startswith("optimizer/")}
            resume.values["optimizer"] = {"scalars": {}, "groups": 1}
        return torch_train.fit(native, train, validation, config, progress, observers, checkpoint, resume)

    message = failures(testing.check_backend(_torch_subclass(fit=fit), only=["resume_bit_identical"]))
    assert "resumed after epoch 1, training ended with other weights" in message["resume_bit_identical"]


@pytest.mark.torch
def test_training_on_through_nan_fails_its_check(monkeypatch):
    from featurelens_torch.watch import LossWatch

    monkeypatch.setattr(LossWatch, "bad", lambda self, loss: False)
    monkeypatch.setattr(LossWatch, "flush", lambda self: False)
    message = failures(testing.check_backend("torch", only=["nan_loss_stops_training"]))
    assert "raised nothing; expected TrainingDivergedError" in message["nan_loss_stops_training"]


class InferenceOnly(Backend):
    """A minimal backend: uniform probabilities, weights kept as given. No capability declared."""

    name = "uniform"

    def versions(self):
        return {"numpy": np.__version__}

    def build(self, spec, seed=0):
        from featurelens.backends import canonical_shapes

        rng = np.random.default_rng(seed)
        return {"spec": spec, "weights": {k: rng.normal(size=s).astype(np.float32)
                                          for k, s in canonical_shapes(spec).items()}}

    def predict(self, native, images, batch_size=256):
        k = native["spec"].num_classes
        return np.full((len(images), k), 1 / k, np.float32)

    def get_weights(self, native):
        return {k: v.copy() for k, v in native["weights"].items()}

    def set_weights(self, native, weights):
        native["weights"] = {k: np.asarray(v, np.float32).copy() for k, v in weights.items()}


def test_checks_of_undeclared_capabilities_are_skipped_and_wrong_predictions_fail():
    results = {r.check: r for r in testing.check_backend(InferenceOnly(), cross_backend=False)}
    for check in testing.CHECKS:
        if check.capability is not None:
            assert results[check.name].status == "skipped", check.name
            assert f"'{check.capability.value}' capability" in results[check.name].message
    assert results["weights_roundtrip"].status == "passed"
    assert results["predict_probabilities"].failed
    assert "reference forward pass" in results["predict_probabilities"].message
    with pytest.raises(AssertionError, match="predict_probabilities"):
        testing.assert_conforms(InferenceOnly(), cross_backend=False)


def test_a_crashing_backend_fails_with_the_cause():
    class Crashing(InferenceOnly):
        def get_weights(self, native):
            raise RuntimeError("boom")

    message = failures(testing.check_backend(Crashing(), only=["weight_names"]))["weight_names"]
    assert message == "raised RuntimeError: boom"


def test_undeclared_capability_is_a_clear_error_in_the_core():
    from featurelens import BackendError, Normalization, build_model, get_preset

    model = build_model(get_preset("tiny"), Normalization((0.0,) * 3, (1.0,) * 3), [str(i) for i in range(10)],
                        backend=InferenceOnly())
    with pytest.raises(BackendError, match="does not declare the 'introspect' capability"):
        model.layers()
    assert Capability.TRAIN not in InferenceOnly.capabilities


@pytest.mark.torch
def test_cli_check_backend_prints_one_line_per_check(capsys):
    code = main(["check-backend", "torch", "--only", "weight_names", "--only", "layer_names"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("PASSED  weight_names") and out[1].startswith("PASSED  layer_names")
    assert out[-1] == "2 checks passed, 0 failed, 0 skipped"


def test_cli_check_backend_fails_for_an_unknown_backend(capsys):
    assert main(["check-backend", "nope", "--only", "registration"]) == 2  # a bad argument: one line, status 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_cli_lists_the_checks(capsys):
    assert main(["check-backend", "x", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(check.name in out for check in testing.CHECKS)
