"""``featurelens atlas`` and the atlas figures, on a tiny model of synthetic CIFAR-10."""

import json

import numpy as np
import pytest
from conftest import train_tiny_model_folder

from featurelens.cli import main
from featurelens.visualize.atlas import channel_atlas_figure, examples_in_context_figure, top_patches_figure

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained 1 epoch on a synthetic CIFAR folder (100 train, 20 test images)."""
    pytest.importorskip("torch")
    return train_tiny_model_folder(tmp_path_factory.mktemp("atlas"))


def test_atlas_writes_figures_arrays_and_summary(trained, tmp_path, capsys, isolated_env):
    model, data = trained
    out = tmp_path / "atlas"
    assert main(["atlas", str(model), "--data-dir", str(data), "--all", "--top", "4", "--steps", "0",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "test" and summary["images"] == 20 and summary["top"] == 4
    conv = list(summary["layers"])
    assert conv == ["block1_conv1", "block2_conv1"]  # the tiny preset's conv layers
    for name, entry in summary["layers"].items():
        assert entry["measured_at"].endswith(name.split("_")[1].replace("conv", "relu"))
        assert entry["receptive_field"]["exact"] is True
        arrays = np.load(out / f"{name}.npz", allow_pickle=False)
        channels = entry["channels"]
        assert arrays["indices"].shape == (channels, 4) and arrays["boxes"].shape == (channels, 4, 4)
        assert arrays["patches"].shape[:2] == (channels, 4)
        assert arrays["class_mean"].shape == (10, channels)
        assert arrays["kernels"].shape[0] == channels
        for figure in entry["figures"]:
            assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{name}: {channels} channels" in printed


def test_atlas_default_layers_and_train_split(trained, tmp_path, isolated_env):
    model, data = trained
    out = tmp_path / "default"
    assert main(["atlas", str(model), "--data-dir", str(data), "--split", "train", "--images", "30", "--steps", "0",
                 "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 30 and summary["split"] == "train"
    assert list(summary["layers"]) == ["block1_conv1", "block2_conv1"]  # each block's last conv layer


@pytest.mark.parametrize("flags, message", [
    (["--layer", "block1_relu1"], "not a conv layer"),
    (["--top", "0"], "--top"),
    (["--steps", "-1"], "--steps"),
])
def test_atlas_bad_flags(trained, tmp_path, capsys, isolated_env, flags, message):
    model, data = trained
    assert main(["atlas", str(model), "--data-dir", str(data), "--out", str(tmp_path / "x"), *flags]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_figures_from_arrays():
    rng = np.random.default_rng(0)
    patches = rng.uniform(0, 255, (6, 3, 5, 5, 3)).astype(np.float32)
    patches[0, :, :2] = np.nan
    never = np.array([0.1, 1.0, 0, 0, 0.5, 0.2], np.float32)
    fig = channel_atlas_figure("conv", [0, 1, 5], kernels=rng.normal(size=(6, 3, 3, 3)),
                               feature_vis=rng.uniform(size=(6, 8, 8, 3)), patches=patches,
                               mean=rng.uniform(size=6), never_active=never, class_mean=rng.uniform(size=(4, 6)),
                               class_names=["a", "b", "c", "d"])
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "DEAD" in texts and "channel 5" in texts
    top_patches_figure(patches, [0, 2], rng.uniform(size=(6, 3)), "conv")
    examples_in_context_figure(rng.integers(0, 255, (3, 16, 16, 3)), np.array([[0, 0, 4, 4]] * 3), np.ones(3))
    with pytest.raises(ValueError, match="disagree"):
        channel_atlas_figure("conv", kernels=np.zeros((3, 3, 3, 3)), mean=np.zeros(4))
    with pytest.raises(ValueError, match="does not exist"):
        channel_atlas_figure("conv", [9], mean=np.zeros(4))
