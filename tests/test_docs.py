"""The documentation: every hook documented and tested, and the built site really shows its figures.

The site check needs a built site (``FEATURELENS_DOCS_HTML``, set by the ``docs`` tox env after
``sphinx-build``), Debian's ``chromium`` and the ``playwright`` package; the docs env sets
``FEATURELENS_REQUIRE_DOCS=1`` so that there it fails instead of skipping.
"""

import inspect
import os
import re
import shutil
from pathlib import Path

import pytest
from browser import launch, missing, require

from featurelens.backends import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("featurelens_")]
REQUIRE = os.environ.get("FEATURELENS_REQUIRE_DOCS") == "1"


def test_there_are_hooks():
    assert HOOKS == ["featurelens_register_backends", "featurelens_register_datasets", "featurelens_register_figures",
                     "featurelens_register_loggers", "featurelens_register_presets"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_documented_section(hook):
    page = (ROOT / "docs" / "hooks.rst").read_text()
    assert re.search(rf"^{hook}\n-{{{len(hook)}}}\n", page, re.M), f"docs/hooks.rst has no section for {hook}"
    assert f"autofunction:: featurelens.backends.hookspecs.{hook}" in page
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_exercised_by_a_test(hook):
    users = [p.name for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py" and hook in p.read_text()]
    assert users, f"no test implements {hook}"


def _site() -> Path:
    html = os.environ.get("FEATURELENS_DOCS_HTML")
    built = html and (Path(html) / "index.html").is_file()
    require(missing() if built else "the docs are not built (build them and set FEATURELENS_DOCS_HTML)", REQUIRE)
    return Path(str(html)).resolve()


@pytest.mark.parametrize("page", ["index.html", "auto_examples/plot_04_feature_maps.html"])
def test_built_pages_render_with_their_images(page, tmp_path):
    site = _site()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            view = browser.new_page(viewport={"width": 1280, "height": 1600})
            view.goto((site / page).as_uri())
            view.wait_for_load_state("load")
            title = view.title()
            images = view.evaluate("Array.from(document.querySelectorAll('article img'))"
                                   ".map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
            shot = tmp_path / (page.replace("/", "_") + ".png")
            view.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert "featurelens" in title
    assert shot.stat().st_size > 20_000
    if page.startswith("auto_examples"):
        figures = [img for img in images if "sphx_glr" in (img[0] or "")]
        assert len(figures) >= 4, images
        assert all(complete and width > 100 for _, complete, width in figures), figures
    out = os.environ.get("FEATURELENS_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)


def test_the_published_explorer_opens_from_disk_and_shows_a_channel(tmp_path):
    """The gallery model's explorer, linked from the landing page, works in the built site."""
    site = _site()
    explorer = site / "explorer" / "index.html"
    assert explorer.is_file(), "the gallery's explorer example wrote no explorer/index.html into the site"
    assert 'href="explorer/index.html"' in (site / "index.html").read_text(encoding="utf-8")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            view = browser.new_page(viewport={"width": 1366, "height": 900})
            view.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            view.on("pageerror", lambda e: errors.append(str(e)))
            view.goto(explorer.as_uri())
            view.wait_for_selector("body[data-ready]", timeout=15_000)
            model = view.inner_text("#model-info")
            view.click(".card[data-layer='block3_relu2']")
            view.click("#channels .channel.best")
            view.wait_for_selector("body[data-channel-ready]", timeout=15_000)
            patches = view.locator(".patch").count()
            shot = tmp_path / "explorer.png"
            view.screenshot(path=str(shot))
        finally:
            browser.close()
    assert not errors, errors
    assert "seed" in model and "test accuracy" in model and patches == 9
    out = os.environ.get("FEATURELENS_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)


def test_every_environment_variable_is_documented_in_one_table():
    sources = [*ROOT.glob("src/**/*.py"), *ROOT.glob("plugins/**/*.py"), *ROOT.glob("tests/*.py"),
               *ROOT.glob("gallery/*.py"), ROOT / "docs" / "conf.py", ROOT / "tox.ini", *ROOT.glob("scripts/*.sh")]
    used = {name for path in sources for name in re.findall(r"\b(?:FEATURELENS|KERAS)_[A-Z_]+\b", path.read_text())}
    page = (ROOT / "docs" / "environment.rst").read_text()
    undocumented = sorted(name for name in used if f"``{name}``" not in page)
    assert "FEATURELENS_BACKEND" in used and not undocumented, f"not in docs/environment.rst: {undocumented}"
