"""What training checks before any fold trains: test.csv and sample_submission.csv (read by inference, after
training), and exact duplicates in train.csv that would sit in a training and a validation fold."""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import Config
from core.data import PIXEL_COLUMNS, DataError, TrainData, find_duplicates, fingerprint_arrays
from core.folds import duplicates_across_folds, make_folds, warn_about_duplicates
from core.pipeline import check_test_data, prepare_folds, prepare_run, run_training

REPO = Path(__file__).resolve().parents[1]


def write_competition(folder: Path, *, n_train: int = 60, n_test: int = 7, sample_rows: int | None = None,
                      sample_header: str = "ImageId,Label", test: bool = True) -> Path:
    """Kaggle's layout, random pixels: train.csv, test.csv (``test``), sample_submission.csv (``sample_rows``)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame(rng.integers(0, 256, (n_train, 784)), columns=PIXEL_COLUMNS)
    train.insert(0, "label", np.arange(n_train) % 10)
    train.to_csv(folder / "train.csv", index=False)
    if test:
        pd.DataFrame(rng.integers(0, 256, (n_test, 784)), columns=PIXEL_COLUMNS).to_csv(folder / "test.csv",
                                                                                       index=False)
    if sample_rows is not None:
        rows = "".join(f"{i},0\n" for i in range(1, sample_rows + 1))
        (folder / "sample_submission.csv").write_text(f"{sample_header}\n{rows}")
    return folder


# --- test.csv and sample_submission.csv, checked before training --------------------------------------------------

def test_a_valid_test_set_is_described_in_one_line(tmp_path):
    data = write_competition(tmp_path / "data", n_test=7, sample_rows=7)
    checked = check_test_data(data)
    assert checked.rows == 7 and checked.sample_path == data / "sample_submission.csv"
    assert repr(checked) == "test.csv: 7 images, valid; sample_submission.csv: ImageId,Label, one row per test image"


def test_a_train_only_folder_is_allowed_with_a_warning(tmp_path, caplog):
    data = write_competition(tmp_path / "data", test=False)
    with caplog.at_level(logging.WARNING, logger="core"):
        checked = check_test_data(data)
    assert checked.test_path is None and "not in data_dir" in repr(checked)
    assert f"{data} has no test.csv: training goes on, but the inference notebook will need it" in caplog.text


def test_sample_submission_is_optional(tmp_path):
    checked = check_test_data(write_competition(tmp_path / "data", n_test=3))
    assert checked.rows == 3 and checked.sample_path is None and repr(checked).endswith("; no sample_submission.csv")


@pytest.mark.parametrize("edit, fragments", [
    (dict(sample_rows=5), ["sample_submission.csv has 5 rows but", "test.csv has 7 images", "re-download both"]),
    (dict(sample_rows=7, sample_header="id,label"), ["sample_submission.csv header is 'id,label', expected "
                                                      "'ImageId,Label'"]),
])
def test_a_sample_submission_that_does_not_fit_test_csv_is_refused(tmp_path, edit, fragments):
    data = write_competition(tmp_path / "data", n_test=7, **edit)
    with pytest.raises(DataError) as info:
        check_test_data(data)
    assert all(fragment in str(info.value) for fragment in fragments), str(info.value)


def test_sample_submission_image_ids_count_from_one(tmp_path):
    data = write_competition(tmp_path / "data", n_test=3)
    (data / "sample_submission.csv").write_text("ImageId,Label\n1,0\n3,0\n2,0\n")
    with pytest.raises(DataError, match=r"sample_submission.csv row 2: ImageId = '3', expected 2"):
        check_test_data(data)


def test_a_bad_test_csv_stops_training_before_any_fold(tmp_path):
    data = write_competition(tmp_path / "data")
    pd.read_csv(data / "train.csv").head(5).to_csv(data / "test.csv", index=False)  # train.csv copied over test.csv
    config = Config(model="smallcnn", n_folds=2, epochs=1, batch_size=16, device="cpu", tta="none")
    with pytest.raises(DataError, match="test.csv looks like a training file"):
        run_training(config, data_dir=data, output_dir=tmp_path / "run")
    assert not list((tmp_path / "run").glob("*.pth")) and not (tmp_path / "run" / "manifest.json").exists()


def test_the_train_notebook_checks_the_test_files_in_its_data_step():
    template = (REPO / "kernels" / "train.py.j2").read_text(encoding="utf-8")
    step = template.split("## 2 · Data", 1)[1].split("## 3 · Folds", 1)[0]
    assert "print(check_test_data(data_dir))" in step
    assert template.index("check_test_data(data_dir)") < template.index("train_folds(setup")


# --- exact duplicates in train.csv --------------------------------------------------------------------------------

def with_copies(n: int = 100, copies: int = 50) -> TrainData:
    """``n`` distinct random digits, then ``copies`` copies of row 0 (label 0) and 3 of row 1 with another label."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    images = np.concatenate([images, np.repeat(images[:1], copies, 0), np.repeat(images[1:2], 3, 0)])
    labels = np.concatenate([labels, np.zeros(copies, np.int64), np.full(3, 7)])
    return TrainData(images=images, labels=labels, groups=None, fingerprint=fingerprint_arrays(images, labels))


def test_duplicates_are_counted_with_conflicting_labels():
    train = with_copies()
    duplicates = find_duplicates(train.images, train.labels)
    assert (duplicates.n_groups, duplicates.rows) == (2, 51 + 4)
    assert duplicates.conflicting.tolist() == [False, True]  # row 0's copies agree; row 1 (label 1) vs three 7s
    assert duplicates.describe() == "train.csv holds 55 rows in 2 groups of identical images (1 group with " \
                                    "conflicting labels)"
    none = find_duplicates(train.images[:100], train.labels[:100])
    assert (none.n_groups, none.rows) == (0, 0)


def test_duplicates_across_folds_counts_the_groups_that_straddle():
    train = with_copies(copies=4)
    duplicates = find_duplicates(train.images, train.labels)
    folds = np.zeros(len(train.labels), np.int64)
    assert duplicates_across_folds(duplicates, folds) == 0
    folds[100] = 1  # one copy of row 0 validated in another fold
    assert duplicates_across_folds(duplicates, folds) == 1


def test_the_fold_step_warns_when_duplicates_straddle_folds_and_keeps_the_folds(tmp_path, caplog):
    train = with_copies()
    setup = prepare_run(Config(model="smallcnn", epochs=1, device="cpu"), output_dir=tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="core"):
        split = prepare_folds(setup, train)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and len(warnings[0].splitlines()) == 1, warnings
    straddling = duplicates_across_folds(find_duplicates(train.images, train.labels), split.folds)
    assert straddling == 2 and re.search(r"55 rows in 2 groups of identical images \(1 group with conflicting "
                                         r"labels\); in 2 of these groups copies sit in different folds", warnings[0])
    assert "local CV reads high" in warnings[0] and "StratifiedGroupKFold" in warnings[0]
    saved = split.path.read_bytes()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core"):
        again = prepare_folds(setup, train)  # reused unchanged: a changed split would break every comparison
    assert split.path.read_bytes() == saved and np.array_equal(again.folds, split.folds)
    assert "copies sit in different folds" in caplog.text
    caplog.clear()
    unique = TrainData(images=train.images[:100], labels=train.labels[:100], groups=None, fingerprint="f" * 64)
    with caplog.at_level(logging.INFO, logger="core"):
        prepare_folds(dataclasses.replace(setup, output_dir=tmp_path / "unique"), unique)
    assert "identical images" not in caplog.text  # no duplicates, no word


def test_duplicates_within_one_fold_are_only_noted(caplog):
    train = with_copies(copies=4)
    duplicates = find_duplicates(train.images[:104], train.labels[:104])  # row 0 and its 4 copies, all label 0
    folds = make_folds(train.labels[:104], n_folds=2, method="KFold")
    folds[[0, 100, 101, 102, 103]] = 0
    with caplog.at_level(logging.INFO, logger="core"):
        assert warn_about_duplicates(duplicates, folds) == 0
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "5 rows in 1 group of identical images, each group within one fold" in caplog.text
