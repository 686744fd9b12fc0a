"""Models that map (N, in_chans, 28, 28) images to (N, num_classes) logits: our ``smallcnn`` and ``fastcnn``, and
timm's families.

What each family needs lives in one table, core.families ``FAMILIES`` (plain data: a ``Config`` reads its recipes
without importing torch): how to build it at an input side (padding, window and patch sizes) and its training
recipe. ``model_spec(name, input_size=...)`` resolves it into a JSON-serialisable dict that training writes to
manifest.json, and ``create_model_from_spec(spec)`` rebuilds the same architecture from it in the inference notebook
(``pretrained=False``, then ``load_state_dict``).
"""
from __future__ import annotations

import copy
import difflib
import functools
import os
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .augment import MNIST_MEAN, MNIST_STD
from .data import IMAGE_SIDE, NUM_CLASSES
from .families import FAMILIES, family_of, training_recipe  # noqa: F401 (the table's names, importable here too)

_logger = logging.getLogger(__name__)

BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation: the value padding must add
MAX_INPUT_SIZE = 448  # px: beyond this a 28-px digit is only blur, at a large cost


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

    def __init__(self, *, in_chans: int = 1, num_classes: int = NUM_CLASSES,
                 widths: tuple[int, int, int] = (16, 32, 64), drop_rate: float = 0.2):
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
               drop_path_rate: float = 0.0, timm_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
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
        raise ValueError(
            f"timm_kwargs = {timm_kwargs!r} must be JSON-serialisable to go into manifest.json: {error}") from None


def create_model_from_spec(spec: dict[str, Any], *, pretrained: bool = False,
                           pretrained_file: str | None = None) -> nn.Module:
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
    get_classifier = getattr(model, "get_classifier", None)  # timm's models have one
    if family_of(spec["name"]).reset_head and callable(get_classifier):
        head = get_classifier()
        if isinstance(head, nn.Linear):
            head.reset_parameters()
    front: OrderedDict[str, nn.Module] = OrderedDict()
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
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, (OSError, ConnectionError, TimeoutError)) or \
                type(cause).__module__.split(".")[0] in _NETWORK_MODULES:
            return True
        frame = cause.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        raised_in = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
        if raised_in.startswith("timm.models._hub") or raised_in.split(".")[0] in _NETWORK_MODULES:
            return True  # e.g. timm 0.9: "Hugging Face hub model specified but package not installed"
        cause = cause.__cause__ or cause.__context__
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
                 timm_kwargs: dict[str, Any] | None = None) -> nn.Module:
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
