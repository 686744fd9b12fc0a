"""Predict with a trained run as its manifest.json says: which weights (best epoch or SWA) and which TTA views.

Shared by the inference notebook (test.csv), the ensemble notebook (a group given as weights, not probabilities) and
training itself (scoring the TTA views on each fold's validation rows).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import load_weights
from .manifest import verify_files
from .models import create_model_from_spec, is_convolutional
from .predict import predict_probs
from .tta import make_views, parse_views

log = logging.getLogger(__name__)
WEIGHT_KINDS = ("best", "swa")


def fold_weights_file(entry: dict[str, Any], kind: str) -> str:
    """The weights file of one manifest ``folds`` entry: ``weights`` (best epoch) or ``swa_weights``."""
    assert kind in WEIGHT_KINDS, kind
    name = entry.get("weights") if kind == "best" else entry.get("swa_weights")
    if not name:
        raise ValueError(f"fold {entry.get('fold')}: the manifest lists no {kind} weights; retrain with "
                         f"swa_epochs > 0 or use weights = 'best'")
    return name


def inference_views(setting: str, manifest: dict[str, Any]) -> list[str]:
    """The TTA views to use: "auto" = what training chose on OOF (``inference.tta``), "none" = [], else the list."""
    setting = (setting or "auto").strip()
    if setting == "auto":
        return parse_views(manifest.get("inference", {}).get("tta", []))
    if setting == "none":
        return []
    return parse_views(setting)


def load_fold_model(spec: dict[str, Any], path: str | Path, *, device: torch.device,
                    channels_last: bool) -> nn.Module:
    """Build the manifest's architecture with ``pretrained=False`` (no download) and load one fold's weights."""
    model = create_model_from_spec(spec, pretrained=False).to(device)
    load_weights(model, path, model_name=spec["name"])
    return model.to(memory_format=torch.channels_last) if channels_last else model


def uses_channels_last(manifest: dict[str, Any]) -> bool:
    return bool(manifest["config"].get("channels_last", False)) and is_convolutional(manifest["model"]["spec"]["name"])


def predict_folds(weights_dir: str | Path, manifest: dict[str, Any], images: torch.Tensor, *, weights: str = "best",
                  views: Sequence[str] = (), batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Every fold model's softmax on ``images``, averaged over ``views`` (none = the images as they are).

    Args:
        images: uint8 (N, 28, 28) on the device to predict on.
        weights: "best" or "swa": which file of each fold to load (hash-checked against the manifest first).

    Returns:
        ``{"fold<k>": float64 (N, 10)}`` in manifest order.
    """
    weights_dir = Path(weights_dir)
    names = [fold_weights_file(entry, weights) for entry in manifest["folds"]]
    verify_files(weights_dir, manifest, names=names)
    spec, channels_last = manifest["model"]["spec"], uses_channels_last(manifest)
    view_fns = make_views(views)
    per_fold = {}
    for entry, name in zip(manifest["folds"], names):
        model = load_fold_model(spec, weights_dir / name, device=images.device, channels_last=channels_last)
        per_fold[f"fold{entry['fold']}"] = predict_probs(model, images, views=view_fns, batch_size=batch_size,
                                                         channels_last=channels_last)
        log.info("fold %d predicted (%s weights, %d view%s)", entry["fold"], weights, len(view_fns),
                 "" if len(view_fns) == 1 else "s")
    return per_fold
