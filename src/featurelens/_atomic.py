"""Write files and folders so that readers only ever see complete ones.

Everything lands under a temporary sibling name first and is moved into place with
:func:`os.replace`, so an interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featurelens.errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Temporary files are private (0600) while written; finished ones get the usual permissions.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


#: Files that mark a folder as featurelens's output (a model folder, a report, explanations, an atlas,
#: a training run folder): only such a folder, or an empty one, is replaced by :func:`atomic_dir`.
OUTPUT_MARKERS = ("featurelens.json", "index.html", "summary.json", "run.json")


def _check_replaceable(target: Path) -> None:
    """Refuse to replace a file, or a folder featurelens did not write (``--out ~/Documents``)."""
    if not target.is_dir():
        raise OutputExistsError(f"{target} is a file, not a folder; choose another output folder")
    if any(target.iterdir()) and not any((target / marker).is_file() for marker in OUTPUT_MARKERS):
        raise OutputExistsError(f"{target} holds files featurelens did not write (it has none of "
                                f"{', '.join(OUTPUT_MARKERS)}), which replacing it would delete; choose another "
                                "output folder or empty this one")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder; it replaces ``target`` only if the block succeeds.

    With ``overwrite=False`` an existing ``target`` is an error raised before any work is done.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise OutputExistsError(
            f"{target} already exists; choose another folder or pass overwrite=True "
            "(--overwrite on the command line) to replace it"
        )
    if target.exists():
        _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, trash / target.name)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
