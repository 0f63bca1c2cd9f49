"""The explorer's data: the sample, the strip, the sheets, the uploads, and a site that matches its model."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurelens.errors import InputError
from featurelens.explore.sample import balanced_sample
from featurelens.explore.serve import UploadRejected, decode_upload
from featurelens.explore.sprites import LEVELS, Block, layout, paste, quantize
from featurelens.explore.strip import atlas_layers, strip_layers
from featurelens.presets import get_preset


def read_call(path: Path) -> dict:
    """The JSON a ``data/*.js`` file passes to ``FL.site/FL.image/FL.atlas``."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1:text.rindex(")")])


def test_strip_is_every_activation_and_pool_then_the_head_each_with_its_conv():
    strip = strip_layers(get_preset("seed").layers())
    names = [s.name for s in strip]
    assert names == ["block1_relu1", "block1_relu2", "block1_pool", "block2_relu1", "block2_relu2", "block2_pool",
                     "block3_relu1", "block3_relu2", "block3_pool", "dense1_relu", "head_softmax"]
    atlas = {s.name: s.atlas for s in strip}
    assert atlas["block1_pool"] == "block1_conv2" and atlas["block2_relu1"] == "block2_conv1"
    assert atlas["dense1_relu"] is None and atlas["head_softmax"] is None
    assert atlas_layers(strip) == [f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]


def test_balanced_sample_takes_every_class_and_mistakes_spread_over_predictions():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 100)
    predicted = np.where(rng.random(1000) < 0.3, rng.integers(0, 10, 1000), labels)
    chosen = balanced_sample(labels, predicted, 100, seed=1)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100 and (np.diff(chosen) > 0).all()
    assert np.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    wrong = chosen[predicted[chosen] != labels[chosen]]
    assert len(wrong) == 50
    cells = {(labels[i], predicted[i]) for i in wrong}
    assert len(cells) > 35  # round robin over the wrong predicted classes, not the commonest mistake only
    assert (balanced_sample(labels, predicted, 100, seed=1) == chosen).all()
    perfect = balanced_sample(labels, labels, 30)  # no mistakes: right answers fill the share
    assert np.bincount(labels[perfect], minlength=10).tolist() == [3] * 10
    with pytest.raises(InputError, match="positive number"):
        balanced_sample(labels, predicted, 0)


def test_quantized_tiles_land_where_the_layout_says_and_keep_their_range():
    rng = np.random.default_rng(0)
    maps = np.maximum(rng.normal(size=(8, 8, 5)), 0).astype(np.float32)
    tiles, lo, hi = quantize(maps)
    assert tiles.shape == (5, 8, 8) and (lo == 0).all() and np.allclose(hi, maps.max(axis=(0, 1)))
    blocks, width, height = layout({"a": (4, 4, 3), "b": (8, 8, 5)}, width=16)
    assert blocks["a"] == Block(0, 4, 4, 3, 3) and blocks["b"] == Block(4, 8, 8, 5, 2) and height == 4 + 3 * 8
    sheet = np.zeros((height, width), np.uint8)
    paste(sheet, blocks["b"], tiles)
    tile4 = sheet[4 + 2 * 8:4 + 3 * 8, 0:8]  # channel 4: third row, first column
    assert np.allclose(tile4 / 255 * hi[4], maps[..., 4], atol=hi[4] / 255)
    signed, lo_s, hi_s = quantize(np.array([[[-2.0], [1.0]]], np.float32), signed=True)
    assert lo_s[0] == -2 and hi_s[0] == 2 and signed[0].tolist() == [[0, 191]]


def _png(size=(40, 30), mode="RGBA", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 10, 10, 0) if mode == "RGBA" else (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_uploads_are_decoded_checked_and_fitted_to_the_model_input():
    image = decode_upload(_png(), (32, 32, 3))
    assert image.shape == (1, 32, 32, 3) and image.dtype == np.uint8
    assert (image == 255).all()  # a fully transparent image lies on white
    assert decode_upload(_png(mode="RGB", fmt="JPEG"), (28, 28, 1)).shape == (1, 28, 28, 1)
    for data, message in ((b"", "empty"), (b"%PDF-1.4 not an image", "not an image"),
                          (_png(fmt="TIFF", mode="RGB"), "TIFF images are not accepted"),
                          (_png(size=(4, 40)), "at least 8"), (_png(size=(300, 200)), "300x200 pixels, over the limit"),
                          (_noise_png(), "MB, over the limit")):
        with pytest.raises(UploadRejected, match=message):
            decode_upload(data, (32, 32, 3), max_bytes=20_000, max_pixels=50_000)


# -- a site written by ``featurelens explore`` from a tiny model folder ---------------------------------


@pytest.mark.torch
def test_the_site_holds_every_file_and_the_models_numbers(tiny_explorer):
    import featurelens as fl
    from featurelens.visualize.feature_maps import strongest_channels

    site_dir, model_dir, data_dir = tiny_explorer
    for name in ("index.html", "explorer.css", "explorer.js", "data/site.js", "data/live.js", "data/thumbs.png"):
        assert (site_dir / name).is_file(), name
    site = read_call(site_dir / "data" / "site.js")
    model = fl.load_model(model_dir)
    data = fl.load_cifar10(data_dir, download=False, progress=False)
    assert site["model"]["name"] == "tiny" and site["class_names"] == list(data.class_names)
    evaluation = model.evaluate(data.test_images, data.test_labels)
    assert site["evaluation"]["confusion"] == evaluation.confusion.tolist()
    assert site["history"]["epochs"] == [1]
    assert [layer["name"] for layer in site["layers"]] == ["block1_relu1", "block1_pool", "block2_relu1",
                                                             "block2_pool", "dense1_relu", "head_softmax"]
    indices = site["sample"]["indices"]
    assert len(indices) == 12 and site["source"]["weights_sha256"]
    images = data.test_images[indices]
    probabilities = model.predict(images)
    maps = model.feature_maps(images)
    blocks = site["sheet"]["blocks"]
    for k, index in enumerate(indices[:4]):
        record = read_call(site_dir / "data" / "images" / f"{index}.js")
        assert record["label"] == data.test_labels[index] and record["predicted"] == probabilities[k].argmax()
        assert np.allclose(record["probabilities"], probabilities[k], rtol=1e-4, atol=1e-6)
        sheet = np.asarray(Image.open(site_dir / record["sheet"]).convert("L"))  # WebP stores gray as RGB
        for name in ("block1_relu1", "block2_pool"):
            entry, block = record["layers"][name], blocks[name]
            expected = maps[name][k]
            assert np.allclose(entry["mean"], expected.mean(axis=(0, 1)), rtol=1e-4, atol=1e-6)
            assert int(np.argmax(entry["mean"])) == strongest_channels(expected, 1)[0]
            c = expected.shape[-1] - 1  # the last channel: its tile is the furthest from the block's origin
            row, col = divmod(c, block["cols"])
            y, x = block["y"] + row * block["h"], col * block["w"]
            tile = sheet[y:y + block["h"], x:x + block["w"]] / 255 * entry["hi"][c]
            assert np.allclose(tile, expected[..., c], atol=entry["hi"][c] / (LEVELS - 1) + 1e-3)
        assert set(record["explanations"]) == {"gradcam", "saliency", "smoothgrad", "integrated_gradients"}
        assert record["explanations"]["integrated_gradients"]["signed"] is True
    atlas = read_call(site_dir / site["atlas"][0]["file"])
    assert atlas["layer"] == "block1_conv1" and atlas["top"] == 4 and atlas["images"] == 20
    assert {"vis", "patches", "kernels"} <= set(atlas["sheets"])
    assert all((site_dir / sheet["file"]).is_file() for sheet in atlas["sheets"].values())


@pytest.mark.torch
def test_a_site_records_which_weights_it_was_written_for(tiny_explorer, tmp_path):
    from featurelens.cli_explore import site_source, weights_digest

    site_dir, model_dir, _ = tiny_explorer
    source = site_source(site_dir)
    assert source == {"model_dir": str(model_dir.resolve()), "weights_sha256": weights_digest(model_dir),
                      "methods": ["gradcam", "saliency", "smoothgrad", "integrated_gradients"]}
    assert site_source(tmp_path) is None  # --serve writes a site first where there is none


@pytest.mark.torch
def test_explore_refuses_bad_flags_and_a_site_over_its_budget(tiny_explorer, tmp_path, capsys, monkeypatch):
    from featurelens.cli import main

    _, model_dir, data_dir = tiny_explorer
    base = ["explore", str(model_dir), "--data-dir", str(data_dir), "--out", str(tmp_path / "site"), "--no-progress"]
    assert main([*base, "--images", "0"]) == 2
    assert "--images must be at least 1" in capsys.readouterr().err
    assert main([*base, "--methods", "gradcam,magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    assert main([*base, "--images", "12", "--max-mb", "0.05", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "over the size budget of 0.05 MB" in err and "at most about" in err
    assert not (tmp_path / "site").exists()  # nothing half-written
    monkeypatch.setitem(sys.modules, "flask", None)  # the serve extra is missing
    assert main([*base, "--serve"]) == 2
    assert 'pip install "featurelens[serve]"' in capsys.readouterr().err
