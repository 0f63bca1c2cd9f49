"""Content hashes of a model folder: recorded when it is written, compared when it is read.

``featurelens.json`` gets an ``"integrity"`` entry::

    "integrity": {"algorithm": "sha256",
                  "files": {"weights.safetensors": "<hex>", "history.json": "<hex>", ...},
                  "metadata": "<hex>"}

``files`` holds the sha256 of every file the folder is read from (weights, history, snapshots);
``metadata`` is the sha256 of ``featurelens.json``'s content itself, everything but that one
value, written as canonical JSON (sorted keys, no spaces), so re-indenting the file changes
nothing but editing a value does. ``evaluation.json`` is left out: every ``featurelens evaluate``
rewrites it.

The hashes catch accidental damage (a flipped byte, a truncated copy, an edit made by mistake).
They are no signature: whoever can write the folder can write new hashes too, which is exactly
what :func:`featurelens.accept_folder` (``featurelens verify --accept``) does on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurelens.checks import fail, require_object, shown
from featurelens.errors import ModelFolderError

KEY = "integrity"
ALGORITHM = "sha256"
#: A sha256 written as featurelens writes it: 64 lower-case hex digits.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    """The sha256 of ``data`` in hex."""
    return hashlib.sha256(data).hexdigest()


def digest_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes in hex, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_digest(meta: dict[str, Any]) -> str:
    """The sha256 of ``meta`` as canonical JSON, without ``integrity.metadata`` (the value it becomes)."""
    content = dict(meta)
    if isinstance(content.get(KEY), dict):
        content[KEY] = {k: v for k, v in content[KEY].items() if k != "metadata"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return digest_bytes(text.encode("utf-8", "surrogatepass"))


def with_hashes(meta: dict[str, Any], folder: Path, files: list[str]) -> dict[str, Any]:
    """``meta`` with a fresh ``integrity`` entry for ``files`` (names inside ``folder``), as it will be
    read back (the metadata digest is taken of the JSON round trip, so tuples and lists agree)."""
    recorded = {KEY: {"algorithm": ALGORITHM, "files": {name: digest_file(folder / name) for name in files}}}
    content = json.loads(json.dumps({**{k: v for k, v in meta.items() if k != KEY}, **recorded}))
    content[KEY]["metadata"] = metadata_digest(content)
    return content


@dataclass(frozen=True)
class Recorded:
    """The hashes a folder's ``featurelens.json`` holds."""

    files: dict[str, str]
    metadata: str


def recorded(meta: dict[str, Any], where: str) -> Recorded | None:
    """The checked ``integrity`` entry of ``meta``, or None for a folder written before hashes were."""
    if KEY not in meta:
        return None
    entry = require_object(ModelFolderError, f"{where}: {KEY}", meta[KEY], "the hashes recorded at save time")
    todo = "; the record of the hashes is damaged: `featurelens verify --accept MODEL_DIR` records them anew"
    if entry.get("algorithm") != ALGORITHM:
        fail(ModelFolderError, f"{where}: {KEY}.algorithm", entry.get("algorithm"), f"expected {ALGORITHM!r}{todo}")
    files = require_object(ModelFolderError, f"{where}: {KEY}.files", entry.get("files"), "file name -> sha256")
    for name, value in [*files.items(), ("metadata", entry.get("metadata"))]:
        if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
            raise ModelFolderError(f"{where}: {KEY}: the hash of {shown(name)} is {shown(value)}, not a sha256 "
                                   f"(64 hex digits){todo}")
    return Recorded({str(k): str(v) for k, v in files.items()}, str(entry["metadata"]))


def short(digest: str) -> str:
    """The first 12 hex digits, enough to tell two hashes apart in a message."""
    return digest[:12]
