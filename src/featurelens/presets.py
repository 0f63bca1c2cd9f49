"""Named model specs: the built-in ``seed`` and ``tiny`` plus any a plugin registers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

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
