"""End to end on tiny data: two model groups trained by the built train notebook (3 epochs, 600 rows, 3 folds: enough
to learn, as the ensemble refuses chance-level groups), each predicted by the built inference notebook, then fused by
the built ensemble notebook in an isolated folder laid out like Kaggle's /kaggle/input (only the notebook, the
competition and the two groups' outputs)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from build import build_kernel
from core.manifest import sha256_file
from tests.test_notebooks_e2e import REPO, write_tiny_competition
from tools.run_notebook import run_notebook

pytestmark = pytest.mark.slow
GROUPS = {  # two groups: another seed each; one with SWA + automatic TTA, one with an explicit view list
    "a": {"seed": 1, "swa_epochs": 1, "tta": "auto"},
    "b": {"seed": 2, "swa_epochs": 0, "tta": "shift_left,shift_right"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ensemble-e2e")
    built = root / "build"
    for kernel in ("train", "infer", "ensemble"):
        build_kernel(kernel, repo=REPO, out_dir=built, owner="tester")
    data = write_tiny_competition(root / "digit-recognizer", n_train=600, n_test=40)
    paths = {"root": root, "build": built, "data": data}
    for name, params in GROUPS.items():
        run_dir = root / "runs" / name
        run_notebook(built / "train" / "train.ipynb", run_dir / "train.ipynb", cwd=run_dir, stream=False,
                     parameters={"data_dir": str(data), "output_dir": str(run_dir), "model": "smallcnn", "epochs": 3,
                                 "n_folds": 3, "batch_size": 32,
                                 **({"folds_path": str(root / "folds.csv")} if (root / "folds.csv").is_file() else {}),
                                 **params})
        if not (root / "folds.csv").is_file():  # the first run's folds are every later run's folds
            shutil.copy(run_dir / "folds.csv", root / "folds.csv")
        run_notebook(built / "infer" / "infer.ipynb", run_dir / "infer.ipynb", cwd=run_dir, stream=False,
                     parameters={"data_dir": str(data), "weights_dir": str(run_dir), "output_dir": str(run_dir)})
        paths[name] = run_dir
    return paths


def test_train_records_swa_tta_and_their_paired_tests(runs):
    a = json.loads((runs["a"] / "manifest.json").read_text())
    assert a["inference"]["weights"] in ("best", "swa")
    assert set(a["inference"]["oof_acc"]) == {"best", "best+tta", "swa", "swa+tta"}
    assert 0 <= a["inference"]["tests"]["swa_vs_best"]["p_value"] <= 1
    assert 0 <= a["inference"]["tests"]["tta_vs_none"]["p_value"] <= 1
    for entry in a["folds"]:
        assert a["files"][entry["swa_weights"]] == sha256_file(runs["a"] / entry["swa_weights"])
    oof = pd.read_csv(runs["a"] / "oof.csv")
    chosen = a["inference"]["weights"] + ("+tta" if a["inference"]["tta"] else "")
    assert a["local_cv"] == pytest.approx(a["inference"]["oof_acc"][chosen]) == pytest.approx(
        (oof["pred"] == oof["label"]).mean())
    b = json.loads((runs["b"] / "manifest.json").read_text())
    assert b["inference"]["tta"] == ["shift_left", "shift_right"] and b["inference"]["weights"] == "best"
    assert json.loads((runs["b"] / "test_probs.json").read_text())["tta"] == ["shift_left", "shift_right"]
    text = "".join("".join(o.get("text", "")) for c in json.loads((runs["a"] / "train.ipynb").read_text())["cells"]
                   for o in c.get("outputs", []))
    assert "McNemar exact p" in text and "SWA vs best epoch" in text


def test_ensemble_notebook_runs_isolated_on_two_groups(runs, tmp_path):
    iso = tmp_path / "kaggle"
    shutil.copytree(runs["data"], iso / "input" / "digit-recognizer")
    for name in GROUPS:
        group = iso / "input" / f"digitkit-{name}"
        group.mkdir(parents=True)
        manifest = json.loads((runs[name] / "manifest.json").read_text())
        for file in [*manifest["files"], "manifest.json", "test_probs.npz", "test_probs.json"]:
            shutil.copy(runs[name] / file, group / file)
    work = iso / "working"
    shutil.copy(runs["build"] / "ensemble" / "ensemble.ipynb", iso / "ensemble.ipynb")

    run_notebook(iso / "ensemble.ipynb", work / "ensemble.ipynb", cwd=work, stream=False,
                 parameters={"groups_dir": str(iso / "input"), "data_dir": str(iso / "input" / "digit-recognizer"),
                             "output_dir": str(work), "steps": 100})

    table = pd.read_csv(work / "ensemble_table.csv")
    assert table["option"].tolist() == ["digitkit-a", "digitkit-b", "plain mean", "learned, nested CV",
                                        "learned, in-sample"]
    assert table["accuracy"].between(0, 1).all()
    submission = pd.read_csv(work / "submission.csv")
    assert submission["ImageId"].tolist() == list(range(1, 41)) and submission["Label"].between(0, 9).all()
    report = json.loads((work / "ensemble.json").read_text())
    assert sum(g["learned_weight"] for g in report["groups"]) == pytest.approx(1.0)
    assert (work / "ensemble_comparison.png").stat().st_size > 0
    assert (work / "core" / "ensemble.py").is_file()  # the notebook brought its own library
    text = "".join("".join(o.get("text", "")) for c in json.loads((work / "ensemble.ipynb").read_text())["cells"]
                   for o in c.get("outputs", []))
    assert "nested CV" in text and "optimistic" in text


def test_a_group_given_as_weights_is_predicted_offline(runs, tmp_path):
    from core.ensemble import run_ensemble

    weights_only = tmp_path / "b"
    shutil.copytree(runs["b"], weights_only, ignore=shutil.ignore_patterns("test_probs.*", "core", "*.ipynb"))
    run = run_ensemble([runs["a"], weights_only], output_dir=tmp_path / "out", data_dir=runs["data"], device="cpu",
                       steps=50)
    predicted = run.groups[1].test_probs
    np.testing.assert_allclose(predicted, np.load(runs["b"] / "test_probs.npz")["mean"], atol=1e-5)
    assert len(pd.read_csv(tmp_path / "out" / "submission.csv")) == 40
