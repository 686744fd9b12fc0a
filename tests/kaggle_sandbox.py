"""A Kaggle sandbox: a built notebook executed the way Kaggle executes a pushed kernel.

What the notebook sees, as on Kaggle: ``/kaggle/input/<slug>/`` (read-only) holding only what is attached,
``/kaggle/working`` as its working directory (it becomes the kernel's output), ``/kaggle/temp``,
``KAGGLE_KERNEL_RUN_TYPE=Batch``, an empty home (no hub cache), no ``HF_HUB_OFFLINE``, and the ``papermill`` command of
the chosen environment running the notebook with nothing injected but the parameters a test passes (a user changes
``epochs`` at most). The paths are real: a private mount namespace (``unshare --mount``) binds a temporary folder at
``/kaggle``, so nothing outside the test sees it and nothing is redirected by environment variables.

Needs root (CI and the dev machines are root) and ``unshare``; :func:`sandbox_problem` says why not otherwise.
What it cannot prove: a GPU (the machine has none) and a real download (no internet here: the attempt fails).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

import nbformat

REPO = Path(__file__).resolve().parents[1]
KAGGLE_ROOT = Path("/kaggle")
# The package sets the sandbox runs in: name -> virtual environment (made by the Makefile).
ENVIRONMENTS = {"pinned": REPO / ".venv", "kaggle": REPO / ".venv-kaggle", "oldest": REPO / ".venv-oldest"}

_SCRIPT = r"""
set -e
mount --bind "$SANDBOX_ROOT" /kaggle
mount --bind /kaggle/input /kaggle/input
mount -o remount,bind,ro /kaggle/input
cd /kaggle/working
exec "$SANDBOX_PAPERMILL" "$SANDBOX_NOTEBOOK" "$SANDBOX_EXECUTED" -y "$SANDBOX_PARAMETERS" --log-output
"""


def sandbox_problem() -> str | None:
    """Why the sandbox cannot run on this machine (None when it can)."""
    if os.geteuid() != 0:
        return "the Kaggle sandbox needs root (a private mount namespace binds a folder at /kaggle)"
    if shutil.which("unshare") is None:
        return "the Kaggle sandbox needs unshare (util-linux)"
    if KAGGLE_ROOT.exists() and any(KAGGLE_ROOT.iterdir()):
        return f"{KAGGLE_ROOT} exists and is not empty on this machine: the sandbox will not hide it"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode:
        return f"unshare --mount is not permitted here: {probe.stderr.strip()}"
    return None


def environment_problem(name: str) -> str | None:
    """Why environment ``name`` cannot run the sandbox (None when it can)."""
    venv = ENVIRONMENTS[name]
    if not (venv / "bin" / "papermill").is_file():
        target = "venv" if name == "pinned" else f"venv-{name}"
        return f"{venv.name} has no papermill: run make {target}"
    return None


@dataclasses.dataclass
class SandboxRun:
    returncode: int
    log: str  # papermill's stdout + stderr (the kernel's streams, with --log-output)
    executed: Path  # the executed notebook

    @functools.cached_property
    def notebook(self) -> nbformat.NotebookNode:
        return nbformat.read(str(self.executed), as_version=4)

    @functools.cached_property
    def text(self) -> str:
        """Every stream and text output of the executed notebook (markdown where there is some), in order."""
        parts = []
        for cell in self.notebook.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                parts.append("".join(output.get("text", "")) or "".join(data.get("text/markdown", ""))
                             or "".join(data.get("text/plain", "")))
                if output.get("output_type") == "error":
                    parts.append(f"{output['ename']}: {output['evalue']}")
        return "\n".join(parts)

    def check(self) -> "SandboxRun":
        assert self.returncode == 0, f"papermill exited {self.returncode}:\n{self.log[-4000:]}"
        return self


class KaggleSandbox:
    """One Kaggle session's folders, under ``base``; ``run`` executes a notebook there with ``venv``'s papermill."""

    def __init__(self, base: Path, venv: Path):
        self.base, self.venv = Path(base), Path(venv)
        self.kaggle = self.base / "kaggle"  # bound at /kaggle
        self.input, self.working = self.kaggle / "input", self.kaggle / "working"
        for folder in (self.input, self.working, self.kaggle / "temp", self.base / "home", self.base / "runs"):
            folder.mkdir(parents=True, exist_ok=True)
        self._runs = 0

    def attach(self, slug: str, source: Path, names: Iterable[str] | None = None) -> Path:
        """Attach ``source`` (all of it, or only ``names``) as ``/kaggle/input/<slug>/``; returns the host path."""
        target = self.input / slug
        if target.exists():
            shutil.rmtree(target)
        if names is None:
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            for name in names:
                shutil.copy2(Path(source) / name, target / name)
        return target

    def detach_all(self) -> None:
        shutil.rmtree(self.input)
        self.input.mkdir()

    def new_session(self) -> None:
        """A new kernel version: an empty /kaggle/working (keep what you need first: ``keep_output``)."""
        shutil.rmtree(self.working)
        self.working.mkdir()

    def keep_output(self, name: str) -> Path:
        """A copy of /kaggle/working as it is now, the way Kaggle keeps a version's output."""
        target = self.base / "outputs" / name
        shutil.copytree(self.working, target)
        return target

    def run(self, notebook: Path, parameters: dict | None = None, *, timeout: int = 900) -> SandboxRun:
        """Execute ``notebook`` as Kaggle does; the executed copy stays outside /kaggle (Kaggle keeps it apart)."""
        self._runs += 1
        source = self.base / "runs" / f"{self._runs:02d}-{Path(notebook).name}"
        shutil.copy(notebook, source)
        executed = source.with_name(source.stem + ".executed.ipynb")
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.base / "home"),
            "LANG": "C.UTF-8",
            "KAGGLE_KERNEL_RUN_TYPE": "Batch",
            "PYTHONDONTWRITEBYTECODE": "1",
            "SANDBOX_ROOT": str(self.kaggle),
            "SANDBOX_PAPERMILL": str(self.venv / "bin" / "papermill"),
            "SANDBOX_NOTEBOOK": str(source),
            "SANDBOX_EXECUTED": str(executed),
            "SANDBOX_PARAMETERS": json.dumps(parameters or {}),  # JSON is YAML: papermill -y takes it as it is
        }
        try:
            done = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _SCRIPT],
                                  env=env, capture_output=True, text=True, timeout=timeout)
            code, log = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, log = 124, f"timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
        (executed.with_suffix(".log")).write_text(log)
        return SandboxRun(returncode=code, log=log, executed=executed)


def make_mount_point() -> bool:
    """Create the empty /kaggle the namespace binds over (a mount needs an existing folder); True if made here."""
    if KAGGLE_ROOT.exists():
        return False
    KAGGLE_ROOT.mkdir()
    return True
