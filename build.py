"""Build self-contained Kaggle notebooks from ``kernels/<kernel>.py.j2`` templates and the ``core/`` package.

    python build.py [train|infer|ensemble|sweep|all] [--out build] [--owner NAME]

A template is a jinja2 "percent" script: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell
("# " is stripped from its lines), ``# %% tags=["parameters"]`` a tagged code cell, and ``# %% [core]`` expands into
the library: a ``%%writefile core/<module>.py`` cell per module (readable source, real imports and tracebacks),
then a cell that imports it. Every notebook is checked before it is written: nbformat schema, size < 1 MB, imports
that exist on Kaggle, no ``__file__``, no ``pretrained=True`` in inference kernels, no Kaggle credentials.
Local-only code: this file may use nbformat and jinja2; the notebooks it writes may not.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import graphlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2
import nbformat

log = logging.getLogger("build")

KERNELS = ("train", "infer", "ensemble", "sweep")
TITLES = {kernel: f"digitkit {kernel}" for kernel in KERNELS}
KAGGLE_PACKAGES = frozenset({"torch", "torchvision", "timm", "numpy", "pandas", "sklearn", "matplotlib", "tqdm"})
MAX_NOTEBOOK_BYTES = 1_000_000
PLACEHOLDER_OWNER = "your-kaggle-username"
DEFAULT_WEIGHTS_DATASET = "digitkit-weights"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_MAGICS_WITH_PYTHON_BODY = ("time", "timeit", "capture")
SECRET_PATTERNS = (
    re.compile(r'"key"\s*:\s*"[0-9a-f]{32}"'),
    re.compile(r"KAGGLE_KEY\s*=\s*[\"'][^\"']+"),
    re.compile(r"KAGGLE_API_TOKEN\s*=\s*[\"'][^\"']+"),
)
_MARKER = re.compile(r"^# %%(?:\s+\[(?P<kind>markdown|core)\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


class BuildError(Exception):
    """The notebook cannot be built; the message names the file, cell and line, and the fix."""


@dataclasses.dataclass(frozen=True)
class Module:
    name: str  # "data"; the package's own module is "__init__"
    relpath: str  # "core/data.py"
    source: str
    deps: tuple[str, ...]  # names of the package modules it imports


@dataclasses.dataclass
class _Cell:
    kind: str  # "markdown" | "code"
    source: str  # what goes into the notebook
    where: str  # "kernels/train.py.j2 cell 3" or "core/data.py": where `body` line numbers point
    body: str  # the text that `where` numbers (a module's source without the %%writefile line)
    tags: list[str] = dataclasses.field(default_factory=list)
    python: bool = True  # code whose imports and calls are checked


# ----------------------------------------------------------------------------------------------- the package
def _imported(tree: ast.AST, pkg_name: str, where: str) -> list[tuple[str, int, bool]]:
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
            base = node.module if node.level == 0 else ".".join(filter(None, [pkg_name, node.module]))
            found.append((base, node.lineno, False))
            if base == pkg_name:
                found += [(f"{pkg_name}.{alias.name}", node.lineno, True) for alias in node.names]
    return found


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
        for dotted, line, maybe_attribute in _imported(tree, pkg_name, relpath):
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
    order, ready = [], []
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
            tree = ast.parse(_python_text(body))
        except SyntaxError:  # reported with its line by _check_cell
            continue
        for dotted, _, _ in _imported(tree, package_name, f"{source_name} cell {n}"):
            parts = dotted.split(".")
            if parts[0] == package_name:
                roots.add(parts[1] if len(parts) > 1 else "__init__")
    return roots


def _core_cells(package_dir: Path, package_name: str, commit: str, roots: set[str]) -> list[_Cell]:
    modules = needed_modules(collect_modules(package_dir, package_name), roots)
    intro = (f"## The `{package_name}` library\nThe cells below write the {len(modules)} modules of the "
             f"`{package_name}` package (digitkit commit {commit}) that this notebook uses to `{package_name}/`, one "
             f"module per cell, in dependency order, then import it.")
    makedirs = f'import os\nos.makedirs("{package_name}", exist_ok=True)'
    cells = [_Cell("markdown", intro, "[core] expansion", intro), _Cell("code", makedirs, "[core] expansion", makedirs)]
    for module in modules:  # %%writefile refuses an empty body
        body = module.source if module.source.strip() else "# (an empty module)\n"
        cells.append(_Cell("code", f"%%writefile {module.relpath}\n{body}", module.relpath, module.source))
    reimport = (f"import importlib, sys\nimportlib.invalidate_caches()\nfor _name in [m for m in sys.modules if m == "
                f"\"{package_name}\" or m.startswith(\"{package_name}.\")]:\n    del sys.modules[_name]\n"
                f"import {package_name}")
    return cells + [_Cell("code", reimport, "[core] expansion", reimport)]


def build_notebook_from_template(template_text: str, *, package_dir: Path, package_name: str, kernel: str,
                                 context: dict, source_name: str = "<template>") -> nbformat.NotebookNode:
    """Render the template with ``context``, expand ``# %% [core]``, check everything and return the notebook."""
    try:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
        text = env.from_string(template_text).render(**context)
    except jinja2.TemplateError as exc:
        line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise BuildError(f"{source_name}{line}: jinja2: {exc}") from exc
    commit = str(context.get("commit", "unknown"))
    cells: list[_Cell] = []
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
            cells.append(_Cell("markdown", md, where, body, tags))
        elif body.strip():
            first = body.lstrip().split(maxsplit=1)[0]
            python = not first.startswith("%%") or first[2:] in CELL_MAGICS_WITH_PYTHON_BODY
            cells.append(_Cell("code", body, where, body, tags, python))
    if not (cells and cells[0].kind == "markdown" and commit in cells[0].source):
        header = (f"Built by digitkit build.py from commit {commit} with "
                  f"`{context.get('build_command', 'python build.py ' + kernel)}` — edit the repo, not this notebook.")
        cells.insert(0, _Cell("markdown", header, "header", header))
    secrets = _known_secrets()
    for cell in cells:
        _check_cell(cell, kernel=kernel, package_name=package_name, secrets=secrets)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    for i, cell in enumerate(cells):
        new = nbformat.v4.new_markdown_cell if cell.kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(cell.source, id=f"cell-{i:03d}", metadata={"tags": cell.tags} if cell.tags else {}))
    _check_notebook(nb, cells, secrets)
    return nb


# -------------------------------------------------------------------------------------------------- checks
def _python_text(body: str) -> str:
    """The cell with IPython magics and shell lines replaced by `pass`, so that line numbers stay put."""
    lines = body.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        lines[0] = ""
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in lines)


def _check_cell(cell: _Cell, *, kernel: str, package_name: str, secrets: list[tuple[str, str]]) -> None:
    _scan_credentials(cell.body, cell.where, secrets)
    if cell.kind != "code" or not cell.python:
        return
    try:
        tree = ast.parse(_python_text(cell.body))
    except SyntaxError as exc:
        raise BuildError(f"{cell.where} line {exc.lineno}: syntax error: {exc.msg}") from exc
    for dotted, line, _ in _imported(tree, package_name, cell.where):
        top = dotted.split(".")[0]
        if top not in sys.stdlib_module_names and top not in KAGGLE_PACKAGES and top != package_name:
            raise BuildError(f"{cell.where} line {line} imports {top!r}, which is not available on Kaggle: use the "
                             f"standard library or one of {sorted(KAGGLE_PACKAGES)} (local-only code stays out of "
                             f"{package_name}/ and the templates)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__file__":
            raise BuildError(f"{cell.where} line {node.lineno} uses __file__, which notebooks do not define; "
                             "pass paths in explicitly")
        if kernel.startswith("infer") and _is_pretrained_true(node):
            raise BuildError(f"{cell.where} line {node.lineno} sets pretrained=True in the {kernel!r} kernel, which "
                             "runs without internet: build the model with pretrained=False and load_state_dict")


def _is_pretrained_true(node: ast.AST) -> bool:
    """``f(..., pretrained=True)``, ``pretrained = True``, ``cfg.pretrained = True`` or ``pretrained: bool = True``."""
    def true(value: ast.AST | None) -> bool:
        return isinstance(value, ast.Constant) and value.value is True

    if isinstance(node, ast.Call):
        return any(kw.arg == "pretrained" and true(kw.value) for kw in node.keywords)
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return true(getattr(node, "value", None)) and any(
        getattr(t, "id", None) == "pretrained" or getattr(t, "attr", None) == "pretrained" for t in targets)


def _known_secrets() -> list[tuple[str, str]]:
    """(description, value) of the Kaggle credentials on this machine; descriptions never contain the value."""
    secrets = [(f"the value of ${name}", os.environ[name]) for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")
               if len(os.environ.get(name, "")) >= 8]
    for path in _kaggle_json_paths():
        key = str(_read_json(path).get("key", ""))
        if len(key) >= 8:
            secrets.append((f"the key in {path}", key))
    return secrets


def _scan_credentials(text: str, where: str, secrets: list[tuple[str, str]]) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        hits = [what for what, value in secrets if value in line]
        hits += [f"text matching {p.pattern!r}" for p in SECRET_PATTERNS if p.search(line)]
        if hits:
            raise BuildError(f"{where} line {number} contains a Kaggle credential ({hits[0]}): remove it; credentials "
                             "never go into a notebook (on Kaggle use Add-ons > Secrets)")


def _check_notebook(nb: nbformat.NotebookNode, cells: list[_Cell], secrets: list[tuple[str, str]]) -> None:
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise BuildError(f"the notebook does not validate against the nbformat schema: {exc.message}") from exc
    size = len(nbformat.writes(nb).encode("utf-8"))
    if size >= MAX_NOTEBOOK_BYTES:
        largest = sorted(cells, key=lambda c: -len(c.source.encode("utf-8")))[:3]
        raise BuildError(f"the notebook is {size:,} bytes; Kaggle refuses sources of 1 MB or more. Largest cells: "
                         + ", ".join(f"{c.where} ({len(c.source.encode('utf-8')):,} bytes)" for c in largest))
    _scan_credentials(json.dumps(nb.metadata), "notebook metadata", secrets)


# ------------------------------------------------------------------------------------------ kernel + metadata
def slugify(title: str) -> str:
    """Kaggle's slug: lowercase, each run of other characters one dash ("digitkit train" -> "digitkit-train")."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _kaggle_json_paths() -> list[Path]:
    dirs = [os.environ["KAGGLE_CONFIG_DIR"]] if os.environ.get("KAGGLE_CONFIG_DIR") else []
    dirs += [Path.home() / ".kaggle", Path.home() / ".config" / "kaggle"]
    return [Path(d) / "kaggle.json" for d in dirs if (Path(d) / "kaggle.json").is_file()]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_owner(owner: str | None = None) -> str:
    """--owner, else $KAGGLE_USERNAME, else kaggle.json's username, else a placeholder that push refuses."""
    owner = owner or os.environ.get("KAGGLE_USERNAME")
    for path in [] if owner else _kaggle_json_paths():
        owner = owner or _read_json(path).get("username")
    if not owner:
        log.warning("no Kaggle username (--owner, $KAGGLE_USERNAME or kaggle.json): using %r", PLACEHOLDER_OWNER)
    return owner or PLACEHOLDER_OWNER


def git_commit(repo: Path) -> str:
    """Short HEAD hash, plus "+dirty" when the working tree has changes; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if git("status", "--porcelain").strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _weights_dataset(repo: Path) -> str:
    path = repo / "weights" / "dataset-metadata.json"
    dataset_id = str(_read_json(path).get("id", "")) if path.is_file() else ""
    return dataset_id.split("/")[-1] or DEFAULT_WEIGHTS_DATASET


def config_parameters(config_source: str, class_name: str = "Config", where: str = "core/config.py"):
    """A jinja helper: ``{{ config_parameters(name="raw text") }}`` renders one ``name = default  # comment`` line per
    field of the dataclass ``class_name`` (read with ``ast``, never imported), with raw overrides, in field order."""
    tree = ast.parse(config_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        raise BuildError(f"{where} defines no class {class_name}")
    lines = config_source.splitlines()
    fields = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            comment = lines[node.end_lineno - 1][node.end_col_offset:].strip()
            fields[node.target.id] = (ast.get_source_segment(config_source, node.value), comment)

    def render(**overrides: str) -> str:
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise BuildError(f"config_parameters({', '.join(unknown)}=...): {where} {class_name} has no such field")
        out = []
        for name, (value, comment) in fields.items():
            if name in overrides:
                out.append(f"{name} = {overrides[name]}")
                continue
            try:
                ast.literal_eval(value)
            except ValueError:
                raise BuildError(f"{where}: {class_name}.{name} = {value} is not a literal; override it") from None
            out.append(f"{name} = {value}" + (f"  {comment}" if comment.startswith("#") else ""))
        return "\n".join(out)

    return render


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_kernel(kernel: str, *, repo: Path, out_dir: Path, owner: str | None = None,
                 extra: dict | None = None) -> Path:
    """Build ``<out_dir>/<kernel>/<kernel>.ipynb`` and its ``kernel-metadata.json``; returns the notebook path."""
    repo, template = Path(repo), Path(repo) / "kernels" / f"{kernel}.py.j2"
    meta_template = repo / "kernel-metadata" / f"{kernel}.json.j2"
    for path in (template, meta_template):
        if not path.is_file():
            raise BuildError(f"{path.relative_to(repo)} is missing: every kernel needs both templates")
    context = {"kernel": kernel, "title": TITLES.get(kernel, f"digitkit {kernel}"), "commit": git_commit(repo),
               "build_command": f"python build.py {kernel}",
               "build_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               **(extra or {})}
    if (repo / "core" / "config.py").is_file() and "config_parameters" not in context:
        context["config_parameters"] = config_parameters((repo / "core" / "config.py").read_text(encoding="utf-8"))
    nb = build_notebook_from_template(template.read_text(encoding="utf-8"), package_dir=repo / "core",
                                      package_name="core", kernel=kernel, context=context,
                                      source_name=f"kernels/{kernel}.py.j2")
    owner, slug = resolve_owner(owner), slugify(context["title"])
    values = {"owner": owner, "slug": slug, "title": context["title"], "code_file": f"{kernel}.ipynb",
              "weights_dataset": _weights_dataset(repo), "kernel": kernel}
    metadata = render_metadata(meta_template.read_text(encoding="utf-8"), values,
                               source_name=f"kernel-metadata/{kernel}.json.j2")
    notebook_path = Path(out_dir) / kernel / f"{kernel}.ipynb"
    _write_atomic(notebook_path, nbformat.writes(nb) + "\n")
    _write_atomic(notebook_path.with_name("kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    return notebook_path


def render_metadata(template_text: str, values: dict, *, source_name: str = "<metadata>") -> dict:
    """Render a kernel-metadata template to a dict whose id is ``owner/slug`` and code_file the notebook."""
    try:
        text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template_text).render(**values)
        metadata = json.loads(text)
    except (jinja2.TemplateError, ValueError) as exc:
        raise BuildError(f"{source_name}: does not render to JSON: {exc}") from exc
    expected = {"id": f"{values['owner']}/{values['slug']}", "code_file": values["code_file"]}
    for key, value in expected.items():
        if metadata.setdefault(key, value) != value:
            raise BuildError(f"{source_name}: {key} is {metadata[key]!r}; it must be {value!r}")
    if not 5 <= len(metadata.get("title", "")) <= 50:
        raise BuildError(f"{source_name}: title {metadata.get('title')!r} must have 5 to 50 characters")
    return metadata


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
