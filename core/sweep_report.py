"""The sweep's answer: the law lr*(B) ∝ B^α for each budget (core.lr_scaling), the critical batch size and the noise
scale (core.critical_batch), and one recommendation a person can act on.

"At batch B use lr ≈ x (min_lr ≈ x·ratio)" takes the budget of equal epochs when the sweep ran one (the course's
question: the same data for every batch size), else the first, and its batch size with the best accuracy there.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_text_atomic
from .critical_batch import CriticalBatch, analyze_critical_batch
from .lr_scaling import SweepAnalysis, analyze_sweep, json_text
from .sweep import cell_key

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"


@dataclasses.dataclass
class SweepStudy:
    """Everything the sweep notebook shows: one :class:`SweepAnalysis` per budget (in the order run), the critical
    batch size (None without learning curves), and the min_lr / lr ratio of the grid."""

    analyses: dict[str, SweepAnalysis]
    critical: CriticalBatch | None
    min_lr_ratio: float

    def main_analysis(self) -> SweepAnalysis:
        """The equal-epochs analysis if there is one, else the first budget's."""
        return next((a for b, a in self.analyses.items() if b.startswith("epochs")), next(iter(self.analyses.values())))

    def recommendation(self) -> str:
        """The one line to act on (see the module docstring)."""
        main = self.main_analysis()
        if main.best.empty:
            return ("no batch size learned within the budget (every rate's loss blew up or its accuracy stayed at "
                    "chance): give a longer budget, or lower the learning rates if the losses were not finite")
        top = main.best.loc[main.best["val_acc_mean"].idxmax()]
        lr = float(top["lr_refined"])
        parts = [f"at batch {int(top['batch'])} use lr ≈ {lr:.2g} (min_lr ≈ {lr * self.min_lr_ratio:.2g}) "
                 f"[best accuracy of the {main.budget} budget, {top['val_acc_mean']:.4f}]"]
        laws = [f"{a.alpha_text()} at {budget}" for budget, a in self.analyses.items() if math.isfinite(a.alpha)]
        if laws:
            parts.append("the best rate grows like B^α (" + "; ".join(laws) + ")")
        if self.critical is not None and self.critical.advice():
            parts.append(self.critical.advice())
        return "; ".join(parts)

    def report(self) -> str:
        blocks = [a.report() for a in self.analyses.values()]
        if self.critical is not None:
            blocks.append(self.critical.report())
        blocks.append("RECOMMENDATION: " + self.recommendation())
        return ("\n\n" + "=" * 100 + "\n\n").join(blocks)

    def to_dict(self) -> dict:
        return {"recommendation": self.recommendation(), "min_lr_ratio": self.min_lr_ratio,
                "budgets": {budget: a.to_dict() for budget, a in self.analyses.items()},
                "critical_batch": self.critical.to_dict() if self.critical is not None else None}

    def save(self, output_dir: str | Path) -> list[Path]:
        """Each budget's files (core.lr_scaling; with one budget under the plain names, with several suffixed by
        the budget, e.g. ``fit_epochs1.json``), ``critical_batch.png``, ``sweep_report.txt`` and ``study.json``."""
        output_dir = Path(output_dir)
        several = len(self.analyses) > 1
        paths = [p for budget, a in self.analyses.items()
                 for p in a.save(output_dir, suffix=f"_{budget.replace('=', '')}" if several else "")]
        if self.critical is not None and self.critical.figure is not None:
            paths.append(output_dir / "critical_batch.png")
            self.critical.figure.savefig(paths[-1], dpi=110)
        paths += [output_dir / "sweep_report.txt", output_dir / STUDY_FILE]
        write_text_atomic(paths[-2], self.report() + "\n")
        write_text_atomic(paths[-1], json_text(self.to_dict()))
        return paths


def analyze_study(runs: pd.DataFrame, curves: pd.DataFrame | None = None, *, metric: str = "val_acc",
                  n_boot: int = 2000, target: float = 0.0, seed: int = 0, plot: bool = True) -> SweepStudy:
    """Analyse each budget of ``runs`` (runs.csv rows of one grid) and, from ``curves`` (curves.csv), the critical
    batch size; ``target`` = 0 picks the steps-to-target accuracy automatically."""
    if runs.empty:
        raise ValueError("no finished cells to analyse yet")
    analyses = {budget: analyze_sweep(runs[runs["budget"] == budget].reset_index(drop=True), metric=metric,
                                      n_boot=n_boot, seed=seed, plot=plot)
                for budget in dict.fromkeys(runs["budget"])}
    critical = None
    if curves is not None and len(curves):
        keys = {cell_key(row) for row in runs.to_dict("records")}  # the curves of these very cells
        mine = curves[np.array([cell_key(row) in keys for row in curves.to_dict("records")], dtype=bool)]
        if len(mine):
            critical = analyze_critical_batch(mine, target=target, n_boot=min(n_boot, 1000), seed=seed, plot=plot)
    ratio = float(np.median(runs["min_lr"] / runs["lr"]))
    return SweepStudy(analyses=analyses, critical=critical, min_lr_ratio=ratio)

