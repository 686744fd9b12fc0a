"""The train notebook's first words: the recipe its parameters describe, as one paragraph a person reads."""
from __future__ import annotations

from .config import Config
from .data import IMAGE_SIDE
from .families import recipe_name, training_recipe
from .scheduler import warmup_fills_the_run


def describe_schedule(config: Config) -> str:
    """The optimizer and learning-rate schedule in words, e.g. "AdamW, weight decay 0.01; one-epoch linear warm-up
    to 2e-3, then cosine to 1e-5, updated every optimizer step"."""
    recipe = config.resolved
    lr, low = f"{recipe.learning_rate:g}", f"{config.min_lr:g}"
    warmup = "one-epoch" if recipe.warmup_epochs == 1 else f"{recipe.warmup_epochs:g}-epoch"
    if warmup_fills_the_run(recipe.warmup_epochs, recipe.epochs):  # fetch_scheduler then warms up for a tenth
        warmup = (f"short (a tenth of the run: a {warmup} warm-up would fill all {recipe.epochs} epoch"
                  f"{'' if recipe.epochs == 1 else 's'})")
    shape = {"CosineAnnealingWithWarmupLR": (f"a {warmup} linear warm-up to {lr}, then a cosine down to {low}"
                                             if recipe.warmup_epochs else f"a cosine from {lr} down to {low}"),
             "CosineAnnealingLR": f"a cosine from {lr} down to {low}",
             "none": f"a constant {lr}"}[config.scheduler]
    cap = f"; at most {config.max_steps} optimizer steps per fold" if config.max_steps else ""
    return (f"AdamW (weight decay {config.weight_decay:g}, none on biases and norms) with {shape}, updated every "
            f"optimizer step ({config.scheduler}){cap}")


def describe_augmentation(config: Config) -> str:
    """The augmentation in words, e.g. "augmentation on the device: rotation ±10°, zoom ±10 %, shift ±10 % of the
    side (never flipped)"; each bound is worded as the recipe line words it (``_recipe_words``)."""
    if not config.augment or not (config.rotate_deg or config.zoom or config.shift):
        return "no augmentation"
    parts = [_recipe_words(key, getattr(config, key)) + (" of the side" if key == "shift" else "")
             for key in ("rotate_deg", "zoom", "shift") if getattr(config, key)]
    return "augmentation on the device: " + ", ".join(parts) + " (never flipped)"


def _recipe_value(key: str, value: float) -> str:
    """A recipe setting's value as its words show it: "0.002", "±5 %" (zoom, shift), "±10°" (rotation)."""
    return {"zoom": f"±{value * 100:g} %", "shift": f"±{value * 100:g} %", "rotate_deg": f"±{value:g}°"}.get(
        key, f"{value:g}")


def _recipe_words(key: str, value: float) -> str:
    """One recipe setting in words: "input 56 px", "40 epochs", "warm-up 1 epoch", "drop-path 0.1", "zoom ±5 %"."""
    if key in ("epochs", "warmup_epochs"):
        epochs = f"{value:g} epoch{'' if value == 1 else 's'}"
        return epochs if key == "epochs" else f"warm-up {epochs}"
    if key == "input_size":
        return f"input {value:g} px"
    label = {"batch_size": "batch", "learning_rate": "learning rate", "weight_decay": "weight decay",
             "drop_path_rate": "drop-path", "rotate_deg": "rotation"}.get(key, key)
    return f"{label} {_recipe_value(key, value)}"


def describe_model_recipe(config: Config) -> str:
    """The model family's recipe and where this run leaves it, e.g. "efficientnet's recipe (core/families.py; a
    setting left None takes it): input 56 px, learning rate 0.002, …; changed here: 4 epochs (the recipe's: 40)"."""
    recipe, sources = training_recipe(config.model), config.recipe_sources()
    kept = [_recipe_words(key, getattr(config, key)) for key, source in sources.items() if source == "recipe"]
    changed = [f"{_recipe_words(key, getattr(config, key))} (the recipe's: {_recipe_value(key, recipe[key])})"
               for key, source in sources.items() if source == "changed"]
    text = (f"{recipe_name(config.model)} recipe (core/families.py; a setting left None takes it): "
            + (", ".join(kept) or "every setting changed"))
    return text + (f"; changed here: {', '.join(changed)}" if changed else "")


def describe_recipe(config: Config, *, model: str, devices: str, parallel: str, expected: str = "") -> str:
    """What this run will do, in markdown: the recipe paragraph, the model recipe's line, and what the recipe is
    known to reach where measured.

    Args:
        model: the model in words (core.models.describe_pretrained: architecture, pretrained or from scratch).
        devices: the hardware (core.device.describe_device); parallel: how the folds use it, in words.
        expected: what this recipe is known to reach and how long it takes, where measured (core.presets).
    """
    folds = (f"**{config.n_folds}-fold** {config.fold_method} (seed {config.seed})"
             + (f", training folds {config.folds_to_run} only" if str(config.folds_to_run).strip() else ""))
    smoothing = (f"label smoothing **ε = {config.label_smoothing:g}** on the training targets only (validation and "
                 "out-of-fold scores use the hard labels)" if config.label_smoothing else "no label smoothing")
    tta = {"auto": "test-time augmentation kept only if it helps on the out-of-fold rows",
           "none": "no test-time augmentation"}.get(config.tta.strip(), f"test-time augmentation views {config.tta}")
    swa = f"SWA over the last {config.swa_epochs} epochs, used only if it helps on OOF" if config.swa_epochs else \
        "no SWA"
    pseudo = (f" on its rows plus the test rows that fold's model in `{config.pseudo_labels}` labels with top "
              f"probability ≥ {config.pseudo_threshold:g} (**pseudo-labels**; that model never saw the fold's "
              "validation rows)"
              if config.pseudo_labels else "")
    resize = (f"; the digits are resized to **{config.input_size} px** (bilinear, on the device, inside the model: "
              "training, TTA and inference alike)" if config.input_size != IMAGE_SIDE else "")
    text = (f"**Recipe.** {model}{resize}. {folds}: each fold trains **{config.epochs} epochs** at batch "
            f"**{config.batch_size}**{pseudo} with {describe_schedule(config)}, {smoothing}, and "
            f"{describe_augmentation(config)}; the epoch with the best validation accuracy is kept as the fold's "
            f"weights. Then every training row is scored by the fold model that never saw it: that out-of-fold "
            f"accuracy is **the local CV**. Inference: {tta}; {swa}. Hardware: {devices}; {parallel}.\n\n"
            f"**Model recipe:** {describe_model_recipe(config)}.")
    return text + (f"\n\n**Expected:** {expected}" if expected else "")


def describe_parallel(mode: str, workers: int, *, gpus: int) -> str:
    """How the folds use the devices (a core.launch.ParallelPlan's ``mode`` and ``workers``), in words."""
    return {"none": "the folds train one after another in this process",
            "dp": f"nn.DataParallel splits every batch over {gpus} GPUs in this process",
            "ddp": f"DistributedDataParallel: {workers} torchrun ranks share every batch",
            "folds": f"{workers} worker processes train whole folds side by side"
                     + (" (one per GPU, no communication)" if gpus else " (one thread each)")}[mode]
