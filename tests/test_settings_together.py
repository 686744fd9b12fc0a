"""Config's settings checked together: a setting that acts only with another is refused, with one line naming both
and the fix, when that other would make it do nothing; a model name's pretrained tag is checked against timm's registry
(no download) before any work."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import timm

from core.config import Config, ConfigError
from core.data import PIXEL_COLUMNS, DataError, read_train
from core.models import describe_pretrained, has_pretrained_weights, model_spec, resolve_pretrained

NO_WEIGHTS = "coatnet_0_224"  # in timm's registry, with no pretrained weights (only an ".untrained" config)


def refused(values: dict) -> str:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(values)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    return message


# (refused settings, the fields the message names, the fix it gives, the same settings made consistent)
RULES = {
    "group_column without a group splitter": (
        {"group_column": "writer"}, ["group_column = 'writer'", "fold_method = 'StratifiedKFold'"],
        "set fold_method = 'StratifiedGroupKFold'", {"group_column": "writer", "fold_method": "StratifiedGroupKFold"}),
    "group_column with KFold": (
        {"group_column": "writer", "fold_method": "KFold"}, ["group_column = 'writer'", "fold_method = 'KFold'"],
        "or group_column = ''", {"fold_method": "KFold"}),
    "pseudo_threshold without pseudo_labels": (
        {"pseudo_threshold": 0.95}, ["pseudo_threshold = 0.95", "pseudo_labels"],
        "leave pseudo_threshold at 0.8", {"pseudo_threshold": 0.95, "pseudo_labels": "runs/first-infer"}),
    "pretrained on a timm model without weights": (
        {"pretrained": True, "model": NO_WEIGHTS}, ["pretrained = True", f"model = '{NO_WEIGHTS}'"],
        "timm.list_pretrained()", {"pretrained": False, "model": NO_WEIGHTS}),
    "cpu_bf16 on CUDA": (
        {"cpu_bf16": True, "device": "cuda"}, ["cpu_bf16 = True", "device = 'cuda'"],
        "set cpu_bf16 = False, or device = 'cpu'", {"cpu_bf16": True, "device": "cpu"}),
    "cpu_bf16 on one CUDA device": (
        {"cpu_bf16": True, "device": "cuda:1"}, ["cpu_bf16 = True", "device = 'cuda:1'"],
        "set cpu_bf16 = False", {"cpu_bf16": True, "device": "auto"}),
    "workers without launched processes": (
        {"workers": 2, "parallel": "none"}, ["workers = 2", "parallel = 'none'"],
        "set workers = 0, or parallel = 'folds'", {"workers": 2, "parallel": "folds"}),
    "workers with DataParallel": (
        {"workers": 2, "parallel": "dp"}, ["workers = 2", "parallel = 'dp'"],
        "set workers = 0", {"workers": 2, "parallel": "ddp"}),
    "DataParallel on a CPU": (
        {"parallel": "dp", "device": "cpu"}, ["parallel = 'dp'", "device = 'cpu'"],
        "set parallel = 'none'", {"parallel": "dp", "device": "auto"}),
    "warm-up without a warm-up scheduler": (
        {"warmup_epochs": 3, "scheduler": "CosineAnnealingLR"},
        ["warmup_epochs = 3", "scheduler = 'CosineAnnealingLR'"], "or warmup_epochs = 0",
        {"warmup_epochs": 0, "scheduler": "CosineAnnealingLR"}),
    "warm-up with a constant rate": (
        {"warmup_epochs": 2, "scheduler": "none"}, ["warmup_epochs = 2", "scheduler = 'none'"],
        "set scheduler = 'CosineAnnealingWithWarmupLR'", {"warmup_epochs": 2}),
    "rotation without augmentation": (
        {"rotate_deg": 15, "augment": False}, ["rotate_deg = 15", "augment = False"],
        "set augment = True, or rotate_deg = 0", {"rotate_deg": 0, "augment": False}),
    "zoom without augmentation": (
        {"zoom": 0.2, "augment": False}, ["zoom = 0.2", "augment = False"], "or zoom = 0", {"zoom": 0.2}),
    "shift without augmentation": (
        {"shift": 0.05, "augment": "false"}, ["shift = 0.05", "augment = False"], "or shift = 0",
        {"shift": 0.05, "augment": True}),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_a_setting_that_would_act_on_nothing_is_refused_naming_both_fields(rule):
    values, names, fix, consistent = RULES[rule]
    message = refused(values)
    for fragment in [*names, fix]:
        assert fragment in message, (rule, fragment, message)
    Config.from_mapping(consistent)  # the combination in which both act is accepted


# (accepted: a default, or a value that acts; refused: the same with a setting changed so that it acts on nothing)
DEFAULTS = [
    ({"device": "cpu"}, {"device": "cpu", "parallel": "dp"}),  # amp's default True acts only on CUDA: not "set"
    ({"scheduler": "none"}, {"scheduler": "none", "warmup_epochs": 2}),  # warmup_epochs left to the recipe
    ({"scheduler": "CosineAnnealingLR", "model": "tiny_vit_5m_224"},  # its family's recipe warms up for 2 epochs
     {"scheduler": "CosineAnnealingLR", "model": "tiny_vit_5m_224", "warmup_epochs": 3}),
    ({"augment": False}, {"augment": False, "shift": 0.2}),  # rotate_deg, zoom, shift left to the recipe
    ({"augment": False, "model": "vit_tiny_patch16_224"}, {"augment": False, "model": "vit_tiny_patch16_224",
                                                           "rotate_deg": 10}),  # smallcnn's value, not vit's
    ({"augment": False, "rotate_deg": 10}, {"augment": False, "rotate_deg": 11}),  # 10: smallcnn's recipe value
    ({"pseudo_threshold": 0.8}, {"pseudo_threshold": 0.7}),  # 0.8: the default
    ({"parallel": "auto", "workers": 2}, {"parallel": "none", "workers": 2}),  # auto launches on several GPUs
    ({"cpu_bf16": True}, {"cpu_bf16": True, "device": "cuda"}),  # device auto: the CPU when there is no GPU
    ({"pretrained": True, "model": "smallcnn"},  # digitkit's CNNs never load weights, and the run says so
     {"pretrained": True, "model": NO_WEIGHTS}),
]


@pytest.mark.parametrize("accepted, refused_values", DEFAULTS)
def test_a_default_never_counts_as_set(accepted, refused_values):
    Config.from_mapping(accepted)
    refused(refused_values)


def test_the_checks_apply_to_a_mapping_and_to_validate_alike():
    config = dataclasses.replace(Config(), group_column="writer")
    with pytest.raises(ConfigError, match="group_column = 'writer' only acts with a group splitter"):
        config.validate()


def test_a_saved_run_is_read_back_as_it_ran():
    """The rules refuse a new run, not the record of one made before them: completed_fold and the inference
    notebook read saved configs."""
    saved = Config(group_column="writer", workers=2, parallel="none", pseudo_threshold=0.9).to_dict()
    refused(saved)  # as a new run
    config = Config.from_saved(saved)
    assert (config.group_column, config.workers, config.pseudo_threshold) == ("writer", 2, 0.9)
    with pytest.raises(ConfigError, match="pretrained = 'maybe'"):  # each value is still checked
        Config.from_saved({**saved, "pretrained": "maybe"})


# --- timm names with a pretrained tag, checked against timm's registry (nothing is downloaded) ----------------------

@pytest.mark.parametrize("name", ["convnext_atto.d2_in1k", "resnet18.tv_in1k", "resnet18", "smallcnn"])
def test_a_misspelt_pretrained_tag_is_refused_before_any_work_with_the_close_tag(name):
    assert model_spec(name)["name"] == name  # the names in timm's registry pass
    Config.from_mapping({"model": name})
    assert timm.is_model("convnext_atto.d2_in1kk")  # timm itself lets it through, then fails in create_model
    message = refused({"model": "convnext_atto.d2_in1kk"})
    assert message.startswith("model = 'convnext_atto.d2_in1kk': 'd2_in1kk' is not one of timm's pretrained tags "
                              "for convnext_atto; did you mean 'convnext_atto.d2_in1k'?")
    assert "timm.list_pretrained('convnext_atto.*')" in message


def test_the_refusal_lists_the_tags_timm_holds():
    tags = [name.partition(".")[2] for name in timm.list_pretrained("resnet18.*")]
    message = refused({"model": "resnet18.a1_in1kk"})
    assert "did you mean 'resnet18.a1_in1k'?" in message
    assert all(tag in message for tag in tags[:8])


def test_a_tag_on_an_architecture_without_tags_says_to_drop_it():
    untagged = next(name for name in timm.list_models() if not any(
        "." in tagged for tagged in timm.list_models(f"{name}.*", include_tags=True)))
    message = refused({"model": f"{untagged}.in1k"})
    assert f"timm has no pretrained tags for {untagged}; use model = '{untagged}'" in message


def test_auto_pretrained_starts_from_scratch_where_timm_has_no_weights():
    assert not has_pretrained_weights(NO_WEIGHTS) and has_pretrained_weights("resnet18")
    assert resolve_pretrained("auto", NO_WEIGHTS, on_kaggle=True) is False  # timm would warn and start from random
    assert resolve_pretrained("auto", "resnet18", on_kaggle=True) is True
    assert "timm has no pretrained weights for it" in describe_pretrained("auto", NO_WEIGHTS, on_kaggle=True)


# --- train.csv's extra column names both settings it needs ----------------------------------------------------------

def test_an_extra_train_column_names_group_column_and_fold_method(tmp_path):
    frame = pd.DataFrame([[1] + [0] * 784 + ["a"]], columns=["label", *PIXEL_COLUMNS, "writer"])
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError) as info:
        read_train(tmp_path / "train.csv")
    message = str(info.value)
    assert "set group_column = 'writer' and fold_method = 'StratifiedGroupKFold'" in message
    Config.from_mapping({"group_column": "writer", "fold_method": "StratifiedGroupKFold"})  # what it says is valid
