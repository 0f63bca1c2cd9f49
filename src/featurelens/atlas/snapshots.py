"""How the channels formed in training: snapshots of a model at chosen epochs.

A snapshot holds, for every conv layer, its kernels and its feature maps of a small fixed *probe*
batch, read where the channel passes them on (the ReLU after the conv and its batch norm, as the
atlas reads them: a conv's own output is linear in its input, so after pooling the first layer's
maps would look alike for any weights, random ones included): ``snapshot_probe`` held-out images
(32 by default) drawn once with the config's seed from the validation split (the training images
when there is none). Snapshots are recorded for the model as initialized (epoch 0), at the epochs
:meth:`TrainConfig.snapshot_schedule <featurelens.TrainConfig.snapshot_schedule>` lists
(``snapshot_every``, ``snapshot_epochs``) and
for the model training returns (``final``: the best epoch's weights when early stopping restored
them), so :func:`~featurelens.atlas.cka.cka_over_training` can compare every epoch with it.

The representation is bounded: kernels are stored as float16; feature maps are average-pooled to
at most 4x4 positions per channel (``POOL``) and stored as float16. For the seed CNN a snapshot is
about 1 MB (0.57 MB of kernels, 0.46 MB of maps). All snapshots of a run, with the probe images,
may take at most 64 MB (``MAX_BYTES``); a schedule that would take more is refused with a
:class:`~featurelens.ConfigError` before training starts. Recording one costs one forward pass over
the probe batch and a copy of the kernels: well under 5% of an epoch (``benchmarks/bench_snapshots.py``).

In a model folder they are ``snapshots.safetensors`` (arrays, no pickle) described by the
``"snapshots"`` entry of ``featurelens.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.layers import LayerInfo
from featurelens.checks import Bool, Check, Int, ListOf, MapOf, Nullable, Object, Text, check_fields
from featurelens.config import MAX_EPOCHS, MAX_SNAPSHOT_EPOCHS, MAX_SNAPSHOT_PROBE, TrainConfig
from featurelens.errors import ConfigError, InputError, ModelFolderError
from featurelens.history import EpochRecord

POOL = 4
MAX_BYTES = 64 * 2**20
DTYPE = np.float16
FORMAT = "featurelens-snapshots"
FORMAT_VERSION = 1
FINAL = "final"


def pool_maps(maps: np.ndarray, size: int = POOL) -> np.ndarray:
    """Average-pool (n, H, W, C) feature maps to at most ``size`` x ``size`` positions (adaptive
    pooling: bins as even as the sizes allow, overlapping by a pixel where they do not divide)."""
    maps = np.asarray(maps, np.float32)
    if maps.ndim == 2:  # (n, features): nothing spatial to pool
        return maps
    if maps.ndim != 4:
        raise InputError(f"expected feature maps (n, H, W, C), got shape {maps.shape}")
    n, height, width, channels = maps.shape
    out_h, out_w = min(height, size), min(width, size)
    if height % out_h == 0 and width % out_w == 0:  # equal blocks: one reshape, one mean
        blocks = maps.reshape(n, out_h, height // out_h, out_w, width // out_w, channels)
        return blocks.mean(axis=(2, 4), dtype=np.float32)

    def bins(length: int) -> list[tuple[int, int]]:
        out = min(length, size)
        return [(i * length // out, -(-(i + 1) * length // out)) for i in range(out)]

    rows, cols = bins(height), bins(width)
    pooled = np.empty((n, len(rows), len(cols), channels), np.float32)
    for i, (top, bottom) in enumerate(rows):
        band = maps[:, top:bottom].mean(axis=1)
        for j, (left, right) in enumerate(cols):
            pooled[:, i, j] = band[:, left:right].mean(axis=1)
    return pooled


def conv_read_at(infos: Sequence[LayerInfo]) -> dict[str, str]:
    """Every conv layer of a layer table, in order, with the layer its channels are read at (the ReLU after it)."""
    from featurelens.atlas.examples import measured_layer  # it imports the model module

    return {info.name: measured_layer(infos, info.name) for info in infos if info.kind == "conv2d"}


def probe_indices(total: int, count: int, seed: int) -> np.ndarray:
    """``count`` (at most ``total``) sorted indices of ``total`` held-out images, drawn with ``seed``."""
    return np.sort(np.random.default_rng(seed).choice(total, min(count, total), replace=False))


def read_conv_maps(backend: Backend, native: Any, images: np.ndarray, read_at: Mapping[str, str],
                   batch_size: int = 64, reduce: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> dict[str, np.ndarray]:
    """``{conv layer: maps}`` of normalized ``images``, each read at ``read_at[layer]``, batch by batch
    (``reduce`` applied to every batch's maps, e.g. pooling; else a float32 copy)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in read_at}
    for batch in backend.feature_maps(native, images, sorted(set(read_at.values())), batch_size):
        for name, source in read_at.items():
            parts[name].append(reduce(batch[source]) if reduce is not None else np.array(batch[source], np.float32))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(int(a.nbytes) for a in arrays.values())


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.3g} MB"


@dataclass
class Snapshots:
    """Per-epoch kernels and pooled probe feature maps of every conv layer (see the module docstring).

    ``filters[epoch][layer]`` is (C_out, kh, kw, C_in) and ``maps[epoch][layer]`` (n, h, w, C) with
    h, w <= ``pool``, both float16; epoch 0 is the model as initialized. ``final_filters`` and
    ``final_maps`` are the model training returned, whose weights are those of ``final_epoch``.
    """

    layers: tuple[str, ...]
    epochs: list[int] = field(default_factory=list)
    filters: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    maps: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    final_filters: dict[str, np.ndarray] = field(default_factory=dict)
    final_maps: dict[str, np.ndarray] = field(default_factory=dict)
    final_epoch: int | None = None
    probe: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 1), np.float32))
    probe_indices: tuple[int, ...] = ()
    probe_source: str = "validation"
    pool: int = POOL
    read_at: dict[str, str] = field(default_factory=dict)
    """Per conv layer, the layer whose output its maps are (its ReLU, or itself)."""

    @property
    def nbytes(self) -> int:
        """Bytes of every array held (what the folder's ``snapshots.safetensors`` takes, give or take)."""
        held = [*self.filters.values(), *self.maps.values(), self.final_filters, self.final_maps]
        return sum(_nbytes(arrays) for arrays in held) + int(self.probe.nbytes)

    def layer_filters(self, layer: str, final: bool = True) -> tuple[list[str], list[np.ndarray]]:
        """A conv layer's kernels over training: row labels (``epoch 0`` ...) and (C_out, kh, kw, C_in)
        float32 arrays, ending with the returned model's unless ``final`` is False."""
        if layer not in self.layers:
            raise InputError(f"no snapshots of a layer {layer!r}; they hold {', '.join(self.layers)}")
        labels = [f"epoch {e}" for e in self.epochs]
        arrays = [self.filters[e][layer].astype(np.float32) for e in self.epochs]
        if final and self.final_filters:
            labels.append(self.final_label)
            arrays.append(self.final_filters[layer].astype(np.float32))
        return labels, arrays

    @property
    def final_label(self) -> str:
        """``final`` with the epoch its weights come from."""
        return f"final (epoch {self.final_epoch})" if self.final_epoch is not None else FINAL

    # -- the folder's file ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{key: array}`` for a safetensors file: ``filters/<epoch>/<layer>``, ``maps/<epoch>/<layer>``
        (``<epoch>`` is ``final`` for the returned model) and ``probe``."""
        out: dict[str, np.ndarray] = {"probe": np.ascontiguousarray(self.probe, np.float32)}
        tags: list[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]] = [
            (str(e), self.filters[e], self.maps[e]) for e in self.epochs]
        if self.final_filters:  # absent while training goes on (checkpoints)
            tags.append((FINAL, self.final_filters, self.final_maps))
        for tag, filters, maps in tags:
            for layer in self.layers:
                out[f"filters/{tag}/{layer}"] = np.ascontiguousarray(filters[layer], DTYPE)
                out[f"maps/{tag}/{layer}"] = np.ascontiguousarray(maps[layer], DTYPE)
        return out

    def metadata(self) -> dict[str, Any]:
        """The JSON description stored beside the arrays (``featurelens.json``'s ``"snapshots"``)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "epochs": list(self.epochs),
                "final": bool(self.final_filters),
                "layers": list(self.layers), "final_epoch": self.final_epoch, "pool": self.pool,
                "dtype": np.dtype(DTYPE).name, "bytes": self.nbytes, "read_at": dict(self.read_at),
                "probe": {"count": int(len(self.probe)), "source": self.probe_source,
                          "indices": list(self.probe_indices)}}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], where: str = "") -> Snapshots:
        """Rebuild from :meth:`to_arrays` and :meth:`metadata`, both checked: a missing, misshapen or
        non-finite part raises :class:`ModelFolderError`."""
        where = where or "the snapshots"
        if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
            raise ModelFolderError(f"{where}: not a featurelens snapshots description")
        described = check_fields(ModelFolderError, f"{where}: snapshots", dict(meta), DESCRIPTION_FIELDS)
        if described.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFolderError(f"{where} were written by a newer featurelens (snapshots format "
                                   f"{meta.get('format_version')}); upgrade with: pip install -U featurelens")
        for key in ("layers", "epochs"):
            if key not in described:
                raise ModelFolderError(f"{where}: the description is incomplete (it lacks {key!r}); the folder is "
                                       "damaged")
        layers: tuple[str, ...] = described["layers"]
        probe_meta = check_fields(ModelFolderError, f"{where}: snapshots.probe", described.get("probe") or {},
                                  PROBE_FIELDS)

        def get(key: str, ndims: tuple[int, ...]) -> np.ndarray:
            if key not in arrays:
                raise ModelFolderError(f"{where} lack the array {key!r}; the folder is damaged")
            array = np.asarray(arrays[key])
            if array.ndim not in ndims or not np.issubdtype(array.dtype, np.floating):
                raise ModelFolderError(f"{where}: the array {key!r} is {array.dtype} of shape {array.shape}; expected "
                                       f"floats in {' or '.join(map(str, ndims))} dimensions. The folder is damaged")
            if not np.isfinite(array).all():
                raise ModelFolderError(f"{where}: the array {key!r} holds NaN or infinite values; the folder is "
                                       "damaged")
            return array

        def tagged(tag: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            return ({layer: get(f"filters/{tag}/{layer}", (4,)) for layer in layers},
                    {layer: get(f"maps/{tag}/{layer}", (2, 4)) for layer in layers})

        per_epoch = {e: tagged(str(e)) for e in described["epochs"]}
        final_filters, final_maps = tagged(FINAL) if described.get("final", True) else ({}, {})
        for epoch, (filters, _) in per_epoch.items():
            for layer, kernels in filters.items():
                if final_filters and kernels.shape != final_filters[layer].shape:
                    raise ModelFolderError(f"{where}: the kernels of {layer} at epoch {epoch} are {kernels.shape}, the "
                                           f"final ones {final_filters[layer].shape}; the folder is damaged")
        return cls(layers=layers, epochs=list(described["epochs"]), filters={e: f for e, (f, _) in per_epoch.items()},
                   maps={e: m for e, (_, m) in per_epoch.items()}, final_filters=final_filters,
                   final_maps=final_maps, final_epoch=described.get("final_epoch"), probe=get("probe", (4,)),
                   probe_indices=probe_meta.get("indices", ()),
                   probe_source=probe_meta.get("source", "validation"), pool=described.get("pool", POOL),
                   read_at=described.get("read_at") or {})


_LAYER_NAME = Text(200, min_length=1)
#: The checks of the snapshots' description (``featurelens.json``'s ``"snapshots"``).
DESCRIPTION_FIELDS: dict[str, Check] = {
    "format_version": Int(0, 10**6),
    "epochs": ListOf(Int(0, MAX_EPOCHS), MAX_SNAPSHOT_EPOCHS + 1, hint="the epochs snapshots were taken at"),
    "layers": ListOf(_LAYER_NAME, 4096, hint="the conv layers"),
    "final_epoch": Nullable(Int(0, MAX_EPOCHS)),
    "pool": Int(1, 1024),
    "final": Bool(),
    "read_at": MapOf(_LAYER_NAME),
    "probe": Nullable(Object("the probe images' count, source and indices")),
}
PROBE_FIELDS: dict[str, Check] = {
    "count": Int(0, MAX_SNAPSHOT_PROBE),
    "source": Text(100),
    "indices": ListOf(Int(0, 2**62), MAX_SNAPSHOT_PROBE),
}


class SnapshotRecorder:
    """An :class:`~featurelens.backends.EpochObserver` recording :class:`Snapshots` during training.

    Build it with :meth:`start`, which records the initialized model and checks the size bound;
    hand it to the backend's ``fit`` as an observer; end with :meth:`finish` on the returned model.
    """

    def __init__(self, backend: Backend, layers: list[str], probe: np.ndarray, schedule: tuple[int, ...],
                 probe_indices: tuple[int, ...] = (), probe_source: str = "validation",
                 batch_size: int = 64, read_at: Mapping[str, str] | None = None) -> None:
        self.backend = backend
        self.schedule = frozenset(schedule)
        self.batch_size = batch_size
        self.snapshots = Snapshots(layers=tuple(layers), probe=np.asarray(probe, np.float32),
                                   probe_indices=probe_indices, probe_source=probe_source,
                                   read_at={layer: (read_at or {}).get(layer, layer) for layer in layers})

    @classmethod
    def start(cls, backend: Backend, native: Any, config: TrainConfig, input_shape: tuple[int, int, int],
              held_out: np.ndarray, source: str = "validation") -> SnapshotRecorder:
        """Pick the probe from ``held_out`` (normalized images) with ``config.seed``, record the model as
        initialized, and refuse (``ConfigError``) a schedule whose snapshots would exceed ``MAX_BYTES``."""
        backend.require(Capability.INTROSPECT, "record training snapshots")
        read_at = conv_read_at(backend.layers(native, input_shape))
        layers = list(read_at)
        if not layers:
            raise InputError("the model has no conv layer, so there are no filters or feature maps to snapshot; "
                             "set snapshot_every=0")
        if len(held_out) == 0:
            raise InputError("there are no images to take the snapshots' probe batch from")
        indices = probe_indices(len(held_out), config.snapshot_probe, config.seed)
        recorder = cls(backend, layers, np.asarray(held_out)[indices], config.snapshot_schedule(),
                       tuple(int(i) for i in indices), source, read_at=read_at)
        filters, maps = recorder.capture(native)
        recorder.check_bound(config, _nbytes(filters), _nbytes(maps))
        recorder.store(0, filters, maps)
        return recorder

    def check_bound(self, config: TrainConfig, filter_bytes: int, map_bytes: int) -> None:
        """Raise :class:`ConfigError` if the schedule's snapshots (plus epoch 0, the final model and the
        probe) would take more than ``MAX_BYTES``."""
        count = len(self.schedule) + 2
        total = count * (filter_bytes + map_bytes) + int(self.snapshots.probe.nbytes)
        if total <= MAX_BYTES:
            return
        path = "snapshot_every" if config.snapshot_every else "snapshot_epochs"
        value = config.snapshot_every if config.snapshot_every else list(config.snapshot_epochs)
        fits = max(0, (MAX_BYTES - int(self.snapshots.probe.nbytes)) // (filter_bytes + map_bytes) - 2)
        raise ConfigError(
            f"{path}: {value!r} is invalid: it records {count} snapshots (with the initial and the final model) "
            f"of {_mb(filter_bytes + map_bytes)} each ({_mb(filter_bytes)} of kernels, {_mb(map_bytes)} of probe "
            f"feature maps), {_mb(total)} in all, over the {_mb(MAX_BYTES)} bound on snapshots; record at most "
            f"{fits} epochs (a larger snapshot_every or fewer snapshot_epochs)"
            + (" or use fewer probe images (snapshot_probe)" if map_bytes > filter_bytes else ""))

    def capture(self, native: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The kernels and pooled probe maps of every conv layer of ``native`` now (float16 copies)."""
        layers = list(self.snapshots.layers)
        filters = {name: np.asarray(self.backend.filters(native, name)).astype(DTYPE) for name in layers}
        read_at = {name: self.snapshots.read_at.get(name, name) for name in layers}
        maps = read_conv_maps(self.backend, native, self.snapshots.probe, read_at, self.batch_size,
                              lambda batch: pool_maps(batch, self.snapshots.pool).astype(DTYPE))
        return filters, maps

    def store(self, epoch: int, filters: dict[str, np.ndarray], maps: dict[str, np.ndarray]) -> None:
        snaps = self.snapshots
        if epoch not in snaps.filters:
            snaps.epochs.append(epoch)
        snaps.filters[epoch], snaps.maps[epoch] = filters, maps

    def __call__(self, epoch: int, record: EpochRecord, native: Any) -> None:
        """The observer: snapshot ``native`` if ``epoch`` is scheduled."""
        if epoch in self.schedule:
            self.store(epoch, *self.capture(native))

    def finish(self, native: Any, final_epoch: int | None) -> Snapshots:
        """Record the model as training returned it (weights of ``final_epoch``) and return the snapshots."""
        snaps = self.snapshots
        snaps.final_filters, snaps.final_maps = self.capture(native)
        snaps.final_epoch = final_epoch
        return snaps
