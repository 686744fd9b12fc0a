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
    """Raise SubmissionError unless ``frame`` is exactly what the competition accepts for ``n_test`` images."""
    if list(frame.columns) != ["ImageId", "Label"]:
        raise SubmissionError(f"{name}: header is {list(frame.columns)}, expected ['ImageId', 'Label']")
    if len(frame) != n_test:
        raise SubmissionError(f"{name}: {len(frame)} rows, but test.csv has {n_test} images; predict every test row")
    ids = pd.to_numeric(frame["ImageId"], errors="coerce")
    expected = np.arange(1, n_test + 1)
    if ids.isna().any() or not np.array_equal(ids.to_numpy(), expected):
        row = int(np.flatnonzero(ids.isna().to_numpy() | (ids.fillna(-1).to_numpy() != expected))[0])
        raise SubmissionError(f"{name} row {row + 1}: ImageId = {frame['ImageId'].tolist()[row]!r}, expected {row + 1} "
                              f"(ImageId counts 1..{n_test} in test.csv order)")
    labels = pd.to_numeric(frame["Label"], errors="coerce")
    bad = labels.isna() | (labels % 1 != 0) | (labels < 0) | (labels > 9)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SubmissionError(f"{name} row {row + 1}: Label = {frame['Label'].tolist()[row]!r}, expected an integer 0..9")


def write_submission(path: str | Path, frame: pd.DataFrame, n_test: int) -> Path:
    path = Path(path)
    validate_submission(frame, n_test, name=path.name)
    write_text_atomic(path, frame.to_csv(index=False))
    return path


def read_submission(path: str | Path, n_test: int) -> pd.DataFrame:
    """Read and validate a submission file (e.g. before ``kaggle competitions submit``)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SubmissionError(f"{path.name}: not a readable CSV ({err}); write it with the inference notebook") from None
    validate_submission(frame, n_test, name=path.name)
    return frame
