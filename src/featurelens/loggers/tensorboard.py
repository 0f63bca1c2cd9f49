"""The ``tensorboard`` logger: TensorBoard event files, written without TensorFlow on every backend.

Keras's own ``TensorBoard`` callback needs TensorFlow even on the JAX and torch backends (keras
issue 19121), and TensorBoard's ``EventFileWriter`` (what ``torch.utils.tensorboard`` uses) goes
through ``tensorboard.compat.tf``, which imports TensorFlow whenever it is installed. This logger
writes the same files with only the ``tensorboard`` package's record writer (CRC-framed records)
and its protocol buffers, synchronously, flushed after every epoch: an event file is complete up
to the last finished epoch even if the process is killed.

The layout is Keras's, so runs of both read alike (``tensorboard --logdir runs``):

- ``LOG_DIR/train/``: per epoch ``epoch_loss``, ``epoch_accuracy``, ``epoch_learning_rate`` and
  ``epoch_seconds``; images ``filters/<first conv layer>`` and ``feature_maps/<conv layer>`` (the
  probe image's channels at the layer's ReLU); once, at step 0, the image ``probe/image`` and the
  texts ``run/description``, ``model/layers`` (the layer table) and ``run/config``; at the end the
  text ``run/outcome``.
- ``LOG_DIR/validation/``: per epoch ``epoch_loss`` and ``epoch_accuracy`` of the validation split.

A run's files replace those of an earlier run in the same folders.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from featurelens.backends.loggers import EpochView, Logger, RunEnd, RunStart
from featurelens.history import STOP_REASONS, EpochRecord
from featurelens.loggers import pictures

Value = summary_pb2.Summary.Value


def scalar(tag: str, value: float) -> Any:
    return Value(tag=tag, simple_value=float(value))


def image(tag: str, pixels: Any) -> Any:
    height, width = pixels.shape[:2]
    return Value(tag=tag, image=summary_pb2.Summary.Image(height=height, width=width, colorspace=3,
                                                         encoded_image_string=pictures.png(pixels)))


def text(tag: str, markdown: str) -> Any:
    """A text summary (TensorBoard's text plugin renders it as Markdown)."""
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    return Value(tag=tag, metadata=metadata,
                 tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[markdown.encode("utf-8")]))


def _code(block: str) -> str:
    """Markdown for preformatted text (an indented code block)."""
    return "\n".join("    " + line for line in block.splitlines())


class EventFile:
    """One TensorBoard event file in ``folder``, replacing the event files an earlier run left there."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        self.path = folder / (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                              f"{os.getpid()}.featurelens")
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._records = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def add(self, step: int, values: list[Any]) -> None:
        """Write ``values`` (summary values) at ``step`` and flush them to the file."""
        self._write(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger(Logger):
    """Writes a run as TensorBoard event files (see the module docstring); ``images=False`` leaves
    out the per-epoch filter and feature-map images."""

    def __init__(self, images: bool = True) -> None:
        self.images = images
        self.train: EventFile | None = None
        self.validation: EventFile | None = None

    def begin(self, run: RunStart) -> None:
        self.train = EventFile(run.log_dir / "train")
        self.validation = EventFile(run.log_dir / "validation") if run.validation_size else None
        spec = f"the spec {run.spec.name!r}" if run.spec is not None else "a model built by the user"
        about = (f"**{run.name}**: {spec}, {run.parameter_count:,} parameters, on the {run.backend} backend "
                 f"({run.device}); {run.train_size:,} training and {run.validation_size:,} validation images of "
                 f"{'x'.join(map(str, run.input_shape))}; classes: {', '.join(run.class_names)}.")
        values = [text("run/description", about), text("run/config", _code(json.dumps(run.config.to_dict(), indent=2)))]
        if run.layers:
            values.append(text("model/layers", _code(run.layer_table())))
        if self.images and len(run.probe_images):
            values.append(image("probe/image", pictures.image_pixels(run.probe_images[0])))
        self.train.add(0, values)

    def epoch(self, record: EpochRecord, view: EpochView) -> None:
        assert self.train is not None, "begin() was not called"
        values = [scalar("epoch_loss", record.loss), scalar("epoch_accuracy", record.accuracy),
                  scalar("epoch_learning_rate", record.learning_rate), scalar("epoch_seconds", record.seconds)]
        if self.images:
            values += [image(f"filters/{layer}", pictures.filters_pixels(kernels))
                       for layer, kernels in view.filters().items()]
            values += [image(f"feature_maps/{layer}", pictures.maps_pixels(maps[0]))
                       for layer, maps in view.feature_maps().items() if len(maps)]
        self.train.add(record.epoch, values)
        if self.validation is not None and record.val_loss is not None and record.val_accuracy is not None:
            self.validation.add(record.epoch, [scalar("epoch_loss", record.val_loss),
                                               scalar("epoch_accuracy", record.val_accuracy)])

    def end(self, run: RunEnd) -> None:
        if self.train is not None:
            history = run.history
            outcome = (f"failed: {run.error}" if run.error is not None else
                       history.describe() if history.epochs else STOP_REASONS.get(history.stop_reason, ""))
            self.train.add(history.epochs[-1].epoch if history.epochs else 0, [text("run/outcome", outcome)])
            self.train.close()
        if self.validation is not None:
            self.validation.close()
