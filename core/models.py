"""Models that map (N, in_chans, 28, 28) images to (N, num_classes) logits: our ``smallcnn`` and ``fastcnn``, and
timm's families.

What each family needs at 28x28 lives in one table, ``_FAMILIES``. ``model_spec(name)`` resolves it into a
JSON-serialisable dict that training writes to manifest.json, and ``create_model_from_spec(spec)`` rebuilds the
same architecture from it in the inference notebook (``pretrained=False``, then ``load_state_dict``).
"""
from __future__ import annotations

import copy
import difflib
import functools
import os
import json
import logging
from collections import OrderedDict
from typing import Any, Callable, Optional

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .augment import MNIST_MEAN, MNIST_STD
from .data import IMAGE_SIDE, NUM_CLASSES

_logger = logging.getLogger(__name__)

BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation: the value padding must add

# Architecture-name prefix -> what the family needs at 28x28; the first matching prefix wins.
# - convnext / edgenext downsample by 32 with stride-2 convs that fail below 32 px: pad to 32.
# - tiny_vit's windows must tile its 7/4/2/1-px feature maps, else it pads every stage to 7/14/7 windows (~12x slower).
# - vit / eva02 have a fixed grid of position embeddings: build it for 28 px with 4-px patches (7x7 tokens).
# Any other timm name is passed through with in_chans/num_classes only, as a non-convolutional model.
_FAMILIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("smallcnn", {"timm_kwargs": {}, "pad_to": None, "convolutional": True}),
    ("fastcnn", {"timm_kwargs": {}, "pad_to": None, "convolutional": True}),
    ("efficientnet", {"timm_kwargs": {}, "pad_to": None, "convolutional": True}),
    ("tf_efficientnet", {"timm_kwargs": {}, "pad_to": None, "convolutional": True}),
    ("convnext", {"timm_kwargs": {}, "pad_to": 32, "convolutional": True}),
    ("edgenext", {"timm_kwargs": {}, "pad_to": 32, "convolutional": True}),
    ("tiny_vit", {"timm_kwargs": {"window_sizes": [7, 4, 2, 1]}, "pad_to": None, "convolutional": False}),
    ("vit_", {"timm_kwargs": {"img_size": IMAGE_SIDE, "patch_size": 4}, "pad_to": None, "convolutional": False}),
    ("eva02", {"timm_kwargs": {"img_size": IMAGE_SIDE, "patch_size": 4}, "pad_to": None, "convolutional": False}),
)
_PASS_THROUGH: dict[str, Any] = {"timm_kwargs": {}, "pad_to": None, "convolutional": False}


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


def _family(arch: str) -> tuple[Optional[str], dict[str, Any]]:
    for prefix, settings in _FAMILIES:
        if arch.startswith(prefix):
            return prefix, settings
    return None, _PASS_THROUGH


def _check_timm_name(name: str) -> None:
    if timm.is_model(name):
        return
    arch = name.split(".", 1)[0]
    stem = next((part for part in arch.split("_") if len(part) > 2), arch)
    close = difflib.get_close_matches(arch, timm.list_models(), n=5)
    hint = f" (close matches: {', '.join(close)})" if close else ""
    raise ValueError(f"model = {name!r} is neither one of {sorted(OWN_MODELS)} nor a timm model{hint}; "
                     f"list candidates with timm.list_models('*{stem}*')")


def model_spec(name: str, *, num_classes: int = NUM_CLASSES, in_chans: int = 1,
               timm_kwargs: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Resolve a model name into everything needed to rebuild its architecture.

    Args:
        name: ``"smallcnn"``, ``"fastcnn"``, ``"fastcnn_wide"`` or a timm model name, with or without a pretrained tag
            (``"convnext_atto.d2_in1k"``).
        num_classes: Output logits per image.
        in_chans: Input channels (1 for MNIST; timm adapts a pretrained stem to it).
        timm_kwargs: Constructor keyword arguments that override the family's defaults, e.g. ``{"patch_size": 7}``
            for a ViT or ``{"drop_path_rate": 0.1}``; for digitkit's own models they go to ``SmallCNN`` /
            ``FastCNN``.

    Returns:
        A JSON-serialisable dict: ``name``, ``family`` (the matched prefix, None if passed through),
        ``timm_kwargs``, ``pad_to`` (px or None), ``pad_value`` (the normalised black background), ``input_size``
        (px), ``in_chans``, ``num_classes``, ``convolutional`` (whether channels_last helps).

    Raises:
        ValueError: For an unknown name or keyword arguments that JSON cannot hold.
    """
    if name not in OWN_MODELS:
        _check_timm_name(name)
    family, settings = _family(name.split(".", 1)[0])
    spec = {
        "name": name,
        "family": family,
        "timm_kwargs": {**settings["timm_kwargs"], **(timm_kwargs or {})},
        "pad_to": settings["pad_to"],
        "pad_value": BACKGROUND,
        "input_size": IMAGE_SIDE,
        "in_chans": in_chans,
        "num_classes": num_classes,
        "convolutional": settings["convolutional"],
    }
    try:
        return json.loads(json.dumps(spec))  # the form manifest.json gives back: tuples become lists
    except TypeError as error:
        raise ValueError(f"timm_kwargs = {timm_kwargs!r} must be JSON-serialisable to go into manifest.json: {error}")


def create_model_from_spec(spec: dict[str, Any], *, pretrained: bool = False) -> nn.Module:
    """Build the architecture a ``model_spec`` describes (as read back from manifest.json).

    Args:
        spec: A dict returned by ``model_spec``.
        pretrained: Load timm's pretrained weights (downloads; needs internet). Inference uses False and then
            ``load_state_dict``.

    Returns:
        A module mapping (N, in_chans, input_size, input_size) floats to (N, num_classes) logits. When the family
        needs padding it is ``nn.Sequential(pad=PadTo, model=<timm model>)``, so state_dict keys start "model.".
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
        try:
            model = timm.create_model(spec["name"], pretrained=pretrained, num_classes=spec["num_classes"],
                                      in_chans=spec["in_chans"], **kwargs)
        except Exception as err:  # hub, HTTP and file errors differ between timm / huggingface_hub versions
            if not _is_download_error(err):
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
    if spec["pad_to"]:
        pad = PadTo(spec["pad_to"], value=spec.get("pad_value", 0.0))
        model = nn.Sequential(OrderedDict(pad=pad, model=model))
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
    none), timm models when ``setting`` is True, or when it is "auto" and the run is on Kaggle (whose train kernel
    has internet; nothing is downloaded elsewhere unless asked)."""
    if name in OWN_MODELS:
        return False
    return setting is True or (setting == "auto" and on_kaggle)


def describe_pretrained(setting: bool | str, name: str, *, on_kaggle: bool) -> str:
    """One line for the log: where ``name``'s starting weights come from, and how to change it."""
    if name in OWN_MODELS:
        return f"{name}: digitkit's own architecture, trained from scratch (it has no pretrained weights)"
    if resolve_pretrained(setting, name, on_kaggle=on_kaggle):
        return f"{name}: starting from timm's pretrained weights (downloaded: the kernel needs internet on)"
    why = "pretrained = False" if setting is False else "pretrained = 'auto' off Kaggle"
    return f"{name}: trained from scratch ({why}; pretrained = True downloads timm's weights)"


def create_model(name: str, *, pretrained: bool = False, num_classes: int = NUM_CLASSES, in_chans: int = 1,
                 timm_kwargs: Optional[dict[str, Any]] = None) -> nn.Module:
    """Build a model that takes (N, in_chans, 28, 28) images and returns (N, num_classes) logits.

    Same as ``create_model_from_spec(model_spec(name, ...), pretrained=pretrained)``; see ``model_spec``.
    """
    spec = model_spec(name, num_classes=num_classes, in_chans=in_chans, timm_kwargs=timm_kwargs)
    return create_model_from_spec(spec, pretrained=pretrained)


def is_convolutional(name: str) -> bool:
    """Whether the model is convolutional throughout, so ``channels_last`` memory format speeds it up."""
    return model_spec(name)["convolutional"]


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
