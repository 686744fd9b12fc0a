"""One progress-bar factory: a bar only where a person watches it live — a terminal, or an interactive notebook with
widgets.

Elsewhere (a saved Kaggle version, which papermill runs as ``KAGGLE_KERNEL_RUN_TYPE=Batch``; ``make run`` without
ipywidgets; a fold worker writing into a pipe; a test) a bar would save hundreds of redrawn frames or widget outputs
into the notebook or the log; the trainer's one line per epoch says the same, so the bar is off there.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto warns once when ipywidgets is missing, then falls back to text
    from tqdm.auto import tqdm


def watched() -> bool:
    """Whether a bar would be seen live: stderr is a terminal, or an interactive IPython kernel can draw a widget
    (not a Kaggle batch run: nobody watches a saved version, and each widget would stay in its output)."""
    if "ipykernel" in sys.modules:
        batch = os.environ.get("KAGGLE_KERNEL_RUN_TYPE") == "Batch"
        return not batch and importlib.util.find_spec("ipywidgets") is not None
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(total: int, desc: str, leave: bool = False, **kwargs) -> tqdm:
    """A bar for ``total`` steps, e.g. the batches of one epoch (disabled where nobody watches it: ``watched``)."""
    kwargs.setdefault("disable", not watched())
    return tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True, **kwargs)
