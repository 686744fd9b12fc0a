"""The checks build.py runs on every notebook before it writes it.

nbformat schema, size below Kaggle's source limit, imports that exist on Kaggle, no ``__file__``, no
``pretrained=True`` in inference kernels, no Kaggle credentials (the machine's own, or text that looks like one).
Local-only code: it may use nbformat; it is never inlined into a notebook.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import sys
from typing import TypeGuard

import nbformat

from tools.kaggle_ids import MAX_SOURCE_BYTES, BuildError, kaggle_json_paths, read_json

KAGGLE_PACKAGES = frozenset({"torch", "torchvision", "timm", "numpy", "pandas", "sklearn", "matplotlib", "tqdm"})
SECRET_PATTERNS = (
    re.compile(r'"key"\s*:\s*"[0-9a-f]{32}"'),
    re.compile(r"KAGGLE_KEY\s*=\s*[\"'][^\"']+"),
    re.compile(r"KAGGLE_API_TOKEN\s*=\s*[\"'][^\"']+"),
)
Secrets = list[tuple[str, str]]  # (description, value); descriptions never contain the value


@dataclasses.dataclass
class Cell:
    """One notebook cell as build.py assembles it, with where its text came from (for error messages)."""

    kind: str  # "markdown" | "code"
    source: str  # what goes into the notebook
    where: str  # "kernels/train.py.j2 cell 3" or "core/data.py": where `body` line numbers point
    body: str  # the text that `where` numbers (a module's source without the %%writefile line)
    tags: list[str] = dataclasses.field(default_factory=list)
    python: bool = True  # code whose imports and calls are checked
    metadata: dict = dataclasses.field(default_factory=dict)  # extra cell metadata (merged with the tags)


def imported(tree: ast.AST, pkg_name: str, where: str) -> list[tuple[str, int, bool]]:
    """(absolute dotted name, line, may be an attribute) of every import in ``tree``, in functions and try blocks too.

    ``from . import a`` and ``from core import a`` give ``core`` and ``core.a``; the latter may name an attribute.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                raise BuildError(f"{where} line {node.lineno}: '{'.' * node.level}' import; the package is flat")
            if node.level == 0:
                assert node.module is not None  # only a relative import may name no module
                base = node.module
            else:
                base = ".".join(filter(None, [pkg_name, node.module]))
            found.append((base, node.lineno, False))
            if base == pkg_name:
                found += [(f"{pkg_name}.{alias.name}", node.lineno, True) for alias in node.names]
    return found


def python_text(body: str) -> str:
    """The cell with IPython magics and shell lines replaced by `pass`, so that line numbers stay put."""
    lines = body.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        lines[0] = ""
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in lines)


def check_cell(cell: Cell, *, kernel: str, package_name: str, secrets: Secrets) -> None:
    """Refuse credentials in any cell; in Python cells, syntax errors, imports missing on Kaggle, ``__file__``, and
    ``pretrained=True`` in an inference kernel (which runs offline)."""
    scan_credentials(cell.body, cell.where, secrets)
    if cell.kind != "code" or not cell.python:
        return
    try:
        tree = ast.parse(python_text(cell.body))
    except SyntaxError as exc:
        raise BuildError(f"{cell.where} line {exc.lineno}: syntax error: {exc.msg}") from exc
    for dotted, line, _ in imported(tree, package_name, cell.where):
        top = dotted.split(".")[0]
        if top not in sys.stdlib_module_names and top not in KAGGLE_PACKAGES and top != package_name:
            raise BuildError(f"{cell.where} line {line} imports {top!r}, which is not available on Kaggle: use the "
                             f"standard library or one of {sorted(KAGGLE_PACKAGES)} (local-only code stays out of "
                             f"{package_name}/ and the templates)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__file__":
            raise BuildError(f"{cell.where} line {node.lineno} uses __file__, which notebooks do not define; "
                             "pass paths in explicitly")
        if kernel.startswith("infer") and is_pretrained_true(node):
            raise BuildError(f"{cell.where} line {node.lineno} sets pretrained=True in the {kernel!r} kernel, which "
                             "runs without internet: build the model with pretrained=False and load_state_dict")


def is_pretrained_true(node: ast.AST) -> TypeGuard[ast.Call | ast.Assign | ast.AnnAssign]:
    """``f(..., pretrained=True)``, ``pretrained = True``, ``cfg.pretrained = True`` or ``pretrained: bool = True``."""
    def true(value: ast.AST | None) -> bool:
        return isinstance(value, ast.Constant) and value.value is True

    if isinstance(node, ast.Call):
        return any(kw.arg == "pretrained" and true(kw.value) for kw in node.keywords)
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return true(getattr(node, "value", None)) and any(
        getattr(t, "id", None) == "pretrained" or getattr(t, "attr", None) == "pretrained" for t in targets)


def known_secrets() -> Secrets:
    """The Kaggle credentials on this machine ($KAGGLE_KEY, $KAGGLE_API_TOKEN, every kaggle.json's key)."""
    secrets = [(f"the value of ${name}", os.environ[name]) for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")
               if len(os.environ.get(name, "")) >= 8]
    for path in kaggle_json_paths():
        key = str(read_json(path).get("key", ""))
        if len(key) >= 8:
            secrets.append((f"the key in {path}", key))
    return secrets


def scan_credentials(text: str, where: str, secrets: Secrets) -> None:
    """Refuse a line of ``text`` holding a known secret or text shaped like a Kaggle key or token."""
    for number, line in enumerate(text.splitlines(), start=1):
        hits = [what for what, value in secrets if value in line]
        hits += [f"text matching {p.pattern!r}" for p in SECRET_PATTERNS if p.search(line)]
        if hits:
            raise BuildError(f"{where} line {number} contains a Kaggle credential ({hits[0]}): remove it; credentials "
                             "never go into a notebook (on Kaggle use Add-ons > Secrets)")


def check_notebook(nb: nbformat.NotebookNode, cells: list[Cell], secrets: Secrets) -> None:
    """Refuse a notebook that fails nbformat's schema, reaches Kaggle's source limit, or has credentials in its
    metadata; a too-large one is told its three largest cells."""
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise BuildError(f"the notebook does not validate against the nbformat schema: {exc.message}") from exc
    size = len(nbformat.writes(nb).encode("utf-8"))
    if size >= MAX_SOURCE_BYTES:
        largest = sorted(cells, key=lambda c: -len(c.source.encode("utf-8")))[:3]
        raise BuildError(f"the notebook is {size:,} bytes; Kaggle refuses sources of {MAX_SOURCE_BYTES / 1e6:g} MB "
                         "or more. Largest cells: "
                         + ", ".join(f"{c.where} ({len(c.source.encode('utf-8')):,} bytes)" for c in largest))
    scan_credentials(json.dumps(nb.metadata), "notebook metadata", secrets)
