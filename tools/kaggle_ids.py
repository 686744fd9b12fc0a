"""Kaggle's names for our kernels and datasets, in one place for build.py and tools/ship.py.

The kernel list, the placeholder owner that a push refuses, the slug Kaggle derives from a title, where the CLI keeps
kaggle.json, the owner a build writes into the kernel ids, Kaggle's 1 MB source limit, and the rendering of
``kernel-metadata/<kernel>.json.j2``. Local-only code: it is never inlined into a notebook.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import jinja2

log = logging.getLogger("build")

KERNELS = ("train", "infer", "ensemble", "sweep")
PLACEHOLDER_OWNER = "your-kaggle-username"
DEFAULT_WEIGHTS_DATASET = "digitkit-weights"
MAX_SOURCE_BYTES = 1_000_000  # "The kernel source must be less than 1 megabytes in size"


class BuildError(Exception):
    """A notebook or its kernel metadata cannot be built; the message names the file, cell and line, and the fix."""


def slugify(title: str) -> str:
    """The slug Kaggle derives from a title (python-slugify, as the CLI uses; else lowercase, each run of other
    characters one dash): "digitkit train" -> "digitkit-train"."""
    try:
        from slugify import slugify as _slugify
    except ImportError:
        return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return _slugify(title)


LOOP_KINDS = ("train", "infer", "ensemble", "weights")  # what a `make kaggle` loop makes on Kaggle, per loop
MAX_SLUG = 50  # characters in a Kaggle kernel or dataset slug (and a title)


def loop_slug(kind: str, name: str) -> str:
    """The slug of loop ``name``'s ``kind`` on Kaggle ("digitkit-train-effnet"): its title slugified, the one home of
    these names (build.py titles the kernel "digitkit <kind> <name>", and Kaggle slugifies that title)."""
    return slugify(f"digitkit {kind} {name}")


def check_loop_name(name: str) -> str:
    """``name`` if every slug of its loop is ``digitkit-<kind>-<name>`` within Kaggle's limit, else BuildError: a name
    Kaggle would change (``effnet.lr3e-3`` → ``effnet-lr3e-3``) could share kernels with another loop's."""
    if slugify(name) != name:
        raise BuildError(f"RUN={name}: a make kaggle loop names kernels and a dataset on Kaggle, whose slugs hold "
                         f"lowercase letters, digits and '-' only: use RUN={slugify(name) or 'my-run'}")
    longest = max(LOOP_KINDS, key=lambda kind: len(loop_slug(kind, name)))
    if len(loop_slug(longest, name)) > MAX_SLUG:
        raise BuildError(f"RUN={name}: {loop_slug(longest, name)} would be longer than Kaggle's {MAX_SLUG} "
                         f"characters; use a name of at most {MAX_SLUG - len(loop_slug(longest, 'x')) + 1} characters")
    return name


# ------------------------------------------------------------------------------------------------- kaggle.json
def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _xdg_kaggle_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def kaggle_config_dir() -> Path:
    """The folder the CLI reads kaggle.json from: $KAGGLE_CONFIG_DIR, else ~/.kaggle, else (Linux, no ~/.kaggle) XDG."""
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    if not folder.exists() and not os.environ.get("KAGGLE_CONFIG_DIR") and sys.platform.startswith("linux"):
        folder = _xdg_kaggle_dir()
    return folder


def kaggle_json() -> dict[str, Any]:
    """The kaggle.json the CLI would use ({} when there is none). Callers never print its key."""
    return read_json(kaggle_config_dir() / "kaggle.json")


def kaggle_json_paths() -> list[Path]:
    """Every kaggle.json on this machine, the CLI's own first: the credential scan looks in all of them."""
    # the first is $KAGGLE_CONFIG_DIR if set
    folders = [kaggle_config_dir(), Path.home() / ".kaggle", _xdg_kaggle_dir()]
    paths = dict.fromkeys(folder / "kaggle.json" for folder in folders)
    return [path for path in paths if path.is_file()]


def resolve_owner(owner: str | None = None) -> str:
    """--owner, else $KAGGLE_USERNAME, else the first kaggle.json username, else a placeholder that push refuses."""
    owner = owner or os.environ.get("KAGGLE_USERNAME")
    for path in [] if owner else kaggle_json_paths():
        owner = owner or read_json(path).get("username")
    if not owner:
        log.warning("no Kaggle username (--owner, $KAGGLE_USERNAME or kaggle.json): using %r", PLACEHOLDER_OWNER)
    return owner or PLACEHOLDER_OWNER


# ---------------------------------------------------------------------------------------------- kernel metadata
def weights_dataset(repo: Path) -> str:
    """The weights dataset's slug: the id in ``weights/dataset-metadata.json``, else ``DEFAULT_WEIGHTS_DATASET``."""
    path = Path(repo) / "weights" / "dataset-metadata.json"
    dataset_id = str(read_json(path).get("id", "")) if path.is_file() else ""
    return dataset_id.split("/")[-1] or DEFAULT_WEIGHTS_DATASET


def render_metadata(template_text: str, values: dict[str, Any], *, source_name: str = "<metadata>") -> dict[str, Any]:
    """Render a kernel-metadata template to a dict whose id is ``owner/slug`` and code_file the notebook.

    Raises:
        BuildError: it is not JSON, its id or code_file disagree with ``values``, or the title is not 5-50 characters.
    """
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
