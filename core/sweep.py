"""Learning rate × batch size sweep: one fixed fold, a grid of cells, each trained by the real trainer, resumable.

A *cell* is one call of :func:`core.trainer.train_fold` on fold ``grid.fold`` of the saved folds file (the same
folds as training) with ``batch_size = B``, ``learning_rate = lr``, ``min_lr = lr * min_lr_ratio``, ``seed = s`` and
a fixed *budget*, the same for every cell:

* ``epochs=E``: every cell sees the same data (E passes); a large batch then takes fewer optimizer steps.
* ``steps=S``: every cell takes S optimizer steps (``Config.max_steps``; the cosine schedule ends at step S);
  a large batch then sees more data. The two answer different questions, so both are offered.

``budget`` may name both, ``"epochs=1,steps=500"``: every cell then trains once per budget. When a batch size's best
learning rate (mean over seeds) sits on an edge of the grid, the sweep adds the next rate beyond it (the grid's own
spacing) for that batch size and budget, up to ``refine_rounds`` times, so that the optimum is bracketed.

Each finished cell becomes one row of ``runs.csv`` (long format): ``batch``, ``lr`` and ``min_lr`` (per optimizer
step), ``seed``, ``budget`` (``epochs=3`` / ``steps=500``), ``steps`` (optimizer steps taken), ``val_acc`` and
``val_loss`` (hard-label cross-entropy) on the fold's validation rows, ``diverged`` (True/False) and ``seconds``
(wall time of the cell: set-up, training and evaluation; for a cell resumed mid-way, this session's part). The file
is rewritten beside itself and renamed over the old one, so a kill never leaves half a row (and a trailing line
without its newline, e.g. from a hand edit, is ignored when reading). A rerun skips the cells already there, so a
killed or extended sweep (more batch sizes, learning rates or seeds) only trains what is missing. A cell killed
mid-way resumes at its last finished epoch from the trainer's own checkpoint in ``cells/<cell>/``.

While a cell trains, ``curve_points`` evenly spaced steps score ``curve_rows`` fixed validation rows and read the
gradient noise scale (core.noise_scale): ``curves.csv`` (one row per point: the cell's keys, ``step``, ``examples`` =
step × batch, ``val_acc`` on those rows, ``noise_scale``) is what steps-to-target, examples-to-target and the
critical batch size are read from (core.critical_batch). A cell resumed mid-way writes no curve (its points before
the kill are lost, and a curve without them would misplace its crossing); it still counts in runs.csv.

A cell counts as **diverged** when any epoch's training or validation loss is not finite, or when its final
validation accuracy is at most ``CHANCE_ACC`` (0.2; chance is 0.1): it did not learn within the budget, whether it
blew up or crawled. ``val_acc`` and ``val_loss`` are those at the end of the budget (the last epoch), not the best
epoch: every cell is scored at the same point of its schedule.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import shutil
import time
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .atomic import write_text_atomic
from .config import Config, coerce, with_legacy_values
from .data import find_competition_file, find_duplicates, read_train
from .device import resolve_device
from .fold_result import fold_file
from .folds import load_or_make_folds, warn_about_duplicates
from .oof import CHANCE_ACC
from .paths import find_input_file, given_path
from .trainer import DivergedError, FoldSetup, evaluate, for_steps, noise_scale_now, plan_fold, train_fold

log = logging.getLogger(__name__)

RUNS_FILE = "runs.csv"
SETUP_FILE = "sweep.json"
CURVES_FILE = "curves.csv"
RUNS_COLUMNS = ["batch", "lr", "min_lr", "seed", "budget", "steps", "val_acc", "val_loss", "diverged", "seconds"]
CURVE_COLUMNS = ["batch", "lr", "min_lr", "seed", "budget", "step", "examples", "val_acc", "noise_scale"]
BUDGET_KINDS = ("epochs", "steps")


class SweepError(ValueError):
    """The sweep cannot go on as asked; the message names the setting or file and the fix."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every cell trains for: ``epochs`` passes over the fold, or exactly ``steps`` optimizer steps."""

    kind: str
    value: int

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"epochs=3"`` or ``"steps=500"`` (``:`` works as well as ``=``)."""
        kind, sep, value = str(text).replace(":", "=").partition("=")
        try:
            budget = cls(kind.strip().lower(), int(value))
        except ValueError:
            budget = None
        if not sep or budget is None or budget.kind not in BUDGET_KINDS or budget.value < 1:
            raise SweepError(f"budget = {text!r}: write 'epochs=E' (same data per cell) or 'steps=S' (same number "
                             "of optimizer steps per cell), with a positive integer")
        return budget

    @classmethod
    def parse_all(cls, text: str) -> list[Budget]:
        """One budget or several separated by commas: ``"epochs=1,steps=500"`` (duplicates dropped)."""
        budgets = [cls.parse(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
        if not budgets:
            raise SweepError(f"budget = {text!r}: write 'epochs=E', 'steps=S' or both, e.g. 'epochs=1,steps=500'")
        return _unique(budgets)

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"

    def apply(self, config: Config, n_train: int) -> Config:
        """``config`` with ``epochs``/``max_steps`` set so that a fold of ``n_train`` rows trains for this budget."""
        if self.kind == "epochs":
            return dataclasses.replace(config, epochs=self.value, max_steps=0)
        return for_steps(config, n_train, self.value)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the grid. ``budget`` is ``str(Budget)``, as written to runs.csv."""

    batch: int
    lr: float
    min_lr: float
    seed: int
    budget: str

    def key(self) -> tuple:
        """What identifies a finished cell in runs.csv (floats compared to 10 significant digits)."""
        return self.batch, _lr_key(self.lr), _lr_key(self.min_lr), self.seed, self.budget

    @property
    def name(self) -> str:
        """Folder name under ``cells/``, e.g. ``b32_lr0.001_min1e-05_s42_steps150``."""
        return f"b{self.batch}_lr{self.lr:g}_min{self.min_lr:g}_s{self.seed}_{self.budget.replace('=', '')}"


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """The cells to train: every batch size × learning rate × seed, one budget, on fold ``fold``.

    Attributes:
        batch_sizes: Images per optimizer step.
        learning_rates: Peak learning rates (per optimizer step).
        seeds: Trainer seeds (model init, batch order, augmentation); more seeds give mean ± sd per cell.
        min_lr_ratio: ``min_lr = lr * min_lr_ratio``, the end of the cosine, so each schedule keeps its shape.
        budget: ``"epochs=E"``, ``"steps=S"`` or both, comma-separated (see :class:`Budget`).
        fold: The validation fold of the saved folds file that every cell trains without and is scored on.
        refine_rounds: How many rates at most the sweep adds beyond an edge of the grid where the best rate sits.
        curve_points: Points of each cell's learning curve (curves.csv); 0: none.
        curve_rows: Validation rows those points are scored on (a fixed random subset of the fold; all if fewer).
    """

    # ---- the grid: every batch size × learning rate × seed is one training run of fold sweep_fold
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    learning_rates: tuple[float, ...] = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)  # AdamW; rates beyond an edge are added
    seeds: tuple[int, ...] = (1, 2, 3)  # mean ± sd per cell, and intervals that include the training noise
    min_lr_ratio: float = 0.01  # min_lr is learning_rate * min_lr_ratio (the end of each cosine)
    budget: str = "epochs=2,steps=1000"  # per cell: "epochs=E" (same data) or "steps=S" (same steps), or both
    fold: int = 0  # the validation fold every cell is scored on
    refine_rounds: int = 2  # a best rate on the grid's edge: add up to this many rates beyond it, for that batch size
    curve_points: int = 6  # validation points per cell (steps- and examples-to-target, the critical batch size)
    curve_rows: int = 2000  # validation rows scored at those points

    # notebook parameter name → field (the fold is ``sweep_fold`` there: ``folds_to_run`` belongs to training)
    PARAMETERS = types.MappingProxyType({
        "batch_sizes": "batch_sizes", "learning_rates": "learning_rates", "seeds": "seeds",
        "min_lr_ratio": "min_lr_ratio", "budget": "budget", "sweep_fold": "fold",
        "refine_rounds": "refine_rounds", "curve_points": "curve_points", "curve_rows": "curve_rows"})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SweepGrid:
        """Build from a notebook's ``globals()``: lists, tuples or comma-separated strings ("8,16,32")."""
        kwargs: dict[str, Any] = {}
        for name, field in cls.PARAMETERS.items():
            value = values.get(name)
            if value is None:
                continue
            if field in ("batch_sizes", "seeds", "learning_rates"):
                kwargs[field] = _as_tuple(name, value, float if field == "learning_rates" else int)
                continue
            if field == "budget" and isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            kinds = {"min_lr_ratio": float, "fold": int, "budget": str, "refine_rounds": int, "curve_points": int,
                     "curve_rows": int}
            kwargs[field] = coerce(name, value, kinds[field], SweepError)
        grid = cls(**kwargs)
        grid.validate()
        return grid

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise SweepError(message)

        need(len(self.batch_sizes) > 0 and all(b >= 1 for b in self.batch_sizes),
             f"batch_sizes = {list(self.batch_sizes)}: give at least one positive batch size")
        need(len(self.learning_rates) > 0 and all(lr > 0 for lr in self.learning_rates),
             f"learning_rates = {list(self.learning_rates)}: give at least one positive learning rate")
        need(len(self.seeds) > 0, "seeds: give at least one seed")
        need(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio = {self.min_lr_ratio}: use 0..1 (min_lr = lr * ratio)")
        need(self.fold >= 0, f"sweep_fold = {self.fold}: use a fold index 0..n_folds-1")
        need(self.refine_rounds >= 0, f"refine_rounds = {self.refine_rounds}: use 0 (keep the grid) or more")
        need(self.curve_points >= 0, f"curve_points = {self.curve_points}: use 0 (no curves) or more")
        need(self.curve_rows >= 1, f"curve_rows = {self.curve_rows}: use a positive number of validation rows")
        Budget.parse_all(self.budget)

    def budgets(self) -> list[str]:
        """The budgets as runs.csv writes them, e.g. ``["epochs=1", "steps=500"]``."""
        return [str(b) for b in Budget.parse_all(self.budget)]

    def cell(self, batch: int, lr: float, seed: int, budget: str) -> Cell:
        return Cell(batch=batch, lr=lr, min_lr=float(f"{lr * self.min_lr_ratio:.12g}"), seed=seed, budget=budget)

    def cells(self) -> list[Cell]:
        """Every cell of the grid, budget by budget, seed by seed (a partial sweep holds whole grids), then batch
        size, then learning rate (the rates added beyond an edge are :func:`extension_cells`)."""
        return [self.cell(b, lr, s, budget) for budget in self.budgets() for s in _unique(self.seeds)
                for b in _unique(self.batch_sizes) for lr in _unique(self.learning_rates)]

    def edge_rates(self) -> tuple[list[float], list[float]]:
        """The rates :func:`extension_cells` may add: (above the grid, below it), nearest first, ``refine_rounds``
        each — every one the previous times (or over) :meth:`lr_step`, to 4 significant digits."""
        above, below = [max(self.learning_rates)], [min(self.learning_rates)]
        for _ in range(self.refine_rounds):
            above.append(float(f"{above[-1] * self.lr_step():.4g}"))
            below.append(float(f"{below[-1] / self.lr_step():.4g}"))
        return above[1:], below[1:]

    def lr_step(self) -> float:
        """The grid's spacing of learning rates, a factor (geometric mean of neighbouring ratios; 3 for one rate)."""
        lrs = sorted(set(self.learning_rates))
        return (lrs[-1] / lrs[0]) ** (1 / (len(lrs) - 1)) if len(lrs) > 1 else 3.0

    def to_dict(self) -> dict[str, Any]:
        return {"batch_sizes": list(self.batch_sizes), "learning_rates": list(self.learning_rates),
                "seeds": list(self.seeds), "min_lr_ratio": self.min_lr_ratio, "budget": self.budget,
                "fold": self.fold, "refine_rounds": self.refine_rounds, "curve_points": self.curve_points,
                "curve_rows": self.curve_rows}


# ---------------------------------------------------------------------------------------------------- runs.csv
def read_runs(path: str | Path) -> pd.DataFrame:
    """The finished cells in ``path`` (columns ``RUNS_COLUMNS``); an empty table when the file does not exist.

    Raises:
        SweepError: The header is not ``RUNS_COLUMNS``.
    """
    frame = _read_table(path, RUNS_COLUMNS, dtype=str, keep_default_na=False)  # floats parsed below, exactly
    if frame is None:
        return _empty_runs()
    for column in ("lr", "min_lr", "val_acc", "val_loss", "seconds"):
        frame[column] = frame[column].map(float).astype("float64")
    for column in ("batch", "seed", "steps"):
        frame[column] = frame[column].map(int).astype("int64")
    frame["diverged"] = frame["diverged"].str.lower().isin(["true", "1"])
    return frame


def append_run(path: str | Path, row: Mapping[str, Any]) -> None:
    """Add one finished cell to ``path``: the whole file is written beside it and renamed over it (never half a row)."""
    append_rows(path, RUNS_COLUMNS, [row])


def append_rows(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Add ``rows`` to the CSV file ``path`` (header ``columns`` when new), written beside it and renamed over it."""
    path = Path(path)
    text = _complete_lines(path.read_text(encoding="utf-8")) if path.is_file() else ""
    if not text.strip():
        text = ",".join(columns) + "\n"
    text += "".join(",".join(_format(row[column]) for column in columns) + "\n" for row in rows)
    write_text_atomic(path, text)


def read_curves(path: str | Path) -> pd.DataFrame:
    """The learning-curve points in ``path`` (columns ``CURVE_COLUMNS``; empty when there is no such file)."""
    frame = _read_table(path, CURVE_COLUMNS, dtype={"budget": str})
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "budget" else "float64") for c in CURVE_COLUMNS})
    return frame


def _read_table(path: str | Path, columns: Sequence[str], **read_csv) -> pd.DataFrame | None:
    """The complete lines of the CSV file ``path`` (None when it is missing or empty).

    Raises:
        SweepError: its header is not ``columns``.
    """
    path = Path(path)
    text = _complete_lines(path.read_text(encoding="utf-8")) if path.is_file() else ""
    if not text.strip():
        return None
    frame = pd.read_csv(io.StringIO(text), **read_csv)
    if list(frame.columns) != list(columns):
        raise SweepError(f"{path}: columns are {list(frame.columns)}, expected {list(columns)}; move it away to "
                         "start a new sweep")
    return frame


def cell_key(row: Mapping[str, Any]) -> tuple:
    """The :meth:`Cell.key` of a runs.csv row."""
    return int(row["batch"]), _lr_key(row["lr"]), _lr_key(row["min_lr"]), int(row["seed"]), str(row["budget"])


def pending_cells(grid: SweepGrid, runs: pd.DataFrame) -> list[Cell]:
    """The cells of ``grid`` and of its edge extensions that ``runs`` does not hold yet, grid first."""
    done = {cell_key(row) for row in runs.to_dict("records")}
    return [cell for cell in grid.cells() + extension_cells(grid, runs) if cell.key() not in done]


def extension_cells(grid: SweepGrid, runs: pd.DataFrame) -> list[Cell]:
    """The next rate beyond each edge of the grid where a batch size's best rate sits (``grid.refine_rounds`` at
    most per edge), for every seed; only for batch sizes and budgets whose tried rates are finished for all seeds.

    "Best" is the highest mean accuracy over seeds (ties: the lower mean loss); an upward extension stops where the
    rates diverge, and a batch size where every rate diverged (blew up, or did not learn) gets none.
    """
    from .lr_scaling import best_lr, metric_scores, summarize  # the analysis's own notion of "best"

    ours = grid_runs(grid, runs)
    if not len(ours) or not grid.refine_rounds:
        return []
    seeds, (above, below) = _unique(grid.seeds), grid.edge_rates()
    extra = []
    for (budget, batch), part in ours.groupby(["budget", "batch"], sort=False):
        summary = summarize(part).sort_values("lr")
        tried = {_lr_key(lr) for lr in summary["lr"]}
        if not {_lr_key(lr) for lr in grid.learning_rates} <= tried or (summary["n"] < len(seeds)).any():
            continue  # the grid of this batch size is not finished yet
        lrs = summary["lr"].to_numpy()
        diverged = (summary["diverged"] * 2 > summary["n"]).to_numpy()
        if diverged.all():
            continue  # blew up or crawled at every rate: no direction to look in (the analysis says so)
        acc, minus_loss = metric_scores(summary["val_acc_mean"].to_numpy(float),
                                        summary["val_loss_mean"].to_numpy(float), "val_acc")
        i = best_lr(lrs, acc, diverged, tiebreak=minus_loss, refine=False)[0]
        up = [lr for lr in above if _lr_key(lr) not in tried]
        down = [lr for lr in below if _lr_key(lr) not in tried]
        if i == len(lrs) - 1 and not diverged[i] and up:
            extra.append((budget, int(batch), up[0]))
        elif i == 0 and down:
            extra.append((budget, int(batch), down[0]))
    return [grid.cell(batch, lr, seed, budget) for budget, batch, lr in extra for seed in seeds]


def grid_runs(grid: SweepGrid, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``runs`` that belong to ``grid``: its batch sizes, seeds and budgets at its ``min_lr_ratio``, at
    the grid's learning rates or those the sweep added beyond its edges (runs.csv may hold other grids' cells)."""
    if not len(runs):
        return runs
    above, below = grid.edge_rates()
    cells = {grid.cell(b, lr, s, budget).key() for budget in grid.budgets() for s in grid.seeds
             for b in grid.batch_sizes for lr in [*grid.learning_rates, *above, *below]}
    mask = [cell_key(row) in cells for row in runs.to_dict("records")]
    return runs[np.asarray(mask, dtype=bool)].reset_index(drop=True)


def _lr_key(lr: float) -> str:
    """A learning rate as :meth:`Cell.key` compares it (10 significant digits)."""
    return f"{float(lr):.10g}"


def is_diverged(history: Sequence[Mapping[str, float | None]]) -> bool:
    """Any non-finite training/validation loss, or a final validation accuracy at or below ``CHANCE_ACC``."""
    def finite(value: float | None) -> bool:  # the trainer's rows hold None only as an unmeasured noise_scale
        return value is not None and math.isfinite(value)

    last_acc = history[-1]["val_acc"]
    return (not all(finite(h["train_loss"]) and finite(h["val_loss"]) for h in history)
            or not (last_acc is not None and last_acc > CHANCE_ACC))


# ---------------------------------------------------------------------------------------------------- running
def cell_config(config: Config, cell: Cell, n_train: int) -> Config:
    """The training config of one cell: ``config`` with the cell's batch size, rates, seed and budget (no SWA)."""
    swept = dataclasses.replace(config, batch_size=cell.batch, learning_rate=cell.lr, min_lr=cell.min_lr,
                                seed=cell.seed, swa_epochs=0, folds_to_run="")
    swept = Budget.parse(cell.budget).apply(swept, n_train)
    swept.validate()
    return swept


def run_cells(config: Config, grid: SweepGrid, *, images: torch.Tensor, labels: torch.Tensor, folds: np.ndarray,
              output_dir: str | Path, device: torch.device | None = None) -> pd.DataFrame:
    """Train every cell of ``grid`` that ``output_dir/runs.csv`` lacks, appending each as it finishes.

    Args:
        images: uint8 (N, 28, 28), every train row.
        labels: int64 (N,).
        folds: int64 (N,) fold index per row; cells train on ``folds != grid.fold`` and score ``folds == grid.fold``.
        output_dir: Receives ``runs.csv``, ``curves.csv`` and ``cells/<cell>/`` (the trainer's per-epoch log; weights
            are deleted once the cell is recorded).

    Returns:
        The rows of runs.csv that belong to ``grid``.
    """
    output_dir = Path(output_dir)
    runs_path, curves_path = output_dir / RUNS_FILE, output_dir / CURVES_FILE
    train_idx, val_idx = np.flatnonzero(folds != grid.fold), np.flatnonzero(folds == grid.fold)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise SweepError(f"sweep_fold = {grid.fold}: the folds file has no such fold (folds {sorted(set(folds))})")
    device = device or resolve_device(config.device)
    images, labels = images.to(device), labels.to(device)  # once, not per cell
    curve_idx = np.sort(np.random.default_rng(grid.fold).permutation(val_idx)[:grid.curve_rows])
    curve_images, curve_labels = images[curve_idx], labels[curve_idx]  # the same rows score every learning curve
    number, todo = 0, pending_cells(grid, read_runs(runs_path))
    grid_keys = {cell.key() for cell in grid.cells()}
    log.info("sweep on fold %d (%d train / %d validation rows), budget %s: %d of %d grid cells in %s, %d cells to "
             "train", grid.fold, len(train_idx), len(val_idx), grid.budget,
             len(grid_keys) - sum(cell.key() in grid_keys for cell in todo), len(grid_keys), runs_path, len(todo))
    while todo:  # the grid, then the rates added beyond its edges, until the best rates are bracketed
        for position, cell in enumerate(todo):
            number += 1
            cfg = cell_config(config, cell, len(train_idx))
            steps = plan_fold(cfg, len(train_idx))[2]
            log.info("cell %d (%d left): batch %d, lr %g (min_lr %g), seed %d, %s → %d steps", number,
                     len(todo) - 1 - position, cell.batch, cell.lr, cell.min_lr, cell.seed, cell.budget, steps)
            cell_dir = output_dir / "cells" / cell.name
            resumed = (cell_dir / fold_file(cfg.model, grid.fold, "last")).is_file()  # its early points are lost
            probe = CurveProbe(curve_images, curve_labels, total_steps=steps,
                               points=0 if resumed else grid.curve_points, batch_size=config.eval_batch_size)
            started = time.perf_counter()
            try:
                history = train_fold(cfg, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx,
                                     fold=grid.fold, output_dir=cell_dir, device=device,
                                     after_step=probe).history
            except DivergedError as err:  # a cell that blows up is a finding of the sweep, not a failure of it
                history = err.history
            last = history[-1]
            keys = {"batch": cell.batch, "lr": cell.lr, "min_lr": cell.min_lr, "seed": cell.seed,
                    "budget": cell.budget}
            row = {**keys, "steps": steps, "val_acc": last["val_acc"], "val_loss": last["val_loss"],
                   "diverged": is_diverged(history), "seconds": time.perf_counter() - started}
            if probe.points:  # the curve first: a cell in runs.csv has its curve
                append_rows(curves_path, CURVE_COLUMNS, [{**keys, **point} for point in probe.points])
            append_run(runs_path, row)
            for weights in cell_dir.glob("*.pth"):
                weights.unlink()
            (cell_dir / fold_file(cfg.model, grid.fold, "oof")).unlink(missing_ok=True)
            noise = last.get("noise_scale")
            log.info("cell %d done: val_acc %.5f  val_loss %.4f%s%s  (%.1f s)", number, row["val_acc"],
                     row["val_loss"], f"  B_simple {noise:,.0f}" if noise else "",
                     "  DIVERGED" if row["diverged"] else "", row["seconds"])
        todo = pending_cells(grid, read_runs(runs_path))
        if todo:
            log.info("best rate on the grid's edge: %d more cells (%s)", len(todo),
                     ", ".join(sorted({f"batch {c.batch} lr {c.lr:g} {c.budget}" for c in todo})))
    return grid_runs(grid, read_runs(runs_path))


class CurveProbe:
    """``after_step`` hook of a sweep cell: at ``points`` evenly spaced steps of ``total_steps``, score uint8
    (n, 28, 28) ``images`` against ``labels`` and read the noise scale; ``points`` collects one dict per point."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, total_steps: int, points: int,
                 batch_size: int):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.at = {max(1, round(total_steps * j / points)) for j in range(1, points + 1)} if points else set()
        self.points: list[dict[str, Any]] = []

    def __call__(self, step: int, setup: FoldSetup) -> None:
        if step not in self.at:
            return
        acc = evaluate(setup.eval_model, self.images, self.labels, batch_size=self.batch_size,
                       channels_last=setup.channels_last, amp=setup.amp)[1]  # back in training mode afterwards
        noise = noise_scale_now(setup)
        self.points.append({"step": step, "examples": step * setup.batch_size, "val_acc": acc,
                            "noise_scale": float("nan") if noise is None else noise})


def run_sweep(config: Config, grid: SweepGrid, *, data_dir: str | Path, output_dir: str | Path,
              folds_path: str | Path | None = None, runs_path: str | Path | None = None) -> pd.DataFrame:
    """Read ``data_dir``/train.csv, take the training folds, and train the grid's missing cells into ``output_dir``.

    Writes ``folds.csv``, ``sweep.json`` (the resolved config, the grid and the settings runs.csv depends on),
    ``runs.csv``, ``curves.csv`` and ``cells/``. Refuses to continue a runs.csv made for other data, another fold or
    other fixed settings (``Config.sweep_settings``: model, weight decay, augmentation, CPU precision, ...): its cells
    would not be comparable.

    Args:
        folds_path: The folds.csv of training to reuse. Default: one attached as a Kaggle input, else
            ``output_dir/folds.csv`` (made on first use with ``config``'s n_folds, fold_method and seed).
        runs_path: A runs.csv of an earlier session to continue (copied to ``output_dir`` when that has none).
            Default: one attached as a Kaggle input.

    Returns:
        The rows of runs.csv that belong to ``grid``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    grid.validate()
    device = resolve_device(config.device)
    log.info("device: %s; model: %s; grid %d batch sizes × %d learning rates × %d seeds, budget %s", device,
             config.model, len(set(grid.batch_sizes)), len(set(grid.learning_rates)), len(set(grid.seeds)),
             grid.budget)
    train = read_train(find_competition_file(data_dir, "train"), group_column=config.group_column)
    reuse_from = given_path(folds_path, "folds_path", folder=False) or find_input_file("folds.csv")
    folds = load_or_make_folds(output_dir / "folds.csv", train.labels, fingerprint=train.fingerprint,
                               n_folds=config.n_folds, method=config.fold_method, seed=config.seed,
                               groups=train.groups, reuse_from=reuse_from)
    warn_about_duplicates(find_duplicates(train.images, train.labels), np.asarray(folds))
    if not 0 <= grid.fold < int(folds.max()) + 1:
        raise SweepError(f"sweep_fold = {grid.fold}: the folds file has folds 0..{int(folds.max())}")
    earlier = given_path(runs_path, "runs_path", folder=False) or find_input_file(RUNS_FILE)
    if earlier is not None and earlier.is_file() and not (output_dir / RUNS_FILE).is_file():
        shutil.copyfile(earlier, output_dir / RUNS_FILE)
        log.info("continuing the sweep of %s", earlier)
        for name in (SETUP_FILE, CURVES_FILE):  # what belongs to that runs.csv
            if earlier.with_name(name).is_file() and not (output_dir / name).is_file():
                shutil.copyfile(earlier.with_name(name), output_dir / name)
    _check_same_setup(output_dir / SETUP_FILE, config, grid, train.fingerprint)
    return run_cells(config, grid, images=torch.from_numpy(train.images), labels=torch.from_numpy(train.labels),
                     folds=folds, output_dir=output_dir, device=device)


def _check_same_setup(path: Path, config: Config, grid: SweepGrid, fingerprint: str) -> None:
    """Refuse a runs.csv made under other fixed settings (``Config.sweep_settings``: what every cell computes with,
    besides what each cell sets; a setup older than a setting counts with its legacy value); then record this sweep's
    settings in ``path``."""
    setup = {"train_sha256": fingerprint, "fold": grid.fold, **config.sweep_settings()}
    if path.is_file() and (path.parent / RUNS_FILE).is_file():
        old = with_legacy_values(json.loads(path.read_text(encoding="utf-8")).get("setup", {}))
        changed = {key: (old[key], value) for key, value in setup.items() if key in old and old[key] != value}
        if changed:
            shown = ", ".join(f"{key}: {was!r} → {now!r}" for key, (was, now) in changed.items())
            raise SweepError(f"{path.parent / RUNS_FILE} was made under other settings ({shown}); its cells are not "
                             "comparable: set output_dir to another folder, or move it away")
    write_text_atomic(path, json.dumps({"setup": setup, "grid": grid.to_dict(), "config": config.to_dict()},
                                       indent=2) + "\n")


def _complete_lines(text: str) -> str:
    """``text`` without a last line that lacks its newline (a write cut short)."""
    return text if text.endswith("\n") or not text else text[:text.rfind("\n") + 1]


def _format(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _empty_runs() -> pd.DataFrame:
    return pd.DataFrame({"batch": pd.Series(dtype="int64"), "lr": pd.Series(dtype="float64"),
                         "min_lr": pd.Series(dtype="float64"), "seed": pd.Series(dtype="int64"),
                         "budget": pd.Series(dtype="str"), "steps": pd.Series(dtype="int64"),
                         "val_acc": pd.Series(dtype="float64"), "val_loss": pd.Series(dtype="float64"),
                         "diverged": pd.Series(dtype="bool"), "seconds": pd.Series(dtype="float64")})


def _as_tuple(name: str, value: Any, kind: type) -> tuple:
    items = value.replace(";", ",").split(",") if isinstance(value, str) else value
    try:
        return tuple(coerce(name, item.strip() if isinstance(item, str) else item, kind, SweepError) for item in items
                     if not (isinstance(item, str) and not item.strip()))
    except (SweepError, TypeError):
        raise SweepError(f"{name} = {value!r}: give a list of numbers, e.g. [16, 64] or '16,64'") from None


def _unique(values: Sequence) -> list:
    return list(dict.fromkeys(values))
