"""The explorer in a real browser (Playwright driving Debian's chromium), from disk and served live.

Each walk opens the page, chooses an image, a layer and a channel, switches the explanation method
and clicks a confusion cell, checking at each step that the right content appears and the page
logs no console error; the live walk adds an upload and a rejected one. Numbers the page shows are
compared with the Python API's. Screenshots are kept in ``$FEATURELENS_TEST_ARTIFACTS/explorer``
(default: pytest's tmp folder), printed at the end. Where ``FEATURELENS_REQUIRE_BROWSER=1`` (CI's
torch env) a missing chromium or playwright fails instead of skipping.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from browser import launch, missing, require
from PIL import Image
from test_explore import read_call

pytestmark = pytest.mark.torch
REQUIRE = os.environ.get("FEATURELENS_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = os.environ.get("FEATURELENS_TEST_ARTIFACTS")
    folder = Path(root) / "explorer" if root else tmp_path_factory.mktemp("explorer-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    print(f"\nexplorer screenshots: {folder}")


@pytest.fixture(scope="module")
def browser():
    require(missing(), REQUIRE)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def python_side(tiny_explorer):
    """The model, its data and the site's own description, to compare the page against."""
    import featurelens as fl

    site_dir, model_dir, data_dir = tiny_explorer
    return (fl.load_model(model_dir), fl.load_cifar10(data_dir, download=False, progress=False),
            read_call(site_dir / "data" / "site.js"))


class Walk:
    """One page under test: console errors collected, a screenshot per step."""

    def __init__(self, browser, artifacts: Path, name: str, width: int = 1280, height: int = 900):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.artifacts, self.name, self.step = artifacts, name, 0

    def shot(self, what: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.artifacts / f"{self.name}-{self.step:02d}-{what}.png"))
        assert not self.errors, f"console errors after {what}: {self.errors}"

    def ready(self, image_id: str) -> None:
        self.page.wait_for_selector(f"body[data-ready='{image_id}']", timeout=15_000)


def _walk(walk: Walk, python_side) -> None:
    """Image, prediction, layer, channel, method, confusion cell: each checked against the model."""
    from featurelens.visualize.feature_maps import strongest_channels

    model, data, site = python_side
    page = walk.page
    indices = site["sample"]["indices"]
    walk.ready(str(indices[0]))
    assert page.locator(".thumb").count() == len(indices)
    assert "tiny" in page.inner_text("#model-info")
    walk.shot("opened")

    chosen = indices[3]
    page.click(f".thumb[data-id='{chosen}']")
    walk.ready(str(chosen))
    probabilities = model.predict(data.test_images[[chosen]])[0]
    shown = page.locator("#top5 li").first
    assert shown.get_attribute("data-class") == site["class_names"][int(probabilities.argmax())]
    assert float(shown.get_attribute("data-probability")) == pytest.approx(float(probabilities.max()), rel=1e-4)
    assert page.inner_text("#pred-title").startswith(site["class_names"][int(probabilities.argmax())])
    walk.shot("image")

    layer = "block2_relu1"
    page.click(f".card[data-layer='{layer}']")
    maps = model.feature_maps(data.test_images[[chosen]], layer)[layer][0]
    assert page.locator("#channels .channel").count() == maps.shape[-1]
    best = int(strongest_channels(maps, 1)[0])
    assert page.get_attribute("#channels .channel.best", "data-channel") == str(best)
    walk.shot("layer")

    page.click(f"#channels .channel[data-channel='{best}']")
    page.wait_for_selector(f"body[data-channel-ready='{layer}:{best}']", timeout=15_000)
    assert page.inner_text("#channel-title") == f"{layer} · channel {best}"
    assert float(page.inner_text("[data-stat='mean']")) == pytest.approx(float(maps[..., best].mean()), rel=2e-3)
    assert page.locator(".patch").count() == 4 and page.locator(".atlas .vis canvas").count() == 1
    walk.shot("channel")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f"body[data-channel-ready='{layer}:{(best + 1) % maps.shape[-1]}']", timeout=15_000)
    page.keyboard.press("Escape")
    assert page.locator("#channel-panel").is_hidden()

    page.click("#methods [data-method='integrated_gradients']")
    page.wait_for_selector("#methods [data-method='integrated_gradients'].on")
    assert page.inner_text("#explain-caption").startswith("Integrated Gradients")
    assert "cm-signed" in page.get_attribute("#explain-map", "style")
    walk.shot("method")

    labels, predicted = site["sample"]["labels"], site["sample"]["predicted"]
    t, p = labels[0], predicted[0]
    in_cell = [str(i) for i, a, b in zip(indices, labels, predicted) if (a, b) == (t, p)]
    page.click(f"#confusion .cell[data-true='{t}'][data-pred='{p}']")
    listed = page.locator("#cell-list .thumb")
    assert sorted(listed.evaluate_all("nodes => nodes.map(n => n.dataset.id)")) == sorted(in_cell)
    assert page.inner_text("#cell-list h3") == f"{site['class_names'][t]} predicted as {site['class_names'][p]}"
    walk.shot("confusion")
    listed.first.click()
    walk.ready(in_cell[0])
    page.keyboard.press("ArrowRight")
    walk.ready(str(indices[indices.index(int(in_cell[0])) + 1]))
    walk.shot("keyboard")


def test_the_static_site_walk_from_disk(tiny_explorer, browser, artifacts, python_side):
    site_dir = tiny_explorer[0]
    walk = Walk(browser, artifacts, "static")
    started = time.perf_counter()
    walk.page.goto((site_dir / "index.html").as_uri())
    walk.ready(str(python_side[2]["sample"]["indices"][0]))
    opened = time.perf_counter() - started
    assert opened < 2.0, f"the page took {opened:.2f} s to show its first image"
    _walk(walk, python_side)
    phone = Walk(browser, artifacts, "static-phone", width=390, height=844)
    phone.page.goto((site_dir / "index.html").as_uri() + "#image=" + str(python_side[2]["sample"]["indices"][2]))
    phone.ready(str(python_side[2]["sample"]["indices"][2]))
    phone.shot("phone")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling


@pytest.fixture(scope="module")
def live_server(tiny_explorer, python_side):
    pytest.importorskip("flask", reason="the serve extra is not installed (pip install 'featurelens[serve]')")
    from waitress import create_server

    from featurelens.explore.records import make_plan
    from featurelens.explore.serve import make_app

    model = python_side[0]
    app = make_app(model, tiny_explorer[0], make_plan(model), max_bytes=200_000)
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/", app
    server.close()
    thread.join(timeout=5)


def test_the_live_server_answers_uploads_and_rejects_bad_ones(live_server, python_side):
    from featurelens.explore.serve import decode_upload

    _, app = live_server
    client = app.test_client()
    assert client.get("/data/live.js").data.startswith(b"FL.live = {")
    assert client.get("/../featurelens.json").status_code == 404
    photo = io.BytesIO()
    Image.fromarray(python_side[1].test_images[0]).resize((50, 40)).save(photo, format="PNG")
    answer = client.post("/api/upload", data=photo.getvalue(), content_type="image/png").get_json()
    expected = python_side[0].predict(decode_upload(photo.getvalue(), (32, 32, 3)))[0]
    assert np.allclose(answer["record"]["probabilities"], expected, rtol=1e-4, atol=1e-6)
    assert answer["record"]["sheet"].startswith("data:image/webp;base64,")
    too_big = client.post("/api/upload", data=b"x" * 300_000, content_type="image/png")
    assert too_big.status_code == 413 and "over the limit" in too_big.get_json()["error"]
    text = client.post("/api/upload", data=b"hello", content_type="image/png")
    assert text.status_code == 415 and "not an image" in text.get_json()["error"]


def test_the_live_walk_with_an_upload_and_a_rejected_one(live_server, browser, artifacts, python_side, tmp_path):
    from featurelens.explore.serve import decode_upload

    url, _ = live_server
    walk = Walk(browser, artifacts, "live")
    walk.page.goto(url)
    _walk(walk, python_side)
    photo = tmp_path / "my photo.png"
    Image.fromarray(python_side[1].test_images[5]).resize((64, 48)).save(photo)
    walk.page.set_input_files("#upload-input", str(photo))
    walk.ready("upload-1")
    expected = python_side[0].predict(decode_upload(photo.read_bytes(), (32, 32, 3)))[0]
    assert float(walk.page.locator("#top5 li").first.get_attribute("data-probability")) == pytest.approx(
        float(expected.max()), rel=1e-4)
    assert walk.page.locator(".thumb.upload").count() == 1
    assert "uploaded image" in walk.page.inner_text("#input-caption")
    walk.page.click(".card[data-layer='block1_relu1']")
    walk.shot("upload")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    walk.page.set_input_files("#upload-input", str(bad))
    walk.page.wait_for_selector("#upload-status.error", timeout=15_000)
    assert "Rejected" in walk.page.inner_text("#upload-status") and "not an image" in walk.page.inner_text(
        "#upload-status")
    walk.errors = [e for e in walk.errors if "415" not in e]  # the browser logs the refused request itself
    walk.shot("rejected")
    assert walk.page.locator(".thumb.upload").count() == 1
