"""Keras models of every common shape, inspected through featurelens.wrap.

Sequential models (with an Input, built, called, or never built), Functional models with branches,
shared layers and nested models, subclassed models, depthwise/separable/grouped/transposed/1x1
convolutions, channels_first layers, and four real architectures from keras.applications with
random weights. For each: ``layers()``, ``filters()`` on every conv layer, ``feature_maps()`` on
every layer and ``predict()`` work and agree on layouts, and feature maps equal a reference that
Keras computes itself (a ``keras.Model(inputs, outputs)`` sub-model, or the layers called by hand).

Keras picks its backend once per process: run this file once with KERAS_BACKEND=jax and once
with KERAS_BACKEND=torch.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import featurelens as fl

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras", reason="Keras 3 is missing (pip install 'featurelens[keras]')")
L = keras.layers

TOLERANCE = 1e-5  # feature maps against Keras's own forward pass: max |difference| / max |reference|


def images(n: int = 2, size: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype(np.float32)


def assert_close(got: np.ndarray, want, what: str = "") -> None:
    want = np.asarray(keras.ops.convert_to_numpy(want), np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, Keras gives {want.shape}"
    scale = max(float(np.abs(want).max()), 1e-6)
    worst = float(np.abs(got - want).max()) / scale
    assert worst <= TOLERANCE, f"{what}: differs from Keras's forward pass by {worst:.3g} (relative)"


def reference(inputs, outputs, x: np.ndarray) -> list[np.ndarray]:
    """Keras's own answer: a sub-model from the model's inputs to the tensors wanted."""
    result = keras.Model(inputs, outputs).predict(x, verbose=0)
    return result if isinstance(result, list) else [result]


def check_consistent(model: fl.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """layers(), filters() of every conv, feature_maps() of every layer and predict() agree."""
    infos = model.layers()
    assert infos and len({i.name for i in infos}) == len(infos)
    maps = model.feature_maps(x)
    ran = [i for i in infos if i.output_shape != ()]
    assert list(maps) == [i.name for i in ran]  # every layer that ran, in execution order
    for info in ran:
        array = maps[info.name]
        assert array.dtype == np.float32 and array.shape == (len(x), *info.output_shape), info
        assert np.isfinite(array).all(), info.name
    convs = model.conv_layers()
    assert convs == [i.name for i in infos if i.kind == "conv2d"]
    for name in convs:
        kernels = model.filters(name)
        assert kernels.dtype == np.float32 and kernels.ndim == 4, name
        if name in maps and kernels.shape[0] != maps[name].shape[-1]:  # a separable conv: depthwise, then 1x1
            assert kernels.shape[3] == 1, name
            kernels = model.filters(f"{name}/pointwise")
        assert name not in maps or kernels.shape[0] == maps[name].shape[-1], name  # C_out: the map's channels
    probabilities = model.predict(x)
    assert probabilities.shape[0] == len(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert model.backend.attachments(model.native) == []
    return maps


def node_counts(model) -> dict[str, int]:
    return {layer.name: len(layer._inbound_nodes) for layer in model._flatten_layers(include_self=False)}


def no_wrappers_left(model) -> bool:
    return all("call" not in layer.__dict__ for layer in model._flatten_layers(include_self=True))


# -- Sequential --------------------------------------------------------------------------------------


def seq_layers():
    return [L.Conv2D(4, 3, name="c1"), L.BatchNormalization(name="bn"), L.ReLU(name="r1"),
            L.MaxPooling2D(name="pool"), L.Conv2D(6, 1, name="c2"), L.GlobalAveragePooling2D(name="gap"),
            L.Dense(10, name="logits")]


def sequential(how: str):
    x = images(1)
    if how == "input":
        return keras.Sequential([keras.Input((32, 32, 3)), *seq_layers()])
    model = keras.Sequential(seq_layers())
    if how == "build":
        model.build((None, 32, 32, 3))
    elif how == "called":
        model(x)
    return model


@pytest.mark.parametrize("how", ["input", "build", "called", "unbuilt"])
def test_sequential_models_built_or_not(how):
    native = sequential(how)
    x = images()
    model = fl.wrap(native)
    assert [i.name for i in model.layers()] == ["c1", "bn", "r1", "pool", "c2", "gap", "logits"]
    assert [i.output_shape for i in model.layers()] == [(30, 30, 4), (30, 30, 4), (30, 30, 4), (15, 15, 4),
                                                         (15, 15, 6), (6,), (10,)]
    assert model.conv_layers() == ["c1", "c2"]
    assert model.filters("c1").shape == (4, 3, 3, 3) and model.filters("c2").shape == (6, 1, 1, 4)
    maps = check_consistent(model, x)
    h = keras.ops.convert_to_tensor(x)  # Keras's own answer: the layers called one after another
    for layer in native.layers:
        h = layer(h, training=False)
        assert_close(maps[layer.name], h, layer.name)
    np.testing.assert_allclose(model.predict(x), keras.ops.convert_to_numpy(keras.ops.softmax(h)), atol=1e-5)


def test_an_unbuilt_sequential_is_run_without_building_it_or_changing_its_weights():
    conv = L.Conv2D(4, 3, name="c1")
    conv.build((None, 32, 32, 3))  # weights the user already has
    kernel = keras.ops.convert_to_numpy(conv.kernel).copy()
    native = keras.Sequential([conv, L.ReLU(name="r1"), L.Conv2D(2, 3, name="c2"), L.Flatten(name="flat"),
                               L.Dense(10, name="logits")])
    model = fl.wrap(native)
    with pytest.raises(fl.InputError, match="'c2' has no weights yet: the model was never built or called"):
        model.filters("c2")
    assert [i.output_shape for i in model.layers()] == [(30, 30, 4), (30, 30, 4), (28, 28, 2), (1568,), (10,)]
    assert model.filters("c2").shape == (2, 3, 3, 4)  # its first run created c2's weights
    model.feature_maps(images(), ["c1", "logits"])
    assert not native.built and len(native.layers) == 5  # featurelens added no Input to the model
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.kernel), kernel)
    np.testing.assert_array_equal(model.filters("c1"), kernel.transpose(3, 0, 1, 2))
    assert model.predict(images()).shape == (2, 10)  # Keras builds it on its first predict
    assert model.backend.attachments(native) == []


# -- Functional: branches, shared layers, nested models --------------------------------------------------


def test_branches_and_a_shared_layer_called_twice():
    inputs = keras.Input((32, 32, 3))
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    a = shared(inputs)
    b = shared(L.ReLU(name="relu")(a))  # the same layer (same weights) applied again
    merged = L.Add(name="add")([a, b])
    side = L.Conv2D(2, 1, name="side")(inputs)
    cat = L.Concatenate(name="cat")([merged, side])
    outputs = L.Dense(10, activation="softmax", name="out")(L.GlobalAveragePooling2D(name="gap")(cat))
    native = keras.Model(inputs, outputs)
    before = node_counts(native)
    model = fl.wrap(native)
    infos = {i.name: i for i in model.layers()}
    assert set(infos) == {"shared", "relu", "shared#2", "add", "side", "cat", "gap", "out"}
    names = [i.name for i in model.layers()]
    assert names.index("shared") < names.index("relu") < names.index("shared#2") < names.index("add")
    assert infos["shared"].params == 84 and infos["shared#2"].params == 0  # weights counted once
    assert sum(i.params for i in infos.values()) == native.count_params()
    assert sorted(model.conv_layers()) == ["shared", "shared#2", "side"]
    np.testing.assert_array_equal(model.filters("shared#2"), model.filters("shared"))
    x = images()
    maps = check_consistent(model, x)
    for name, want in zip(["shared", "shared#2", "add", "side", "cat"],
                          reference(inputs, [a, b, merged, side, cat], x)):
        assert_close(maps[name], want, name)
    assert not np.allclose(maps["shared"], maps["shared#2"])  # each call's own output
    with pytest.raises(fl.InputError, match=r"shared#3 \(that layer ran 2 time"):
        model.feature_maps(x, ["shared#3"])
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'nope'.*shared#2"):
        model.feature_maps(x, ["nope"])
    assert node_counts(native) == before  # no node added to any layer: no helper model was traced
    assert model.backend.attachments(native) == []


def nested_block(name: str = "block"):
    inner = keras.Input((None, None, 3))
    conv = L.Conv2D(5, 3, padding="same", name="conv1")(inner)
    return keras.Model(inner, L.Conv2D(3, 1, name="conv2")(L.ReLU(name="relu")(conv)), name=name)


def test_nested_models_are_opened_with_paths():
    block = nested_block()
    stack = keras.Sequential([L.Conv2D(4, 3, padding="same", name="c"), L.ReLU(name="r")], name="stack")
    inputs = keras.Input((32, 32, 3))
    h1 = block(inputs)
    between = L.BatchNormalization(name="bn")(h1)
    h2 = block(between)  # the nested model applied twice
    h3 = stack(h2)
    outputs = L.Dense(10, name="out")(L.Flatten(name="flat")(L.MaxPooling2D(8, name="pool")(h3)))
    native = keras.Model(inputs, outputs)
    before = node_counts(native)
    model = fl.wrap(native)
    names = [i.name for i in model.layers()]
    assert names == ["block/conv1", "block/relu", "block/conv2", "bn", "block#2/conv1", "block#2/relu",
                     "block#2/conv2", "stack/c", "stack/r", "pool", "flat", "out"]
    assert model.conv_layers() == ["block/conv1", "block/conv2", "block#2/conv1", "block#2/conv2", "stack/c"]
    assert sum(i.params for i in model.layers()) == native.count_params()
    kernel = keras.ops.convert_to_numpy(block.get_layer("conv1").kernel)
    np.testing.assert_array_equal(model.filters("block/conv1"), kernel.transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(model.filters("block#2/conv1"), model.filters("block/conv1"))
    x = images()
    maps = check_consistent(model, x)
    # Keras's reference: the inner model's own sub-model applied to what reached the block
    inner = keras.Model(block.inputs, [block.get_layer(n).output for n in ("conv1", "relu", "conv2")])
    for prefix, reached in (("block", x), ("block#2", reference(inputs, between, x)[0])):
        for name, want in zip(("conv1", "relu", "conv2"), inner.predict(reached, verbose=0)):
            assert_close(maps[f"{prefix}/{name}"], want, f"{prefix}/{name}")
    stack_ref = keras.Model(stack.inputs, stack.get_layer("c").output).predict(reference(inputs, h2, x)[0], verbose=0)
    assert_close(maps["stack/c"], stack_ref, "stack/c")
    # the nested model's own output, by its name (not in the default list)
    outputs_of = model.feature_maps(x, ["block", "block#2", "stack"])
    for name, want in zip(["block", "block#2", "stack"], reference(inputs, [h1, h2, h3], x)):
        assert_close(outputs_of[name], want, name)
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'block/nope'"):
        model.filters("block/nope")
    assert node_counts(native) == before
    assert model.backend.attachments(native) == []


def test_a_functional_model_nested_in_a_sequential():
    native = keras.Sequential([keras.Input((32, 32, 3)), nested_block("features"), L.GlobalAveragePooling2D(name="gap"),
                               L.Dense(10, name="logits")])
    model = fl.wrap(native)
    assert [i.name for i in model.layers()] == ["features/conv1", "features/relu", "features/conv2", "gap", "logits"]
    maps = check_consistent(model, images())
    features = native.get_layer("features")
    want = keras.Model(features.inputs, features.get_layer("relu").output).predict(images(), verbose=0)
    assert_close(maps["features/relu"], want, "features/relu")


# -- subclassed models ---------------------------------------------------------------------------------


class Residual(L.Layer):
    """A user's layer made of layers."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.conv_a = L.Conv2D(filters, 3, padding="same", name="conv_a")
        self.conv_b = L.Conv2D(filters, 3, padding="same", name="conv_b")

    def call(self, x):
        return x + self.conv_b(keras.ops.relu(self.conv_a(x)))


class Net(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.stem = L.Conv2D(8, 3, padding="same", name="stem")
        self.res = Residual(8, name="res")
        self.mix = L.Conv2D(8, 1, name="mix")
        self.pool = L.GlobalAveragePooling2D(name="gap")
        self.head = L.Dense(10, name="head")
        self.spare = L.Dense(10, name="spare")  # defined, never called

    def call(self, x, training=False):
        x = self.res(self.stem(x))
        x = self.mix(self.mix(x))  # one layer called twice
        return self.head(self.pool(x))


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called on layer 'net':UserWarning")  # Keras's, on any first call
def test_subclassed_models_through_their_sublayers_calls():
    native = Net()
    model = fl.wrap(native)
    infos = model.layers()  # the first call builds it, as any first call would
    assert [(i.name, i.output_shape) for i in infos] == [
        ("stem", (32, 32, 8)), ("res/conv_a", (32, 32, 8)), ("res/conv_b", (32, 32, 8)), ("mix", (32, 32, 8)),
        ("mix#2", (32, 32, 8)), ("gap", (8,)), ("head", (10,)), ("spare", ())]  # spare never ran
    assert model.conv_layers() == ["stem", "res/conv_a", "res/conv_b", "mix", "mix#2"]
    np.testing.assert_array_equal(model.filters("res/conv_b"),
                                  keras.ops.convert_to_numpy(native.res.conv_b.kernel).transpose(3, 0, 1, 2))
    x = images()
    maps = check_consistent(model, x)
    # Keras's reference: the same layers called by hand, as call() does
    stem = native.stem(x)
    a = native.res.conv_a(stem)
    b = native.res.conv_b(keras.ops.relu(a))
    mix = native.mix(stem + b)
    for name, want in (("stem", stem), ("res/conv_a", a), ("res/conv_b", b), ("mix", mix), ("mix#2", native.mix(mix))):
        assert_close(maps[name], want, name)
    assert_close(model.feature_maps(x, ["res"])["res"], stem + b, "res")  # the custom layer's own output
    np.testing.assert_allclose(model.predict(x), keras.ops.convert_to_numpy(keras.ops.softmax(native(x))), atol=1e-5)
    with pytest.raises(fl.InputError, match="spare did not run in the forward pass"):
        model.feature_maps(x, ["spare"])
    with pytest.raises(fl.InputError, match=r"mix#3 \(that layer ran 2 time"):
        model.feature_maps(x, ["stem", "mix#3"])
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'res/conv_c'"):
        model.feature_maps(x, ["res/conv_c"])
    assert no_wrappers_left(native) and model.backend.attachments(native) == []


def test_a_users_composite_layer_and_bare_operations_in_a_functional_model():
    inputs = keras.Input((16, 16, 3))
    stem = L.Conv2D(4, 3, padding="same", name="stem")(inputs)
    res = Residual(4, name="res")(stem)  # opened like a nested model: res/conv_a, res/conv_b
    magnitude = keras.ops.abs(res)  # an operation that is not a layer: a layer under Keras's name for it
    native = keras.Model(inputs, L.Dense(2, name="out")(L.GlobalAveragePooling2D(name="gap")(magnitude)))
    model = fl.wrap(native, input_shape=(16, 16, 3))
    infos = model.layers()
    op_name = next(i.name for i in infos if i.kind == "absolute")
    assert [i.name for i in infos] == ["stem", "res/conv_a", "res/conv_b", op_name, "gap", "out"]
    assert model.conv_layers() == ["stem", "res/conv_a", "res/conv_b"]
    x = images(2, 16)
    maps = check_consistent(model, x)
    layer = native.get_layer("res")
    a = layer.conv_a(reference(inputs, stem, x)[0])
    assert_close(maps["res/conv_a"], a, "res/conv_a")
    assert_close(maps["res/conv_b"], layer.conv_b(keras.ops.relu(a)), "res/conv_b")
    for name, want in zip(["res", op_name], reference(inputs, [res, magnitude], x)):
        assert_close(model.feature_maps(x, [name])[name], want, name)
    assert no_wrappers_left(native) and model.backend.attachments(native) == []


def test_a_failing_subclassed_call_leaves_no_wrapper_behind():
    class Broken(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3, name="conv")

        def call(self, x):
            y = self.conv(x)
            if y.shape[-1] == 4:
                raise RuntimeError("this model fails on purpose")
            return y

    native = Broken()
    with pytest.raises(RuntimeError, match="on purpose"):
        fl.wrap(native).feature_maps(images(), ["conv"])
    assert no_wrappers_left(native) and fl.get_backend("keras").attachments(native) == []


def test_a_layer_branching_on_values_still_works():
    """On JAX the pass is compiled; a layer that needs concrete values makes it run eagerly instead."""

    class ByValue(L.Layer):
        def call(self, x):
            return x * 2.0 if float(keras.ops.convert_to_numpy(keras.ops.max(x))) > 0 else x

        def compute_output_shape(self, shape):
            return shape

    inputs = keras.Input((32, 32, 3))
    conv = L.Conv2D(4, 3, name="conv")(inputs)
    doubled = ByValue(name="by_value")(conv)
    native = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten(name="flat")(doubled)))
    model = fl.wrap(native)
    maps = model.feature_maps(images(), ["conv", "by_value"])
    np.testing.assert_allclose(maps["by_value"], 2 * maps["conv"], rtol=1e-6)
    assert [i.name for i in model.layers()] == ["conv", "by_value", "flat", "out"]


# -- convolutions of every kind ----------------------------------------------------------------------


def grouped_conv(x: np.ndarray, kernels: np.ndarray, groups: int) -> np.ndarray:
    """A 'valid', stride-1 convolution with canonical (C_out, kh, kw, C_in // groups) filters, as torch does."""
    c_out, kh, kw, c_in_group = kernels.shape
    n, h, w, _ = x.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, c_out), np.float64)
    for o in range(c_out):
        g = o // (c_out // groups)
        part = x[..., g * c_in_group:(g + 1) * c_in_group].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                out[..., o] += part[:, i:i + h - kh + 1, j:j + w - kw + 1, :] @ kernels[o, i, j].astype(np.float64)
    return out


def test_depthwise_separable_grouped_transposed_and_1x1_convolutions():
    inputs = keras.Input((12, 12, 4))
    dw = L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")(inputs)
    sep = L.SeparableConv2D(6, 3, depth_multiplier=2, use_bias=False, name="sep")(inputs)
    grp = L.Conv2D(6, 3, groups=2, use_bias=False, name="grp")(inputs)
    one = L.Conv2D(5, 1, use_bias=False, name="one")(inputs)
    tr = L.Conv2DTranspose(5, 3, strides=2, name="tr")(inputs)
    pooled = [L.GlobalAveragePooling2D(name=f"gap_{t.name}")(t) for t in (dw, sep, grp, one, tr)]
    native = keras.Model(inputs, L.Dense(3, name="out")(L.Concatenate(name="cat")(pooled)))
    model = fl.wrap(native, input_shape=(12, 12, 4))
    kinds = {i.name: i.kind for i in model.layers()}
    assert {kinds[n] for n in ("dw", "sep", "grp", "one", "tr")} == {"conv2d"}
    assert set(model.conv_layers()) == {"dw", "sep", "grp", "one", "tr"}
    shapes = {n: model.filters(n).shape for n in ("dw", "sep", "sep/pointwise", "grp", "one", "tr")}
    assert shapes == {"dw": (8, 3, 3, 1), "sep": (8, 3, 3, 1), "sep/pointwise": (6, 1, 1, 8), "grp": (6, 3, 3, 2),
                      "one": (5, 1, 1, 4), "tr": (5, 3, 3, 4)}
    x = images(2, 12, 4)
    maps = check_consistent(model, x)
    for name, want in zip(["dw", "sep", "grp", "one", "tr"], reference(inputs, [dw, sep, grp, one, tr], x)):
        assert_close(maps[name], want, name)
    # the canonical filters mean what torch's mean: a grouped convolution gives Keras's outputs
    assert_close(grouped_conv(x, model.filters("dw"), groups=4).astype(np.float32), maps["dw"], "dw as grouped")
    assert_close(grouped_conv(x, model.filters("grp"), groups=2).astype(np.float32), maps["grp"], "grp as grouped")
    assert_close(grouped_conv(x, model.filters("one"), groups=1).astype(np.float32), maps["one"], "one as a conv")
    depthwise = grouped_conv(x, model.filters("sep"), groups=4)
    pointwise = grouped_conv(depthwise, model.filters("sep/pointwise"), groups=1)
    assert_close(pointwise.astype(np.float32), maps["sep"], "sep as depthwise then pointwise")
    # a transposed conv: one input pixel of channel c paints filters[:, :, :, c] into the output, unflipped
    layer = native.get_layer("tr")
    kernels = model.filters("tr")
    for c in range(4):
        pixel = np.zeros((1, 1, 1, 4), np.float32)
        pixel[..., c] = 1
        painted = keras.ops.convert_to_numpy(layer(pixel)) - keras.ops.convert_to_numpy(layer.bias)
        np.testing.assert_allclose(painted[0], kernels[..., c].transpose(1, 2, 0), atol=1e-6)
    with pytest.raises(fl.InputError, match="only separable convolutions have a pointwise kernel"):
        model.filters("dw/pointwise")
    with pytest.raises(fl.InputError, match="'cat' is a Concatenate, not a convolution; the conv layers are: "):
        model.filters("cat")


def test_channels_first_layers_give_channels_last_maps():
    inputs = keras.Input((16, 16, 3))
    to_cf = L.Permute((3, 1, 2), name="to_channels_first")(inputs)
    conv = L.Conv2D(5, 3, data_format="channels_first", name="conv")(to_cf)
    bn = L.BatchNormalization(axis=1, name="bn")(conv)
    relu = L.ReLU(name="relu")(bn)
    pool = L.MaxPooling2D(2, data_format="channels_first", name="pool")(relu)
    gap = L.GlobalAveragePooling2D(data_format="channels_first", name="gap")(pool)
    native = keras.Model(inputs, L.Dense(3, name="out")(gap))
    model = fl.wrap(native, input_shape=(16, 16, 3))
    shapes = {i.name: i.output_shape for i in model.layers()}
    assert [shapes[n] for n in ("conv", "bn", "relu", "pool", "gap")] == [(14, 14, 5)] * 3 + [(7, 7, 5), (5,)]
    assert model.filters("conv").shape == (5, 3, 3, 3)
    x = images(2, 16)
    maps = check_consistent(model, x)
    for name, want in zip(["conv", "bn", "relu", "pool"], reference(inputs, [conv, bn, relu, pool], x)):
        assert_close(maps[name], want.transpose(0, 2, 3, 1), name)


def test_introspection_keeps_nothing_of_the_model_alive():
    """Compiled passes are cached per model (on JAX) but only weakly: they go with the model."""
    inputs = keras.Input((16, 16, 3))
    native = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten(name="flat")(L.Conv2D(2, 3, name="conv")(inputs))))
    alive = weakref.ref(native)
    model = fl.wrap(native, input_shape=(16, 16, 3))
    first = model.feature_maps(images(2, 16))
    again = model.feature_maps(images(2, 16))  # the cached pass (on JAX), same answer
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    model.layers()
    del model, native
    gc.collect()
    assert alive() is None


# -- clear errors ------------------------------------------------------------------------------------------


def test_models_featurelens_cannot_feed_say_why():
    inputs = keras.Input((16, 16, 3))
    native = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten(name="flat")(L.Conv2D(2, 3, name="conv")(inputs))))
    with pytest.raises(fl.InputError, match=r"takes inputs of shape \(16, 16, 3\).*input_shape=\(16, 16, 3\)"):
        fl.wrap(native).layers()  # wrap's default input_shape is (32, 32, 3)
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], L.Add(name="add")([a, b]))
    with pytest.raises(fl.InputError, match="takes 2 inputs"):
        fl.wrap(two, input_shape=(8, 8, 3)).layers()


# -- real architectures nobody here wrote --------------------------------------------------------------------


class _NumpyInitializer(keras.initializers.Initializer):
    """Random weights drawn with numpy: Keras's initializers compile one XLA program per weight shape on
    JAX (about 0.15 s each, 15-40 s per application on a 2-core CPU), numpy takes milliseconds."""

    def __init__(self, original, rng):
        self.original, self.rng = original, rng

    def __call__(self, shape, dtype=None):
        if isinstance(self.original, (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)):
            return self.original(shape, dtype=dtype)
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        values = self.rng.normal(0.0, np.sqrt(1.0 / max(fan_in, 1)), shape).astype(np.float32)
        return keras.ops.convert_to_tensor(values, dtype=dtype)


def application(name: str, size: int = 64):
    """keras.applications.<name> with random weights (weights=None: nothing is downloaded)."""
    rng = np.random.default_rng(0)
    with keras.StatelessScope(initialize_variables=False):  # create the variables, initialize them below
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    for variable in model.variables:
        if getattr(variable, "_initializer", None) is not None:
            variable._initializer = _NumpyInitializer(variable._initializer, rng)
    with keras.StatelessScope():  # leaving it initializes the deferred variables
        pass
    return model


@pytest.mark.parametrize("name, conv_name", [
    ("ResNet50", "conv2_block1_1_conv"), ("MobileNetV2", "expanded_conv_depthwise"),
    ("DenseNet121", "conv3_block2_1_conv"), ("EfficientNetB0", "block2a_dwconv")])
def test_keras_applications(name, conv_name):
    native = application(name)
    model = fl.wrap(native, input_shape=(64, 64, 3))
    infos = model.layers()
    assert [i.name for i in infos] == [layer.name for layer in native.layers[1:]]  # Keras's names, top-level
    assert sum(i.params for i in infos) == native.count_params()
    convs = [i.name for i in infos if i.kind == "conv2d"]
    assert conv_name in convs
    x = images(2, 64)
    maps = model.feature_maps(x)
    assert list(maps) == [i.name for i in infos]
    for info in infos:
        assert maps[info.name].shape == (2, *info.output_shape), info
    for conv in convs:
        kernels = model.filters(conv)
        assert kernels.dtype == np.float32 and kernels.shape[0] == maps[conv].shape[-1], conv
    assert model.predict(x).shape == (2, 10)
    sample = [infos[i].name for i in np.linspace(0, len(infos) - 1, 8).astype(int)] + [conv_name]
    for layer, want in zip(sample, reference(native.inputs, [native.get_layer(n).output for n in sample], x)):
        assert_close(maps[layer], want, layer)
    assert model.backend.attachments(native) == []
