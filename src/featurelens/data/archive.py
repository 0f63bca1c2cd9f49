"""Extract a tar archive safely and atomically.

Members must be plain files or folders under one expected top-level folder: absolute paths,
``..``, links and device files are refused before anything is written, and the folder appears in
its final place only once every member has been extracted.
"""

from __future__ import annotations

import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from featurelens.errors import DataError


def _check_member(member: tarfile.TarInfo, root: str, archive: Path) -> None:
    path = PurePosixPath(member.name)
    problem = None
    if path.is_absolute() or member.name.startswith(("/", "\\")) or ":" in path.parts[0]:
        problem = "has an absolute path"
    elif ".." in path.parts:
        problem = "climbs out of the target folder with '..'"
    elif not (member.isfile() or member.isdir()):
        problem = "is a link or special file"
    elif path.parts[0] != root:
        problem = f"is not inside {root}/"
    if problem:
        raise DataError(
            f"refusing to extract {archive}: the member {member.name!r} {problem}. The archive is "
            "not the expected dataset; delete it and download it again"
        )


def extract_tar(archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str], root: str) -> Path:
    """Extract ``archive`` (whose members all live under ``root``) to ``dest_dir/root``."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    final = dest_dir / root
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root}.", suffix=".tmp", dir=dest_dir))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, root, archive)
                if not members:
                    raise DataError(f"{archive} is empty; delete it and download it again")
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - Python < 3.10.12 without extraction filters
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:  # a damaged stream too
            raise DataError(
                f"{archive} is truncated or corrupted ({type(exc).__name__}: {exc}); delete it and download it again"
            ) from exc
        if not (tmp / root).is_dir():
            raise DataError(f"{archive} holds no {root}/ folder; it is not the expected dataset")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp / root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
