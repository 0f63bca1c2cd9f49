"""What the kit feeds a backend: a small spec that catches layout mix-ups, weights, data, configs."""

from __future__ import annotations

import numpy as np

from featurelens.config import EarlyStopping, ReduceLROnPlateau, TrainConfig
from featurelens.spec import ConvBlock, DenseBlock, ModelSpec
from featurelens.weights import canonical_shapes


def kit_spec() -> ModelSpec:
    """Non-square input, C_in != C_out != kernel size, two kernel sizes, a block without batch
    norm, 3 classes: a transposed axis anywhere shows up as a wrong shape or a wrong value."""
    return ModelSpec(
        name="conformance",
        blocks=(ConvBlock(4, convs=2, kernel_size=3, dropout=0.1),
                ConvBlock(6, convs=1, kernel_size=5, batch_norm=False)),
        dense=(DenseBlock(8, dropout=0.2),),
        num_classes=3,
        input_shape=(12, 10, 3),
    )


def option_specs() -> tuple[ModelSpec, ...]:
    """The kit spec's shape with every other option of the spec language: GELU activations, global
    max and average pooling, and a logit scale."""
    blocks = (ConvBlock(4, convs=2, kernel_size=3, activation="gelu"),
              ConvBlock(6, convs=1, kernel_size=5, batch_norm=False))
    return (ModelSpec(name="options-max", blocks=blocks, dense=(DenseBlock(8, activation="gelu"),), num_classes=3,
                      input_shape=(12, 10, 3), pooling="global_max", logit_scale=0.25),
            ModelSpec(name="options-avg", blocks=blocks, num_classes=3, input_shape=(12, 10, 3),
                      pooling="global_avg", logit_scale=3.0))


def random_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Canonical weights with non-trivial batch-norm statistics, scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in canonical_shapes(spec).items():
        param = name.rsplit(".", 1)[1]
        if param == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0, 1.5 / np.sqrt(fan_in), shape)
        elif param in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, beta, moving_mean
            value = rng.normal(0, 0.2, shape)
        weights[name] = value.astype(np.float32)
    return weights


def images(spec: ModelSpec, count: int, seed: int) -> np.ndarray:
    """Normalized-looking images (N, H, W, C) float32."""
    return np.random.default_rng(seed).normal(0, 1, (count, *spec.input_shape)).astype(np.float32)


def learnable_data(spec: ModelSpec, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class shifts one channel's mean, so a few epochs learn something."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % spec.num_classes
    rng.shuffle(labels)
    x = rng.normal(0, 1, (count, *spec.input_shape)).astype(np.float32)
    x[np.arange(count), :, :, labels % spec.input_shape[2]] += 1.5
    return x, labels.astype(np.int64)


def train_config(**changes: object) -> TrainConfig:
    """A short CPU run without callbacks unless ``changes`` add them."""
    base = TrainConfig(epochs=2, batch_size=16, learning_rate=1e-3, validation_split=0.0,
                       early_stopping=None, reduce_lr=None, seed=7, device="cpu")
    return base.replace(**changes)


def early_stopping_config() -> TrainConfig:
    """Nothing after the first epoch can improve by 1e9: Keras stops after epoch 2, best epoch 1."""
    return train_config(epochs=6, early_stopping=EarlyStopping(monitor="loss", patience=1, min_delta=1e9,
                                                               restore_best_weights=False))


def lr_reduction_config() -> TrainConfig:
    """Never an improvement after epoch 1, patience 1: the LR halves after epochs 2 and 3."""
    return train_config(epochs=4, reduce_lr=ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                                              min_delta=1e9, min_lr=0.0, cooldown=0))


def resume_config() -> TrainConfig:
    """Three epochs with every piece of training state in play: augmentation, dropout (in the spec),
    early stopping keeping the best weights, an LR reduction after epoch 2, a warm-up schedule and
    weight averaging."""
    return train_config(epochs=3, augment=True, weight_averaging=0.9, lr_schedule="warmup_linear", warmup_epochs=1,
                        validation_split=0.2,
                        early_stopping=EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
                        reduce_lr=ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e9,
                                                    min_lr=0.0, cooldown=0))
