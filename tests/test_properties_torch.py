"""Property-based tests with a backend: a damaged model folder that loads predicts finite
probabilities (or says it cannot: never a silent NaN). See ``test_properties.py`` for the rest."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import strip_hashes, synthetic_images, write_model_folder
from fuzzing import cases, damaged_bytes, hard_limit, mutated, outcome
from hypothesis import given
from hypothesis import strategies as st

import featurelens as fl
from featurelens.integrity import with_hashes

pytestmark = pytest.mark.torch

IMAGES = synthetic_images(np.arange(8))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A valid folder; loading it once here imports torch, so no case pays for that in its deadline."""
    folder = write_model_folder(tmp_path_factory.mktemp("template") / "m")
    fl.load_model(folder, backend="torch").predict(IMAGES)
    return folder


def load_and_predict(folder: Path, verify: bool) -> None:
    """Load ``folder`` and predict: a featurelens error anywhere, or finite probabilities."""
    def run() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fl.ModelFolderWarning)
            model = fl.load_model(folder, backend="torch", verify=verify)
        return model.predict(IMAGES)

    probabilities = outcome(fl.FeaturelensError, run)
    if probabilities is None:
        return
    assert probabilities.shape == (len(IMAGES), 10) and np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)


@cases(60, deadline_s=5)
@given(data=st.data())
def test_damaged_weights_load_and_predict_finitely_or_fail_clearly(template, data):
    with tempfile.TemporaryDirectory() as work, hard_limit(20):
        folder = Path(shutil.copytree(template, Path(work) / "m"))
        strip_hashes(folder)  # as a folder written before hashes: only the content checks stand guard
        path = folder / "weights.safetensors"
        path.write_bytes(data.draw(damaged_bytes(path.read_bytes())))
        load_and_predict(folder, verify=True)


@cases(60, deadline_s=5)
@given(data=st.data())
def test_edited_descriptions_load_and_predict_finitely_or_fail_clearly(template, data):
    meta = json.loads((template / "featurelens.json").read_text())
    edited = data.draw(mutated(meta))
    with tempfile.TemporaryDirectory() as work, hard_limit(20):
        folder = Path(shutil.copytree(template, Path(work) / "m"))
        if isinstance(edited, dict):  # rehashed, so the edit itself is what loading meets
            edited = with_hashes(edited, folder, ["weights.safetensors", "history.json"])
        (folder / "featurelens.json").write_text(json.dumps(edited))
        load_and_predict(folder, verify=True)
