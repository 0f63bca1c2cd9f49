"""Datasets beyond CIFAR-10: CIFAR-100, MNIST, Fashion-MNIST, image folders, and datasets as plugins.

Every archive is a tiny synthetic one in the official format, written in tmp_path; downloads go to
``file://`` URLs of local files, so nothing here touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import featurelens as fl
from featurelens import DataError, SpecError
from featurelens.backends import BackendError, DatasetEntry, hookimpl, registry
from featurelens.data import cifar, idx
from featurelens.data.folder import UnreadableImagesWarning, is_image_folder

# -- synthetic files in the official formats -----------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, *, magic: bytes | None = None, shape: tuple[int, ...] | None = None,
              cut: int = 0, extra: bytes = b"") -> Path:
    """A gzipped IDX file; ``magic``/``shape`` override the header, ``cut`` drops payload bytes."""
    shape = array.shape if shape is None else shape
    header = (magic or b"\0\0\x08" + bytes([len(shape)])) + struct.pack(f">{len(shape)}I", *shape)
    payload = array.astype(np.uint8).tobytes()
    payload = payload[:len(payload) - cut] + extra
    with gzip.open(path, "wb") as f:
        f.write(header + payload)
    return path


def digit_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """28x28 images a small CNN can tell apart: class c is a bright bar at row 2c."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 50, (len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label:2 * label + 6, 3:25] = 220
    return images


def write_idx_folder(root: Path, folder: str = "mnist", n_train: int = 60, n_test: int = 20) -> Path:
    """root/folder with the four gzipped IDX files of a small MNIST-like dataset."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        write_idx(target / f"{prefix}-images-idx3-ubyte.gz", digit_images(labels, n))
        write_idx(target / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return target


def write_cifar100_folder(root: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """root/cifar-100-python with train, test and meta pickled like the official files."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = np.arange(n) % 100
        obj = {b"filenames": [f"{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
               b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) // 5 for v in fine],
               b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8)}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    meta = {b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def tar_folder(folder: Path, archive: Path) -> str:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return hashlib.md5(archive.read_bytes()).hexdigest()


def write_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (20, 24),
                       mode: str = "RGB", suffix: str = ".png") -> Path:
    """root/<class>/<i><suffix>: images of ``size`` (h, w) whose colour depends on the class."""
    from PIL import Image

    for c, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.full((*size, 3), (60 * c + 20, 200 - 60 * c, 10 * i % 256), np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}{suffix}")
    return root


@pytest.fixture
def fresh_plugins():
    registry.reset()
    yield
    registry.reset()


# -- the registry and load_dataset -------------------------------------------------------------------


def test_the_builtin_datasets_are_registered_through_the_hook(fresh_plugins):
    from importlib.metadata import entry_points

    assert "datasets" in {ep.name for ep in entry_points(group="featurelens")}
    datasets = fl.available_datasets()
    assert {"cifar10", "cifar100", "mnist", "fashion-mnist"} <= set(datasets)
    assert datasets["mnist"].input_shape == (28, 28, 1) and datasets["mnist"].num_classes == 10
    assert datasets["cifar100"].num_classes == 100 and datasets["cifar10"].input_shape == (32, 32, 3)


def test_unknown_dataset_lists_the_registered_ones(isolated_env):
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*cifar10, cifar100, fashion-mnist, mnist"):
        fl.load_dataset("imagenet")
    with pytest.raises(DataError, match="load_image_folder"):
        fl.load_dataset("image-folder")


def test_load_dataset_cifar10_is_load_cifar10(cifar_root, isolated_env):
    a = fl.load_dataset("cifar10", cifar_root, download=False, train_per_class=2, seed=1)
    b = fl.load_cifar10(cifar_root, download=False, train_per_class=2, seed=1)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert a.name == "cifar10" and a.input_shape == (32, 32, 3) and len(a.train_labels) == 20


class _ToyPlugin:
    """A third-party dataset: a few 8x8 two-class images, made up in memory."""

    @hookimpl
    def featurelens_register_datasets(self, register):
        register(DatasetEntry("toy", "two classes of 8x8 squares", _toy, (8, 8, 3), 2))


def _toy(*, data_dir, download, progress):
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    images = rng.integers(0, 40, (40, 8, 8, 3)).astype(np.uint8)
    images[labels == 1] += 180
    return fl.Dataset(images[:30], labels[:30], images[30:], labels[30:], ("dark", "bright"), "memory")


def test_a_third_party_dataset_is_loadable_by_name(fresh_plugins):
    registry.register_plugin(_ToyPlugin(), name="toy-plugin")
    assert "toy" in fl.available_datasets()
    data = fl.load_dataset("toy", test_per_class=2)
    assert data.name == "toy" and data.input_shape == (8, 8, 3)
    assert data.train_labels.dtype == np.int64 and np.bincount(data.test_labels).tolist() == [2, 2]
    registry.reset()
    assert "toy" not in fl.available_datasets()


def test_two_datasets_of_one_name_are_refused(fresh_plugins):
    class Again:
        @hookimpl
        def featurelens_register_datasets(self, register):
            register(DatasetEntry("mnist", "another mnist", _toy))

    registry.register_plugin(Again(), name="again")
    with pytest.raises(BackendError, match="two plugins register a dataset named 'mnist'"):
        fl.available_datasets()


def test_dataset_entries_are_checked():
    with pytest.raises(BackendError, match="reserved"):
        DatasetEntry("image-folder", "no", _toy)
    with pytest.raises(BackendError, match="lower-case"):
        DatasetEntry("My Data", "no", _toy)


def test_a_broken_or_malformed_plugin_dataset_is_a_data_error(fresh_plugins):
    def explode(**kwargs):
        raise RuntimeError("server on fire")

    def malformed(**kwargs):
        return fl.Dataset(np.zeros((4, 8, 8), np.float32), np.zeros(4), np.zeros((2, 8, 8, 3), np.uint8),
                          np.zeros(2), ("a", "b"))

    class Broken:
        @hookimpl
        def featurelens_register_datasets(self, register):
            register(DatasetEntry("explodes", "", explode))
            register(DatasetEntry("malformed", "", malformed))

    registry.register_plugin(Broken(), name="broken")
    with pytest.raises(DataError, match="'explodes' failed to load: RuntimeError: server on fire"):
        fl.load_dataset("explodes")
    with pytest.raises(DataError, match=r"'malformed' is malformed: train_images must be a uint8 \(N, H, W, C\)"):
        fl.load_dataset("malformed")


# -- CIFAR-100 -----------------------------------------------------------------------------------------


def test_cifar100_is_read_with_its_fine_labels(isolated_env, tmp_path):
    write_cifar100_folder(tmp_path / "data")
    data = fl.load_dataset("cifar100", tmp_path / "data", download=False)
    assert data.train_images.shape == (200, 32, 32, 3) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (100, 32, 32, 3)
    assert data.train_labels.dtype == np.int64 and data.train_labels.max() == 99
    assert len(data.class_names) == 100 and data.class_names[7] == "fine07"
    raw = pickle.loads((tmp_path / "data" / "cifar-100-python" / "train").read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(data.train_images[3, 5, 7], raw[b"data"][3].reshape(3, 32, 32)[:, 5, 7])
    subset = fl.load_dataset("cifar100", tmp_path / "data", download=False, train_per_class=1, test_per_class=1)
    assert np.bincount(subset.train_labels).tolist() == [1] * 100 and len(subset.test_labels) == 100


def test_cifar100_is_found_offline_in_every_place(isolated_env, tmp_path, monkeypatch):
    write_cifar100_folder(tmp_path / "env")
    monkeypatch.setenv("FEATURELENS_DATA_DIR", str(tmp_path / "env"))
    assert cifar.CIFAR100.files.find() == tmp_path / "env" / "cifar-100-python"
    monkeypatch.delenv("FEATURELENS_DATA_DIR")
    keras = tmp_path / "home" / ".keras" / "datasets" / "cifar-100-python-target"
    write_cifar100_folder(keras)  # where Keras 3 extracts it
    assert fl.load_dataset("cifar100", download=False).source == str(keras / "cifar-100-python")


def test_cifar100_download_checks_md5_and_extracts(isolated_env, tmp_path, monkeypatch):
    archive = tmp_path / "cifar-100-python.tar.gz"
    md5 = tar_folder(write_cifar100_folder(tmp_path / "src"), archive)
    remote = replace(cifar.CIFAR100.files.remotes[0], url=archive.as_uri(), md5="0" * 32)
    monkeypatch.setattr(cifar, "CIFAR100", replace(cifar.CIFAR100, files=replace(cifar.CIFAR100.files,
                                                                                 remotes=(remote,))))
    with pytest.raises(DataError, match="corrupted: md5"):
        fl.load_dataset("cifar100", tmp_path / "dest", progress=False)
    assert list((tmp_path / "dest").iterdir()) == []
    remote = replace(remote, md5=md5)
    monkeypatch.setattr(cifar, "CIFAR100", replace(cifar.CIFAR100, files=replace(cifar.CIFAR100.files,
                                                                                 remotes=(remote,))))
    data = fl.load_dataset("cifar100", tmp_path / "dest", progress=False)
    assert data.source == str(tmp_path / "dest" / "cifar-100-python") and len(data.train_labels) == 200
    assert (tmp_path / "dest" / "cifar-100-python.tar.gz").is_file()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / "train").write_bytes((f / "train").read_bytes()[:3000]), "train is truncated or corrupted"),
    (lambda f: (f / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"a"]}, protocol=2)),
     "lists 1 class names instead of 100"),
    (lambda f: (f / "test").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                     b"fine_labels": [0, 100]}, protocol=2)),
     r"labels outside 0\.\.99"),
    (lambda f: (f / "test").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                     b"labels": [0, 1]}, protocol=2)),
     "has no 'fine_labels' entry"),
    (lambda f: (f / "meta").unlink(), "missing meta"),
])
def test_damaged_cifar100_is_explained(isolated_env, tmp_path, damage, message):
    damage(write_cifar100_folder(tmp_path / "data"))
    with pytest.raises(DataError, match=message):
        cifar.CIFAR100.read(tmp_path / "data" / "cifar-100-python")


# -- MNIST and Fashion-MNIST --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "folder", "first_class"), [("mnist", "mnist", "0"),
                                                             ("fashion-mnist", "fashion-mnist", "T-shirt/top")])
def test_idx_datasets_are_read_offline(isolated_env, tmp_path, name, folder, first_class):
    write_idx_folder(tmp_path / "data", folder)
    data = fl.load_dataset(name, tmp_path / "data", download=False)
    assert data.train_images.shape == (60, 28, 28, 1) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (20, 28, 28, 1) and data.test_labels.dtype == np.int64
    assert data.class_names[0] == first_class and len(data.class_names) == 10 and data.name == name
    assert data.train_labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert data.train_images[3, 7, 10, 0] == 220 and data.train_images.flags.writeable
    subset = fl.load_dataset(name, tmp_path / "data", download=False, train_per_class=2, test_per_class=1)
    assert np.bincount(subset.train_labels).tolist() == [2] * 10 and len(subset.test_labels) == 10


def test_idx_datasets_are_found_through_the_environment_and_kerass_cache(isolated_env, tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "env", "mnist")
    monkeypatch.setenv("FEATURELENS_DATA_DIR", str(tmp_path / "env"))
    assert fl.load_dataset("mnist", download=False).source == str(tmp_path / "env" / "mnist")
    monkeypatch.setenv("FEATURELENS_DATA_DIR", str(tmp_path / "env" / "mnist"))  # the folder itself
    assert fl.load_dataset("mnist", download=False).source == str(tmp_path / "env" / "mnist")
    keras = write_idx_folder(tmp_path / "home" / ".keras" / "datasets", "fashion-mnist")
    assert fl.load_dataset("fashion-mnist", download=False).source == str(keras)


def test_no_download_says_where_it_looked_and_what_to_do(isolated_env, tmp_path):
    with pytest.raises(DataError) as info:
        fl.load_dataset("mnist", tmp_path / "empty", download=False)
    message = str(info.value)
    assert "no MNIST found" in message and str(tmp_path / "empty" / "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "FEATURELENS_DATA_DIR" in message
    with pytest.raises(DataError, match="no extracted CIFAR-100 found"):
        fl.load_dataset("cifar100", download=False)


def _mirror(monkeypatch, tmp_path, md5s=None):
    """Serve the synthetic MNIST files from a file:// folder in place of the official host."""
    source = write_idx_folder(tmp_path / "mirror", "mnist")
    md5s = md5s or tuple(hashlib.md5((source / n).read_bytes()).hexdigest() for n in idx.FILES)
    files = idx.idx_files("MNIST", "mnist", source.as_uri() + "/", md5s)
    monkeypatch.setattr(idx, "MNIST", replace(idx.MNIST, files=files))
    return source


def test_mnist_download_is_md5_checked(isolated_env, tmp_path, monkeypatch):
    _mirror(monkeypatch, tmp_path)
    data = fl.load_dataset("mnist", tmp_path / "dest", progress=False)
    assert data.source == str(tmp_path / "dest" / "mnist") and len(data.train_labels) == 60
    assert sorted(p.name for p in (tmp_path / "dest" / "mnist").iterdir()) == sorted(idx.FILES)


def test_mnist_download_with_a_wrong_md5_keeps_nothing(isolated_env, tmp_path, monkeypatch):
    _mirror(monkeypatch, tmp_path, md5s=("0" * 32,) * 4)
    with pytest.raises(DataError, match="corrupted: md5 .* instead of 0{32}"):
        fl.load_dataset("mnist", tmp_path / "dest", progress=False)
    assert list((tmp_path / "dest" / "mnist").iterdir()) == []


def test_the_official_sources_are_the_known_ones():
    assert idx.MNIST.files.remotes[0].url == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    assert idx.MNIST.files.remotes[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert idx.FASHION_MNIST.files.remotes[3].md5 == "bb300cfdad3c16e7a12a480ee83cd310"
    assert cifar.CIFAR100.files.remotes[0].md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def _images(n=3):
    return digit_images(np.arange(n) % 10)


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: write_idx(p, _images(), magic=b"\0\0\x08\x02", shape=(3, 28)), "magic number 0x00000802"),
    (lambda p: write_idx(p, _images(), magic=b"\x1f\x8b\x08\x03"), "magic number"),
    (lambda p: write_idx(p, _images(), magic=b"\0\0\x0b\x03"), "magic number 0x00000b03"),
    (lambda p: write_idx(p, np.zeros((3, 27, 28))), r"shape 3x27x28 .*expected Nx28x28"),
    (lambda p: write_idx(p, np.zeros((0, 28, 28))), "shape 0x28x28"),
    (lambda p: write_idx(p, _images(), cut=100), "is truncated: it holds 2,252 of the 2,352 bytes"),
    (lambda p: write_idx(p, _images(), extra=b"\0" * 5), "holds more than the 2,352 bytes"),
    (lambda p: write_idx(p, _images(), shape=(4_000_000, 28, 28)), "more than a .*-byte gzip file can hold"),
    (lambda p: p.write_bytes(gzip.compress(b"\0\0\x08")), "ends inside its magic number"),
    (lambda p: p.write_bytes(gzip.compress(b"\0\0\x08\x03\0\0")), "ends inside its header"),
    (lambda p: p.write_bytes(b"this is not gzip at all"), "truncated or corrupted .*BadGzipFile"),
    (lambda p: p.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 3, 28, 28) + bytes(2352))[:-12]),
     "truncated or corrupted"),
])
def test_corrupt_idx_files_are_data_errors(tmp_path, write, message):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write(path)
    with pytest.raises(DataError, match=message):
        idx.read_idx(path, (None, 28, 28))


def test_a_flipped_byte_in_the_gzip_stream_is_caught(tmp_path):
    path = write_idx(tmp_path / "x.gz", _images(50))
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF  # inside the CRC/size trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated or corrupted"):
        idx.read_idx(path, (None, 28, 28))


def test_labels_and_images_must_pair_up(isolated_env, tmp_path):
    folder = write_idx_folder(tmp_path / "data", "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(19) % 10)
    with pytest.raises(DataError, match="20 images but t10k-labels-idx1-ubyte.gz 19 labels"):
        fl.load_dataset("mnist", tmp_path / "data", download=False)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(20, 10))
    with pytest.raises(DataError, match=r"label 10, outside 0\.\.9"):
        fl.load_dataset("mnist", tmp_path / "data", download=False)


# -- image folders --------------------------------------------------------------------------------------


def test_an_image_folder_is_resized_split_and_labelled(tmp_path):
    root = write_image_folder(tmp_path / "pics", {"dogs": 10, "cats": 10, "birds": 5}, size=(20, 24))
    data = fl.load_image_folder(root, size=(16, 12), seed=3)
    assert data.class_names == ("birds", "cats", "dogs")  # sorted
    assert data.train_images.shape[1:] == (16, 12, 3) and data.train_images.dtype == np.uint8
    assert np.bincount(data.test_labels).tolist() == [1, 2, 2] and len(data.train_labels) == 20
    assert data.name == "image-folder" and data.source == str(root)
    cats = data.train_images[data.train_labels == 1]
    assert (cats[..., 0] == 80).all() and (cats[..., 1] == 140).all()
    again = fl.load_image_folder(root, size=(16, 12), seed=3)
    np.testing.assert_array_equal(again.test_images, data.test_images)


def test_grayscale_and_other_formats(tmp_path):
    root = write_image_folder(tmp_path / "pics", {"a": 4, "b": 4}, mode="RGBA", suffix=".png")
    write_image_folder(root, {"a": 2}, mode="L", suffix=".JPG")
    write_image_folder(root, {"b": 2}, mode="P", suffix=".gif")
    write_image_folder(root, {"b": 1}, mode="RGB", suffix=".bmp")
    data = fl.load_image_folder(root, size=(28, 28), channels=1, test_fraction=0.25)
    assert data.train_images.shape[1:] == (28, 28, 1) and len(data.train_labels) + len(data.test_labels) == 13


def test_unreadable_files_are_skipped_and_listed(tmp_path):
    root = write_image_folder(tmp_path / "pics", {"a": 5, "b": 5})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "b" / "notes.txt").write_text("ignored: not an image suffix")
    with pytest.warns(UnreadableImagesWarning, match=r"skipped 1 unreadable file\(s\).*broken\.png"):
        data = fl.load_image_folder(root)
    assert len(data.train_labels) + len(data.test_labels) == 10


def test_a_class_without_readable_images_is_an_error(tmp_path):
    root = write_image_folder(tmp_path / "pics", {"a": 5, "b": 5})
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"no readable image in the class folder\(s\) c \(unreadable: .*x\.jpg"):
        fl.load_image_folder(root)


def test_train_and_test_folders_are_the_split(tmp_path):
    write_image_folder(tmp_path / "pics" / "train", {"x": 3, "y": 4})
    write_image_folder(tmp_path / "pics" / "test", {"x": 1, "y": 2})
    data = fl.load_image_folder(tmp_path / "pics", size=(8, 8))
    assert data.class_names == ("x", "y") and len(data.train_labels) == 7
    assert data.test_labels.tolist() == [0, 1, 1]
    write_image_folder(tmp_path / "pics" / "test", {"z": 1})
    with pytest.raises(DataError, match="class folder.*z.*lacks"):
        fl.load_image_folder(tmp_path / "pics")


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"channels": 2}, fl.InputError, "channels=2"),
    ({"size": (0, 8)}, fl.InputError, "two integers >= 1"),
    ({"test_fraction": 0}, fl.InputError, "test_fraction=0"),
])
def test_image_folder_arguments_are_checked(tmp_path, kwargs, error, message):
    root = write_image_folder(tmp_path / "pics", {"a": 2, "b": 2})
    with pytest.raises(error, match=message):
        fl.load_image_folder(root, **kwargs)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        fl.load_image_folder(tmp_path / "missing")
    write_image_folder(tmp_path / "one", {"only": 3})
    with pytest.raises(DataError, match="1 class folder.*at least two"):
        fl.load_image_folder(tmp_path / "one")
    write_image_folder(tmp_path / "few", {"a": 1, "b": 1})
    with pytest.raises(DataError, match="too few"):
        fl.load_image_folder(tmp_path / "few")


def test_image_folders_are_recognised(tmp_path, cifar_root):
    assert is_image_folder(write_image_folder(tmp_path / "pics", {"a": 1, "b": 1}))
    write_image_folder(tmp_path / "split" / "train", {"a": 1})
    (tmp_path / "split" / "test").mkdir()
    assert is_image_folder(tmp_path / "split")
    assert not is_image_folder(cifar_root) and not is_image_folder(write_idx_folder(tmp_path / "m").parent)
    assert not is_image_folder(tmp_path / "missing")


def test_grayscale_images_display_in_gray():
    from featurelens import visualize as viz

    gray = np.arange(50, dtype=np.uint8).reshape(2, 5, 5, 1)
    shown = viz.to_display(gray)
    assert shown.shape == (2, 5, 5, 3) and np.array_equal(shown[..., 0], shown[..., 2])
    assert viz.to_display(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4, 3)


# -- presets for any input -------------------------------------------------------------------------------


def test_presets_take_the_input_shape_and_class_count():
    spec = fl.get_preset("seed", input_shape=(28, 28, 1), num_classes=100)
    assert spec.input_shape == (28, 28, 1) and spec.num_classes == 100 and spec.name == "seed"
    assert spec.layers()[0].options["in_channels"] == 1
    assert fl.get_preset("tiny") == fl.get_preset("tiny", (32, 32, 3), 10)


def test_a_preset_that_cannot_take_an_input_says_why():
    with pytest.raises(SpecError, match=r"the preset 'seed' cannot take 4x4x1 inputs: .*shrink the 1x1 feature map"):
        fl.get_preset("seed", input_shape=(4, 4, 1))
    with pytest.raises(SpecError, match="cannot take 1 classes: .*at least 2 classes"):
        fl.get_preset("tiny", num_classes=1)


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_lists_the_datasets(capsys, fresh_plugins):
    from featurelens.cli import main

    registry.register_plugin(_ToyPlugin(), name="toy-plugin")
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("cifar10", "cifar100", "mnist", "fashion-mnist", "image-folder", "toy"):
        assert name in out
    assert "28x28x1" in out


@pytest.mark.torch  # train resolves the backend before the data
def test_cli_refuses_image_options_for_a_named_dataset(tmp_path, capsys, isolated_env):
    from featurelens.cli import main

    assert main(["train", "--preset", "tiny", "--dataset", "mnist", "--channels", "1",
                 "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "--channels only apply to image folders" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--dataset", "image-folder"]) == 2
    assert "needs --data-dir PATH" in capsys.readouterr().err
    assert main(["train", "--preset", "seed", "--dataset", "image-folder", "--data-dir",
                 str(write_image_folder(tmp_path / "pics", {"a": 5, "b": 5})), "--image-size", "4", "4"]) == 2
    assert "the preset 'seed' cannot take 4x4x3 inputs" in capsys.readouterr().err


TRAIN = ["--preset", "tiny", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--no-progress"]


@pytest.mark.torch
def test_cli_trains_on_mnist_and_evaluates_on_what_it_trained_on(tmp_path, capsys, isolated_env):
    from featurelens.cli import main

    write_idx_folder(tmp_path / "data", "mnist")
    out = tmp_path / "model"
    assert main(["train", *TRAIN, "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mnist (28x28x1, 10 classes)" in printed and "test loss" in printed
    meta = json.loads((out / "featurelens.json").read_text())
    assert meta["spec"]["input_shape"] == [28, 28, 1]
    assert meta["train_config"]["dataset"] == {"name": "mnist", "data_dir": str((tmp_path / "data").resolve())}
    assert main(["evaluate", str(out), "--json", "--no-download"]) == 0  # no --dataset, no --data-dir
    assert json.loads(capsys.readouterr().out)["count"] == 20
    assert main(["visualize", str(out), "--out", str(tmp_path / "fig"), "--no-download"]) == 0
    assert (tmp_path / "fig" / "samples.png").is_file() and (tmp_path / "fig" / "filters_block1_conv1.png").is_file()
    assert main(["evaluate", str(out), "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--no-download"]) == 2  # another dataset than the model's: looked for, not found
    assert "no extracted CIFAR-10 found" in capsys.readouterr().err


@pytest.mark.torch
def test_cli_trains_on_an_image_folder(tmp_path, capsys, isolated_env):
    from featurelens.cli import main

    root = write_image_folder(tmp_path / "pics", {"red": 12, "green": 12, "blue": 12}, size=(30, 40))
    out = tmp_path / "model"
    # auto-detected: --data-dir holds class folders of images
    assert main(["train", *TRAIN, "--data-dir", str(root), "--image-size", "20", "20", "--channels", "1",
                 "--out", str(out)]) == 0
    assert "image-folder (20x20x1, 3 classes)" in capsys.readouterr().out
    record = json.loads((out / "featurelens.json").read_text())["train_config"]["dataset"]
    assert record == {"name": "image-folder", "data_dir": str(root.resolve()), "image_size": [20, 20],
                      "channels": 1, "test_fraction": 0.2, "split_seed": 0}
    assert main(["evaluate", str(out), "--json"]) == 0  # the same folder, size and held-out split
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 6 and set(result["per_class_accuracy"]) == {"blue", "green", "red"}
    other = tmp_path / "model2"
    assert main(["train", *TRAIN, "--dataset", "image-folder", "--data-dir", str(root), "--out", str(other)]) == 0
    assert "image-folder (32x32x3, 3 classes)" in capsys.readouterr().out


@pytest.mark.torch
def test_cli_trains_on_a_third_party_dataset(tmp_path, capsys, isolated_env, fresh_plugins):
    from featurelens.cli import main

    registry.register_plugin(_ToyPlugin(), name="toy-plugin")
    out = tmp_path / "model"
    assert main(["train", *TRAIN, "--dataset", "toy", "--out", str(out)]) == 0
    assert "toy (8x8x3, 2 classes)" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["per_class_accuracy"]) == {"dark", "bright"}
