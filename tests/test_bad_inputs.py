"""The catalogue of bad inputs: each one gives one clear message naming the file, row or field, and the fix.

docs/troubleshooting.md ("When something goes wrong") shows the same cases in its table; a test keeps the two in step.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from core.checkpoint import CheckpointError, load_weights, read_state_dict
from core.config import Config, ConfigError
from core.data import PIXEL_COLUMNS, DataError, read_test, read_train
from core.ensemble import run_ensemble
from core.folds import load_or_make_folds, make_folds, save_folds
from core.groups import EnsembleError, Group, check_compatible
from core.lr_scaling import AnalysisSettings
from core.manifest import ManifestError, read_manifest, verify_manifest, write_manifest
from core.models import PretrainedWeightsError, create_model
from core.oof import oof_frame
from core.paths import given_path
from core.data import find_data_dir
from core.inference import run_inference
from core.pipeline import check_test_data
from core.resume import find_previous_output
from core.submission import SubmissionError, read_submission
from core.device import resolve_device
from core.trainer import DivergedError, train_fold
from test_data import with_cell
from test_ensemble import noisy_probs
from test_trainer import tiny_fold
from test_compare import write_run as write_compared_run
from tools.compare import CompareError, compare_runs
from core.groups import load_group
from tools.submissions import read_records

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
def _runs_on_two_folds_files(folder: Path) -> tuple[Group, Group]:
    labels, folds = np.arange(50) % 10, np.arange(50) % 5
    return (load_group(write_compared_run(folder / "a", labels, labels, folds)),
            load_group(write_compared_run(folder / "b", labels, labels, np.roll(folds, 1))))


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
        DataError, ["train.csv is empty (0 bytes)", "set data_dir to a folder"]),
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
    # ---- a run that learned nothing is never kept, never fused
    "a fold whose loss is not finite": (
        lambda d: _diverging_fold(d),
        DivergedError, ["diverged in epoch", "learning_rate = 1e+06 is probably too high for batch_size = 16"]),
    "an ensemble group at chance": (
        lambda d: check_compatible([_group("good", 0.9), _group("blown", 0.1)]),
        EnsembleError, ["group 'blown': its OOF accuracy is", "at chance level"]),
    # ---- settings checked before any work: the class is every numeric setting (tests/test_config.py)
    "rotation that turns a 6 into a 9": (
        lambda d: Config.from_mapping({"rotate_deg": 180}), ConfigError, ["rotate_deg = 180: use 0..45 degrees"]),
    "zoom that flips the digit": (
        lambda d: Config.from_mapping({"zoom": 1.5}), ConfigError, ["zoom = 1.5: use 0..0.5"]),
    "negative weight decay": (
        lambda d: Config.from_mapping({"weight_decay": -1}), ConfigError, ["weight_decay = -1: use 0 (none)"]),
    "an input size the model cannot take": (
        lambda d: Config.from_mapping({"model": "vit_tiny_patch16_224", "input_size": 30}), ConfigError,
        ["input_size = 30: a vit / eva02 model cuts it into 7-px patches, so use a multiple of 7 (28, 56, …)"]),
    "drop-path on digitkit's own CNN": (
        lambda d: Config.from_mapping({"drop_path_rate": 0.2}), ConfigError,
        ["drop_path_rate = 0.2: smallcnn has no residual branches to drop"]),
    "eval_batch_size = 0": (
        lambda d: Config.from_mapping({"eval_batch_size": 0}), ConfigError, ["eval_batch_size = 0: must be a positive"]),
    "infer batch_size = 0": (
        lambda d: run_inference(weights_dir=d, data_dir=d, output_dir=d / "out", batch_size=0),
        ConfigError, ["batch_size = 0: must be a positive integer"]),
    "ensemble steps = 0": (
        lambda d: run_ensemble([d], output_dir=d / "out", steps=0), ConfigError, ["steps = 0: must be a positive"]),
    "sweep n_boot = 0": (
        lambda d: AnalysisSettings(metric="val_acc", n_boot=0).validate(), ValueError, ["n_boot = 0: use an integer of at"]),
    "device = cuda without a GPU": (
        lambda d: resolve_device("cuda"), ConfigError, ["device = 'cuda', but torch finds no GPU", "use device = 'auto'"]),
    "an unknown device": (
        lambda d: resolve_device("gpu"), ConfigError, ["device = 'gpu': use 'auto', 'cpu', 'cuda' or 'cuda:N'"]),
    # ---- paths given explicitly must exist: a typo never falls back to a default
    "resume_dir that does not exist": (
        lambda d: find_previous_output(str(d / "previous-run"), "smallcnn"),
        FileNotFoundError, ["resume_dir = ", "previous-run' does not exist: give an existing folder"]),
    "folds_path that does not exist": (
        lambda d: given_path(str(d / "folds.csv"), "folds_path", folder=False),
        FileNotFoundError, ["folds_path = ", "folds.csv' does not exist"]),
    "data folder that is a file": (
        lambda d: find_data_dir(str(written(d / "train.csv", "label\n"))),
        FileNotFoundError, ["data_dir = ", "train.csv' is a file, not a folder: give an existing folder; set data_dir to a folder"]),
    "train.csv a broken symlink": (
        lambda d: read_train(_broken_link(d / "train.csv")), DataError, ["train.csv is a broken symbolic link (to "]),
    # ---- k checked against the rows, the smallest class and the groups, with what fits
    "2 rows": (
        lambda d: make_folds(np.array([0, 1]), n_folds=2, method="KFold"),
        DataError, ["train.csv has 2 row(s): k-fold training needs at least 3"]),
    "more folds than rows": (
        lambda d: make_folds(np.arange(10) % 2, n_folds=20, method="KFold"),
        DataError, ["n_folds = 20: 10 rows give at most 10 folds", "use n_folds = 2..10"]),
    "more folds than the smallest class": (
        lambda d: make_folds(np.r_[np.arange(277) % 9, np.full(23, 9)], n_folds=40),
        DataError, ["n_folds = 40: the smallest class, digit 9, has 23 rows", "use n_folds = 2..23"]),
    "a digit with a single row": (
        lambda d: make_folds(np.r_[np.arange(20) % 9, [9]], n_folds=2),
        DataError, ["digit 9 has 1 row in train.csv", "use fold_method = 'KFold'"]),
    "StratifiedGroupKFold with one group": (
        lambda d: make_folds(np.arange(40) % 10, n_folds=2, method="StratifiedGroupKFold", groups=np.zeros(40)),
        DataError, ["group_column holds 1 distinct group", "use fold_method = 'StratifiedKFold'"]),
    "more folds than groups": (
        lambda d: make_folds(np.arange(100) % 10, n_folds=5, method="StratifiedGroupKFold", groups=np.arange(100) % 3),
        DataError, ["n_folds = 5: group_column holds 3 distinct groups", "use n_folds = 2..3"]),
    # ---- CSV in the file's own terms
    "a trailing comma in the header": (
        lambda d: read_train(written(d / "train.csv", _csv(lambda lines: [line + "," for line in lines]))),
        DataError, ["train.csv column 786 has no name (a comma at the end of the header line?)"]),
    "a repeated column name": (
        lambda d: read_train(written(d / "train.csv", _csv(lambda lines: [lines[0].replace("pixel9,", "pixel8,"),
                                                                          *lines[1:]]))),
        DataError, ["train.csv column 11 is 'pixel8', expected 'pixel9'"]),
    "a row with too few fields": (
        lambda d: read_train(written(d / "train.csv", _csv(lambda lines: [*lines[:2], lines[2][:200], *lines[3:]]))),
        DataError, ["train.csv row 2: has 101 fields but the header has 785 columns"]),
    "a file cut off mid-row": (
        lambda d: read_train(written(d / "train.csv", _csv(lambda lines: lines)[:-700])),
        DataError, ["train.csv is truncated: its last row (row 3) stops after", "does not end with a newline"]),
    "a byte that is not UTF-8": (
        lambda d: read_train(_latin1(d / "train.csv")),
        DataError, ["train.csv row 2: pixel9 holds a byte that is not UTF-8 text"]),
    "a bad cell after a blank line": (
        lambda d: read_train(written(d / "train.csv", _csv(lambda lines: [*lines[:2], "", lines[2].replace(
            ",0,", ",300,", 1), *lines[3:]]))),
        DataError, ["train.csv row 3: pixel0 = 300, expected an integer 0..255"]),
    # ---- manifest.json of any wrong shape
    "manifest.json holding null": (
        lambda d: read_manifest(written(d / "manifest.json", "null").parent),
        ManifestError, ["manifest.json: holds null, not an object"]),
    "a manifest field of the wrong type": (
        lambda d: read_manifest(written(d / "manifest.json", json.dumps(
            {"model": "smallcnn", "n_folds": 5, "folds": [], "files": {}})).parent),
        ManifestError, ["manifest.json: field 'model' is \"smallcnn\", expected an object"]),
    "a manifest fold without weights": (
        lambda d: read_manifest(written(d / "manifest.json", json.dumps(
            {"model": {"name": "smallcnn"}, "n_folds": 5, "folds": [{"fold": 0}], "files": {}})).parent),
        ManifestError, ["field 'folds[0].weights' is null, expected a file name"]),
    # ---- the experiment journal
    "make compare on other folds": (
        lambda d: compare_runs(*_runs_on_two_folds_files(d)),
        CompareError, ["used different folds files (folds.csv sha256", "retrain one of them on the other's folds"]),
    "an edited submissions.json": (
        lambda d: read_records(written(d / "submissions.json", "[1]").parent),
        ValueError, ["submissions.json: expected {\"submissions\": [ {…}, … ]}", "not written by make submit"]),
    # ---- pretrained weights without internet
    "pretrained weights offline": (
        lambda d: create_model("resnet18", pretrained=True),
        PretrainedWeightsError, ["its pretrained weights could not be downloaded", "HF_HUB_OFFLINE is set",
                                 "or set pretrained = False"]),
    # ---- settings checked together, and the files inference reads checked before training
    "group_column without a group splitter": (
        lambda d: Config.from_mapping({"group_column": "writer"}), ConfigError,
        ["group_column = 'writer' only acts with a group splitter, but fold_method = 'StratifiedKFold' ignores groups",
         "set fold_method = 'StratifiedGroupKFold'"]),
    "cpu_bf16 with device = cuda": (
        lambda d: Config.from_mapping({"cpu_bf16": True, "device": "cuda"}), ConfigError,
        ["cpu_bf16 = True only acts on a CPU, but device = 'cuda'", "set cpu_bf16 = False, or device = 'cpu'"]),
    "a misspelt pretrained tag": (
        lambda d: Config.from_mapping({"model": "convnext_atto.d2_in1kk"}), ConfigError,
        ["model = 'convnext_atto.d2_in1kk': 'd2_in1kk' is not one of timm's pretrained tags for convnext_atto",
         "did you mean 'convnext_atto.d2_in1k'?"]),
    "sample_submission.csv of another test.csv": (
        lambda d: check_test_data(_test_with_a_short_sample(d)),
        DataError, ["sample_submission.csv has 2 rows but ", "test.csv has 3 images", "re-download both"]),
}


def _diverging_fold(folder: Path) -> None:
    images, labels, val_idx, train_idx = tiny_fold()
    config = Config(model="smallcnn", epochs=3, batch_size=16, learning_rate=1e6, min_lr=0.0, device="cpu")
    train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
               output_dir=folder / "run")


def _group(name: str, accuracy: float) -> Group:
    labels = np.arange(200) % 10
    probs = noisy_probs(labels, accuracy, np.random.default_rng(0))
    return Group(name=name, path=Path(name), manifest={"train_sha256": "a" * 64},
                 oof=oof_frame(np.arange(200), np.arange(200) % 5, labels, probs))


def _csv(edit: Callable[[list[str]], list[str]], rows: int = 3) -> str:
    return "\n".join(edit(train_frame(rows).to_csv(index=False).splitlines())) + "\n"


def _latin1(path: Path) -> Path:
    lines = train_frame().to_csv(index=False).splitlines()
    lines[2] = lines[2][:20] + "\xe9" + lines[2][21:]  # pixel9's cell of data row 2 holds a Latin-1 byte
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


def _broken_link(path: Path) -> Path:
    path.symlink_to(path.with_name("moved-away.csv"))
    return path


def _test_with_a_short_sample(folder: Path) -> Path:
    """test.csv of 3 images beside a sample_submission.csv of 2 rows."""
    write_csv(folder, "test.csv", train_frame().drop(columns="label"))
    written(folder / "sample_submission.csv", "ImageId,Label\n1,0\n2,0\n")
    return folder


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


def test_troubleshooting_page_lists_every_case():
    page = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    assert "# When something goes wrong" in page
    section = page.split("# When something goes wrong", 1)[-1]
    missing = [case for case in CASES if f"| {case} |" not in section]
    assert not missing, f"docs/troubleshooting.md's 'When something goes wrong' table lacks {missing}"
    for case, (_, _, fragments) in CASES.items():
        row = next(line for line in section.splitlines() if line.startswith(f"| {case} |"))
        assert re.sub(r"`", "", fragments[0]) in row.replace("`", ""), (case, fragments[0])


# ------------------------------------------------------------------------------------ the make runners, end to end
def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_make_run_refuses_the_parameters_it_owns(tmp_path, capsys):
    from tools import run_local

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "keep.txt").write_text("written earlier")
    for name, fix in (("output_dir", "use RUN=<name> (--run)"), ("data_dir", "use DATA=<folder> (--data)")):
        code = run_local.main(["--run", "x", "--runs", str(tmp_path / "runs"), "-p", f"{name}=/elsewhere"])
        assert code == 2
        assert _one_line(capsys.readouterr().err) == f"make run failed: -p {name}=… is set by the runner; {fix}" + (
            ": outputs go to runs/<name>/" if name == "output_dir" else "")
    assert (tmp_path / "runs" / "keep.txt").read_text() == "written earlier"


def test_make_ensemble_with_one_run_says_two_are_needed(tmp_path, capsys):
    from tools import run_ensemble

    (tmp_path / "one").mkdir()
    assert run_ensemble.main(["--runs", "one", "--runs-dir", str(tmp_path)]) == 2
    assert _one_line(capsys.readouterr().err) == 'make ensemble needs two or more finished runs, RUNS="a b"; got 1: one'


def test_the_folds_cache_keeps_folders_apart_that_slugs_would_merge(tmp_path):
    from tools.run_local import folds_file_for

    first, second = folds_file_for(tmp_path / "x_y", tmp_path / "runs"), folds_file_for(tmp_path / "x-y", tmp_path)
    assert first.name != second.name and first.parent == tmp_path / "runs" / "folds"
    assert folds_file_for(tmp_path / "x_y", tmp_path / "runs") == first  # stable: the same folder, the same file


@pytest.mark.slow
def test_a_diverged_make_run_stops_in_one_line_and_writes_no_submission(tmp_path, capsys):
    from build import build_kernel
    from tests.test_notebooks_e2e import write_tiny_competition
    from tools import run_local

    for kernel in ("train", "infer"):
        build_kernel(kernel, repo=REPO, out_dir=tmp_path / "build", owner="tester")
    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=300, n_test=20)
    code = run_local.main(["--run", "blown", "--runs", str(tmp_path / "runs"), "--data", str(data), "--build",
                           str(tmp_path / "build"), "-p", "epochs=2", "-p", "n_folds=2", "-p", "learning_rate=1e6",
                           "-p", "min_lr=0"])
    err = capsys.readouterr().err  # the notebook's log streams live, then the one line that ends it
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert code == 1 and line.startswith("make run failed: cell ") and "DivergedError: fold 0 diverged in epoch" in line
    assert "learning_rate = 1e+06 is probably too high" in line and line.endswith("runs/blown/train.ipynb")
    run = tmp_path / "runs" / "blown"
    assert not (run / "submission.csv").exists() and not list(run.glob("*_best.pth"))
