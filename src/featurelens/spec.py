"""Backend-neutral model specs: what to build, validated before anything is built.

A :class:`ModelSpec` describes a CNN as conv blocks followed by dense blocks and a softmax head.
:meth:`ModelSpec.layers` expands it into a flat list of :class:`LayerSpec` with stable names
(``block1_conv1``, ``block1_bn1``, ``block1_relu1``, ``block1_pool``, ``block1_dropout``,
``flatten``, ``dense1``, ..., ``head_dense``, ``head_softmax``). Every backend builds exactly
that list, in that order, with those names, so a name points at the same computation everywhere.

A block's ``activation`` names its activation layers and gives their kind: ``relu`` (the default)
gives ``block1_relu1`` / ``dense1_relu`` of kind ``relu``; ``gelu`` gives ``block1_gelu1`` /
``dense1_gelu`` of kind ``gelu``, the exact (erf) GELU in every backend, never the tanh
approximation, so backends agree to float precision. The names never change for a ReLU spec, and
the JSON of a block with the default activation has no ``activation`` field (old files load as
ReLU). :data:`ACTIVATIONS` lists the kinds; code looking for "the activation after a conv" should
test ``kind in ACTIVATIONS``.

Two spec fields shape the head, both after CIFAR-10 speed-run networks (airbench): ``pooling``
says how the last conv block's maps reach the dense layers, ``flatten`` (the default: a layer
``flatten``) or one value per channel, ``global_max`` / ``global_avg`` (a layer ``global_pool`` of
kind ``global_max_pool`` / ``global_avg_pool``); ``logit_scale`` multiplies the head's logits before
the softmax (a layer ``head_scale`` of kind ``scale``, only when it is not 1), which slows the
head's effective learning rate by its square. Defaults are not written to JSON, so older files and
the names of specs without them are unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, NoReturn

from featurelens.checks import (
    Bool,
    Check,
    Int,
    Number,
    OneOf,
    Text,
    check_dataclass,
    check_fields,
    fail,
    is_number,
    parse_json,
)
from featurelens.errors import SpecError

#: Batch-norm constants shared by every backend (Keras's defaults; torch's momentum is 1 - this).
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

#: The activation layer kinds a block can have (``ConvBlock.activation``, ``DenseBlock.activation``).
ACTIVATIONS = ("relu", "gelu")

#: How the conv blocks' maps reach the dense layers (``ModelSpec.pooling``), and the layer kind of each.
POOLINGS = {"flatten": "flatten", "global_max": "global_max_pool", "global_avg": "global_avg_pool"}

_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"

# Upper bounds, so that a typo (``convs: 9223372036854775808``, ``filters: 40960``) is refused
# before anything is built instead of hanging the machine or exhausting its memory.
MAX_FILTERS = 4096
MAX_CONVS = 16
MAX_KERNEL = 15
MAX_BLOCKS = 32
MAX_DENSE = 32
MAX_UNITS = 65536
MAX_CLASSES = 100_000
MAX_SIDE = 4096
MAX_CHANNELS = 256
#: Parameters of the whole model (about 1 GB of float32 weights).
MAX_PARAMETERS = 250_000_000
#: Values in the layer outputs of one example, summed over the layers (1 GiB of float32).
MAX_ACTIVATIONS = 2**28

_DROPOUT = Number(0, 1, "the fraction of units zeroed while training", high_open=True)
_ACTIVATION = OneOf(ACTIVATIONS, "relu is the default")

#: The checks of :class:`ConvBlock`'s fields (an odd kernel and the pooling are checked besides).
CONV_FIELDS: dict[str, Check] = {
    "filters": Int(1, MAX_FILTERS, "the number of filters"),
    "convs": Int(1, MAX_CONVS, "the convolutions of the block"),
    "kernel_size": Int(1, MAX_KERNEL, "an odd kernel size: 1, 3, 5, ..."),
    "pool_size": Int(1, MAX_SIDE, "the max-pooling window; 1 means no pooling"),
    "dropout": _DROPOUT,
    "batch_norm": Bool(),
    "activation": _ACTIVATION,
}
#: The checks of :class:`DenseBlock`'s fields.
DENSE_FIELDS: dict[str, Check] = {
    "units": Int(1, MAX_UNITS, "the number of units"),
    "dropout": _DROPOUT,
    "batch_norm": Bool(),
    "activation": _ACTIVATION,
}
_SIDE = Int(1, MAX_SIDE, "every dimension must be a positive integer")
#: The checks of :class:`ModelSpec`'s scalar fields (blocks, dense and input_shape are checked besides).
SPEC_FIELDS: dict[str, Check] = {
    "name": Text(64, _NAME_PATTERN, "use letters, digits, '_', '.' or '-', starting with a letter or digit",
                 min_length=1),
    "num_classes": Int(2, MAX_CLASSES, "a classifier needs at least 2 classes"),
    "pooling": OneOf(tuple(POOLINGS), "flatten is the default"),
    "logit_scale": lambda error, path, value: value if is_number(value) and 0 < value <= 1e3 else fail(
        error, path, value, "the factor on the logits must be a number > 0 and <= 1000 (1: none)"),
}


def _fail(path: str, value: Any, why: str) -> NoReturn:
    fail(SpecError, path, value, why)


@dataclass(frozen=True)
class ConvBlock:
    """``convs`` same-padded convolutions (each + optional batch norm + activation), pooling, dropout.

    ``activation`` is ``relu`` or ``gelu`` (exact erf GELU); see the module docstring for names.
    """

    filters: int
    convs: int = 2
    kernel_size: int = 3
    pool_size: int = 2
    dropout: float = 0.0
    batch_norm: bool = True
    activation: str = "relu"

    def __post_init__(self) -> None:
        self._validate("ConvBlock")

    def _validate(self, path: str) -> None:
        check_dataclass(SpecError, path, self, CONV_FIELDS)
        if self.kernel_size % 2 == 0:
            _fail(f"{path}.kernel_size", self.kernel_size,
                  "'same' padding is only symmetric (and identical across backends) for odd kernels;"
                  " use 1, 3, 5, ...")


@dataclass(frozen=True)
class DenseBlock:
    """A fully connected layer (+ optional batch norm) with an activation (``relu``/``gelu``) and dropout."""

    units: int
    dropout: float = 0.0
    batch_norm: bool = True
    activation: str = "relu"

    def __post_init__(self) -> None:
        self._validate("DenseBlock")

    def _validate(self, path: str) -> None:
        check_dataclass(SpecError, path, self, DENSE_FIELDS)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the expanded spec: what every backend builds under ``name``.

    ``kind`` is one of ``conv2d``, ``batch_norm``, ``relu``, ``gelu``, ``max_pool``, ``dropout``,
    ``flatten``, ``global_max_pool``, ``global_avg_pool``, ``dense``, ``scale`` and ``softmax``.
    Shapes are per example, channels last.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A declarative CNN: conv blocks, dense blocks, then a ``num_classes``-way softmax head.

    ``pooling`` (``flatten``, ``global_max``, ``global_avg``) and ``logit_scale``: see the module
    docstring.
    """

    blocks: tuple[ConvBlock, ...]
    dense: tuple[DenseBlock, ...] = ()
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (32, 32, 3)
    name: str = "custom"
    pooling: str = "flatten"
    logit_scale: float = 1.0

    def __post_init__(self) -> None:
        for key, limit in (("blocks", MAX_BLOCKS), ("dense", MAX_DENSE)):
            object.__setattr__(self, key, tuple(_as_list(key, getattr(self, key), limit)))
        if isinstance(self.input_shape, list):
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        self._validate()

    def _validate(self) -> None:
        check_dataclass(SpecError, "", self, SPEC_FIELDS)
        shape = self.input_shape
        if not (isinstance(shape, tuple) and len(shape) == 3):
            _fail("input_shape", shape, "expected (height, width, channels), channels last")
        for axis, value in zip(("height", "width"), shape):
            _SIDE(SpecError, f"input_shape.{axis}", value)
        Int(1, MAX_CHANNELS, "every dimension must be a positive integer")(SpecError, "input_shape.channels", shape[2])
        if not self.blocks:
            _fail("blocks", self.blocks, "a CNN needs at least one ConvBlock")
        for i, block in enumerate(self.blocks):
            if not isinstance(block, ConvBlock):
                _fail(f"blocks[{i}]", block, "expected a ConvBlock")
        for i, dense_block in enumerate(self.dense):
            if not isinstance(dense_block, DenseBlock):
                _fail(f"dense[{i}]", dense_block, "expected a DenseBlock")
        h, w = shape[0], shape[1]
        for i, block in enumerate(self.blocks):
            if h // block.pool_size < 1 or w // block.pool_size < 1:
                _fail(f"blocks[{i}].pool_size", block.pool_size,
                      f"pooling would shrink the {h}x{w} feature map to nothing; use a smaller "
                      "pool_size, fewer blocks or a larger input")
            h, w = h // block.pool_size, w // block.pool_size
        self._check_size()

    def _check_size(self) -> None:
        """Refuse a spec whose parameters or per-example activations exceed the bounds (every field
        is bounded already, so expanding the layers here is cheap)."""
        layers = self.layers()
        params = sum(layer.params for layer in layers)
        if params > MAX_PARAMETERS:
            big = max(layers, key=lambda layer: layer.params)
            raise SpecError(f"spec: {params:,} parameters is over the bound of {MAX_PARAMETERS:,} ({big.name} alone "
                            f"has {big.params:,}); use fewer filters or units, or more pooling before the dense layers")
        values = sum(math.prod(layer.output_shape) for layer in layers)
        if values > MAX_ACTIVATIONS:
            raise SpecError(f"spec: one example would produce {values:,} activation values, over the bound of "
                            f"{MAX_ACTIVATIONS:,} (1 GiB of float32); use a smaller input_shape, fewer filters or "
                            "pooling earlier")

    # -- expansion ---------------------------------------------------------------------------

    def layers(self) -> list[LayerSpec]:
        """The flat, named layer list every backend builds (see the module docstring)."""
        out: list[LayerSpec] = []
        shape: tuple[int, ...] = self.input_shape

        def add(name: str, kind: str, new_shape: tuple[int, ...], params: int = 0, **options: Any) -> None:
            nonlocal shape
            out.append(LayerSpec(name, kind, shape, new_shape, params, options))
            shape = new_shape

        for b, block in enumerate(self.blocks, start=1):
            for c in range(1, block.convs + 1):
                h, w, cin = shape
                k = block.kernel_size
                add(f"block{b}_conv{c}", "conv2d", (h, w, block.filters),
                    k * k * cin * block.filters + block.filters,
                    filters=block.filters, kernel_size=k, in_channels=cin)
                if block.batch_norm:
                    add(f"block{b}_bn{c}", "batch_norm", shape, 4 * block.filters,
                        features=block.filters, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
                add(f"block{b}_{block.activation}{c}", block.activation, shape)
            if block.pool_size > 1:
                h, w, ch = shape
                p = block.pool_size
                add(f"block{b}_pool", "max_pool", (h // p, w // p, ch), pool_size=p)
            if block.dropout > 0:
                add(f"block{b}_dropout", "dropout", shape, rate=float(block.dropout))
        if self.pooling == "flatten":
            flat = 1
            for d in shape:
                flat *= d
            add("flatten", "flatten", (flat,))
        else:
            add("global_pool", POOLINGS[self.pooling], (shape[-1],))
        for d, dense_block in enumerate(self.dense, start=1):
            fin = shape[0]
            add(f"dense{d}", "dense", (dense_block.units,), fin * dense_block.units + dense_block.units,
                units=dense_block.units, in_features=fin)
            if dense_block.batch_norm:
                add(f"dense{d}_bn", "batch_norm", shape, 4 * dense_block.units,
                    features=dense_block.units, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
            add(f"dense{d}_{dense_block.activation}", dense_block.activation, shape)
            if dense_block.dropout > 0:
                add(f"dense{d}_dropout", "dropout", shape, rate=float(dense_block.dropout))
        fin = shape[0]
        add("head_dense", "dense", (self.num_classes,), fin * self.num_classes + self.num_classes,
            units=self.num_classes, in_features=fin)
        if self.logit_scale != 1:
            add("head_scale", "scale", shape, scale=float(self.logit_scale))
        add("head_softmax", "softmax", shape)
        return out

    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers()]

    def conv_layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers() if layer.kind == "conv2d"]

    def parameter_count(self) -> int:
        """All parameters, batch-norm moving statistics included (as Keras counts them)."""
        return sum(layer.params for layer in self.layers())

    def summary(self) -> str:
        """A text table of layers, output shapes and parameter counts."""
        rows = [("layer", "kind", "output shape", "params")]
        rows += [(s.name, s.kind, "x".join(map(str, s.output_shape)), f"{s.params:,}")
                 for s in self.layers()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {self.parameter_count():,}")
        return "\n".join(lines)

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        for block in (*d["blocks"], *d["dense"]):  # the default stays implicit: old readers, same JSON
            if block["activation"] == "relu":
                del block["activation"]
        for key, default in (("pooling", "flatten"), ("logit_scale", 1.0)):  # likewise
            if d[key] == default:
                del d[key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Build a spec from plain data, naming the exact field that is wrong if any is."""
        if not isinstance(data, dict):
            _fail("spec", data, "expected a JSON object with 'blocks', 'dense', ... fields")
        _reject_unknown("spec", data, cls)
        if "blocks" not in data:
            raise SpecError("spec: the field 'blocks' is missing; a CNN needs at least one conv block")
        kwargs = dict(data)
        kwargs["blocks"] = tuple(_sub(ConvBlock, f"blocks[{i}]", b)
                                 for i, b in enumerate(_as_list("blocks", data["blocks"], MAX_BLOCKS)))
        kwargs["dense"] = tuple(_sub(DenseBlock, f"dense[{i}]", b)
                                for i, b in enumerate(_as_list("dense", data.get("dense", []), MAX_DENSE)))
        if "input_shape" in kwargs:
            kwargs["input_shape"] = tuple(_as_list("input_shape", kwargs["input_shape"], 3))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls.from_dict(parse_json(text, SpecError, "spec", "write the spec as a JSON object"))


def _as_list(path: str, value: Any, max_length: int) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        _fail(path, value, "expected a list")
    if len(value) > max_length:
        _fail(path, value, f"expected at most {max_length} items (a bound that keeps a typo from exhausting memory)")
    return list(value)


def _reject_unknown(path: str, data: dict[str, Any], cls: type) -> None:
    check_fields(SpecError, path, data, {}, known=tuple(f.name for f in fields(cls)))


def _sub(cls: type, path: str, data: Any) -> Any:
    if not isinstance(data, dict):
        _fail(path, data, f"expected an object with the fields of {cls.__name__}")
    _reject_unknown(path, data, cls)
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in data]
    if missing:
        raise SpecError(f"{path}: the field {missing[0]!r} is missing; add it (e.g. {{\"{missing[0]}\": 32}})")
    try:
        return cls(**data)
    except SpecError as exc:
        raise SpecError(str(exc).replace(cls.__name__, path, 1)) from exc
