"""One fold's result and every file of a fold: the single place that names them, saves and reads them.

A finished fold leaves, in its output folder (``<model>`` sanitised to ``[A-Za-z0-9_.-]``)::

    <model>_fold<k>_best.pth   weights of the best epoch (a state_dict)
    <model>_fold<k>_swa.pth    SWA weights, when swa_epochs > 0
    <model>_fold<k>_log.csv    one row per epoch
    <model>_fold<k>_oof.npz    the FoldResult: val_idx, val_probs (+ swa_val_probs) and a JSON ``meta`` string
    <model>_fold<k>_last.pth   the resume checkpoint while the fold trains (core.checkpoint.TrainingState)

``train_fold`` writes the ``_oof.npz`` when the fold ends (in-process and in launched workers alike), the
pipeline lists the fold in manifest.json (:func:`manifest_entry`, :func:`entry_files`) and core.resume reads it
back (:func:`load_fold_result`). The ``.npz`` holds no pickle: arrays, plus the scalars, the history and the file
names as one JSON string. File names in it are relative to the ``.npz``'s folder, so a copied run folder (a
previous Kaggle version attached as input) still points at its own files. Adding a field to FoldResult touches
only this module: the dataclass, :func:`save_fold_result`, :func:`load_fold_result` and :func:`manifest_entry`.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

KINDS = {"best": ".pth", "last": ".pth", "swa": ".pth", "log": ".csv", "oof": ".npz"}
FORMAT = 1  # the ``meta["format"]`` of a result file; another number is refused


class FoldResultError(ValueError):
    """A fold result file cannot be read as one (an older format, or not written by save_fold_result)."""


@dataclasses.dataclass
class FoldResult:
    """What one fold leaves behind. ``val_probs`` is (n_val, 10) softmax from the best weights, rows as val_idx."""

    fold: int
    weights_path: Path
    best_epoch: int  # 1-based epoch of the best validation accuracy
    best_val_acc: float
    val_probs: np.ndarray
    history: list[dict[str, float | None]]  # one dict per epoch (the rows of ``_log.csv``)
    swa_weights_path: Path | None = None  # <model>_fold<k>_swa.pth when config.swa_epochs > 0
    swa_val_acc: float | None = None
    swa_val_probs: np.ndarray | None = None  # (n_val, 10) from the SWA weights after BatchNorm re-estimation


def fold_file(model: str, fold: int, kind: str) -> str:
    """File name of one of a fold's files, e.g. ``convnext_atto.d2_in1k_fold3_best.pth``.

    Args:
        model: the config's model name; characters outside ``[A-Za-z0-9_.-]`` become ``-``.
        kind: best | last | swa (``.pth``), log (``.csv``) or oof (``.npz``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: one of {', '.join(KINDS)}")
    return f"{model_stem(model)}_fold{fold}_{kind}{KINDS[kind]}"


def model_stem(model: str) -> str:
    """The model name as it starts every fold file: ``<stem>_fold<k>_<kind>``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model)


def save_fold_result(output_dir: str | Path, model: str, result: FoldResult, val_idx: np.ndarray) -> str:
    """Write ``result`` and its int64 (n_val,) validation rows to ``output_dir``/<model>_fold<k>_oof.npz in one
    atomic rename (a file that exists is whole); return its name. The weights files are stored by name only: they
    live beside it."""
    name = fold_file(model, result.fold, "oof")
    meta = {"format": FORMAT, "fold": result.fold, "weights": result.weights_path.name,
            "best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc, "history": result.history,
            "swa_weights": result.swa_weights_path.name if result.swa_weights_path is not None else None,
            "swa_val_acc": result.swa_val_acc}
    arrays: dict[str, Any] = {"val_idx": np.asarray(val_idx, dtype=np.int64),  # np.savez's **kwds: ArrayLike
                              "val_probs": np.asarray(result.val_probs)}
    if result.swa_val_probs is not None:
        arrays["swa_val_probs"] = np.asarray(result.swa_val_probs)
    with atomic_path(Path(output_dir) / name) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    return name


def load_fold_result(path: str | Path) -> tuple[FoldResult, np.ndarray]:
    """Read what :func:`save_fold_result` wrote: (FoldResult with paths in ``path``'s folder, int64 val_idx).

    Raises:
        FoldResultError: the file has no ``meta`` of this format (e.g. an ``_oof.npz`` of an older digitkit).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        if "meta" not in data.files:
            raise FoldResultError(f"{path.name}: no fold result metadata (written by an older digitkit)")
        meta: dict[str, Any] = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise FoldResultError(f"{path.name}: fold result format {meta.get('format')!r}, expected {FORMAT}")
        val_idx, val_probs = data["val_idx"], data["val_probs"]
        swa_val_probs = data["swa_val_probs"] if "swa_val_probs" in data.files else None
    folder = path.parent
    result = FoldResult(fold=int(meta["fold"]), weights_path=folder / meta["weights"],
                        best_epoch=int(meta["best_epoch"]), best_val_acc=float(meta["best_val_acc"]),
                        val_probs=val_probs, history=list(meta["history"]),
                        swa_weights_path=folder / meta["swa_weights"] if meta["swa_weights"] else None,
                        swa_val_acc=meta["swa_val_acc"], swa_val_probs=swa_val_probs)
    return result, val_idx


def final_noise_scale(history: list[dict[str, Any]]) -> float | None:
    """The gradient noise scale B_simple (examples) at the fold's last epoch that measured one; None if none did."""
    return next((row["noise_scale"] for row in reversed(history) if row.get("noise_scale") is not None), None)


def manifest_entry(model: str, result: FoldResult, n_val: int | None = None) -> dict[str, Any]:
    """One fold of manifest.json: its weights, scores, history and the files holding its OOF rows and log.
    ``n_val`` (validation rows) is left out when None."""
    entry: dict[str, Any] = {"fold": result.fold, "weights": result.weights_path.name, "val_acc": result.best_val_acc,
                             "best_epoch": result.best_epoch, "oof_file": fold_file(model, result.fold, "oof"),
                             "log_file": fold_file(model, result.fold, "log"), "history": result.history}
    if n_val is not None:
        entry["n_val"] = int(n_val)
    entry["noise_scale"] = final_noise_scale(result.history)
    if result.swa_weights_path is not None:
        entry.update(swa_weights=result.swa_weights_path.name, swa_val_acc=result.swa_val_acc)
    return entry


def entry_files(entry: dict[str, Any]) -> list[str]:
    """Every file a manifest fold entry stands for (weights, SWA weights, result file, log), by name."""
    return [entry[key] for key in ("weights", "swa_weights", "oof_file", "log_file") if entry.get(key)]
