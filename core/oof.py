"""Out-of-fold predictions: every training row predicted by the one model that never saw it → the local CV."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_text_atomic
from .data import NUM_CLASSES

log = logging.getLogger(__name__)
PROB_COLUMNS = [f"prob_{c}" for c in range(NUM_CLASSES)]
CHANCE_ACC = 0.2  # an accuracy at or below this is a model that did not learn (10 classes: chance is 0.1)


def oof_frame(row_ids: np.ndarray, folds: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """One row per predicted training row: ``row_id, fold, label, prob_0..prob_9, pred`` sorted by row_id.

    Args:
        row_ids: (M,) indices into train.csv (0-based data rows).
        folds: (M,) the fold whose model predicted the row.
        labels: (M,) true labels.
        probs: (M, 10) softmax probabilities.
    """
    frame = pd.DataFrame({"row_id": row_ids.astype(np.int64), "fold": folds.astype(np.int64),
                          "label": labels.astype(np.int64)})
    frame[PROB_COLUMNS] = probs
    frame["pred"] = probs.argmax(axis=1).astype(np.int64)
    return frame.sort_values("row_id").reset_index(drop=True)


def fold_accuracies(frame: pd.DataFrame) -> dict[int, float]:
    return {int(f): float((g["pred"] == g["label"]).mean()) for f, g in frame.groupby("fold")}


def local_cv(frame: pd.DataFrame) -> float:
    """OOF accuracy over all predicted rows (the number to trust more than any single fold)."""
    return float((frame["pred"] == frame["label"]).mean())


def write_oof(path: str | Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))


def read_oof(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in ["row_id", "fold", "label", *PROB_COLUMNS] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing; this is not an oof.csv written by digitkit")
    return frame


def report(frame: pd.DataFrame, n_rows: int) -> str:
    """One line: the local CV, over the rows covered (all of train.csv's ``n_rows``, or the folds trained)."""
    covered = f"{len(frame)}/{n_rows} rows" if len(frame) != n_rows else f"all {n_rows} rows"
    return f"local CV (OOF accuracy): {local_cv(frame):.5f} over {covered}"
