"""Turn a ModelSpec's layer list into a Keras functional model whose layer names are the spec's."""

from __future__ import annotations

import keras
from keras import layers

from featurelens.backends import LayerSpec, ModelSpec, SpecError

CHANNELS_LAST = "channels_last"  # explicit, whatever keras.config.image_data_format() says


def _layer(spec: LayerSpec) -> keras.layers.Layer:
    o, name = spec.options, spec.name
    if spec.kind == "conv2d":
        return layers.Conv2D(o["filters"], o["kernel_size"], padding="same", data_format=CHANNELS_LAST, name=name)
    if spec.kind == "batch_norm":
        return layers.BatchNormalization(axis=-1, epsilon=o["epsilon"], momentum=o["momentum"], name=name)
    if spec.kind == "relu":
        return layers.ReLU(name=name)
    if spec.kind == "gelu":
        # keras.activations.gelu is the exact erf GELU (approximate=False; keras.ops.gelu's default
        # is the tanh approximation): torch's nn.GELU(). By name, so the model's config stays plain.
        return layers.Activation("gelu", name=name)
    if spec.kind == "max_pool":
        return layers.MaxPooling2D(o["pool_size"], data_format=CHANNELS_LAST, name=name)
    if spec.kind == "dropout":
        return layers.Dropout(o["rate"], name=name)
    if spec.kind == "flatten":
        return layers.Flatten(data_format=CHANNELS_LAST, name=name)
    if spec.kind == "global_max_pool":
        return layers.GlobalMaxPooling2D(data_format=CHANNELS_LAST, name=name)
    if spec.kind == "global_avg_pool":
        return layers.GlobalAveragePooling2D(data_format=CHANNELS_LAST, name=name)
    if spec.kind == "scale":
        return layers.Rescaling(o["scale"], name=name)
    if spec.kind == "dense":
        return layers.Dense(o["units"], name=name)
    if spec.kind == "softmax":
        return layers.Softmax(name=name)
    raise SpecError(f"the keras backend cannot build layer kind {spec.kind!r} ({name})")


def build_model(spec: ModelSpec, seed: int = 0) -> keras.Model:
    """A freshly initialised functional model of ``spec`` (seeded)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=spec.input_shape, name="input")
    x = inputs
    for layer in spec.layers():
        x = _layer(layer)(x)
    return keras.Model(inputs, x, name=spec.name)
