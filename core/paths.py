"""Where a notebook finds its inputs and writes its outputs, on Kaggle and locally."""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def on_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or KAGGLE_WORKING.is_dir()


def given_path(value: str | Path | None, name: str, *, folder: bool, default_here: bool = True,
               fix: str = "") -> Path | None:
    """The path a parameter names (None when it is empty), refused unless it exists as a folder / a file: a typo
    must not silently fall back to a default (on Kaggle it would throw an attached resume or split away).

    Args:
        default_here: whether an empty value has a default off Kaggle too (resume_dir, folds_path do; data_dir and
            weights_dir are only found by themselves among Kaggle's inputs).
        fix: what else to do, e.g. how to make the data.

    Raises:
        FileNotFoundError: naming the parameter, what is there instead, and (on Kaggle) what is attached.
    """
    if value is None or not str(value).strip():
        return None
    path = Path(value)
    kind = "folder" if folder else "file"
    if path.is_dir() if folder else path.is_file():
        return path
    if path.is_symlink() and not path.exists():
        found = f"is a broken symbolic link (to {os.readlink(path)})"
    elif path.exists():
        found = f"is a {'file' if path.is_file() else 'folder'}, not a {kind}"
    else:
        found = "does not exist"
    attached = sorted(p.name for p in KAGGLE_INPUT.iterdir()) if KAGGLE_INPUT.is_dir() else []
    hint = f"; attached under {KAGGLE_INPUT}: {', '.join(attached) or 'nothing'}" if attached or on_kaggle() else ""
    empty = f", or leave {name} empty (\"\") for the default" if default_here or on_kaggle() else ""
    raise FileNotFoundError(f"{name} = {str(value)!r} {found}: give an existing {kind}{empty}"
                            f"{'; ' + fix if fix else ''}{hint}")


def find_input_dir(explicit: str | Path | None, marker: str | tuple[str, ...], what: str,
                   root: Path = KAGGLE_INPUT, max_depth: int = 5, fix: str = "") -> Path:
    """The folder holding ``marker`` (a file name, or any of several): ``explicit`` if given, else the first match
    under Kaggle's input root (attached competitions, datasets and kernel outputs), searched breadth-first.

    Raises:
        FileNotFoundError: naming what was looked for and how to provide it.
    """
    markers = (marker,) if isinstance(marker, str) else marker
    given = given_path(explicit, what.replace(" ", "_"), folder=True, default_here=False, fix=fix)
    if given is not None:  # None: explicit is empty (or blank), so search
        return given
    found = search_inputs(markers, root=root, max_depth=max_depth)
    if found is not None:
        return found
    raise FileNotFoundError(
        f"no {what} found: looked for {' or '.join(markers)} under {root}. On Kaggle, attach it with 'Add Input'; "
        f"locally, set the notebook parameter (e.g. -p {what.replace(' ', '_')}=<folder>).")


def search_inputs(patterns: tuple[str, ...], root: Path = KAGGLE_INPUT, max_depth: int = 5) -> Path | None:
    """The first folder under ``root`` (breadth-first, ``max_depth`` levels, names in order) holding a file that
    matches one of the glob ``patterns`` ("manifest.json", "smallcnn_fold*_last.pth"); None when none does. Kaggle
    mounts competitions, datasets and kernel outputs at different depths below /kaggle/input: this is the one search."""
    return next((folder for folder, files in walk_folders(root, max_depth)
                 if any(fnmatch.fnmatchcase(name, pattern) for name in files for pattern in patterns)), None)


def walk_folders(root: str | Path, max_depth: int) -> Iterator[tuple[Path, list[str]]]:
    """(folder, the names of the files in it) for ``root`` and the folders below it, breadth-first (``max_depth``
    levels, ``root`` first), names in order; each folder is listed once, when it is reached (an attached dataset of
    many files costs one listing, not a stat per name asked for); nothing when ``root`` is not a folder."""
    level = [Path(root)] if Path(root).is_dir() else []
    for _ in range(max_depth):
        below: list[Path] = []
        for folder in sorted(level):
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            below += [Path(entry.path) for entry in entries if entry.is_dir()]
            yield folder, [entry.name for entry in entries if entry.is_file()]
        level = below


def find_input_file(name: str, root: Path = KAGGLE_INPUT) -> Path | None:
    """The first file called ``name`` among Kaggle's inputs (see ``find_input_dir``); None when none is attached."""
    try:
        return find_input_dir(None, name, name, root=root) / name
    except FileNotFoundError:
        return None


def default_output_dir(explicit: str | Path | None) -> Path:
    """``explicit`` if given, else /kaggle/working on Kaggle, else the current folder."""
    if explicit:
        return Path(explicit)
    return KAGGLE_WORKING if KAGGLE_WORKING.is_dir() else Path(".")
