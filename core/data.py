"""Read and validate the competition's CSV files: ``train.csv`` (``label,pixel0..pixel783``) and ``test.csv``.

Every problem raises one :class:`DataError` that names the file (as given), the 1-based data row (the header is not
counted, so row 1 is the file's line 2), the column, and the fix. Validation is vectorised: Kaggle's 42,000 x 785
``train.csv`` is read and checked in a couple of seconds, most of it spent in ``pandas.read_csv``.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .paths import find_input_dir

_logger = logging.getLogger(__name__)

IMAGE_SIDE = 28  # px: every image is IMAGE_SIDE × IMAGE_SIDE, one channel
PIXEL_COLUMNS = [f"pixel{i}" for i in range(IMAGE_SIDE * IMAGE_SIDE)]
TRAIN_COLUMNS = ["label", *PIXEL_COLUMNS]
NUM_CLASSES = 10  # the digits 0..9
_HEADER_HINT = "label,pixel0..pixel783"
FIX_DATA = ("set data_dir to a folder in Kaggle's layout (train.csv, test.csv; .csv.gz too), or on Kaggle attach the "
            "competition with 'Add Input'")


class DataError(ValueError):
    """A data file cannot be used; the message names the file, the row and column where it applies, and the fix."""


@dataclass
class TrainData:
    """The decoded training set.

    Attributes:
        images: uint8 (N, 28, 28), row-major as in the CSV (``pixel{28 * i + j}`` is ``images[:, i, j]``).
        labels: int64 (N,), digits 0..9.
        groups: (N,) values of the group column, or None when no ``group_column`` was asked for.
        fingerprint: sha256 hex of the decoded labels and images (see :func:`fingerprint_arrays`).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    fingerprint: str


@dataclass
class TestData:
    """The decoded test set: ``images`` uint8 (N, 28, 28) and the sha256 ``fingerprint`` of their content."""

    __test__ = False  # not a pytest test class

    images: np.ndarray
    fingerprint: str


def find_data_dir(explicit: str | Path | None) -> Path:
    """The competition folder: the parameter, else the attached digit-recognizer competition."""
    return find_input_dir(explicit, ("train.csv", "test.csv", "train.csv.gz", "test.csv.gz"), "data dir",
                          fix=FIX_DATA)


def find_competition_file(data_dir: str | Path, stem: str) -> Path:
    """Return ``<data_dir>/<stem>.csv``, or ``<stem>.csv.gz`` when only that exists.

    Args:
        data_dir: The competition folder (Kaggle's layout: train.csv, test.csv, sample_submission.csv).
        stem: File name without extension, e.g. ``"train"``.

    Raises:
        DataError: Neither file exists; the message lists what the folder holds.
    """
    data_dir = Path(data_dir)
    if data_dir.is_file():
        raise DataError(f"data folder {data_dir} is a file, not a folder: point data_dir at the folder that "
                        f"holds train.csv and test.csv, e.g. {data_dir.parent}")
    candidates = [data_dir / f"{stem}.csv", data_dir / f"{stem}.csv.gz"]
    found = [path for path in candidates if path.is_file()]
    if len(found) == 2:
        _logger.warning("both %s and %s are in %s: using %s (remove the other to silence this)", found[0].name,
                        found[1].name, data_dir, found[0].name)
    if found:
        return found[0]
    broken = [path for path in candidates if path.is_symlink()]
    if broken:
        raise _broken_link(str(broken[0]), broken[0])
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist (looking for {stem}.csv): {FIX_DATA}")
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in data_dir.iterdir())
    shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
    raise DataError(f"{data_dir} has no {stem}.csv or {stem}.csv.gz (it holds: {shown or 'nothing'}): {FIX_DATA}")


def read_train(path: str | Path, group_column: str = "") -> TrainData:
    """Read and validate a ``train.csv`` (or ``.csv.gz``): header ``label,pixel0..pixel783`` in this order.

    Args:
        path: The file; messages name it as given.
        group_column: Name of one extra trailing column holding groups (for StratifiedGroupKFold); "" for none.

    Raises:
        DataError: On the first problem found (see the module docstring).
    """
    name = str(path)
    frame, header = _read_frame(path)
    _check_train_header(name, header, group_column)
    _check_not_empty(name, frame)
    _check_row_lengths(name, Path(path), frame)
    labels = _integer_cells(name, frame[["label"]], 0, NUM_CLASSES - 1)[:, 0]
    images = _integer_cells(name, frame[PIXEL_COLUMNS], 0, 255)
    groups = None
    if group_column:
        _first_bad_cell(name, frame[[group_column]], frame[[group_column]].isna().to_numpy(), _NO_GROUP)
        groups = frame[group_column].to_numpy()
    labels = labels.astype(np.int64)
    images = images.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    data = TrainData(images=images, labels=labels, groups=groups, fingerprint=fingerprint_arrays(images, labels))
    _logger.info("read %s: %d rows, sha256 %s", name, len(labels), data.fingerprint[:12])
    return data


def read_test(path: str | Path) -> TestData:
    """Read and validate a ``test.csv`` (or ``.csv.gz``): header ``pixel0..pixel783`` in this order.

    Raises:
        DataError: On the first problem found (see the module docstring).
    """
    name = str(path)
    frame, header = _read_frame(path)
    _check_test_header(name, header)
    _check_not_empty(name, frame)
    _check_row_lengths(name, Path(path), frame)
    images = _integer_cells(name, frame[PIXEL_COLUMNS], 0, 255).astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    data = TestData(images=images, fingerprint=fingerprint_arrays(images))
    _logger.info("read %s: %d rows, sha256 %s", name, len(images), data.fingerprint[:12])
    return data


def check_sample_submission(path: str | Path, n_test: int, *, test_name: str = "test.csv") -> None:
    """Check Kaggle's ``sample_submission.csv`` against the test set: header ``ImageId,Label``, one row per test image,
    ImageId counting 1..N: the shape the inference notebook's submission.csv takes.

    Raises:
        DataError: naming the file, what differs, and the fix.
    """
    name = str(path)
    frame, header = _read_frame(path)
    if header != ["ImageId", "Label"]:
        raise DataError(f"{name} header is {_short(','.join(header))}, expected 'ImageId,Label': re-download it: "
                        f"{FIX_DATA}")
    if len(frame) != n_test:
        raise DataError(f"{name} has {len(frame)} rows but {test_name} has {n_test} images: they come from different "
                        f"copies of the competition data; re-download both: {FIX_DATA}")
    ids = frame["ImageId"].astype(str).str.strip().to_numpy()
    wrong = np.flatnonzero(ids != np.arange(1, n_test + 1).astype(str))
    if len(wrong):
        row = int(wrong[0])
        raise DataError(f"{name} row {row + 1}: ImageId = {ids[row]!r}, expected {row + 1} (ImageId counts 1..{n_test} "
                        f"in {test_name} order); re-download it: {FIX_DATA}")


@dataclass
class Duplicates:
    """Exact duplicates in train.csv: rows whose 784 pixels equal another row's.

    Attributes:
        group: int64 (N,), the duplicate group of each row (0..n_groups-1), -1 for a row whose image is unique.
        conflicting: bool (n_groups,), whether a group's rows disagree on the label.
    """

    group: np.ndarray
    conflicting: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.conflicting)

    @property
    def rows(self) -> int:
        """Rows whose image occurs more than once (every copy counted)."""
        return int((self.group >= 0).sum())

    def describe(self, name: str = "train.csv") -> str:
        """"train.csv holds 150 rows in 3 groups of identical images (1 group with conflicting labels)"."""
        conflicting = int(self.conflicting.sum())
        labels = f" ({conflicting} group{'s' * (conflicting != 1)} with conflicting labels)" if conflicting else ""
        return (f"{name} holds {self.rows} rows in {self.n_groups} group{'s' * (self.n_groups != 1)} of identical "
                f"images{labels}")


def find_duplicates(images: np.ndarray, labels: np.ndarray) -> Duplicates:
    """Group the rows whose pixels are exactly equal (about 0.1 s for Kaggle's 42,000 rows).

    Args:
        images: uint8 (N, 28, 28).
        labels: int (N,).
    """
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()  # one opaque value per row: compared as bytes
    _, image_of_row, counts = np.unique(keys, return_inverse=True, return_counts=True)
    image_of_row = image_of_row.ravel()
    repeated = counts[image_of_row] > 1
    group = np.full(len(images), -1, dtype=np.int64)
    group[repeated] = np.unique(image_of_row[repeated], return_inverse=True)[1].ravel()
    n_groups = int(group.max()) + 1 if repeated.any() else 0
    lowest, highest = np.full(n_groups, NUM_CLASSES), np.full(n_groups, -1)
    np.minimum.at(lowest, group[repeated], np.asarray(labels)[repeated])
    np.maximum.at(highest, group[repeated], np.asarray(labels)[repeated])
    return Duplicates(group=group, conflicting=lowest != highest)


def fingerprint_arrays(images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """sha256 hex of the decoded content, so a ``.csv`` and its ``.csv.gz`` give the same value.

    Args:
        images: uint8 (N, 28, 28).
        labels: int64 (N,), or None for a test set.
    """
    assert images.dtype == np.uint8, images.dtype
    digest = hashlib.sha256()
    digest.update(f"digitkit images {tuple(images.shape)} labels {labels is not None}\n".encode())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def _open_text(path: Path) -> IO[str]:
    """The file as text (a UTF-8 byte-order mark dropped, as pandas does); a byte that is not UTF-8 becomes U+FFFD,
    so that the cell holding it can be named."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


_NOT_UTF8 = "\ufffd"


def _broken_link(name: str, path: Path) -> DataError:
    return DataError(f"{name} is a broken symbolic link (to {os.readlink(path)}): restore its target, or replace "
                     f"the link with the file; {FIX_DATA}")


def _read_frame(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Parse the whole file with pandas after cheap checks that it exists and is CSV text; return the frame (blank
    lines skipped; ``frame.attrs["path"]`` lets an error name a row as the file numbers it) and the header as the
    file spells it (pandas renames an empty name to 'Unnamed: k' and a repeated one to 'pixel8.1')."""
    name, path = str(path), Path(path)
    if path.is_symlink() and not path.exists():
        raise _broken_link(name, path)
    if path.is_dir():
        raise DataError(f"{name} is a folder, not a CSV file: {FIX_DATA}")
    if not path.is_file():
        raise DataError(f"{name} does not exist: {FIX_DATA}")
    if path.stat().st_size == 0:
        raise DataError(f"{name} is empty (0 bytes): re-download it: {FIX_DATA}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(64 * 1024)
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "NUL byte")
        head.split(b"\n", 1)[0].decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"{name} is not a CSV text file ({type(error).__name__}: {error}); "
                        f"pass the competition's .csv or .csv.gz ({FIX_DATA})") from None
    try:
        with _open_text(path) as f:
            header = next((fields for fields in csv.reader(f) if any(field.strip() for field in fields)), [])
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, compression="gzip" if path.name.endswith(".gz") else None, index_col=False,
                                low_memory=False, encoding_errors="replace")
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} is empty (no header, no rows): re-download it: {FIX_DATA}") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as error:
        raise DataError(_ragged_message(name, path) or f"{name} could not be parsed as CSV ({error})") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"{name} could not be read ({type(error).__name__}: {error}); "
                        f"is it truncated? re-download it: {FIX_DATA}") from None
    frame.attrs["path"] = str(path)
    return frame, header


def _file_row(frame: pd.DataFrame, position: int) -> int:
    """The data row (1-based) of the frame's row ``position`` as the file numbers it: pandas skips blank lines,
    a user counting lines does not (error path only: reads the file again)."""
    path = frame.attrs.get("path")
    if not path:
        return position + 1
    try:
        with _open_text(Path(path)) as f:
            lines = iter(f)
            next((line for line in lines if line.strip()), None)  # the header (blank lines before it skipped)
            seen = -1
            for number, line in enumerate(lines, start=1):
                seen += bool(line.strip())
                if seen == position:
                    return number
    except (OSError, EOFError):
        pass
    return position + 1


def _check_row_lengths(name: str, path: Path, frame: pd.DataFrame) -> None:
    """A row with fewer fields than the header parses as empty cells: say what it really is (error path only; a
    column pandas read as integers holds no empty cell, so a clean file costs nothing here)."""
    suspects = [c for c, dtype in frame.dtypes.items() if not pd.api.types.is_integer_dtype(dtype)]
    if suspects and frame[suspects].isna().to_numpy().any():
        message = _ragged_message(name, path)
        if message:
            raise DataError(message)


def _ragged_message(name: str, path: Path) -> str | None:
    """Find the first data row whose field count differs from the header's (error path only, so a plain loop); a
    short last row without a final newline is a file cut off in the middle of a row."""
    try:
        with _open_text(path) as f:
            raw = [""]  # the line csv read last: each record of these files is one line

            def lines():
                for line in f:
                    raw[0] = line
                    yield line

            reader = csv.reader(lines())
            header = next(reader)
            for row, fields in enumerate(reader, start=1):
                if fields and len(fields) != len(header):
                    cut = not raw[0].endswith(("\n", "\r")) and not any(line.strip() for line in f)
                    if cut and len(fields) < len(header):
                        return (f"{name} is truncated: its last row (row {row}) stops after {len(fields)} of "
                                f"{len(header)} fields and the file does not end with a newline; re-download it: "
                                f"{FIX_DATA}")
                    return (f"{name} row {row}: has {len(fields)} fields but the header has {len(header)} columns; "
                            "every row needs one value per header column (fix or drop that row)")
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    return None


def _check_not_empty(name: str, frame: pd.DataFrame) -> None:
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows: re-download it: {FIX_DATA}")


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _format_problem(name: str, columns: list[str], what: str) -> str | None:
    """Catch files that are CSV text but not in the competition's format at all."""
    if len(columns) == 1 and (";" in columns[0] or "\t" in columns[0]):
        return f"{name} is not comma-separated (its header is {_short(columns[0])}): save it with commas"
    if all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in columns[:10]):
        return f"{name} has no header row (its first line is data): add the header line {what}"
    return None


def _header_problem(name: str, columns: list[str], expected: list[str], what: str) -> str | None:
    """Describe the first column that differs from ``expected`` (position 1-based), or None when they agree."""
    for position, (got, want) in enumerate(zip(columns, expected, strict=False), start=1):
        if got != want:
            return (f"{name} column {position} is {_short(got)}, expected {want!r}: "
                    f"the header must be {what}, in this order")
    if len(columns) < len(expected):
        pixels = sum(c in PIXEL_COLUMNS for c in columns)
        return (f"{name} has {pixels} pixel columns, expected {len(PIXEL_COLUMNS)}: column {len(columns) + 1} "
                f"should be {expected[len(columns)]!r} (the header must be {what})")
    return None


def _check_train_header(name: str, columns: list[str], group_column: str) -> None:
    problem = _format_problem(name, columns, _HEADER_HINT)
    if problem is None and "label" not in columns:
        if columns[: len(PIXEL_COLUMNS)] == PIXEL_COLUMNS:
            problem = (f"{name} looks like a test file (no label column, {len(columns)} columns): "
                       "pass the training file (train.csv) here")
        else:
            problem = (f"{name} has no 'label' column (its first column is {_short(columns[0])}): "
                       f"a training file's header is {_HEADER_HINT}")
    problem = problem or _header_problem(name, columns, TRAIN_COLUMNS, _HEADER_HINT)
    if problem:
        raise DataError(problem)
    extra = columns[len(TRAIN_COLUMNS):]
    if group_column:
        if group_column in TRAIN_COLUMNS:
            raise DataError(f"group_column = {group_column!r} is a label/pixel column: name the extra group column")
        if extra != [group_column]:
            raise DataError(f"{name} has no trailing group column {group_column!r} (extra columns: "
                            f"{', '.join(map(_short, extra)) or 'none'}): add it after pixel783, or fix group_column")
    elif extra and not extra[0].strip():
        raise DataError(f"{name} column {len(TRAIN_COLUMNS) + 1} has no name (a comma at the end of the header line?): "
                        "the header should end at 'pixel783'; remove the trailing comma(s) from every line")
    elif extra:
        raise DataError(f"{name} column {len(TRAIN_COLUMNS) + 1} is {_short(extra[0])}, but the header should end at "
                        f"'pixel783': drop the extra column(s), or, if it holds groups, set group_column = "
                        f"{extra[0]!r} and fold_method = 'StratifiedGroupKFold' (a group never spans two folds)")


def _check_test_header(name: str, columns: list[str]) -> None:
    if columns[:1] == ["label"] and columns[1:] == PIXEL_COLUMNS:
        raise DataError(f"{name} looks like a training file (it has a label column): "
                        f"pass the test file (test.csv) here")
    problem = _format_problem(name, columns, "pixel0..pixel783")
    problem = problem or _header_problem(name, columns, PIXEL_COLUMNS, "pixel0..pixel783")
    if problem:
        raise DataError(problem)
    if len(columns) > len(PIXEL_COLUMNS) and not columns[len(PIXEL_COLUMNS)].strip():
        raise DataError(f"{name} column {len(PIXEL_COLUMNS) + 1} has no name (a comma at the end of the header line?): "
                        "the header should end at 'pixel783'; remove the trailing comma(s) from every line")
    if len(columns) > len(PIXEL_COLUMNS):
        raise DataError(f"{name} column {len(PIXEL_COLUMNS) + 1} is {_short(columns[len(PIXEL_COLUMNS)])}, but the "
                        "header should end at 'pixel783': a test file holds exactly pixel0..pixel783")


def _integer_cells(name: str, frame: pd.DataFrame, low: int, high: int) -> np.ndarray:
    """Check every cell is an integer in [low, high] and return them as int64 (N, C); raise at the first bad cell."""
    expected = f"expected an integer {low}..{high}"
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in frame.dtypes):  # the fast path: a clean file
        values = frame.to_numpy(dtype=np.int64)
        _first_bad_cell(name, frame, (values < low) | (values > high), _OUT_OF_RANGE, expected)
        return values
    missing = frame.isna().to_numpy()
    numbers = np.column_stack([_as_float(frame[column]) for column in frame.columns])
    _first_bad_cell(name, frame, missing, _EMPTY, expected)
    with np.errstate(invalid="ignore"):
        _first_bad_cell(name, frame, ~(np.isfinite(numbers) & (numbers == np.round(numbers))), _NON_INTEGER, expected)
        _first_bad_cell(name, frame, (numbers < low) | (numbers > high), _OUT_OF_RANGE, expected)
    return numbers.astype(np.int64)


def _as_float(column: pd.Series) -> np.ndarray:
    """float64 (N,) with NaN wherever the cell is missing or not a number."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.full(len(column), np.nan)
    if not pd.api.types.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


# (one cell, several cells, the fix)
_EMPTY = ("empty cell", "empty cells", "fill or drop those rows")
_NON_INTEGER = ("non-integer cell", "non-integer cells", "fix or drop those rows")
_OUT_OF_RANGE = ("cell out of range", "cells out of range", "fix or drop those rows")
_NO_GROUP = ("empty group cell", "empty group cells", "every row needs a group: fill it, or drop the row")


def _first_bad_cell(name: str, frame: pd.DataFrame, bad: np.ndarray, kind: tuple[str, str, str],
                    expected: str = "") -> None:
    """Raise a DataError at the first True cell of ``bad`` (N, C) in reading order, counting the others."""
    if not bad.any():
        return
    position, col = divmod(int(np.argmax(bad)), bad.shape[1])
    row = _file_row(frame, position) - 1  # as the file numbers it, blank lines counted
    others = int(bad.sum()) - 1
    value = frame.iat[position, col]
    if isinstance(value, str) and _NOT_UTF8 in value:
        raise DataError(f"{name} row {row + 1}: {frame.columns[col]} holds a byte that is not UTF-8 text "
                        f"({value!r}): the file is not plain CSV text; re-download or re-export it as UTF-8")
    if pd.isna(value):
        shown = "is empty"
    elif isinstance(value, str):
        shown = f"= {value!r}"
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        shown = f"= {int(value)}"
    else:
        shown = f"= {value}"
    more = f" (and {others} more {kind[1] if others > 1 else kind[0]})" if others else ""
    detail = f", {expected}" if expected else ""
    raise DataError(f"{name} row {row + 1}: {frame.columns[col]} {shown}{detail}{more}; {kind[2]}")
