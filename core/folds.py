"""Cross-validation folds: made once with a seed, saved as ``folds.csv``, reused only for the data they were made for.

``folds.csv`` starts with one comment line that records how it was made and the sha256 of the ``train.csv`` content
(see :func:`core.data.fingerprint_arrays`), then ``row_id,label,fold`` with ``row_id`` the 0-based train row::

    # digitkit folds: method=StratifiedKFold n_folds=5 seed=42 rows=42000 train_sha256=<hex>
    row_id,label,fold
    0,1,3
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

from .atomic import write_bytes_atomic, write_text_atomic
from .config import FOLD_METHODS
from .data import DataError, Duplicates

_logger = logging.getLogger(__name__)

_HEADER_PREFIX = "# digitkit folds:"
_HEADER_KEYS = ("method", "n_folds", "seed", "rows", "train_sha256")
_COLUMNS = ["row_id", "label", "fold"]


@dataclass
class FoldsFile:
    """A parsed ``folds.csv``.

    Attributes:
        folds: int64 (rows,), the fold index 0..n_folds-1 of each train row.
        method: The sklearn splitter's name, one of ``FOLD_METHODS``.
        n_folds: Number of folds.
        seed: The splitter's ``random_state``.
        rows: Number of train rows.
        fingerprint: sha256 hex of the train data the folds were made for.
        labels: int64 (rows,), the labels as saved (a cross-check).
    """

    folds: np.ndarray
    method: str
    n_folds: int
    seed: int
    rows: int
    fingerprint: str
    labels: np.ndarray


def check_fold_count(labels: np.ndarray, *, n_folds: int, method: str, groups: np.ndarray | None = None) -> None:
    """Refuse a k that these rows cannot give, before sklearn does (or, for a small class, silently makes folds
    without it), and say which k fits: every fold needs validation rows, every training part 2 rows (BatchNorm),
    stratified folds every digit in every fold, group folds a group per fold.

    Raises:
        DataError: naming n_folds, what limits it, and the values that fit.
    """
    n = len(labels)
    if n < 3:
        raise DataError(f"train.csv has {n} row(s): k-fold training needs at least 3 (each fold validates on some rows "
                        "and trains on at least 2); use the full train.csv (42,000 rows on Kaggle)")
    if n_folds < 2:
        raise DataError(f"n_folds = {n_folds}: use at least 2 folds (5 is the default)")
    if n_folds > n:  # with n >= 3 rows even n folds leave every training part n - 1 >= 2 rows
        raise DataError(f"n_folds = {n_folds}: {n} rows give at most {n} folds (each fold validates on at least one "
                        f"row); use n_folds = 2..{n}")
    if method in ("StratifiedKFold", "StratifiedGroupKFold"):
        digits, counts = np.unique(labels, return_counts=True)
        smallest = int(counts.min())
        if smallest < 2:
            raise DataError(f"digit {int(digits[counts.argmin()])} has {smallest} row in train.csv: {method} puts "
                            f"every digit in every fold, which needs at least 2 rows of each; use fold_method = "
                            f"'KFold', or more data")
        if n_folds > smallest:
            raise DataError(f"n_folds = {n_folds}: the smallest class, digit {int(digits[counts.argmin()])}, has "
                            f"{smallest} rows, so {method} cannot put it in every fold; use n_folds = 2..{smallest}")
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise DataError(f"group_column holds {n_groups} distinct group: StratifiedGroupKFold keeps a group in one "
                            "fold, so it needs at least 2 groups; use fold_method = 'StratifiedKFold' instead")
        if n_folds > n_groups:
            raise DataError(f"n_folds = {n_folds}: group_column holds {n_groups} distinct groups and a group never "
                            f"spans two folds; use n_folds = 2..{n_groups}")


def make_folds(labels: np.ndarray, n_folds: int = 5, method: str = "StratifiedKFold", seed: int = 42,
               groups: np.ndarray | None = None) -> np.ndarray:
    """Assign every row to a validation fold with sklearn's shuffled splitter ``method``.

    Args:
        labels: (N,) class of each row; used by the stratified methods.
        n_folds: Number of folds, at least 2.
        method: ``KFold``, ``StratifiedKFold`` or ``StratifiedGroupKFold``.
        seed: ``random_state`` of the splitter; the same seed gives the same folds.
        groups: (N,) group of each row; required by ``StratifiedGroupKFold`` (a group never spans two folds).

    Returns:
        int64 (N,) fold index 0..n_folds-1 per row.
    """
    labels = np.asarray(labels)
    if method not in FOLD_METHODS:
        raise ValueError(f"fold method {method!r} is unknown: choose one of {FOLD_METHODS}")
    if method == "StratifiedGroupKFold":
        if groups is None:
            raise ValueError("StratifiedGroupKFold needs groups: set group_column to the train.csv column holding them")
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(f"groups has shape {groups.shape}, labels {labels.shape}: give one group per row")
    else:
        groups = None  # the other splitters ignore groups (and warn about them)
    check_fold_count(labels, n_folds=n_folds, method=method, groups=groups)
    splitters = {"KFold": KFold, "StratifiedKFold": StratifiedKFold, "StratifiedGroupKFold": StratifiedGroupKFold}
    splitter = splitters[method](n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for fold, (_, valid) in enumerate(splitter.split(np.zeros((len(labels), 1)), labels, groups)):
        folds[valid] = fold
    assert (folds >= 0).all()
    return folds


def save_folds(path: str | Path, folds: np.ndarray, labels: np.ndarray, *, method: str, n_folds: int, seed: int,
               fingerprint: str) -> None:
    """Write ``folds.csv`` atomically: the comment line that records its provenance, then ``row_id,label,fold``."""
    folds, labels = np.asarray(folds, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    assert folds.shape == labels.shape and folds.ndim == 1, (folds.shape, labels.shape)
    header = (f"{_HEADER_PREFIX} method={method} n_folds={n_folds} seed={seed} rows={len(folds)} "
              f"train_sha256={fingerprint}\n")
    table = pd.DataFrame({"row_id": np.arange(len(folds)), "label": labels, "fold": folds})
    write_text_atomic(path, header + table.to_csv(index=False, lineterminator="\n"))


def read_folds(path: str | Path) -> FoldsFile:
    """Parse and check a ``folds.csv`` written by :func:`save_folds`.

    Raises:
        DataError: The file is missing, its comment line or table is malformed, or they disagree.
    """
    name = str(path)

    def fail(problem: str) -> DataError:
        return DataError(f"{name}: {problem}; delete it so that the folds are made again")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{name} cannot be read ({type(error).__name__}: {error})") from None
    first, _, table_text = text.partition("\n")
    if not first.startswith(_HEADER_PREFIX):
        raise fail(f"the first line should start with {_HEADER_PREFIX!r}, found {first[:60]!r}")
    meta = dict(part.split("=", 1) for part in first[len(_HEADER_PREFIX):].split() if "=" in part)
    missing = [key for key in _HEADER_KEYS if key not in meta]
    if missing:
        raise fail(f"the first line lacks {', '.join(missing)}")
    try:
        n_folds, seed, rows = int(meta["n_folds"]), int(meta["seed"]), int(meta["rows"])
        table = pd.read_csv(io.StringIO(table_text), dtype=np.int64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise fail(f"cannot be parsed ({error})") from None
    if list(table.columns) != _COLUMNS:
        raise fail(f"columns are {list(table.columns)}, expected {_COLUMNS}")
    if len(table) != rows or not np.array_equal(table["row_id"].to_numpy(), np.arange(rows)):
        raise fail(f"the header says rows={rows} but row_id does not run 0..{rows - 1} ({len(table)} rows)")
    folds = table["fold"].to_numpy(dtype=np.int64)
    if rows and not (folds.min() >= 0 and folds.max() < n_folds):
        raise fail(f"fold values run {folds.min()}..{folds.max()}, expected 0..{n_folds - 1}")
    return FoldsFile(folds=folds, method=meta["method"], n_folds=n_folds, seed=seed, rows=rows,
                     fingerprint=meta["train_sha256"], labels=table["label"].to_numpy(dtype=np.int64))


def load_or_make_folds(path: str | Path, labels: np.ndarray, *, fingerprint: str, n_folds: int, method: str, seed: int,
                       groups: np.ndarray | None = None, reuse_from: str | Path | None = None) -> np.ndarray:
    """Reuse the folds made for this train data, or make and save them.

    ``reuse_from`` (e.g. a folds.csv among a Kaggle notebook's inputs) wins over ``path`` when it exists, and is
    copied to ``path``. A reused file is refused unless it was made for the same data (``fingerprint``), the same
    ``n_folds`` and the same number of rows: mixing folds across runs would leak validation rows into training.
    Its method and seed, when they differ from the requested ones, are kept (and logged).

    Args:
        path: Where this run's folds.csv lives.
        labels: int64 (N,) train labels.
        fingerprint: sha256 of the train data (``TrainData.fingerprint``).
        n_folds, method, seed, groups: As in :func:`make_folds`, used when no file exists.
        reuse_from: An existing folds.csv to adopt, or None.

    Returns:
        int64 (N,) fold index per row.
    """
    path = Path(path)
    labels = np.asarray(labels)
    source = None
    if reuse_from is not None:
        if Path(reuse_from).is_file():
            source = Path(reuse_from)
        else:
            _logger.warning("reuse_from %s does not exist; looking for %s", reuse_from, path)
    if source is None and path.is_file():
        source = path
    if source is None:
        folds = make_folds(labels, n_folds=n_folds, method=method, seed=seed, groups=groups)
        save_folds(path, folds, labels, method=method, n_folds=n_folds, seed=seed, fingerprint=fingerprint)
        _logger.info("made %d %s folds (seed %d) and saved them to %s", n_folds, method, seed, path)
        return folds

    saved = read_folds(source)
    if saved.fingerprint != fingerprint:
        raise DataError(f"{source} was made for another train.csv (sha256 {saved.fingerprint[:12]}… != "
                        f"{fingerprint[:12]}…): delete it, or point folds_path at the folds file of this data, "
                        "so that no validation row leaks into training of another run")
    if saved.n_folds != n_folds:
        raise DataError(f"{source} has n_folds={saved.n_folds} but this run asks for n_folds={n_folds}: set "
                        f"n_folds={saved.n_folds} to reuse it, or delete it (or point folds_path elsewhere) to make "
                        f"{n_folds} new folds")
    if saved.rows != len(labels) or not np.array_equal(saved.labels, labels):
        raise DataError(f"{source} holds {saved.rows} rows whose labels do not match this train.csv's {len(labels)}: "
                        "delete it, or point folds_path at the folds file of this data")
    if (saved.method, saved.seed) != (method, seed):
        _logger.warning("%s was made with method=%s seed=%d (asked: method=%s seed=%d); keeping the saved folds",
                        source, saved.method, saved.seed, method, seed)
    if source.resolve() != path.resolve():
        data = source.read_bytes()
        if path.is_file() and path.read_bytes() != data:
            _logger.warning("replacing %s with %s", path, source)
        write_bytes_atomic(path, data)
        _logger.info("reused folds from %s (copied to %s)", source, path)
    else:
        _logger.info("reused folds from %s", path)
    return saved.folds


def duplicates_across_folds(duplicates: Duplicates, folds: np.ndarray) -> int:
    """How many groups of identical train images have rows in more than one fold."""
    rows = duplicates.group >= 0
    pairs = np.unique(np.stack([duplicates.group[rows], np.asarray(folds)[rows]]), axis=1)  # distinct (group, fold)
    return int((np.bincount(pairs[0], minlength=duplicates.n_groups) > 1).sum())


def warn_about_duplicates(duplicates: Duplicates, folds: np.ndarray) -> int:
    """Log one line when train.csv holds identical images: a warning when copies sit in different folds (a model is
    then validated on an image it trained on, which inflates the local CV) or disagree on the label, else an info
    line. The folds are kept as they are: a saved folds.csv is reused unchanged, so that runs stay comparable.

    Returns:
        The number of duplicate groups that straddle folds.
    """
    if not duplicates.n_groups:
        return 0
    straddling = duplicates_across_folds(duplicates, folds)
    if straddling:
        _logger.warning("%s; in %d of these groups copies sit in different folds, so a fold validates on images it "
                        "also trained on and the local CV reads high: drop the copies from train.csv (and delete "
                        "folds.csv), or keep each group in one fold with group_column and fold_method = "
                        "'StratifiedGroupKFold'", duplicates.describe(), straddling)
    elif duplicates.conflicting.any():
        _logger.warning("%s, each group within one fold; fix or drop the rows whose labels conflict",
                        duplicates.describe())
    else:
        _logger.info("%s, each group within one fold (no leak into the local CV)", duplicates.describe())
    return straddling
