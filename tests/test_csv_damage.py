"""Generated damage to train.csv and test.csv through core.data's readers (hypothesis): whatever is cut, inserted,
replaced, duplicated or dropped, a reader returns valid data or raises DataError with one line naming the file —
never another exception, never a traceback of pandas' or numpy's own.

Bounded examples with a fixed seed (``derandomize``), so CI sees the same cases every time.
"""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import DataError, read_test, read_train

DAMAGE = settings(max_examples=60, derandomize=True, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PIXELS = ",".join(f"pixel{i}" for i in range(784))


def valid_csv(rows: int, *, labelled: bool, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    header = ("label," if labelled else "") + PIXELS
    lines = [header]
    for i in range(rows):
        pixels = ",".join(str(v) for v in rng.integers(0, 256, 784))
        lines.append((f"{i % 10}," if labelled else "") + pixels)
    return ("\n".join(lines) + "\n").encode()


TRAIN, TEST = valid_csv(12, labelled=True), valid_csv(4, labelled=False)

# one damage: (kind, position as a fraction of the file, bytes)
damage = st.tuples(
    st.sampled_from(["truncate", "insert", "overwrite", "drop_line", "repeat_line", "cell", "blank_lines", "bom"]),
    st.floats(min_value=0, max_value=1),
    st.binary(min_size=1, max_size=8) | st.sampled_from([b",", b"\n", b"\r\n", b'"', b"-1", b"256", b"nan", b"1.5",
                                                         b"\x00", b"\xff", b" ", b"label", b",,"]),
)


def damaged(data: bytes, damages: list[tuple[str, float, bytes]]) -> bytes:
    for kind, where, junk in damages:
        at = int(where * len(data))
        lines = data.split(b"\n")
        line = min(int(where * len(lines)), len(lines) - 1)
        if kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + junk + data[at:]
        elif kind == "overwrite":
            data = data[:at] + junk + data[at + len(junk):]
        elif kind == "drop_line":
            data = b"\n".join(lines[:line] + lines[line + 1:])
        elif kind == "repeat_line":
            data = b"\n".join(lines[:line + 1] + lines[line:])
        elif kind == "cell":
            cells = lines[line].split(b",")
            cells[int(where * (len(cells) - 1))] = junk
            data = b"\n".join(lines[:line] + [b",".join(cells)] + lines[line + 1:])
        elif kind == "blank_lines":
            data = b"\n".join(lines[:line] + [b"", b""] + lines[line:])
        else:
            data = b"\xef\xbb\xbf" + data
    return data


def check_read(reader, path) -> None:
    try:
        data = reader(path)
    except DataError as err:
        message = str(err)
        assert path.name in message and "\n" not in message.strip(), message
        return
    assert data.images.dtype == np.uint8 and data.images.shape[1:] == (28, 28)
    if hasattr(data, "labels"):
        assert len(data.labels) == len(data.images) and set(np.unique(data.labels)) <= set(range(10))


@DAMAGE
@given(damages=st.lists(damage, min_size=1, max_size=3), gz=st.booleans())
def test_damaged_train_csv_is_read_or_refused_in_one_line(tmp_path, damages, gz):
    body = damaged(TRAIN, damages)
    path = tmp_path / ("train.csv.gz" if gz else "train.csv")
    path.write_bytes(gzip.compress(body) if gz else body)
    check_read(read_train, path)


@DAMAGE
@given(damages=st.lists(damage, min_size=1, max_size=3))
def test_damaged_test_csv_is_read_or_refused_in_one_line(tmp_path, damages):
    path = tmp_path / "test.csv"
    path.write_bytes(damaged(TEST, damages))
    check_read(read_test, path)


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_a_gzip_cut_mid_stream_is_refused_in_one_line(tmp_path, cut):
    path = tmp_path / "train.csv.gz"
    whole = gzip.compress(TRAIN)
    path.write_bytes(whole[:len(whole) - cut])
    check_read(read_train, path)
