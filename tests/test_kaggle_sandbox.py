"""The most important tests: the four built notebooks executed exactly as Kaggle executes a pushed kernel.

papermill runs each notebook with nothing injected but what a Kaggle user changes (``epochs``; the data size is
the attached competition's), its inputs under ``/kaggle/input/<slug>/`` (read-only), its working directory
``/kaggle/working``, ``KAGGLE_KERNEL_RUN_TYPE`` set and no ``HF_HUB_OFFLINE`` (tests/kaggle_sandbox.py). The chain is
the one a user walks: train with the defaults → attach the output as the weights dataset (what ``make weights``
publishes) and, separately, as the train kernel's output → infer with no parameters; a new version with the previous
output attached resumes; ``parallel = "folds"``; the ensemble over two attached groups; the sweep on a tiny grid;
a timm model with ``pretrained = "auto"``, whose download is attempted and fails here (no internet).

Each package set runs the whole chain: ``pinned`` (requirements.txt), ``kaggle`` (Kaggle's image,
requirements-kaggle.txt) and ``oldest`` (the oldest versions README promises, requirements-oldest.txt).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from build import build_kernel
from core.data import read_test
from core.manifest import sha256_file
from core.models import create_model_from_spec
from core.predict import predict_probs
from tests.kaggle_sandbox import (ENVIRONMENTS, KaggleSandbox, environment_problem, make_mount_point,
                                  sandbox_problem)
from tests.notebook_structure import STEPS, figure_after, hidden, library_cells, visible_headings, visible_text_lines
from tests.test_notebooks_e2e import REPO, write_tiny_competition
from tools.ship import dataset_files

pytestmark = pytest.mark.slow
N_TRAIN, N_TEST = 1000, 100  # enough for the defaults to learn in 5 epochs (the ensemble refuses chance-level groups)
EPOCHS = {"epochs": 5}  # the one setting a user changes on Kaggle for a quick check
RESIZED = {"input_size": 32, "tta": "none"}  # the parallel-folds run: an input size through train → infer → ensemble
# What docs/kaggle.md promises in /kaggle/working after the train kernel (smallcnn, 5 folds, TTA auto).
PER_FOLD = ("best.pth", "log.csv", "oof.npz")
TRAIN_OUTPUT = {"manifest.json", "config.json", "folds.csv", "oof.csv", "training_curves.png", "core/",
                *(f"smallcnn_fold{k}_{kind}" for k in range(5) for kind in PER_FOLD)}


def _refuse_or_skip(reason: str) -> None:
    """CI sets DIGITKIT_REQUIRE_SANDBOX=1: there the sandbox must run, never pass by skipping."""
    if os.environ.get("DIGITKIT_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DIGITKIT_REQUIRE_SANDBOX=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mount_point():
    problem = sandbox_problem()
    if problem:
        _refuse_or_skip(problem)
    made = make_mount_point()
    yield
    if made:
        os.rmdir("/kaggle")


@pytest.fixture(scope="session")
def notebooks(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return {kernel: build_kernel(kernel, repo=REPO, out_dir=out, owner="tester")
            for kernel in ("train", "infer", "ensemble", "sweep")}


class Chain:
    """The user's steps in one package set, each run once, on first use, in the order the tests need them."""

    def __init__(self, sandbox: KaggleSandbox, notebooks: dict, competition):
        self.sandbox, self.notebooks, self.competition = sandbox, notebooks, competition

    def _session(self, **attached):
        """A new kernel version: empty /kaggle/working, the competition and ``attached`` {slug: folder} as inputs."""
        self.sandbox.new_session()
        self.sandbox.detach_all()
        self.sandbox.attach("digit-recognizer", self.competition)
        for slug, folder in attached.items():
            self.sandbox.attach(slug, folder)

    @functools.cached_property
    def train(self):
        self._session()
        run = self.sandbox.run(self.notebooks["train"], EPOCHS)
        return run, self.sandbox.keep_output("train-v1")

    def infer(self, slug: str, names=None, output=None):
        output = output or self.train[1]
        self._session()
        self.sandbox.attach(slug, output, names)
        run = self.sandbox.run(self.notebooks["infer"])
        return run, self.sandbox.keep_output(f"infer-{slug}-{output.name}")

    @functools.cached_property
    def infer_from_dataset(self):
        return self.infer("digitkit-weights", dataset_files(self.train[1]))  # what make weights publishes

    @functools.cached_property
    def infer_from_kernel_output(self):
        return self.infer("digitkit-train")  # kernel_sources: the train kernel's whole output

    @functools.cached_property
    def resume(self):
        """Version 2 with version 1's output attached, fold 4's weights lost (as if its session had ended)."""
        previous = self.sandbox.base / "outputs" / "train-v1-cut"
        shutil.copytree(self.train[1], previous)
        (previous / "smallcnn_fold4_best.pth").unlink()
        self._session(**{"digitkit-train": previous})
        return self.sandbox.run(self.notebooks["train"], EPOCHS), self.sandbox.keep_output("train-v2")

    @functools.cached_property
    def train_folds(self):
        """Worker processes, and the digits resized to 32 px (no TTA: inference is then one forward per fold)."""
        self._session()
        run = self.sandbox.run(self.notebooks["train"], {**EPOCHS, **RESIZED, "parallel": "folds"})
        return run, self.sandbox.keep_output("train-folds")

    @functools.cached_property
    def infer_resized(self):
        return self.infer("digitkit-train", output=self.train_folds[1])

    @functools.cached_property
    def ensemble(self):
        self._session(**{"group-a": self.train[1], "group-b": self.train_folds[1]})
        return self.sandbox.run(self.notebooks["ensemble"]), self.sandbox.keep_output("ensemble")

    @functools.cached_property
    def sweep(self):
        self._session()
        tiny = {"batch_sizes": [16, 32], "learning_rates": [3e-3, 1e-3], "budget": "steps=3", "n_boot": 100}
        return self.sandbox.run(self.notebooks["sweep"], tiny), self.sandbox.keep_output("sweep")

    @functools.cached_property
    def timm_auto(self):
        self._session()
        return self.sandbox.run(self.notebooks["train"], {**EPOCHS, "model": "resnet18"})


@pytest.fixture(scope="module", params=list(ENVIRONMENTS))
def chain(request, mount_point, notebooks, tmp_path_factory):
    problem = environment_problem(request.param)
    if problem:
        _refuse_or_skip(problem)
    base = tmp_path_factory.mktemp(f"kaggle-{request.param}")
    competition = write_tiny_competition(base / "competition" / "digit-recognizer", n_train=N_TRAIN, n_test=N_TEST)
    return Chain(KaggleSandbox(base / "sandbox", ENVIRONMENTS[request.param]), notebooks, competition)


def assert_valid_submission(folder, n_test: int = N_TEST) -> pd.DataFrame:
    submission = pd.read_csv(folder / "submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"]
    assert submission["ImageId"].tolist() == list(range(1, n_test + 1))
    assert submission["Label"].between(0, 9).all()
    return submission


# ------------------------------------------------------------------------------------------------------ train
def test_train_kernel_with_its_defaults_trains_on_kaggles_layout(chain):
    run, output = chain.train
    run.check()
    assert "smallcnn: digitkit's own architecture, trained from scratch" in run.text  # pretrained 'auto' on Kaggle
    assert "local CV (OOF accuracy):" in run.text
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["complete"] and [f["fold"] for f in manifest["folds"]] == [0, 1, 2, 3, 4]
    assert manifest["config"]["pretrained"] is False and manifest["config"]["epochs"] == 5
    assert manifest["train_rows"] == N_TRAIN  # read from /kaggle/input/digit-recognizer


def test_the_executed_train_notebook_reads_as_its_recipe(chain):
    """The saved version a Kaggle user opens: the steps in order with their figures, the library collapsed, a few
    lines per epoch (no progress frames), the local CV said once."""
    run, _ = chain.train
    run.check()
    nb = run.notebook
    assert visible_headings(nb) == STEPS["train"] and all(hidden(c) for c in library_cells(nb))
    n_folds, epochs = 5, EPOCHS["epochs"]
    assert visible_text_lines(nb) <= n_folds * (epochs + 1) + 40, visible_text_lines(nb)
    assert run.text.count("local CV (OOF accuracy):") == 1
    assert "**Recipe.**" in run.text and "5-fold" in run.text and "label smoothing" in run.text
    for call in ("plot_class_counts", "planned_schedule", "plot_confusion_matrix", "plot_confident_mistakes",
                 "training_curves"):
        assert figure_after(nb, call), call
    assert "IProgress" not in run.text and "it/s]" not in run.text  # no tqdm warning, no text bars


def test_the_executed_infer_notebook_reads_as_its_steps(chain):
    run, _ = chain.infer_from_dataset
    run.check()
    nb = run.notebook
    assert visible_headings(nb) == STEPS["infer"] and all(hidden(c) for c in library_cells(nb))
    assert visible_text_lines(nb) <= 40, visible_text_lines(nb)
    assert figure_after(nb, "plot_class_counts") and figure_after(nb, "plot_digits")
    assert sum(f"fold {k} predicted" in run.text for k in range(5)) == 5  # one line per fold model


def test_train_output_holds_what_readme_promises_and_no_resume_checkpoints(chain):
    run, output = chain.train
    run.check()
    names = {p.name + ("/" if p.is_dir() else "") for p in output.iterdir()}
    assert TRAIN_OUTPUT <= names, sorted(TRAIN_OUTPUT - names)
    extra = names - TRAIN_OUTPUT
    assert all(re.fullmatch(r"oof_[a-z_]+\.csv", name) for name in extra), sorted(extra)  # OOF per inference option
    assert not list(output.glob("*_last.pth"))  # optimizer state of finished folds: not in the kernel's output
    manifest = json.loads((output / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256_file(output / name) == digest, name


# ------------------------------------------------------------------------------------------------------ infer
def test_infer_kernel_with_no_parameters_reads_the_weights_dataset(chain):
    run, output = chain.infer_from_dataset
    run.check()
    assert_valid_submission(output)
    probs = np.load(output / "test_probs.npz")
    assert sorted(probs.files) == ["fold0", "fold1", "fold2", "fold3", "fold4", "mean"]


def test_infer_kernel_with_no_parameters_reads_the_train_kernels_output(chain):
    run, output = chain.infer_from_kernel_output
    run.check()
    pd.testing.assert_frame_equal(assert_valid_submission(output),
                                  pd.read_csv(chain.infer_from_dataset[1] / "submission.csv"))


def test_the_weights_dataset_holds_only_what_inference_needs(chain):
    names = set(dataset_files(chain.train[1]))
    assert {"manifest.json", "oof.csv", "folds.csv", "config.json"} <= names
    assert {f"smallcnn_fold{k}_best.pth" for k in range(5)} <= names
    assert not any(name.endswith("_last.pth") or name.startswith("core") for name in names)


# ----------------------------------------------------------------------------------------------------- resume
def test_a_new_version_with_the_previous_output_attached_resumes(chain):
    run, output = chain.resume
    run.check()
    for fold in range(4):
        assert f"fold {fold}: already complete" in run.text
    assert "fold 4: already complete" not in run.text and f"fold 4: {N_TRAIN * 4 // 5} train rows" in run.text
    previous = chain.train[1]
    for fold in range(4):
        name = f"smallcnn_fold{fold}_best.pth"
        assert (output / name).read_bytes() == (previous / name).read_bytes()
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["folds"]) == 5


def test_train_kernel_with_parallel_folds_launches_two_workers(chain):
    run, output = chain.train_folds
    run.check()
    assert "parallel = folds: 2 worker process(es) for folds [0, 1, 2, 3, 4]" in run.text
    assert "running the core package in /kaggle/working" in run.text
    assert sorted(pd.read_csv(output / "oof.csv")["row_id"]) == list(range(N_TRAIN))
    assert not list(output.glob("*_last.pth"))


def test_the_input_size_rides_from_train_through_infer_and_ensemble(chain):
    """input_size = 32: recorded in manifest.json's model spec and rebuilt from it by inference (its probabilities are
    those of the resized fold models; without the resize they would differ, and the weights would not even load) and
    by the ensemble (group-b)."""
    _, output = chain.train_folds
    manifest = json.loads((output / "manifest.json").read_text())
    spec = manifest["model"]["spec"]
    assert manifest["config"]["input_size"] == 32 and spec["input_size"] == 32
    run, infer_output = chain.infer_resized
    run.check()
    assert "smallcnn at 32 px × 5 folds" in run.text  # the manifest's line in the inference notebook
    images = torch.from_numpy(read_test(chain.competition / "test.csv").images)
    expected, unresized = [], []
    for entry in manifest["folds"]:
        state = torch.load(output / entry["weights"], map_location="cpu", weights_only=True)
        model = create_model_from_spec(spec)
        model.load_state_dict(state)
        plain = create_model_from_spec({**spec, "input_size": 28})
        plain.load_state_dict({key.removeprefix("model."): value for key, value in state.items()})
        expected.append(predict_probs(model, images))
        unresized.append(predict_probs(plain, images))
    with np.load(infer_output / "test_probs.npz") as npz:
        np.testing.assert_allclose(npz["mean"], np.mean(expected, axis=0), atol=1e-5)
    assert not np.allclose(np.mean(unresized, axis=0), np.mean(expected, axis=0), atol=1e-3)
    ensemble, _ = chain.ensemble
    ensemble.check()
    assert "group-b" in ensemble.text


# --------------------------------------------------------------------------------------------- ensemble, sweep
def test_ensemble_kernel_fuses_the_two_attached_groups(chain):
    run, output = chain.ensemble
    run.check()
    table = pd.read_csv(output / "ensemble_table.csv")
    assert {"group-a", "group-b"} <= set(table["option"]), table
    assert_valid_submission(output)
    assert visible_headings(run.notebook) == STEPS["ensemble"] and figure_after(run.notebook, "comparison.figure")


def test_sweep_kernel_on_a_tiny_grid(chain):
    run, output = chain.sweep
    run.check()
    runs = pd.read_csv(output / "runs.csv")
    assert len(runs) >= 4 and set(runs["batch"]) == {16, 32}  # the grid, + rates beyond an edge where the best sits
    assert {"fit.json", "lr_batch_heatmap.png", "study.json", "curves.csv", "critical_batch.png",
            "sweep_report.txt"} <= {p.name for p in output.iterdir()}
    assert "RECOMMENDATION: " in run.text
    assert visible_headings(run.notebook) == STEPS["sweep"] and figure_after(run.notebook, "analysis.figure")


# ------------------------------------------------------------------------------------------------- pretrained
def test_a_timm_model_on_kaggle_tries_its_download_and_says_what_to_do(chain):
    run = chain.timm_auto
    assert run.returncode != 0
    text = run.text
    assert "resnet18: starting from timm's pretrained weights" in text
    assert "PretrainedWeightsError: model = 'resnet18': its pretrained weights could not be downloaded" in text
    assert "turn the train kernel's internet on" in text and "set pretrained = False" in text
