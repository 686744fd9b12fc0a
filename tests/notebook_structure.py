"""What a user sees in a built or executed notebook: the visible step headings, the hidden library, the text and the
figures each step leaves. Shared by tests/test_build.py (built) and tests/test_kaggle_sandbox.py (executed)."""
from __future__ import annotations

import nbformat

# The recipe each notebook shows, in order: its "## " headings.
STEPS = {
    "train": ["1 · Recipe", "2 · Data: train.csv, validated", "3 · Folds", "4 · Model and learning-rate schedule",
              "5 · Training", "6 · Out-of-fold predictions → local CV", "7 · Error analysis",
              "8 · Training curves and manifest.json"],
    "infer": ["1 · The trained run: manifest.json", "2 · Test data", "3 · Each fold's model predicts every test digit",
              "4 · Folds averaged → submission.csv", "5 · What was predicted"],
    "ensemble": ["1 · The groups", "2 · Every option on the same OOF rows", "3 · Fuse → submission.csv"],
    "sweep": ["1 · The grid", "2 · Training every cell (resumable)", "3 · Which learning rate for which batch size",
              "4 · Critical batch size and the gradient noise scale"],
}
HIDE_KEYS = {"_kg_hide-input": True, "_kg_hide-output": True}


def hidden(cell) -> bool:
    """Collapsed on Kaggle (input and output) and in JupyterLab."""
    meta = cell.get("metadata", {})
    return all(meta.get(key) is value for key, value in HIDE_KEYS.items()) and \
        meta.get("jupyter", {}) == {"source_hidden": True, "outputs_hidden": True}


def library_cells(nb: nbformat.NotebookNode) -> list:
    """The cells that write and import core/: every %%writefile cell, and the helper cells around them."""
    return [c for c in nb.cells if c.cell_type == "code" and (
        c.source.startswith("%%writefile core/") or 'os.makedirs("core"' in c.source or "importlib.invalidate_caches"
        in c.source)]


def visible_headings(nb: nbformat.NotebookNode) -> list[str]:
    return [line[3:].strip() for c in nb.cells if c.cell_type == "markdown" and not hidden(c)
            for line in c.source.splitlines() if line.startswith("## ")]


def visible_text_lines(nb: nbformat.NotebookNode) -> int:
    """Lines of text the visible cells' outputs hold (streams, plain text, markdown; not figures' reprs)."""
    lines = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or hidden(cell):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                continue
            text = output.get("text") or data.get("text/markdown") or data.get("text/plain") or ""
            lines += len("".join(text).splitlines())
    return lines


def figure_after(nb: nbformat.NotebookNode, call: str) -> bool:
    """Whether the visible code cell that calls ``call`` shows a figure."""
    cells = [c for c in nb.cells if c.cell_type == "code" and not hidden(c) and call in c.source]
    assert cells, f"no visible cell calls {call}"
    return any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
