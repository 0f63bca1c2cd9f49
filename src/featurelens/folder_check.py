"""Check a model folder part by part, and accept one whose files were changed on purpose.

:func:`verify_folder` reads every part of a folder the way loading does and compares it with the
sha256 recorded when the folder was saved, without stopping at the first problem: one
:class:`PartCheck` per file. :func:`accept_folder` records the folder's current hashes, but only
after the same checks pass: the description is valid, the weights are readable, finite and fit
the spec, and the history and snapshots (when there) are intact. It is how a folder saved before
hashes were recorded gets them, and how weights edited on purpose become the folder's weights.
``featurelens verify MODEL_DIR [--accept]`` runs them on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurelens._atomic import write_json
from featurelens.errors import ModelFolderError
from featurelens.folder_meta import SNAPSHOTS_FILE, FolderMeta
from featurelens.integrity import digest_bytes, metadata_digest, short, with_hashes
from featurelens.modeldir import (
    EVALUATION_FILE,
    HISTORY_FILE,
    META_FILE,
    parse_history,
    parse_snapshots,
    parse_weights,
    read_description,
    read_evaluation,
    read_part,
)

#: What a part's check found. Only ``ok`` and ``not hashed`` (evaluation.json) are intact.
STATUSES = ("ok", "not hashed", "no hash recorded", "changed", "damaged", "missing")


@dataclass(frozen=True)
class PartCheck:
    """One file of a model folder: its ``status`` (see :data:`STATUSES`) and what was found."""

    file: str
    status: str
    detail: str = ""

    @property
    def intact(self) -> bool:
        return self.status in ("ok", "not hashed")

    @property
    def usable(self) -> bool:
        """Readable and valid, whatever its hash says (what :func:`accept_folder` needs)."""
        return self.status not in ("damaged", "missing")

    def line(self) -> str:
        return f"{self.file:<24} {self.status}" + (f": {self.detail}" if self.detail else "")


def _hash_status(info: FolderMeta, name: str, actual: str) -> PartCheck:
    if info.hashes is None:
        return PartCheck(name, "no hash recorded", "the folder was saved before featurelens recorded hashes")
    expected = info.hashes.files.get(name) if name != META_FILE else info.hashes.metadata
    if expected is None:
        return PartCheck(name, "changed", "it was not in the folder when the model was saved")
    if actual != expected:
        return PartCheck(name, "changed", f"sha256 {short(actual)}..., recorded {short(expected)}...")
    return PartCheck(name, "ok")


def _file(folder: Path, info: FolderMeta, name: str, parse: Callable[[bytes], Any], expected: bool) -> PartCheck | None:
    """The check of one file, or None when it is absent and nothing says it should be there."""
    recorded = info.hashes is not None and name in info.hashes.files
    if not (folder / name).exists():
        return PartCheck(name, "missing", "it was saved with the model") if expected or recorded else None
    try:
        data = read_part(folder, name)
        parse(data)
    except ModelFolderError as exc:
        return PartCheck(name, "damaged", str(exc))
    return _hash_status(info, name, digest_bytes(data))


def verify_folder(folder: str | os.PathLike[str]) -> list[PartCheck]:
    """Every part of ``folder`` checked against its content rules and recorded hash (see the module
    docstring); an invalid ``featurelens.json`` is a :class:`ModelFolderError`, as nothing else can be read."""
    folder = Path(folder)
    info = read_description(folder)
    checks = [_hash_status(info, META_FILE, metadata_digest(info.raw))]
    parts: list[tuple[str, Callable[[bytes], Any], bool]] = [
        (info.weights_file, lambda data: parse_weights(folder, info, data), True),
        (HISTORY_FILE, lambda data: parse_history(folder, data), False)]
    if info.snapshots is not None:
        snaps = str(info.snapshots.get("file", SNAPSHOTS_FILE))
        parts.append((snaps, lambda data: parse_snapshots(folder, snaps, data, info.raw["snapshots"]), True))
    for part, parse, expected in parts:
        check = _file(folder, info, part, parse, expected)
        if check is not None:
            checks.append(check)
    if (folder / EVALUATION_FILE).exists():
        try:
            read_evaluation(folder)
            checks.append(PartCheck(EVALUATION_FILE, "not hashed", "valid; every `featurelens evaluate` rewrites it"))
        except ModelFolderError as exc:
            checks.append(PartCheck(EVALUATION_FILE, "damaged", f"{exc} (it does not stop the model from loading)"))
    return checks


def accept_folder(folder: str | os.PathLike[str]) -> list[PartCheck]:
    """Record the current hashes of ``folder`` once every part passes its checks (weights readable,
    finite and fitting the spec; history and snapshots intact); returns the checks made before.

    A damaged part is a :class:`ModelFolderError` and nothing is written: repair it, or delete a
    damaged ``history.json`` (and a snapshots file with its ``"snapshots"`` entry), then accept again.
    ``evaluation.json`` is not hashed and not needed.
    """
    folder = Path(folder)
    checks = verify_folder(folder)
    broken = [c for c in checks if c.file != EVALUATION_FILE and not c.usable
              and not (c.file == HISTORY_FILE and c.status == "missing")]  # a history deleted on purpose
    if broken:
        first = broken[0]
        raise ModelFolderError(f"cannot accept {folder}: {first.file} is {first.status} ({first.detail}); repair it "
                               "or, for a history or snapshots file, delete it (and, for snapshots, the 'snapshots' "
                               f"entry of {META_FILE}), then accept again")
    info = read_description(folder)
    files = [c.file for c in checks if c.file not in (META_FILE, EVALUATION_FILE) and c.status != "missing"]
    write_json(folder / META_FILE, with_hashes(info.raw, folder, files))
    return checks
