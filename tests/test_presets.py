"""core/presets.py: every named recipe is a valid Config, and tools.run_local applies it under the -p overrides."""
from __future__ import annotations

import dataclasses

import pytest

from core.config import Config, ConfigError
from core.presets import PRESETS, preset_config, preset_parameters


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_names_config_fields_that_from_mapping_accepts(name):
    values = preset_parameters(name)
    names = {field.name for field in dataclasses.fields(Config)}
    assert set(values) <= names, sorted(set(values) - names)
    config = Config.from_mapping(values)
    assert {key: getattr(config, key) for key in values} == values
    assert preset_config(name) == config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_preset_repeats_a_default(name):
    defaults = Config()
    assert not {key for key, value in PRESETS[name].items() if getattr(defaults, key) == value}


def test_the_named_recipes():
    assert preset_config("kaggle") == Config()  # the Kaggle T4x2 recipe is Config's defaults
    local = preset_config("local")
    assert (local.model, local.epochs) == ("smallcnn", 4)
    cpu = preset_config("cpu-recipe")
    assert cpu == Config(model="fastcnn_wide", epochs=25, learning_rate=3e-3, cpu_bf16=True, parallel="folds",
                         workers=2)
    quick = preset_config("cpu-quick")
    assert quick == Config(model="fastcnn", epochs=14, learning_rate=3e-3, parallel="folds", workers=2, tta="none")


def test_preset_parameters_is_a_copy_and_unknown_names_list_the_known_ones():
    preset_parameters("local")["epochs"] = 99
    assert preset_parameters("local")["epochs"] == 4
    with pytest.raises(ConfigError, match="preset = 'fast': choose one of kaggle, local, cpu-recipe, cpu-quick"):
        preset_parameters("fast")


def test_run_local_applies_the_preset_then_the_p_overrides(tmp_path, monkeypatch):
    from tools import run_local

    seen = {}

    def fake_run_built(kernel, run_dir, params, **_):
        seen[kernel] = dict(params)
        return 1  # stop after the train notebook

    from tests.test_notebooks_e2e import write_tiny_competition

    monkeypatch.setattr(run_local, "run_built", fake_run_built)
    data = write_tiny_competition(tmp_path / "data", n_train=60, n_test=5)  # the runner reads train.csv first
    common = ["--runs", str(tmp_path / "runs"), "--data", str(data)]
    assert run_local.main(["--run", "x", *common]) == 1
    assert seen["train"]["epochs"] == 4 and "model" not in seen["train"]
    assert run_local.main(["--run", "y", *common, "--preset", "cpu-recipe", "-p", "epochs=2", "-p", "seed=7"]) == 1
    assert {k: seen["train"][k] for k in ("model", "epochs", "learning_rate", "workers", "seed")} == {
        "model": "fastcnn_wide", "epochs": 2, "learning_rate": 3e-3, "workers": 2, "seed": 7}


def test_run_local_refuses_an_unknown_preset_naming_the_known_ones(tmp_path, capsys):
    from tools import run_local

    with pytest.raises(SystemExit):
        run_local.main(["--run", "x", "--runs", str(tmp_path / "runs"), "--preset", "fast"])
    assert "preset = 'fast': choose one of kaggle, local, cpu-recipe, cpu-quick" in capsys.readouterr().err


def test_the_chain_of_defaults_config_then_family_recipe_then_preset_then_command_line():
    """Each link is written once and the later one wins: Config's default model (smallcnn), a family's recipe for
    the settings left None, a preset's values, then ``-p`` (here the mapping's last entries)."""
    assert Config().model == "smallcnn"
    local = preset_parameters("local")
    config = Config.from_mapping({**local, "model": "efficientnet_b0"})
    assert (config.input_size, config.epochs) == (56, local["epochs"])  # the family's input size; the preset's epochs
    command_line = Config.from_mapping({**local, "model": "efficientnet_b0", "epochs": "2", "input_size": "28"})
    assert (command_line.input_size, command_line.epochs) == (28, 2)
