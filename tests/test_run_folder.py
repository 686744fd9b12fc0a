"""A run owns its folder (tools/run_folder.py, used by make run / sweep / ensemble): one writer at a time, named in
the refusal; a stale lock taken over; a rerun with other training settings refused with each difference, or moved
aside by RESTART=1; the same settings resume; nothing is ever written outside runs/."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_notebooks_e2e import write_tiny_competition
from tools.run_folder import (LOCKS_DIR, REQUEST_NAME, RunFolderError, claim_run, differences, recorded_request,
                              run_lock)

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"model": "smallcnn", "learning_rate": 0.002, "epochs": 3}


def request(**changes) -> dict:
    return {"settings": {**SETTINGS, **changes}, "data": "f" * 64}


def test_a_claimed_run_records_its_request_and_releases_its_lock(tmp_path):
    with claim_run(tmp_path / "runs", "a", request=request(), command="make run") as run_dir:
        lock = tmp_path / "runs" / LOCKS_DIR / "a.lock"
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["command"] == \
            "make run"
    assert not lock.exists()
    assert json.loads((run_dir / REQUEST_NAME).read_text()) == request()


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    """Another process holds runs/a: the refusal names its pid, host and command; the folder is untouched."""
    script = textwrap.dedent(f"""
        import sys, time
        from tools.run_folder import claim_run
        with claim_run({str(tmp_path / 'runs')!r}, "a", request={{}}, command="make run RUN=a"):
            print("holding", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunFolderError) as refused:
            with claim_run(tmp_path / "runs", "a", request=request()):
                pytest.fail("a second writer entered")
        message = str(refused.value)
        assert f"is being written by pid {holder.pid} on {socket.gethostname()}" in message
        assert "(make run RUN=a)" in message and "use another RUN" in message and "\n" not in message
        assert json.loads((tmp_path / "runs" / "a" / REQUEST_NAME).read_text()) == {}  # the holder's, untouched
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_process_that_is_gone_is_taken_over(tmp_path, caplog):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    locks = tmp_path / "runs" / LOCKS_DIR
    locks.mkdir(parents=True)
    (locks / "a.lock").write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(),
                                              "since": "2026-01-01T00:00:00+00:00", "command": "make run"}))
    with claim_run(tmp_path / "runs", "a", request=request()):
        assert json.loads((locks / "a.lock").read_text())["pid"] == os.getpid()
    assert "took over a stale lock" in caplog.text


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with run_lock(tmp_path, "a", command="x"):
            raise KeyboardInterrupt
    assert not (tmp_path / LOCKS_DIR / "a.lock").exists()


def test_other_training_settings_are_refused_with_each_difference(tmp_path):
    with claim_run(tmp_path / "runs", "a", request=request()) as run_dir:
        (run_dir / "smallcnn_fold0_best.pth").write_bytes(b"weights")
    with pytest.raises(RunFolderError) as refused:
        with claim_run(tmp_path / "runs", "a", request=request(learning_rate=0.003, model="fastcnn")):
            pytest.fail("a different run entered")
    message = str(refused.value)
    assert "learning_rate: 0.002 → 0.003" in message and "model: 'smallcnn' → 'fastcnn'" in message
    assert "use another RUN=<name>, or RESTART=1" in message and "\n" not in message
    assert (run_dir / "smallcnn_fold0_best.pth").read_bytes() == b"weights"  # nothing replaced
    assert json.loads((run_dir / REQUEST_NAME).read_text()) == request()


def test_other_data_is_a_difference_too(tmp_path):
    claim_run_once(tmp_path, request())
    with pytest.raises(RunFolderError, match=r"data: ffffffffffff → 000000000000"):
        claim_run_once(tmp_path, {**request(), "data": "0" * 64})


def claim_run_once(tmp_path: Path, req: dict, **kw) -> Path:
    with claim_run(tmp_path / "runs", "a", request=req, **kw) as run_dir:
        return run_dir


def test_the_same_settings_resume_in_the_same_folder(tmp_path):
    first = claim_run_once(tmp_path, request())
    (first / "kept.txt").write_text("fold 0")
    assert claim_run_once(tmp_path, request()) == first and (first / "kept.txt").read_text() == "fold 0"


def test_restart_moves_the_old_run_aside_and_never_deletes_it(tmp_path, capsys):
    first = claim_run_once(tmp_path, request())
    (first / "kept.txt").write_text("the old run")
    second = claim_run_once(tmp_path, request(learning_rate=0.01), restart=True)
    aside = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("a.replaced-")]
    assert len(aside) == 1 and (aside[0] / "kept.txt").read_text() == "the old run"
    assert second == first and not (second / "kept.txt").exists()
    assert json.loads((second / REQUEST_NAME).read_text())["settings"]["learning_rate"] == 0.01
    assert f"moved to {aside[0]}" in capsys.readouterr().err


def test_a_run_saved_before_request_json_is_compared_through_its_manifest(tmp_path):
    from core.config import Config

    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    config = Config(model="smallcnn", epochs=2)
    (run / "manifest.json").write_text(json.dumps({"config": config.to_dict(), "train_sha256": "ab" * 32}))
    old = recorded_request(run)
    assert old == {"kind": "make run", "settings": config.training_settings(), "data": "ab" * 32}
    new = {"settings": Config(model="smallcnn", epochs=3).training_settings(), "data": "ab" * 32}
    assert differences(old, new) == ["epochs: 2 → 3"]


def test_how_a_run_runs_is_not_a_difference():
    """Device, workers and the evaluation batch decide nothing that a finished fold holds."""
    from core.config import Config

    base = Config(model="smallcnn")
    for change in ({"device": "cpu"}, {"workers": 3}, {"eval_batch_size": 64}, {"parallel": "none"}):
        other = Config(model="smallcnn", **change)
        assert differences({"settings": base.training_settings()}, {"settings": other.training_settings()}) == []


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", "", ".", "..", ".hidden", "a b", "it's", "folds",
                                  "compare", "kaggle-twin", "kaggle-infer", "journal.csv", "weights"])
def test_a_run_name_that_is_not_a_name_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(RunFolderError, match="a run name is letters, digits|is reserved for digitkit"):
        claim_run(tmp_path / "runs", name, request={}).__enter__()
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------- through make run
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_competition(tmp_path_factory.mktemp("data") / "digit-recognizer", n_train=100, n_test=10)


def test_make_run_with_other_settings_is_refused_before_any_notebook_runs(tmp_path, tiny_data, capsys):
    """The runner reads the settings and train.csv, compares them with the run's record and refuses in one line:
    no notebook is executed, the earlier run's files stay."""
    from tools import run_local
    from tools.run_local import training_request

    runs = tmp_path / "runs"
    base = {"data_dir": str(tiny_data), "model": "smallcnn", "epochs": 1}
    with claim_run(runs, "a", request=training_request(base)) as run_dir:
        (run_dir / "manifest.json").write_text("{}")
    code = run_local.main(["--run", "a", "--runs", str(runs), "--data", str(tiny_data), "--build",
                           str(tmp_path / "no-build"), "-p", "model=smallcnn", "-p", "epochs=1", "-p",
                           "learning_rate=0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("make run failed: ")
    assert "learning_rate: 0.002 → 0.5" in err and "RESTART=1" in err
    assert not (run_dir / "train.ipynb").exists() and (run_dir / "manifest.json").read_text() == "{}"


def test_make_run_refuses_a_bad_setting_before_taking_the_folder(tmp_path, tiny_data, capsys):
    from tools import run_local

    code = run_local.main(["--run", "b", "--runs", str(tmp_path / "runs"), "--data", str(tiny_data),
                           "-p", "n_folds=2;>x.txt"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "make run failed: parameter n_folds = '2;>x.txt': expected an integer"
    assert not (tmp_path / "runs" / "b").exists()


def test_make_run_rejects_a_path_as_run_name(tmp_path, capsys):
    from tools import run_local

    with pytest.raises(SystemExit) as exited:
        run_local.main(["--run", "../../x", "--runs", str(tmp_path / "runs")])
    assert exited.value.code == 2 and "a run name is letters, digits" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


def test_the_lock_of_a_killed_runner_does_not_block_the_rerun(tmp_path):
    """A runner killed with SIGKILL leaves its lock; the rerun sees the pid gone and goes on."""
    script = textwrap.dedent(f"""
        import os, signal
        from tools.run_folder import claim_run
        with claim_run({str(tmp_path / 'runs')!r}, "a", request={{}}):
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60)
    assert (tmp_path / "runs" / LOCKS_DIR / "a.lock").exists()
    time.sleep(0.1)
    assert claim_run_once(tmp_path, request()).name == "a"


def test_the_journal_says_a_run_is_running_while_its_writer_holds_it(tmp_path):
    from core.config import Config
    from tools.journal import read_journal

    with claim_run(tmp_path / "runs", "live", request={}, command="make run RUN=live") as run_dir:
        Config(model="smallcnn").save(run_dir / "config.json")  # what train_folds writes first
        [entry] = read_journal(tmp_path / "runs").entries
        assert entry.status.startswith("running: unfinished, being written by pid") and "make run RUN=live" in \
            entry.status
    [entry] = read_journal(tmp_path / "runs").entries
    assert entry.status.startswith("unfinished: 0 of 5 folds trained")


@pytest.mark.parametrize("other", [{"kind": "make sweep"}, {"kind": "make ensemble", "settings": {"runs": "a b"}},
                                   {"kind": "make kaggle", "target": "twin", "settings": SETTINGS}])
def test_a_folder_holds_one_kind_of_run(tmp_path, other):
    """make sweep, make ensemble or make kaggle never write into a make run folder (nor the reverse)."""
    claim_run_once(tmp_path, {"kind": "make run", **request()})
    with pytest.raises(RunFolderError, match=rf"other settings \(kind: 'make run' → '{other['kind']}'\)"):
        claim_run_once(tmp_path, other)


def test_a_loop_on_the_twin_is_not_the_loop_on_kaggle(tmp_path):
    claim_run_once(tmp_path, {"kind": "make kaggle", "target": "twin", "owner": "twinuser", "settings": SETTINGS})
    with pytest.raises(RunFolderError, match=r"target: 'twin' → 'kaggle'; owner: 'twinuser' → 'me'"):
        claim_run_once(tmp_path, {"kind": "make kaggle", "target": "kaggle", "owner": "me", "settings": SETTINGS})


def test_a_damaged_request_json_is_refused_not_overwritten(tmp_path):
    run_dir = claim_run_once(tmp_path, request())
    (run_dir / REQUEST_NAME).write_text("{not json")
    with pytest.raises(RunFolderError, match=r"request.json cannot be read .* RESTART=1"):
        claim_run_once(tmp_path, request())
    assert (run_dir / REQUEST_NAME).read_text() == "{not json"


def test_many_processes_racing_for_one_run_let_exactly_one_in(tmp_path):
    """The lock is the kernel's (flock): of several processes started at once, one holds the run, the others are
    refused — never two holders (an empty lock file being written is no stale lock)."""
    script = textwrap.dedent(f"""
        import sys, time
        from tools.run_folder import RunFolderError, claim_run
        try:
            with claim_run({str(tmp_path / 'runs')!r}, "a", request={{}}):
                print("in", flush=True)
                time.sleep(2)
        except RunFolderError:
            print("refused", flush=True)
    """)
    racers = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
              for _ in range(6)]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert said.count("in") == 1 and said.count("refused") == 5, said
