"""Run a built notebook locally the way Kaggle does: through papermill, streaming its output live.

    python -m tools.run_notebook build/train/train.ipynb --out runs/x/train.ipynb --cwd runs/x -p epochs=3

papermill executes the notebook (Kaggle runs pushed notebooks with it too) and injects each ``-p name=value`` in a
cell tagged ``injected-parameters`` after the cell tagged ``parameters``. This module adds only what papermill lacks:
a name that the parameters cell does not assign is refused before anything runs (papermill merely warns), the
kernel runs with this interpreter, in ``--cwd``, with matplotlib's inline backend, its stdout/stderr are echoed live,
and a failure becomes one :class:`NotebookFailed` line naming the cell, the error and the executed notebook, which
papermill has written to ``--out`` (with its error banner): a full disk or a read-only folder is said as
:func:`tools.os_errors.describe_os_error` says it, a kernel killed by a signal names the signal. Ctrl-C leaves no task
of the running cell behind (papermill would leave them pending, to die noisily later). Local-only code.
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import builtins
import contextlib
import logging
import os
import re
import signal
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_event_loop
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.log import logger as papermill_logger
from papermill.utils import merge_kwargs, remove_args

from core.atomic import write_text_atomic
from tools.os_errors import DISK_FULL, READ_ONLY, describe_os_error

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A cell raised (or timed out, or the kernel died); the executed notebook was still written to ``out``.

    ``cell_index`` counts from 0 in the executed notebook, as papermill does; the message counts from 1. ``reason``,
    when given, is what the message says instead of ``ename: evalue`` (a full disk, a killed kernel).
    """

    def __init__(self, *, cell_index: int, ename: str, evalue: str, traceback: str, out: Path, cell_source: str = "",
                 exec_count: int | None = None, reason: str = ""):
        self.cell_index, self.ename, self.evalue, self.traceback, self.out = cell_index, ename, evalue, traceback, out
        self.cell_source, self.exec_count, self.reason = cell_source, exec_count, reason
        first = next((line for line in cell_source.splitlines() if line.strip()), "")
        # In [k] is what the saved notebook shows (papermill adds banner cells, so positions shift there)
        label = f"In [{exec_count}]" if exec_count else f"{cell_index + 1}"
        super().__init__(f"cell {label} ({first[:60]!r}) failed: {reason or f'{ename}: {evalue}'} — executed "
                         f"notebook: {out}")


class NotebookInterrupted(KeyboardInterrupt):
    """Ctrl-C while the notebook ran; ``where`` is the last training position it printed ("fold 0 epoch 8/40")."""

    def __init__(self, *, where: str, out: Path):
        self.where, self.out = where, out
        super().__init__(f"interrupted{' during ' + where if where else ''} — executed notebook so far: {out}")


class _Echo:
    """stdout/stderr for papermill's stream copies: echoes (when asked) and remembers the last training position."""

    _POSITION = re.compile(r"\b(fold \d+ epoch \d+/\d+|cell \d+/\d+)")

    def __init__(self, target, echo: bool):
        self.target, self.echo, self.where = target, echo, ""

    def write(self, text: str) -> int:
        found = self._POSITION.findall(text)
        self.where = found[-1] if found else self.where
        return self.target.write(text) if self.echo else len(text)

    def flush(self) -> None:
        if self.echo:
            self.target.flush()


class _KernelManager(AsyncKernelManager):
    """The kernel's own stderr (ipykernel's log, not the notebook's streams, which arrive as messages) goes to
    ``stderr_path``: after Ctrl-C the kernel logs a traceback about the channels closed under it, which is noise.

    A run makes a subclass of its own, whose ``exit_status`` is the kernel process's return code when it died on its
    own (nbclient found it dead and cleans up without a shutdown): negative is the signal that killed it (-9: SIGKILL,
    the out-of-memory killer's). It stays None after an ordinary shutdown."""

    stderr_path: Path | None = None
    exit_status: int | None = None

    # jupyter_client types the async manager's methods as its sync base's (and ignores that itself)
    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        if self.stderr_path is not None:
            kw["stderr"] = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the kernel process until it exits
        return await super().start_kernel(**kw)

    async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        # nbclient calls this last; after a shutdown the provisioner has already reaped (and forgotten) the process
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is not None:
            type(self).exit_status = process.returncode
        await super().cleanup_resources(restart=restart)


class _Client(PapermillNotebookClient):
    """papermill's notebook client, except that Ctrl-C leaves no task of the running cell behind.

    nbclient runs a cell as a task (``async_execute_cell``) with three helpers (the reply, the output, and a poll that
    the kernel is alive every second) on the event loop; a KeyboardInterrupt leaves ``run_until_complete`` with all
    four pending. The kernel's shutdown then runs that loop again: the poll finds the kernel gone and the cell's task
    ends in ``DeadKernelError`` that nobody awaits, which asyncio prints ("Task exception was never retrieved") after
    our one-line message. Here those tasks are cancelled and awaited before the interrupt goes on.
    """

    def execute_cell(self, cell: Any, cell_index: int, execution_count: int | None = None,
                     store_history: bool = True) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # inside a running loop (a notebook), nbclient runs the cell on a thread of its own: leave it so
            return super().execute_cell(cell, cell_index, execution_count, store_history)
        loop = ensure_event_loop()  # the loop nbclient's run_sync uses, so the cleanup after us runs on it too
        created: weakref.WeakSet[asyncio.Future] = weakref.WeakSet()  # a finished task nobody holds may go
        previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Future:
            task = previous(loop, coro, **kw) if previous else asyncio.Task(coro, loop=loop, **kw)
            created.add(task)
            return task

        try:
            loop.set_task_factory(factory)
            try:
                return loop.run_until_complete(self.async_execute_cell(cell, cell_index, execution_count,
                                                                       store_history))
            finally:
                loop.set_task_factory(previous)
        except KeyboardInterrupt:
            _settle(loop, list(created))
            raise


def _settle(loop: asyncio.AbstractEventLoop, tasks: list[asyncio.Future], timeout: float = 10) -> None:
    """Cancel what is left of ``tasks``, wait for them, and take their outcomes, so none is reported as lost."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # marks it retrieved (a cancelled cell's task ends in DeadKernelError: expected here)


class _Engine(NBClientEngine):
    """papermill's nbclient engine, running :class:`_Client` (its ``execute_managed_notebook``, else unchanged)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False, stdout_file: Any = None,
                                 stderr_file: Any = None, start_timeout: int = 60, execution_timeout: int | None = None,
                                 **kwargs: Any) -> Any:
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                                    startup_timeout=start_timeout, kernel_name=kernel_name, log=papermill_logger,
                                    log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        return _Client(nb_man, **final_kwargs).execute()


ENGINE = "digitkit"
papermill_engines.register(ENGINE, _Engine)


class _Restated(logging.Filter):
    """Drops what nbclient logs (through papermill's logger, printed bare) that our one line says again."""

    SAID = ("Kernel died while waiting for execute reply", "Timeout waiting for execute reply")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.SAID)


def parameter_names(cell_source: str) -> list[str]:
    """The names a parameters cell assigns (``x = 1``, ``x: int = 1``, ``x, y = 1, 2``).

    Read with ``ast``: papermill's own inspection skips every line holding more than one ``=`` (a comment such as
    ``# 0 = off``, a value such as ``"epochs=3"``), so it cannot tell a typo from a real parameter.
    """
    names = []
    for node in ast.walk(ast.parse(cell_source)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return sorted(set(names))


def check_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> None:
    """Refuse what papermill would inject but the notebook does not take.

    Raises:
        ValueError: a name the parameters cell does not assign (the message lists those it does), no such cell,
            or a value that is not a Python literal.
    """
    if not parameters:
        return
    cell = next((c for c in nb.cells
                 if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError("the notebook has no code cell tagged 'parameters', so it takes no parameters")
    known = parameter_names(cell.source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; the parameters cell defines {known}")
    for name, value in parameters.items():
        try:
            ast.literal_eval(repr(value))
        except (ValueError, SyntaxError):
            raise ValueError(f"parameter {name}={value!r}: use a literal (number, str, bool, list, dict)") from None


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """While the kernel starts: this interpreter first on PATH (the ``python3`` kernelspec runs ``python``) and no
    MPLBACKEND (ipykernel's inline backend keeps figures in the notebook, as on Kaggle). The kernel inherits
    ``os.environ``; papermill has no argument for its environment."""
    saved = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), saved.get("PATH", "")])
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


_OS_ERROR = re.compile(r"\[Errno (\d+)\] ([^:]*)(?:: (.*))?$")
_NOISE = ("Kernel is running over TCP without encryption",)  # ipykernel's start-up warning: never the cause
_SMALLER = {"batch_size": "batch_size=64", "eval_batch_size": "eval_batch_size=256"}  # the memory knobs, and a try


def _raised_os_error(ename: str, evalue: str) -> OSError | None:
    """The OSError a cell raised, rebuilt from its name and text ("[Errno 28] No space left on device: 'x.pth'")."""
    kind, match = getattr(builtins, ename, None), _OS_ERROR.match(evalue)
    if not (isinstance(kind, type) and issubclass(kind, OSError) and match):
        return None
    filename = None
    if match[3]:  # 'x.pth', or 'a' -> 'b' for a rename
        try:
            filename = ast.literal_eval(match[3])
        except (ValueError, SyntaxError):
            filename = match[3].split(" -> ")[0].strip("'\"")
    return OSError(int(match[1]), match[2], filename)


def _kernel_death(status: int | None, knobs: list[str]) -> str:
    """What a dead kernel's return code says: the signal that killed it and, for SIGKILL, the memory to save."""
    if status is None or status == 0:
        return ""
    if status > 0:
        return f"the notebook's kernel exited with status {status}"
    try:
        name = f"{signal.Signals(-status).name} ({signal.strsignal(-status)})"
    except ValueError:
        name = f"signal {-status}"
    if -status != signal.SIGKILL:
        return f"the notebook's kernel was killed by {name}"
    smaller = [knob for knob in _SMALLER if knob in knobs]
    fix = (f"try a smaller {' or '.join(smaller)} (PARAMS=\"{' '.join(_SMALLER[k] for k in smaller)}\")" if smaller
           else "free memory (close other programs) or use a machine with more")
    return f"the notebook's kernel was killed by SIGKILL — usually the out-of-memory killer: {fix}"


def _failure(exc: Exception, out: Path, *, cwd: Path, kernel_log: Path | None = None, exit_status: int | None = None,
             knobs: list[str] | None = None) -> NotebookFailed:
    """``exc`` as one :class:`NotebookFailed`. ``cwd`` is the notebook's working folder (a relative file name in an
    OSError is under it), ``exit_status`` the dead kernel's return code, ``knobs`` the notebook's parameters."""
    if isinstance(exc, PapermillExecutionError):
        evalue = _ANSI.sub("", str(exc.evalue))
        raised = _raised_os_error(exc.ename, evalue)
        reason = (f"{exc.ename}: {describe_os_error(raised, doing='running the cell', folder=cwd)}"
                  if raised is not None and raised.errno in DISK_FULL | READ_ONLY else "")
        return NotebookFailed(cell_index=exc.cell_index, ename=exc.ename, evalue=evalue, out=out, reason=reason,
                              traceback=_ANSI.sub("", "\n".join(exc.traceback)), cell_source=exc.source,
                              exec_count=exc.exec_count)
    # a timeout or a dead kernel leaves no error output: blame the last cell that started
    nb = nbformat.read(str(out), as_version=4) if out.is_file() else nbformat.v4.new_notebook()
    started = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    index = started[-1] if started else 0
    said = "" if (exit_status or 0) < 0 else _last_words(kernel_log)  # a signal's victim said nothing last
    said = f" (the kernel's last words: {said})" if said else ""
    text, death = str(exc).strip() + said, _kernel_death(exit_status, knobs or [])
    return NotebookFailed(cell_index=index, ename=type(exc).__name__, evalue=text.splitlines()[0] if text else "",
                          traceback=text, out=out, cell_source=nb.cells[index].source if nb.cells else "",
                          reason=f"{type(exc).__name__}: {death}{said}" if death else "")


def _last_words(kernel_log: Path | None) -> str:
    """The last line the kernel logged that may say why it died (not ipykernel's start-up warning)."""
    log = kernel_log.read_text(errors="replace") if kernel_log and kernel_log.is_file() else ""
    said = [line for line in log.splitlines() if line.strip() and not any(noise in line for noise in _NOISE)]
    return said[-1].strip()[:200] if said else ""


def run_notebook(notebook: Path, out: Path, *, cwd: Path, parameters: dict, timeout: int | None = None,
                 stream: bool = True) -> nbformat.NotebookNode:
    """Execute ``notebook`` with papermill in ``cwd`` with ``parameters``; write the result to ``out``, return it.

    Args:
        timeout: seconds allowed per cell (None: no limit).
        stream: echo the cells' stdout/stderr to ours while they run.

    Raises:
        ValueError: an unknown parameter, or ``cwd`` is a git checkout (the notebook would overwrite its core/).
        NotebookFailed: a cell failed (a full disk or a read-only folder inside the kernel is said as
            :func:`describe_os_error` says it), or the kernel died (by which signal); ``out`` still holds the executed
            notebook.
        NotebookInterrupted: Ctrl-C (a KeyboardInterrupt); ``out`` holds the notebook as far as it got.
        OSError: here, not in the kernel: ``cwd`` or ``out`` could not be made or written (read-only, full disk), or
            ``notebook`` could not be read; the runners print :func:`describe_os_error`'s line for it.
    """
    notebook, cwd, out = Path(notebook).resolve(), Path(cwd).resolve(), Path(out).resolve()
    if (cwd / ".git").exists():
        raise ValueError(f"{cwd} is a git checkout: the notebook writes its library there; use a scratch folder")
    source = nbformat.read(str(notebook), as_version=4)
    check_parameters(source, parameters)
    knobs = next((parameter_names(c.source) for c in source.cells
                  if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), [])
    cwd.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr = _Echo(sys.stdout, stream), _Echo(sys.stderr, stream)
    kernel_log = out.with_name(f".{out.name}.kernel.log")
    class KernelManager(_KernelManager):  # a class of its own: its exit_status is this run's
        stderr_path = kernel_log

    manager = KernelManager
    restated = _Restated()
    papermill_logger.addFilter(restated)
    try:
        with kernel_environment():
            return papermill.execute_notebook(notebook, out, parameters=parameters, cwd=cwd, progress_bar=False,
                                              execution_timeout=timeout, stdout_file=stdout, stderr_file=stderr,
                                              kernel_manager_class=manager, engine_name=ENGINE)
    except KeyboardInterrupt:  # Ctrl-C hits this process (the kernel has a session of its own): papermill has saved
        # the notebook as of its last autosave, then shut the kernel down; the trainer's checkpoints are atomic
        raise NotebookInterrupted(where=stdout.where or stderr.where, out=out) from None
    except PapermillExecutionError as exc:
        if exc.ename == "KeyboardInterrupt":
            raise NotebookInterrupted(where=stdout.where or stderr.where, out=out) from None
        raise _failure(exc, out, cwd=cwd) from None
    except (CellTimeoutError, DeadKernelError) as exc:
        raise _failure(exc, out, cwd=cwd, kernel_log=kernel_log, exit_status=manager.exit_status,
                       knobs=knobs) from None
    finally:  # its last line, when the kernel died, is in the failure's message
        papermill_logger.removeFilter(restated)
        with contextlib.suppress(OSError):  # in a read-only folder it was never made
            kernel_log.unlink(missing_ok=True)


# What the `make` runners (run_local, run_sweep, run_ensemble) report as one line instead of a traceback (an
# OSError as describe_os_error says it).
RUNNER_ERRORS = (NotebookFailed, ValueError, OSError)


def add_runner_arguments(parser: argparse.ArgumentParser, *, kernel: str, example: str) -> None:
    """The options of every `make` runner of a built notebook: --data, --build, -p NAME=VALUE, --timeout."""
    parser.add_argument("--data", default="data/digit-recognizer", help="the competition folder, in Kaggle's layout")
    parser.add_argument("--build", default="build", help="folder holding the built notebooks")
    parser.add_argument("-p", "--param", type=parse_parameter, action="append", default=[], metavar="NAME=VALUE",
                        help=f"a {kernel}-notebook parameter, e.g. -p {example} (repeatable)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")


INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)


def write_html(executed: Path) -> Path:
    """The executed notebook as one HTML page beside it (``<kernel>.html``, figures embedded) to read in a browser:
    the recipe's cells and outputs; the collapsed library cells are left out (the notebook keeps them)."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [cell for cell in nb.cells if not cell.metadata.get("_kg_hide-input")]
    body, _ = HTMLExporter().from_notebook_node(nb)
    path = Path(executed).with_suffix(".html")
    write_text_atomic(path, body)
    return path


def run_built(kernel: str, out_dir: Path, parameters: dict, *, build: str | Path, timeout: int | None,
              target: str) -> int:
    """Execute ``build/<kernel>/<kernel>.ipynb`` in ``out_dir``, writing the executed copy there as
    ``<kernel>.ipynb`` and its HTML page as ``<kernel>.html``; return the exit status for the runner: 0, 1 after a
    failure (:data:`RUNNER_ERRORS`, printed as one line, ``<target> failed: …``; a read-only run folder or a full
    disk as :func:`describe_os_error` says it), :data:`INTERRUPTED` after Ctrl-C (one line, ``<target> interrupted
    …``)."""
    notebook, executed = Path(build) / kernel / f"{kernel}.ipynb", Path(out_dir) / f"{kernel}.ipynb"
    print(f"\n=== {kernel}: {notebook} → {executed}", flush=True)
    doing = f"running {notebook.name} in {out_dir}"
    try:
        run_notebook(notebook, executed, cwd=out_dir, parameters=parameters, timeout=timeout)
        doing = f"writing the HTML page of {executed}"
        page = write_html(executed)
    except RUNNER_ERRORS as err:
        fix = "run make build first" if not notebook.is_file() else None
        said = describe_os_error(err, doing=doing, folder=out_dir, fix=fix) if isinstance(err, OSError) else err
        print(f"\n{target} failed: {said}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # NotebookInterrupted, or a second Ctrl-C while papermill cleaned up
        where = f" during {err.where}" if isinstance(err, NotebookInterrupted) and err.where else ""
        again = ("rerun the same command to resume (finished folds and epochs are kept)" if kernel == "train" else
                 "rerun the same command to resume (finished cells are kept in runs.csv)" if kernel == "sweep" else
                 "rerun the same command")
        print(f"\n{target} interrupted{where}; {again} — executed notebook so far: {executed}", file=sys.stderr)
        return INTERRUPTED
    print(f"{kernel}: {page} (open it in a browser)", flush=True)
    return 0


def parse_parameter(text: str) -> tuple[str, Any]:
    """``name=value`` with value read by ``ast.literal_eval``, else kept as the raw string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: write -p name=value")
    try:
        return name.strip(), ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name.strip(), raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.run_notebook", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="where to write the executed notebook")
    parser.add_argument("--cwd", type=Path, required=True, help="the kernel's working folder")
    parser.add_argument("-p", "--parameter", type=parse_parameter, action="append", default=[],
                        metavar="NAME=VALUE", help="override a variable of the parameters cell (repeatable)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: no limit)")
    args = parser.parse_args(argv)
    try:
        run_notebook(args.notebook, args.out, cwd=args.cwd, parameters=dict(args.parameter), timeout=args.timeout)
    except ValueError as exc:
        print(f"run_notebook: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing notebook is a usage error; a read-only or full run folder, a failure
        said = describe_os_error(exc, doing=f"running {args.notebook} in {args.cwd}", folder=args.cwd)
        print(f"run_notebook: error: {said}", file=sys.stderr)
        return 2 if isinstance(exc, FileNotFoundError) else 1
    except NotebookFailed as exc:
        print(f"\nrun_notebook: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"\nrun_notebook: {exc if isinstance(exc, NotebookInterrupted) else 'interrupted'}", file=sys.stderr)
        return INTERRUPTED
    print(f"run_notebook: executed notebook written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
