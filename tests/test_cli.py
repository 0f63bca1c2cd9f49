"""The command line on a small synthetic CIFAR-10 copy."""

import json

import pytest

from featurelens.cli import main

pytestmark = pytest.mark.torch


def test_train_then_evaluate(cifar_root, tmp_path, capsys, isolated_env):
    out = tmp_path / "model"
    code = main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--no-download",
                 "--epochs", "2", "--batch-size", "16", "--validation-split", "0.2", "--device", "cpu",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"Model folder: {out}" in printed and "test loss" in printed
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 2 and history["stop_reason"] == "max_epochs"

    assert main(["evaluate", str(out), "--data-dir", str(cifar_root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 20 and set(result["per_class_accuracy"]) >= {"airplane", "truck"}
    assert json.loads((out / "evaluation.json").read_text())["accuracy"] == result["accuracy"]


def test_train_refuses_to_overwrite(cifar_root, tmp_path, capsys, isolated_env):
    (tmp_path / "model").mkdir()
    code = main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--out", str(tmp_path / "model")])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_spec_file_errors_are_reported(tmp_path, capsys, isolated_env):
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps({"blocks": [{"filters": 8, "dropout": 2}]}))
    assert main(["train", "--spec", str(bad), "--data-dir", str(tmp_path)]) == 2
    assert "blocks[0].dropout" in capsys.readouterr().err


def test_missing_data_without_download(tmp_path, capsys, isolated_env):
    assert main(["evaluate", str(tmp_path), "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "not a featurelens model folder" in capsys.readouterr().err


def test_unknown_backend_is_explained(tmp_path, capsys, isolated_env):
    assert main(["train", "--backend", "nope", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'nope'" in err and "Installed backends" in err


def test_demo_runs_end_to_end(cifar_root, tmp_path, capsys, isolated_env):
    code = main(["demo", "--data-dir", str(cifar_root), "--no-download", "--out", str(tmp_path / "demo"),
                 "--train-per-class", "8", "--epochs", "1", "--device", "cpu", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Outputs:" in printed
    assert (tmp_path / "demo" / "model" / "weights.safetensors").is_file()
    assert (tmp_path / "demo" / "model" / "evaluation.json").is_file()
    assert (tmp_path / "demo" / "model" / "snapshots.safetensors").is_file()  # for "how the filters formed"
    figures = {p.name for p in (tmp_path / "demo" / "figures").iterdir()}
    assert {"filters_over_training.png", "filters_over_training.gif", "similarity_over_training.png"} <= figures
    assert any(name.startswith("atlas_") for name in figures)


def test_spec_command_prints_json(capsys):
    assert main(["spec", "seed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "seed"


def test_visualize_writes_every_figure_and_an_index(cifar_root, tmp_path, capsys, isolated_env):
    out = tmp_path / "model"
    assert main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--epochs", "2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    assert main(["visualize", str(out), "--data-dir", str(cifar_root), "--out", str(tmp_path / "fig"),
                 "--image-index", "3"]) == 0
    files = sorted(p.name for p in (tmp_path / "fig").iterdir())
    expected = {"samples.png", "history.png", "hierarchy.png", "predictions.png", "topk.png",
                "confusion.png", "index.html", "filters_block1_conv1.png", "filters_block2_conv1.png",
                "feature_maps_block1_relu1.png", "feature_maps_block2_relu1.png"}
    assert expected <= set(files)
    page = (tmp_path / "fig" / "index.html").read_text()
    for name in files:
        if name.endswith(".png"):
            assert f'src="{name}"' in page
            assert (tmp_path / "fig" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["visualize", str(out), "--data-dir", str(cifar_root), "--image-index", "999"]) == 2
    assert "outside the 20 test images" in capsys.readouterr().err


def test_errors_are_one_line_unless_traceback_is_asked_for(tmp_path, capsys, isolated_env):
    assert main(["evaluate", str(tmp_path / "missing"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "is not a folder" in err
    from featurelens import ModelFolderError

    with pytest.raises(ModelFolderError):
        main(["--traceback", "evaluate", str(tmp_path / "missing"), "--no-download"])
