"""Named recipes: each one is the notebook parameters it changes from ``Config``'s defaults, and nothing else.

``Config``'s field defaults are the Kaggle T4×2 recipe, so ``kaggle`` changes nothing; a value that equals a default
is not repeated here (it would be typed twice). ``python -m tools.run_local --preset NAME`` applies one, and its
``-p name=value`` win over it.
"""
from __future__ import annotations

from .config import Config, ConfigError

PRESETS: dict[str, dict[str, object]] = {
    "kaggle": {},  # the train kernel's defaults: Config as it is (README: Speed and multi-GPU)
    "local": {"epochs": 4},  # `make run`: Config's model, few epochs, so that a laptop finishes in minutes
    "cpu-recipe": {  # `make cpu-recipe`: the <= 30-minute 2-core CPU recipe on the full 42k (README: CPU recipe)
        "model": "fastcnn", "epochs": 20, "batch_size": 256, "learning_rate": 4e-3, "parallel": "folds", "workers": 2,
    },
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
