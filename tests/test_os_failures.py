"""The operating system's failures during a local run, each said in one line naming the path, the cause and the fix:
a read-only or full run folder (here, or inside the notebook's kernel), a kernel killed by a signal, and Ctrl-C, after
which nothing of the interrupted cell is left to die noisily (asyncio's "Task exception was never retrieved").

The notebooks are tiny and real (nbformat, a parameters cell, run by papermill through ``tools.run_notebook``); a
read-only folder is simulated where papermill writes, since the tests run as root, whom chmod does not stop.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import papermill.iorw
import pytest

import build
from tools import run_notebook as rn
from tools.os_errors import MB, describe_os_error

REPO = Path(__file__).resolve().parents[1]
# The runner as `make run` calls it, in a process of its own, so that its stderr is all that a user would see.
RUN_BUILT = ("import sys\nfrom pathlib import Path\nfrom tools.run_notebook import run_built\n"
             "sys.exit(run_built('k', Path(sys.argv[1]), {}, build=sys.argv[2], timeout=None, target='make run'))")


def built_notebook(folder: Path, *cells: str, parameters: str = "x = 1") -> Path:
    """``folder/k/k.ipynb``: a parameters cell, then ``cells``; returns ``folder`` (the --build of run_built)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(build.KERNELSPEC)})
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(source) for source in cells)]
    (folder / "k").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "k" / "k.ipynb")
    return folder


def run_in_child(build_dir: Path, run_dir: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", RUN_BUILT, str(run_dir), str(build_dir)], cwd=REPO, text=True,
                          capture_output=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# ------------------------------------------------------------------------------------------------ describe_os_error
def test_describe_names_path_cause_and_fix_for_each_errno(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "fold0.pth").write_bytes(b"\0" * (150 * MB // 100))  # 1.5 MB: below the 100 MB floor
    free = shutil.disk_usage(run).free / MB

    said = describe_os_error(OSError(errno.EROFS, "Read-only file system", str(run / "k.ipynb")), doing="saving")
    assert said == (f"{run / 'k.ipynb'} is on a read-only file system (while saving): use a folder on a writable "
                    f"disk, or remount this one read-write")
    said = describe_os_error(PermissionError(errno.EACCES, "Permission denied", str(run / "k.ipynb")), doing="saving")
    assert said == (f"{run / 'k.ipynb'} is not writable by you: permission denied (while saving): chmod u+w {run} "
                    f"(or ask its owner), or use a folder you own")
    said = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "x.pth"), doing="saving", folder=run)
    assert re.fullmatch(rf"the disk holding {re.escape(str(run))} is full: [\d,]+ MB free \(while saving, writing "
                        r"x\.pth\): free at least 100 MB there, or use a folder on another disk", said), said
    assert abs(float(said.split(": ")[1].split()[0].replace(",", "")) - free) < 1024  # the disk's real free space
    said = describe_os_error(OSError(errno.ENOSPC, "No space left on device"), doing="saving", folder=run,
                             needed=250 * MB + 1)  # no file name (a failed flush): the folder is named
    assert said.startswith(f"the disk holding {run} is full: ") and "free at least 251 MB there" in said
    said = describe_os_error(OSError(errno.EDQUOT, "Disk quota exceeded"), doing="saving", folder=run)
    assert said.startswith(f"your disk quota on the disk holding {run} is used up: ")
    said = describe_os_error(FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "a" / "b.csv")),
                             doing="reading")
    assert said == f"{tmp_path / 'a' / 'b.csv'} does not exist (nor does the folder {tmp_path / 'a'}) (while " \
                   f"reading): check the path"
    said = describe_os_error(OSError(errno.EMFILE, "Too many open files", "x"), doing="saving", folder=run)
    assert said == f"{run / 'x'}: Too many open files (EMFILE, while saving)"
    assert describe_os_error(FileNotFoundError("folds_path = 'f' does not exist"), doing="reading") == \
        "folds_path = 'f' does not exist (while reading)"  # no errno: its own message already says it


def test_a_full_run_folder_is_told_to_free_what_it_holds_so_far(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.pth", "sub/b.pth"):
        with open(tmp_path / name, "wb") as handle:
            handle.truncate(80 * MB)  # sparse: 160 MB of files that take no disk
    said = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "c.pth"), doing="saving",
                             folder=tmp_path)
    assert "free at least 160 MB there" in said


# ------------------------------------------------------------------------------------- a read-only or full run folder
@pytest.mark.parametrize("code, filename, said", [
    (errno.EROFS, True, "{out} is on a read-only file system (while running k.ipynb in {run}): use a folder on a "
                        "writable disk"),
    (errno.EACCES, True, "{out} is not writable by you: permission denied (while running k.ipynb in {run}): "
                         "chmod u+w {run}"),
    (errno.ENOSPC, False, "the disk holding {run} is full: "),  # a failed flush names no file
], ids=["read-only", "not-yours", "full"])
def test_a_run_folder_that_cannot_be_written_fails_in_one_line(code, filename, said, tmp_path, monkeypatch, capsys):
    """papermill saves the executed notebook first; where that fails, so does the cleanup of the kernel's log: before,
    56 lines of chained tracebacks."""
    run = tmp_path / "run"

    def refuse(self, buf, path):
        raise OSError(code, os.strerror(code), *([path] if filename else []))

    def unlink(self, missing_ok=False):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(papermill.iorw.LocalHandler, "write", refuse)
    monkeypatch.setattr(Path, "unlink", unlink)
    code_ = rn.run_built("k", run, {}, build=built_notebook(tmp_path / "build", "print(1)"), timeout=None,
                         target="make run")
    err = capsys.readouterr().err
    assert code_ == 1 and "Traceback" not in err
    assert one_line(err).startswith("make run failed: " + said.format(out=run / "k.ipynb", run=run)), err


def test_the_run_notebook_cli_says_a_read_only_folder_in_one_line(tmp_path, monkeypatch, capsys):
    def refuse(self, buf, path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(papermill.iorw.LocalHandler, "write", refuse)
    notebook = built_notebook(tmp_path / "build", "print(1)") / "k" / "k.ipynb"
    assert rn.main([str(notebook), "--out", str(tmp_path / "run" / "k.ipynb"), "--cwd", str(tmp_path / "run")]) == 1
    assert one_line(capsys.readouterr().err).startswith(
        f"run_notebook: error: {tmp_path / 'run' / 'k.ipynb'} is on a read-only file system")


@pytest.mark.parametrize("raised, said", [
    ("OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'x.pth')",
     r"OSError: the disk holding {run} is full: [\d,]+ MB free \(while running the cell, writing x\.pth\): free at "
     r"least 100 MB there, or use a folder on another disk"),
    ("PermissionError(errno.EACCES, os.strerror(errno.EACCES), 'x.pth')",
     r"PermissionError: {run}/x\.pth is not writable by you: permission denied \(while running the cell\): chmod "
     r"u\+w {run} \(or ask its owner\), or use a folder you own"),
], ids=["full", "not-yours"])
def test_a_full_or_read_only_folder_inside_the_kernel_is_said_like_here(raised, said, tmp_path):
    """The cell's OSError names a file relative to the kernel's cwd, the run folder: the line names that folder, and
    for a full disk how much is free there; before: "OSError: [Errno 28] No space left on device: 'x.pth'"."""
    build_dir = built_notebook(tmp_path / "build", f"import errno, os\nraise {raised}")
    run = tmp_path / "run"
    code, out, err = run_in_child(build_dir, run)
    line = one_line(err)
    assert code == 1, err
    said = said.format(run=re.escape(str(run)))
    assert re.fullmatch(rf"make run failed: cell In \[2\] \('import errno, os'\) failed: {said} — executed notebook: "
                        rf"{re.escape(str(run / 'k.ipynb'))}", line), line


# ------------------------------------------------------------------------------------------------- a killed kernel
def test_a_kernel_killed_by_sigkill_is_named_with_the_memory_fix(tmp_path):
    """The out-of-memory killer's SIGKILL, as a cell that sends it to its own kernel. Before: "DeadKernelError: Kernel
    died (the kernel's last words: [IPKernelApp] WARNING | Kernel is running over TCP without encryption …)", after
    nbclient's own log line "Kernel died while waiting for execute reply."."""
    build_dir = built_notebook(tmp_path / "build", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                               parameters="batch_size = 128\neval_batch_size = 1024")
    run = tmp_path / "run"
    code, out, err = run_in_child(build_dir, run)
    line = one_line(err)
    assert code == 1
    assert line == (f"make run failed: cell 2 ('import os, signal') failed: DeadKernelError: the notebook's kernel was "
                    f"killed by SIGKILL — usually the out-of-memory killer: try a smaller batch_size or "
                    f"eval_batch_size (PARAMS=\"batch_size=64 eval_batch_size=256\") — executed notebook: "
                    f"{run / 'k.ipynb'}")
    assert not list(run.glob(".*.kernel.log"))


def test_a_dead_kernel_names_its_signal():
    assert rn._kernel_death(-signal.SIGSEGV, []) == "the notebook's kernel was killed by SIGSEGV (Segmentation fault)"
    assert rn._kernel_death(-signal.SIGKILL, ["batch_size"]).endswith(
        "out-of-memory killer: try a smaller batch_size (PARAMS=\"batch_size=64\")")
    assert rn._kernel_death(-signal.SIGKILL, []).endswith("free memory (close other programs) or use a machine with "
                                                          "more")
    assert rn._kernel_death(3, []) == "the notebook's kernel exited with status 3"
    assert rn._kernel_death(None, []) == ""


# ---------------------------------------------------------------------------------------------------------- Ctrl-C
CTRL_C_CELL = "import time\nfor i in range(6000):\n    print(f'fold 0 epoch {i}/6000', flush=True)\n    time.sleep(0.1)"
# After run_built returns, the child runs the runner's event loop a while longer: nbclient left the interrupted cell's
# tasks pending on it, and whoever runs that loop next (the kernel's shutdown, when it takes over a second, as the
# trainer's does under load) lets their poll find the kernel gone; the exception nobody awaits is then printed.
CTRL_C_CHILD = RUN_BUILT.replace("sys.exit(", "code = (") + (
    "\nimport asyncio, gc\nfrom jupyter_core.utils import ensure_event_loop\n"
    "ensure_event_loop().run_until_complete(asyncio.sleep(2.5))\ngc.collect()\nsys.exit(code)")


def test_ctrl_c_leaves_no_task_to_die_noisily(tmp_path):
    """As a terminal's Ctrl-C: SIGINT to the runner's process group while the cell runs; one pipe for stdout and
    stderr, so the lines come in the order they were written."""
    build_dir = built_notebook(tmp_path / "build", CTRL_C_CELL)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, str(run), str(build_dir)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while not any("epoch 3/6000" in line for line in list(lines)):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-20:])
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        assert proc.wait(timeout=120) == rn.INTERRUPTED
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    text = "".join(lines)
    for noise in ("Task exception was never retrieved", "Task was destroyed but it is pending", "Traceback",
                  "DeadKernelError"):
        assert noise not in text, text[-3000:]
    assert re.fullmatch(r"make run interrupted during fold 0 epoch \d+/6000; rerun the same command — executed "
                        rf"notebook so far: {re.escape(str(run / 'k.ipynb'))}", text.strip().splitlines()[-1]), text
