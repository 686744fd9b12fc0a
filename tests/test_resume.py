"""Resume after a kill: SIGKILL a training run mid-epoch, rerun it, and get exactly the uninterrupted result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_notebooks_e2e import write_tiny_competition

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TRAIN = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
from core.config import Config
from core.pipeline import run_training
config = Config(model="smallcnn", epochs=3, batch_size=16, n_folds=3, device="cpu")
run_training(config, data_dir=sys.argv[1], output_dir=sys.argv[2])
"""


def train(data: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # one thread: bit-for-bit reproducible
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(data), str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=240, n_test=20)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = train(data, killed)
    # fold 0 finished, fold 1 has finished one epoch: kill it while it trains its second epoch
    wait_for(killed / "smallcnn_fold1_log.csv", proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (killed / "manifest.json").exists() or json.loads((killed / "manifest.json").read_text()).get(
        "complete") is not True

    rerun = train(data, killed)
    log = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, log
    assert "fold 0: already complete" in log  # verified against the manifest and skipped
    assert "fold 1: resuming at epoch" in log

    uninterrupted = train(data, clean)
    assert uninterrupted.communicate(timeout=600)[0] and uninterrupted.returncode == 0

    resumed_oof, clean_oof = pd.read_csv(killed / "oof.csv"), pd.read_csv(clean / "oof.csv")
    assert sorted(resumed_oof["row_id"]) == list(range(240))  # every row exactly once
    pd.testing.assert_frame_equal(resumed_oof, clean_oof)
    resumed, reference = (json.loads((d / "manifest.json").read_text()) for d in (killed, clean))
    assert resumed["complete"] is True and resumed["local_cv"] == reference["local_cv"]
    assert [f["weights"] for f in resumed["folds"]] == [f["weights"] for f in reference["folds"]]
    for name in (f["weights"] for f in reference["folds"]):
        assert resumed["files"][name] == reference["files"][name]  # identical weights, byte for byte


def test_previous_output_attached_as_input_is_continued(tmp_path, caplog):
    """Kaggle: the earlier version's output is a read-only input; its finished folds are copied, checked, reused."""
    from core.config import Config
    from core.pipeline import run_training

    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=120, n_test=10)
    config = Config(model="smallcnn", epochs=1, batch_size=16, n_folds=2, device="cpu", tta="none")
    first = run_training(config, data_dir=data, output_dir=tmp_path / "v1")
    caplog.set_level("INFO")
    second = run_training(config, data_dir=data, output_dir=tmp_path / "v2", resume_from=tmp_path / "v1")
    assert "fold 0: already complete" in caplog.text and "fold 1: already complete" in caplog.text
    assert second.local_cv == first.local_cv
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "v2" / "oof.csv"), pd.read_csv(tmp_path / "v1" / "oof.csv"))


def test_inference_refuses_an_unfinished_run(tmp_path):
    from core.manifest import ManifestError, write_manifest
    from core.inference import run_inference

    write_manifest(tmp_path, {"complete": False, "model": {"name": "smallcnn"}, "n_folds": 5,
                              "folds": [{"fold": k, "weights": f"smallcnn_fold{k}_best.pth"} for k in (0, 1)]}, [])
    with pytest.raises(ManifestError, match="^unfinished: 2 of 5 folds trained — rerun `make run RUN="):
        run_inference(weights_dir=tmp_path, data_dir=tmp_path, output_dir=tmp_path / "out")


def test_a_fold_saved_before_the_recipe_settings_is_reused_only_as_it_ran(tmp_path):
    """An older manifest.json lacks input_size / drop_path_rate / warmup_epochs: it ran at 28 px without drop-path
    (core.config.LEGACY_VALUES), so its efficientnet folds serve a run with those values, never one at the family's
    56 px (whose weights would not even load into the resized model)."""
    import dataclasses

    import numpy as np

    from core.config import LEGACY_VALUES, Config
    from core.pipeline import run_training
    from core.resume import completed_fold

    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=60, n_test=10)
    as_it_ran = Config(model="efficientnet_b0", epochs=1, batch_size=16, n_folds=2, device="cpu", tta="none",
                       pretrained=False, noise_scale_every=0, **LEGACY_VALUES)
    run_training(as_it_ran, data_dir=data, output_dir=tmp_path / "old")
    manifest_path = tmp_path / "old" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in LEGACY_VALUES:
        del manifest["config"][key]  # as written before these settings existed
    manifest_path.write_text(json.dumps(manifest))
    folds = pd.read_csv(tmp_path / "old" / "folds.csv", comment="#")
    val_idx = np.flatnonzero(folds["fold"].to_numpy() == 0)

    def reused(run_config: Config) -> bool:
        return completed_fold(tmp_path / "old", run_config, fingerprint=manifest["train_sha256"], fold=0,
                              val_idx=val_idx) is not None

    assert reused(as_it_ran)
    today = Config(model="efficientnet_b0", epochs=1, batch_size=16, n_folds=2, device="cpu", tta="none",
                   pretrained=False, noise_scale_every=0)  # the family's recipe: 56 px, drop-path 0.1
    assert not reused(today)
    assert not reused(dataclasses.replace(as_it_ran, warmup_epochs=2.0))
