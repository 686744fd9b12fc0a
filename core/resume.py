"""Fold-level resume: a rerun skips the folds a killed or timed-out run already finished.

After each fold, the run saves the fold's validation predictions (``<model>_fold<k>_oof.npz``) and rewrites
manifest.json with ``"complete": false`` and the hashes of everything that fold produced. A rerun with the same
training settings on the same train.csv takes a fold from there only when its weights and OOF rows still match
their hashes; anything else is trained again (a fold that was cut mid-epoch continues from its ``_last.pth``).
On Kaggle, attach the previous version's output as an input: its fold files are copied into the output folder.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .config import Config
from .manifest import MANIFEST_NAME, ManifestError, read_manifest, verify_files
from .paths import KAGGLE_INPUT, given_path
from .fold_result import FoldResult, entry_files, fold_file, model_stem

log = logging.getLogger(__name__)


def save_fold_predictions(output_dir: Path, model: str, result: FoldResult, val_idx: np.ndarray) -> str:
    """Write the fold's validation rows and probabilities (no pickle); return the file name."""
    name = fold_file(model, result.fold, "oof")
    arrays = {"val_idx": np.asarray(val_idx, dtype=np.int64), "val_probs": result.val_probs}
    if result.swa_val_probs is not None:
        arrays["swa_val_probs"] = result.swa_val_probs
    with atomic_path(output_dir / name) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return name


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
            Config.from_mapping(manifest.get("config", {})).training_settings() != config.training_settings():
        return None
    entry = next((e for e in manifest["folds"] if e["fold"] == fold and e.get("oof_file")), None)
    if entry is None:
        return None
    try:
        verify_files(output_dir, manifest, entry_files(entry))
    except ManifestError as err:
        log.warning("fold %d: saved files do not match manifest.json (%s); training it again", fold, err)
        return None
    with np.load(output_dir / entry["oof_file"], allow_pickle=False) as saved:
        if not np.array_equal(saved["val_idx"], val_idx):
            log.warning("fold %d: saved OOF rows differ from this split; training it again", fold)
            return None
        swa_probs = saved["swa_val_probs"] if "swa_val_probs" in saved.files else None
        result = FoldResult(fold=fold, weights_path=output_dir / entry["weights"], best_epoch=entry["best_epoch"],
                            best_val_acc=entry["val_acc"], val_probs=saved["val_probs"],
                            history=entry.get("history", []),
                            swa_weights_path=output_dir / entry["swa_weights"] if entry.get("swa_weights") else None,
                            swa_val_acc=entry.get("swa_val_acc"), swa_val_probs=swa_probs)
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
    for path in sorted(previous.glob(f"{stem}_fold*_*")) + [previous / MANIFEST_NAME]:
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
    if not root.is_dir():
        return None
    stem = model_stem(model)
    level = [root]
    for _ in range(max_depth):
        for folder in sorted(level):
            if any(folder.glob(f"{stem}_fold*_last.pth")) or any(folder.glob(f"{stem}_fold*_oof.npz")):
                return folder
        level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()]
    return None
