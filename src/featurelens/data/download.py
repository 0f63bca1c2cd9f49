"""Download a file with a progress bar and a checksum, atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from featurelens._atomic import atomic_path
from featurelens.errors import DataError

CHUNK = 1 << 20


def file_md5(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike[str], md5: str, progress: bool = True,
             timeout: float = 60.0, hint: str = "an extracted cifar-10-batches-py") -> Path:
    """Fetch ``url`` to ``dest`` and check its md5; ``dest`` appears only if both succeed.

    ``hint`` says what an offline user can put in ``FEATURELENS_DATA_DIR`` instead.
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"Downloading {dest.name}", disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, ValueError) as exc:
            raise DataError(
                f"could not download {url}: {exc}. If this machine is offline, fetch the file on "
                f"another one and put it at {dest}, or point FEATURELENS_DATA_DIR at a folder "
                f"that holds {hint}"
            ) from exc
        if digest.hexdigest() != md5:
            raise DataError(
                f"the download of {url} is corrupted: md5 {digest.hexdigest()} instead of {md5}; "
                "nothing was kept, run the command again"
            )
    return dest
