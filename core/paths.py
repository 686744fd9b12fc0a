"""Where a notebook finds its inputs and writes its outputs, on Kaggle and locally."""
from __future__ import annotations

import os
from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def on_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or KAGGLE_WORKING.is_dir()


def find_input_dir(explicit: str | Path | None, marker: str | tuple[str, ...], what: str,
                   root: Path = KAGGLE_INPUT, max_depth: int = 5) -> Path:
    """The folder holding ``marker`` (a file name, or any of several): ``explicit`` if given, else the first match
    under Kaggle's input root (attached competitions, datasets and kernel outputs), searched breadth-first.

    Raises:
        FileNotFoundError: naming what was looked for and how to provide it.
    """
    markers = (marker,) if isinstance(marker, str) else marker
    if explicit:
        return Path(explicit)
    if root.is_dir():
        level = [root]
        for _ in range(max_depth):
            for folder in sorted(level):
                if any((folder / m).is_file() for m in markers):
                    return folder
            level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()]
    raise FileNotFoundError(
        f"no {what} found: looked for {' or '.join(markers)} under {root}. On Kaggle, attach it with 'Add Input'; "
        f"locally, set the notebook parameter (e.g. -p {what.replace(' ', '_')}=<folder>).")


def default_output_dir(explicit: str | Path | None) -> Path:
    """``explicit`` if given, else /kaggle/working on Kaggle, else the current folder."""
    if explicit:
        return Path(explicit)
    return KAGGLE_WORKING if KAGGLE_WORKING.is_dir() else Path(".")
