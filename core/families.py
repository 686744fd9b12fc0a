"""Model families as plain data: what each needs to learn 28-px digits (how to build it at an input side) and its
training recipe, which a run's recipe settings left None take (core.config).

One table, ``FAMILIES``, matched by model-name prefix. Only the standard library is imported here, so a ``Config``
resolves its recipe without importing torch or timm; core.models builds the networks from the same table.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The training settings a model family tunes, resolved. Each is the ``core.config.Config`` field of that name
    (its comment there says what it means); a run that leaves one None takes its family's value."""

    input_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_epochs: float
    weight_decay: float
    drop_path_rate: float
    rotate_deg: float
    zoom: float
    shift: float


# The Kaggle T4×2 recipe of digitkit's own CNNs, and what a family does not change (input_size: the digits as they
# are, core.data.IMAGE_SIDE px).
BASE_RECIPE = Recipe(input_size=28, epochs=40, batch_size=128, learning_rate=2e-3, warmup_epochs=1.0, weight_decay=1e-2,
                     drop_path_rate=0.0, rotate_deg=10.0, zoom=0.10, shift=0.10)
RECIPE_KEYS = tuple(field.name for field in dataclasses.fields(Recipe))  # the Config fields a recipe fills


def _tiny_vit_windows(side: int) -> dict[str, Any]:
    """tiny_vit's attention windows must tile its feature maps (side/4, /8, /16, /32 px; the first stage is
    convolutional), else every stage pads to whole windows (~12x slower at 28 px): each window is the largest divisor
    of its map up to timm's default (7, 7, 14, 7), which gives those defaults at 224 px and [7, 4, 2, 1] at 28. A map
    only a 1-px window tiles (a prime side) would lose its attention: that input size is refused."""
    windows, size = [], side
    for stage, default in enumerate((7, 7, 14, 7)):
        size = -(-size // (4 if stage == 0 else 2))
        window = max(d for d in range(1, min(default, size) + 1) if size % d == 0)
        if stage and window == 1 < size:
            raise ValueError(f"input_size = {side}: tiny_vit's {size}-px feature map of stage {stage} has no attention "
                             "window that tiles it; use a multiple of 32 (e.g. 64) or 28 / 56")
        windows.append(window)
    return {"window_sizes": windows}


# px: 4x4 tokens at 28 px. 4-px patches (7x7 tokens) cost ~3x the FLOPs and learnt slower
# (docs/experiments/timm-families.md)
VIT_PATCH = 7


def _patch_grid(side: int) -> dict[str, Any]:
    """vit / eva02 hold a fixed grid of position embeddings: build it for the input side with ``VIT_PATCH``-px
    patches ((side / VIT_PATCH)² tokens: 16 at 28 px)."""
    if side % VIT_PATCH:
        raise ValueError(f"input_size = {side}: a vit / eva02 model cuts it into {VIT_PATCH}-px patches, so use a "
                         f"multiple of {VIT_PATCH} (28, 56, …)")
    return {"img_size": side, "patch_size": VIT_PATCH}


@dataclasses.dataclass(frozen=True)
class Family:
    """What a family of architectures needs to learn 28-px digits from scratch.

    Attributes:
        prefix: Architecture-name prefix; the first matching family of ``FAMILIES`` wins.
        convolutional: Whether channels_last memory format speeds it up.
        min_side: The smallest input side (px) its downsampling takes: smaller inputs are padded with background.
        timm_kwargs: Input side (px) -> the constructor keyword arguments that side needs.
        recipe: The ``Recipe`` settings that differ from ``BASE_RECIPE``; measured in
            docs/experiments/timm-families.md.
        reset_head: Re-initialise the classifier with PyTorch's default (fan-in) init: timm's EfficientNet init
            scales it by 1/sqrt(classes), so at 10 classes its first logits are ~10x ImageNet's and the first loss
            is ~4.5 instead of ln 10.
    """

    prefix: str
    convolutional: bool
    min_side: int = 0
    timm_kwargs: Callable[[int], dict[str, Any]] = lambda side: {}
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reset_head: bool = False


_PLAIN_VIT_RECIPE = {"batch_size": 32, "learning_rate": 3e-4, "warmup_epochs": 3.0, "weight_decay": 0.05,
                     "drop_path_rate": 0.1, "rotate_deg": 5.0, "zoom": 0.05, "shift": 0.05}
# Fold 0 of ../shared's 42k, from scratch, on 2 CPU cores: docs/experiments/timm-families.md has each recipe's result.
FAMILIES: tuple[Family, ...] = (
    Family("smallcnn", convolutional=True),
    Family("fastcnn", convolutional=True),
    # EfficientNet's stride-32 body ends at 1 px on a 28-px digit and learns slowly there: 56 px.
    Family("efficientnet", convolutional=True, reset_head=True, recipe={"input_size": 56, "drop_path_rate": 0.1}),
    Family("tf_efficientnet", convolutional=True, reset_head=True, recipe={"input_size": 56, "drop_path_rate": 0.1}),
    # convnext / edgenext downsample by 32 with stride-2 convs that fail below 32 px.
    Family("convnext", convolutional=True, min_side=32, recipe={"weight_decay": 0.05, "drop_path_rate": 0.1}),
    Family("edgenext", convolutional=True, min_side=32, recipe={"weight_decay": 0.05, "drop_path_rate": 0.1}),
    Family("tiny_vit", convolutional=False, timm_kwargs=_tiny_vit_windows,
           recipe={"weight_decay": 0.05, "drop_path_rate": 0.1, "warmup_epochs": 2.0}),
    # The plain ViTs have no convolutional prior: on short runs they learn only with more, smaller steps, a lower
    # rate and lighter augmentation (embedded data, fold 0, 4 epochs: vit 0.32 at 4-px patches, batch 128, lr 1e-3;
    # 0.69 with this recipe, eva02 0.92).
    Family("vit_", convolutional=False, timm_kwargs=_patch_grid, recipe=_PLAIN_VIT_RECIPE),
    Family("eva02", convolutional=False, timm_kwargs=_patch_grid, recipe=_PLAIN_VIT_RECIPE),
)
_PASS_THROUGH = Family("", convolutional=False)  # any other timm name: in_chans / num_classes only


def family_of(name: str) -> Family:
    """The family of model ``name`` (a pretrained tag like ``.d2_in1k`` is ignored); ``_PASS_THROUGH`` for a timm
    name no family matches."""
    arch = name.split(".", 1)[0]
    return next((family for family in FAMILIES if arch.startswith(family.prefix)), _PASS_THROUGH)


def recipe_of(name: str) -> Recipe:
    """The recipe model ``name`` trains with when a run leaves its settings unset: ``BASE_RECIPE`` with its family's
    values."""
    return dataclasses.replace(BASE_RECIPE, **family_of(name).recipe)


def training_recipe(name: str) -> dict[str, Any]:
    """``recipe_of(name)`` as a dict, setting name → value, in ``RECIPE_KEYS`` order."""
    return dataclasses.asdict(recipe_of(name))


def recipe_name(name: str) -> str:
    """Whose recipe ``name`` trains with, in words: "efficientnet's" or "digitkit's base"."""
    family = family_of(name)
    return f"{family.prefix.rstrip('_')}'s" if family.recipe else "digitkit's base"
