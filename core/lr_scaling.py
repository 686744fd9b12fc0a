"""Read a learning rate × batch size sweep: the table, the best rate per batch size, the fitted law, the heatmap.

The law is ``lr*(B) = c · B^α``, fitted by least squares on ``log10 lr*`` against ``log10 B`` over the batch sizes'
best learning rates. α = 1 is linear scaling (Goyal et al. 2017, SGD), α = ½ square-root scaling (Malladi et
al. 2022, Adam); beyond the critical batch size (McCandlish et al. 2018) the best rate stops growing (α → 0).

The best rate of a batch size is the grid rate with the highest mean validation accuracy over seeds (or the lowest
mean validation loss, ``metric="val_loss"``). With ``refine=True`` an interior best is refined by the vertex of the
parabola through it and its two neighbours in log10(lr) (clamped to the neighbours; skipped when a neighbour
diverged), which lets α take values between grid points. A best rate on the edge of the grid is only a bound: it is
reported as a warning, and the grid should be extended that way.

The 95 % confidence interval of α is a percentile bootstrap (seeded): each replicate redraws every cell's seeds
with replacement and the batch sizes with replacement (replicates with fewer than two distinct batch sizes are
skipped). With one seed per cell only the batch sizes are redrawn, so the interval shows how far the points stray
from a straight line, not the training noise of each cell.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.ticker import NullLocator
from numpy.typing import ArrayLike

from .atomic import write_text_atomic
from .config import is_whole, settings_from_mapping
from .stats import percentile_interval

log = logging.getLogger(__name__)

METRICS = ("val_acc", "val_loss")
# SweepAnalysis.best: per batch size, the best grid rate, it refined, its 95 % bootstrap interval, the score there,
# whether it sits on an edge of the grid, and the accuracy there (mean, sd over its n seeds)
BEST_COLUMNS = ["batch", "lr_grid", "lr_refined", "lr_lo", "lr_hi", "score", "edge", "val_acc_mean", "val_acc_sd", "n"]


@dataclasses.dataclass
class AnalysisSettings:
    """The sweep notebook's analysis settings (its parameters cell is rendered from these fields and defaults)."""

    # ---- the analysis
    metric: str = "val_acc"  # what "best" means: val_acc (highest) or val_loss (lowest)
    n_boot: int = 2000  # bootstrap replicates for α's confidence interval
    target_acc: float = 0.0  # steps-to-target accuracy for the critical batch size; 0: the highest every batch size reaches  # noqa: E501

    @classmethod
    def from_mapping(cls, values: dict) -> AnalysisSettings:
        """From the notebook's ``globals()``, checked before the grid trains, not after."""
        return settings_from_mapping(cls, values, error=ValueError)

    def validate(self) -> None:
        """ValueError naming the parameter."""
        if self.metric not in METRICS:
            raise ValueError(f"metric = {self.metric!r}: choose one of {METRICS}")
        if not 0 <= self.target_acc < 1:
            raise ValueError(f"target_acc = {self.target_acc!r}: use 0 (chosen from the curves) or an accuracy "
                             "below 1, e.g. 0.98")
        if not is_whole(self.n_boot, minimum=10):
            raise ValueError(f"n_boot = {self.n_boot!r}: use an integer of at least 10 bootstrap replicates "
                             f"({AnalysisSettings.n_boot} is the default)")


@dataclasses.dataclass
class SweepAnalysis:
    """What a sweep says. Learning rates are per optimizer step; ``seconds`` are wall-clock seconds per cell.

    Attributes:
        summary: One row per (batch, lr): n (seeds), val_acc_mean, val_acc_sd, val_loss_mean, diverged (count of
            seeds), seconds_mean, steps.
        best: One row per batch size: lr_grid, lr_refined, score (the metric there), edge ("low", "high" or "").
        alpha: Fitted exponent of lr*(B) ∝ B^α (NaN with fewer than two batch sizes).
        log10_c: Intercept: log10 lr*(B=1) on the fitted line.
        ci: 95 % bootstrap interval of alpha.
        warnings: Sentences for the user (edges of the grid, batch sizes where every rate diverged).
    """

    summary: pd.DataFrame
    best: pd.DataFrame
    alpha: float
    log10_c: float
    ci: tuple[float, float]
    n_boot: int
    metric: str
    budget: str
    warnings: list[str]
    figure: plt.Figure | None = None

    def table(self) -> pd.DataFrame:
        """Validation accuracy, mean ± sd over seeds: learning rates down (largest first), batch sizes across.

        ``*`` marks each batch size's best grid rate; ``×`` a diverged cell (``(k/n ×)`` when k of n seeds diverged).
        """
        return _pivot(self.summary, self._cell_text, self.best)

    def seconds_table(self) -> pd.DataFrame:
        """Mean wall time per cell in seconds (training, evaluation and set-up), laid out as :meth:`table`."""
        return _pivot(self.summary, lambda row: f"{row.seconds_mean:.0f}", None)

    def report(self) -> str:
        lo, hi = self.ci
        lines = [f"learning rate × batch size sweep, budget {self.budget}, best by {self.metric}",
                 "", "validation accuracy (mean ± sd over seeds; * best per batch size, × diverged):",
                 self.table().to_string(), "", "best learning rate per batch size:"]
        for row in self.best.itertuples():
            edge = f"  (on the {row.edge} edge of the grid)" if row.edge else ""
            interval = f" [{row.lr_lo:.3g}, {row.lr_hi:.3g}]" if np.isfinite(row.lr_lo) else ""
            lines.append(f"  batch {row.batch:>5}: lr {row.lr_grid:.3g} (refined {row.lr_refined:.3g}{interval}), "
                         f"accuracy {row.val_acc_mean:.4f} ± {row.val_acc_sd:.4f} over {row.n} seed(s){edge}")
        lines += ["", f"fitted law: lr*(B) = {10 ** self.log10_c:.3g} · B^α with α = {self.alpha:.2f} "
                      f"(95% bootstrap CI {lo:.2f} … {hi:.2f}, {self.n_boot} replicates); "
                      "linear scaling is α = 1, square-root α = 0.5", "  " + self.verdict(),
                  "", "wall time per cell (s):", self.seconds_table().to_string(),
                  f"total: {self.summary['seconds_mean'].mul(self.summary['n']).sum():.0f} s"]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def alpha_text(self) -> str:
        """``"α = 0.24 [-0.61, 0.87]"`` (the fit and its 95 % interval), or why there is no fit."""
        if not np.isfinite(self.alpha):
            return "α not fitted (fewer than two batch sizes learned)"
        lo, hi = self.ci
        return f"α = {self.alpha:.2f} [{lo:.2f}, {hi:.2f}]"

    def verdict(self) -> str:
        """Which of α = 0, ½ and 1 the 95 % interval rules out, in one sentence."""
        lo, hi = self.ci
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return "no interval for α (fewer than two batch sizes, or too few bootstrap replicates)"
        inside = [name for value, name in ((0.0, "0 (no dependence)"), (0.5, "½ (square root)"), (1.0, "1 (linear)"))
                  if lo <= value <= hi]
        if len(inside) == 1:
            return f"the interval holds α = {inside[0]} only: the data tell the rules apart"
        if not inside:
            return "the interval holds none of α = 0, ½, 1"
        return (f"the interval holds α = {' and '.join(inside)}: these data cannot tell them apart "
                "(more seeds, or batch sizes further apart, narrow it)")

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "ci95": list(self.ci), "alpha_text": self.alpha_text(), "verdict": self.verdict(),
                "log10_c": self.log10_c, "n_boot": self.n_boot,
                "metric": self.metric, "budget": self.budget, "warnings": self.warnings,
                "best": self.best.to_dict("records"), "cells": int(self.summary["n"].sum()),
                "seconds_total": float(self.summary["seconds_mean"].mul(self.summary["n"]).sum())}

    def save(self, output_dir: str | Path, suffix: str = "") -> list[Path]:
        """Write ``sweep_summary.csv``, ``sweep_table.txt``, ``fit.json`` and ``lr_batch_heatmap.png`` (each name
        with ``suffix`` before its extension, e.g. ``fit_steps500.json``)."""
        output_dir = Path(output_dir)
        paths = [output_dir / f"{stem}{suffix}{ext}" for stem, ext in (("sweep_summary", ".csv"),
                                                                       ("sweep_table", ".txt"), ("fit", ".json"))]
        write_text_atomic(paths[0], self.summary.to_csv(index=False))
        write_text_atomic(paths[1], self.report() + "\n")
        write_text_atomic(paths[2], json_text(self.to_dict()))
        if self.figure is not None:
            paths.append(output_dir / f"lr_batch_heatmap{suffix}.png")
            self.figure.savefig(paths[-1], dpi=110)
        return paths

    def _cell_text(self, row) -> str:
        text = f"{row.val_acc_mean:.4f}" + (f" ± {row.val_acc_sd:.4f}" if row.n > 1 else "")
        if row.diverged == row.n:
            return f"× {text}"
        return text + (f" ({row.diverged}/{row.n} ×)" if row.diverged else "")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (batch, lr) of a runs.csv table (one budget): n, means, sd, diverged count, seconds, steps."""
    budgets = sorted(set(runs["budget"]))
    if len(budgets) > 1:
        raise ValueError(f"the runs hold several budgets {budgets}: analyse one at a time, e.g. "
                         f"runs[runs.budget == {budgets[0]!r}]")
    if runs.duplicated(["batch", "lr", "seed"]).any():
        raise ValueError("the runs hold a (batch, lr, seed) cell twice (several min_lr ratios?): keep one grid")
    grouped = runs.assign(val_acc=runs["val_acc"].fillna(0.0), val_loss=runs["val_loss"].fillna(np.inf)).groupby(
        ["batch", "lr"], sort=True)
    summary = grouped.agg(n=("seed", "size"), val_acc_mean=("val_acc", "mean"), val_acc_sd=("val_acc", "std"),
                          val_loss_mean=("val_loss", "mean"), diverged=("diverged", "sum"),
                          seconds_mean=("seconds", "mean"), steps=("steps", "first"))
    return summary.reset_index().astype({"diverged": "int64", "n": "int64"})


def refine_peak(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """The vertex of the parabola through points i-1, i, i+1 of (x, y), clamped to [x[i-1], x[i+1]]; x[i] if the
    parabola does not open downwards. ``x`` ascending (here log10 lr), ``y`` the score to maximise."""
    (x0, x1, x2), (y0, y1, y2) = x[i - 1:i + 2], y[i - 1:i + 2]
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denom
    if not a < 0:
        return float(x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def best_lr(lrs: np.ndarray, scores: np.ndarray, diverged: np.ndarray, *, tiebreak: np.ndarray | None = None,
            refine: bool = True) -> tuple[int, float]:
    """(index of the best grid rate, refined best rate) of one batch size.

    Args:
        lrs: (L,) ascending learning rates.
        scores: (L,) the score to maximise (mean accuracy, or minus the mean loss), finite.
        diverged: (L,) True where the cell diverged (most of its seeds).
        tiebreak: (L,) decides between equal scores (higher wins), e.g. minus the mean loss when accuracies tie
            (common: accuracy moves in steps of 1 / validation rows); else the smallest rate wins.
    """
    top = np.flatnonzero(scores >= scores.max())
    i = int(top[np.argmax(tiebreak[top])] if tiebreak is not None else top[0])
    if not refine or i == 0 or i == len(lrs) - 1 or diverged[i - 1] or diverged[i + 1]:
        return i, float(lrs[i])
    return i, float(10 ** refine_peak(np.log10(lrs), scores, i))


def fit_exponent(batches: ArrayLike, lrs: ArrayLike) -> tuple[float, float]:
    """(α, log10 c) of the least-squares line log10 lr = log10 c + α log10 B; NaNs with < 2 distinct batch sizes."""
    batches, lrs = np.asarray(batches, dtype=float), np.asarray(lrs, dtype=float)
    if len(np.unique(batches)) < 2:
        return float("nan"), float("nan")
    alpha, log10_c = np.polyfit(np.log10(batches), np.log10(lrs), 1)
    return float(alpha), float(log10_c)


def analyze_sweep(runs: pd.DataFrame, *, metric: str = AnalysisSettings.metric, refine: bool = True,
                  n_boot: int = AnalysisSettings.n_boot, seed: int = 0, plot: bool = True) -> SweepAnalysis:
    """Summarise ``runs`` (the rows of one grid and budget), find the best rate per batch size, fit and plot the law.

    Args:
        metric: ``"val_acc"`` (highest mean wins) or ``"val_loss"`` (lowest mean wins; a diverged cell's NaN
            loss counts as infinite).
        n_boot: Bootstrap replicates for α's interval; ``seed`` seeds them.
        plot: Also draw the heatmap (``SweepAnalysis.figure``).
    """
    AnalysisSettings(metric=metric, n_boot=n_boot).validate()
    if runs.empty:
        raise ValueError("no finished cells to analyse yet")
    summary = summarize(runs)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for batch, part in summary.groupby("batch", sort=True):
        part = part.sort_values("lr")
        lrs, div = part["lr"].to_numpy(), (part["diverged"] * 2 > part["n"]).to_numpy()
        if div.all():
            warnings.append(f"batch size {batch}: every learning rate diverged; it is left out of the fit")
            continue
        scores, tiebreak = metric_scores(part["val_acc_mean"].to_numpy(float), part["val_loss_mean"].to_numpy(float),
                                   metric)
        i, refined = best_lr(lrs, scores, div, tiebreak=tiebreak, refine=refine)
        edge = "" if len(lrs) < 2 else "low" if i == 0 else "high" if i == len(lrs) - 1 else ""
        if edge:
            step = lrs[1] / lrs[0] if edge == "low" else lrs[-1] / lrs[-2]  # the grid's own spacing there
            way = f"upwards (e.g. {lrs[i] * step:.3g})" if edge == "high" else f"downwards (e.g. {lrs[i] / step:.3g})"
            warnings.append(f"batch size {batch}: the best learning rate {lrs[i]:.3g} is the "
                            f"{'largest' if edge == 'high' else 'smallest'} of the grid, so the optimum may lie "
                            f"beyond it: extend learning_rates {way}")
        rows.append({"batch": int(batch), "lr_grid": float(lrs[i]), "lr_refined": refined,
                     "score": float(part[f"{metric}_mean"].iloc[i]), "edge": edge,
                     "val_acc_mean": float(part["val_acc_mean"].iloc[i]),
                     "val_acc_sd": float(part["val_acc_sd"].fillna(0.0).iloc[i]), "n": int(part["n"].iloc[i])})
    alpha, log10_c = fit_exponent([row["batch"] for row in rows], [row["lr_refined"] for row in rows])
    samples, lr_samples = _bootstrap(runs, metric=metric, refine=refine, n_boot=n_boot, seed=seed)
    for row in rows:  # each batch size's best rate: a 95 % interval over the same replicates
        row["lr_lo"], row["lr_hi"] = percentile_interval(lr_samples.get(row["batch"], []))
    best = pd.DataFrame(rows, columns=BEST_COLUMNS)
    ci = percentile_interval(samples)
    for text in warnings:
        log.warning("%s", text)
    analysis = SweepAnalysis(summary=summary, best=best, alpha=alpha, log10_c=log10_c, ci=ci, n_boot=len(samples),
                             metric=metric, budget=str(runs["budget"].iloc[0]), warnings=warnings)
    if plot:
        analysis.figure = plot_sweep(analysis)
    return analysis


def _bootstrap(runs: pd.DataFrame, *, metric: str, refine: bool, n_boot: int,
               seed: int) -> tuple[np.ndarray, dict[int, list[float]]]:
    """(α of each kept replicate, batch size → its refined best rate in every replicate) over ``n_boot`` bootstrap
    replicates (seeds redrawn within each cell, batch sizes redrawn); degenerate replicates (fewer than two distinct
    batch sizes, or one where every rate diverged) are dropped."""
    rng = np.random.default_rng(seed)
    lr_samples: dict[int, list[float]] = {}
    per_batch = []  # (batch, ascending lrs, per-lr (seeds, 3) arrays of accuracy, loss, diverged)
    for batch, part in runs.groupby("batch", sort=True):
        groups = [g for _, g in part.groupby("lr", sort=True)]
        cells = [np.column_stack([g["val_acc"].fillna(0.0), g["val_loss"].fillna(np.inf), g["diverged"]]).astype(float)
                 for g in groups]
        per_batch.append((batch, np.array([g["lr"].iloc[0] for g in groups]), cells))
    alphas = []
    for _ in range(n_boot):
        points = []
        for batch, lrs, cells in per_batch:
            means = np.array([cell[rng.integers(0, len(cell), len(cell))].mean(axis=0) for cell in cells])
            div = means[:, 2] > 0.5
            if not div.all():
                scores, tiebreak = metric_scores(means[:, 0], means[:, 1], metric)
                points.append((batch, best_lr(lrs, scores, div, tiebreak=tiebreak, refine=refine)[1]))
                lr_samples.setdefault(int(batch), []).append(points[-1][1])
        if len(points) < 2:
            continue
        chosen = [points[k] for k in rng.integers(0, len(points), len(points))]
        if len({b for b, _ in chosen}) >= 2:
            alphas.append(fit_exponent(*zip(*chosen, strict=True))[0])
    return np.asarray(alphas), lr_samples


# ------------------------------------------------------------------------------------------------------ figure
def plot_sweep(analysis: SweepAnalysis, path: str | Path | None = None) -> plt.Figure:
    """Heatmap of validation accuracy over log2(batch) × log10(lr) with the best rate per batch size, the fitted
    law and the linear (α = 1) and square-root (α = ½) lines through the best cell; beside it the wall time per cell.
    """
    summary, best = analysis.summary, analysis.best
    batches, lrs = np.sort(summary["batch"].unique()), np.sort(summary["lr"].unique())
    acc = _grid(summary, "val_acc_mean", batches, lrs)
    seconds = _grid(summary, "seconds_mean", batches, lrs)
    diverged = _grid(summary.assign(d=summary["diverged"] * 2 > summary["n"]), "d", batches, lrs) == 1
    x_edges, y_edges = _log_edges(batches), _log_edges(lrs)

    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [1.3, 1]})
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # grey: diverged or missing
    shown = np.ma.masked_where(diverged | np.isnan(acc), acc)
    vmin, vmax = (float(shown.min()), float(shown.max())) if shown.count() else (0.0, 1.0)
    mesh = ax.pcolormesh(x_edges, y_edges, shown, cmap=cmap, vmin=vmin, vmax=max(vmax, vmin + 1e-6))
    fig.colorbar(mesh, ax=ax, label="validation accuracy (mean over seeds)")
    text_y = np.sqrt(lrs * y_edges[1:])  # the upper half of each cell: the markers sit at its centre
    for (j, i), value in np.ndenumerate(acc):
        if not np.isnan(value):
            dark = not diverged[j, i] and value < vmin + 0.6 * (vmax - vmin)
            ax.text(batches[i], text_y[j], "×" if diverged[j, i] else f"{value:.4f}", ha="center", va="center",
                    fontsize=8, color="white" if dark else "black")
    if len(best):
        ax.plot(best["batch"], best["lr_grid"], "*", ms=16, mfc="none", mec="red", mew=1.5, label="best lr (grid)")
        ax.plot(best["batch"], best["lr_refined"], "o", ms=6, mfc="white", mec="black", label="best lr (refined)")
        top = best.loc[best["score"].idxmax()] if analysis.metric == "val_acc" else best.loc[best["score"].idxmin()]
        line_b = np.geomspace(x_edges[0], x_edges[-1], 50)
        for exponent, style, name in ((1.0, "--", "linear, α = 1"), (0.5, ":", "square root, α = ½")):
            ax.plot(line_b, top["lr_refined"] * (line_b / top["batch"]) ** exponent, style, color="tab:red", lw=1.5,
                    label=f"{name} (through the best cell)")
        if np.isfinite(analysis.alpha):
            lo, hi = analysis.ci
            ax.plot(line_b, 10 ** analysis.log10_c * line_b ** analysis.alpha, "-", color="black", lw=1.5,
                    label=f"fit α = {analysis.alpha:.2f} [{lo:.2f}, {hi:.2f}]")
    edges = [f"{row.batch} ({'↑' if row.edge == 'high' else '↓'})" for row in best.itertuples() if row.edge]
    title = f"best lr per batch size, budget {analysis.budget}"
    ax.set_title(title + (f"\nbest lr on the grid's edge at batch {', '.join(edges)}: extend the grid" if edges
                          else ""), color="tab:red" if edges else "black", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)

    low, high = max(np.nanmin(seconds), 1e-3), max(np.nanmax(seconds), 2e-3)
    time_mesh = ax_time.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(seconds), cmap="magma_r",
                                   norm=LogNorm(vmin=low, vmax=high))
    fig.colorbar(time_mesh, ax=ax_time, label="seconds per cell (log scale)")
    for (j, i), value in np.ndenumerate(seconds):
        if not np.isnan(value):
            dark = np.log(max(value, low) / low) > 0.5 * np.log(high / low)
            ax_time.text(batches[i], lrs[j], f"{value:.0f}", ha="center", va="center", fontsize=8,
                         color="white" if dark else "black")
    ax_time.set_title("cost: wall time per cell", fontsize=10)
    for axis in (ax, ax_time):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlim(x_edges[0], x_edges[-1])
        axis.set_ylim(y_edges[0], y_edges[-1])
        axis.set_xticks(batches, labels=[str(b) for b in batches])
        axis.set_yticks(lrs, labels=[f"{lr:g}" for lr in lrs])
        axis.xaxis.set_minor_locator(NullLocator())
        axis.yaxis.set_minor_locator(NullLocator())
        axis.set(xlabel="batch size", ylabel="peak learning rate")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)  # the caller displays the returned figure once
    return fig


def metric_scores(acc: np.ndarray, loss: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, tie-break), both finite and higher-is-better, from mean accuracies and mean losses (L,)."""
    acc = np.nan_to_num(acc, nan=0.0)
    minus_loss = -np.nan_to_num(loss, nan=1e30, posinf=1e30)
    return (acc, minus_loss) if metric == "val_acc" else (minus_loss, acc)


def _grid(summary: pd.DataFrame, column: str, batches: np.ndarray, lrs: np.ndarray) -> np.ndarray:
    """(len(lrs), len(batches)) float array of ``column``, NaN where a cell is missing."""
    table = summary.pivot(index="lr", columns="batch", values=column).reindex(index=lrs, columns=batches)
    return table.to_numpy(dtype=float)


def _log_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges for sorted positive ``values`` on a log axis: geometric midpoints, ends mirrored."""
    logs = np.log(np.asarray(values, dtype=float))
    half = np.diff(logs) / 2 if len(logs) > 1 else np.array([np.log(2.0)])
    edges = np.concatenate([[logs[0] - half[0]], logs[:-1] + half, [logs[-1] + half[-1]]])
    return np.exp(edges)


def _pivot(summary: pd.DataFrame, text, best: pd.DataFrame | None) -> pd.DataFrame:
    marked = set() if best is None else {(row.batch, row.lr_grid) for row in best.itertuples()}
    cells = {(row.lr, row.batch): text(row) + (" *" if (row.batch, row.lr) in marked else "")
             for row in summary.itertuples()}
    lrs, batches = sorted(summary["lr"].unique(), reverse=True), sorted(summary["batch"].unique())
    table = pd.DataFrame([[cells.get((lr, b), "") for b in batches] for lr in lrs],
                         index=pd.Index([f"{lr:g}" for lr in lrs], name="lr \\ batch"), columns=batches)
    return table


def json_text(data: Any) -> str:
    """``data`` as strict JSON (indented, one trailing newline): numpy scalars as numbers, NaN and ±inf as null."""
    return json.dumps(json_safe(data), indent=2, default=json_default, allow_nan=False) + "\n"


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, ±inf) replaced by None, in nested dicts, lists and tuples."""
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value) for value in data]
    if isinstance(data, (float, np.floating)):
        return float(data) if math.isfinite(data) else None
    return data


def json_default(value):
    """``json.dumps(default=...)`` for numpy scalars."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
