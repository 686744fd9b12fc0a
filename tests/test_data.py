"""core.data: reading train/test CSVs, and one clear DataError per kind of problem."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import (PIXEL_COLUMNS, DataError, TrainData, find_competition_file, fingerprint_arrays, read_test,
                       read_train)


def make_train_frame(rows: int = 4, seed: int = 0) -> pd.DataFrame:
    """A valid train.csv table: label (i % 10) then pixel0..pixel783 with random values 0..255."""
    rng = np.random.default_rng(seed)
    pixels = pd.DataFrame(rng.integers(0, 256, (rows, 784)), columns=PIXEL_COLUMNS)
    return pd.concat([pd.DataFrame({"label": np.arange(rows) % 10}), pixels], axis=1)


def make_test_frame(rows: int = 4, seed: int = 1) -> pd.DataFrame:
    return make_train_frame(rows, seed).drop(columns="label")


def write(path: Path, frame: pd.DataFrame) -> Path:
    """Write like Kaggle does (``.gz`` compresses)."""
    frame.to_csv(path, index=False)
    return path


def with_cell(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    """A copy with one cell (0-based row) replaced by any value, written verbatim."""
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def raises(call, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- valid files ---------------------------------------------------------------------------------------------------

def test_read_train_decodes_labels_and_images_in_pixel_order(tmp_path):
    frame = make_train_frame(6)
    data = read_train(write(tmp_path / "train.csv", frame))
    assert isinstance(data, TrainData) and data.groups is None
    assert data.images.dtype == np.uint8 and data.images.shape == (6, 28, 28)
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [0, 1, 2, 3, 4, 5]
    # pixel{28 * i + j} is images[:, i, j]
    assert data.images[2, 3, 5] == frame.loc[2, f"pixel{28 * 3 + 5}"]
    np.testing.assert_array_equal(data.images.reshape(6, -1), frame[PIXEL_COLUMNS].to_numpy())
    assert len(data.fingerprint) == 64


def test_read_test_decodes_images(tmp_path):
    frame = make_test_frame(3)
    data = read_test(write(tmp_path / "test.csv", frame))
    assert data.images.dtype == np.uint8 and data.images.shape == (3, 28, 28)
    np.testing.assert_array_equal(data.images.reshape(3, -1), frame.to_numpy())


@pytest.mark.parametrize("reader,make", [(read_train, make_train_frame), (read_test, make_test_frame)])
def test_csv_and_gz_give_the_same_fingerprint(tmp_path, reader, make):
    frame = make(5)
    plain = reader(write(tmp_path / "data.csv", frame))
    packed = reader(write(tmp_path / "data.csv.gz", frame))
    assert gzip.open(tmp_path / "data.csv.gz").read(5)  # it really is gzip
    assert plain.fingerprint == packed.fingerprint
    np.testing.assert_array_equal(plain.images, packed.images)


def test_fingerprint_changes_with_one_pixel_or_label():
    images, labels = np.zeros((2, 28, 28), np.uint8), np.array([1, 2])
    base = fingerprint_arrays(images, labels)
    changed = images.copy()
    changed[1, 27, 27] = 1
    assert fingerprint_arrays(changed, labels) != base
    assert fingerprint_arrays(images, np.array([1, 3])) != base
    assert fingerprint_arrays(images) != base  # a test set never matches a train set
    assert fingerprint_arrays(images, labels) == base


def test_integral_floats_are_accepted(tmp_path):
    data = read_train(write(tmp_path / "train.csv", with_cell(make_train_frame(), 1, "pixel9", "7.0")))
    assert data.images[1].reshape(-1)[9] == 7


def test_group_column_is_returned(tmp_path):
    frame = make_train_frame(4).assign(writer=["a", "b", "a", "c"])
    data = read_train(write(tmp_path / "train.csv", frame), group_column="writer")
    assert data.groups.tolist() == ["a", "b", "a", "c"]


# --- cell values ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("column,value,fragment", [
    ("pixel341", 300, "pixel341 = 300, expected an integer 0..255"),
    ("pixel0", -1, "pixel0 = -1, expected an integer 0..255"),
    ("pixel783", 3.5, "pixel783 = 3.5, expected an integer 0..255"),
    ("pixel7", "abc", "pixel7 = 'abc', expected an integer 0..255"),
    ("pixel7", "", "pixel7 is empty"),
    ("label", 10, "label = 10, expected an integer 0..9"),
    ("label", -3, "label = -3, expected an integer 0..9"),
    ("label", 2.5, "label = 2.5, expected an integer 0..9"),
    ("label", "seven", "label = 'seven', expected an integer 0..9"),
    ("label", "", "label is empty"),
])
def test_bad_train_cell_names_file_row_and_column(tmp_path, column, value, fragment):
    path = write(tmp_path / "train.csv", with_cell(make_train_frame(5), 2, column, value))
    raises(lambda: read_train(path), f"{path} row 3: ", fragment)


@pytest.mark.parametrize("value,fragment", [(256, "= 256"), ("x", "= 'x'"), ("", "is empty"), (0.5, "= 0.5")])
def test_bad_test_cell_names_file_row_and_column(tmp_path, value, fragment):
    path = write(tmp_path / "test.csv", with_cell(make_test_frame(3), 0, "pixel100", value))
    raises(lambda: read_test(path), f"{path} row 1: pixel100 {fragment}")


def test_first_bad_cell_in_reading_order_and_count_of_others(tmp_path):
    frame = with_cell(make_train_frame(5), 3, "pixel1", 999)
    frame = with_cell(frame, 1, "pixel700", 300)
    frame = with_cell(frame, 4, "pixel2", 256)
    path = write(tmp_path / "train.csv", frame)
    raises(lambda: read_train(path), "row 2: pixel700 = 300", "(and 2 more cells out of range)")
    frame = with_cell(make_train_frame(5), 0, "pixel1", "a")
    frame = with_cell(frame, 0, "pixel2", "b")
    raises(lambda: read_train(write(path, frame)), "row 1: pixel1 = 'a'", "(and 1 more non-integer cell)")


def test_empty_cells_are_reported_before_other_kinds(tmp_path):
    frame = with_cell(with_cell(make_train_frame(5), 0, "pixel1", 300), 4, "pixel3", "")
    raises(lambda: read_train(write(tmp_path / "train.csv", frame)), "row 5: pixel3 is empty")


def test_ragged_rows_name_the_row(tmp_path):
    lines = write(tmp_path / "ok.csv", make_train_frame(3)).read_text().splitlines()
    for row in (1, 2):
        bad = list(lines)
        bad[row] += ",7"
        path = tmp_path / "train.csv"
        path.write_text("\n".join(bad) + "\n")
        raises(lambda: read_train(path), f"row {row}: has 786 fields but the header has 785 columns")


def test_last_cell_of_a_large_file_is_found(tmp_path):
    frame = with_cell(make_train_frame(5000), 4999, "pixel783", "abc")  # the non-integer path over every cell
    path = write(tmp_path / "train.csv", frame)
    raises(lambda: read_train(path), "row 5000: pixel783 = 'abc'")


# --- headers and mix-ups -------------------------------------------------------------------------------------------

def test_test_file_given_as_train(tmp_path):
    path = write(tmp_path / "test.csv", make_test_frame())
    raises(lambda: read_train(path), f"{path} looks like a test file (no label column", "pass the training file")


def test_train_file_given_as_test(tmp_path):
    path = write(tmp_path / "train.csv.gz", make_train_frame())
    raises(lambda: read_test(path), f"{path} looks like a training file (it has a label column)", "pass the test file")


def test_missing_label_column(tmp_path):
    frame = make_train_frame().rename(columns={"label": "digit"})
    path = write(tmp_path / "train.csv", frame)
    raises(lambda: read_train(path), f"{path} has no 'label' column", "'digit'", "label,pixel0..pixel783")


def test_pixels_out_of_order_name_the_position(tmp_path):
    frame = make_train_frame()
    columns = list(frame.columns)
    columns[4], columns[5] = columns[5], columns[4]  # pixel3 <-> pixel4
    raises(lambda: read_train(write(tmp_path / "train.csv", frame[columns])),
           "column 5 is 'pixel4', expected 'pixel3'")
    test_columns = PIXEL_COLUMNS[:100] + ["pixel101", "pixel100"] + PIXEL_COLUMNS[102:]
    raises(lambda: read_test(write(tmp_path / "test.csv", make_test_frame()[test_columns])),
           "column 101 is 'pixel101', expected 'pixel100'")


@pytest.mark.parametrize("reader,make,kept", [(read_train, make_train_frame, 775), (read_test, make_test_frame, 774)])
def test_too_few_pixel_columns(tmp_path, reader, make, kept):
    frame = make().iloc[:, :kept]
    raises(lambda: reader(write(tmp_path / "data.csv", frame)), "774 pixel columns, expected 784", "'pixel774'")


def test_extra_column_needs_group_column(tmp_path):
    path = write(tmp_path / "train.csv", make_train_frame().assign(writer="w"))
    raises(lambda: read_train(path), "column 786 is 'writer'", "group_column = 'writer'")
    raises(lambda: read_train(path, group_column="author"), "no trailing group column 'author'")
    raises(lambda: read_test(write(tmp_path / "test.csv", make_test_frame().assign(x=1))), "column 785 is 'x'")


def test_empty_group_cell(tmp_path):
    frame = with_cell(make_train_frame().assign(writer="w"), 2, "writer", "")
    raises(lambda: read_train(write(tmp_path / "train.csv", frame), group_column="writer"), "row 3: writer is empty")


def test_header_row_missing(tmp_path):
    path = tmp_path / "train.csv"
    make_train_frame().to_csv(path, index=False, header=False)
    raises(lambda: read_train(path), "has no header row", "label,pixel0..pixel783")


def test_not_comma_separated(tmp_path):
    path = tmp_path / "train.csv"
    make_train_frame().to_csv(path, index=False, sep=";")
    raises(lambda: read_train(path), "is not comma-separated")


# --- empty and unreadable files ------------------------------------------------------------------------------------

def test_zero_byte_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"")
    raises(lambda: read_train(path), f"{path} is empty (0 bytes)")


@pytest.mark.parametrize("reader,make", [(read_train, make_train_frame), (read_test, make_test_frame)])
def test_header_only_file(tmp_path, reader, make):
    path = write(tmp_path / "data.csv", make(0))
    raises(lambda: reader(path), f"{path} has a header but no data rows")


def test_gz_of_nothing(tmp_path):
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(b""))
    raises(lambda: read_train(path), f"{path} is empty")


@pytest.mark.parametrize("name,content", [
    ("train.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    ("train.csv", b"\xff\xfe\xfa label"),
    ("train.csv.gz", b"label,pixel0\n1,2\n"),  # not actually gzip
])
def test_not_a_csv(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    raises(lambda: read_train(path), f"{path} is not a CSV text file")


def test_truncated_gz(tmp_path):
    path = write(tmp_path / "train.csv.gz", make_train_frame(50))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    raises(lambda: read_train(path), f"{path} could not be read", "truncated")


def test_missing_file(tmp_path):
    raises(lambda: read_train(tmp_path / "train.csv"), "train.csv does not exist", "set data_dir")


# --- finding the files ---------------------------------------------------------------------------------------------

def test_find_competition_file(tmp_path):
    (tmp_path / "test.csv.gz").write_bytes(b"x")
    assert find_competition_file(tmp_path, "test") == tmp_path / "test.csv.gz"
    (tmp_path / "test.csv").write_text("x")
    assert find_competition_file(str(tmp_path), "test") == tmp_path / "test.csv"


def test_find_competition_file_missing_lists_the_folder(tmp_path):
    (tmp_path / "digit-recognizer.zip").write_bytes(b"x")
    raises(lambda: find_competition_file(tmp_path, "train"), f"{tmp_path} has no train.csv or train.csv.gz",
           "digit-recognizer.zip", "set data_dir", "Add Input")
    raises(lambda: find_competition_file(tmp_path / "nope", "train"), "does not exist", "set data_dir")


def test_a_byte_order_mark_and_blank_lines_around_the_data_are_accepted(tmp_path):
    from core.data import PIXEL_COLUMNS

    frame = pd.DataFrame(np.zeros((4, 784), dtype=np.int64), columns=PIXEL_COLUMNS)
    frame.insert(0, "label", np.arange(4))
    frame.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig")  # what Excel writes
    (tmp_path / "blank.csv").write_text("\n" + frame.to_csv(index=False) + "\n\n")
    for name in ("bom.csv", "blank.csv"):
        assert read_train(tmp_path / name).labels.tolist() == [0, 1, 2, 3], name


def test_train_csv_beside_a_train_csv_gz_says_which_one_is_used(tmp_path, caplog):
    (tmp_path / "train.csv").write_text("label\n")
    with gzip.open(tmp_path / "train.csv.gz", "wt") as handle:
        handle.write("label\n")
    caplog.set_level("WARNING", logger="core.data")
    assert find_competition_file(tmp_path, "train") == tmp_path / "train.csv"
    assert "both train.csv and train.csv.gz are in" in caplog.text and "using train.csv" in caplog.text
