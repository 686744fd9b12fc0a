"""The catalogue of bad inputs: each one gives one clear message naming the file, row or field, and the fix.

The README's "When something goes wrong" table shows the same cases; a test keeps the two in step.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from core.checkpoint import CheckpointError, load_weights, read_state_dict
from core.data import PIXEL_COLUMNS, DataError, read_test, read_train
from core.folds import load_or_make_folds, save_folds
from core.manifest import ManifestError, verify_manifest, write_manifest
from core.models import create_model
from core.submission import SubmissionError, read_submission
from test_data import with_cell

REPO = Path(__file__).resolve().parents[1]


def train_frame(rows: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame(np.zeros((rows, 784), dtype=np.int64), columns=PIXEL_COLUMNS)
    frame.insert(0, "label", np.arange(rows) % 10)
    return frame


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_csv(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    frame.to_csv(folder / name, index=False)
    return folder / name


def smallcnn_weights(folder: Path) -> Path:
    torch.save(create_model("smallcnn").state_dict(), folder / "smallcnn_fold0_best.pth")
    return folder / "smallcnn_fold0_best.pth"


def folds_for(folder: Path, fingerprint: str = "a" * 64) -> Path:
    save_folds(folder / "folds.csv", np.arange(10) % 5, np.arange(10), method="StratifiedKFold", n_folds=5, seed=42,
               fingerprint=fingerprint)
    return folder / "folds.csv"


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# case → (make the bad input and trigger the read, the error type, fragments the message must hold)
CASES: dict[str, tuple[Callable[[Path], object], type[Exception], list[str]]] = {
    "train.csv without `label`": (
        lambda d: read_train(write_csv(d, "train.csv", train_frame().drop(columns="label"))),
        DataError, ["train.csv looks like a test file", "pass the training file"]),
    "test.csv given as train": (
        lambda d: read_train(write_csv(d, "test.csv", train_frame().drop(columns="label"))),
        DataError, ["looks like a test file (no label column"]),
    "train.csv given as test": (
        lambda d: read_test(write_csv(d, "train.csv", train_frame())),
        DataError, ["looks like a training file (it has a label column)", "pass the test file"]),
    "wrong pixel-column count": (
        lambda d: read_train(write_csv(d, "train.csv", train_frame().drop(columns="pixel783"))),
        DataError, ["has 783 pixel columns, expected 784"]),
    "pixel columns out of order": (
        lambda d: read_train(write_csv(d, "train.csv", train_frame()[["label", *PIXEL_COLUMNS[1:], "pixel0"]])),
        DataError, ["column 2 is 'pixel1', expected 'pixel0'", "in this order"]),
    "non-integer pixel": (
        lambda d: read_train(write_csv(d, "train.csv", with_cell(train_frame(), 2, "pixel5", 3.5))),
        DataError, ["train.csv row 3: pixel5 = 3.5, expected an integer 0..255"]),
    "empty (NaN) pixel": (
        lambda d: read_train(write_csv(d, "train.csv", with_cell(train_frame(), 0, "pixel5", np.nan))),
        DataError, ["train.csv row 1: pixel5 is empty"]),
    "pixel out of range": (
        lambda d: read_train(write_csv(d, "train.csv", with_cell(train_frame(), 1, "pixel341", 300))),
        DataError, ["train.csv row 2: pixel341 = 300, expected an integer 0..255"]),
    "label outside 0..9": (
        lambda d: read_train(write_csv(d, "train.csv", with_cell(train_frame(), 1, "label", 12))),
        DataError, ["train.csv row 2: label = 12, expected an integer 0..9"]),
    "empty file": (
        lambda d: read_train(written(d / "train.csv", "")),
        DataError, ["train.csv is empty (0 bytes)", "make data"]),
    "folds.csv of another train.csv": (
        lambda d: load_or_make_folds(folds_for(d), np.arange(10), fingerprint="b" * 64, n_folds=5,
                                     method="StratifiedKFold", seed=42),
        DataError, ["folds.csv was made for another train.csv", "delete it, or point folds_path"]),
    "folds.csv with another k": (
        lambda d: load_or_make_folds(folds_for(d), np.arange(10), fingerprint="a" * 64, n_folds=10,
                                     method="StratifiedKFold", seed=42),
        DataError, ["folds.csv has n_folds=5 but this run asks for n_folds=10"]),
    "a fold's weights missing": (
        lambda d: read_state_dict(d / "smallcnn_fold3_best.pth"),
        CheckpointError, ["smallcnn_fold3_best.pth: weights file missing"]),
    "weights of another architecture": (
        lambda d: load_weights(create_model("efficientnet_b0"), smallcnn_weights(d), model_name="efficientnet_b0"),
        CheckpointError, ["smallcnn_fold0_best.pth: these weights are not for efficientnet_b0 at this input size"]),
    "weights for another input size": (
        lambda d: load_weights(create_model("vit_tiny_patch16_224", timm_kwargs={"img_size": 28, "patch_size": 7}),
                               _vit_weights(d), model_name="vit_tiny_patch16_224"),
        CheckpointError, ["not for vit_tiny_patch16_224 at this input size", "another shape"]),
    "truncated .pth": (
        lambda d: read_state_dict(_truncated(smallcnn_weights(d))),
        CheckpointError, ["unreadable, probably truncated"]),
    "a pickle with a payload": (
        lambda d: read_state_dict(_pickled_payload(d / "evil.pth")),
        CheckpointError, ["refused by torch.load(weights_only=True)", "could run code"]),
    "manifest hash mismatch": (
        lambda d: verify_manifest(_tampered_run(d)),
        ManifestError, ["smallcnn_fold0_best.pth: sha256 differs from manifest.json"]),
    "submission with the wrong row count": (
        lambda d: read_submission(written(d / "submission.csv", "ImageId,Label\n1,3\n"), n_test=2),
        SubmissionError, ["submission.csv: 1 rows, but the test set has 2 images"]),
    "submission with a bad label": (
        lambda d: read_submission(written(d / "submission.csv", "ImageId,Label\n1,3\n2,11\n"), n_test=2),
        SubmissionError, ["submission.csv row 2: Label = '11', expected an integer 0..9"]),
}


def _pickled_payload(path: Path) -> Path:
    torch.save({"x": Payload()}, path)
    return path


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:1000])
    return path


def _vit_weights(folder: Path) -> Path:
    """ViT weights trained at patch 4 (49 tokens), loaded into a patch-7 model (16 tokens)."""
    model = create_model("vit_tiny_patch16_224", timm_kwargs={"img_size": 28, "patch_size": 4})
    torch.save(model.state_dict(), folder / "vit_fold0_best.pth")
    return folder / "vit_fold0_best.pth"


def _tampered_run(folder: Path) -> Path:
    weights = smallcnn_weights(folder)
    write_manifest(folder, {"model": {"name": "smallcnn"}, "n_folds": 1, "folds": []}, [weights.name])
    with open(weights, "ab") as handle:
        handle.write(b"\0")
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_message(case, tmp_path):
    trigger, error, fragments = CASES[case]
    (tmp_path / "keep.txt").write_text("written earlier")
    with pytest.raises(error) as info:
        trigger(tmp_path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (case, message)
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert (tmp_path / "keep.txt").read_text() == "written earlier"  # nothing written earlier is lost


def test_readme_lists_every_case():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## When something goes wrong", 1)[-1]
    missing = [case for case in CASES if f"| {case} |" not in section]
    assert not missing, f"README's 'When something goes wrong' table lacks {missing}"
    for case, (_, _, fragments) in CASES.items():
        row = next(line for line in section.splitlines() if line.startswith(f"| {case} |"))
        assert re.sub(r"`", "", fragments[0]) in row.replace("`", ""), (case, fragments[0])
