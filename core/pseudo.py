"""Pseudo-labels: test.csv rows an earlier run's fold models are confident about, added to each fold's training rows.

The earlier run's inference notebook wrote ``test_probs.npz`` (each fold model's (n_test, 10) probabilities,
``fold0`` … ``fold<k-1>``, and their ``mean``) and ``test_probs.json`` (what made them). Fold k of this run trains on
its own training rows plus the test rows that *fold k's* earlier model gave a top probability ≥ ``threshold``,
labelled with that model's class. Fold k's earlier model never saw fold k's validation rows, so no information of
those rows reaches fold k through the pseudo-labels and the OOF accuracy (the local CV) stays honest; that is why
both runs must use the same folds.csv, and why the models' mean (which every fold model took part in) is not used.

With label smoothing ε the largest probability a model learns to give is about 1 − ε·9/10 (0.91 at ε = 0.1): the
threshold is on that scale (0.8 keeps ~95 % of the test rows of a 0.995-accurate run).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .data import NUM_CLASSES, DataError, TestData

log = logging.getLogger(__name__)

PROBS_FILE = "test_probs.npz"
PROVENANCE_FILE = "test_probs.json"
NOT_KEPT = -1  # the label of a test row a fold does not train on


@dataclasses.dataclass
class PseudoLabels:
    """Test images and, per fold, the label each is trained with (``NOT_KEPT`` where that fold leaves it out)."""

    images: np.ndarray  # uint8 (n_test, 28, 28)
    labels: np.ndarray  # int64 (n_folds, n_test): fold k's label of each test row, or NOT_KEPT
    threshold: float
    source: Path  # the test_probs.npz they came from

    def rows(self, fold: int) -> np.ndarray:
        """int64 (m,): the test rows fold ``fold`` trains on."""
        return np.flatnonzero(self.labels[fold] != NOT_KEPT)

    def extend(self, images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
               fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fold ``fold``'s training data with its pseudo-labelled rows appended after the train.csv rows.

        Args:
            images: uint8 (N, 28, 28), labels: int64 (N,): all train.csv rows; train_idx: this fold's training rows.

        Returns:
            (images (N + m, 28, 28), labels (N + m,), train_idx + the m new row indices): validation row indices
            into the first N rows are unchanged.
        """
        rows = self.rows(fold)
        new_idx = len(labels) + np.arange(len(rows))
        return (np.concatenate([images, self.images[rows]]),
                np.concatenate([labels, self.labels[fold, rows].astype(labels.dtype)]),
                np.concatenate([np.asarray(train_idx), new_idx]))

    def table(self) -> pd.DataFrame:
        """Test rows each fold trains on (rows), per digit (columns), with totals."""
        counts = {fold: np.bincount(self.labels[fold, self.rows(fold)], minlength=NUM_CLASSES)
                  for fold in range(len(self.labels))}
        table = pd.DataFrame.from_dict(counts, orient="index").rename_axis("fold").rename_axis("digit", axis=1)
        table["all"] = table.sum(axis=1)
        return table

    def _repr_html_(self) -> str:
        return self.table().to_html()

    def __repr__(self) -> str:
        return (f"pseudo-labels from {self.source} (fold k's own model, top probability ≥ {self.threshold:g}):\n"
                f"{self.table()}")


def fold_training_data(pseudo: PseudoLabels | None, images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
                       fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, train_idx) fold ``fold`` trains on: as given, or with its pseudo-labelled rows appended
    (``PseudoLabels.extend``) when ``pseudo`` is set."""
    return (images, labels, train_idx) if pseudo is None else pseudo.extend(images, labels, train_idx, fold)


def load_pseudo_labels(source: str | Path, *, test: TestData, n_folds: int, folds_sha256: str,
                       threshold: float) -> PseudoLabels:
    """Read an earlier run's per-fold test predictions and keep, per fold, the rows at or above ``threshold``.

    Args:
        source: ``test_probs.npz`` or the folder holding it (with its ``test_probs.json``).
        test: this run's test.csv (the predictions must be of the same rows).
        n_folds: this run's k; folds_sha256: the sha256 of this run's folds.csv.

    Raises:
        DataError: a file is missing, is of another test.csv or other folds, or lacks a fold's predictions; the
            message names the file and what to do.
    """
    path = Path(source)
    path = path / PROBS_FILE if path.is_dir() else path
    provenance_path = path.with_name(PROVENANCE_FILE)
    redo = ("run the inference notebook on the run trained with this folds.csv and point pseudo_labels at its "
            "output folder")
    for needed in (path, provenance_path):
        if not needed.is_file():
            raise DataError(f"pseudo_labels = {str(source)!r}: {needed} does not exist; {redo}")
    provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    if provenance.get("test_sha256") != test.fingerprint:
        raise DataError(f"{provenance_path}: these predictions are of another test.csv (sha256 "
                        f"{str(provenance.get('test_sha256'))[:12]} vs {test.fingerprint[:12]}); {redo}")
    if provenance.get("folds_sha256") != folds_sha256:
        raise DataError(f"{provenance_path}: these predictions were made by models trained on other folds (folds.csv "
                        f"sha256 {str(provenance.get('folds_sha256'))[:12]} vs this run's {folds_sha256[:12]}): fold "
                        f"k's pseudo-labels must come from a model that never saw fold k's rows, or the local CV is "
                        f"no longer honest; {redo}, or set folds_path to that run's folds.csv")
    with np.load(path) as saved:
        missing = [f"fold{k}" for k in range(n_folds) if f"fold{k}" not in saved.files]
        if missing:
            raise DataError(f"{path} has no predictions of {', '.join(missing)} (it holds {', '.join(saved.files)}): "
                            f"every fold of this run needs its own earlier model's; {redo}")
        probs = np.stack([saved[f"fold{k}"] for k in range(n_folds)])
    if probs.shape[1:] != (len(test.images), NUM_CLASSES):
        raise DataError(f"{path}: predictions of shape {probs.shape[1:]}, expected ({len(test.images)}, {NUM_CLASSES})"
                        f"; {redo}")
    labels = np.where(probs.max(axis=2) >= threshold, probs.argmax(axis=2), NOT_KEPT).astype(np.int64)
    pseudo = PseudoLabels(images=test.images, labels=labels, threshold=threshold, source=path)
    log.info("pseudo-labels from %s: %s of %d test rows per fold at top probability >= %g", path,
             "/".join(str(len(pseudo.rows(k))) for k in range(n_folds)), len(test.images), threshold)
    return pseudo
