"""Run a built notebook locally the way Kaggle does (papermill-style parameters), streaming its output live.

    python -m tools.run_notebook build/train/train.ipynb --out runs/x/train.ipynb --cwd runs/x -p epochs=3

Each ``-p name=value`` becomes ``name = value`` in a cell tagged ``injected-parameters`` placed right after the cell
tagged ``parameters``; a name that the parameters cell does not assign is refused, so a typo fails loudly. The kernel
runs with this interpreter, in ``--cwd`` (where the notebook writes its library and outputs), with matplotlib's inline
backend (figures are kept in the executed notebook, as on Kaggle).
The executed notebook is written to ``--out`` even when a cell fails. Local-only code (uses nbclient).
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A cell raised (or timed out, or the kernel died); the executed notebook was still written to ``out``.

    ``cell_index`` counts from 0, as nbclient does; the message counts from 1.
    """

    def __init__(self, *, cell_index: int, ename: str, evalue: str, traceback: str, out: Path, cell_source: str = ""):
        self.cell_index, self.ename, self.evalue, self.traceback, self.out = cell_index, ename, evalue, traceback, out
        self.cell_source = cell_source
        first = next((line for line in cell_source.splitlines() if line.strip()), "")
        super().__init__(f"cell {cell_index + 1} ({first[:60]!r}) failed: {ename}: {evalue}\n"
                         f"{last_lines(traceback)}\nexecuted notebook: {out}")


def last_lines(text: str, n: int = 12) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def parameter_names(cell_source: str) -> list[str]:
    """The names a parameters cell assigns (``x = 1``, ``x: int = 1``, ``x, y = 1, 2``)."""
    names = []
    for node in ast.walk(ast.parse(cell_source)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return sorted(set(names))


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with an ``injected-parameters`` cell right after the ``parameters`` cell (replaces an old one).

    Raises:
        ValueError: a name the parameters cell does not assign (the message lists those it does), or no such cell.
    """
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return nb
    index = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise ValueError("the notebook has no code cell tagged 'parameters', so it takes no parameters")
    known = parameter_names(nb.cells[index].source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; the parameters cell defines {known}")
    lines = ["# Parameters injected by tools.run_notebook"]
    for name, value in parameters.items():
        try:
            ast.literal_eval(repr(value))
        except (ValueError, SyntaxError):
            raise ValueError(f"parameter {name}={value!r}: use a literal (number, str, bool, list, dict)") from None
        lines.append(f"{name} = {value!r}")
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)
    return nb


class StreamingClient(NotebookClient):
    """A NotebookClient that echoes the kernel's stdout/stderr to ours as it arrives (tqdm bars, logs)."""

    current_cell = -1
    stream = True

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):  # noqa: ANN001 - nbclient's signature
        self.current_cell = cell_index
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def process_message(self, msg: dict, cell: nbformat.NotebookNode, cell_index: int):  # noqa: ANN201
        if self.stream and msg["msg_type"] == "stream":
            target = sys.stderr if msg["content"].get("name") == "stderr" else sys.stdout
            target.write(msg["content"].get("text", ""))
            target.flush()
        return super().process_message(msg, cell, cell_index)


def kernel_env() -> dict[str, str]:
    """This process's environment, with this interpreter first on PATH and the inline matplotlib backend."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # ipykernel's inline backend keeps figures
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _write(nb: nbformat.NotebookNode, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    os.replace(tmp, out)


def _failure(nb: nbformat.NotebookNode, index: int, exc: Exception, out: Path) -> NotebookFailed:
    errors = [(i, o) for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.output_type == "error"]
    if errors:
        index, error = errors[0]
        ename, evalue, tb = error.ename, error.evalue, "\n".join(error.traceback)
    else:  # a timeout or a dead kernel leaves no error output
        ename, evalue, tb = type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "", str(exc)
    source = nb.cells[index].source if 0 <= index < len(nb.cells) else ""
    return NotebookFailed(cell_index=index, ename=ename, evalue=_ANSI.sub("", evalue), traceback=_ANSI.sub("", tb),
                          out=out, cell_source=source)


def run_notebook(notebook: Path, out: Path, *, cwd: Path, parameters: dict, timeout: int | None = None,
                 stream: bool = True) -> nbformat.NotebookNode:
    """Execute ``notebook`` in ``cwd`` with ``parameters`` injected; write the result to ``out`` and return it.

    Args:
        timeout: seconds allowed per cell (None: no limit).
        stream: echo the cells' stdout/stderr to ours while they run.

    Raises:
        ValueError: an unknown parameter, or ``cwd`` is a git checkout (the notebook would overwrite its core/).
        NotebookFailed: a cell failed; ``out`` still holds the executed notebook.
    """
    cwd, out = Path(cwd).resolve(), Path(out)
    if (cwd / ".git").exists():
        raise ValueError(f"{cwd} is a git checkout: the notebook writes its library there; use a scratch folder")
    cwd.mkdir(parents=True, exist_ok=True)
    nb = inject_parameters(nbformat.read(str(notebook), as_version=4), parameters)
    client = StreamingClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.stream = stream
    try:
        client.execute(env=kernel_env())
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        _write(client.nb, out)
        raise _failure(client.nb, client.current_cell, exc, out) from None
    _write(client.nb, out)
    return client.nb


# What the `make` runners (run_local, run_sweep, run_ensemble) report as one line instead of a traceback.
RUNNER_ERRORS = (NotebookFailed, ValueError, FileNotFoundError)


def add_runner_arguments(parser: argparse.ArgumentParser, *, kernel: str, example: str) -> None:
    """The options of every `make` runner of a built notebook: --data, --build, -p NAME=VALUE, --timeout."""
    parser.add_argument("--data", default="data/digit-recognizer", help="the competition folder, in Kaggle's layout")
    parser.add_argument("--build", default="build", help="folder holding the built notebooks")
    parser.add_argument("-p", "--param", type=parse_parameter, action="append", default=[], metavar="NAME=VALUE",
                        help=f"a {kernel}-notebook parameter, e.g. -p {example} (repeatable)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")


def run_built(kernel: str, out_dir: Path, parameters: dict, *, build: str | Path, timeout: int | None,
              target: str) -> bool:
    """Execute ``build/<kernel>/<kernel>.ipynb`` in ``out_dir``, writing the executed copy there as
    ``<kernel>.ipynb``. A failure (:data:`RUNNER_ERRORS`) is printed as one line, ``<target> failed: …``, and
    returns False."""
    notebook, executed = Path(build) / kernel / f"{kernel}.ipynb", Path(out_dir) / f"{kernel}.ipynb"
    print(f"\n=== {kernel}: {notebook} → {executed}", flush=True)
    try:
        run_notebook(notebook, executed, cwd=out_dir, parameters=parameters, timeout=timeout)
    except RUNNER_ERRORS as err:
        print(f"\n{target} failed: {err}", file=sys.stderr)
        return False
    return True


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
    except NotebookFailed as exc:
        print(f"\nrun_notebook: {exc}", file=sys.stderr)
        return 1
    print(f"run_notebook: executed notebook written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
