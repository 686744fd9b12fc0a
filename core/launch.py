"""Train folds in worker processes: ``parallel = "ddp"`` (torchrun ranks share every batch) or ``"folds"`` (one
process per device, each training whole folds, no communication at all).

The notebook's ``%%writefile`` cells put ``core/`` on disk, so the training process can start workers that import
the very same package. The parent (:func:`train_folds_in_workers`) writes the data, folds and config once into a
scratch folder, starts the workers, streams their log lines, and reads each fold's result file
(``<model>_fold<k>_oof.npz``, written by train_fold into the output folder; format in core.fold_result) as soon as it
appears; oof.csv and manifest.json are assembled by the parent exactly as after sequential training::

    python -m torch.distributed.run --standalone --nproc_per_node N -m core.launch --work W --output O --folds 0,1,2
    CUDA_VISIBLE_DEVICES=i python -m core.launch --work W --output O --folds 0,2,4      # one per device

Under ddp only rank 0 writes into the output folder (other ranks write their copies into a scratch folder, deleted
afterwards); every rank produces the same predictions, which the workers check. Every worker gets ``--parent-pid``
and stops by itself when the launching process is gone (a killed kernel leaves no worker writing into its run).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_text_atomic
from .config import Config
from .device import resolve_device
from .distributed import ranks_agree
from .fold_result import FoldResult, fold_file, load_fold_result
from .models import PretrainedWeightsError
from .pseudo import PseudoLabels, fold_training_data
from .trainer import DivergedError, train_fold

log = logging.getLogger(__name__)
ERROR_MARK = "digitkit-error:"  # a worker's last word when it stops on one of digitkit's own errors
# In the launch's work folder: how many CPU threads each fold worker still running may use now. The parent rewrites
# it when a worker finishes, so that the folds left (5 folds on 2 workers: the fifth alone) take the freed cores.
THREADS_FILE = "threads"


class WorkerFailed(RuntimeError):
    """A ddp rank or fold worker stopped; the message is its own error line, else the end of its output."""

LAUNCHED_MODES = ("ddp", "folds")


@dataclasses.dataclass(frozen=True)
class ParallelPlan:
    """How a run uses its devices: ``mode`` none | dp | ddp | folds and ``workers`` (processes; 1 = in-process)."""

    mode: str
    workers: int

    @property
    def launches(self) -> bool:
        return self.mode in LAUNCHED_MODES


def plan_parallel(config: Config, device: torch.device, n_folds: int) -> ParallelPlan:
    """Resolve ``config.parallel`` for a run of ``n_folds`` folds on ``device``.

    ``auto``: one device → none; several GPUs → folds (one process per GPU, no communication) when at least two folds
    are to run, else ddp. ``ddp`` / ``folds`` asked for explicitly always launch workers: ``config.workers`` of them
    (ddp: at most one per GPU; folds: at most one per fold), or one per GPU (2 on CPU, one thread each: there it
    mostly avoids OpenMP threads waiting on each other when other processes share the cores).
    """
    n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    mode = config.parallel
    if mode == "auto":
        mode = "none" if n_gpus < 2 else "folds" if n_folds >= 2 else "ddp"
    if mode == "dp" and n_gpus < 2:
        mode = "none"
    if mode not in LAUNCHED_MODES:
        return ParallelPlan(mode, 1)
    workers = config.workers or (n_gpus if n_gpus else 2)
    if mode == "folds":
        workers = min(workers, n_folds)
    elif n_gpus:  # NCCL wants one GPU per rank
        workers = min(workers, n_gpus)
    return ParallelPlan(mode, max(1, workers))


# --------------------------------------------------------------------------------------------------------- parent
def train_folds_in_workers(config: Config, plan: ParallelPlan, *, images: np.ndarray, labels: np.ndarray,
                           folds: np.ndarray, fold_list: Sequence[int], output_dir: str | Path,
                           timeout: float | None = None,
                           on_fold: Callable[[FoldResult, np.ndarray], None] | None = None,
                           pseudo: PseudoLabels | None = None) -> list[tuple[FoldResult, np.ndarray]]:
    """Train ``fold_list`` in ``plan.workers`` processes and return [(FoldResult, val_idx)] in ``fold_list`` order.

    Args:
        images: uint8 (N, 28, 28) all train rows; labels: int64 (N,); folds: int64 (N,) fold of each row.
        output_dir: Where the workers write the fold weights and logs (as ``train_fold`` does).
        timeout: Seconds before the workers are stopped (None: no limit).
        on_fold: Called in this process with (FoldResult, val_idx) as soon as a worker finishes a fold (the
            pipeline records the fold in manifest.json then, so a kill loses no finished fold).
        pseudo: Test rows each fold also trains on (core.pseudo), passed to the workers with the data.

    Raises:
        RuntimeError: A worker failed; the message holds the end of its output.
    """
    assert plan.launches, plan
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    results = {fold: output_dir / fold_file(config.model, fold, "oof") for fold in fold_list}
    for path in results.values():  # an earlier run's result of a fold trained again here is not this run's
        path.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="digitkit-launch-"))
    try:
        extra: dict[str, Any] = {} if pseudo is None else {"pseudo_images": pseudo.images,  # np.savez's **kwds
                                                            "pseudo_labels": pseudo.labels}
        np.savez(work / "data.npz", images=images, labels=labels, folds=folds, **extra)
        (work / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
        env = _worker_env(plan.workers)
        common = ["--work", str(work), "--output", str(output_dir), "--parent-pid", str(os.getpid())]
        module = f"{__package__}.launch"
        if plan.mode == "ddp":
            commands = [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                         "--nproc_per_node", str(plan.workers), "-m", module, *common,
                         "--folds", ",".join(map(str, fold_list))]]
            envs, tags = [env], ["ddp"]
        else:
            visible = _visible_gpus()
            shares = [list(fold_list)[i::plan.workers] for i in range(plan.workers)]
            commands = [[sys.executable, "-m", module, *common, "--folds", ",".join(map(str, share))]
                        for share in shares if share]
            envs = [{**env, "CUDA_VISIBLE_DEVICES": visible[i % len(visible)]} if visible else env
                    for i in range(len(commands))]
            tags = [f"worker{i}" for i in range(len(commands))]
        log.info("parallel = %s: %d worker process(es) for folds %s, running the %s package in %s", plan.mode,
                 plan.workers, list(fold_list), __package__, _package_root())
        seen: dict[int, tuple[FoldResult, np.ndarray]] = {}
        shares_cores = plan.mode == "folds" and not _visible_gpus()  # CPU fold workers: the threads are shared out
        shared_for = 0  # the number of running workers the last THREADS_FILE was written for

        def collect(running: int = 0) -> None:  # train_fold writes its _oof.npz last, in one rename: one that
            # exists is whole
            nonlocal shared_for
            for fold, path in results.items():
                if fold not in seen and path.is_file():
                    seen[fold] = load_fold_result(path)
                    if on_fold is not None:
                        on_fold(*seen[fold])
            if shares_cores and running and running != shared_for:
                share_threads(work, running=running)
                shared_for = running

        _run_all(commands, envs, tags, timeout=timeout, poll=collect)
        collect()
        return [seen[fold] for fold in fold_list]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _package_root() -> Path:
    """The folder holding this package (the notebook's working folder, or the repository)."""
    return Path(sys.modules[__package__].__path__[0]).resolve().parent


def _visible_gpus() -> list[str]:
    """CUDA device ids as CUDA_VISIBLE_DEVICES would name them for a child ([] on a machine without GPUs)."""
    if not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [part.strip() for part in given.split(",") if part.strip()] if given else []
    return ids or [str(i) for i in range(torch.cuda.device_count())]


def threads_per_worker(running: int) -> int:
    """CPU threads for each of ``running`` worker processes: the cores shared out, at least one each."""
    return max(1, (os.cpu_count() or 1) // max(1, running))


def share_threads(work: Path, *, running: int) -> None:
    """Tell the fold workers still running how many threads each may use (``THREADS_FILE``)."""
    write_text_atomic(work / THREADS_FILE, str(threads_per_worker(running)))


def follow_thread_share(work: Path) -> Callable[[int], None]:
    """The fold worker's ``before_epoch`` hook: take up the thread count the parent last wrote to ``THREADS_FILE``.

    torch.set_num_threads applies to the calling thread's later operations, so it is called here, in the training
    thread, between epochs (never from a watcher thread)."""
    path = work / THREADS_FILE

    def before_epoch(epoch: int) -> None:
        try:
            threads = int(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not written yet, or being replaced: keep the present count
            return
        if threads != torch.get_num_threads():
            log.info("epoch %d: %d CPU threads from now on (a fellow worker has finished)", epoch + 1, threads)
            torch.set_num_threads(threads)

    return before_epoch


def _worker_env(workers: int) -> dict[str, str]:
    threads = threads_per_worker(workers)
    paths = [str(_package_root()), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
            "OMP_NUM_THREADS": str(threads), "DIGITKIT_THREADS": str(threads)}


def _run_all(commands: list[list[str]], envs: list[dict[str, str]], tags: list[str], *,
             timeout: float | None, poll: Callable[[int], None] = lambda running: None) -> None:
    """Start every command, forward its lines (prefixed with its tag) to stdout, wait; stop all when one fails.
    ``poll`` is called every 0.2 s while they run, with the number of them still running."""
    procs, tails, said, threads = [], [], [], []
    for command, env, tag in zip(commands, envs, tags, strict=True):
        log.info("[%s] %s", tag, " ".join(command))
        proc = subprocess.Popen(command, env=env, cwd=_package_root(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        tail: deque[str] = deque(maxlen=40)
        marked: list[str] = []  # its ERROR_MARK lines, kept apart: torchrun's traceback can push them out of the tail
        thread = threading.Thread(target=_forward, args=(proc, tag, tail, marked), daemon=True)
        thread.start()
        procs.append(proc)
        tails.append(tail)
        said.append(marked)
        threads.append(thread)
    deadline = None if timeout is None else time.monotonic() + timeout
    failed = None
    try:  # an interrupted cell or a failing ``poll`` stops the workers too
        while failed is None and any(p.poll() is None for p in procs):
            failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            if deadline is not None and time.monotonic() > deadline:
                failed = -1
            poll(sum(p.poll() is None for p in procs))
            time.sleep(0.2)
        failed = failed if failed is not None else next((i for i, p in enumerate(procs) if p.returncode), None)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, thread in zip(procs, threads, strict=True):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            thread.join(timeout=5)
    if failed == -1:
        raise RuntimeError(f"workers stopped after the {timeout} s timeout")
    if failed is not None:
        if said[failed]:  # a digitkit error with its own clear message (a diverged fold, a bad setting): that alone
            raise WorkerFailed(f"[{tags[failed]}] {said[failed][-1]}")
        raise WorkerFailed(f"{tags[failed]} failed (exit code {procs[failed].returncode}); its last lines:\n"
                           + "".join(tails[failed]))


def _forward(proc: subprocess.Popen, tag: str, tail: deque, said: list[str]) -> None:
    assert proc.stdout is not None  # started with stdout=PIPE
    for line in proc.stdout:
        tail.append(line)
        if ERROR_MARK in line:  # torchrun prefixes each rank's lines ("[default0]:"): find the mark anywhere
            said.append(line.split(ERROR_MARK, 1)[1].strip())
        sys.stdout.write(f"[{tag}] {line}")
        sys.stdout.flush()


# --------------------------------------------------------------------------------------------------------- worker
def run_worker(*, work: Path, output_dir: Path, fold_list: Sequence[int]) -> None:
    """Train ``fold_list`` in this process (one torchrun rank, or one fold worker); train_fold leaves each fold's
    ``_oof.npz`` in ``output_dir`` (rank 0) or in a scratch folder (ranks > 0)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    config = Config.from_mapping(json.loads((work / "config.json").read_text(encoding="utf-8")))
    # the launcher chose this worker's GPU (CUDA_VISIBLE_DEVICES / LOCAL_RANK): only the device type applies here
    device = resolve_device("cuda" if config.device.startswith("cuda") else config.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world > 1 else 0)
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    with np.load(work / "data.npz") as data:
        images, labels, folds = data["images"], data["labels"], data["folds"]
        pseudo = (PseudoLabels(images=data["pseudo_images"], labels=data["pseudo_labels"],
                               threshold=config.pseudo_threshold, source=Path(config.pseudo_labels))
                  if "pseudo_images" in data.files else None)
    scratch = Path(tempfile.mkdtemp(prefix=f"digitkit-rank{rank}-")) if rank > 0 else None
    try:
        for fold in fold_list:
            fold_dir = output_dir
            if scratch is not None:  # ranks > 0 keep their copies out of the output; resume from rank 0's state
                fold_dir = scratch
                last = fold_file(config.model, fold, "last")
                if (output_dir / last).is_file():
                    shutil.copy(output_dir / last, scratch / last)
            train_idx, val_idx = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            fold_images, fold_labels, train_idx = fold_training_data(pseudo, images, labels, train_idx, fold)
            result = train_fold(config, images=torch.from_numpy(fold_images), labels=torch.from_numpy(fold_labels),
                                train_idx=train_idx, val_idx=val_idx,
                                fold=fold, output_dir=fold_dir, device=device,
                                before_epoch=follow_thread_share(work) if world == 1 else None)
            if not ranks_agree(result.val_probs):
                log.warning("fold %d: the ranks' validation predictions differ; rank 0's are kept", fold)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if world > 1:
            torch.distributed.destroy_process_group()


def exit_when_gone(pid: int, scratch: Path | None = None, interval: float = 1.0) -> threading.Thread:
    """Watch process ``pid`` (the notebook kernel that launched this worker) and end this process once it is gone.

    A killed or restarted kernel must not leave workers that go on writing into the run folder while the user
    reruns it. Polls with signal 0 every ``interval`` seconds; works through torchrun's agent too. ``scratch`` (the
    launch's work folder, which the dead parent can no longer delete) is removed on the way out.
    """
    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                if scratch is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
                try:  # our stdout was a pipe to the dead parent: this write may fail
                    print(f"the launching process {pid} is gone; stopping this worker", file=sys.stderr, flush=True)
                finally:
                    os._exit(3)
            except PermissionError:  # it exists, under another user
                pass

    thread = threading.Thread(target=watch, name="exit-when-parent-gone", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="digitkit fold worker (started by core.launch)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder with data.npz and config.json")
    parser.add_argument("--output", type=Path, required=True, help="the run's output folder")
    parser.add_argument("--folds", required=True, help="comma-separated folds to train, e.g. 0,2,4")
    parser.add_argument("--parent-pid", type=int, default=0, help="stop when this process is gone (0: never)")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stdout,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)
    if os.environ.get("DIGITKIT_THREADS"):
        torch.set_num_threads(int(os.environ["DIGITKIT_THREADS"]))
    if args.parent_pid:
        exit_when_gone(args.parent_pid, scratch=args.work)
    try:
        run_worker(work=args.work, output_dir=args.output, fold_list=[int(f) for f in args.folds.split(",") if f])
    except (DivergedError, PretrainedWeightsError, ValueError) as err:  # digitkit's errors say what to do in one
        # line: pass that line on
        print(f"{ERROR_MARK} {type(err).__name__}: {err}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
