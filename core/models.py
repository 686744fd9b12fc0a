"""Models that map (N, in_chans, 28, 28) images to (N, num_classes) logits: our ``smallcnn`` and ``fastcnn``, and
timm's families.

What each family needs lives in one table, ``FAMILIES``: how to build it at an input side (padding, window and
patch sizes) and its training recipe (input size, epochs, batch size, learning rate, warm-up, weight decay,
drop-path, augmentation strength), which a run's unset settings take (core.config). ``model_spec(name,
input_size=...)`` resolves it into a JSON-serialisable dict that training writes to manifest.json, and
``create_model_from_spec(spec)`` rebuilds the same architecture from it in the inference notebook
(``pretrained=False``, then ``load_state_dict``).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import os
import json
import logging
from collections import OrderedDict
from typing import Any, Callable, Mapping, Optional

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .augment import MNIST_MEAN, MNIST_STD
from .data import IMAGE_SIDE, NUM_CLASSES

_logger = logging.getLogger(__name__)

BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation: the value padding must add

# The settings a model family's recipe holds (core.config.Config fields). A Config field left None takes its family's
# value; BASE_RECIPE is the Kaggle T4×2 recipe of digitkit's own CNNs and what a family does not change.
RECIPE_KEYS = ("input_size", "epochs", "batch_size", "learning_rate", "warmup_epochs", "weight_decay",
               "drop_path_rate", "rotate_deg", "zoom", "shift")
BASE_RECIPE: dict[str, Any] = {"input_size": IMAGE_SIDE, "epochs": 40, "batch_size": 128, "learning_rate": 2e-3,
                               "warmup_epochs": 1.0, "weight_decay": 1e-2, "drop_path_rate": 0.0,
                               "rotate_deg": 10.0, "zoom": 0.10, "shift": 0.10}
MAX_INPUT_SIZE = 448  # px: beyond this a 28-px digit is only blur, at a large cost


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


VIT_PATCH = 7  # px: 4x4 tokens at 28 px. 4-px patches (7x7 tokens) cost ~3x the FLOPs and learnt slower (docs/experiments/timm-families.md)


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
        recipe: Training settings (``RECIPE_KEYS``) that differ from ``BASE_RECIPE``; measured in
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


def training_recipe(name: str) -> dict[str, Any]:
    """The training settings (``RECIPE_KEYS``) that model ``name`` gets when a run leaves them unset (None):
    ``BASE_RECIPE`` with its family's values."""
    return {**BASE_RECIPE, **family_of(name).recipe}


def recipe_name(name: str) -> str:
    """Whose recipe ``name`` trains with, in words: "efficientnet's" or "digitkit's base"."""
    family = family_of(name)
    return f"{family.prefix.rstrip('_')}'s" if family.recipe else "digitkit's base"


def _conv_bn_relu(in_chs: int, out_chs: int) -> list[nn.Module]:
    return [nn.Conv2d(in_chs, out_chs, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(out_chs),
            nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A VGG-style CNN for 28x28 digits (~0.29 M parameters at the default widths).

    Three blocks of (conv3x3-BN-ReLU) x 2 at widths 32/64/128; max-pooling after the first two blocks
    (28 -> 14 -> 7 px), then global average pooling, dropout and a linear classifier.

    Args:
        in_chans: Input channels.
        num_classes: Output logits per image.
        widths: Channels of each block.
        drop_rate: Dropout probability before the classifier.
    """

    def __init__(self, *, in_chans: int = 1, num_classes: int = NUM_CLASSES, widths: tuple[int, ...] = (32, 64, 128),
                 drop_rate: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = []
        chs = in_chans
        for i, width in enumerate(widths):
            layers += _conv_bn_relu(chs, width) + _conv_bn_relu(width, width)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            chs = width
        self.num_classes = num_classes
        self.num_features = chs
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_classes) logits."""
        x = self.features(x).mean(dim=(2, 3))
        return self.head(self.drop(x))


class FastCNN(nn.Module):
    """A lean CNN for CPU training: ~0.07 M parameters, 11 MFLOP per image forward (smallcnn: 0.29 M, 58 MFLOP).

    On a CPU, training a 28x28 CNN is bound by the full-resolution layers, whose BatchNorm and ReLU passes over
    memory cost as much as their convolutions; smallcnn runs two 32-channel convs at 28x28. Here only a thin stem
    runs at 28x28, then two conv pairs at 14x14 and 7x7, global average pooling, dropout and a linear classifier
    (about 2.3x the images per second of smallcnn on a 2-core CPU; 0.9955 on one fold of the 42k after 12 epochs)::

        conv3x3(in->w0) 28px, maxpool | conv3x3(w0->w1), conv3x3(w1->w1) 14px, maxpool | conv3x3(w1->w2),
        conv3x3(w2->w2) 7px | mean over 7x7 | dropout | linear(w2->num_classes)

    Args:
        in_chans: Input channels.
        num_classes: Output logits per image.
        widths: Channels of the stem and of the two conv pairs.
        drop_rate: Dropout probability before the classifier.
    """

    def __init__(self, *, in_chans: int = 1, num_classes: int = NUM_CLASSES, widths: tuple[int, int, int] = (16, 32, 64),
                 drop_rate: float = 0.2):
        super().__init__()
        assert len(widths) == 3, "fastcnn takes three widths: stem, 14 px pair, 7 px pair"
        w0, w1, w2 = widths
        self.num_classes = num_classes
        self.num_features = w2
        self.features = nn.Sequential(
            *_conv_bn_relu(in_chans, w0), nn.MaxPool2d(2),
            *_conv_bn_relu(w0, w1), *_conv_bn_relu(w1, w1), nn.MaxPool2d(2),
            *_conv_bn_relu(w1, w2), *_conv_bn_relu(w2, w2))
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(w2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_classes) logits."""
        x = self.features(x).mean(dim=(2, 3))
        return self.head(self.drop(x))


class PretrainedWeightsError(RuntimeError):
    """timm could not fetch a model's pretrained weights (no internet, or the hub refused)."""


# digitkit's own architectures (no pretrained weights); every other name goes to timm. ``fastcnn_wide`` is fastcnn at
# 1.5x the widths (0.16 M parameters, 25 MFLOP per image; about 1.8x fastcnn's time per epoch on a CPU core).
OWN_MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": SmallCNN, "fastcnn": FastCNN, "fastcnn_wide": functools.partial(FastCNN, widths=(24, 48, 96))}


class PadTo(nn.Module):
    """Pad (N, C, H, W) images symmetrically with a constant up to ``size`` x ``size``; larger ones pass unchanged.

    The constant should be the inputs' background: 0 for [0, 1] pixels, ``BACKGROUND`` for normalised ones (what
    ``model_spec`` records). A constant, unlike replicate padding, has a deterministic backward pass on CUDA.

    Args:
        size: Target height and width in pixels.
        value: Fill value of the added border.
    """

    def __init__(self, size: int, value: float = 0.0):
        super().__init__()
        self.size = size
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dh, dw = max(self.size - x.shape[-2], 0), max(self.size - x.shape[-1], 0)
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), value=self.value)

    def extra_repr(self) -> str:
        return f"size={self.size}, value={self.value}"


class ResizeTo(nn.Module):
    """Resize (N, C, H, W) images bilinearly to ``size`` x ``size`` on their device (the families built for larger
    inputs: ``Config.input_size``). Inside the model, so training, validation, TTA views and inference all see the
    same resize.

    Args:
        size: Target height and width in pixels.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}, bilinear"


def _check_timm_name(name: str) -> None:
    """``name`` is a timm architecture and, when it carries a pretrained tag (``convnext_atto.d2_in1k``), one of that
    architecture's tags in timm's registry (no download); else a ValueError with the closest names."""
    arch, _, tag = name.partition(".")
    if not timm.is_model(name):
        stem = next((part for part in arch.split("_") if len(part) > 2), arch)
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f" (close matches: {', '.join(close)})" if close else ""
        raise ValueError(f"model = {name!r} is neither one of {sorted(OWN_MODELS)} nor a timm model{hint}; "
                         f"list candidates with timm.list_models('*{stem}*')")
    if not tag:
        return
    tagged = timm.list_models(f"{arch}.*", include_tags=True)  # this filter reads alike in timm 0.9 and 1.0
    if name in tagged:
        return
    if not tagged:
        raise ValueError(f"model = {name!r}: timm has no pretrained tags for {arch}; use model = {arch!r}")
    close = difflib.get_close_matches(name, tagged, n=3, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"model = {name!r}: {tag!r} is not one of timm's pretrained tags for {arch}; {hint}its tags: "
                     f"{', '.join(t.partition('.')[2] for t in tagged[:8])}{' …' if len(tagged) > 8 else ''} "
                     f"(timm.list_pretrained('{arch}.*'))")


def has_pretrained_weights(name: str) -> bool:
    """Whether timm holds pretrained weights for ``name`` (with its tag, or its default tag): digitkit's own
    architectures have none, nor do timm's ``.untrained`` configurations (timm would warn and start from random)."""
    return name not in OWN_MODELS and timm.is_model_pretrained(name)


def model_spec(name: str, *, num_classes: int = NUM_CLASSES, in_chans: int = 1, input_size: int = IMAGE_SIDE,
               drop_path_rate: float = 0.0, timm_kwargs: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Resolve a model name into everything needed to rebuild its architecture.

    Args:
        name: ``"smallcnn"``, ``"fastcnn"``, ``"fastcnn_wide"`` or a timm model name, with or without a pretrained tag
            (``"convnext_atto.d2_in1k"``).
        num_classes: Output logits per image.
        in_chans: Input channels (1 for MNIST; timm adapts a pretrained stem to it).
        input_size: The side (px) the 28-px digits are resized to (bilinear, inside the model) before the network;
            28 here, whatever the family's recipe says (``Config.model_spec`` passes the run's).
        drop_path_rate: Stochastic depth of a timm model (0: off); digitkit's own CNNs have none.
        timm_kwargs: Constructor keyword arguments that override the family's, e.g. ``{"patch_size": 7}`` for a
            ViT; for digitkit's own models they go to ``SmallCNN`` / ``FastCNN``.

    Returns:
        A JSON-serialisable dict: ``name``, ``family`` (the matched prefix, None if passed through),
        ``timm_kwargs``, ``input_size`` (px the network sees), ``pad_to`` (px or None), ``pad_value`` (the
        normalised black background), ``in_chans``, ``num_classes``, ``convolutional`` (whether channels_last helps).

    Raises:
        ValueError: For an unknown name, an input size the family cannot take, drop-path on a model without it, or
            keyword arguments that JSON cannot hold.
    """
    if name not in OWN_MODELS:
        _check_timm_name(name)
    if not IMAGE_SIDE <= input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"input_size = {input_size}: use {IMAGE_SIDE} (the digits as they are) up to "
                         f"{MAX_INPUT_SIZE} px")
    family = family_of(name)
    kwargs = dict(family.timm_kwargs(input_size))
    if drop_path_rate:
        if name in OWN_MODELS:
            raise ValueError(f"drop_path_rate = {drop_path_rate:g}: {name} has no residual branches to drop; set it "
                             "to 0 (or None: the model's recipe)")
        kwargs["drop_path_rate"] = drop_path_rate
    spec = {
        "name": name,
        "family": family.prefix or None,
        "timm_kwargs": {**kwargs, **(timm_kwargs or {})},
        "pad_to": family.min_side if input_size < family.min_side else None,
        "pad_value": BACKGROUND,
        "input_size": input_size,
        "in_chans": in_chans,
        "num_classes": num_classes,
        "convolutional": family.convolutional,
    }
    try:
        return json.loads(json.dumps(spec))  # the form manifest.json gives back: tuples become lists
    except TypeError as error:
        raise ValueError(f"timm_kwargs = {timm_kwargs!r} must be JSON-serialisable to go into manifest.json: {error}")


def create_model_from_spec(spec: dict[str, Any], *, pretrained: bool = False,
                           pretrained_file: Optional[str] = None) -> nn.Module:
    """Build the architecture a ``model_spec`` describes (as read back from manifest.json).

    Args:
        spec: A dict returned by ``model_spec``.
        pretrained: Load timm's pretrained weights (downloads; needs internet), adapted by timm to ``in_chans``,
            ``num_classes`` and the spec's input size (position embeddings, patch and attention-bias sizes).
            Inference uses False and then ``load_state_dict``.
        pretrained_file: With ``pretrained``, a local state dict (``torch.save``) of timm's architecture to load
            instead of the download, through the same filter and adaptation (timm's ``pretrained_cfg_overlay``;
            nothing is fetched).

    Returns:
        A module mapping (N, in_chans, 28, 28) floats to (N, num_classes) logits. When the digits are resized
        (``input_size`` > 28) or padded it is ``nn.Sequential(resize=ResizeTo, pad=PadTo, model=<network>)`` (either
        front module only where needed), so state_dict keys start "model.".
    """
    missing = {"name", "timm_kwargs", "pad_to", "in_chans", "num_classes"} - set(spec)
    if missing:
        raise ValueError(f"model spec lacks {sorted(missing)}: build it with model_spec(name)")
    kwargs = copy.deepcopy(spec["timm_kwargs"])
    if spec["name"] in OWN_MODELS:
        if pretrained:
            raise ValueError(f"model = {spec['name']!r} has no pretrained weights: set pretrained = False")
        model: nn.Module = OWN_MODELS[spec["name"]](in_chans=spec["in_chans"], num_classes=spec["num_classes"],
                                                    **kwargs)
    elif pretrained:
        if pretrained_file:  # a state dict: loaded as the hub's file would be (not as a custom .npz, e.g. vit's)
            kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_file), "custom_load": False}
        try:
            model = timm.create_model(spec["name"], pretrained=pretrained, num_classes=spec["num_classes"],
                                      in_chans=spec["in_chans"], **kwargs)
        except Exception as err:  # hub, HTTP and file errors differ between timm / huggingface_hub versions
            if not _is_download_error(err) or pretrained_file:
                raise
            offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
            raise PretrainedWeightsError(
                f"model = {spec['name']!r}: its pretrained weights could not be downloaded ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else 'no message'}). Pretrained "
                "weights need internet: on Kaggle, turn the train kernel's internet on (Settings > Internet; "
                "kernel-metadata enable_internet: true)"
                + ("; here HF_HUB_OFFLINE is set, which forbids any download" if offline else "")
                + "; or set pretrained = False to train from scratch") from err
    else:
        model = timm.create_model(spec["name"], pretrained=False, num_classes=spec["num_classes"],
                                  in_chans=spec["in_chans"], **kwargs)
    if family_of(spec["name"]).reset_head and hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Linear):
            head.reset_parameters()
    front = OrderedDict()
    if spec.get("input_size", IMAGE_SIDE) != IMAGE_SIDE:
        front["resize"] = ResizeTo(spec["input_size"])
    if spec["pad_to"]:
        front["pad"] = PadTo(spec["pad_to"], value=spec.get("pad_value", 0.0))
    if front:
        model = nn.Sequential(OrderedDict(**front, model=model))
    _logger.debug("model %s: %.2f M parameters", spec["name"], count_parameters(model) / 1e6)  # once per run: pipeline
    return model


_NETWORK_MODULES = ("huggingface_hub", "requests", "httpx", "httpcore", "urllib", "urllib3", "socket", "ssl")


def _is_download_error(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) comes from fetching weights: an OS / network error or the hub's own
    (their classes differ between huggingface_hub and timm versions), not a model that cannot be built."""
    while err is not None:
        if isinstance(err, (OSError, ConnectionError, TimeoutError)) or \
                type(err).__module__.split(".")[0] in _NETWORK_MODULES:
            return True
        frame = err.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        raised_in = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
        if raised_in.startswith("timm.models._hub") or raised_in.split(".")[0] in _NETWORK_MODULES:
            return True  # e.g. timm 0.9: "Hugging Face hub model specified but package not installed"
        err = err.__cause__ or err.__context__
    return False


def resolve_pretrained(setting: bool | str, name: str, *, on_kaggle: bool) -> bool:
    """Whether training starts ``name`` from pretrained weights: digitkit's own architectures never (they have
    none), timm models when ``setting`` is True (core.config refuses it for a model timm has no weights for), or when
    it is "auto", the run is on Kaggle (whose train kernel has internet; nothing is downloaded elsewhere unless
    asked) and timm has weights for the model."""
    if name in OWN_MODELS:
        return False
    return setting is True or (setting == "auto" and on_kaggle and has_pretrained_weights(name))


def describe_pretrained(setting: bool | str, name: str, *, on_kaggle: bool) -> str:
    """One line for the log: where ``name``'s starting weights come from, and how to change it."""
    if name in OWN_MODELS:
        return f"{name}: digitkit's own architecture, trained from scratch (it has no pretrained weights)"
    if resolve_pretrained(setting, name, on_kaggle=on_kaggle):
        return f"{name}: starting from timm's pretrained weights (downloaded: the kernel needs internet on)"
    if not has_pretrained_weights(name):
        return f"{name}: trained from scratch (timm has no pretrained weights for it)"
    why = "pretrained = False" if setting is False else "pretrained = 'auto' off Kaggle"
    return f"{name}: trained from scratch ({why}; pretrained = True downloads timm's weights)"


def create_model(name: str, *, pretrained: bool = False, num_classes: int = NUM_CLASSES, in_chans: int = 1,
                 input_size: int = IMAGE_SIDE, drop_path_rate: float = 0.0,
                 timm_kwargs: Optional[dict[str, Any]] = None) -> nn.Module:
    """Build a model that takes (N, in_chans, 28, 28) images and returns (N, num_classes) logits.

    Same as ``create_model_from_spec(model_spec(name, ...), pretrained=pretrained)``; see ``model_spec``.
    """
    spec = model_spec(name, num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                      drop_path_rate=drop_path_rate, timm_kwargs=timm_kwargs)
    return create_model_from_spec(spec, pretrained=pretrained)


def is_convolutional(name: str) -> bool:
    """Whether the model is convolutional throughout, so ``channels_last`` memory format speeds it up."""
    return family_of(name).convolutional


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters, trainable or not."""
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, in_chans: int = 1) -> int:
    """FLOP of one forward pass on one 28×28 image (2 × the multiply-adds of its convolutions and matrix products,
    counted by ``torch.utils.flop_counter``; training costs about 3 × this per image)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, IMAGE_SIDE, IMAGE_SIDE, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
