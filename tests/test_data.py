"""The CIFAR-10 loader on synthetic archives in the official format."""

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_archive, write_cifar_folder

from featurelens import DataError, Normalization, load_cifar10, per_class_subset, train_val_split
from featurelens.data.cifar10 import FOLDER, download_cifar10, find_cifar10, read_cifar10_folder


def test_reads_the_official_layout(cifar_root):
    data = read_cifar10_folder(cifar_root / FOLDER)
    assert data.train_images.shape == (100, 32, 32, 3) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (20, 32, 32, 3)
    assert data.train_labels.dtype == np.int64 and set(data.train_labels) == set(range(10))
    assert data.class_names[0] == "airplane" and len(data.class_names) == 10


def test_pixels_land_in_hwc_order(tmp_path):
    folder = write_cifar_folder(tmp_path)
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    planes = raw[b"data"][0].reshape(3, 32, 32)
    data = read_cifar10_folder(folder)
    np.testing.assert_array_equal(data.train_images[0, 5, 7], planes[:, 5, 7])


def test_download_checks_md5_and_extracts(isolated_env, tmp_path):
    source = tmp_path / "src"
    write_cifar_folder(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_archive(archive, source)
    dest = tmp_path / "cache"
    folder = download_cifar10(dest, url=archive.as_uri(), md5=md5, progress=False)
    assert folder == dest / FOLDER
    assert read_cifar10_folder(folder).train_images.shape == (100, 32, 32, 3)
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_wrong_md5_keeps_nothing(isolated_env, tmp_path):
    source = tmp_path / "src"
    write_cifar_folder(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_archive(archive, source)
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupted"):
        download_cifar10(dest, url=archive.as_uri(), md5="0" * 32, progress=False)
    assert list(dest.iterdir()) == []


def test_unreachable_url_explains_offline_use(isolated_env, tmp_path):
    with pytest.raises(DataError, match="FEATURELENS_DATA_DIR"):
        download_cifar10(tmp_path / "cache", url=(tmp_path / "missing.tar.gz").as_uri(), md5="0" * 32,
                         progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_truncated_archive_is_refused_and_leaves_no_folder(isolated_env, tmp_path):
    source = tmp_path / "src"
    write_cifar_folder(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_archive(archive, source)
    cut = tmp_path / "cut" / "cifar-10-python.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    import hashlib
    md5 = hashlib.md5(cut.read_bytes()).hexdigest()
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match="truncated or corrupted"):
        download_cifar10(dest, url=cut.as_uri(), md5=md5, progress=False)
    assert not (dest / FOLDER).exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(("member", "why"), [
    (_member("../evil.txt"), "climbs out"),
    (_member(f"{FOLDER}/../../evil.txt"), "climbs out"),
    (_member("/tmp/evil.txt"), "absolute"),
    (_member(f"{FOLDER}/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
    (_member(f"{FOLDER}/hard", tarfile.LNKTYPE, "/etc/passwd"), "link"),
    (_member("elsewhere/file.txt"), f"not inside {FOLDER}"),
])
def test_unsafe_members_are_refused_before_writing(isolated_env, tmp_path, member, why):
    source = tmp_path / "src"
    write_cifar_folder(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_archive(archive, source, extra=[member])
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=why):
        download_cifar10(dest, url=archive.as_uri(), md5=md5, progress=False)
    assert not (dest / FOLDER).exists()
    assert not (tmp_path / "evil.txt").exists()


def test_truncated_batch_file_is_explained(cifar_root):
    path = cifar_root / FOLDER / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="data_batch_3 is truncated or corrupted"):
        read_cifar10_folder(cifar_root / FOLDER)


def test_corrupted_batch_file_is_explained(cifar_root):
    (cifar_root / FOLDER / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="test_batch is truncated or corrupted"):
        read_cifar10_folder(cifar_root / FOLDER)


def test_wrong_shape_is_explained(cifar_root):
    obj = {b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}
    (cifar_root / FOLDER / "data_batch_2").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match=r"expected \(N, 3072\) uint8"):
        read_cifar10_folder(cifar_root / FOLDER)


def test_a_pickle_that_would_run_code_is_refused(cifar_root, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (cifar_root / FOLDER / "batches.meta").write_bytes(pickle.dumps({b"label_names": Evil()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        read_cifar10_folder(cifar_root / FOLDER)
    assert not marker.exists()


def test_missing_file_is_named(cifar_root):
    (cifar_root / FOLDER / "data_batch_5").unlink()
    with pytest.raises(DataError, match="missing data_batch_5"):
        read_cifar10_folder(cifar_root / FOLDER)


def test_found_through_the_environment_variable(isolated_env, cifar_root, monkeypatch):
    monkeypatch.setenv("FEATURELENS_DATA_DIR", str(cifar_root))
    assert find_cifar10() == cifar_root / FOLDER
    monkeypatch.setenv("FEATURELENS_DATA_DIR", str(cifar_root / FOLDER))  # the folder itself works too
    assert find_cifar10() == cifar_root / FOLDER


def test_kerass_cache_is_found(isolated_env, tmp_path):
    write_cifar_folder(tmp_path / "home" / ".keras" / "datasets")
    assert find_cifar10() == tmp_path / "home" / ".keras" / "datasets" / FOLDER


def test_no_download_gives_a_clear_error(isolated_env, tmp_path):
    with pytest.raises(DataError, match="no extracted CIFAR-10 found"):
        load_cifar10(tmp_path / "empty", download=False)


def test_per_class_subsets(cifar_root):
    data = load_cifar10(cifar_root, train_per_class=3, test_per_class=1, download=False)
    assert np.bincount(data.train_labels).tolist() == [3] * 10
    assert np.bincount(data.test_labels).tolist() == [1] * 10


def test_validation_split_is_seeded_and_stratified():
    labels = np.repeat(np.arange(10), 20)
    images = np.arange(len(labels))
    a = train_val_split(images, labels, 0.1, seed=3)
    b = train_val_split(images, labels, 0.1, seed=3)
    c = train_val_split(images, labels, 0.1, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])
    assert np.bincount(a[3]).tolist() == [2] * 10
    assert len(set(a[0]) & set(a[2])) == 0 and len(a[0]) + len(a[2]) == 200


def test_subset_never_exceeds_available():
    labels = np.array([0, 0, 1])
    images, kept = per_class_subset(np.arange(3), labels, 5)
    assert kept.tolist() == [0, 0, 1]


def test_normalization_round_trip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    norm = Normalization.from_images(images)
    x = norm.apply(images)
    np.testing.assert_allclose(x.reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x.reshape(-1, 3).std(0), 1, atol=1e-4)
    np.testing.assert_allclose(norm.invert(x), images, atol=1e-3)
    assert Normalization.from_dict(norm.to_dict()) == norm


def test_synthetic_archive_helper_round_trips(tmp_path):
    # guards the helper itself: an archive it writes lists exactly the seven official files
    write_cifar_folder(tmp_path / "s")
    make_archive(tmp_path / "a.tgz", tmp_path / "s")
    with tarfile.open(tmp_path / "a.tgz") as tar:
        names = sorted(Path(n).name for n in tar.getnames() if "/" in n)
    assert names == sorted(["batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))])
    assert io is not None
