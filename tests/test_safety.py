"""Bad input gets a clear featurelens error: the cases issue 16 found, one test each, plus the
model folder's hashes, verify/accept, and folders written before hashes were recorded."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import strip_hashes, write_model_folder

import featurelens as fl
from featurelens import checks
from featurelens.atlas.snapshots import DESCRIPTION_FIELDS, Snapshots
from featurelens.config import EARLY_STOPPING_FIELDS, REDUCE_LR_FIELDS, TRAIN_FIELDS
from featurelens.history import EPOCH_FIELDS, HISTORY_FIELDS
from featurelens.modeldir import read_evaluation, read_folder
from featurelens.spec import CONV_FIELDS, DENSE_FIELDS, MAX_PARAMETERS, SPEC_FIELDS


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "m")


def edit_meta(folder: Path, change) -> Path:
    """Apply ``change`` to the parsed featurelens.json and write it back (its recorded hash goes stale)."""
    path = folder / "featurelens.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta, indent=2))
    return folder


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) < 1500, text
    return text


# -- specs ----------------------------------------------------------------------------------------


def test_a_huge_convs_count_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(fl.SpecError, match=r"^blocks\[0\]\.convs: 9223372036854775808 is invalid: must be >= 1 and "
                                           r"<= 16"):
        fl.ModelSpec.from_dict({"blocks": [{"filters": 8, "convs": 9223372036854775808}]})
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(("data", "message"), [
    ({"blocks": [{"filters": 40960}]}, r"blocks\[0\]\.filters: 40960 .* <= 4096"),
    ({"blocks": [{"filters": 8, "kernel_size": 99}]}, r"blocks\[0\]\.kernel_size: 99"),
    ({"blocks": [{"filters": 8}], "dense": [{"units": 10**6}]}, r"dense\[0\]\.units"),
    ({"blocks": [{"filters": 8}], "num_classes": 10**9}, "num_classes"),
    ({"blocks": [{"filters": 8}], "input_shape": [32, 10**5, 3]}, "input_shape.width"),
    ({"blocks": [{"filters": 8}] * 33}, "blocks: .* at most 32 items"),
    ({"blocks": [{"filters": 4096, "pool_size": 1}] * 3, "dense": [{"units": 4096}]}, "parameters is over the bound"),
    ({"blocks": [{"filters": 256, "convs": 16, "pool_size": 64}], "input_shape": [512, 512, 3]},
     "activation values, over the bound"),
    ({"blocks": [{"convs": 2}]}, r"blocks\[0\]: the field 'filters' is missing"),
    ({"blocks": [{"filters": True}]}, r"blocks\[0\]\.filters: True is invalid: expected an integer"),
    ({"blocks": [{"filters": 8, "dropout": float("nan")}]}, r"blocks\[0\]\.dropout: nan is invalid: must be a finite"),
])
def test_bounds_and_types_of_specs_name_the_field(data, message):
    with pytest.raises(fl.SpecError, match=message) as info:
        fl.ModelSpec.from_dict(data)
    one_line(info.value)


def test_the_size_bound_leaves_the_presets_far_below_it():
    assert max(fl.get_preset(n).parameter_count() for n in ("seed", "tiny", "fast")) < MAX_PARAMETERS / 100


@pytest.mark.parametrize("text", ["[" * 100_000, '{"blocks": [{"filters": ' + "9" * 5000 + "}]}", "{", "\ud800"])
def test_spec_json_that_python_cannot_read_is_a_spec_error(text):
    with pytest.raises(fl.SpecError, match="not valid JSON"):
        fl.ModelSpec.from_json(text)


def test_messages_show_huge_values_short():
    with pytest.raises(fl.SpecError) as info:
        fl.ModelSpec.from_dict({"blocks": [{"filters": 8}], "name": "x" * 1_000_000})
    assert len(one_line(info.value)) < 300
    assert checks.shown(10**5000) == "<a int>"


def test_every_field_of_every_input_kind_has_a_check():
    """Adding a field to a spec, config or history means adding its line (with its bound) to the table."""
    for cls, table in [(fl.ConvBlock, CONV_FIELDS), (fl.DenseBlock, DENSE_FIELDS), (fl.TrainConfig, TRAIN_FIELDS),
                       (fl.EarlyStopping, EARLY_STOPPING_FIELDS), (fl.ReduceLROnPlateau, REDUCE_LR_FIELDS),
                       (fl.History, HISTORY_FIELDS), (fl.EpochRecord, EPOCH_FIELDS)]:
        assert checks.unchecked_fields(cls, table) == [], cls.__name__
    assert checks.unchecked_fields(fl.ModelSpec, {**SPEC_FIELDS, "blocks": 0, "dense": 0, "input_shape": 0}) == []
    assert set(DESCRIPTION_FIELDS) <= set(Snapshots(layers=()).metadata())


# -- training configs -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["early_stopping", "reduce_lr"])
@pytest.mark.parametrize("value", [5, "yes", [1, 2], True])
def test_callback_settings_of_the_wrong_type_name_the_field(key, value):
    with pytest.raises(fl.ConfigError, match=rf"^{key}: .* is invalid: expected an object with the fields monitor"):
        fl.TrainConfig.from_dict({key: value})


def test_infinite_learning_rate_and_a_list_for_a_boolean_are_refused():
    config = json.loads('{"learning_rate": Infinity}')
    with pytest.raises(fl.ConfigError, match="^learning_rate: inf is invalid: must be a finite number"):
        fl.TrainConfig.from_dict(config)
    with pytest.raises(fl.ConfigError, match=r"^early_stopping\.restore_best_weights: \[\] is invalid: expected true"):
        fl.TrainConfig.from_dict({"early_stopping": {"restore_best_weights": []}})
    with pytest.raises(fl.ConfigError, match="early_stopping: unknown field 'patiense'"):
        fl.TrainConfig.from_dict({"early_stopping": {"patiense": 3}})
    with pytest.raises(fl.ConfigError, match="^epochs: 1000000 is invalid: must be >= 1 and <= 100000"):
        fl.TrainConfig(epochs=10**6)
    with pytest.raises(fl.ConfigError, match="^config: .* expected a JSON object"):
        fl.TrainConfig.from_dict([1])
    assert fl.TrainConfig(early_stopping={"patience": 3}).early_stopping == fl.EarlyStopping(patience=3)


# -- model folders: featurelens.json ---------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["normalization"].pop("std"), "normalization.std is missing"),
    (lambda m: m["normalization"].update(mean=0.5), r"normalization\.mean: 0\.5 is invalid: expected a list"),
    (lambda m: m["normalization"].update(mean=[1.0, 2.0], std=[1.0, 2.0]),
     r"normalization\.mean: .* 2 values for 3 input channels"),
    (lambda m: m["normalization"].update(std=[1.0, 0.0, 1.0]), r"normalization\.std\[1\]: 0\.0 is invalid"),
    (lambda m: m.update(weights=None), "weights: None is invalid"),
    (lambda m: m.update(weights="../outside.safetensors"), "plain name of a file inside the model folder"),
    (lambda m: m["class_names"].pop(), r"class_names: .* 9 names for the spec's 10 classes; give one name per class"),
    (lambda m: m["class_names"].__setitem__(1, "airplane"), "'airplane' is there twice"),
    (lambda m: m["spec"]["blocks"][0].update(convs=9223372036854775808), r"spec\.blocks\[0\]\.convs"),
    (lambda m: m.update(format_version="2"), "format_version: '2' is invalid"),
    (lambda m: m.update(backend=["torch"]), "backend"),
    (lambda m: m["train_config"]["dataset"].update(image_size=[32]), r"train_config\.dataset\.image_size"),
    (lambda m: m.update(snapshots={"file": "/etc/passwd"}), "snapshots.file"),
    (lambda m: m.update(integrity={"algorithm": "md5"}), "integrity.algorithm"),
])
def test_a_hand_edited_description_gets_a_folder_error_naming_the_field(folder, change, message):
    edit_meta(folder, change)
    with pytest.raises(fl.ModelFolderError, match=message) as info:
        read_folder(folder)
    assert "featurelens.json" in one_line(info.value)


def test_a_weights_file_linked_from_outside_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "weights.safetensors").rename(outside)
    (folder / "weights.safetensors").symlink_to(outside)
    with pytest.raises(fl.ModelFolderError, match="outside the model folder"):
        read_folder(folder, verify=False)
    (folder / "weights.safetensors").unlink()
    (folder / "weights.safetensors").symlink_to(folder / "weights.safetensors")  # a loop
    with pytest.raises(fl.ModelFolderError, match="is a broken link"):
        read_folder(folder, verify=False)


# -- model folders: hashes -------------------------------------------------------------------------


def flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_the_weights_are_caught_by_the_hash(folder):
    flip_byte(folder / "weights.safetensors")
    with pytest.raises(fl.ModelFolderError, match=r"weights\.safetensors changed after the model was saved .*"
                                                  r"featurelens verify --accept"):
        read_folder(folder)
    assert read_folder(folder, verify=False).weights  # a finite change: loads when asked to


def test_non_finite_weights_are_refused_with_the_names_of_the_tensors(folder):
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(folder / "weights.safetensors"))
    arrays["block2_conv1.kernel"][0, 0, 0, 0] = np.nan
    arrays["dense1.bias"][3] = np.inf
    save_file(arrays, str(folder / "weights.safetensors"))
    with pytest.warns(fl.ModelFolderWarning, match="before featurelens recorded content hashes"), \
            pytest.raises(fl.ModelFolderError, match="NaN or infinite values in block2_conv1.kernel, dense1.bias"):
        read_folder(strip_hashes(folder))
    with pytest.raises(fl.ModelFolderError, match="cannot accept .*NaN or infinite values in block2_conv1.kernel"):
        fl.accept_folder(folder)


def test_changed_metadata_is_caught_and_loads_with_verify_off(folder):
    edit_meta(folder, lambda m: m["class_names"].__setitem__(0, "plane"))
    with pytest.raises(fl.ModelFolderError, match="featurelens.json changed after the model was saved"):
        read_folder(folder)
    assert read_folder(folder, verify=False).class_names[0] == "plane"
    assert json.dumps(json.loads((folder / "featurelens.json").read_text()), indent=4)  # re-indenting: same content


def test_reindented_metadata_is_still_intact(folder):
    path = folder / "featurelens.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    assert read_folder(folder).class_names[0] == "airplane"


def test_verify_reports_each_part_and_accept_records_a_change_made_on_purpose(folder):
    from safetensors.numpy import load_file, save_file

    assert all(c.intact for c in fl.verify_folder(folder))
    arrays = load_file(str(folder / "weights.safetensors"))
    arrays["head_dense.bias"] += 1.0  # fine-tuned by hand
    save_file(arrays, str(folder / "weights.safetensors"))
    (folder / "history.json").write_text("{oops")
    status = {c.file: c.status for c in fl.verify_folder(folder)}
    assert status == {"featurelens.json": "ok", "weights.safetensors": "changed", "history.json": "damaged",
                      "evaluation.json": "not hashed"}
    with pytest.raises(fl.ModelFolderError, match="cannot accept .*history.json is damaged .*delete it"):
        fl.accept_folder(folder)
    (folder / "history.json").unlink()
    checks_before = fl.accept_folder(folder)
    assert {c.file: c.status for c in checks_before}["weights.safetensors"] == "changed"
    assert [c.status for c in fl.verify_folder(folder)] == ["ok", "ok", "not hashed"]
    np.testing.assert_array_equal(read_folder(folder).weights["head_dense.bias"], arrays["head_dense.bias"])


# -- folders written before hashes, damaged history and evaluation -----------------------------------


def test_a_folder_written_as_today_without_hashes_loads_with_one_warning(folder):
    hashed = read_folder(folder)
    strip_hashes(folder)
    with pytest.warns(fl.ModelFolderWarning, match="saved before featurelens recorded content hashes.*verify --accept"):
        legacy = read_folder(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_folder(folder)  # once per folder
    assert legacy.spec == hashed.spec and legacy.history == hashed.history
    assert all(np.array_equal(legacy.weights[k], hashed.weights[k]) for k in hashed.weights)


@pytest.mark.parametrize("damage", [
    "{oops", "[]", '{"epochs": 5}', '{"epochs": [{"epoch": 1}]}', '{"epochs": [], "best_epoch": 3}',
    '{"epochs": [{"epoch": 1, "loss": "x", "accuracy": 0, "learning_rate": 0, "seconds": 0}]}',
])
def test_a_damaged_history_costs_only_the_history(folder, damage):
    (folder / "history.json").write_text(damage)
    with pytest.warns(fl.ModelFolderWarning, match="history.json .*the model loads without it"):
        contents = read_folder(folder)
    assert contents.history is None and "history.json" in contents.problems
    assert contents.weights and contents.class_names[0] == "airplane"


def test_a_damaged_evaluation_is_reported_and_harmless(folder):
    assert read_evaluation(folder).count == 20
    (folder / "evaluation.json").write_text('{"loss": "low"}')
    with pytest.raises(fl.ModelFolderError, match="evaluation.json is damaged: .*featurelens evaluate"):
        read_evaluation(folder)
    assert read_folder(folder).weights
    assert {c.file: c.status for c in fl.verify_folder(folder)}["evaluation.json"] == "damaged"


def test_the_history_figure_says_what_is_wrong(folder):
    from featurelens.report_figures import history

    (folder / "history.json").write_text("{oops")
    with pytest.warns(fl.ModelFolderWarning):
        problems = read_folder(folder).problems

    class Stand:  # the figure reads only these two attributes of the model
        history = None
        folder_problems = problems

    class Context:
        model = Stand()

    figure = history(Context())
    texts = " ".join(t.get_text() for ax in figure.axes for t in ax.texts) + figure.get_suptitle()
    assert "Training history: not available" in texts and "history.json" in texts and "not valid JSON" in texts


def test_normalization_is_checked_when_built_directly():
    with pytest.raises(fl.InputError, match=r"normalization\.std\[0\]: 0.0 is invalid"):
        fl.Normalization((0.0,), (0.0,))
    with pytest.raises(fl.InputError, match="1 values for 2 means"):
        fl.Normalization((0.0, 1.0), (1.0,))


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(input_shape=[32, 32]), r"input_shape: \[32, 32\] is invalid: expected exactly 3 items"),
    (lambda m: m.update(input_shape=[32, 32, 0]), r"input_shape\[2\]: 0 is invalid"),
    (lambda m: m.update(architecture="Net"), "architecture: 'Net' is invalid: expected an object"),
    (lambda m: m.pop("architecture"), "lacks the 'architecture' entry"),
    (lambda m: m.update(class_names=["a", 3]), r"class_names\[1\]: 3 is invalid: expected a string"),
])
def test_a_wrapped_models_description_is_checked_too(tmp_path, change, message):
    from featurelens.modeldir import write_wrapped_folder

    folder = write_wrapped_folder(tmp_path / "w", backend="torch", backend_versions={}, architecture={"class": "Net"},
                                  input_shape=(32, 32, 3), weights={"fc.weight": np.ones((2, 3), np.float32)},
                                  normalization=fl.Normalization((0.0,) * 3, (1.0,) * 3), class_names=None,
                                  history=None, train_config=None)
    assert read_folder(folder).architecture == {"class": "Net"}
    edit_meta(folder, change)
    with pytest.raises(fl.ModelFolderError, match=message):
        read_folder(folder)


@pytest.mark.parametrize(("pickled", "message"), [
    (b"\x80\x02}r\x00\x00\x00\x80.", "has no 'data' entry"),  # a memo index of 2**31: no 16 GB memo
    (b"\x80\x02\x96\x00\x00\x00\x00\x00\x00\x00\x40.", "refusing a protocol-5 buffer opcode"),  # a 4 EiB bytearray
    (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.", "refusing to encode with 'zlib'"),
], ids=["memo-index-2**31", "bytearray8-4EiB", "zlib-codec"])
def test_a_damaged_cifar_batch_cannot_make_the_unpickler_allocate_or_decode_anything(tmp_path, pickled, message):
    from featurelens.data import cifar

    (tmp_path / "data_batch_1").write_bytes(pickled)
    started = time.perf_counter()
    with pytest.raises(fl.DataError, match=message):
        cifar.read_batch(cifar.CIFAR10, tmp_path / "data_batch_1")
    assert time.perf_counter() - started < 1
