"""parallel = ddp | folds on CPU: torchrun ranks (gloo) and fold worker processes give what one process gives."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import Config
from core.distributed import gather_shards, shard
from core.launch import ParallelPlan, plan_parallel
from core.pipeline import run_training
from tests import ddp_worker

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("batch, world", [(29, 2), (30, 2), (7, 3), (2, 2)])
def test_shards_cover_the_batch_once_like_tensor_split(batch, world):
    rows = torch.arange(batch)
    pieces = [rows[shard(batch, rank, world)] for rank in range(world)]
    assert [p.tolist() for p in pieces] == [p.tolist() for p in rows.tensor_split(world)]
    assert torch.equal(torch.cat(pieces), rows)


@pytest.mark.parametrize("parallel, gpus, n_folds, workers, expected", [
    ("auto", 0, 5, 0, ParallelPlan("none", 1)),
    ("auto", 1, 5, 0, ParallelPlan("none", 1)),
    ("auto", 2, 5, 0, ParallelPlan("folds", 2)),
    ("auto", 2, 1, 0, ParallelPlan("ddp", 2)),
    ("dp", 2, 5, 0, ParallelPlan("dp", 1)),
    ("dp", 1, 5, 0, ParallelPlan("none", 1)),
    ("ddp", 4, 5, 0, ParallelPlan("ddp", 4)),
    ("folds", 4, 3, 0, ParallelPlan("folds", 3)),  # never more workers than folds
    ("folds", 0, 5, 0, ParallelPlan("folds", 2)),  # asked for on CPU: two processes share the cores
    ("ddp", 0, 5, 3, ParallelPlan("ddp", 3)),
    ("ddp", 2, 5, 4, ParallelPlan("ddp", 2)),  # NCCL: one GPU per rank
    ("none", 2, 5, 0, ParallelPlan("none", 1)),
])
def test_plan_parallel(monkeypatch, parallel, gpus, n_folds, workers, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    device = torch.device("cuda" if gpus else "cpu")
    assert plan_parallel(Config(parallel=parallel, workers=workers), device, n_folds) == expected


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                           "--nproc_per_node", str(nproc), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_ddp_two_ranks_train_like_one_process(tmp_path, monkeypatch):
    """2 gloo ranks, each on its share of every batch, end where one process ends (BatchNorm-free model).

    Tolerance: the runs differ only in floating-point summation order (the batch gradient is the all-reduced sum
    of two weighted half-batch means instead of one mean; one thread per rank), about 1e-7 relative per step, so
    after one short epoch the probabilities agree to ~1e-6; atol 1e-5 leaves room. With BatchNorm they would not:
    each rank normalises its half batch with that half's statistics (SyncBatchNorm would fix that, but needs CUDA).
    """
    done = _torchrun(2, str(REPO / "tests" / "ddp_worker.py"), str(tmp_path / "ddp"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    monkeypatch.setattr("core.trainer.create_model_from_spec", ddp_worker.no_norm_cnn)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ddp_worker.train(tmp_path / "single")
    finally:
        torch.set_num_threads(threads)
    for name in ddp_worker.CONFIGS:
        rank0, rank1 = (np.load(tmp_path / "ddp" / f"{name}_rank{r}.npy") for r in (0, 1))
        single = np.load(tmp_path / "single" / f"{name}_rank0.npy")
        np.testing.assert_array_equal(rank0, rank1)  # every rank ends with the same predictions
        np.testing.assert_allclose(rank0, single, rtol=0, atol=1e-5, err_msg=name)
        assert not np.allclose(single, 0.1, atol=1e-3)  # it trained: not the uniform guess of an untouched model


def write_train_csv(folder: Path, n: int = 120) -> Path:
    """A learnable train.csv in Kaggle's layout: the label is the row of a bright bar."""
    images, labels, _, _ = ddp_worker.tiny_data(n)
    frame = pd.DataFrame(images.reshape(n, -1).numpy().astype(np.int64), columns=[f"pixel{i}" for i in range(784)])
    frame.insert(0, "label", labels.numpy())
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "train.csv", index=False)
    return folder


def small_run(tmp_path: Path, name: str, **overrides) -> tuple[pd.DataFrame, dict]:
    config = Config(model="smallcnn", n_folds=2, epochs=1, batch_size=16, device="cpu", tta="none", **overrides)
    data = tmp_path / "data" if (tmp_path / "data").is_dir() else write_train_csv(tmp_path / "data")
    run = run_training(config, data_dir=data, output_dir=tmp_path / name)
    manifest = json.loads((run.output_dir / "manifest.json").read_text())
    return pd.read_csv(run.output_dir / "oof.csv"), manifest


def test_folds_mode_with_two_workers_gives_the_sequential_oof(tmp_path):
    sequential, _ = small_run(tmp_path, "sequential", parallel="none")
    spread, manifest = small_run(tmp_path, "spread", parallel="folds", workers=2)
    assert sorted(spread["row_id"]) == list(range(120))  # every row predicted once
    pd.testing.assert_frame_equal(spread[["row_id", "fold", "label"]], sequential[["row_id", "fold", "label"]])
    # same seeds and folds; only the thread count differs (1 per worker), hence a tolerance
    probs = [f"prob_{c}" for c in range(10)]
    np.testing.assert_allclose(spread[probs].to_numpy(), sequential[probs].to_numpy(), atol=2e-3)
    assert [f["fold"] for f in manifest["folds"]] == [0, 1]
    assert all((tmp_path / "spread" / f["weights"]).is_file() for f in manifest["folds"])


def test_ddp_mode_through_run_training(tmp_path):
    oof, manifest = small_run(tmp_path, "ddp", parallel="ddp", workers=2)
    assert sorted(oof["row_id"]) == list(range(120)) and set(oof["fold"]) == {0, 1}
    np.testing.assert_allclose(oof[[f"prob_{c}" for c in range(10)]].sum(axis=1), 1.0, atol=1e-4)
    assert manifest["local_cv"] == pytest.approx((oof["pred"] == oof["label"]).mean())
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert "smallcnn_fold1_best.pth" in written and not any("rank" in name for name in written)


@pytest.mark.parametrize("mode", ["folds", "ddp"])
def test_launched_modes_train_only_the_unfinished_folds(tmp_path, caplog, mode):
    """A rerun under ddp / folds skips the verified folds and launches workers for the rest alone."""
    data = write_train_csv(tmp_path / "data")
    out = tmp_path / "run"
    config = Config(model="smallcnn", n_folds=3, epochs=1, batch_size=16, device="cpu", tta="none")
    run_training(config, data_dir=data, output_dir=out)
    first = json.loads((out / "manifest.json").read_text())
    for kind in ("best", "last"):
        (out / f"smallcnn_fold1_{kind}.pth").unlink(missing_ok=True)  # fold 1 as if its session had died
    kept = {f"smallcnn_fold{k}_best.pth": (out / f"smallcnn_fold{k}_best.pth").read_bytes() for k in (0, 2)}

    caplog.set_level("INFO", logger="core")
    rerun = dataclasses.replace(config, parallel=mode, workers=2)
    run_training(rerun, data_dir=data, output_dir=out)
    messages = caplog.text
    assert "fold 0: already complete" in messages and "fold 2: already complete" in messages
    assert "worker process(es) for folds [1]" in messages
    assert all((out / name).read_bytes() == blob for name, blob in kept.items())  # finished folds untouched
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and [f["fold"] for f in manifest["folds"]] == [0, 1, 2]
    assert (out / "smallcnn_fold1_best.pth").is_file()
    oof = pd.read_csv(out / "oof.csv")
    assert sorted(oof["row_id"]) == list(range(120))
    assert manifest["folds"][0]["val_acc"] == first["folds"][0]["val_acc"]


def _gather_rank(rank: int, world: int, store_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world)
    try:
        total = 7  # uneven: shards of 4 and 3 rows
        rows = torch.arange(total, dtype=torch.float32).unsqueeze(1).repeat(1, 10)
        gathered = gather_shards(rows[shard(total, rank, world)], total)
        np.save(Path(out) / f"rank{rank}.npy", gathered.numpy())
    finally:
        torch.distributed.destroy_process_group()


def test_gather_shards_gives_every_rank_all_rows_in_order(tmp_path):
    torch.multiprocessing.spawn(_gather_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    expected = np.arange(7, dtype=np.float32)[:, None].repeat(10, axis=1)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"rank{rank}.npy"), expected)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_workers_stop_when_the_launching_process_is_killed(tmp_path):
    data, out = write_train_csv(tmp_path / "data"), tmp_path / "run"
    code = ("from core.config import Config\nfrom core.pipeline import run_training\n"
            "run_training(Config(model='smallcnn', n_folds=2, epochs=1000, batch_size=16, device='cpu', tta='none', "
            f"parallel='folds', workers=2), data_dir={str(data)!r}, output_dir={str(out)!r})\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(list(out.glob("smallcnn_fold*_last.pth"))) < 2:
            assert parent.poll() is None, "training ended before the kill"
            time.sleep(0.2)
        for status in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                cmdline = status.read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "core.launch" in cmdline and str(out) in cmdline:
                workers.append(int(status.parent.name))
        assert len(workers) == 2, workers  # both fold workers are training
        scratch = {Path(d) for d in Path(tempfile.gettempdir()).glob("digitkit-launch-*")
                   if any(str(d) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                          for pid in workers)}
        assert len(scratch) == 1

        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
        assert not any(d.exists() for d in scratch)  # the launch's scratch folder went with them
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


@pytest.mark.parametrize("mode", ["folds", "ddp"])  # under torchrun the line must survive its traceback too
def test_a_worker_whose_fold_diverges_reports_that_one_line(tmp_path, mode):
    from core.launch import WorkerFailed

    data, out = write_train_csv(tmp_path / "data"), tmp_path / "run"
    config = Config(model="smallcnn", n_folds=2, epochs=2, batch_size=16, learning_rate=1e6, min_lr=0.0,
                    device="cpu", tta="none", parallel=mode, workers=2)
    with pytest.raises(WorkerFailed) as info:
        run_training(config, data_dir=data, output_dir=out)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "DivergedError: fold " in message and " diverged in epoch " in message
    assert "learning_rate = 1e+06 is probably too high" in message
    assert not list(out.glob("*_best.pth"))
    manifest = out / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["complete"] is False  # inference refuses it


def test_the_threads_of_a_finished_fold_worker_go_to_those_still_running(tmp_path, monkeypatch, caplog):
    """5 folds on 2 CPU workers: once one worker is done, the other trains its last fold on both cores."""
    from core.launch import THREADS_FILE, follow_thread_share, share_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    before_epoch = follow_thread_share(tmp_path)
    threads = torch.get_num_threads()
    try:
        before_epoch(0)  # nothing written yet: the count the worker started with stays
        assert torch.get_num_threads() == threads
        share_threads(tmp_path, running=2)
        assert (tmp_path / THREADS_FILE).read_text() == "2"
        share_threads(tmp_path, running=1)
        assert (tmp_path / THREADS_FILE).read_text() == "4"
        with caplog.at_level("INFO", logger="core.launch"):
            before_epoch(3)
        assert torch.get_num_threads() == 4
        assert "epoch 4: 4 CPU threads from now on" in caplog.text
        (tmp_path / THREADS_FILE).write_text("garbled")  # a half-read file is ignored, not fatal
        before_epoch(4)
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(threads)
