"""``featurelens explain`` and the report's explanation figures, on a tiny model of synthetic CIFAR-10."""

import json

import numpy as np
import pytest
from conftest import train_tiny_model_folder

from featurelens.cli import main

pytestmark = pytest.mark.torch

METHOD_FILES = ["gradcam", "gradcam_plus_plus", "layercam", "scorecam", "saliency", "smoothgrad",
                "integrated_gradients", "occlusion"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained 1 epoch on a synthetic CIFAR folder (100 train, 20 test images)."""
    return train_tiny_model_folder(tmp_path_factory.mktemp("explain"))


def test_all_methods_write_maps_figures_and_summary(trained, tmp_path, capsys, isolated_env):
    model, data = trained
    out = tmp_path / "all"
    assert main(["explain", str(model), "--data-dir", str(data), "--method", "all", "--images", "0:4",
                 "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    for stem in METHOD_FILES:
        assert {f"{stem}.npy", f"{stem}.png"} <= files
        maps = np.load(out / f"{stem}.npy")
        assert maps.shape == (4, 32, 32) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert {"methods.png", "deletion_insertion.png", "all_classes.png", "summary.json"} <= files
    assert all((out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files if f.endswith(".png"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["indices"] == [0, 1, 2, 3] and len(summary["class_names"]) == 10
    assert set(summary["methods"]) == {"gradcam", "gradcam++", "layercam", "scorecam", "saliency", "smoothgrad",
                                       "integrated_gradients", "occlusion"}
    for name, entry in summary["methods"].items():
        assert entry["targets"] == summary["predicted"]  # default: the predicted class
        assert 0 <= entry["deletion_auc_mean"] <= 1 and 0 <= entry["insertion_auc_mean"] <= 1
        rho = entry["randomization_spearman_mean"]
        assert rho is None or -1 <= rho <= 1
        assert (entry["layer"] is not None) == (name in ("gradcam", "gradcam++", "layercam", "scorecam"))
    assert summary["methods"]["gradcam"]["layer"] == "block2_relu1"
    assert summary["methods"]["smoothgrad"]["options"] == {"samples": 16}
    assert summary["methods"]["integrated_gradients"]["options"] == {"steps": 32}
    assert "completeness_error_mean" in summary["methods"]["integrated_gradients"]
    assert sorted(summary["files"]) == sorted(files)


def test_mistakes_are_explained_for_both_classes(trained, tmp_path, capsys, isolated_env):
    model, data = trained
    out = tmp_path / "mistakes"
    assert main(["explain", str(model), "--data-dir", str(data), "--mistakes", "2", "--method", "gradcam",
                 "--target", "cat", "--out", str(tmp_path / "cat")]) == 0
    assert json.loads((tmp_path / "cat" / "summary.json").read_text())["methods"]["gradcam"]["targets"] == [3, 3]
    assert main(["explain", str(model), "--data-dir", str(data), "--mistakes", "2", "--method", "gradcam",
                 "--layer", "block1_conv1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["indices"]) == 2
    assert all(label != pred for label, pred in zip(summary["labels"], summary["predicted"]))
    entry = summary["methods"]["gradcam"]
    assert entry["layer"] == "block1_conv1" and entry["targets"] == summary["predicted"]
    assert {"gradcam.npy", "gradcam_true_class.npy", "mistakes_gradcam.png", "gradcam.png"} <= {
        p.name for p in out.iterdir()}
    assert np.load(out / "gradcam_true_class.npy").shape == (2, 32, 32)


@pytest.mark.parametrize(("flags", "message"), [
    (["--method", "lime"], "unknown method 'lime'"),
    (["--images", "5:2"], "selects none of the 20 test images"),
    (["--images", "a:b"], "--images must be START:STOP"),
    (["--images", "20"], "outside the 20 test images"),
    (["--target", "unicorn"], "is not a class of the model"),
    (["--target", "10"], "is not a class of the model"),
    (["--layer", "dense1"], "is not spatial"),
    (["--layer", "nope"], "nope"),
    (["--method", "saliency", "--layer", "block1_conv1"], "--layer applies to the CAM methods"),
    (["--mistakes", "0"], "--mistakes must be a positive"),
])
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys, isolated_env, flags, message):
    model, data = trained
    assert main(["explain", str(model), "--data-dir", str(data), "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_visualize_report_includes_the_explanation_figures(trained, tmp_path, isolated_env):
    model, data = trained
    assert main(["visualize", str(model), "--data-dir", str(data), "--out", str(tmp_path / "fig")]) == 0
    page = (tmp_path / "fig" / "index.html").read_text()
    assert "Where the model looks" in page and 'src="explanations.png"' in page
    assert (tmp_path / "fig" / "explanations.png").is_file()
    assert "Mistakes explained" in page and 'src="mistakes_explained.png"' in page
    assert page.index("Confusion matrix") < page.index("Where the model looks") < page.index("Mistakes explained")
