"""Named model specs: the built-in ``seed``, ``tiny`` and ``fast`` plus any a plugin registers.

A preset may carry a training recipe (:func:`preset_recipe`): the TrainConfig it was designed to
be trained with. ``featurelens train --preset NAME`` starts from it; a ``--config`` file's fields
and the command-line flags override it. Presets without one (``seed``, ``tiny``, plugins') train
with the :class:`~featurelens.config.TrainConfig` defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from featurelens.backends.registry import registry
from featurelens.config import TrainConfig
from featurelens.errors import ConfigError, SpecError
from featurelens.spec import ConvBlock, DenseBlock, ModelSpec


def seed() -> ModelSpec:
    """The classic CIFAR-10 learner's CNN.

    Three blocks of two 3x3 convs with 32, 64 and 128 filters, batch norm and ReLU after each
    conv, 2x2 max pooling and dropout 0.2/0.3/0.4, then dense 128 with batch norm, ReLU and
    dropout 0.5, and a 10-way softmax head.
    """
    return ModelSpec(
        name="seed",
        blocks=(ConvBlock(32, dropout=0.2), ConvBlock(64, dropout=0.3), ConvBlock(128, dropout=0.4)),
        dense=(DenseBlock(128, dropout=0.5),),
    )


def tiny() -> ModelSpec:
    """A small CNN (about 35k parameters) shaped like ``seed``, for tests and smoke runs."""
    return ModelSpec(
        name="tiny",
        blocks=(ConvBlock(8, convs=1, dropout=0.1), ConvBlock(16, convs=1, dropout=0.1)),
        dense=(DenseBlock(32, dropout=0.2),),
    )


def fast() -> ModelSpec:
    """A CIFAR-10 speed-run CNN after Jordan (2024), "94% on CIFAR-10 in 3.29 seconds" (airbench).

    Three blocks of two 3x3 convs with 64, 256 and 256 filters, each conv followed by batch norm
    and an exact GELU, 2x2 max pooling after each block, no dropout and no dense layers; then, as in
    airbench, a global max pooling of the 4x4x256 maps into 256 features, the 10-way head, and the
    logits scaled by 1/9 (``logit_scale``), which makes the head learn 81 times slower than the
    rate says. Unlike airbench there is no whitened 2x2 first conv, pooling comes after the block's
    second conv rather than its first, the batch norms keep a learnable scale and every conv has a
    bias. Train it with its recipe, :func:`fast_recipe` (``featurelens train --preset fast`` does).
    """
    return ModelSpec(
        name="fast",
        blocks=tuple(ConvBlock(width, activation="gelu") for width in (64, 256, 256)),
        pooling="global_max",
        logit_scale=1 / 9,
    )


def fast_recipe() -> TrainConfig:
    """The ``fast`` preset's recipe: a short, fixed schedule of Nesterov SGD (after airbench94).

    airbench94 sums the loss over a batch and uses SGD with Nesterov momentum 0.85 at a learning
    rate of 11.5 per 1024 * (1 + 1 / (1 - 0.85)) examples, i.e. 1.46e-3 per example, and a weight
    decay of 0.0153 * batch / 7851 per step. featurelens averages the loss over the batch, so the
    same steps need the rate times the batch size: 1.46e-3 * 512 = 0.75 at batch 512; airbench's
    decay per step, ~1e-3 at batch 512, is the coupled (L2) ``weight_decay`` times that rate:
    1.3e-3. Label smoothing 0.2, flips and 4-pixel shifts, a 2-epoch linear warm-up and a linear
    decay to 0 at the end of epoch 10 (airbench warms up over 23% of its steps), an exponential
    moving average of the weights (0.99 a step: about 100 steps, one epoch at batch 512), and no
    early stopping or plateau reduction: every epoch of the fixed schedule runs. A validation split
    of 0.1 keeps the History's val_ metrics (set it to 0 to train on all 50k). These values are
    derived from airbench's, checked for stable training on the CPU, and not yet timed or tuned on
    a GPU (benchmarks/RESULTS.md says where that stands).
    """
    return TrainConfig(
        epochs=10, batch_size=512, optimizer="sgd", learning_rate=0.75, momentum=0.85, weight_decay=1.3e-3,
        early_stopping=None, reduce_lr=None, augment=True, label_smoothing=0.2,
        lr_schedule="warmup_linear", warmup_epochs=2.0, weight_averaging=0.99,
    )


BUILTIN_PRESETS: dict[str, Callable[[], ModelSpec]] = {"seed": seed, "tiny": tiny, "fast": fast}

#: The training recipes of built-in presets, by preset name (a preset without one: defaults).
BUILTIN_RECIPES: dict[str, Callable[[], TrainConfig]] = {"fast": fast_recipe}


def available_presets() -> dict[str, Callable[[], ModelSpec]]:
    """Built-in presets and those registered by plugins, by name."""
    return {**BUILTIN_PRESETS, **registry.presets}


def adapt_spec(spec: ModelSpec, input_shape: Sequence[int] | None = None, num_classes: int | None = None,
               what: str | None = None) -> ModelSpec:
    """``spec`` for inputs of ``input_shape`` (height, width, channels) and ``num_classes`` classes.

    ``None`` keeps the spec's own value. A SpecError says why when the spec cannot take that input
    (its pooling would shrink a small image to nothing, say); ``what`` names the spec in it.
    """
    changes: dict[str, object] = {}
    if input_shape is not None:
        changes["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        changes["num_classes"] = num_classes
    if all(getattr(spec, k) == v for k, v in changes.items()):
        return spec
    try:
        return replace(spec, **changes)  # type: ignore[arg-type]  # ModelSpec validates every field
    except SpecError as exc:
        shape = "x".join(map(str, input_shape)) if input_shape is not None else None
        target = " and ".join(filter(None, [f"{shape} inputs" if shape else "",
                                            f"{num_classes} classes" if num_classes is not None else ""]))
        raise SpecError(f"{what or f'the spec {spec.name!r}'} cannot take {target}: {exc}") from exc


def get_preset(name: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> ModelSpec:
    """The preset called ``name``, for ``input_shape`` (height, width, channels) and ``num_classes``.

    Without them the preset keeps its own (32x32x3 inputs, 10 classes for the built-ins). A
    SpecError says why when the preset cannot take that input (e.g. its pooling would shrink a
    small image to nothing).
    """
    presets = available_presets()
    if name not in presets:
        raise SpecError(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(presets))} "
            "or write your own ModelSpec (a JSON file with --spec on the command line)"
        )
    return adapt_spec(presets[name](), input_shape, num_classes, what=f"the preset {name!r}")


def preset_recipe(name: str) -> TrainConfig | None:
    """The training recipe the preset ``name`` was designed with, or ``None``: the TrainConfig
    defaults (``seed``, ``tiny`` and plugins' presets)."""
    presets = available_presets()
    if name not in presets:
        get_preset(name)  # the unknown-preset error, with the choices
    factory = BUILTIN_RECIPES.get(name)
    return factory() if factory is not None else None


def recipe_config(preset: str | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig for training ``preset`` (``None``: no preset, the defaults) with the fields
    of ``overrides`` (a ``--config`` file's object, say) replacing the recipe's."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"config: {overrides!r} is invalid: expected a JSON object of TrainConfig fields")
    recipe = preset_recipe(preset) if preset else None
    base = recipe.to_dict() if recipe is not None else {}
    return TrainConfig.from_dict({**base, **(overrides or {})})
