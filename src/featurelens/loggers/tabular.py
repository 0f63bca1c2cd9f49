"""The ``csv`` and ``jsonl`` loggers: plain files a spreadsheet, pandas or ``jq`` reads, no dependency.

Both start their file atomically (an earlier run's file is replaced in one step) and then append
one line per event, flushed and synced to disk when it is written: a crash can cut the line being
written, never an earlier one.

- ``LOG_DIR/metrics.csv``: a header row (the fields of :class:`~featurelens.EpochRecord`) and a row
  per epoch; a value that does not exist (validation metrics without a split) is an empty cell.
- ``LOG_DIR/run.jsonl``: ``{"event": "begin", ...}`` (the run's name, backend, device, spec,
  layers, config, class names and data sizes), ``{"event": "epoch", ...}`` per epoch (the record's
  fields) and ``{"event": "end", ...}`` (why training stopped, the best epoch, the error if one
  ended it). Values that are not finite numbers are written as ``null``, so every line is strict JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

from featurelens._atomic import write_text
from featurelens.backends.loggers import EpochView, Logger, RunEnd, RunStart
from featurelens.history import EpochRecord

CSV_FILE = "metrics.csv"
JSONL_FILE = "run.jsonl"


class _AppendOnlyFile:
    """A text file started atomically with ``first`` and then appended to, each line synced."""

    def __init__(self, path: Path, first: str) -> None:
        write_text(path, first)
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115

    def append(self, line: str) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvLogger(Logger):
    """One row per epoch in ``metrics.csv`` (see the module docstring)."""

    def __init__(self) -> None:
        self.columns = [f.name for f in fields(EpochRecord)]
        self.out: _AppendOnlyFile | None = None

    def _row(self, values: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
        return buffer.getvalue()

    def begin(self, run: RunStart) -> None:
        self.out = _AppendOnlyFile(run.log_dir / CSV_FILE, self._row(list(self.columns)))

    def epoch(self, record: EpochRecord, view: EpochView) -> None:
        assert self.out is not None, "begin() was not called"
        data = asdict(record)
        self.out.append(self._row([data[name] for name in self.columns]))

    def end(self, run: RunEnd) -> None:
        if self.out is not None:
            self.out.close()


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _line(event: str, **data: Any) -> str:
    return json.dumps(_strict({"event": event, "time": time.time(), **data}), allow_nan=False) + "\n"


class JsonLinesLogger(Logger):
    """The run as JSON lines in ``run.jsonl``: begin, every epoch, end (see the module docstring)."""

    def __init__(self) -> None:
        self.out: _AppendOnlyFile | None = None

    def begin(self, run: RunStart) -> None:
        layers = [{"name": i.name, "kind": i.kind, "output_shape": list(i.output_shape), "params": i.params}
                  for i in run.layers]
        self.out = _AppendOnlyFile(run.log_dir / JSONL_FILE, _line(
            "begin", name=run.name, backend=run.backend, device=run.device,
            spec=run.spec.to_dict() if run.spec is not None else None, layers=layers, config=run.config.to_dict(),
            class_names=list(run.class_names), input_shape=list(run.input_shape), train_size=run.train_size,
            validation_size=run.validation_size))

    def epoch(self, record: EpochRecord, view: EpochView) -> None:
        assert self.out is not None, "begin() was not called"
        self.out.append(_line("epoch", **asdict(record)))

    def end(self, run: RunEnd) -> None:
        if self.out is None:
            return
        history = run.history
        self.out.append(_line("end", stop_reason=run.stop_reason, best_epoch=run.best_epoch,
                              restored_best_weights=history.restored_best_weights, epochs=len(history.epochs),
                              seconds=history.total_seconds, compile_seconds=history.compile_seconds, error=run.error))
        self.out.close()
