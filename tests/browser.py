"""Headless Chromium for the tests that open pages: Debian's ``/usr/bin/chromium`` driven by Playwright
(whose own browser downloads are not used), with the flags that work in containers."""

from __future__ import annotations

import shutil

import pytest

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-quic", "--no-first-run"]


def missing() -> str | None:
    """Why no page can be opened here (chromium or playwright missing), or None."""
    if shutil.which("chromium") is None:
        return "Debian's chromium is missing (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


def require(problem: str | None, required: bool) -> None:
    """Fail (where the environment promises a browser) or skip when ``problem`` is set."""
    if problem:
        if required:
            pytest.fail(problem)
        pytest.skip(problem)


def launch(playwright):
    """Chromium launched through a ``sync_playwright()`` handle."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), args=LAUNCH_ARGS)
