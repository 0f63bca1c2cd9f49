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
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NoReturn

from featurelens.errors import SpecError

#: Batch-norm constants shared by every backend (Keras's defaults; torch's momentum is 1 - this).
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

#: The activation layer kinds a block can have (``ConvBlock.activation``, ``DenseBlock.activation``).
ACTIVATIONS = ("relu", "gelu")

#: How the conv blocks' maps reach the dense layers (``ModelSpec.pooling``), and the layer kind of each.
POOLINGS = {"flatten": "flatten", "global_max": "global_max_pool", "global_avg": "global_avg_pool"}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _fail(path: str, value: Any, why: str) -> NoReturn:
    raise SpecError(f"{path}: {value!r} is invalid: {why}")


def _check_int(path: str, value: Any, minimum: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(path, value, why)


def _check_fraction(path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        _fail(path, value, "dropout is the fraction of units zeroed while training; use 0 <= x < 1")


def _check_bool(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(path, value, "expected true or false")


def _check_activation(path: str, value: Any) -> None:
    if value not in ACTIVATIONS:
        _fail(path, value, f"choose one of {', '.join(ACTIVATIONS)} (relu is the default)")


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
        _check_int(f"{path}.filters", self.filters, 1, "the number of filters must be an int >= 1")
        _check_int(f"{path}.convs", self.convs, 1, "a block needs at least one convolution (int >= 1)")
        _check_int(f"{path}.kernel_size", self.kernel_size, 1, "the kernel size must be an int >= 1")
        if self.kernel_size % 2 == 0:
            _fail(f"{path}.kernel_size", self.kernel_size,
                  "'same' padding is only symmetric (and identical across backends) for odd kernels;"
                  " use 1, 3, 5, ...")
        _check_int(f"{path}.pool_size", self.pool_size, 1,
                   "the max-pooling window must be an int >= 1 (1 means no pooling)")
        _check_fraction(f"{path}.dropout", self.dropout)
        _check_bool(f"{path}.batch_norm", self.batch_norm)
        _check_activation(f"{path}.activation", self.activation)


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
        _check_int(f"{path}.units", self.units, 1, "the number of units must be an int >= 1")
        _check_fraction(f"{path}.dropout", self.dropout)
        _check_bool(f"{path}.batch_norm", self.batch_norm)
        _check_activation(f"{path}.activation", self.activation)


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
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "dense", tuple(self.dense))
        if isinstance(self.input_shape, (list, tuple)):
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            _fail("name", self.name, "use letters, digits, '_', '.' or '-', starting with a letter or digit")
        shape = self.input_shape
        if not (isinstance(shape, tuple) and len(shape) == 3):
            _fail("input_shape", shape, "expected (height, width, channels), channels last")
        for axis, value in zip(("height", "width", "channels"), shape):
            _check_int(f"input_shape.{axis}", value, 1, "every dimension must be an int >= 1")
        _check_int("num_classes", self.num_classes, 2, "a classifier needs at least 2 classes")
        if not self.blocks:
            _fail("blocks", self.blocks, "a CNN needs at least one ConvBlock")
        for i, block in enumerate(self.blocks):
            if not isinstance(block, ConvBlock):
                _fail(f"blocks[{i}]", block, "expected a ConvBlock")
        for i, dense_block in enumerate(self.dense):
            if not isinstance(dense_block, DenseBlock):
                _fail(f"dense[{i}]", dense_block, "expected a DenseBlock")
        if self.pooling not in POOLINGS:
            _fail("pooling", self.pooling, f"choose one of {', '.join(POOLINGS)} (flatten is the default)")
        scale = self.logit_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1e3 \
                or scale != scale:
            _fail("logit_scale", scale, "the factor on the logits must be a number > 0 and <= 1000 (1: none)")
        h, w = shape[0], shape[1]
        for i, block in enumerate(self.blocks):
            if h // block.pool_size < 1 or w // block.pool_size < 1:
                _fail(f"blocks[{i}].pool_size", block.pool_size,
                      f"pooling would shrink the {h}x{w} feature map to nothing; use a smaller "
                      "pool_size, fewer blocks or a larger input")
            h, w = h // block.pool_size, w // block.pool_size

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
                                 for i, b in enumerate(_as_list("blocks", data["blocks"])))
        kwargs["dense"] = tuple(_sub(DenseBlock, f"dense[{i}]", b)
                                for i, b in enumerate(_as_list("dense", data.get("dense", []))))
        if "input_shape" in kwargs:
            kwargs["input_shape"] = tuple(_as_list("input_shape", kwargs["input_shape"]))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec: not valid JSON ({exc}); write the spec as a JSON object") from exc
        return cls.from_dict(data)


def _as_list(path: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        _fail(path, value, "expected a list")
    return list(value)


def _reject_unknown(path: str, data: dict[str, Any], cls: type) -> None:
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise SpecError(f"{path}: unknown field {key!r}; the known fields are {', '.join(known)}")


def _sub(cls: type, path: str, data: Any) -> Any:
    if not isinstance(data, dict):
        _fail(path, data, f"expected an object with the fields of {cls.__name__}")
    _reject_unknown(path, data, cls)
    try:
        return cls(**data)
    except TypeError as exc:  # a required field is missing
        raise SpecError(f"{path}: {exc}") from exc
    except SpecError as exc:
        raise SpecError(str(exc).replace(cls.__name__, path, 1)) from exc
