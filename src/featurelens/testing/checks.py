"""The checks of the conformance kit: each states one promise of the backend contract.

A check is a function of a :class:`KitContext`; it returns a short success message, raises
:class:`CheckFailed` with what was wrong, or :class:`CheckSkipped` with why it does not apply.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.layers import LayerNotFoundError
from featurelens.backends.objectives import ChannelMean, ClassScore, Gradients, Unit
from featurelens.backends.registry import Registry
from featurelens.backends.summaries import UNLOCATED, ChannelSummary
from featurelens.compare import relative_difference
from featurelens.errors import FeaturelensError, InputError
from featurelens.history import STOP_REASONS, History
from featurelens.model import SpecModel, load_model
from featurelens.normalization import Normalization
from featurelens.testing import fixtures, reference
from featurelens.weights import canonical_shapes

#: Feature maps and probabilities against the float64 reference: relative difference per layer.
REFERENCE_TOLERANCE = 1e-5
#: Predictions of the same folder in two backends (float32 each).
CROSS_BACKEND_TOLERANCE = 1e-4
PROBABILITY_SUM_TOLERANCE = 1e-5


class CheckFailed(AssertionError):
    """The backend broke the promise the check is about."""


class CheckSkipped(Exception):
    """The check does not apply to this backend."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Check:
    """One promise of the contract: ``run(context)`` verifies it."""

    name: str
    description: str
    capability: Capability | None
    run: Callable[[KitContext], str]

    def __str__(self) -> str:  # readable pytest ids: parametrize(..., ids=str)
        return self.name


class KitContext:
    """The backend under test and what the checks share: the spec, weights, a built model."""

    def __init__(self, backend: Backend, registry: Registry | None, cross_backend: bool = True) -> None:
        self.backend = backend
        self.registry = registry
        self.cross_backend = cross_backend
        self.spec = fixtures.kit_spec()
        self.weights = fixtures.random_weights(self.spec, seed=11)
        self.images = fixtures.images(self.spec, 7, seed=5)

    @functools.cached_property
    def reference(self) -> dict[str, np.ndarray]:
        return reference.forward(self.spec, self.weights, self.images)

    def loaded(self) -> Any:
        """A fresh native model of the kit spec holding the kit's weights."""
        native = self.backend.build(self.spec, seed=0)
        self.backend.set_weights(native, {k: v.copy() for k, v in self.weights.items()})
        return native

    def others(self) -> list[Backend]:
        """The other installed backends that load (for the cross-backend check)."""
        if self.registry is None or not self.cross_backend:
            return []
        out = []
        for name in self.registry.available():
            if name == self.backend.name:
                continue
            try:
                out.append(self.registry.get(name))
            except FeaturelensError:
                continue
        return out

    def fit(self, config_name: str, seed_data: int = 3) -> tuple[Any, History]:
        config = getattr(fixtures, config_name)()
        x, y = fixtures.learnable_data(self.spec, 48, seed=seed_data)
        vx, vy = fixtures.learnable_data(self.spec, 12, seed=seed_data + 1)
        native = self.backend.build(self.spec, seed=config.seed)
        history = self.backend.fit(native, self.spec, (x, y), (vx, vy), config, progress=False)
        expect(isinstance(history, History), f"fit returned {type(history).__name__}, not a featurelens History")
        return native, history


# -- core ------------------------------------------------------------------------------------------


def check_registration(ctx: KitContext) -> str:
    b = ctx.backend
    expect(isinstance(b, Backend), f"{b!r} is not a featurelens.backends.Backend")
    expect(isinstance(b.name, str) and bool(b.name), "Backend.name is empty; give the backend a short name")
    unknown = [c for c in b.capabilities if not isinstance(c, Capability)]
    expect(not unknown, f"capabilities {unknown!r} are not featurelens.backends.Capability members")
    versions = b.versions()
    expect(isinstance(versions, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()),
           f"versions() must return dict[str, str], got {versions!r}")
    if ctx.registry is None:
        return "a Backend instance (not looked up through the registry); name and capabilities are valid"
    entry = ctx.registry.backends.get(b.name)
    if entry is None:
        raise CheckFailed(f"no plugin registers a backend named {b.name!r}")
    caps = ", ".join(sorted(c.value for c in b.capabilities)) or "none"
    return f"registered as {b.name!r} (priority {entry.priority}); capabilities: {caps}"


def check_weight_names(ctx: KitContext) -> str:
    weights = ctx.backend.get_weights(ctx.backend.build(ctx.spec, seed=0))
    expected = canonical_shapes(ctx.spec)
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    expect(not missing and not extra, f"get_weights names differ from featurelens.weights: missing "
           f"{missing[:4]}, unexpected {extra[:4]}")
    wrong = [f"{k} {tuple(np.shape(weights[k]))} (expected {s})" for k, s in expected.items()
             if tuple(np.shape(weights[k])) != s]
    expect(not wrong, f"canonical layouts differ: {'; '.join(wrong[:3])}")
    dtypes = sorted({str(np.asarray(v).dtype) for v in weights.values()})
    expect(dtypes == ["float32"], f"weights must be float32 numpy arrays, got {dtypes}")
    return f"{len(expected)} weights with the canonical names, shapes and dtype"


def check_weights_roundtrip(ctx: KitContext) -> str:
    back = ctx.backend.get_weights(ctx.loaded())
    changed = [k for k, v in ctx.weights.items() if not np.array_equal(np.asarray(back[k]), v)]
    expect(not changed, f"set_weights then get_weights changed {len(changed)} weight(s), first "
           f"{changed[0] if changed else ''}: the round trip must be exact")
    return f"{len(back)} weights round-trip bit for bit"


def check_build_seeded(ctx: KitContext) -> str:
    build = ctx.backend.build
    a, b, c = (ctx.backend.get_weights(build(ctx.spec, seed=s)) for s in (1, 1, 2))
    same = [k for k in a if not np.array_equal(a[k], b[k])]
    expect(not same, f"build with the same seed gave different {same[0] if same else ''}")
    kernels = [k for k in a if k.endswith(".kernel")]
    expect(any(not np.array_equal(a[k], c[k]) for k in kernels), "seeds 1 and 2 built identical kernels")
    return "the same seed builds the same weights, another seed others"


def check_predict_probabilities(ctx: KitContext) -> str:
    native = ctx.loaded()
    probs = ctx.backend.predict(native, ctx.images, batch_size=256)
    n, k = len(ctx.images), ctx.spec.num_classes
    expect(isinstance(probs, np.ndarray), f"predict returned {type(probs).__name__}, not a numpy array")
    expect(probs.shape == (n, k), f"predict returned shape {probs.shape}, expected {(n, k)}")
    expect(probs.dtype == np.float32, f"predict returned {probs.dtype}, expected float32")
    expect(bool(np.isfinite(probs).all()), "predict returned non-finite values")
    sums = probs.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    expect(abs(float(sums[worst]) - 1) <= PROBABILITY_SUM_TOLERANCE,
           f"rows must sum to 1: row {worst} sums to {sums[worst]:.6g} (probabilities, not logits)")
    expect(bool(((probs >= 0) & (probs <= 1)).all()), "probabilities outside [0, 1]")
    diff = relative_difference(probs, ctx.reference["head_softmax"])
    expect(diff <= REFERENCE_TOLERANCE, f"probabilities differ from the reference forward pass by {diff:.3g} "
           f"(relative; tolerance {REFERENCE_TOLERANCE})")
    small = ctx.backend.predict(native, ctx.images, batch_size=3)
    expect(np.allclose(small, probs, atol=1e-6), "predict depends on batch_size (3 vs 256)")
    return f"({n}, {k}) float32 rows summing to 1, equal to the reference (relative difference {diff:.1g})"


def check_spec_options(ctx: KitContext) -> str:
    done = []
    for spec in fixtures.option_specs():
        weights = fixtures.random_weights(spec, seed=13)
        expected = reference.forward(spec, weights, ctx.images)
        native = ctx.backend.build(spec, seed=0)
        ctx.backend.set_weights(native, {k: v.copy() for k, v in weights.items()})
        probs = ctx.backend.predict(native, ctx.images)
        diff = relative_difference(probs, expected["head_softmax"])
        expect(diff <= REFERENCE_TOLERANCE, f"{spec.name} (pooling={spec.pooling}, logit_scale={spec.logit_scale}, "
               f"GELU): probabilities differ from the reference forward pass by {diff:.3g} (relative)")
        if ctx.backend.supports(Capability.INTROSPECT):
            maps = next(iter(ctx.backend.feature_maps(native, ctx.images, None, batch_size=64)))
            expect(list(maps) == spec.layer_names(), f"{spec.name}: feature_maps(None) gave the layers {list(maps)}, "
                   f"expected {spec.layer_names()}")
            for name, array in maps.items():
                gap = relative_difference(array, expected[name])
                expect(gap <= REFERENCE_TOLERANCE, f"{spec.name}: {name} differs from the reference by {gap:.3g}")
        done.append(spec.pooling)
    return f"GELU, {' and '.join(done)} pooling and logit scales equal the reference"


def check_folder_roundtrip(ctx: KitContext) -> str:
    model = SpecModel(ctx.backend, ctx.loaded(), ctx.spec, _identity(ctx), ("a", "b", "c"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model")
        again = load_model(folder, backend=ctx.backend)
    before = ctx.backend.predict(model.native, ctx.images)
    after = again.backend.predict(again.native, ctx.images)
    expect(np.array_equal(before, after), "a saved and reloaded model folder predicts differently "
           f"(max difference {np.abs(before - after).max():.3g})")
    return "a model folder saved and loaded by this backend predicts identically"


def check_cross_backend(ctx: KitContext) -> str:
    others = ctx.others()
    if not others:
        raise CheckSkipped("no other backend is installed" if ctx.cross_backend else "turned off")
    lines = []
    for other in others:
        for writer, reader in ((ctx.backend, other), (other, ctx.backend)):
            native = writer.build(ctx.spec, seed=0)
            writer.set_weights(native, {k: v.copy() for k, v in ctx.weights.items()})
            model = SpecModel(writer, native, ctx.spec, _identity(ctx), ("a", "b", "c"))
            with tempfile.TemporaryDirectory() as tmp:
                loaded = load_model(model.save(Path(tmp) / "model"), backend=reader)
            a = writer.predict(native, ctx.images)
            b = reader.predict(loaded.native, ctx.images)
            worst = float(np.abs(a - b).max())
            expect(worst <= CROSS_BACKEND_TOLERANCE, f"a folder saved by {writer.name} predicts differently in "
                   f"{reader.name}: max difference {worst:.3g} (tolerance {CROSS_BACKEND_TOLERANCE})")
        lines.append(f"{other.name} (max difference {worst:.1g})")
    return "folders load both ways with the same predictions: " + ", ".join(lines)


def _identity(ctx: KitContext) -> Normalization:
    channels = ctx.spec.input_shape[2]
    return Normalization((0.0,) * channels, (1.0,) * channels)


# -- Capability.INTROSPECT --------------------------------------------------------------------------


def check_layer_names(ctx: KitContext) -> str:
    infos = ctx.backend.layers(ctx.loaded(), ctx.spec.input_shape)
    got = [i.name for i in infos]
    want = ctx.spec.layer_names()
    expect(got == want, f"layers() names differ from the spec's: first difference at position "
           f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}: "
           f"got {got[:6]}..., the spec has {want[:6]}...")
    for info, layer in zip(infos, ctx.spec.layers()):
        expect(tuple(info.output_shape) == tuple(layer.output_shape),
               f"{info.name}: output shape {tuple(info.output_shape)}, the spec says {layer.output_shape} "
               "(channels last)")
        expect(info.kind == layer.kind, f"{info.name}: kind {info.kind!r}, the spec says {layer.kind!r}")
        expect(info.params == layer.params, f"{info.name}: {info.params} parameters, the spec says {layer.params}")
    return f"{len(infos)} layers with the spec's names, kinds, shapes and parameter counts"


def check_filters_layout(ctx: KitContext) -> str:
    native = ctx.loaded()
    convs = ctx.spec.conv_layer_names()
    for name in convs:
        got = ctx.backend.filters(native, name)
        want = ctx.weights[f"{name}.kernel"].transpose(3, 0, 1, 2)
        expect(isinstance(got, np.ndarray) and got.dtype == np.float32,
               f"filters({name!r}) must be a float32 numpy array")
        expect(got.shape == want.shape, f"filters({name!r}) has shape {got.shape}, expected (C_out, kh, kw, C_in) "
               f"= {want.shape}")
        expect(np.array_equal(got, want), f"filters({name!r}) are not the layer's kernels in (C_out, kh, kw, C_in)")
    _expect_error(lambda: ctx.backend.filters(native, "block1_relu1"), FeaturelensError,
                  "filters of a layer that is not a convolution")
    _expect_error(lambda: ctx.backend.filters(native, "no_such_layer"), LayerNotFoundError,
                  "filters of an unknown layer")
    return f"{len(convs)} conv layers as (C_out, kh, kw, C_in) float32; clear errors for other layers"


def check_feature_maps_layout(ctx: KitContext) -> str:
    native = ctx.loaded()
    batches = list(ctx.backend.feature_maps(native, ctx.images, None, batch_size=3))
    expect(len(batches) == 3, f"7 images with batch_size=3 gave {len(batches)} batches, expected 3")
    names = ctx.spec.layer_names()
    expect(list(batches[0]) == names,
           f"feature_maps(None) must give every layer in order; got {list(batches[0])[:5]}...")
    worst = (0.0, "")
    for name, layer in zip(names, ctx.spec.layers()):
        parts = [b[name] for b in batches]
        for part in parts:
            expect(isinstance(part, np.ndarray) and part.dtype == np.float32, f"{name}: maps must be float32 arrays")
        maps = np.concatenate(parts)
        expect(maps.shape == (len(ctx.images), *layer.output_shape),
               f"{name}: maps of shape {maps.shape}, expected {(len(ctx.images), *layer.output_shape)} (N, H, W, C)")
        diff = relative_difference(maps, ctx.reference[name])
        expect(diff <= REFERENCE_TOLERANCE, f"{name}: maps differ from the reference forward pass by {diff:.3g} "
               f"(relative; tolerance {REFERENCE_TOLERANCE})")
        worst = max(worst, (diff, name))
    subset = ["block2_conv1", "block1_conv1"]
    picked = next(iter(ctx.backend.feature_maps(native, ctx.images, subset, batch_size=64)))
    expect(list(picked) == subset, f"feature_maps({subset}) returned the layers {list(picked)}")
    _expect_error(lambda: list(ctx.backend.feature_maps(native, ctx.images, ["nope"], 64)), LayerNotFoundError,
                  "feature maps of an unknown layer")
    return (f"{len(names)} layers as (N, H, W, C) float32 in order, equal to the reference "
            f"(worst {worst[0]:.1g} at {worst[1]}); batches and layer subsets honoured")


def check_channel_summaries(ctx: KitContext) -> str:
    native = ctx.loaded()
    # A constant image makes every ReLU tie across its interior, and some channels zero everywhere:
    # the position must then be the first maximum in row-major order.
    images = np.concatenate([ctx.images, np.full((1, *ctx.images.shape[1:]), 0.5, np.float32)])
    layers = ["block2_relu1", "block1_conv2", "block1_relu1"]
    maps = {name: np.concatenate([b[name] for b in ctx.backend.feature_maps(native, images, layers, 3)])
            for name in layers}
    # Floors: the middle image's maximum (so some maxima sit exactly on it), -inf for channel 0.
    floors = {}
    for name in layers:
        floor = np.sort(maps[name].max(axis=(1, 2)), axis=0)[len(images) // 2].astype(np.float32)
        floor[0] = -np.inf
        floors[name] = floor
    for given in (None, floors):
        batches = list(ctx.backend.channel_summaries(native, images, layers, 3, given))
        expect(len(batches) == 3, f"8 images with batch_size=3 gave {len(batches)} batches of summaries, expected 3")
        expect(all(list(b) == layers for b in batches), f"channel_summaries({layers}) gave the layers "
               f"{list(batches[0])}, not those asked for in that order")
        for name in layers:
            _expect_summary(name, [b[name] for b in batches], maps[name], None if given is None else given[name])
    _expect_error(lambda: list(ctx.backend.channel_summaries(native, images, ["nope"], 3)), LayerNotFoundError,
                  "channel summaries of an unknown layer")
    _expect_error(lambda: list(ctx.backend.channel_summaries(native, images, ["dense1"], 3)), InputError,
                  "channel summaries of a layer that is not spatial")
    return (f"{len(layers)} layers in 3 batches, with and without floors: maxima equal those of feature_maps(), "
            "means within 1e-5, positions the first maximum (ties included; with floors, wherever above them); clear "
            "errors for unknown and non-spatial layers")


def _expect_summary(name: str, parts: list[Any], want: np.ndarray, floor: np.ndarray | None) -> None:
    """One layer's summaries against its feature maps; with a floor, positions at or below it may be left out."""
    n, h, w, c = want.shape
    for part in parts:
        expect(isinstance(part, ChannelSummary), f"{name}: channel_summaries must yield ChannelSummary objects, got "
               f"{type(part).__name__}")
        expect(part.maxima.dtype == np.float32 and part.means.dtype == np.float32 and part.positions.dtype == np.int64,
               f"{name}: maxima and means must be float32, positions int64")
    maxima, means = np.concatenate([p.maxima for p in parts]), np.concatenate([p.means for p in parts])
    positions = np.concatenate([p.positions for p in parts])
    expect(maxima.shape == (n, c) and means.shape == (n, c) and positions.shape == (n, c, 2),
           f"{name}: maxima {maxima.shape}, means {means.shape} and positions {positions.shape}, expected (n, C) = "
           f"{(n, c)} and (n, C, 2)")
    with_floors = "" if floor is None else " (with floors)"
    true_maxima = want.max(axis=(1, 2))
    expect(np.array_equal(maxima, true_maxima),
           f"{name}: maxima{with_floors} differ from the largest value of feature_maps() per image and channel")
    exact = want.mean(axis=(1, 2), dtype=np.float64)
    scale = np.abs(want).mean(axis=(1, 2), dtype=np.float64) + 1e-12  # float32 sums err relative to |values|
    worst = float(np.max(np.abs(means - exact) / scale))
    expect(worst <= 1e-5, f"{name}: means{with_floors} differ from the mean of feature_maps() by {worst:.3g} "
           "(relative to the mean magnitude; tolerance 1e-5)")
    right = positions[..., 0] * w + positions[..., 1] == want.reshape(n, h * w, c).argmax(axis=1)
    left_out = (positions == UNLOCATED).all(axis=-1)
    if floor is None:
        expect(not left_out.any(), f"{name}: without floors every position is required, some are left out as (-1, -1)")
        required = np.ones((n, c), bool)
    else:
        required = (true_maxima > floor) | np.isneginf(floor)
    expect(bool(right[required].all()), f"{name}: the position of a maximum{with_floors} is not the first maximum of "
           "feature_maps() in row-major (y, x) order" + ("" if floor is None else " (one above its floor, or with "
                                                          "a floor of -inf)"))
    expect(bool((right | left_out).all()), f"{name}: a maximum at or below its floor must be located correctly or "
           "left out as (-1, -1)")


def check_introspection_cleanup(ctx: KitContext) -> str:
    native = ctx.loaded()
    before = ctx.backend.predict(native, ctx.images)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("layers()", lambda: ctx.backend.layers(native, ctx.spec.input_shape)),
        ("filters()", lambda: ctx.backend.filters(native, "block1_conv1")),
        ("feature_maps() read to the end", lambda: list(ctx.backend.feature_maps(native, ctx.images, None, 3))),
        ("feature_maps() abandoned after one batch", lambda: _first_and_close(
            ctx.backend.feature_maps(native, ctx.images, ["block1_conv1"], 3))),
        ("feature_maps() of an unknown layer (fails)", lambda: _swallow(
            lambda: list(ctx.backend.feature_maps(native, ctx.images, ["block1_conv1", "nope"], 3)))),
        ("feature_maps() of wrongly shaped images (fails)", lambda: _swallow(
            lambda: list(ctx.backend.feature_maps(native, np.zeros((2, 5, 7, 3), np.float32), None, 3)))),
        ("channel_summaries() read to the end", lambda: list(ctx.backend.channel_summaries(
            native, ctx.images, ["block1_relu1", "block2_conv1"], 3))),
        ("channel_summaries() abandoned after one batch", lambda: _first_and_close(
            ctx.backend.channel_summaries(native, ctx.images, ["block1_conv1"], 3))),
        ("channel_summaries() of an unknown layer (fails)", lambda: _swallow(
            lambda: list(ctx.backend.channel_summaries(native, ctx.images, ["block1_conv1", "nope"], 3)))),
    ]
    _expect_nothing_left(ctx, native, steps, before, "introspection changed what the model predicts (a mode or "
                         "hook left behind?)")
    return f"nothing attached after {len(steps)} introspection calls (3 failing, 2 abandoned); predictions unchanged"


def _expect_nothing_left(ctx: KitContext, native: Any, steps: list[tuple[str, Callable[[], Any]]],
                         before: np.ndarray, changed_message: str) -> None:
    """Run each step; after each, nothing may stay attached; afterwards predictions equal ``before``."""
    for what, step in steps:
        step()
        left = ctx.backend.attachments(native)
        expect(not left, f"after {what}, still attached: {'; '.join(map(str, left[:3]))}")
    expect(np.array_equal(before, ctx.backend.predict(native, ctx.images)), changed_message)


def _first_and_close(iterator: Any) -> None:
    next(iterator)
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _swallow(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # the failure itself is what this step provokes
        return


def _expect_error(call: Callable[[], Any], error: type[BaseException], what: str) -> BaseException:
    try:
        call()
    except error as exc:
        return exc
    except Exception as exc:
        raise CheckFailed(f"{what} raised {type(exc).__name__}: {exc}; expected featurelens's "
                          f"{error.__name__}") from exc
    raise CheckFailed(f"{what} raised nothing; expected {error.__name__}")


# -- Capability.WRAP --------------------------------------------------------------------------------


def check_native_weights(ctx: KitContext) -> str:
    source = ctx.loaded()
    expect(ctx.backend.accepts(source), "accepts() refuses the backend's own built model")
    record = ctx.backend.architecture(source)
    expect(isinstance(record, dict) and isinstance(record.get("class"), str),
           f"architecture() must return a dict with a 'class' string, got {record!r}")
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"architecture() is not JSON-serialisable: {exc}") from exc
    saved = ctx.backend.native_weights(source)
    expect(bool(saved) and all(isinstance(v, np.ndarray) for v in saved.values()),
           "native_weights() must return a non-empty dict of numpy arrays")
    target = ctx.backend.build(ctx.spec, seed=3)
    ctx.backend.load_native_weights(target, saved, ctx.spec.input_shape)
    same = np.array_equal(ctx.backend.predict(source, ctx.images), ctx.backend.predict(target, ctx.images))
    expect(same, "a model given native_weights() of another predicts differently")
    broken = dict(saved)
    broken.pop(next(iter(broken)))
    _expect_error(lambda: ctx.backend.load_native_weights(ctx.backend.build(ctx.spec), broken, ctx.spec.input_shape),
                  FeaturelensError, "load_native_weights with a tensor missing")
    return f"{len(saved)} native tensors move between two models exactly; a missing one is a clear error"


# -- Capability.TRAIN -------------------------------------------------------------------------------


def check_training_history(ctx: KitContext) -> str:
    native, h = ctx.fit("train_config")
    expect(len(h.epochs) == 2, f"2 epochs were asked for, the History has {len(h.epochs)}")
    for r in h.epochs:
        values = {"loss": r.loss, "accuracy": r.accuracy, "val_loss": r.val_loss, "val_accuracy": r.val_accuracy}
        bad = {k: v for k, v in values.items() if v is None or not np.isfinite(v)}
        expect(not bad, f"epoch {r.epoch}: missing or non-finite {bad}")
        expect(0 <= r.accuracy <= 1 and 0 <= (r.val_accuracy or 0) <= 1, f"epoch {r.epoch}: accuracy outside [0, 1]")
        expect(bool(np.isclose(r.learning_rate, 1e-3, rtol=1e-6)), f"epoch {r.epoch}: learning rate {r.learning_rate}, "
               "the config says 1e-3")
        expect(r.seconds >= 0, f"epoch {r.epoch}: negative duration")
    expect([r.epoch for r in h.epochs] == [1, 2], f"epochs must be numbered from 1, got {[r.epoch for r in h.epochs]}")
    expect(h.stop_reason == "max_epochs", f"stop_reason {h.stop_reason!r}, expected 'max_epochs'")
    expect(h.stop_reason in STOP_REASONS, f"unknown stop_reason {h.stop_reason!r}")
    expect(h.monitor == "val_loss", f"monitor {h.monitor!r}; without early stopping it is val_loss")
    expect(h.best_epoch in (1, 2), f"best_epoch {h.best_epoch!r}; call History.finish at the end of fit")
    expect(h.backend == ctx.backend.name, f"History.backend is {h.backend!r}, expected {ctx.backend.name!r}")
    probs = ctx.backend.predict(native, ctx.images)
    expect(bool(np.isfinite(probs).all()), "the trained model predicts non-finite values")
    return f"2 epochs, every metric finite, best epoch {h.best_epoch}, stop reason max_epochs"


def check_early_stopping(ctx: KitContext) -> str:
    _, h = ctx.fit("early_stopping_config")
    expect(len(h.epochs) == 2, f"with patience 1 and nothing improving after epoch 1, Keras stops after epoch 2; "
           f"this backend ran {len(h.epochs)} epochs")
    expect(h.stop_reason == "early_stopping", f"stop_reason {h.stop_reason!r}, expected 'early_stopping'")
    expect(h.best_epoch == 1, f"best_epoch {h.best_epoch}, expected 1")
    return "stopped after epoch 2 with best epoch 1, as Keras's EarlyStopping does"


def check_lr_reduction(ctx: KitContext) -> str:
    _, h = ctx.fit("lr_reduction_config")
    lrs = [r.learning_rate for r in h.epochs]
    want = [1e-3, 1e-3, 5e-4, 2.5e-4]
    expect(len(lrs) == 4 and np.allclose(lrs, want, rtol=1e-5),
           f"learning rates per epoch {lrs}; ReduceLROnPlateau (patience 1, factor 0.5) gives {want}")
    expect(h.lr_reductions == [3, 4], f"History.lr_reductions {h.lr_reductions}, expected [3, 4]")
    return "learning rate halved after epochs 2 and 3, as Keras's ReduceLROnPlateau does"


def check_cpu_determinism(ctx: KitContext) -> str:
    native_a, ha = ctx.fit("train_config")
    native_b, hb = ctx.fit("train_config")
    wa, wb = ctx.backend.get_weights(native_a), ctx.backend.get_weights(native_b)
    differ = [k for k in wa if not np.array_equal(wa[k], wb[k])]
    expect(not differ,
           f"two CPU runs with seed 7 ended with different weights ({len(differ)} differ, first {differ[:1]})")
    expect(ha.metric("loss") == hb.metric("loss"), f"two CPU runs with seed 7 have different losses "
           f"{ha.metric('loss')} vs {hb.metric('loss')}")
    return "two CPU runs with the same seed end with bit-identical weights and losses"


# -- Capability.GRADIENTS ---------------------------------------------------------------------------

#: Central finite differences of float32 forward passes against backend gradients (relative).
FINITE_DIFFERENCE_TOLERANCE = 2e-2
FINITE_DIFFERENCE_EPS = 1e-2
#: Gradients of the same folder in two backends (relative difference).
GRADIENT_CROSS_BACKEND_TOLERANCE = 1e-4


def _gradient_objectives(ctx: KitContext) -> list[tuple[Any, str | None]]:
    n = 3
    return [(ClassScore(tuple(int(i) % ctx.spec.num_classes for i in range(n))), "block2_conv1"),
            (ClassScore(tuple((int(i) + 1) % ctx.spec.num_classes for i in range(n)), "log_probability"), None),
            (ChannelMean("block1_conv2", 2), "block1_conv2"),
            (Unit("block2_conv1", 3, 2, 1), "block1_relu2"),
            (Unit("dense1", 5), "flatten")]


def _objective_of(ctx: KitContext, native: Any, images: np.ndarray, objective: Any) -> np.ndarray:
    """The objective's values computed from predict or feature_maps (float64)."""
    if isinstance(objective, ClassScore):
        logits = _logits_from_maps(ctx, native, images)
        if objective.kind == "log_probability":
            logits = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
                - logits.max(1, keepdims=True)
        return logits[np.arange(len(images)), objective.target_array]
    maps = np.concatenate([b[objective.layer] for b in ctx.backend.feature_maps(native, images, [objective.layer])])
    maps = maps.astype(np.float64)
    if isinstance(objective, ChannelMean):
        picked = maps[np.arange(len(maps)), ..., objective.channels_for(0, len(maps))]
        return picked if maps.ndim == 2 else picked.mean(axis=(1, 2))
    return maps[:, objective.channel] if maps.ndim == 2 else maps[:, objective.y, objective.x, objective.channel]


def _logits_from_maps(ctx: KitContext, native: Any, images: np.ndarray) -> np.ndarray:
    """The spec's pre-softmax head output: the input of the last (softmax) layer."""
    head = ctx.spec.layer_names()[-2]
    return np.concatenate([b[head] for b in ctx.backend.feature_maps(native, images, [head])]).astype(np.float64)


def check_gradients_finite_difference(ctx: KitContext) -> str:
    native = ctx.loaded()
    images = ctx.images[:3]
    rng = np.random.default_rng(0)
    n, h, w, c = images.shape
    worst_value = worst_grad = 0.0
    for objective, layer in _gradient_objectives(ctx):
        what = f"{type(objective).__name__}" + (f"({objective.layer!r})" if hasattr(objective, "layer") else "")
        g = ctx.backend.value_and_grad(native, images, objective, layer=layer, batch_size=2)
        expect(isinstance(g, Gradients), f"value_and_grad returned {type(g).__name__}, not Gradients")
        expect(isinstance(g.values, np.ndarray) and g.values.shape == (n,) and g.values.dtype == np.float32,
               f"{what}: values must be (N,) float32, got {getattr(g.values, 'shape', None)}")
        expect(isinstance(g.input_grad, np.ndarray) and g.input_grad.shape == images.shape
               and g.input_grad.dtype == np.float32,
               f"{what}: input_grad must be (N, H, W, C) = {images.shape} float32, got "
               f"{getattr(g.input_grad, 'shape', None)}")
        input_grad: np.ndarray = g.input_grad  # type: ignore[assignment]
        want = _objective_of(ctx, native, images, objective)
        diff = relative_difference(g.values, want)
        worst_value = max(worst_value, diff)
        expect(diff <= CROSS_BACKEND_TOLERANCE, f"{what}: values differ from predict/feature_maps by {diff:.3g}")
        for _ in range(4):
            i, y, x, ch = (int(rng.integers(s)) for s in (n, h, w, c))
            plus, minus = images[i:i + 1].copy(), images[i:i + 1].copy()
            plus[0, y, x, ch] += FINITE_DIFFERENCE_EPS
            minus[0, y, x, ch] -= FINITE_DIFFERENCE_EPS
            single = ClassScore(objective.target_array[i:i + 1], objective.kind) \
                if isinstance(objective, ClassScore) else objective
            fd = float((_objective_of(ctx, native, plus, single) - _objective_of(ctx, native, minus, single))[0]
                       / (2 * FINITE_DIFFERENCE_EPS))
            got = float(input_grad[i, y, x, ch])
            scale = max(float(np.abs(input_grad[i]).max()), 1e-6)
            err = abs(got - fd) / scale
            worst_grad = max(worst_grad, err)
            expect(err <= FINITE_DIFFERENCE_TOLERANCE,
                   f"{what}: input_grad[{i}, {y}, {x}, {ch}] = {got:.6g}, central finite differences give {fd:.6g} "
                   f"(error {err:.3g} of the image's largest gradient; tolerance {FINITE_DIFFERENCE_TOLERANCE})")
        if layer is not None:
            maps = np.concatenate([b[layer] for b in ctx.backend.feature_maps(native, images, [layer])])
            expect(g.layer == layer, f"{what}: Gradients.layer is {g.layer!r}, expected {layer!r}")
            expect(g.activations is not None and g.activations.shape == maps.shape and g.activations.dtype == np.float32
                   and g.layer_grad is not None and g.layer_grad.shape == maps.shape,
                   f"{what}: activations and layer_grad of {layer!r} must be float32 of shape {maps.shape} "
                   "(as feature_maps gives them)")
            diff = relative_difference(g.activations, maps)  # type: ignore[arg-type]
            expect(diff <= REFERENCE_TOLERANCE, f"{what}: activations of {layer!r} differ from feature_maps by "
                   f"{diff:.3g}")
        if isinstance(objective, ChannelMean) and layer == objective.layer:
            hh, ww = g.layer_grad.shape[1:3]  # type: ignore[union-attr]
            want_grad = np.zeros_like(g.layer_grad)
            want_grad[..., objective.channel] = 1.0 / (hh * ww)
            expect(bool(np.allclose(g.layer_grad, want_grad, rtol=1e-5, atol=1e-7)),  # type: ignore[arg-type]
                   f"{what}: the gradient of a channel's mean with respect to that layer must be 1/(h*w) = "
                   f"{1 / (hh * ww):.4g} on channel {objective.channel} and 0 elsewhere")
    return (f"{len(_gradient_objectives(ctx))} objectives: values equal predict/feature_maps (relative "
            f"{worst_value:.1g}), input gradients equal finite differences (worst {worst_grad:.2g}), layer "
            "activations and gradients as expected")


def check_gradients_agree_across_backends(ctx: KitContext) -> str:
    others = [o for o in ctx.others() if o.supports(Capability.GRADIENTS)]
    if not others:
        raise CheckSkipped("no other installed backend declares the 'gradients' capability" if ctx.cross_backend
                           else "turned off")
    native = ctx.loaded()
    lines = []
    for other in others:
        theirs = other.build(ctx.spec, seed=0)
        other.set_weights(theirs, {k: v.copy() for k, v in ctx.weights.items()})
        worst = 0.0
        for objective, layer in _gradient_objectives(ctx):
            a = ctx.backend.value_and_grad(native, ctx.images[:3], objective, layer=layer)
            b = other.value_and_grad(theirs, ctx.images[:3], objective, layer=layer)
            pairs = [("values", a.values, b.values), ("input_grad", a.input_grad, b.input_grad)]
            if layer is not None:
                pairs += [("activations", a.activations, b.activations), ("layer_grad", a.layer_grad, b.layer_grad)]
            for what, x, y in pairs:
                diff = relative_difference(np.asarray(x), np.asarray(y))
                worst = max(worst, diff)
                expect(diff <= GRADIENT_CROSS_BACKEND_TOLERANCE,
                       f"{type(objective).__name__}: {what} differ between {ctx.backend.name} and {other.name} by "
                       f"{diff:.3g} (relative; tolerance {GRADIENT_CROSS_BACKEND_TOLERANCE})")
        lines.append(f"{other.name} (relative difference {worst:.1g})")
    return "the same weights give the same values and gradients in " + ", ".join(lines)


def check_gradients_per_image_channels(ctx: KitContext) -> str:
    native = ctx.loaded()
    images = ctx.images[:5]
    cases = [("block1_conv2", (2, 0, 3, 3, 1), "block1_conv1"), ("dense1", (7, 0, 5, 2, 2), None)]
    worst = 0.0
    for name, channels, layer in cases:
        together = ctx.backend.value_and_grad(native, images, ChannelMean(name, channels), layer=layer, batch_size=2)
        expect(together.values.shape == (len(images),) and together.input_grad is not None,
               f"ChannelMean({name!r}, per-image channels): values must be (N,) with an input gradient, got "
               f"{together.values.shape}")
        for i, channel in enumerate(channels):
            alone = ctx.backend.value_and_grad(native, images[i:i + 1], ChannelMean(name, channel), layer=layer)
            pairs = [("values", together.values[i:i + 1], alone.values),
                     ("input_grad", together.input_grad[i:i + 1], alone.input_grad)]  # type: ignore[index]
            if layer is not None:
                pairs.append(("layer_grad", together.layer_grad[i:i + 1], alone.layer_grad))  # type: ignore[index]
            for what, x, y in pairs:
                diff = relative_difference(np.asarray(x), np.asarray(y))
                worst = max(worst, diff)
                expect(diff <= GRADIENT_CROSS_BACKEND_TOLERANCE,
                       f"ChannelMean({name!r}, channels {channels}) with batch_size=2: {what} of image {i} differ by "
                       f"{diff:.3g} from ChannelMean({name!r}, {channel}) on that image alone (relative; tolerance "
                       f"{GRADIENT_CROSS_BACKEND_TOLERANCE}); is each batch given its own slice of the channels?")
    _expect_error(lambda: ctx.backend.value_and_grad(native, images, ChannelMean("block1_conv2", (0, 1))),
                  InputError, "value_and_grad with 2 per-image channels for 5 images")
    _expect_error(lambda: ctx.backend.value_and_grad(native, images[:2], ChannelMean("block1_conv2", (0, 4))),
                  InputError, "value_and_grad with channel 4 of a 4-channel layer")
    return (f"per-image channels (conv and dense, batches of 2) equal each image with its own channel (relative "
            f"{worst:.1g}); a wrong count or a missing channel is an InputError")


def check_gradients_cleanup(ctx: KitContext) -> str:
    native = ctx.loaded()
    before = ctx.backend.predict(native, ctx.images)
    images = ctx.images[:3]
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("value_and_grad(ClassScore, layer=...)", lambda: ctx.backend.value_and_grad(
            native, images, ClassScore((0, 1, 2)), layer="block2_conv1")),
        ("value_and_grad(ChannelMean, wrt_input=False)", lambda: ctx.backend.value_and_grad(
            native, images, ChannelMean("block1_relu1", 0), layer="block1_relu1", wrt_input=False)),
        ("value_and_grad of an unknown layer (fails)", lambda: _expect_error(lambda: ctx.backend.value_and_grad(
            native, images, ChannelMean("no_such_layer", 0)), LayerNotFoundError,
            "value_and_grad of an unknown objective layer")),
        ("value_and_grad with an unknown gradient layer (fails)", lambda: _expect_error(
            lambda: ctx.backend.value_and_grad(native, images, ClassScore((0, 1, 2)), layer="nope"),
            LayerNotFoundError, "value_and_grad with an unknown layer")),
        ("value_and_grad with targets of the wrong length (fails)", lambda: _expect_error(
            lambda: ctx.backend.value_and_grad(native, images, ClassScore((0, 1))), InputError,
            "value_and_grad with 2 targets for 3 images")),
    ]
    _expect_nothing_left(ctx, native, steps, before, "value_and_grad changed what the model predicts (a mode, a "
                         "hook or weights left changed?)")
    weights = ctx.backend.get_weights(native)
    changed = [k for k, v in ctx.weights.items() if not np.array_equal(np.asarray(weights[k]), v)]
    expect(not changed, f"value_and_grad changed the weights {changed[:3]}")
    return f"nothing attached after {len(steps)} value_and_grad calls (3 failing); predictions and weights unchanged"


#: Every check of the kit, in the order ``featurelens check-backend`` runs them.
CHECKS: tuple[Check, ...] = (
    Check("registration", "the backend loads under its entry's name with valid capabilities and versions",
          None, check_registration),
    Check("weight_names", "get_weights gives exactly the canonical names, shapes and float32", None,
          check_weight_names),
    Check("weights_roundtrip", "set_weights then get_weights returns the same values bit for bit", None,
          check_weights_roundtrip),
    Check("build_seeded", "build(spec, seed) is reproducible and depends on the seed", None, check_build_seeded),
    Check("predict_probabilities", "predict gives float32 probability rows equal to a reference forward pass",
          None, check_predict_probabilities),
    Check("spec_options", "specs with GELU, global max/average pooling and a logit scale predict (and give "
          "feature maps) equal to a reference forward pass", None, check_spec_options),
    Check("folder_roundtrip", "a model folder saved and loaded by the backend predicts identically", None,
          check_folder_roundtrip),
    Check("cross_backend", "folders move to and from every other installed backend with the same predictions",
          None, check_cross_backend),
    Check("layer_names", "layers() has the spec's names, kinds, output shapes and parameter counts",
          Capability.INTROSPECT, check_layer_names),
    Check("filters_layout", "filters() are the kernels as (C_out, kh, kw, C_in) float32, with clear errors",
          Capability.INTROSPECT, check_filters_layout),
    Check("feature_maps_layout", "feature_maps() gives (N, H, W, C) float32 per layer, equal to a reference",
          Capability.INTROSPECT, check_feature_maps_layout),
    Check("channel_summaries", "channel_summaries() gives each image's maximum, its first position and the mean "
          "per channel, equal to those of feature_maps()", Capability.INTROSPECT, check_channel_summaries),
    Check("introspection_cleanup", "no hook or helper left attached after introspection, even when it fails",
          Capability.INTROSPECT, check_introspection_cleanup),
    Check("gradients_finite_difference", "value_and_grad values equal predict/feature_maps, input gradients equal "
          "central finite differences, layer activations and gradients as expected", Capability.GRADIENTS,
          check_gradients_finite_difference),
    Check("gradients_agree_across_backends", "every other backend declaring gradients gives the same values and "
          "gradients for the same weights", Capability.GRADIENTS, check_gradients_agree_across_backends),
    Check("gradients_per_image_channels", "a ChannelMean with one channel per image gives each image the values "
          "and gradients of its own channel, in any batching", Capability.GRADIENTS,
          check_gradients_per_image_channels),
    Check("gradients_cleanup", "nothing left attached and predictions unchanged after value_and_grad, even when it "
          "fails", Capability.GRADIENTS, check_gradients_cleanup),
    Check("native_weights", "users' models save and load through native_weights, with a JSON architecture record",
          Capability.WRAP, check_native_weights),
    Check("training_history", "a short fit returns a complete History", Capability.TRAIN, check_training_history),
    Check("early_stopping", "early stopping stops exactly where Keras's EarlyStopping does", Capability.TRAIN,
          check_early_stopping),
    Check("lr_reduction", "the learning rate drops exactly where Keras's ReduceLROnPlateau drops it",
          Capability.TRAIN, check_lr_reduction),
    Check("cpu_determinism", "two CPU trainings with one seed end bit-identical", Capability.TRAIN,
          check_cpu_determinism),
)
