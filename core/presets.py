"""Named recipes: each one is the notebook parameters it changes from ``Config``'s defaults, and nothing else.

The chain of defaults, each link written once: ``Config``'s field defaults → the model family's recipe for the
settings left None (core/families.py ``FAMILIES``) → a preset here → the command line. ``Config``'s defaults are the
Kaggle T4×2 recipe, so ``kaggle`` changes nothing; a value that equals a default is not repeated here (it would be
typed twice). A preset's value counts as set: it wins over the family's recipe (``local``'s 4 epochs for any model).
``python -m tools.run_local --preset NAME`` applies one, and its ``-p name=value`` win over it.
"""
from __future__ import annotations

from .config import Config, ConfigError

PRESETS: dict[str, dict[str, object]] = {
    "kaggle": {},  # the train kernel's defaults: Config as it is, sized for Kaggle's T4×2
    "local": {"epochs": 4},  # Config's model, few epochs, so that a laptop finishes in minutes
    # The 2-core CPU recipes on the full 42k (docs/speed.md, with the experiments that chose them in
    # docs/experiments/cpu-recipes.md). Both use Config's batch 128: twice the optimizer steps per epoch of 256, more
    # accuracy per minute on a CPU.
    "cpu-recipe": {  # fastcnn at 1.5x width, 25 epochs in bf16 where the CPU has AMX, every TTA view that helps on OOF
        "model": "fastcnn_wide", "epochs": 25, "learning_rate": 3e-3, "cpu_bf16": True, "parallel": "folds",
        "workers": 2,
    },
    "cpu-quick": {  # for iterating: fastcnn, 14 epochs, no TTA (its gain here was noise, its cost a tenth of the run)
        "model": "fastcnn", "epochs": 14, "learning_rate": 3e-3, "parallel": "folds", "workers": 2, "tta": "none",
    },
}
# `make sweep`'s grid (sweep notebook parameters over its own defaults, core.sweep.SweepGrid): cpu-quick's model,
# 4 batch sizes × 4 learning rates × 2 seeds × both budgets (equal data, equal steps) on the embedded data, minutes on
# two CPU cores; the notebook's default grid is sized for a GPU, docs/experiments/lr-batch-sweep.md's study for the
# full 42k.
SWEEP_LOCAL: dict[str, object] = {"model": "fastcnn", "batch_sizes": [16, 32, 64, 128],
                                  "learning_rates": [2e-3, 4e-3, 8e-3, 1.6e-2], "seeds": [1, 2],
                                  "budget": "epochs=1,steps=100"}
# What a recipe is known to reach and cost, where measured (the train notebook's recipe paragraph says it); the
# Kaggle T4×2 recipe has no measured figure yet.
EXPECTED: dict[str, str] = {
    "local": "local CV ≈ 0.980 on the embedded 4,000-row MNIST sample, about 2 minutes on 2 CPU cores",
    "cpu-recipe": ("local CV ≈ 0.9965 on the full 42,000 rows, about 25 minutes on 2 CPU cores with AMX (bf16), "
                   "about 40 without"),
    "cpu-quick": "local CV ≈ 0.9952 on the full 42,000 rows, about 10 minutes on 2 CPU cores",
}


def preset_parameters(name: str) -> dict[str, object]:
    """The parameter overrides of preset ``name`` (a new dict: the caller may change it).

    Raises:
        ConfigError: no preset has that name (the message lists those that exist).
    """
    if name not in PRESETS:
        raise ConfigError(f"preset = {name!r}: choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def preset_config(name: str) -> Config:
    """``Config`` with preset ``name`` applied (validated)."""
    return Config.from_mapping(preset_parameters(name))


def matching_preset(config: Config) -> str | None:
    """The preset whose training settings and parallel mode ``config`` has, if any (``pretrained`` aside)."""
    def key(c: Config) -> dict[str, object]:
        settings = c.training_settings()
        settings.pop("pretrained", None)
        return {**settings, "parallel": c.parallel, "workers": c.workers}

    return next((name for name in PRESETS if key(preset_config(name)) == key(config)), None)


def expected_result(config: Config) -> str:
    """What ``config``'s recipe is known to reach, or "" when it is not one of the presets."""
    return EXPECTED.get(matching_preset(config) or "", "")
