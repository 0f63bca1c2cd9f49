import json
import re

import pytest

from featurelens import ConvBlock, DenseBlock, ModelSpec, SpecError, get_preset


def test_seed_preset_matches_the_learner_cnn():
    spec = get_preset("seed")
    assert [b.filters for b in spec.blocks] == [32, 64, 128]
    assert [b.dropout for b in spec.blocks] == [0.2, 0.3, 0.4]
    assert all(b.convs == 2 and b.kernel_size == 3 and b.pool_size == 2 and b.batch_norm for b in spec.blocks)
    assert spec.dense == (DenseBlock(128, dropout=0.5),)
    assert spec.num_classes == 10
    # The Keras version of this model reports 552,874 parameters (batch-norm statistics included).
    assert spec.parameter_count() == 552_874


def test_layer_names_are_stable_and_ordered():
    names = get_preset("seed").layer_names()
    assert names[:8] == ["block1_conv1", "block1_bn1", "block1_relu1", "block1_conv2", "block1_bn2",
                         "block1_relu2", "block1_pool", "block1_dropout"]
    assert names[-7:] == ["flatten", "dense1", "dense1_bn", "dense1_relu", "dense1_dropout",
                          "head_dense", "head_softmax"]
    assert len(names) == len(set(names))


def test_shapes_follow_the_blocks():
    layers = {layer.name: layer for layer in get_preset("seed").layers()}
    assert layers["block1_conv1"].output_shape == (32, 32, 32)
    assert layers["block2_pool"].output_shape == (8, 8, 64)
    assert layers["flatten"].output_shape == (2048,)
    assert layers["head_softmax"].output_shape == (10,)


def test_json_round_trip():
    spec = get_preset("seed")
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(again.to_json()) == json.loads(spec.to_json())


@pytest.mark.parametrize(("data", "field"), [
    ({"blocks": [{"filters": 0}]}, "blocks[0].filters"),
    ({"blocks": [{"filters": 8, "dropout": 1.5}]}, "blocks[0].dropout"),
    ({"blocks": [{"filters": 8}, {"filters": 8, "kernel_size": 4}]}, "blocks[1].kernel_size"),
    ({"blocks": [{"filters": 8, "filtres": 3}]}, "blocks[0]: unknown field 'filtres'"),
    ({"blocks": [{"filters": 8}], "dense": [{"units": -1}]}, "dense[0].units"),
    ({"blocks": [{"filters": 8}], "num_classes": 1}, "num_classes"),
    ({"blocks": [{"filters": 8}], "input_shape": [32, 32]}, "input_shape"),
    ({"blocks": []}, "blocks"),
    ({"dense": []}, "'blocks' is missing"),
    ({"blocks": [{"filters": 8, "batch_norm": "yes"}]}, "blocks[0].batch_norm"),
    ({"blocks": [{"filters": 8}], "name": "bad name!"}, "name"),
    ({"blocks": [{"filters": 8, "pool_size": 2}] * 6}, "blocks[5].pool_size"),
])
def test_validation_names_the_bad_field(data, field):
    with pytest.raises(SpecError) as info:
        ModelSpec.from_dict(data)
    assert field in str(info.value)


def test_direct_construction_is_validated():
    with pytest.raises(SpecError, match=r"ConvBlock\.filters"):
        ConvBlock(filters=2.5)
    with pytest.raises(SpecError, match="blocks"):
        ModelSpec(blocks=())


def test_invalid_json_is_explained():
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{blocks: ")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SpecError, match="seed, tiny"):
        get_preset("resnet")


def test_summary_mentions_every_layer_and_the_total():
    spec = get_preset("tiny")
    text = spec.summary()
    for name in spec.layer_names():
        assert name in text
    assert f"{spec.parameter_count():,}" in text


def test_gelu_activation_names_kinds_and_json():
    spec = ModelSpec(blocks=(ConvBlock(4, activation="gelu"), ConvBlock(4, convs=1)),
                     dense=(DenseBlock(8, activation="gelu"), DenseBlock(8)))
    kinds = {layer.name: layer.kind for layer in spec.layers()}
    assert kinds["block1_gelu1"] == kinds["block1_gelu2"] == kinds["dense1_gelu"] == "gelu"
    assert kinds["block2_relu1"] == kinds["dense2_relu"] == "relu"
    data = json.loads(spec.to_json())
    assert data["blocks"][0]["activation"] == "gelu" and "activation" not in data["blocks"][1]
    assert data["dense"][0]["activation"] == "gelu" and "activation" not in data["dense"][1]
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_relu_json_is_unchanged_and_old_json_loads():
    data = json.loads(get_preset("seed").to_json())
    assert all("activation" not in block for block in data["blocks"] + data["dense"])
    old = {"blocks": [{"filters": 4}], "dense": [{"units": 3}]}
    assert ModelSpec.from_dict(old).blocks[0].activation == "relu"


@pytest.mark.parametrize("where, data", [
    ("blocks[1].activation", {"blocks": [{"filters": 4}, {"filters": 4, "activation": "swish"}]}),
    ("dense[0].activation", {"blocks": [{"filters": 4}], "dense": [{"units": 3, "activation": "GELU"}]}),
])
def test_unknown_activation_is_named_by_its_field_path(where, data):
    with pytest.raises(SpecError, match=rf"^{re.escape(where)}: .* choose one of relu, gelu"):
        ModelSpec.from_dict(data)


def test_global_pooling_and_logit_scale_layers_and_json():
    spec = ModelSpec(blocks=(ConvBlock(4), ConvBlock(6, convs=1)), dense=(DenseBlock(5),), pooling="global_avg",
                     logit_scale=0.5)
    layers = {layer.name: layer for layer in spec.layers()}
    assert "flatten" not in layers
    assert layers["global_pool"].kind == "global_avg_pool" and layers["global_pool"].output_shape == (6,)
    assert layers["dense1"].options["in_features"] == 6
    assert layers["head_scale"].kind == "scale" and layers["head_scale"].options["scale"] == 0.5
    assert spec.layer_names()[-3:] == ["head_dense", "head_scale", "head_softmax"]
    assert ModelSpec.from_json(spec.to_json()) == spec
    maxed = ModelSpec(blocks=(ConvBlock(4),), pooling="global_max")
    assert {layer.kind for layer in maxed.layers()} >= {"global_max_pool"} and "head_scale" not in maxed.layer_names()
    data = json.loads(get_preset("seed").to_json())  # the defaults stay implicit: same JSON, same names
    assert "pooling" not in data and "logit_scale" not in data
    assert "flatten" in get_preset("seed").layer_names()


@pytest.mark.parametrize("field, value, message", [
    ("pooling", "average", "choose one of flatten, global_max, global_avg"),
    ("logit_scale", 0, "must be a number > 0"),
    ("logit_scale", -1.0, "must be a number > 0"),
    ("logit_scale", float("nan"), "must be a number > 0"),
    ("logit_scale", True, "must be a number > 0"),
    ("logit_scale", "1/9", "must be a number > 0"),
])
def test_pooling_and_logit_scale_are_validated(field, value, message):
    with pytest.raises(SpecError, match=rf"^{field}: .*{re.escape(message)}"):
        ModelSpec.from_dict({"blocks": [{"filters": 4}], field: value})


def test_fast_preset_spec_and_recipe():
    from featurelens.presets import preset_recipe

    spec = get_preset("fast")
    assert [b.filters for b in spec.blocks] == [64, 256, 256] and spec.dense == ()
    assert all(b.activation == "gelu" and b.convs == 2 and b.batch_norm and b.dropout == 0 for b in spec.blocks)
    assert spec.pooling == "global_max" and spec.logit_scale == pytest.approx(1 / 9)
    assert "block3_gelu2" in spec.layer_names() and "global_pool" in spec.layer_names()
    recipe = preset_recipe("fast")
    assert recipe is not None and recipe.optimizer == "sgd" and recipe.label_smoothing == 0.2
    assert recipe.early_stopping is None and recipe.reduce_lr is None and recipe.augment
    assert recipe.lr_schedule == "warmup_linear" and recipe.weight_averaging > 0
    assert preset_recipe("seed") is None and preset_recipe("tiny") is None
    with pytest.raises(SpecError, match="unknown preset"):
        preset_recipe("nope")
