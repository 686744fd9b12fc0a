"""Predict with a trained run as its manifest.json says: which weights (best epoch or SWA) and which TTA views.

The inference notebook's steps, in order: ``read_trained_manifest`` (the run, refused unless finished: run_state) →
``inference_views`` → ``predict_folds`` (each fold's model built with ``pretrained=False``, its weights hash-checked
and loaded, the test images predicted through every view) → ``write_predictions`` (the folds averaged,
submission.csv). ``run_inference`` is all of them in one call. ``predict_folds`` also serves the ensemble notebook (a
group given as weights) and training itself (scoring the TTA views on each fold's validation rows).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .atomic import write_text_atomic
from .checkpoint import load_weights
from .config import ConfigError, check_tta, is_whole, settings_from_mapping
from .data import TestData, find_competition_file, read_test
from .device import describe_device, resolve_device
from .manifest import MANIFEST_NAME, describe_manifest, inference_choice, sha256_file, verify_files
from .models import create_model_from_spec, is_convolutional
from .paths import find_input_dir
from .predict import predict_probs
from .run_state import finished_manifest
from .submission import make_submission, write_submission
from .tta import check_setting, make_views, parse_views

log = logging.getLogger(__name__)
WEIGHT_KINDS = ("best", "swa")


@dataclasses.dataclass
class InferenceSettings:
    """The inference notebook's settings; its parameters cell is rendered from these fields and defaults."""

    # ---- compute
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 1024  # test images per forward pass
    # ---- test-time augmentation: auto (the views training found helpful on OOF), none, or comma-separated views
    tta: str = "auto"  # e.g. "identity,shift_left,shift_right,rotate_ccw,rotate_cw"

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> InferenceSettings:
        return settings_from_mapping(cls, values)

    def validate(self) -> None:
        if not is_whole(self.batch_size):
            raise ConfigError(f"batch_size = {self.batch_size!r}: must be a positive integer (test images per "
                              f"forward pass; {InferenceSettings.batch_size} is the default)")
        check_tta(self.tta)


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
    setting = check_setting(setting)
    if setting == "auto":
        return inference_choice(manifest)[1]
    return [] if setting == "none" else parse_views(setting)


def load_fold_model(spec: dict[str, Any], path: str | Path, *, device: torch.device,
                    channels_last: bool) -> nn.Module:
    """Build the manifest's architecture with ``pretrained=False`` (no download) and load one fold's weights."""
    model = create_model_from_spec(spec, pretrained=False).to(device)
    load_weights(model, path, model_name=spec["name"])
    return model.to(memory_format=torch.channels_last) if channels_last else model


def uses_channels_last(manifest: dict[str, Any]) -> bool:
    return bool(manifest["config"].get("channels_last", False)) and is_convolutional(manifest["model"]["spec"]["name"])


def predict_folds(weights_dir: str | Path, manifest: dict[str, Any], images: torch.Tensor, *, weights: str = "best",
                  views: Sequence[str] = (),
                  batch_size: int = InferenceSettings.batch_size) -> dict[str, np.ndarray]:
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
    for entry, name in zip(manifest["folds"], names, strict=True):
        model = load_fold_model(spec, weights_dir / name, device=images.device, channels_last=channels_last)
        per_fold[f"fold{entry['fold']}"] = predict_probs(model, images, views=view_fns, batch_size=batch_size,
                                                         channels_last=channels_last)
        log.info("fold %d predicted (%s weights, %d view%s)", entry["fold"], weights, len(view_fns),
                 "" if len(view_fns) == 1 else "s")
    return per_fold


@dataclasses.dataclass
class InferenceRun:
    submission_path: Path
    test_probs: np.ndarray  # (n_test, 10), the average over folds
    n_models: int
    weights: str = "best"  # which weights of each fold: best epoch or SWA
    views: list[str] = dataclasses.field(default_factory=list)  # TTA views averaged ([] = none)

    @property
    def predictions(self) -> np.ndarray:
        """int (n_test,): the submitted digit of each test row."""
        return self.test_probs.argmax(1)

    @property
    def submission(self) -> pd.DataFrame:
        """submission.csv as written: ``ImageId`` (1..n_test), ``Label``."""
        return make_submission(self.test_probs)


def find_weights_dir(explicit: str | Path | None) -> Path:
    """The folder holding manifest.json: the parameter, else the attached weights dataset / kernel output."""
    return find_input_dir(explicit, MANIFEST_NAME, "weights dir")


def read_trained_manifest(weights_dir: str | Path) -> dict[str, Any]:
    """manifest.json of a finished training run; any other is refused with its one description
    (core.run_state: "unfinished: 2 of 5 folds trained — …", "broken: …", "empty: …").

    Raises:
        RunStateError: (a ManifestError) the run is not finished.
    """
    return finished_manifest(weights_dir)


def chosen_views(tta: str, manifest: dict[str, Any]) -> list[str]:
    """``inference_views``, with a warning when they are not the views training chose (then oof.csv does not
    describe the test predictions)."""
    views = inference_views(tta, manifest)
    chosen = inference_choice(manifest)[1]
    if views != chosen:
        log.warning("TTA %s differs from training's choice %s: oof.csv does not describe these test predictions",
                    views or "none", chosen or "none")
    return views


def write_predictions(output_dir: str | Path, per_fold: dict[str, np.ndarray], *, test: TestData,
                      manifest: dict[str, Any], weights_dir: str | Path, weights: str,
                      views: Sequence[str]) -> InferenceRun:
    """Average the folds' (n_test, 10) probabilities and write ``submission.csv``, ``test_probs.npz`` (each fold's
    and their ``mean``) and ``test_probs.json`` (what made them, for the ensemble notebook)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    mean_probs = np.mean(list(per_fold.values()), axis=0)
    arrays: dict[str, Any] = {"mean": mean_probs, **per_fold}  # np.savez's **kwds: ArrayLike
    np.savez(output_dir / "test_probs.npz", **arrays)
    provenance = {"weights": weights, "tta": list(views), "test_sha256": test.fingerprint,
                  "n_test": len(mean_probs),
                  "manifest_sha256": sha256_file(Path(weights_dir) / MANIFEST_NAME),
                  "folds_sha256": manifest.get("files", {}).get("folds.csv", ""),  # pseudo-labels need the same folds
                  "model": manifest["model"]["spec"]["name"]}
    write_text_atomic(output_dir / "test_probs.json", json.dumps(provenance, indent=2) + "\n")
    path = write_submission(output_dir / "submission.csv", make_submission(mean_probs), n_test=len(mean_probs))
    return InferenceRun(submission_path=path, test_probs=mean_probs, n_models=len(per_fold), weights=weights,
                        views=list(views))


def run_inference(*, weights_dir: str | Path, data_dir: str | Path, output_dir: str | Path,
                  device: str = InferenceSettings.device, batch_size: int = InferenceSettings.batch_size,
                  tta: str = InferenceSettings.tta) -> InferenceRun:
    """Predict test.csv with every fold model listed in ``weights_dir``/manifest.json: views, then folds averaged.

    Each model is built from the manifest's spec with ``pretrained=False`` (no download: the kernel runs offline)
    and loaded with ``weights_only=True`` after its sha256 is checked; the manifest says which weights (best epoch or
    SWA). ``tta``: "auto" = the views training found helpful on OOF (manifest ``inference.tta``), "none", or a
    comma-separated view list (core.tta). Writes what ``write_predictions`` writes.
    """
    InferenceSettings(device=device, batch_size=batch_size, tta=tta).validate()
    torch_device = resolve_device(device)
    manifest = read_trained_manifest(weights_dir)
    views = chosen_views(tta, manifest)
    weights = inference_choice(manifest)[0]
    log.info("device: %s; %s", describe_device(torch_device), describe_manifest(manifest, views=views))
    test = read_test(find_competition_file(data_dir, "test"))
    images = torch.from_numpy(test.images).to(torch_device)
    per_fold = predict_folds(weights_dir, manifest, images, weights=weights, views=views, batch_size=batch_size)
    return write_predictions(output_dir, per_fold, test=test, manifest=manifest, weights_dir=weights_dir,
                             weights=weights, views=views)

