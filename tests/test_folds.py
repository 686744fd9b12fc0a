"""core.folds: making folds, saving/reading folds.csv, and refusing folds made for other data."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from core.data import DataError
from core.folds import FoldsFile, load_or_make_folds, make_folds, read_folds, save_folds

SHA = "a" * 64
OTHER_SHA = "b" * 64


def labels_of(n: int = 103, seed: int = 0) -> np.ndarray:
    """Imbalanced labels 0..9 so that stratification has something to do."""
    rng = np.random.default_rng(seed)
    return rng.choice(10, size=n, p=np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum()).astype(np.int64)


def make_and_load(path, labels, **overrides):
    kwargs = dict(fingerprint=SHA, n_folds=5, method="StratifiedKFold", seed=42) | overrides
    return load_or_make_folds(path, labels, **kwargs)


# --- make_folds ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["KFold", "StratifiedKFold"])
@pytest.mark.parametrize("n_folds", [2, 5])
def test_every_row_gets_one_fold_of_balanced_size(method, n_folds):
    labels = labels_of()
    folds = make_folds(labels, n_folds=n_folds, method=method, seed=1)
    assert folds.dtype == np.int64 and folds.shape == labels.shape
    assert set(folds.tolist()) == set(range(n_folds))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1


def test_stratified_folds_hold_each_label_evenly():
    labels = labels_of(500)
    folds = make_folds(labels, n_folds=5, method="StratifiedKFold", seed=3)
    counts = np.array([np.bincount(labels[folds == f], minlength=10) for f in range(5)])  # (fold, label)
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all(), counts


@pytest.mark.parametrize("method", ["KFold", "StratifiedKFold", "StratifiedGroupKFold"])
def test_the_seed_reproduces_the_folds(method):
    labels = labels_of(200)
    groups = np.arange(200) // 4
    first = make_folds(labels, n_folds=4, method=method, seed=7, groups=groups)
    np.testing.assert_array_equal(first, make_folds(labels, n_folds=4, method=method, seed=7, groups=groups))
    assert not np.array_equal(first, make_folds(labels, n_folds=4, method=method, seed=8, groups=groups))


def test_stratified_group_kfold_keeps_each_group_in_one_fold():
    labels = labels_of(300)
    groups = np.random.default_rng(0).integers(0, 40, 300)
    folds = make_folds(labels, n_folds=5, method="StratifiedGroupKFold", seed=0, groups=groups)
    for group in np.unique(groups):
        assert len(set(folds[groups == group].tolist())) == 1
    assert set(folds.tolist()) == set(range(5))


def test_bad_arguments_are_named():
    labels = labels_of(20)
    with pytest.raises(ValueError, match="'GroupKFold' is unknown.*StratifiedKFold"):
        make_folds(labels, method="GroupKFold")
    with pytest.raises(ValueError, match="StratifiedGroupKFold needs groups.*group_column"):
        make_folds(labels, method="StratifiedGroupKFold")
    with pytest.raises(ValueError, match="one group per row"):
        make_folds(labels, method="StratifiedGroupKFold", groups=np.arange(5))
    with pytest.raises(ValueError, match="n_folds = 1"):
        make_folds(labels, n_folds=1)


# --- folds.csv -----------------------------------------------------------------------------------------------------

def test_save_and_read_round_trip(tmp_path):
    labels = labels_of(80)
    folds = make_folds(labels, n_folds=4, seed=5)
    path = tmp_path / "folds.csv"
    save_folds(path, folds, labels, method="StratifiedKFold", n_folds=4, seed=5, fingerprint=SHA)
    lines = path.read_text().splitlines()
    assert lines[0] == f"# digitkit folds: method=StratifiedKFold n_folds=4 seed=5 rows=80 train_sha256={SHA}"
    assert lines[1] == "row_id,label,fold"
    assert lines[2] == f"0,{labels[0]},{folds[0]}"
    assert len(lines) == 82
    saved = read_folds(path)
    assert isinstance(saved, FoldsFile)
    assert (saved.method, saved.n_folds, saved.seed, saved.rows) == ("StratifiedKFold", 4, 5, 80)
    assert saved.fingerprint == SHA
    assert saved.folds.dtype == np.int64
    np.testing.assert_array_equal(saved.folds, folds)
    np.testing.assert_array_equal(saved.labels, labels)


@pytest.mark.parametrize("edit,fragment", [
    (lambda lines: lines[1:], "first line should start with '# digitkit folds:'"),
    (lambda lines: [lines[0].replace(" seed=5", "")] + lines[1:], "lacks seed"),
    (lambda lines: [lines[0].replace("rows=6", "rows=7")] + lines[1:], "rows=7"),
    (lambda lines: [lines[0], "row,label,fold"] + lines[2:], "columns are"),
    (lambda lines: lines[:2] + ["0,1,9"] + lines[3:], "fold values run"),
    (lambda lines: lines[:2] + ["0,1,x"] + lines[3:], "cannot be parsed"),
    (lambda lines: lines[:3] + lines[4:], "row_id does not run"),
])
def test_malformed_folds_file(tmp_path, edit, fragment):
    path = tmp_path / "folds.csv"
    save_folds(path, np.array([0, 1, 2, 0, 1, 2]), np.arange(6), method="KFold", n_folds=3, seed=5, fingerprint=SHA)
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(DataError) as info:
        read_folds(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert "delete it" in str(info.value)


# --- load_or_make_folds --------------------------------------------------------------------------------------------

def test_makes_and_saves_when_absent(tmp_path):
    labels = labels_of()
    path = tmp_path / "run" / "folds.csv"
    folds = make_and_load(path, labels)
    np.testing.assert_array_equal(folds, make_folds(labels, n_folds=5, method="StratifiedKFold", seed=42))
    assert read_folds(path).fingerprint == SHA


def test_reuses_an_existing_file(tmp_path, caplog):
    labels = labels_of()
    path = tmp_path / "folds.csv"
    first = make_and_load(path, labels)
    before = path.read_bytes()
    with caplog.at_level(logging.INFO, logger="core.folds"):
        again = make_and_load(path, labels, seed=999)  # another seed would give other folds: the file wins
    np.testing.assert_array_equal(again, first)
    assert path.read_bytes() == before
    assert "reused" in caplog.text


def test_refuses_folds_of_another_train_csv(tmp_path):
    labels = labels_of()
    path = tmp_path / "folds.csv"
    make_and_load(path, labels, fingerprint=OTHER_SHA)
    with pytest.raises(DataError) as info:
        make_and_load(path, labels)
    message = str(info.value)
    assert "folds.csv was made for another train.csv" in message
    assert f"{OTHER_SHA[:12]}… != {SHA[:12]}…" in message
    assert "delete it" in message and "folds_path" in message and "leaks" in message


def test_refuses_another_number_of_folds(tmp_path):
    labels = labels_of()
    path = tmp_path / "folds.csv"
    make_and_load(path, labels, n_folds=5)
    with pytest.raises(DataError, match=r"n_folds=5 but this run asks for n_folds=3: set n_folds=5 .* delete it"):
        make_and_load(path, labels, n_folds=3)


def test_refuses_another_number_of_rows(tmp_path):
    labels = labels_of()
    path = tmp_path / "folds.csv"
    make_and_load(path, labels)
    with pytest.raises(DataError, match=f"holds {len(labels)} rows .* {len(labels) - 1}"):
        make_and_load(path, labels[:-1])


def test_copies_from_reuse_from(tmp_path):
    labels = labels_of()
    shared = tmp_path / "input" / "folds.csv"
    made = make_and_load(shared, labels, seed=1)
    path = tmp_path / "working" / "folds.csv"
    folds = make_and_load(path, labels, seed=2, reuse_from=shared)
    np.testing.assert_array_equal(folds, made)
    assert path.read_bytes() == shared.read_bytes()


def test_reuse_from_wins_over_path_and_is_checked(tmp_path):
    labels = labels_of()
    shared, path = tmp_path / "shared.csv", tmp_path / "folds.csv"
    make_and_load(path, labels, seed=1)
    make_and_load(shared, labels, seed=2)
    np.testing.assert_array_equal(make_and_load(path, labels, reuse_from=shared), read_folds(shared).folds)
    assert path.read_bytes() == shared.read_bytes()

    other = tmp_path / "other.csv"
    make_and_load(other, labels, fingerprint=OTHER_SHA)
    fresh = tmp_path / "fresh" / "folds.csv"
    with pytest.raises(DataError, match="other.csv was made for another train.csv"):
        make_and_load(fresh, labels, reuse_from=other)
    assert not fresh.exists()


def test_missing_reuse_from_falls_back_to_making(tmp_path):
    labels = labels_of()
    path = tmp_path / "folds.csv"
    folds = make_and_load(path, labels, reuse_from=tmp_path / "nowhere.csv")
    np.testing.assert_array_equal(folds, read_folds(path).folds)
