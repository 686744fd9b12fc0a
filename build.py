"""Build self-contained Kaggle notebooks from ``kernels/<kernel>.py.j2`` templates and the ``core/`` package.

    python build.py [train|infer|ensemble|sweep|all] [--out build] [--owner NAME]

A template is a jinja2 "percent" script: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell
("# " is stripped from its lines), ``# %% tags=["parameters"]`` a tagged code cell, and ``# %% [core]`` expands into
the library: a ``%%writefile core/<module>.py`` cell per module (readable source, real imports and tracebacks),
then a cell that imports it. Every notebook is checked before it is written (tools/notebook_checks.py: nbformat
schema, size < 1 MB, imports that exist on Kaggle, no ``__file__``, no ``pretrained=True`` in inference kernels, no
Kaggle credentials); its kernel-metadata.json is rendered by tools/kaggle_ids.py, which tools/ship.py shares.
Local-only code: this file may use nbformat and jinja2; the notebooks it writes may not.
"""
from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import datetime
import graphlib
import json
import logging
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import nbformat

from core.atomic import write_text_atomic
from tools.kaggle_ids import (  # noqa: F401 - PLACEHOLDER_OWNER, slugify: build's names for tests and tools
    KERNELS, PLACEHOLDER_OWNER, BuildError, render_metadata, resolve_owner, slugify, weights_dataset)
from tools.notebook_checks import Cell, check_cell, check_notebook, imported, known_secrets, python_text

log = logging.getLogger("build")

TITLES = {kernel: f"digitkit {kernel}" for kernel in KERNELS}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_MAGICS_WITH_PYTHON_BODY = ("time", "timeit", "capture")
# The library's cells only write files (the last one imports the package), so their order is free: by concept, the
# way one reads the library. Modules not listed go last, by name; tests/test_build.py fails when core/ has one.
CONCEPT_ORDER = (
    "__init__",
    "config", "families", "presets", "recipe",  # the recipe
    "paths", "data", "folds", "pseudo", "groups",  # the inputs
    # one fold
    "targets", "augment", "models", "scheduler", "trainer", "noise_scale", "swa", "checkpoint", "fold_result", "resume",
    "pipeline", "device", "launch", "distributed",  # running the folds
    "oof", "stats", "choice",  # judging them
    "predict", "tta", "inference", "ensemble", "submission", "manifest", "run_state",  # predicting, shipping
    "sweep", "lr_scaling", "critical_batch", "sweep_report",  # experiments
    "plots", "progress", "atomic",  # helpers
)
# Kaggle's and Jupyter's keys for a collapsed cell: the library's source is there to expand, not in the way.
HIDDEN_CELL = {"_kg_hide-input": True, "_kg_hide-output": True,
               "jupyter": {"source_hidden": True, "outputs_hidden": True}}
_MARKER = re.compile(r"^# %%(?:\s+\[(?P<kind>markdown|core)\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


@dataclasses.dataclass(frozen=True)
class Module:
    name: str  # "data"; the package's own module is "__init__"
    relpath: str  # "core/data.py"
    source: str
    deps: tuple[str, ...]  # names of the package modules it imports


# ----------------------------------------------------------------------------------------------- the package
def collect_modules(pkg_dir: Path, pkg_name: str) -> list[Module]:
    """The package's modules, each after the modules it imports (``__init__`` first, ties by name)."""
    pkg_dir = Path(pkg_dir)
    if not (pkg_dir / "__init__.py").is_file():
        raise BuildError(f"{pkg_dir}/__init__.py is missing: the package needs one")
    nested = sorted(p.parent.name for p in pkg_dir.glob("*/*.py") if p.parent.name != "__pycache__")
    if nested:
        raise BuildError(f"{pkg_dir}: sub-packages {nested} are not supported; keep {pkg_name}/ flat")
    sources = {p.stem: p.read_text(encoding="utf-8") for p in sorted(pkg_dir.glob("*.py"))}
    modules = {}
    for name, source in sources.items():
        relpath = f"{pkg_name}/{name}.py"
        try:
            tree = ast.parse(source, filename=relpath)
        except SyntaxError as exc:
            raise BuildError(f"{relpath} line {exc.lineno}: syntax error: {exc.msg}") from exc
        deps = set()
        for dotted, line, maybe_attribute in imported(tree, pkg_name, relpath):
            parts = dotted.split(".")
            if parts[0] != pkg_name:
                continue
            if len(parts) == 1 or (len(parts) == 2 and parts[1] in sources):
                deps.add(parts[1] if len(parts) == 2 else "__init__")
            elif not maybe_attribute:
                raise BuildError(f"{relpath} line {line} imports '{dotted}', which is not a module of {pkg_dir}")
        deps.discard(name)
        modules[name] = Module(name, relpath, source, tuple(sorted(deps)))
    return [modules[name] for name in _order({name: m.deps for name, m in modules.items()})]


def _order(graph: dict[str, tuple[str, ...]]) -> list[str]:
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise BuildError(f"modules import each other in a cycle: {' -> '.join(exc.args[1])}; "
                         "move the shared code into a module both can import") from exc
    order: list[str] = []
    ready: list[str] = []
    while sorter.is_active():
        ready = sorted([*ready, *sorter.get_ready()])
        order.append(ready.pop(0))
        sorter.done(order[-1])
    return ["__init__"] + [name for name in order if name != "__init__"]  # Python runs __init__ first


# ---------------------------------------------------------------------------------------------- the template
def _parse_cells(text: str, source_name: str) -> list[tuple[str, list[str], str, int]]:
    """Split a rendered percent script into (kind, tags, body, marker line) with kind code|markdown|core."""
    cells, lines = [], text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    if any(line.strip() for line in lines[:starts[0] if starts else len(lines)]):
        raise BuildError(f"{source_name}: text before the first '# %%' cell marker; start the template with one")
    for n, start in enumerate(starts):
        match = _MARKER.match(lines[start])
        if not match:
            raise BuildError(f"{source_name} line {start + 1}: unknown cell marker {lines[start]!r}; use '# %%', "
                             "'# %% [markdown]', '# %% [core]' or '# %% tags=[\"parameters\"]'")
        try:
            tags = json.loads(match["tags"]) if match["tags"] else []
            assert isinstance(tags, list) and all(isinstance(t, str) for t in tags)
        except (ValueError, AssertionError):
            raise BuildError(f"{source_name} line {start + 1}: tags must be a JSON list of strings") from None
        body = "\n".join(lines[start + 1:starts[n + 1] if n + 1 < len(starts) else len(lines)]).strip("\n")
        cells.append((match["kind"] or "code", tags, body, start + 1))
    return cells


def needed_modules(modules: list[Module], roots: set[str]) -> list[Module]:
    """``modules`` (in their order) that ``roots`` import, directly or through each other; ``__init__`` always."""
    by_name = {module.name: module for module in modules}
    needed: set[str] = set()
    stack = ["__init__", *(root for root in roots if root in by_name)]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack += by_name[name].deps
    return [module for module in modules if module.name in needed]


def _template_imports(cells: list[tuple[str, list[str], str, int]], package_name: str, source_name: str) -> set[str]:
    """Names of the package's modules that the template's code cells import (``__init__`` for ``import pkg``)."""
    roots = set()
    for n, (kind, _, body, _) in enumerate(cells, start=1):
        if kind != "code":
            continue
        try:
            tree = ast.parse(python_text(body))
        except SyntaxError:  # reported with its line by tools.notebook_checks.check_cell
            continue
        for dotted, _, _ in imported(tree, package_name, f"{source_name} cell {n}"):
            parts = dotted.split(".")
            if parts[0] == package_name:
                roots.add(parts[1] if len(parts) > 1 else "__init__")
    return roots


def by_concept(modules: list[Module]) -> list[Module]:
    """``modules`` in ``CONCEPT_ORDER``, the ones it does not name last, by name."""
    rank = {name: i for i, name in enumerate(CONCEPT_ORDER)}
    return sorted(modules, key=lambda m: (rank.get(m.name, len(rank)), m.name))


def _core_cells(package_dir: Path, package_name: str, commit: str, roots: set[str]) -> list[Cell]:
    """One visible markdown line, then hidden cells: makedirs, a ``%%writefile`` per module (by concept), import."""
    modules = by_concept(needed_modules(collect_modules(package_dir, package_name), roots))
    names = ", ".join(m.name for m in modules if m.name != "__init__")
    intro = (f"**Library** — `{package_name}/` ({names}, and `__init__`; digitkit commit {commit}) is written "
             "by the hidden cells below and imported; expand them to read the source.")
    makedirs = f'import os\nos.makedirs("{package_name}", exist_ok=True)'
    cells = [Cell("markdown", intro, "[core] expansion", intro),
             Cell("code", makedirs, "[core] expansion", makedirs, metadata=HIDDEN_CELL)]
    for module in modules:  # %%writefile refuses an empty body
        body = module.source if module.source.strip() else "# (an empty module)\n"
        cells.append(Cell("code", f"%%writefile {module.relpath}\n{body}", module.relpath, module.source,
                          metadata=HIDDEN_CELL))
    reimport = (f"import importlib, sys\nimportlib.invalidate_caches()\nfor _name in [m for m in sys.modules if m == "
                f"\"{package_name}\" or m.startswith(\"{package_name}.\")]:\n    del sys.modules[_name]\n"
                f"import {package_name}")
    return [*cells, Cell("code", reimport, "[core] expansion", reimport, metadata=HIDDEN_CELL)]


def build_notebook_from_template(template_text: str, *, package_dir: Path, package_name: str, kernel: str,
                                 context: dict, source_name: str = "<template>") -> nbformat.NotebookNode:
    """Render the template with ``context``, expand ``# %% [core]``, check everything and return the notebook."""
    try:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
        text = env.from_string(template_text).render(**context)
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)  # a syntax error has one
        raise BuildError(f"{source_name}{f' line {lineno}' if lineno else ''}: jinja2: {exc}") from exc
    commit = str(context.get("commit", "unknown"))
    cells: list[Cell] = []
    parsed = _parse_cells(text, source_name)
    roots = _template_imports(parsed, package_name, source_name)
    for n, (kind, tags, body, line) in enumerate(parsed, start=1):
        where = f"{source_name} cell {n}"
        if kind == "core":
            if body.strip():
                raise BuildError(f"{where} (rendered line {line}): '# %% [core]' takes no text; start a new cell")
            cells += _core_cells(Path(package_dir), package_name, commit, roots)
        elif kind == "markdown":
            md = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
            cells.append(Cell("markdown", md, where, body, tags))
        elif body.strip():
            first = body.lstrip().split(maxsplit=1)[0]
            python = not first.startswith("%%") or first[2:] in CELL_MAGICS_WITH_PYTHON_BODY
            cells.append(Cell("code", body, where, body, tags, python))
    if not (cells and cells[0].kind == "markdown" and commit in cells[0].source):
        header = (f"Built by digitkit build.py from commit {commit} with "
                  f"`{context.get('build_command', 'python build.py ' + kernel)}` — edit the repo, not this notebook.")
        cells.insert(0, Cell("markdown", header, "header", header))
    secrets = known_secrets()
    for cell in cells:
        check_cell(cell, kernel=kernel, package_name=package_name, secrets=secrets)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    for i, cell in enumerate(cells):
        new = nbformat.v4.new_markdown_cell if cell.kind == "markdown" else nbformat.v4.new_code_cell
        metadata = copy.deepcopy(cell.metadata) | ({"tags": list(cell.tags)} if cell.tags else {})
        nb.cells.append(new(cell.source, id=f"cell-{i:03d}", metadata=metadata))
    check_notebook(nb, cells, secrets)
    return nb


# ------------------------------------------------------------------------------------------------- the kernel
def git_commit(repo: Path) -> str:
    """Short HEAD hash, plus "+dirty" when the working tree has changes; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if git("status", "--porcelain").strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config_parameters(config_source: str, class_name: str = "Config", where: str = "core/config.py"):
    """A jinja helper: ``{{ config_parameters(name="raw text") }}`` renders one ``name = default  # comment`` line per
    field of the dataclass ``class_name`` (read with ``ast``, never imported), with raw overrides, in field order,
    under the class's own section comments (a comment line of its own above a field, e.g. ``# ---- folds``)."""
    tree = ast.parse(config_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        raise BuildError(f"{where} defines no class {class_name}")
    lines = config_source.splitlines()
    fields, previous_end = {}, cls.lineno
    for node in cls.body:
        assert node.end_lineno is not None and node.end_col_offset is not None  # ast.parse places every node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            # the field's own comment, less any noqa marker for the linter (the library's business, not the notebook's)
            comment = re.sub(r"\s*#\s*noqa\b.*$", "", lines[node.end_lineno - 1][node.end_col_offset:].strip())
            headings = [line.strip() for line in lines[previous_end:node.lineno - 1] if line.strip().startswith("#")]
            value = ast.get_source_segment(config_source, node.value)
            assert value is not None  # the segment of a node parsed from this very source
            fields[node.target.id] = (value, comment, headings)
        previous_end = node.end_lineno

    def render(rename: dict[str, str] | None = None, **overrides: str) -> str:
        """``rename``: field → the notebook's name for it (e.g. SweepGrid's ``fold`` is ``sweep_fold`` there)."""
        rename = rename or {}
        unknown = sorted((set(overrides) | set(rename)) - set(fields))
        if unknown:
            raise BuildError(f"config_parameters({', '.join(unknown)}=...): {where} {class_name} has no such field")
        out = []
        for field, (value, comment, headings) in fields.items():
            out += headings
            name = rename.get(field, field)
            if field in overrides:
                out.append(f"{name} = {overrides[field]}")
                continue
            try:
                ast.literal_eval(value)
            except ValueError:
                raise BuildError(f"{where}: {class_name}.{field} = {value} is not a literal; override it") from None
            if value.startswith("(") and value.endswith(")") and isinstance(ast.literal_eval(value), tuple):
                value = f"[{value[1:-1].rstrip(',')}]"  # a list is what a notebook user edits: [42], not (42,)
            out.append(f"{name} = {value}" + (f"  {comment}" if comment.startswith("#") else ""))
        return "\n".join(out)

    return render


def set_parameters(nb: nbformat.NotebookNode, values: Mapping[str, Any], *, note: str) -> None:
    """Write ``values`` into the notebook's ``parameters`` cell, where a reader sees them: each ``name = default`` line
    becomes ``name = <value>  # <note> (default: <default>)``.

    Raises:
        BuildError: a name the cell does not assign (the message lists those it does), or a value that is no literal.
    """
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    lines = cell.source.splitlines()
    assigned = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^([A-Za-z_]\w*) = (.*)$", line))}
    unknown = sorted(set(values) - set(assigned))
    if unknown:
        raise BuildError(f"parameters {unknown} are not in the notebook's parameters cell; it sets {sorted(assigned)}")
    for name, value in values.items():
        text = repr(value)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise BuildError(f"parameter {name} = {text}: use a literal (number, str, bool, list)") from None
        default = re.sub(r"\s+#.*$", "", lines[assigned[name]].split(" = ", 1)[1])
        lines[assigned[name]] = f"{name} = {text}  # {note} (default: {default})"
    cell.source = "\n".join(lines)


def build_kernel(kernel: str, *, repo: Path, out_dir: Path, owner: str | None = None,
                 extra: dict | None = None, parameters: Mapping[str, Any] | None = None,
                 metadata_overrides: Mapping[str, Any] | None = None, note: str = "set by make kaggle") -> Path:
    """Build ``<out_dir>/<kernel>/<kernel>.ipynb`` and its ``kernel-metadata.json``; returns the notebook path.

    ``extra`` adds to (or replaces) the template context: ``title`` (the kernel's slug follows it) and
    ``weights_dataset`` (the slug of the dataset an inference kernel attaches) among them. ``parameters`` are written
    into the parameters cell (:func:`set_parameters`, with ``note``), ``metadata_overrides`` into
    kernel-metadata.json (e.g. ``kernel_sources``)."""
    repo, template = Path(repo), Path(repo) / "kernels" / f"{kernel}.py.j2"
    meta_template = repo / "kernel-metadata" / f"{kernel}.json.j2"
    for path in (template, meta_template):
        if not path.is_file():
            raise BuildError(f"{path.relative_to(repo)} is missing: every kernel needs both templates")
    context = {"kernel": kernel, "title": TITLES.get(kernel, f"digitkit {kernel}"), "commit": git_commit(repo),
               "build_command": f"python build.py {kernel}",
               "build_time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               **(extra or {})}

    def parameters_of(module: str, class_name: str, rename: dict[str, str] | None = None, **overrides: str) -> str:
        """``{{ parameters_of("config", "Config", batch_size="None  # swept") }}``: a parameters block rendered from
        a core/ dataclass (``config_parameters``), the one home of the notebook's defaults."""
        where = f"core/{module}.py"
        render = config_parameters((repo / where).read_text(encoding="utf-8"), class_name, where)
        return render(rename, **overrides)

    context.setdefault("parameters_of", parameters_of)
    nb = build_notebook_from_template(template.read_text(encoding="utf-8"), package_dir=repo / "core",
                                      package_name="core", kernel=kernel, context=context,
                                      source_name=f"kernels/{kernel}.py.j2")
    if parameters:
        set_parameters(nb, parameters, note=note)
    owner, slug = resolve_owner(owner), slugify(context["title"])
    values = {"owner": owner, "slug": slug, "title": context["title"], "code_file": f"{kernel}.ipynb",
              "weights_dataset": context.get("weights_dataset") or weights_dataset(repo), "kernel": kernel}
    metadata = render_metadata(meta_template.read_text(encoding="utf-8"), values,
                               source_name=f"kernel-metadata/{kernel}.json.j2")
    metadata.update(metadata_overrides or {})
    notebook_path = Path(out_dir) / kernel / f"{kernel}.ipynb"
    write_text_atomic(notebook_path, nbformat.writes(nb) + "\n")
    write_text_atomic(notebook_path.with_name("kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    return notebook_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel", nargs="?", default="all", help=f"one of {', '.join(KERNELS)} or all (default)")
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")
    parser.add_argument("--owner", help="Kaggle username for the kernel ids (default: $KAGGLE_USERNAME/kaggle.json)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent,
                        help="repository root holding core/, kernels/, kernel-metadata/ (default: build.py's folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kernels = [args.kernel] if args.kernel != "all" else sorted(
        p.name.removesuffix(".py.j2") for p in (args.repo / "kernels").glob("*.py.j2"))
    command = shlex.join(["python", "build.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        if not kernels:
            raise BuildError(f"no templates in {args.repo / 'kernels'}: nothing to build")
        owner = resolve_owner(args.owner)
        for kernel in kernels:
            path = build_kernel(kernel, repo=args.repo, out_dir=args.out, owner=owner,
                                extra={"build_command": command})
            for written in (path, path.with_name("kernel-metadata.json")):
                print(f"wrote {written} ({written.stat().st_size:,} bytes)")
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
