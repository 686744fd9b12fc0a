"""Steps and examples to a target accuracy per batch size, and the critical batch size (McCandlish et al. 2018).

From a sweep's learning curves (``curves.csv``, core.sweep): for each batch size B, S(B) is the fewest optimizer
steps any of its learning rates (and budgets) needs to reach the target validation accuracy — mean over seeds of
the first crossing, linearly interpolated between curve points, counted only where every seed gets there — and
E(B) = B · S(B) the examples it saw. The paper's trade-off

    (S / S_min − 1) (E / E_min − 1) = 1,   i.e.  S(B) = S_min (1 + B_crit / B),  E(B) = E_min (1 + B / B_crit),

is fitted by least squares on log S (for each candidate B_crit on a fine log grid, log S_min is the mean residual),
giving B_crit = E_min / S_min: far below it, doubling the batch halves the steps; far above, it doubles the data
for almost no fewer steps. The interval is a seeded percentile bootstrap that redraws the seeds of every curve
group. The gradient noise scale B_simple read at the crossing (core.noise_scale) predicts B_crit's order of
magnitude; the paper found B_crit ≈ B_simple within a small factor.

The target, unless given, is the highest accuracy (to 0.001, less a margin of 0.001) that every batch size reaches
on every seed of its best curve, so that every batch size has an S.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import NUM_CLASSES
from .stats import percentile_interval

MIN_TARGET = 0.5  # the automatic target ignores batch sizes that never got this far
CHANCE = 1 / NUM_CLASSES  # accuracy of a guess among the ten digits: where every learning curve starts, at step 0
BOUND_FACTOR = 10.0  # a fitted B_crit this far outside the batch sizes tried is only a one-sided bound
TABLE_COLUMNS = ["batch", "lr", "budget", "steps", "examples", "noise_scale", "n_seeds"]
_GROUP = ["batch", "lr", "budget"]


def crossing_step(steps: np.ndarray, accs: np.ndarray, target: float) -> float:
    """The step at which a learning curve first reaches ``target``: linear between its points (ascending ``steps``),
    from (0, chance) before the first; ``inf`` when it never does."""
    x = np.concatenate([[0.0], np.asarray(steps, dtype=float)])
    y = np.concatenate([[CHANCE], np.asarray(accs, dtype=float)])
    above = np.flatnonzero(y >= target)
    if len(above) == 0:
        return math.inf
    k = int(above[0])
    if k == 0:
        return 0.0
    return float(x[k - 1] + (target - y[k - 1]) / (y[k] - y[k - 1]) * (x[k] - x[k - 1]))


def auto_target(curves: pd.DataFrame) -> float:
    """The highest accuracy (rounded down to 0.001, less 0.001) that every batch size reaches on every seed of at
    least one of its (lr, budget) curves; batch sizes that never reach ``MIN_TARGET`` are left out of the choice (they
    get no steps-to-target)."""
    worst_seed = curves.groupby([*_GROUP, "seed"])["val_acc"].max().groupby(_GROUP).min()
    per_batch = worst_seed.groupby("batch").max()
    learned = per_batch[per_batch >= MIN_TARGET]  # a batch size that never learned would pull the target to chance
    reach = (learned if len(learned) else per_batch).min()
    return math.floor(round(reach * 1000, 6)) / 1000 - 0.001


def crossings(curves: pd.DataFrame, target: float) -> pd.DataFrame:
    """One row per curve (batch, lr, budget, seed): ``steps`` to ``target`` (inf if never) and ``noise_scale`` at
    the first point at or past it (NaN if none)."""
    rows = []
    for (batch, lr, budget, seed), curve in curves.groupby([*_GROUP, "seed"], sort=True):
        curve = curve.sort_values("step")
        step = crossing_step(curve["step"].to_numpy(), curve["val_acc"].to_numpy(), target)
        after = curve[curve["step"] >= step]
        rows.append({"batch": int(batch), "lr": float(lr), "budget": budget, "seed": seed, "steps": step,
                     "noise_scale": float(after["noise_scale"].iloc[0]) if len(after) else math.nan})
    return pd.DataFrame(rows, columns=[*_GROUP, "seed", "steps", "noise_scale"])


def steps_to_target(per_curve: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size (``TABLE_COLUMNS``) from :func:`crossings`: the (lr, budget) with the fewest mean
    steps over seeds (inf when a seed never gets there), the examples that is, and the mean noise scale there."""
    grouped = per_curve.groupby(_GROUP, sort=True).agg(steps=("steps", "mean"), noise_scale=("noise_scale", "mean"),
                                                      n_seeds=("seed", "size")).reset_index()
    best = grouped.loc[grouped.groupby("batch")["steps"].idxmin()].sort_values("batch")
    return best.assign(examples=best["steps"] * best["batch"])[TABLE_COLUMNS].reset_index(drop=True)


def fit_tradeoff(batches: np.ndarray, steps: np.ndarray) -> tuple[float, float, float]:
    """(S_min, E_min, B_crit) of S(B) = S_min (1 + B_crit / B), least squares on log S over finite points.

    B_crit is searched on a log grid from 1e-3 to 1e4 times the batch range; a best fit at the top of it means the
    steps kept falling in proportion to 1/B (every batch tried is below B_crit): B_crit = inf, E_min = NaN. NaNs with
    fewer than two finite points. A finite B_crit far outside the batch sizes is only a bound (CriticalBatch.bound).
    """
    b, s = np.asarray(batches, dtype=float), np.asarray(steps, dtype=float)
    keep = np.isfinite(s) & (s > 0)
    b, s = b[keep], s[keep]
    if len(np.unique(b)) < 2:
        return math.nan, math.nan, math.nan
    candidates = np.geomspace(b.min() * 1e-3, b.max() * 1e4, 4000)
    shape = np.log1p(candidates[:, None] / b[None, :])  # (C, n)
    log_s_min = (np.log(s)[None, :] - shape).mean(1)
    error = ((np.log(s)[None, :] - shape - log_s_min[:, None]) ** 2).sum(1)
    k = int(np.argmin(error))
    s_min = float(np.exp(log_s_min[k]))
    if k == len(candidates) - 1:
        return s_min, math.nan, math.inf
    return s_min, s_min * float(candidates[k]), float(candidates[k])


@dataclasses.dataclass
class CriticalBatch:
    """Steps/examples to ``target`` per batch size and the fitted trade-off. Steps are optimizer steps, examples
    training images seen, B_crit and B_simple in examples per batch."""

    target: float
    table: pd.DataFrame  # TABLE_COLUMNS
    s_min: float
    e_min: float
    b_crit: float
    ci: tuple[float, float]  # 95 % bootstrap interval of B_crit
    n_boot: int
    curves: pd.DataFrame  # the curves it was read from (for the figure)
    figure: plt.Figure | None = None

    @property
    def b_simple(self) -> float:
        """Median over batch sizes of the noise scale measured where each reached the target (NaN if none)."""
        values = self.table["noise_scale"].to_numpy(dtype=float)
        return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan

    @property
    def reached(self) -> pd.Series:
        """The batch sizes that reached the target (a finite steps-to-target)."""
        return self.table[np.isfinite(self.table["steps"])]["batch"]

    def bound(self) -> str:
        """"beyond" / "below" when the fitted B_crit lies more than ``BOUND_FACTOR`` × outside the batch sizes tried
        (the data then only bound it from one side: the steps kept falling as 1/B, or did not fall at all), "none"
        when it could not be fitted, else ""."""
        finite = self.reached
        if math.isnan(self.b_crit) or finite.empty:
            return "none"
        if self.b_crit > BOUND_FACTOR * finite.max():
            return "beyond"
        if self.b_crit < finite.min() / BOUND_FACTOR:
            return "below"
        return ""

    def describe(self) -> str:
        """B_crit in words, with its interval or its one-sided bound."""
        batches = self.reached
        bound, (lo, hi) = self.bound(), self.ci
        if bound == "none":
            return "B_crit could not be fitted (fewer than two batch sizes reached the target)"
        if bound == "beyond":
            return (f"B_crit is beyond the batch sizes tried: up to batch {int(batches.max())} the steps to the "
                    "target kept falling about in proportion to 1/B")
        if bound == "below":
            return (f"B_crit is below the batch sizes tried: from batch {int(batches.min())} up the steps to the "
                    "target hardly fell, a bigger batch only spent more data")
        upper = f"{hi:,.0f}" if math.isfinite(hi) else "beyond the grid"
        return f"B_crit = E_min/S_min ≈ {self.b_crit:,.0f} (95% bootstrap CI {lo:,.0f} … {upper})"

    def advice(self) -> str:
        """What B_crit means for choosing a batch size, as the sweep's recommendation says it ("" without a fit)."""
        batches = self.table["batch"]
        advice = {"beyond": f"up to batch {int(batches.max())} a bigger batch still cut the steps about in proportion "
                            "(B_crit is beyond the batch sizes tried)",
                  "below": f"from batch {int(batches.min())} up a bigger batch bought little speed for more data "
                           "(B_crit is below the batch sizes tried)",
                  "": f"beyond B ≈ {self.b_crit:,.0f} a bigger batch buys little speed for more data"}
        return advice.get(self.bound(), "")

    def agreement(self) -> str:
        """B_crit beside B_simple, in one sentence."""
        if not math.isfinite(self.b_simple):
            return "no noise scale was measured (noise_scale_every = 0?)"
        if self.bound():
            return f"B_simple ≈ {self.b_simple:,.0f} at the target; {self.describe()}"
        ratio = self.b_crit / self.b_simple
        return (f"B_crit ≈ {self.b_crit:,.0f} against B_simple ≈ {self.b_simple:,.0f} at the target: a factor "
                f"{ratio:.2g} apart " + ("(the same order, as the paper found)" if 1 / 4 <= ratio <= 4 else
                                          "(further apart than the paper's small factor)"))

    def report(self) -> str:
        lines = [f"steps and examples to validation accuracy {self.target:.3f} (per batch size the fewest steps over "
                 "its rates and budgets, mean over seeds):"]
        for row in self.table.itertuples():
            noise = f", B_simple there {row.noise_scale:,.0f}" if np.isfinite(row.noise_scale) else ""
            lines.append(f"  batch {row.batch:>5}: {row.steps:8,.0f} steps, {row.examples:10,.0f} examples "
                         f"(lr {row.lr:.3g}, {row.budget}){noise}")
        fitted = f"S_min ≈ {self.s_min:,.0f} steps, E_min ≈ {self.e_min:,.0f} examples; " if not self.bound() else ""
        lines.append(f"trade-off (S/S_min − 1)(E/E_min − 1) = 1: {fitted}{self.describe()}")
        lines.append(self.agreement())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain numbers (NaN and inf are written as null by core.lr_scaling.json_text; ``b_crit_bound`` says which
        side of the batch sizes tried an unbounded B_crit lies on)."""
        return {"target": self.target, "s_min": self.s_min, "e_min": self.e_min, "b_crit": self.b_crit,
                "b_crit_bound": self.bound(), "b_crit_ci95": list(self.ci), "b_simple": self.b_simple,
                "agreement": self.agreement(), "table": self.table.to_dict("records")}


def analyze_critical_batch(curves: pd.DataFrame, *, target: float = 0.0, n_boot: int = 500, seed: int = 0,
                           plot: bool = True) -> CriticalBatch:
    """Steps-to-target per batch size from ``curves`` (curves.csv rows), the trade-off fit and its bootstrap.

    Args:
        target: Validation accuracy to reach; 0 picks :func:`auto_target`.
    """
    curves = curves[np.isfinite(curves["val_acc"])]
    if curves.empty:
        raise ValueError("no learning-curve points to read steps-to-target from (curve_points = 0?)")
    target = target or auto_target(curves)
    per_curve = crossings(curves, target)
    table = steps_to_target(per_curve)
    s_min, e_min, b_crit = fit_tradeoff(table["batch"], table["steps"])
    rng = np.random.default_rng(seed)
    groups = [(int(batch), part["steps"].to_numpy()) for (batch, _, _), part in per_curve.groupby(_GROUP)]
    batches = np.array(sorted({batch for batch, _ in groups}))
    fits = []
    for _ in range(n_boot):  # each curve group's seeds redrawn; per batch size the best group's mean steps
        fewest = dict.fromkeys(batches.tolist(), math.inf)
        for batch, steps in groups:
            fewest[batch] = min(fewest[batch], float(steps[rng.integers(0, len(steps), len(steps))].mean()))
        fits.append(fit_tradeoff(batches, np.array([fewest[b] for b in batches]))[2])
    samples = np.asarray([v for v in fits if not math.isnan(v)])
    ci = percentile_interval(samples)
    result = CriticalBatch(target=target, table=table, s_min=s_min, e_min=e_min, b_crit=b_crit, ci=ci,
                           n_boot=len(samples), curves=curves)
    if plot:
        result.figure = plot_critical_batch(result)
    return result


def plot_critical_batch(result: CriticalBatch, path: str | Path | None = None) -> plt.Figure:
    """Left: the gradient noise scale over training (examples seen) on each batch size's best curve, the batch sizes
    as dotted lines. Right: steps against examples to the target per batch size, the fitted trade-off, B_crit."""
    fig, (ax_noise, ax_front) = plt.subplots(1, 2, figsize=(13, 5))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(1, len(result.table))))
    for colour, row in zip(colours, result.table.itertuples(), strict=False):
        part = result.curves[(result.curves["batch"] == row.batch) & np.isclose(result.curves["lr"], row.lr)
                             & (result.curves["budget"] == row.budget)]
        mean = part.groupby("examples")["noise_scale"].mean()
        if mean.notna().any():
            ax_noise.plot(mean.index, mean.to_numpy(), "o-", color=colour, ms=3, label=f"batch {row.batch}")
        ax_noise.axhline(row.batch, color=colour, ls=":", lw=1)
    ax_noise.set(xscale="log", yscale="log", xlabel="training examples seen", ylabel="B_simple (examples)",
                 title="gradient noise scale over training (dotted: the batch sizes)")
    ax_noise.legend(fontsize=7)

    finite = result.table[np.isfinite(result.table["steps"])]
    ax_front.plot(finite["examples"], finite["steps"], "o", color="black")
    for row in finite.itertuples():
        ax_front.annotate(f"B={row.batch}", (row.examples, row.steps), textcoords="offset points", xytext=(5, 5),
                          fontsize=8)
    if math.isfinite(result.b_crit) and len(finite):
        b = np.geomspace(finite["batch"].min() / 4, finite["batch"].max() * 4, 200)
        ax_front.plot(result.e_min * (1 + b / result.b_crit), result.s_min * (1 + result.b_crit / b), "-",
                      color="tab:red", label="(S/S_min − 1)(E/E_min − 1) = 1")
        ax_front.plot([2 * result.e_min], [2 * result.s_min], "*", ms=14, color="tab:red",
                      label=f"B_crit ≈ {result.b_crit:,.0f}")
    ax_front.set(xscale="log", yscale="log", xlabel="examples to target", ylabel="optimizer steps to target",
                 title=f"steps vs examples to validation accuracy {result.target:.3f}")
    ax_front.legend(fontsize=8)
    for ax in (ax_noise, ax_front):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig

