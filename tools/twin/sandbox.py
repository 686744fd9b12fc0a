"""A Kaggle sandbox: a notebook executed the way Kaggle executes a pushed kernel.

What the notebook sees, as on Kaggle: ``/kaggle/input/<slug>/`` (read-only) holding only what is attached,
``/kaggle/working`` as its working directory (it becomes the kernel's output), ``/kaggle/temp``,
``KAGGLE_KERNEL_RUN_TYPE=Batch``, an empty home (no hub cache), no ``HF_HUB_OFFLINE``, and the ``papermill`` command of
the chosen environment running the notebook with nothing injected but the parameters a caller passes (a user changes
``epochs`` at most). The paths are real: a private mount namespace (``unshare --mount``) binds a folder at ``/kaggle``,
so nothing outside sees it and nothing is redirected by environment variables.

Without internet (``internet=False``, a kernel's ``enable_internet: false``) the session also gets its own network
namespace (``unshare --net``) with only the loopback interface up: papermill and the kernel talk ZMQ over it, and
nothing else can be reached, not even the host's 127.0.0.1. ``pid_namespace=True`` runs the session as the first
process of its own PID namespace, so killing it ends every process it started (jupyter starts the kernel in a session
of its own: a process-group kill would miss it).

Needs root, or unprivileged user namespaces and an existing empty ``/kaggle``; :func:`sandbox_problem` says why not.
Used by the Kaggle twin (tools/twin/kernels.py) and by the tests (tests/kaggle_sandbox.py re-exports this module).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAGGLE_ROOT = Path("/kaggle")
# The package sets the sandbox runs in: name -> virtual environment (made by the Makefile).
ENVIRONMENTS = {"pinned": REPO / ".venv", "kaggle": REPO / ".venv-kaggle", "oldest": REPO / ".venv-oldest"}

_SCRIPT = r"""
set -e
if [ -n "$SANDBOX_IP" ]; then "$SANDBOX_IP" link set lo up; fi
mount --bind "$SANDBOX_ROOT" /kaggle
mount --bind /kaggle/input /kaggle/input
mount -o remount,bind,ro /kaggle/input
cd /kaggle/working
exec "$SANDBOX_PAPERMILL" "$SANDBOX_NOTEBOOK" "$SANDBOX_EXECUTED" -y "$SANDBOX_PARAMETERS" --log-output
"""


def ip_command() -> str | None:
    """The ``ip`` executable (iproute2), looked up in the sbin folders too."""
    return shutil.which("ip", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin:/usr/local/sbin")


def unshare_command(*, internet: bool = True, pid_namespace: bool = False) -> list[str]:
    """``unshare`` with a private mount namespace; a user namespace when not root; ``--net`` without internet."""
    command = ["unshare"]
    if os.geteuid() != 0:
        command += ["--user", "--map-root-user"]
    command += ["--mount", "--propagation", "private"]
    if pid_namespace:
        command += ["--pid", "--fork", "--kill-child", "--mount-proc"]
    if not internet:
        command.append("--net")
    return command


def sandbox_problem(network: bool = False, *, require_empty: bool = True) -> str | None:
    """Why the sandbox cannot run on this machine (None when it can).

    Args:
        network: also check what a kernel without internet needs (a network namespace, the ip command).
        require_empty: refuse a /kaggle with files on the host. The sandbox hides them (it binds over /kaggle), but a
            process outside it would take them for Kaggle's (core/paths.py looks for /kaggle/working): tests refuse
            such a machine; the twin only warns.
    """
    if shutil.which("unshare") is None:
        return "the Kaggle sandbox needs unshare (util-linux)"
    root = os.geteuid() == 0
    if require_empty and KAGGLE_ROOT.exists() and any(KAGGLE_ROOT.iterdir()):
        return f"{KAGGLE_ROOT} exists and is not empty on this machine: the sandbox will not hide it"
    probe = subprocess.run([*unshare_command(), "true"], capture_output=True, text=True)
    if probe.returncode:
        if not root:
            return ("the Kaggle sandbox needs root or unprivileged user namespaces (a private mount namespace binds a "
                    f"folder at /kaggle): unshare --user says {_one_line(probe.stderr) or probe.returncode}")
        return f"unshare --mount is not permitted here: {_one_line(probe.stderr)}"
    if not root and not KAGGLE_ROOT.is_dir():
        return ("the Kaggle sandbox binds a folder at /kaggle, which a user namespace cannot create: make an empty "
                "/kaggle once as root (sudo mkdir /kaggle), or run as root")
    if network:
        ip = ip_command()
        if ip is None:
            return "a kernel without internet needs the ip command (iproute2) to bring up its loopback interface"
        probe = subprocess.run([*unshare_command(internet=False, pid_namespace=True), ip, "link", "set", "lo", "up"],
                               capture_output=True, text=True)
        if probe.returncode:
            return f"unshare --net (a kernel without internet) is not permitted here: {_one_line(probe.stderr)}"
    return None


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def environment_problem(name: str) -> str | None:
    """Why environment ``name`` cannot run the sandbox (None when it can)."""
    venv = ENVIRONMENTS[name]
    if not (venv / "bin" / "papermill").is_file():
        target = "venv" if name == "pinned" else f"venv-{name}"
        return f"{venv.name} has no papermill: run make {target}"
    return None


def make_mount_point() -> bool:
    """Create the empty /kaggle the namespace binds over (a mount needs an existing folder).

    Returns False, always: the mount point stays once made, and nobody should remove it. /kaggle is the mount point
    of every sandbox running on the machine (other test runs, the twin's kernels); removing it from outside detaches
    their mounts, and their kernels then write into the host's /kaggle (seen on 2026-12-05: a fixture's teardown
    ``os.rmdir("/kaggle")`` while another suite's train kernel ran left its fold-1 files in the host's /kaggle/working).
    """
    KAGGLE_ROOT.mkdir(exist_ok=True)
    return False


class SandboxProcess:
    """papermill running ``notebook`` inside the sandbox rooted at ``kaggle_dir`` (bound at /kaggle).

    Each line the session prints goes to ``on_output(stream_name, seconds since start, line)`` as it comes.
    """

    def __init__(self, kaggle_dir: Path, notebook: Path, executed: Path, *, papermill: Path, home: Path,
                 parameters: dict | None = None, internet: bool = True, pid_namespace: bool = False,
                 on_output: Callable[[str, float, str], None] | None = None):
        self.kaggle_dir, self.notebook, self.executed = Path(kaggle_dir), Path(notebook), Path(executed)
        self.papermill, self.home = Path(papermill), Path(home)
        self.parameters, self.internet, self.pid_namespace = parameters or {}, internet, pid_namespace
        self.on_output = on_output or (lambda stream, seconds, line: None)
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self._readers: list[threading.Thread] = []

    def environment(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.papermill.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "KAGGLE_KERNEL_RUN_TYPE": "Batch",
            "PYTHONDONTWRITEBYTECODE": "1",
            "SANDBOX_ROOT": str(self.kaggle_dir),
            "SANDBOX_PAPERMILL": str(self.papermill),
            "SANDBOX_NOTEBOOK": str(self.notebook),
            "SANDBOX_EXECUTED": str(self.executed),
            "SANDBOX_PARAMETERS": json.dumps(self.parameters),  # JSON is YAML: papermill -y takes it as it is
        }
        if not self.internet:
            env["SANDBOX_IP"] = ip_command() or "ip"
        return env

    def start(self) -> SandboxProcess:
        if os.geteuid() == 0:
            KAGGLE_ROOT.mkdir(exist_ok=True)  # the mount point: an empty folder (a user namespace cannot make it)
        command = [*unshare_command(internet=self.internet, pid_namespace=self.pid_namespace), "/bin/sh", "-c",
                   _SCRIPT]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env=self.environment(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            reader = threading.Thread(target=self._read, args=(name, pipe), daemon=True, name=f"sandbox-{name}")
            reader.start()
            self._readers.append(reader)
        return self

    def _read(self, name: str, pipe) -> None:
        for raw in iter(pipe.readline, b""):
            self.on_output(name, time.monotonic() - self.started, raw.decode("utf-8", "replace"))
        pipe.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None when ``timeout`` seconds passed first (the session is left running)."""
        assert self.process is not None, "start() first"
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """End the session: SIGKILL to its process group (with a PID namespace, that ends every process in it)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.wait(timeout=30)


@dataclasses.dataclass
class SandboxRun:
    returncode: int
    log: str  # papermill's stdout + stderr (the kernel's streams, with --log-output)
    executed: Path  # the executed notebook

    @functools.cached_property
    def notebook(self):
        import nbformat

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

    def check(self) -> SandboxRun:
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

    def run(self, notebook: Path, parameters: dict | None = None, *, timeout: int = 900,
            internet: bool = True) -> SandboxRun:
        """Execute ``notebook`` as Kaggle does; the executed copy stays outside /kaggle (Kaggle keeps it apart)."""
        self._runs += 1
        source = self.base / "runs" / f"{self._runs:02d}-{Path(notebook).name}"
        shutil.copy(notebook, source)
        executed = source.with_name(source.stem + ".executed.ipynb")
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        process = SandboxProcess(self.kaggle, source, executed, papermill=self.venv / "bin" / "papermill",
                                 home=self.base / "home", parameters=parameters, internet=internet,
                                 pid_namespace=not internet,
                                 on_output=lambda stream, seconds, line: streams[stream].append(line))
        code = process.start().wait(timeout=timeout)
        log = "".join(streams["stdout"]) + "".join(streams["stderr"])
        if code is None:
            process.kill()
            code, log = 124, f"timed out after {timeout} s\n{log}"
        (executed.with_suffix(".log")).write_text(log)
        return SandboxRun(returncode=code, log=log, executed=executed)
