import pytest

from featurelens import ConfigError, EarlyStopping, ReduceLROnPlateau, TrainConfig


def test_defaults_follow_the_seed_recipe():
    config = TrainConfig()
    recipe = (config.batch_size, config.optimizer, config.learning_rate, config.validation_split)
    assert recipe == (64, "adam", 1e-3, 0.1)
    assert config.early_stopping.monitor == "val_loss" and config.early_stopping.restore_best_weights
    assert config.reduce_lr.monitor == "val_loss"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"validation_split": 1.0}, "validation_split"),
    ({"device": "tpu"}, "device"),
    ({"validation_split": 0.0}, "val_loss is monitored"),
])
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**kwargs)


def test_callback_configs_are_validated():
    with pytest.raises(ConfigError, match="reduce_lr.factor"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ConfigError, match="early_stopping.monitor"):
        EarlyStopping(monitor="val_acc")


def test_round_trip_through_dict():
    config = TrainConfig(epochs=3, early_stopping=None, reduce_lr=ReduceLROnPlateau(patience=2))
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match="learnin_rate"):
        TrainConfig.from_dict({"learnin_rate": 0.1})


def test_max_epochs_environment_cap(monkeypatch):
    monkeypatch.setenv("FEATURELENS_MAX_EPOCHS", "3")
    assert TrainConfig(epochs=50).effective_epochs() == 3
    assert TrainConfig(epochs=2).effective_epochs() == 2
    monkeypatch.setenv("FEATURELENS_MAX_EPOCHS", "many")
    with pytest.raises(ConfigError, match="FEATURELENS_MAX_EPOCHS"):
        TrainConfig().effective_epochs()
