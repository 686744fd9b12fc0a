"""One progress-bar factory: a widget inside Jupyter/Kaggle when ipywidgets exists, a text bar otherwise."""
from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto warns once when ipywidgets is missing, then falls back to text
    from tqdm.auto import tqdm


def progress(total: int, desc: str, leave: bool = False, **kwargs) -> tqdm:
    """A bar for ``total`` steps, e.g. the batches of one epoch."""
    return tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True, **kwargs)
