import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from core.config import Config, ConfigError
from core.data import IMAGE_SIDE
from core.families import Recipe, recipe_of


def test_from_mapping_picks_known_fields_and_coerces_strings():
    config = Config.from_mapping({"model": "efficientnet_b0", "epochs": "3", "augment": "false",
                                  "learning_rate": "1e-3", "unrelated": object(), "pretrained": None})
    assert config.model == "efficientnet_b0" and config.epochs == 3 and config.augment is False
    assert config.learning_rate == pytest.approx(1e-3)
    assert config.pretrained == "auto"  # None keeps the default


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (" AUTO ", "auto"), (True, True), (False, False),
                                             ("true", True), ("False", False), ("0", False)])
def test_pretrained_is_auto_true_or_false(value, expected):
    assert Config.from_mapping({"pretrained": value}).pretrained == expected


@pytest.mark.parametrize("value", ["maybe", 1, 0.5, "yes please"])
def test_pretrained_refuses_anything_else(value):
    with pytest.raises(ConfigError, match=r"pretrained = .*: use 'auto' \(timm models on Kaggle\), True or False"):
        Config.from_mapping({"pretrained": value})


@pytest.mark.parametrize("values, field", [
    ({"n_folds": 1}, "n_folds"), ({"fold_method": "GroupKFold"}, "fold_method"),
    ({"fold_method": "StratifiedGroupKFold"}, "group_column"), ({"epochs": 0}, "epochs"),
    ({"min_lr": 1.0}, "min_lr"), ({"scheduler": "step"}, "scheduler"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"parallel": "tpu"}, "parallel"), ({"folds_to_run": "0,7"}, "folds_to_run"), ({"epochs": "three"}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
])
def test_bad_values_name_the_setting(values, field):
    with pytest.raises(ConfigError, match=field):
        Config.from_mapping(values)


NUMERIC_FIELDS = [name for name, hint in typing.get_type_hints(Config).items()
                  if hint in (int, float, int | None, float | None)]


def test_the_recipe_settings_are_among_the_range_checked():
    assert {"input_size", "epochs", "learning_rate", "warmup_epochs", "weight_decay", "drop_path_rate"} <= \
        set(NUMERIC_FIELDS)


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@pytest.mark.parametrize("value", [-1, float("nan")])
def test_every_numeric_setting_has_its_range_checked(field, value):
    """The class, not a list: no numeric setting takes a negative number or NaN (ints refuse NaN when coerced)."""
    with pytest.raises(ConfigError, match=rf"^(parameter )?{field} = "):
        Config.from_mapping({field: value})


@pytest.mark.parametrize("values, fragment", [
    ({"rotate_deg": 180}, "rotate_deg = 180: use 0..45 degrees"), ({"zoom": 1.5}, "zoom = 1.5: use 0..0.5"),
    ({"shift": 0.8}, "shift = 0.8: use 0..0.3"), ({"weight_decay": -1}, "weight_decay = -1: use 0"),
    ({"eval_batch_size": 0}, "eval_batch_size = 0: must be a positive integer"),
    ({"learning_rate": float("inf")}, "learning_rate = inf: must be a positive number"),
])
def test_settings_that_would_run_but_must_not(values, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Config.from_mapping(values)


def test_fold_indices():
    assert Config().fold_indices() == [0, 1, 2, 3, 4]
    assert Config(folds_to_run="3, 1").fold_indices() == [3, 1]


def test_save_round_trip(tmp_path):
    config = Config(model="convnext_atto.d2_in1k", epochs=7)
    config.save(tmp_path / "config.json")
    assert Config.from_mapping(json.loads((tmp_path / "config.json").read_text())) == config


# ------------------------------------------------------------------------------------------- the model's recipe
def test_a_model_alone_brings_its_familys_recipe():
    config = Config.from_mapping({"model": "efficientnet_b0"})
    assert (config.input_size, config.drop_path_rate, config.epochs) == (56, 0.1, 40)
    assert set(config.recipe_sources().values()) == {"recipe"}
    vit = Config(model="vit_tiny_patch16_224")  # built directly, as tools and tests do: the same resolution
    assert (vit.batch_size, vit.learning_rate, vit.warmup_epochs, vit.weight_decay) == (32, 3e-4, 3.0, 0.05)
    assert (vit.rotate_deg, vit.zoom, vit.shift) == (5.0, 0.05, 0.05)  # lighter augmentation for the plain ViTs


def test_what_is_set_explicitly_wins_over_the_recipe_and_is_named_so():
    config = Config.from_mapping({"model": "efficientnet_b0", "epochs": "4", "input_size": 28, "learning_rate": None})
    assert (config.epochs, config.input_size, config.learning_rate) == (4, 28, 2e-3)
    assert config.recipe_sources() == {"input_size": "changed", "epochs": "changed", "batch_size": "recipe",
                                       "learning_rate": "recipe", "warmup_epochs": "recipe",
                                       "weight_decay": "recipe", "drop_path_rate": "recipe", "rotate_deg": "recipe",
                                       "zoom": "recipe", "shift": "recipe"}


def test_the_base_recipe_is_the_kaggle_recipe_of_our_cnns():
    assert (Config().epochs, Config().learning_rate, Config().weight_decay, Config().input_size) == (40, 2e-3, 1e-2, 28)
    assert (Config().batch_size, Config().rotate_deg, Config().zoom, Config().shift) == (128, 10.0, 0.10, 0.10)


def test_a_saved_config_reads_back_with_its_resolved_recipe(tmp_path):
    config = Config(model="tiny_vit_5m_224", epochs=3)
    config.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["warmup_epochs"] == 2.0 and saved["epochs"] == 3  # config.json records what the run used
    assert Config.from_mapping(saved) == config


@pytest.mark.parametrize("model", ["smallcnn", "efficientnet_b0"])
def test_an_older_config_without_the_new_settings_reads_as_it_ran(model):
    old = {"model": model, "epochs": 40, "learning_rate": 2e-3, "weight_decay": 1e-2}  # before input_size & co
    saved = Config.from_saved(old)
    assert (saved.input_size, saved.drop_path_rate, saved.warmup_epochs) == (28, 0.0, 1.0)  # what it ran with
    assert (saved.training_settings() == Config(model=model).training_settings()) == (model == "smallcnn")


@pytest.mark.parametrize("values, fragment", [
    ({"model": "vit_tiny_patch16_224", "input_size": 30}, "input_size = 30: a vit / eva02 model cuts it into 7-px"),
    ({"model": "smallcnn", "drop_path_rate": 0.2}, "drop_path_rate = 0.2: smallcnn has no residual branches"),
    ({"drop_path_rate": 1.0}, "drop_path_rate = 1: use 0 <= rate < 1"),
    ({"model": "efficientnet_b99"}, "model = 'efficientnet_b99' is neither"),
])
def test_a_recipe_setting_the_model_cannot_take_is_refused_early(values, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Config.from_mapping(values)


def test_building_a_config_imports_neither_torch_nor_timm():
    """The family recipes are plain data (core.families): a Config resolves them without the heavy imports."""
    code = ("import sys, core.config as c; c.Config(); c.Config(model='vit_tiny_patch16_224').resolved; "
            "print('timm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]


# ----------------------------------------------------------------------- what each setting is, said on its field
# The lists that were kept by hand before issue 29 (Config.TRAINING_KEYS, core.models.RECIPE_KEYS and
# core.config.LEGACY_VALUES), recorded here: the field metadata they are now derived from must give the same.
TRAINING_BEFORE_ISSUE_29 = {"model", "pretrained", "input_size", "drop_path_rate", "epochs", "max_steps", "batch_size",
                            "learning_rate", "min_lr", "weight_decay", "scheduler", "warmup_epochs", "label_smoothing",
                            "augment", "rotate_deg", "zoom", "shift", "seed", "n_folds", "fold_method", "group_column",
                            "swa_epochs", "pseudo_labels", "pseudo_threshold", "cpu_bf16"}
RECIPE_BEFORE_ISSUE_29 = ["input_size", "epochs", "batch_size", "learning_rate", "warmup_epochs", "weight_decay",
                          "drop_path_rate", "rotate_deg", "zoom", "shift"]
LEGACY_BEFORE_ISSUE_29 = {"input_size": 28, "drop_path_rate": 0.0, "warmup_epochs": 1.0, "cpu_bf16": False}


def test_saved_work_is_reused_under_the_same_training_settings_as_before():
    assert set(Config().training_settings()) == TRAINING_BEFORE_ISSUE_29
    changed = {"device": "cpu", "workers": 2, "amp": False, "eval_batch_size": 8, "tta": "none", "folds_to_run": "0"}
    assert Config(**changed).training_settings() == Config().training_settings()  # how it runs, not what it learns


def test_the_recipe_settings_left_none_take_the_familys_values_typed():
    config = Config.from_mapping({"model": "vit_tiny_patch16_224", "rotate_deg": 4, "epochs": "3"})
    assert list(config.recipe_sources()) == RECIPE_BEFORE_ISSUE_29
    family = recipe_of("vit_tiny_patch16_224")
    hints = typing.get_type_hints(Recipe)
    for key in RECIPE_BEFORE_ISSUE_29:
        value = getattr(config.resolved, key)
        assert value == getattr(config, key) == {"rotate_deg": 4.0, "epochs": 3}.get(key, getattr(family, key)), key
        assert type(value) is hints[key], key  # what code after __post_init__ reads: an int or a float, never None


def test_each_recipe_setting_is_a_config_field_the_user_may_leave_none():
    config_hints, recipe_hints = typing.get_type_hints(Config), typing.get_type_hints(Recipe)
    assert {key: config_hints[key] for key in recipe_hints} == {key: hint | None for key, hint in recipe_hints.items()}
    assert all(Config.__dataclass_fields__[key].default is None for key in recipe_hints)
    assert Config().input_size == IMAGE_SIDE  # the base recipe takes the digits as they are


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(Config) if f.name != "model"])
def test_a_saved_config_without_a_setting_reads_the_value_runs_had_before_it_existed(key):
    """manifest.json / config.json written before a setting existed ran with its legacy value, not today's recipe; a
    setting saved runs have always recorded is only missing from a hand-written config: it takes today's default."""
    made = Config(model="efficientnet_b0", warmup_epochs=2.0, cpu_bf16=True)  # its input_size, drop-path: 56, 0.1
    assert all(getattr(made, name) != legacy for name, legacy in LEGACY_BEFORE_ISSUE_29.items())  # the test can tell
    saved = made.to_dict()
    del saved[key]
    today = getattr(Config(model="efficientnet_b0"), key)
    assert getattr(Config.from_saved(saved), key) == LEGACY_BEFORE_ISSUE_29.get(key, today)
