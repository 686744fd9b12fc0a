"""The one training configuration: a dataclass with defaults, resolved once, saved next to every run.

The notebook's ``parameters`` cell (papermill convention) holds plain variables; ``Config.from_mapping(globals())``
picks the ones it knows, coerces their types and validates them. Library code only ever sees a ``Config``.

What each setting is, beyond its type and default, is said once on its field (a ``Setting``: ``Training[int]``,
``Swept[int]``, ``Runtime[int]`` or ``Annotated[int, Setting(...)]``); the lists of settings that decide whether
saved work is reused (``TRAINING_KEYS``, ``SWEEP_FIXED_KEYS``) and how an older saved run reads
(``LEGACY_VALUES``) are derived from it. The recipe settings are those of core.families ``Recipe``.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from .families import RECIPE_KEYS, Recipe, training_recipe

FOLD_METHODS = ("KFold", "StratifiedKFold", "StratifiedGroupKFold")
GROUP_FOLD_METHODS = ("StratifiedGroupKFold",)  # the splitters that read group_column (a group never spans two folds)
SCHEDULERS = ("CosineAnnealingWithWarmupLR", "CosineAnnealingLR", "none")  # core.scheduler builds each
PARALLEL_MODES = ("auto", "none", "dp", "ddp", "folds")
# augmentation bounds: beyond them a digit stops being itself (core.augment never flips)
MAX_ROTATE_DEG, MAX_ZOOM, MAX_SHIFT = 45.0, 0.5, 0.3


class ConfigError(ValueError):
    """A setting has a value the library cannot use; the message names the setting and the fix."""


class _Legacy(enum.Enum):
    NONE = "saved runs have always recorded it"


NO_LEGACY = _Legacy.NONE


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a ``Config`` field is, said on the field: ``Annotated[type, Setting(...)]``.

    Attributes:
        training: It changes what training computes: saved work made under another value (a fold, an epoch's
            checkpoint, a run folder) is never reused (``TRAINING_KEYS``).
        fixed_in_sweep: A training setting that a sweep's cells share: a sweep folder made under another value is
            refused (``SWEEP_FIXED_KEYS``, core.sweep). False: each cell sets it itself (batch size, rates, seed,
            budget, SWA) or never reads it (pseudo-labels; group_column, which only shapes folds.csv).
        legacy: Its value in every run saved before it existed (manifest.json, config.json, a fold checkpoint,
            sweep.json): a saved config that lacks it ran with this, not with today's default or family recipe
            (``LEGACY_VALUES``). ``NO_LEGACY``: saved runs have always recorded it.
    """

    training: bool = True
    fixed_in_sweep: bool = True
    legacy: Any = NO_LEGACY


_T = typing.TypeVar("_T")
Training = Annotated[_T, Setting()]  # what a fold learns; one value per sweep folder
Swept = Annotated[_T, Setting(fixed_in_sweep=False)]  # what a fold learns; a sweep's cells set it (or never read it)
Runtime = Annotated[_T, Setting(training=False, fixed_in_sweep=False)]  # how it runs, not what a fold learns


@dataclasses.dataclass
class Config:
    """Everything a training run needs. Units: learning rates per optimizer step, angles in degrees.

    A setting that acts only together with another says so beside it ("only with …"); ``validate`` refuses a
    combination in which one of them would silently do nothing (``_check_together``). The recipe settings
    (core.families ``Recipe``) may be None for the user, meaning the model family's value; a built ``Config`` holds
    them resolved, and ``resolved`` reads them typed.
    """

    # ---- model
    model: Training[str] = "smallcnn"  # a timm name may carry one of timm's pretrained tags, e.g. convnext_atto.d2_in1k
    pretrained: Training[bool | str] = "auto"  # auto (timm's weights on Kaggle) | True (timm must have weights) | False
    # None: the model family's recipe (core/families.py; the recipe paragraph shows its values); a value you set wins.
    input_size: Annotated[
        int | None, Setting(legacy=28)] = None  # px the digits are resized to on the device (bilinear; 28: as they are)
    drop_path_rate: Annotated[float | None, Setting(legacy=0.0)] = None  # stochastic depth of timm models (0: off)
    # ---- folds: k-fold cross-validation (folds.csv is made once, then reused)
    n_folds: Training[int] = 5
    fold_method: Training[str] = "StratifiedKFold"  # KFold | StratifiedKFold | StratifiedGroupKFold (with group_column)
    group_column: Swept[str] = ""  # the train.csv column of groups: only with fold_method StratifiedGroupKFold
    folds_to_run: Runtime[str] = ""  # "": all folds; else comma-separated fold indices below n_folds, e.g. "0,1"
    seed: Swept[int] = 42
    # ---- optimisation: AdamW; learning rates are per optimizer step
    epochs: Swept[int | None] = None  # passes over each fold's training rows
    max_steps: Swept[int] = 0  # 0: no cap; else each fold stops after N optimizer steps (the schedule shrinks to fit)
    batch_size: Swept[int | None] = None  # images per optimizer step
    learning_rate: Swept[float | None] = None  # the peak rate, reached after the warm-up
    min_lr: Swept[float] = 1e-5  # the cosine's final rate, at most learning_rate
    weight_decay: Training[float | None] = None  # AdamW's decoupled decay (none on biases and norms)
    scheduler: Training[str] = "CosineAnnealingWithWarmupLR"
    warmup_epochs: Annotated[
        float | None, Setting(legacy=1.0)] = None  # only with CosineAnnealingWithWarmupLR: linear, in epochs (0: none)
    label_smoothing: Training[float] = 0.1
    # ---- augmentation: a random affine per image, in the batch, on the device (never flips)
    augment: Training[bool] = True  # False: rotate_deg, zoom and shift act on nothing (leave them None or 0)
    rotate_deg: Training[float | None] = None  # ± degrees
    zoom: Training[float | None] = None  # ± fraction of the size
    shift: Training[float | None] = None  # ± fraction of the side
    # ---- compute
    device: Runtime[str] = "auto"  # auto | cpu | cuda
    parallel: Runtime[str] = "auto"  # auto (>1 GPU: folds, or ddp for one fold) | none | dp (GPUs only) | ddp | folds
    workers: Runtime[int] = 0  # only with ddp | folds (or auto): processes; 0 means one per GPU (2 on CPU)
    amp: Runtime[bool] = True  # mixed precision on CUDA (bf16 from Ampere on, else fp16); a CPU uses cpu_bf16 instead
    cpu_bf16: Annotated[
        bool, Setting(legacy=False)] = False  # CPU only (not cuda): bf16 with AMX (Xeon gen 4+; 1.8x here), else fp32
    channels_last: Runtime[bool] = True  # only for convolutional models (the others ignore it)
    compile: Runtime[bool] = False
    eval_batch_size: Runtime[int] = 1024
    noise_scale_every: Runtime[int] = 20  # 0: off; else read the gradient noise scale every N steps (~1/N extra time)
    # ---- what inference will do: chosen on the out-of-fold rows, recorded in manifest.json
    tta: Runtime[str] = "auto"  # auto (only if it helped on OOF) | none | a comma-separated view list
    swa_epochs: Swept[int] = 0  # 0: off; else average the weights of the last N epochs (at most epochs); with or without tta  # noqa: E501
    # ---- pseudo-labels: test rows an earlier run on the same folds is sure of, added to each fold's training rows
    pseudo_labels: Swept[str] = ""  # "": off | that run's inference output (test_probs.npz); fold k uses its own model
    pseudo_threshold: Swept[float] = 0.8  # only with pseudo_labels: keep a test row whose top probability reaches this

    def __post_init__(self) -> None:
        """Every recipe setting left None takes the model family's value (core.families, plain data: no torch)."""
        for key, value in training_recipe(self.model).items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    @property
    def resolved(self) -> Recipe:
        """The recipe settings as this run uses them (its family's, with those it sets), typed: ``resolved.epochs`` is
        an int where the field ``epochs`` is typed ``int | None`` for the user."""
        return Recipe(**{key: getattr(self, key) for key in RECIPE_KEYS})

    def recipe_sources(self) -> dict[str, str]:
        """Each recipe setting → "recipe" when it has the model family's value (left None, or given that value), else
        "changed". A Config built for one model keeps its resolved values under ``dataclasses.replace(model=...)``:
        build a new one to change the model."""
        return {key: "recipe" if getattr(self, key) == value else "changed"
                for key, value in training_recipe(self.model).items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build from any mapping (a notebook's ``globals()``, a JSON dict); unknown keys are ignored."""
        return settings_from_mapping(cls, values, coercers={"pretrained": coerce_pretrained})

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> Config:
        """The config a run saved (manifest.json's ``config``, config.json) as it ran: settings added since it was
        written take ``LEGACY_VALUES``, not today's family recipe. Each value is checked, but not the settings
        together: those rules refuse a new run whose setting would act on nothing, not the record of one that ran."""
        config = settings_from_mapping(cls, with_legacy_values(saved), coercers={"pretrained": coerce_pretrained},
                                       validate=False)
        config.validate(together=False)
        return config

    def validate(self, *, together: bool = True) -> None:
        """Check every setting, then (``together``) the settings that act only with another (``_check_together``).

        Raises:
            ConfigError: naming the setting (both, for a combination) and the fix.
        """
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        recipe = self.resolved
        need(isinstance(self.pretrained, bool) or self.pretrained == "auto",
             f"pretrained = {self.pretrained!r}: use 'auto' (timm models on Kaggle), True or False")
        need(self.n_folds >= 2, f"n_folds = {self.n_folds}: use at least 2 folds (5 is the default)")
        need(self.fold_method in FOLD_METHODS, f"fold_method = {self.fold_method!r}: choose one of {FOLD_METHODS}")
        need(self.fold_method != "StratifiedGroupKFold" or bool(self.group_column),
             "fold_method = 'StratifiedGroupKFold' needs group_column: the train.csv column that holds the groups")
        need(recipe.epochs >= 1, f"epochs = {recipe.epochs}: train for at least 1 epoch")
        need(math.isfinite(recipe.warmup_epochs) and recipe.warmup_epochs >= 0,
             f"warmup_epochs = {recipe.warmup_epochs:g}: use 0 (no warm-up) or a number of epochs (None: the model's "
             "recipe)")
        need(math.isfinite(recipe.drop_path_rate) and 0 <= recipe.drop_path_rate < 1,
             f"drop_path_rate = {recipe.drop_path_rate:g}: use 0 <= rate < 1 (0.1 is typical; None: the model's "
             "recipe)")
        self._check_model()
        need(self.max_steps >= 0, f"max_steps = {self.max_steps}: use 0 (no cap) or a positive number of steps")
        need(recipe.batch_size >= 1, f"batch_size = {recipe.batch_size}: must be a positive integer")
        need(math.isfinite(recipe.learning_rate) and recipe.learning_rate > 0,
             f"learning_rate = {recipe.learning_rate:g}: must be a positive number (None: the model's recipe)")
        need(math.isfinite(recipe.weight_decay) and recipe.weight_decay >= 0,
             f"weight_decay = {recipe.weight_decay:g}: use 0 (none) or a positive number (None: the model's recipe)")
        need(self.eval_batch_size >= 1, f"eval_batch_size = {self.eval_batch_size}: must be a positive integer "
                                        "(images per validation forward pass; 1024 is the default)")
        need(self.noise_scale_every >= 0, f"noise_scale_every = {self.noise_scale_every}: use 0 (off) or a number "
                                          "of optimizer steps between measurements (20 is the default)")
        need(0 <= self.seed < 2**32, f"seed = {self.seed}: use an integer 0..2**32-1 (42 is the default)")
        need(0 <= recipe.rotate_deg <= MAX_ROTATE_DEG,
             f"rotate_deg = {recipe.rotate_deg:g}: use 0..{MAX_ROTATE_DEG:g} degrees (10-15 is typical); digitkit "
             "never flips or turns a digit far: turned a half-turn, a 6 is a 9")
        need(0 <= recipe.zoom <= MAX_ZOOM, f"zoom = {recipe.zoom:g}: use 0..{MAX_ZOOM:g} (the scale is drawn in 1 ± "
                                           "zoom; 0.1 is typical); a scale at or below 0 would flip the digit")
        need(0 <= recipe.shift <= MAX_SHIFT, f"shift = {recipe.shift:g}: use 0..{MAX_SHIFT:g} of the image side (0.1 "
                                             "is typical); further moves the digit out of the picture")
        need(0 <= self.min_lr <= recipe.learning_rate,
             f"min_lr = {self.min_lr}: must lie between 0 and learning_rate ({recipe.learning_rate})")
        need(self.scheduler in SCHEDULERS, f"scheduler = {self.scheduler!r}: choose one of {SCHEDULERS}")
        need(0 <= self.label_smoothing < 1,
             f"label_smoothing = {self.label_smoothing}: use 0 <= ε < 1 (0.1 is typical)")
        need(self.parallel in PARALLEL_MODES, f"parallel = {self.parallel!r}: choose one of {PARALLEL_MODES}")
        need(self.workers >= 0, f"workers = {self.workers}: use 0 (one per GPU) or a positive number of processes")
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             f"device = {self.device!r}: use auto, cpu or cuda")
        need(self.swa_epochs >= 0, f"swa_epochs = {self.swa_epochs}: use 0 (off) or a positive number of epochs")
        need(self.swa_epochs <= recipe.epochs,
             f"swa_epochs = {self.swa_epochs}: cannot average more than the {recipe.epochs} epochs trained")
        need(0 < self.pseudo_threshold <= 1,
             f"pseudo_threshold = {self.pseudo_threshold}: use 0 < threshold <= 1 (0.8 is the default; with "
             f"label_smoothing = {self.label_smoothing} a model's top probability reaches about "
             f"{1 - self.label_smoothing * 0.9:.2f} at most)")
        check_tta(self.tta)
        self.fold_indices()  # raises on a malformed list
        if together:
            self._check_together(need)

    def _check_together(self, need: Callable[[bool, str], None]) -> None:
        """Refuse a setting that acts only with another when that other makes it do nothing (or worse, silently).

        Rules, by field (besides swa_epochs <= epochs, min_lr <= learning_rate, folds_to_run below n_folds,
        StratifiedGroupKFold needing group_column, and model_spec's input_size / drop_path_rate per model, checked
        above):
          group_column ↔ fold_method; pseudo_threshold ↔ pseudo_labels; pretrained True ↔ a timm model with
          weights; cpu_bf16 ↔ device; workers ↔ parallel; parallel 'dp' ↔ device 'cpu'; warmup_epochs ↔ scheduler;
          rotate_deg, zoom and shift ↔ augment.
        A setting is refused only when it differs from its default (its model's recipe, for the recipe settings): a
        default never contradicts anything. Deliberately no rule:
          amp on a CPU, channels_last on a non-convolutional model: their defaults are True, nothing was asked;
          pretrained True on digitkit's own CNNs: they never load weights and the run says so (one pretrained = True
            serves a notebook switched between its CNNs and timm models);
          min_lr with scheduler 'none': the sweep sets min_lr itself (lr × ratio);
          pseudo_threshold against label_smoothing: the top probability reached is the earlier run's, under its own
            label_smoothing;
          a pretrained tag with pretrained False: a saved config holds pretrained resolved (False for 'auto' off
            Kaggle);
          tta and swa_epochs: core.choice scores each pair.
        """
        from .models import OWN_MODELS, has_pretrained_weights

        need(not self.group_column or self.fold_method in GROUP_FOLD_METHODS,
             f"group_column = {self.group_column!r} only acts with a group splitter, but fold_method = "
             f"{self.fold_method!r} ignores groups: set fold_method = 'StratifiedGroupKFold' (a group never spans two "
             "folds), or group_column = '' (none)")
        default_threshold = type(self).pseudo_threshold
        need(bool(self.pseudo_labels) or self.pseudo_threshold == default_threshold,
             f"pseudo_threshold = {self.pseudo_threshold:g} only acts with pseudo_labels, which is '' (off): set "
             f"pseudo_labels to an earlier run's inference output folder, or leave pseudo_threshold at "
             f"{default_threshold:g}")
        need(self.pretrained is not True or self.model in OWN_MODELS or has_pretrained_weights(self.model),
             f"pretrained = True, but timm has no pretrained weights for model = {self.model!r} (it would start from "
             "random weights, saying it started from timm's): set pretrained = False, or choose a model from "
             "timm.list_pretrained()")
        need(not (self.cpu_bf16 and self.device.startswith("cuda")),
             f"cpu_bf16 = True only acts on a CPU, but device = {self.device!r} (there amp sets the precision): set "
             "cpu_bf16 = False, or device = 'cpu'")
        need(not self.workers or self.parallel not in ("none", "dp"),
             f"workers = {self.workers} only acts with parallel = 'ddp' or 'folds' (or 'auto' on several GPUs), but "
             f"parallel = {self.parallel!r} trains in this process: set workers = 0, or parallel = 'folds'")
        need(not (self.parallel == "dp" and self.device == "cpu"),
             "parallel = 'dp' splits each batch over several GPUs, but device = 'cpu': set parallel = 'none' (or "
             "'folds': one process per fold), or device = 'auto'")
        changed = self.recipe_sources()
        need(self.scheduler == "CosineAnnealingWithWarmupLR" or not self.warmup_epochs or
             changed["warmup_epochs"] == "recipe",
             f"warmup_epochs = {self.warmup_epochs:g} only acts with scheduler = 'CosineAnnealingWithWarmupLR', but "
             f"scheduler = {self.scheduler!r} has no warm-up: set scheduler = 'CosineAnnealingWithWarmupLR', or "
             "warmup_epochs = 0")
        for key in ("rotate_deg", "zoom", "shift"):
            need(self.augment or changed[key] == "recipe" or not getattr(self, key),
                 f"{key} = {getattr(self, key):g} only acts with augment = True, but augment = False: set augment = "
                 f"True, or {key} = 0 (or None: the model's recipe)")

    def fold_indices(self) -> list[int]:
        """The folds this run trains, in order."""
        if not str(self.folds_to_run).strip():
            return list(range(self.n_folds))
        try:
            folds = [int(part) for part in str(self.folds_to_run).split(",") if part.strip()]
        except ValueError:
            raise ConfigError(
                f"folds_to_run = {self.folds_to_run!r}: use comma-separated fold numbers, e.g. '0,1'") from None
        bad = [f for f in folds if not 0 <= f < self.n_folds]
        if bad:
            raise ConfigError(f"folds_to_run = {self.folds_to_run!r}: folds {bad} do not exist with "
                              f"n_folds = {self.n_folds}")
        return folds

    def model_spec(self) -> dict[str, Any]:
        """The architecture this run trains (``core.models.model_spec`` of its model, input size and drop-path):
        what manifest.json records and inference rebuilds."""
        from .models import model_spec  # imported here: checking a timm name needs timm

        recipe = self.resolved
        return model_spec(self.model, input_size=recipe.input_size, drop_path_rate=recipe.drop_path_rate)

    def _check_model(self) -> None:
        """The model exists and takes this input size and drop-path (core.models.model_spec's message, as a
        ConfigError)."""
        try:
            self.model_spec()
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def training_settings(self) -> dict[str, Any]:
        """The values of ``TRAINING_KEYS``: equal settings mean a saved fold or epoch can be reused."""
        return {key: getattr(self, key) for key in TRAINING_KEYS}

    def sweep_settings(self) -> dict[str, Any]:
        """The values of ``SWEEP_FIXED_KEYS``: a sweep's cells are comparable only under equal settings."""
        return {key: getattr(self, key) for key in SWEEP_FIXED_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        from .atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _settings_of(cls: type) -> dict[str, Setting]:
    """Each field of the dataclass ``cls`` → the ``Setting`` its annotation carries (exactly one per field)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    settings = {}
    for field in dataclasses.fields(cls):
        found = [meta for meta in getattr(hints[field.name], "__metadata__", ()) if isinstance(meta, Setting)]
        assert len(found) == 1, f"{cls.__name__}.{field.name}: say what it is, e.g. Training[int] or Runtime[int]"
        settings[field.name] = found[0]
    return settings


SETTINGS: dict[str, Setting] = _settings_of(Config)
# Settings that change what training computes: saved work made under other values is never reused.
TRAINING_KEYS = tuple(key for key, setting in SETTINGS.items() if setting.training)
# Training settings a sweep's cells share (core.sweep): a sweep folder made under other values is not continued.
SWEEP_FIXED_KEYS = tuple(key for key, setting in SETTINGS.items() if setting.training and setting.fixed_in_sweep)
# Settings added after runs were first saved, with the value every run had before them: a saved config that lacks one
# (manifest.json, config.json, a fold checkpoint, a sweep's setup) ran with this value, not today's family recipe.
LEGACY_VALUES: dict[str, Any] = {key: setting.legacy for key, setting in SETTINGS.items()
                                 if setting.legacy is not NO_LEGACY}
assert set(RECIPE_KEYS) <= set(SETTINGS), "every core.families Recipe setting is a Config field"


def with_legacy_values(saved: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """``saved`` settings, with ``LEGACY_VALUES`` for those it lacks (only those among ``keys``, when given)."""
    legacy = LEGACY_VALUES if keys is None else {key: LEGACY_VALUES[key] for key in keys if key in LEGACY_VALUES}
    return {**legacy, **saved}


def check_tta(tta: str) -> None:
    """A ``tta`` parameter (train and infer notebooks): "auto", "none" or known views, else ConfigError naming it."""
    from .tta import check_setting  # imported here: the view names live in one place, with their torch code

    try:
        check_setting(tta)
    except ValueError as err:
        raise ConfigError(f"tta = {tta!r}: {err}") from None


class SettingsClass(typing.Protocol):
    """What ``settings_from_mapping`` builds: a dataclass with a ``validate()``."""

    __dataclass_fields__: typing.ClassVar[dict[str, dataclasses.Field[Any]]]

    def validate(self) -> None: ...


Settings = typing.TypeVar("Settings", bound=SettingsClass)


def settings_from_mapping(cls: type[Settings], values: Mapping[str, Any], *, error: type[Exception] = ConfigError,
                          coercers: Mapping[str, Callable[[Any], Any]] | None = None,
                          validate: bool = True) -> Settings:
    """A settings dataclass (``Config``, a notebook's own settings) from a notebook's ``globals()`` or a JSON dict:
    each field that ``values`` holds (None: keep the default) coerced to its type (``coercers`` for special ones),
    unknown keys ignored, then ``validate()``d (unless ``validate`` is False). Its defaults are the one home of the
    notebook's defaults: build.py renders the parameters cell from them."""
    hints = typing.get_type_hints(cls)
    coercers = coercers or {}
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        value = values.get(field.name)
        if value is not None:
            coerce_field = coercers.get(field.name)
            kwargs[field.name] = coerce_field(value) if coerce_field else coerce(field.name, value, hints[field.name],
                                                                                 error)
    settings = cls(**kwargs)
    if validate:
        settings.validate()
    return settings


def is_whole(value: Any, minimum: int = 1) -> bool:
    """An int (not a bool) of at least ``minimum``: the check of every count-like parameter outside ``Config``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def coerce_pretrained(value: Any) -> bool | str:
    """``pretrained`` from a notebook or the command line: "auto", True or False ("true"/"false"/"1"/"0" too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():  # "" is no choice here, although coerce reads it as False
        if value.strip().lower() == "auto":
            return "auto"
        try:
            return coerce("pretrained", value, bool)  # its words for True and False
        except ConfigError:
            pass
    raise ConfigError(f"pretrained = {value!r}: use 'auto' (timm models on Kaggle), True or False")


def coerce(name: str, value: Any, hint: Any, error: type[Exception] = ConfigError) -> Any:
    """Turn parameter ``name`` (possibly a string from the command line) into ``hint`` (bool, int, float, str, or
    Optional of one); raises ``error`` naming the parameter when it cannot."""
    target = typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if isinstance(value, bool) and target in (int, float):  # True is an int to Python, not a count or a rate
        raise error(f"parameter {name} = {value!r}: expected {_KIND[target]}")
    if isinstance(value, target):
        return value
    try:
        if target is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if target is float:
            return float(value)
        if target is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    raise error(f"parameter {name} = {value!r}: expected {_KIND.get(target, 'a ' + target.__name__)}")


_KIND = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}

