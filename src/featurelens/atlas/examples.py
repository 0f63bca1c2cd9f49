"""Dataset examples: the images that excite each channel most, found in one streaming pass.

A channel's response to an image is its largest activation over positions (Zeiler & Fergus 2014;
OpenAI Microscope). The dataset goes through the model ``batch_size`` images at a time and, per
layer, only a running top-k per channel is kept (values, image indices and the position of the
maximum) with the statistics that need one number per image and channel (mean activation, whether
the channel was active at all, per-class sums): memory is ``channels x (k + batch)`` whatever the
dataset size, and no feature map outlives its batch. Ties are broken by the lower image index, so
the result is exactly a brute-force sort of all images (and does not depend on ``batch_size``).
The backend reduces each batch's maps per image and channel (maximum and mean, in the framework
as each layer runs where it can: :class:`~featurelens.backends.ChannelSummary`); the position of a
maximum (the first in row-major order) is looked up only above the channel's current k-th best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as _field

import numpy as np
from tqdm.auto import tqdm

from featurelens.atlas.receptive import Box, ReceptiveField, crop, receptive_field
from featurelens.backends.contract import Capability
from featurelens.backends.layers import LayerInfo, unknown_layer
from featurelens.backends.summaries import ChannelSummary
from featurelens.errors import FeaturelensError, InputError
from featurelens.model import Model
from featurelens.spec import ACTIVATIONS


@dataclass
class ChannelStats:
    """Per channel of one layer, over every image seen.

    - ``mean``: mean activation over images and positions;
    - ``never_active``: fraction of images on which the channel is never above zero anywhere
      (1.0 for every image: a dead channel);
    - ``class_mean``: (num_classes, C) mean activation of the images of each class (NaN for a class
      with no images), the channel's class selectivity; None without labels;
    - ``class_counts``: images per class.
    """

    mean: np.ndarray
    never_active: np.ndarray
    class_mean: np.ndarray | None = None
    class_counts: np.ndarray | None = None

    @property
    def dead(self) -> np.ndarray:
        """Channels never active on any image (a ReLU output that is always zero)."""
        return self.never_active >= 1.0

    @property
    def selectivity(self) -> np.ndarray | None:
        """Class selectivity index per channel (Morcos et al. 2018): (top - rest) / (top + rest),
        where top is the largest class mean and rest the mean of the others; 0 for dead channels."""
        if self.class_mean is None:
            return None
        means = np.nan_to_num(self.class_mean, nan=0.0).astype(np.float64)
        if means.shape[0] < 2:
            return np.zeros(means.shape[1], np.float32)
        top = means.max(axis=0)
        rest = (means.sum(axis=0) - top) / (means.shape[0] - 1)
        denominator = top + rest
        safe = np.where(np.abs(denominator) > 1e-12, denominator, 1.0)
        return np.where(np.abs(denominator) > 1e-12, (top - rest) / safe, 0.0).astype(np.float32)


@dataclass
class LayerExamples:
    """The top-k dataset examples of every channel of one layer.

    ``indices`` (C, k) image indices into the images given, best first (-1 where fewer than k images
    were seen); ``values`` (C, k) each image's largest activation; ``positions`` (C, k, 2) the (y, x)
    of that maximum in the layer's map; ``field`` the layer's receptive field (None when it cannot
    be computed: a model the user built on a backend without gradients); ``boxes`` (C, k, 4) the
    input pixels of each maximum's field, ``(top, left, bottom, right)`` clipped to the image.
    """

    layer: str
    indices: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    map_shape: tuple[int, int]
    stats: ChannelStats
    field: ReceptiveField | None = None
    boxes: np.ndarray | None = None
    measured_at: str = ""
    images_seen: int = 0
    notes: list[str] = _field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.indices.shape[0])

    def patches(self, images: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """(C, k, fh, fw, channels) float32: each example's receptive-field patch of ``images``
        (the images these examples were found in, as loaded); NaN past the image border or where
        fewer than k examples exist."""
        if self.field is None:
            raise FeaturelensError(f"no receptive field for {self.layer!r}: {'; '.join(self.notes) or 'unknown'}")
        fh, fw = self.field.size
        out = np.full((*self.indices.shape, fh, fw, images.shape[-1]), fill, np.float32)
        for c in range(self.indices.shape[0]):
            for j in range(self.indices.shape[1]):
                index = int(self.indices[c, j])
                if index >= 0:
                    y, x = self.positions[c, j]
                    out[c, j] = crop(np.asarray(images[index], np.float32), self.field, int(y), int(x), fill)
        return out

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The numbers as named arrays (for ``np.savez``)."""
        arrays = {"indices": self.indices, "values": self.values, "positions": self.positions,
                  "mean": self.stats.mean, "never_active": self.stats.never_active}
        if self.boxes is not None:
            arrays["boxes"] = self.boxes
        if self.stats.class_mean is not None:
            arrays["class_mean"] = self.stats.class_mean
            arrays["selectivity"] = self.stats.selectivity  # type: ignore[assignment]
        return {f"{prefix}{k}": v for k, v in arrays.items()}


def measured_layer(infos: Sequence[LayerInfo], layer: str) -> str:
    """Where a conv layer's channels are read: the ReLU (or GELU) that follows it (through batch
    norm only), which is what the channel passes on and where "never active" means a dead unit;
    else the layer. (A GELU passes small negative values, so "never active" means never > 0.)"""
    names = [info.name for info in infos]
    if layer not in names:
        raise unknown_layer(layer, names)
    index = names.index(layer)
    if infos[index].kind != "conv2d":
        return layer
    for follower in infos[index + 1:]:
        if follower.kind == "batch_norm":
            continue
        if follower.kind in ACTIVATIONS and tuple(follower.output_shape) == tuple(infos[index].output_shape):
            return follower.name
        break
    return layer


class _TopK:
    """A running top-k per channel, exact. Batches arrive in image order: a later image loses every
    tie, so only maxima above the current k-th best (the floor) need a position."""

    def __init__(self, channels: int, k: int) -> None:
        self.values = np.full((channels, k), -np.inf, np.float32)
        self.indices = np.full((channels, k), -1, np.int64)
        self.positions = np.zeros((channels, k, 2), np.int64)

    def add(self, summary: ChannelSummary, start: int) -> None:
        """One batch's summary, of images ``start..start+n``."""
        maxima = summary.maxima
        n = maxima.shape[0]
        k = self.values.shape[1]
        # Only channels whose list is not full yet (where even a maximum of -inf enters) or where
        # some image beats the current k-th best (ties lose: a higher index) take part; once the
        # lists fill up that is a few channels per batch.
        rows = np.flatnonzero((maxima > self.values[:, -1]).any(axis=0) | (self.indices[:, -1] < 0))
        if rows.size == 0:
            return
        scores = maxima.T[rows]  # (R, n)
        # The batch's own best k per channel first (a stable sort keeps the lower index first among
        # equal values), then one merge of 2k candidates: far cheaper than sorting k + n.
        local = np.argsort(-scores, axis=1, kind="stable")[:, :min(k, n)]  # (R, <=k) positions in the batch
        cand_values = np.concatenate([self.values[rows], np.take_along_axis(scores, local, axis=1)], axis=1)
        cand_indices = np.concatenate([self.indices[rows], local + start], axis=1)
        # Best first: larger value, then lower image index; empty slots (-inf, -1) sort last.
        key_index = np.where(cand_indices < 0, np.iinfo(np.int64).max, cand_indices)
        order = np.lexsort((key_index, -cand_values.astype(np.float64)), axis=1)[:, :k]  # (R, k) into candidates
        # Positions: the kept entries' own, and located in the batch's maps only for the images that
        # enter (once the lists are full, a few per batch).
        positions = np.take_along_axis(self.positions[rows], np.minimum(order, k - 1)[..., None], axis=1)
        entering_row, entering_col = np.nonzero(order >= k)
        if entering_row.size:
            in_batch = local[entering_row, order[entering_row, entering_col] - k]
            positions[entering_row, entering_col] = summary.locate(in_batch, rows[entering_row])
        self.values[rows] = np.take_along_axis(cand_values, order, axis=1)
        self.indices[rows] = np.take_along_axis(cand_indices, order, axis=1)
        self.positions[rows] = positions


class _Stats:
    def __init__(self, channels: int, num_classes: int | None) -> None:
        self.sum = np.zeros(channels, np.float64)
        self.inactive = np.zeros(channels, np.int64)
        self.count = 0
        self.class_sum = np.zeros((num_classes, channels), np.float64) if num_classes else None
        self.class_count = np.zeros(num_classes, np.int64) if num_classes else None

    def add(self, means: np.ndarray, maxima: np.ndarray, labels: np.ndarray | None) -> None:
        self.sum += means.sum(axis=0, dtype=np.float64)
        self.inactive += (maxima <= 0).sum(axis=0)
        self.count += len(means)
        if self.class_sum is not None and labels is not None and self.class_count is not None:
            onehot = np.zeros((len(labels), len(self.class_count)), np.float64)
            onehot[np.arange(len(labels)), labels] = 1.0
            self.class_sum += onehot.T @ means.astype(np.float64)
            self.class_count += onehot.sum(axis=0).astype(np.int64)

    def result(self) -> ChannelStats:
        count = max(self.count, 1)
        class_mean = None
        if self.class_sum is not None and self.class_count is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                class_mean = (self.class_sum / self.class_count[:, None]).astype(np.float32)
        return ChannelStats((self.sum / count).astype(np.float32), (self.inactive / count).astype(np.float32),
                            class_mean, None if self.class_count is None else self.class_count.copy())


def dataset_examples(model: Model, images: np.ndarray, layers: str | Sequence[str] | None = None, *,
                     top: int = 9, labels: np.ndarray | None = None, num_classes: int | None = None,
                     batch_size: int = 64, measure_at_relu: bool = True,
                     progress: bool = False) -> dict[str, LayerExamples]:
    """The top-``top`` images of every channel of ``layers`` (default: every conv layer), streamed.

    ``images`` as loaded (N, H, W, C), any N (an array or a memory map: only one batch at a time
    is normalized and run). With ``labels`` (ints), the statistics include each channel's mean
    activation per class. A conv layer followed by a ReLU (through batch norm) is read at that ReLU
    unless ``measure_at_relu`` is False (``measured_at`` says where). Boxes give each example's
    receptive field: exact for spec-built models, estimated from gradients for others.
    """
    model.backend.require(Capability.INTROSPECT, "find dataset examples")
    images = model.check_images(images)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise InputError(f"top must be a positive number of examples per channel, got {top!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(images) == 0:
        raise InputError("no images: dataset examples need at least one image")
    label_array = _labels(labels, len(images), num_classes, model)
    classes = num_classes or (len(model.class_names) if model.class_names else None)
    if label_array is not None and classes is None:
        classes = int(label_array.max()) + 1
    infos = model.layers()
    spatial = {info.name: info for info in infos if len(info.output_shape) == 3}
    if layers is None:
        wanted = [info.name for info in infos if info.kind == "conv2d"]
        if not wanted:
            raise InputError("the model has no conv layer (kind conv2d); pass layers= with spatial layers")
    else:
        wanted = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))  # each layer once
    names = [info.name for info in infos]
    for name in wanted:
        if name not in names:
            raise unknown_layer(name, names)
        if name not in spatial:
            shape = next(i.output_shape for i in infos if i.name == name)
            raise InputError(f"layer {name!r} is not spatial (output {shape}); "
                             f"dataset examples are for (h, w, c) feature maps such as {', '.join(list(spatial)[:6])}")
    read = {name: (measured_layer(infos, name) if measure_at_relu else name) for name in wanted}
    state = {name: (_TopK(spatial[read[name]].output_shape[2], int(top)),
                    _Stats(spatial[read[name]].output_shape[2], classes)) for name in wanted}
    # Positions are looked up only for maxima above each channel's current k-th best: the floors.
    floors = {layer: np.full(spatial[layer].output_shape[2], -np.inf, np.float32) for layer in set(read.values())}
    start = 0
    with tqdm(total=len(images), desc="dataset examples", unit="img", disable=not progress, leave=False) as bar:
        for summaries in model.iter_channel_summaries(images, sorted(set(read.values())), batch_size, floors):
            n = len(next(iter(summaries.values())).maxima)
            batch_labels = None if label_array is None else label_array[start:start + n]
            for name in wanted:
                summary = summaries[read[name]]
                topk, stats = state[name]
                topk.add(summary, start)
                stats.add(summary.means, summary.maxima, batch_labels)
                floors[read[name]][:] = topk.values[:, -1]
            start += n
            bar.update(n)
    result: dict[str, LayerExamples] = {}
    for name in wanted:
        topk, stats = state[name]
        h, w = spatial[read[name]].output_shape[:2]
        examples = LayerExamples(name, topk.indices, topk.values, topk.positions, (int(h), int(w)), stats.result(),
                                 measured_at=read[name], images_seen=start)
        _add_fields(model, examples, read[name])
        result[name] = examples
    return result


def _labels(labels: np.ndarray | None, count: int, num_classes: int | None, model: Model) -> np.ndarray | None:
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.shape != (count,) or array.dtype.kind not in "iu":
        raise InputError(f"labels must be one integer class per image ({count}), got {array.dtype} {array.shape}")
    limit = num_classes or (len(model.class_names) if model.class_names else None)
    if len(array) and (array.min() < 0 or (limit is not None and array.max() >= limit)):
        raise InputError(f"labels must be class indices 0..{(limit or 0) - 1}, got values from {array.min()} to "
                         f"{array.max()}")
    return array.astype(np.int64)


def _add_fields(model: Model, examples: LayerExamples, read: str) -> None:
    """Receptive field and boxes; a note instead where the backend cannot give a field."""
    try:
        examples.field = receptive_field(model, read)
    except FeaturelensError as exc:
        examples.notes.append(f"no receptive field: {exc}")
        return
    height, width = model.input_shape[:2]
    boxes = np.zeros((*examples.indices.shape, 4), np.int64)
    for c in range(examples.indices.shape[0]):
        for j in range(examples.indices.shape[1]):
            y, x = examples.positions[c, j]
            box: Box = examples.field.box(int(y), int(x), (height, width))
            boxes[c, j] = box
    examples.boxes = boxes
