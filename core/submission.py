"""submission.csv: ``ImageId`` from 1, ``Label`` 0..9, one row per test image — validated before it is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_text_atomic


class SubmissionError(ValueError):
    """The submission would be rejected by Kaggle; the message names the row or field and the fix."""


def make_submission(probs: np.ndarray) -> pd.DataFrame:
    """(N, 10) averaged test probabilities → DataFrame ``ImageId`` (1..N), ``Label`` (argmax)."""
    return pd.DataFrame({"ImageId": np.arange(1, len(probs) + 1), "Label": probs.argmax(axis=1).astype(np.int64)})


def validate_submission(frame: pd.DataFrame, n_test: int, name: str = "submission.csv") -> None:
    """Raise SubmissionError unless ``frame`` is exactly what the competition accepts for ``n_test`` images.

    Values are checked as text, as Kaggle reads them: ``2.0`` is not a label, ``07`` is not an ImageId.
    """
    if list(frame.columns) != ["ImageId", "Label"]:
        raise SubmissionError(f"{name}: header is {list(frame.columns)}, expected ['ImageId', 'Label']")
    if len(frame) != n_test:
        raise SubmissionError(f"{name}: {len(frame)} rows, but the test set has {n_test} images; "
                              f"predict every test row")
    ids = frame["ImageId"].astype(str).str.strip()
    wrong_id = ids.to_numpy() != np.arange(1, n_test + 1).astype(str)
    if wrong_id.any():
        row = int(np.flatnonzero(wrong_id)[0])
        raise SubmissionError(f"{name} row {row + 1}: ImageId = {ids.iloc[row]!r}, expected {row + 1} "
                              f"(ImageId counts 1..{n_test} in test.csv order)")
    labels = frame["Label"].astype(str).str.strip()
    bad_label = ~labels.str.fullmatch(r"[0-9]").to_numpy(dtype=bool)
    if bad_label.any():
        row = int(np.flatnonzero(bad_label)[0])
        raise SubmissionError(f"{name} row {row + 1}: Label = {labels.iloc[row]!r}, expected an integer 0..9")


def write_submission(path: str | Path, frame: pd.DataFrame, n_test: int) -> Path:
    path = Path(path)
    validate_submission(frame, n_test, name=path.name)
    write_text_atomic(path, frame.to_csv(index=False))
    return path


def read_submission(path: str | Path, n_test: int) -> pd.DataFrame:
    """Read and validate a submission file (e.g. before ``kaggle competitions submit``)."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: not found; the inference notebook writes submission.csv")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SubmissionError(
            f"{path.name}: not a readable CSV ({err}); write it with the inference notebook") from None
    validate_submission(frame, n_test, name=path.name)
    return frame
