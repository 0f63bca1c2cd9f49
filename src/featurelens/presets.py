"""Named model specs: the built-in ``seed`` and ``tiny`` plus any a plugin registers."""

from __future__ import annotations

from collections.abc import Callable

from featurelens.backends.registry import registry
from featurelens.errors import SpecError
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


BUILTIN_PRESETS: dict[str, Callable[[], ModelSpec]] = {"seed": seed, "tiny": tiny}


def available_presets() -> dict[str, Callable[[], ModelSpec]]:
    """Built-in presets and those registered by plugins, by name."""
    return {**BUILTIN_PRESETS, **registry.presets}


def get_preset(name: str) -> ModelSpec:
    presets = available_presets()
    if name not in presets:
        raise SpecError(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(presets))} "
            "or write your own ModelSpec (a JSON file with --spec on the command line)"
        )
    return presets[name]()
