"""Run a built notebook locally the way Kaggle does: through papermill, streaming its output live.

    python -m tools.run_notebook build/train/train.ipynb --out runs/x/train.ipynb --cwd runs/x -p epochs=3

papermill executes the notebook (Kaggle runs pushed notebooks with it too) and injects each ``-p name=value`` in a
cell tagged ``injected-parameters`` after the cell tagged ``parameters``. This module adds only what papermill lacks:
a name that the parameters cell does not assign is refused before anything runs (papermill merely warns), the
kernel runs with this interpreter, in ``--cwd``, with matplotlib's inline backend, its stdout/stderr are echoed live,
and a failure becomes one :class:`NotebookFailed` line naming the cell, the error and the executed notebook, which
papermill has written to ``--out`` (with its error banner). Local-only code.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

from core.atomic import write_text_atomic

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A cell raised (or timed out, or the kernel died); the executed notebook was still written to ``out``.

    ``cell_index`` counts from 0 in the executed notebook, as papermill does; the message counts from 1.
    """

    def __init__(self, *, cell_index: int, ename: str, evalue: str, traceback: str, out: Path, cell_source: str = "",
                 exec_count: int | None = None):
        self.cell_index, self.ename, self.evalue, self.traceback, self.out = cell_index, ename, evalue, traceback, out
        self.cell_source, self.exec_count = cell_source, exec_count
        first = next((line for line in cell_source.splitlines() if line.strip()), "")
        # In [k] is what the saved notebook shows (papermill adds banner cells, so positions shift there)
        label = f"In [{exec_count}]" if exec_count else f"{cell_index + 1}"
        super().__init__(f"cell {label} ({first[:60]!r}) failed: {ename}: {evalue} — executed notebook: {out}")


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
    ``stderr_path``: after Ctrl-C the kernel logs a traceback about the channels closed under it, which is noise."""

    stderr_path: Path | None = None

    async def start_kernel(self, **kw: Any) -> None:
        if self.stderr_path is not None:
            kw["stderr"] = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the kernel process until it exits
        return await super().start_kernel(**kw)


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


def _failure(exc: Exception, out: Path, kernel_log: Path | None = None) -> NotebookFailed:
    if isinstance(exc, PapermillExecutionError):
        return NotebookFailed(cell_index=exc.cell_index, ename=exc.ename, evalue=_ANSI.sub("", str(exc.evalue)),
                              traceback=_ANSI.sub("", "\n".join(exc.traceback)), out=out, cell_source=exc.source,
                              exec_count=exc.exec_count)
    # a timeout or a dead kernel leaves no error output: blame the last cell that started
    nb = nbformat.read(str(out), as_version=4) if out.is_file() else nbformat.v4.new_notebook()
    started = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    index = started[-1] if started else 0
    text = str(exc).strip()
    said = kernel_log.read_text(errors="replace").strip().splitlines()[-1:] if kernel_log and kernel_log.is_file() else []
    text = f"{text} (the kernel's last words: {said[0][:200]})" if said else text
    return NotebookFailed(cell_index=index, ename=type(exc).__name__, evalue=text.splitlines()[0] if text else "",
                          traceback=text, out=out, cell_source=nb.cells[index].source if nb.cells else "")


def run_notebook(notebook: Path, out: Path, *, cwd: Path, parameters: dict, timeout: int | None = None,
                 stream: bool = True) -> nbformat.NotebookNode:
    """Execute ``notebook`` with papermill in ``cwd`` with ``parameters``; write the result to ``out``, return it.

    Args:
        timeout: seconds allowed per cell (None: no limit).
        stream: echo the cells' stdout/stderr to ours while they run.

    Raises:
        ValueError: an unknown parameter, or ``cwd`` is a git checkout (the notebook would overwrite its core/).
        NotebookFailed: a cell failed; ``out`` still holds the executed notebook.
        NotebookInterrupted: Ctrl-C (a KeyboardInterrupt); ``out`` holds the notebook as far as it got.
    """
    notebook, cwd, out = Path(notebook).resolve(), Path(cwd).resolve(), Path(out).resolve()
    if (cwd / ".git").exists():
        raise ValueError(f"{cwd} is a git checkout: the notebook writes its library there; use a scratch folder")
    check_parameters(nbformat.read(str(notebook), as_version=4), parameters)
    cwd.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr = _Echo(sys.stdout, stream), _Echo(sys.stderr, stream)
    kernel_log = out.with_name(f".{out.name}.kernel.log")
    manager = type("KernelManager", (_KernelManager,), {"stderr_path": kernel_log})
    try:
        with kernel_environment():
            return papermill.execute_notebook(notebook, out, parameters=parameters, cwd=cwd, progress_bar=False,
                                              execution_timeout=timeout, stdout_file=stdout, stderr_file=stderr,
                                              kernel_manager_class=manager)
    except KeyboardInterrupt:  # Ctrl-C hits this process (the kernel has a session of its own): papermill has saved
        # the notebook as of its last autosave, then shut the kernel down; the trainer's checkpoints are atomic
        raise NotebookInterrupted(where=stdout.where or stderr.where, out=out) from None
    except PapermillExecutionError as exc:
        if exc.ename == "KeyboardInterrupt":
            raise NotebookInterrupted(where=stdout.where or stderr.where, out=out) from None
        raise _failure(exc, out) from None
    except (CellTimeoutError, DeadKernelError) as exc:
        raise _failure(exc, out, kernel_log) from None
    finally:  # its last line, when the kernel died, is in the failure's message
        kernel_log.unlink(missing_ok=True)


# What the `make` runners (run_local, run_sweep, run_ensemble) report as one line instead of a traceback.
RUNNER_ERRORS = (NotebookFailed, ValueError, FileNotFoundError)


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
    failure (:data:`RUNNER_ERRORS`, printed as one line, ``<target> failed: …``), :data:`INTERRUPTED` after Ctrl-C
    (one line, ``<target> interrupted …``)."""
    notebook, executed = Path(build) / kernel / f"{kernel}.ipynb", Path(out_dir) / f"{kernel}.ipynb"
    print(f"\n=== {kernel}: {notebook} → {executed}", flush=True)
    try:
        run_notebook(notebook, executed, cwd=out_dir, parameters=parameters, timeout=timeout)
    except RUNNER_ERRORS as err:
        print(f"\n{target} failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # NotebookInterrupted, or a second Ctrl-C while papermill cleaned up
        where = f" during {err.where}" if isinstance(err, NotebookInterrupted) and err.where else ""
        again = ("rerun the same command to resume (finished folds and epochs are kept)" if kernel == "train" else
                 "rerun the same command to resume (finished cells are kept in runs.csv)" if kernel == "sweep" else
                 "rerun the same command")
        print(f"\n{target} interrupted{where}; {again} — executed notebook so far: {executed}", file=sys.stderr)
        return INTERRUPTED
    print(f"{kernel}: {write_html(executed)} (open it in a browser)", flush=True)
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
    except (ValueError, FileNotFoundError) as exc:
        print(f"run_notebook: error: {exc}", file=sys.stderr)
        return 2
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
