"""Fold-level resume: a rerun skips the folds a killed or timed-out run already finished.

When a fold ends, train_fold writes its result file (``<model>_fold<k>_oof.npz``, core.fold_result) and the run
rewrites manifest.json with ``"complete": false`` and the hashes of everything that fold produced. A rerun with the
same training settings on the same train.csv takes a fold from there (:func:`completed_fold`, which reads the file
with core.fold_result.load_fold_result) only when its weights and result file still match their hashes; anything
else is trained again (a fold that was cut mid-epoch continues from its ``_last.pth``, core.checkpoint). On Kaggle,
attach the previous version's output as an input: its fold files are copied into the output folder.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from .config import Config
from .fold_result import FoldResult, FoldResultError, entry_files, load_fold_result, model_stem
from .manifest import MANIFEST_NAME, ManifestError, read_manifest, verify_files
from .paths import KAGGLE_INPUT, given_path, search_inputs

log = logging.getLogger(__name__)


def completed_fold(output_dir: Path, config: Config, *, fingerprint: str, fold: int,
                   val_idx: np.ndarray) -> FoldResult | None:
    """The fold's result from an earlier run in ``output_dir``, if it is finished, made with the same settings on
    the same data, and every file still matches the manifest; else None (the fold is trained)."""
    if not (output_dir / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = read_manifest(output_dir)
    except ManifestError:
        return None
    if manifest.get("train_sha256") != fingerprint or \
            Config.from_saved(manifest.get("config", {})).training_settings() != config.training_settings() or \
            manifest.get("model", {}).get("spec") != config.model_spec():
        return None
    entry = next((e for e in manifest["folds"] if e["fold"] == fold and e.get("oof_file")), None)
    if entry is None:
        return None
    try:
        verify_files(output_dir, manifest, entry_files(entry))
    except ManifestError as err:
        log.warning("fold %d: saved files do not match manifest.json (%s); training it again", fold, err)
        return None
    try:
        result, saved_idx = load_fold_result(output_dir / entry["oof_file"])
    except FoldResultError as err:
        log.warning("fold %d: %s; training it again", fold, err)
        return None
    if not np.array_equal(saved_idx, val_idx):
        log.warning("fold %d: saved OOF rows differ from this split; training it again", fold)
        return None
    log.info("fold %d: already complete (val_acc %.5f, files verified against manifest.json); skipped",
             fold, result.best_val_acc)
    return result


def adopt_previous_output(previous: Path | None, output_dir: Path, model: str) -> None:
    """Copy an earlier run's fold files (weights, resume checkpoints, OOF, logs, manifest) into ``output_dir``.

    Used on Kaggle, where the previous version's output is a read-only input. Files already in ``output_dir`` win.
    """
    if previous is None or previous.resolve() == output_dir.resolve():
        return
    stem = model_stem(model)
    copied = []
    for path in [*sorted(previous.glob(f"{stem}_fold*_*")), previous / MANIFEST_NAME]:
        target = output_dir / path.name
        if path.is_file() and not target.exists():
            shutil.copy2(path, target)
            copied.append(path.name)
    if copied:
        log.info("resuming from %s: copied %d files (%s …)", previous, len(copied), copied[0])


def find_previous_output(explicit: str | Path | None, model: str, root: Path = KAGGLE_INPUT,
                         max_depth: int = 4) -> Path | None:
    """An earlier run's output to continue: ``explicit`` if given, else (on Kaggle) the first input folder holding
    this model's fold files — attach the previous version's output to resume after a session ended."""
    if explicit:
        return given_path(explicit, "resume_dir", folder=True)
    stem = model_stem(model)  # only [A-Za-z0-9_.-]: nothing a glob would read as a pattern
    return search_inputs((f"{stem}_fold*_last.pth", f"{stem}_fold*_oof.npz"), root=root, max_depth=max_depth)
