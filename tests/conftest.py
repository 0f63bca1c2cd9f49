"""Shared fixtures: small synthetic CIFAR-10 copies in the official format."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import featurelens as fl
from featurelens.data.cifar10 import CLASS_NAMES, FOLDER
from featurelens.integrity import KEY as INTEGRITY_KEY

HAS_TORCH = importlib.util.find_spec("torch") is not None

if importlib.util.find_spec("keras") is not None:  # let Keras start on an installed framework
    from featurelens_keras.plugin import choose_keras_backend

    choose_keras_backend()
    collect_ignore: list[str] = []
else:  # environments without Keras (core, torch) do not collect its tests at all
    collect_ignore = [path.name for path in Path(__file__).parent.glob("test_*keras*.py")]


REQUIRE_ALL = os.environ.get("FEATURELENS_REQUIRE_ALL_BACKENDS") == "1"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="PyTorch is not installed (pip install 'featurelens[torch]')")
    for item in items:
        if "torch" in item.keywords and not HAS_TORCH:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """CI installs every backend (and the tensorboard extra), so there a skipped test is a failure, not a shrug."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    missing = [r for r in skipped if "not installed" in str(r.longrepr)]  # not e.g. "no CUDA GPU"
    if REQUIRE_ALL and missing and exitstatus == 0:
        print(f"\nFEATURELENS_REQUIRE_ALL_BACKENDS=1 but {len(missing)} test(s) were skipped "
              "because a backend (or the tensorboard extra) is not installed")
        session.exitstatus = 1


def synthetic_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Learnable 32x32 RGB images: each class has its own colour and stripe direction."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    base = np.array([[(37 * c) % 256, (91 * c + 40) % 256, (151 * c + 80) % 256] for c in range(10)], float)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((n, 32, 32, 3), np.float64)
    for i, label in enumerate(labels):
        stripes = np.sin((xx if label % 2 else yy) * (0.3 + 0.1 * label))[..., None] * 40
        images[i] = base[label] + stripes + rng.normal(0, 20, (32, 32, 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def batch_bytes(images: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    """A batch pickled like the official files: bytes keys, (N, 3072) planes, protocol 2."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    obj = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": planes,
           b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(obj, protocol=2)


def write_cifar_folder(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """Write root/cifar-10-batches-py with 5 training batches and a test batch."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, name in enumerate([*(f"data_batch_{b}" for b in range(1, 6)), "test_batch"]):
        labels = np.tile(np.arange(10), per_batch // 10 + 1)[:per_batch]
        rng.shuffle(labels)
        (folder / name).write_bytes(batch_bytes(synthetic_images(labels, seed + i), labels, name))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CLASS_NAMES],
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def train_tiny_model_folder(root: Path) -> tuple[Path, Path]:
    """A tiny model trained 1 epoch by ``featurelens train`` on a synthetic CIFAR folder (100 train,
    20 test images) under ``root``, in an isolated home: ``(model folder, data folder)``."""
    from featurelens.cli import main

    data = write_cifar_folder(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        mp.delenv("FEATURELENS_DATA_DIR", raising=False)
        mp.delenv("FEATURELENS_BACKEND", raising=False)
        assert main(["train", "--preset", "tiny", "--data-dir", str(data), "--epochs", "1", "--batch-size", "16",
                     "--device", "cpu", "--out", str(root / "model"), "--no-progress"]) == 0
    return root / "model", data


def tiny_snapshots(seed: int = 0):
    """Snapshots of the ``tiny`` preset's two conv layers at epochs 0 and 1, with random arrays."""
    from featurelens.atlas.snapshots import Snapshots

    rng = np.random.default_rng(seed)
    shapes = {"block1_conv1": (8, 3, 3, 3), "block2_conv1": (16, 3, 3, 8)}
    filters = {e: {k: rng.normal(size=s).astype(np.float16) for k, s in shapes.items()} for e in (0, 1)}
    maps = {e: {k: rng.normal(size=(4, 4, 4, s[0])).astype(np.float16) for k, s in shapes.items()} for e in (0, 1)}
    return Snapshots(layers=tuple(shapes), epochs=[0, 1], filters=filters, maps=maps, final_filters=filters[1],
                     final_maps=maps[1], final_epoch=1, probe=rng.normal(size=(4, 32, 32, 3)).astype(np.float32),
                     probe_indices=(0, 1, 2, 3),
                     read_at={"block1_conv1": "block1_relu1", "block2_conv1": "block2_relu1"})


def write_model_folder(folder: Path, *, snapshots: bool = False, seed: int = 0) -> Path:
    """A ``tiny`` model folder with random finite weights, a 2-epoch history and an evaluation, written by
    featurelens's own writer without any backend (it loads in every backend)."""
    from featurelens.evaluation import evaluate_probabilities
    from featurelens.modeldir import write_evaluation, write_folder
    from featurelens.weights import canonical_shapes

    spec = fl.get_preset("tiny")
    rng = np.random.default_rng(seed)
    weights = {name: rng.normal(0, 0.1, shape).astype(np.float32) for name, shape in canonical_shapes(spec).items()}
    weights.update({name: np.abs(w) + 1 for name, w in weights.items() if name.endswith("moving_variance")})
    history = fl.History(epochs=[fl.EpochRecord(1, 2.3, 0.1, 2.2, 0.12, 1e-3, 1.5),
                                 fl.EpochRecord(2, 2.0, 0.2, 2.1, 0.15, 1e-3, 1.4)], best_epoch=2,
                         backend="torch", device="cpu")
    write_folder(folder, backend="torch", backend_versions={"torch": "2"}, spec=spec, weights=weights,
                 normalization=fl.Normalization((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)), class_names=CLASS_NAMES,
                 history=history, train_config={**fl.TrainConfig(epochs=2).to_dict(),
                                                "dataset": {"name": "cifar10", "data_dir": None}},
                 snapshots=tiny_snapshots(seed) if snapshots else None)
    probabilities = rng.dirichlet(np.ones(10), size=20).astype(np.float32)
    write_evaluation(folder, evaluate_probabilities(probabilities, np.arange(20) % 10, CLASS_NAMES).to_dict())
    return folder


def strip_hashes(folder: Path) -> Path:
    """The folder's featurelens.json exactly as featurelens wrote it before hashes were recorded."""
    import json

    path = folder / "featurelens.json"
    meta = json.loads(path.read_text())
    del meta[INTEGRITY_KEY]
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def make_archive(path: Path, source_root: Path, extra: list[tarfile.TarInfo] | None = None) -> str:
    """Tar-gzip source_root/cifar-10-batches-py to path (plus extra members); return its md5."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source_root / FOLDER, arcname=FOLDER)
        for info in extra or []:
            data = b"x" * info.size
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A folder holding a small synthetic cifar-10-batches-py (100 train, 20 test images)."""
    write_cifar_folder(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No data folder, cache or backend choice leaks in from the user's environment."""
    monkeypatch.delenv("FEATURELENS_DATA_DIR", raising=False)
    monkeypatch.delenv("FEATURELENS_BACKEND", raising=False)
    monkeypatch.delenv("FEATURELENS_MAX_EPOCHS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def fit_data() -> tuple[np.ndarray, np.ndarray]:
    """160 learnable synthetic images, 16 per class, for training users' own models."""
    labels = np.tile(np.arange(10), 16)
    return synthetic_images(labels), labels


def short_cpu_config(**changes):
    """A 3-epoch CPU TrainConfig (batch 32) with ``changes`` applied."""
    return fl.TrainConfig(**{"epochs": 3, "batch_size": 32, "device": "cpu", **changes})


@pytest.fixture(scope="session")
def tiny_explorer(tmp_path_factory):
    """The explorer of a tiny model folder (12 test images, a 4-step atlas) written by
    ``featurelens explore``, shared by the explorer tests: ``(site folder, model folder, data folder)``."""
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'featurelens[torch]')")
    from featurelens.cli import main

    root = tmp_path_factory.mktemp("explorer")
    model_dir, data = train_tiny_model_folder(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))
        mp.delenv("FEATURELENS_DATA_DIR", raising=False)
        assert main(["explore", str(model_dir), "--data-dir", str(data), "--images", "12", "--atlas-images", "20",
                     "--steps", "4", "--top", "4", "--out", str(root / "site"), "--no-progress"]) == 0
    return root / "site", model_dir, data
