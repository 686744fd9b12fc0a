"""core.pipeline's steps and what they show (the train notebook's recipe), without training: the recipe paragraph,
the folds table, the learning-rate schedule the trainer really follows, the error-analysis figures."""
from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from core.config import Config
from core.data import TrainData
from core.pipeline import FoldSplit, planned_schedule, prepare_folds, prepare_run
from core.plots import (most_confident_mistakes, plot_class_counts, plot_confident_mistakes, plot_confusion_matrix,
                        plot_digits, plot_lr_schedule)
from core.presets import expected_result, matching_preset, preset_config
from core.trainer import prepare_fold


def tiny_train(n: int = 200) -> TrainData:
    rng = np.random.default_rng(0)
    return TrainData(images=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), labels=np.arange(n) % 10,
                     groups=None, fingerprint="f" * 64)


@pytest.fixture
def setup(tmp_path):
    return prepare_run(Config(model="smallcnn", epochs=3, batch_size=16, device="cpu"), output_dir=tmp_path / "run")


def test_the_recipe_paragraph_says_every_choice_the_assignment_asks_about(setup):
    text = setup._repr_markdown_()
    for words in ("smallcnn", "trained from scratch", "**5-fold** StratifiedKFold (seed 42)", "**3 epochs**",
                  "batch **16**", "AdamW", "one-epoch linear warm-up to 0.002", "cosine down to 1e-05",
                  "every optimizer step", "label smoothing **ε = 0.1** on the training targets only",
                  "rotation ±10°", "never flipped", "local CV", "cpu (", "one after another"):
        assert words in text, words
    assert setup.config.pretrained is False  # "auto" resolved once, for config.json and the manifest
    assert "\n" not in repr(setup)  # the saved notebook's plain-text copy stays one line


def test_the_recipe_paragraph_says_which_settings_came_from_the_models_recipe(tmp_path):
    config = Config.from_mapping({"model": "efficientnet_b0", "epochs": 4, "device": "cpu"})
    text = prepare_run(config, output_dir=tmp_path / "run")._repr_markdown_()
    assert "resized to **56 px** (bilinear, on the device, inside the model" in text
    assert ("**Model recipe:** efficientnet's recipe (core/families.py; a setting left None takes it): input 56 px, "
            "batch 128, learning rate 0.002, warm-up 1 epoch, weight decay 0.01, drop-path 0.1, rotation ±10°, "
            "zoom ±10 %, shift ±10 %; changed here: 4 epochs (the recipe's: 40).") in text
    vit = Config.from_mapping({"model": "vit_tiny_patch16_224", "device": "cpu", "zoom": 0.1})
    text = prepare_run(vit, output_dir=tmp_path / "vit")._repr_markdown_()
    assert "a 3-epoch linear warm-up to 0.0003" in text and "at batch **32**" in text
    assert "augmentation on the device: rotation ±5°, zoom ±10 %, shift ±5 % of the side" in text  # what runs
    assert "changed here: zoom ±10 % (the recipe's: ±5 %)." in text  # and where it left the recipe
    short = prepare_run(dataclasses.replace(vit, epochs=2), output_dir=tmp_path / "short")._repr_markdown_()
    assert "a short (a tenth of the run: a 3-epoch warm-up would fill all 2 epochs) linear warm-up" in short


def test_a_preset_recipe_says_what_it_is_known_to_reach():
    assert matching_preset(preset_config("cpu-recipe")) == "cpu-recipe"
    assert "0.9965" in expected_result(preset_config("cpu-recipe"))
    assert matching_preset(dataclasses.replace(preset_config("local"), learning_rate=1e-2)) is None
    assert expected_result(Config(learning_rate=1e-2)) == ""


def test_folds_are_made_once_then_reused_and_shown_as_a_fold_by_digit_table(setup, caplog):
    train = tiny_train()
    with caplog.at_level("INFO", logger="core.folds"):
        made = prepare_folds(setup, train)
        again = prepare_folds(setup, train)
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["made", "reused"]  # and where, in one line
    assert made.path.is_file() and str(made.path) in caplog.records[1].getMessage()
    table = made.table()
    assert table.loc["all", "all"] == 200 and (table.drop(index="all", columns="all") == 4).all().all()
    assert np.array_equal(again.folds, made.folds)
    assert "all" in repr(again) and "<table" in again._repr_html_()


def test_the_planned_schedule_is_the_one_the_trainer_steps_through(setup):
    train = tiny_train()
    split = prepare_folds(setup, train)
    schedule = planned_schedule(setup, split)
    n_train = int((split.folds != 0).sum())
    fold = prepare_fold(setup.config, n_train=n_train, fold=0, device=torch.device("cpu"))
    assert len(schedule.rates) == fold.total_steps and schedule.steps_per_epoch == fold.steps_per_epoch
    followed = []
    for _ in range(fold.total_steps):
        followed.append(fold.optimizer.param_groups[0]["lr"])
        fold.optimizer.step()
        fold.scheduler.step()
    np.testing.assert_allclose(schedule.rates, followed, rtol=1e-12)
    assert schedule.warmup_steps == fold.steps_per_epoch  # one epoch of warm-up
    assert max(schedule.rates) == pytest.approx(setup.config.learning_rate)
    assert schedule.rates[0] < schedule.rates[schedule.warmup_steps - 1]  # rising, then the cosine falls
    assert schedule.rates[-1] < schedule.rates[schedule.warmup_steps]
    figure = schedule.figure()
    assert "optimizer step" in figure.axes[0].get_xlabel()


def test_most_confident_mistakes_come_first_and_only_mistakes():
    labels = np.array([0, 1, 2, 3])
    probs = np.full((4, 10), 0.01)
    probs[0, 0] = 0.9  # right
    probs[1, 7] = 0.6  # wrong, less sure
    probs[2, 5] = 0.95  # wrong, surest
    probs[3, 3] = 0.5  # right
    assert most_confident_mistakes(labels, probs).tolist() == [2, 1]
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    figure = plot_confident_mistakes(images, labels, probs)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["2 → 5 (0.95)", "1 → 7 (0.60)"]


def test_the_figures_are_closed_and_label_what_they_show(tmp_path):
    labels = np.arange(50) % 10
    preds = labels.copy()
    preds[:3] = 9
    confusion = plot_confusion_matrix(labels, preds, path=tmp_path / "confusion.png")
    assert "3 mistakes in 50 rows" in confusion.axes[0].get_title() and (tmp_path / "confusion.png").is_file()
    counts = plot_class_counts(labels)
    assert [int(p.get_height()) for p in counts.axes[0].patches] == [5] * 10
    digits = plot_digits(np.zeros((3, 28, 28), dtype=np.uint8), ["a", "b", "c"], columns=2)
    assert [ax.get_title() for ax in digits.axes][:3] == ["a", "b", "c"]
    lr = plot_lr_schedule([1e-3] * 20, steps_per_epoch=5, warmup_steps=5)
    assert not plt.get_fignums()  # none left open: a notebook shows each once, as its cell's value
    assert lr.axes[0].get_ylabel() == "learning rate"


def test_fold_split_lists_training_and_validation_rows_per_fold():
    split = FoldSplit(folds=np.array([0, 1, 0, 1]), path=None, labels=np.array([1, 2, 3, 4]))
    (train0, val0), = split.splits([0]).values()
    assert train0.tolist() == [1, 3] and val0.tolist() == [0, 2]
