"""Every command answers bad arguments and bad files with exit status 2 and one line on stderr (no
traceback unless --traceback); `featurelens verify` checks and accepts model folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import strip_hashes, write_cifar_folder, write_model_folder

from featurelens.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad (and some good) inputs, by name."""
    root = tmp_path_factory.mktemp("inputs")

    def write(name: str, text: str) -> str:
        (root / name).write_text(text)
        return str(root / name)

    model = write_model_folder(root / "model")
    bad_meta = write_model_folder(root / "bad-meta")
    meta = json.loads((bad_meta / "featurelens.json").read_text())
    del meta["normalization"]["std"]
    (bad_meta / "featurelens.json").write_text(json.dumps(meta))
    (root / "empty").mkdir()
    (root / "precious").mkdir()
    (root / "precious" / "notes.txt").write_text("mine")
    return {
        "dir": str(root / "empty"), "missing": str(root / "nope.json"), "model": str(model),
        "bad_meta": str(bad_meta), "precious": str(root / "precious"),
        "not_json": write("not.json", "{oops"), "list": write("list.json", "[1, 2]"),
        "deep": write("deep.json", "[" * 100_000),
        "es_number": write("es.json", '{"early_stopping": 5}'),
        "lr_inf": write("lr.json", '{"learning_rate": Infinity}'),
        "restore_list": write("restore.json", '{"early_stopping": {"restore_best_weights": []}}'),
        "convs": write("convs.json", '{"blocks": [{"filters": 8, "convs": 9223372036854775808}]}'),
        "spec_types": write("types.json", '{"blocks": [{"filters": "8"}], "dense": {"units": 4}}'),
        "text": write("notes.txt", "hello"),
    }


CASES = [
    (["train", "--config", "{dir}"], "cannot read the config file"),
    (["train", "--config", "{missing}"], "cannot read the config file"),
    (["train", "--config", "{not_json}"], "not valid JSON"),
    (["train", "--config", "{list}"], "expected a JSON object"),
    (["train", "--config", "{deep}"], "nested too deeply"),
    (["train", "--config", "{es_number}"], "early_stopping: 5 is invalid"),
    (["train", "--config", "{lr_inf}"], "learning_rate: inf is invalid: must be a finite number"),
    (["train", "--config", "{restore_list}"], r"early_stopping\.restore_best_weights: \[\] is invalid"),
    (["train", "--spec", "{convs}"], r"blocks\[0\]\.convs: 9223372036854775808 is invalid"),
    (["train", "--spec", "{spec_types}"], r"blocks\[0\]\.filters: '8' is invalid"),
    (["train", "--spec", "{text}"], "not valid JSON"),
    (["train", "--spec", "{dir}"], "cannot read the spec file"),
    (["train", "--epochs", "x"], "argument --epochs: invalid int value: 'x'; `featurelens train --help`"),
    (["train", "--epochs", "-3"], "epochs: -3 is invalid"),
    (["train", "--lr", "nan"], "learning_rate: nan is invalid"),
    (["train", "--validation-split", "inf"], "validation_split: inf is invalid"),
    (["train", "--device", "tpu"], "device: 'tpu' is invalid"),
    (["train", "--batch-size", "0"], "batch_size: 0 is invalid"),
    (["train", "--preset", "resnet"], "unknown preset 'resnet'"),
    (["train", "--data-dir", "{text}", "--no-download"], "is a file, not a folder"),
    (["train", "--dataset", "image-folder", "--data-dir", "{dir}", "--image-size", "0", "0"], "two integers >= 1"),
    (["evaluate", "{missing}"], "is not a folder"),
    (["evaluate", "{text}"], "is not a folder"),
    (["evaluate", "{dir}"], "has no featurelens.json"),
    (["evaluate", "{bad_meta}"], r"normalization\.std is missing"),
    (["visualize", "{bad_meta}"], r"normalization\.std is missing"),
    (["explain", "{bad_meta}"], r"normalization\.std is missing"),
    (["atlas", "{model}", "--top", "0"], "--top must be from 1 to 256, got 0"),
    (["atlas", "{model}", "--steps", "99999999"], "--steps must be from 0 to 100,000"),
    (["atlas", "{model}", "--seed", "-1"], "--seed must be from 0"),
    (["convert", "{bad_meta}", "--to", "keras"], r"normalization\.std is missing"),
    (["compare", "{model}", "{missing}"], "is not a folder"),
    (["demo", "--epochs", "0"], "argument --epochs: 0 is outside 1..100,000"),
    (["demo", "--train-per-class", "x"], "argument --train-per-class: 'x' is not an integer"),
    (["spec", "nope"], "unknown preset 'nope'"),
    (["check-backend", "nope"], "unknown backend 'nope'"),
    (["verify", "{missing}"], "is not a folder"),
    (["verify", "{bad_meta}"], r"normalization\.std is missing"),
    (["nonsense"], "invalid choice: 'nonsense'"),
]


def run(args: list[str]) -> int:
    """``featurelens ARGS``'s exit status (argparse's errors exit through SystemExit)."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_arguments_and_files_get_one_line_and_status_2(argv, message, files, capsys, isolated_env):
    code = run([part.format(**files) for part in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err


def test_traceback_shows_the_rest(files, isolated_env):
    from featurelens.errors import ConfigError

    with pytest.raises(ConfigError, match="early_stopping"):
        main(["--traceback", "train", "--config", files["es_number"]])


@pytest.mark.torch
def test_a_folder_featurelens_did_not_write_is_never_replaced(files, capsys, isolated_env):
    assert main(["verify", files["model"]]) == 0
    data = write_cifar_folder(Path(files["dir"]).parent / "data", per_batch=10)
    code = main(["visualize", files["model"], "--data-dir", str(data.parent), "--out", files["precious"]])
    assert code == 2 and "holds files featurelens did not write" in capsys.readouterr().err
    assert (Path(files["precious"]) / "notes.txt").read_text() == "mine"


def test_verify_reports_changes_and_accept_records_them(tmp_path, capsys, isolated_env):
    folder = write_model_folder(tmp_path / "m")
    assert main(["verify", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{folder} is intact"
    strip_hashes(folder)
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "no hash recorded" in out and "featurelens verify --accept" in out
    assert main(["verify", "--accept", str(folder)]) == 0
    assert "Recorded the hashes" in capsys.readouterr().out
    assert main(["verify", str(folder)]) == 0
    (folder / "weights.safetensors").write_bytes(b"garbage")
    assert main(["verify", str(folder)]) == 1
    assert re.search(r"^weights\.safetensors +damaged: .*not a readable safetensors", capsys.readouterr().out, re.M)
    assert main(["verify", "--accept", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("featurelens verify: error: cannot accept") and "not a readable safetensors" in err
