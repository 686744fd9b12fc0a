"""Fuse model groups with learned softmax weights, and say honestly whether it beats a plain average.

The seed's model: ``nn.Parameter(torch.randn(n_models))``, softmax over models, (batch, n_models, classes) → weighted
sum (batch, classes), trained by back-propagation on OOF log-loss (full-batch Adam, small learning rate, seeded).

What "a model" is here: on OOF rows every row has exactly one prediction per group — from the one fold model that
never trained on it — so the weights are one per group (at test time a group's prediction is its fold average).
E.g. tf_efficientnet_b0.ns_jft_in1k and convnext_atto.d2_in1k × 5 folds = 10 fold models = 2 weights.

Honesty: weights learned on the same OOF rows they are scored on report an optimistic CV. The honest number is
nested CV: learn the weights on the OOF rows of k − 1 folds, score the held-out fold, repeat, concatenate. The
in-sample number is shown too, marked optimistic. The final weights for the submission are then fit on all OOF rows.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .atomic import write_text_atomic
from .config import ConfigError, is_whole, settings_from_mapping
from .data import find_competition_file, read_test
from .device import resolve_device
from .groups import Group, check_compatible, load_groups
from .inference import predict_folds
from .stats import accuracy, mcnemar_exact
from .submission import make_submission, write_submission

log = logging.getLogger(__name__)
FUSE_CHOICES = ("auto", "learned", "mean")


@dataclasses.dataclass
class EnsembleSettings:
    """The ensemble notebook's settings; its parameters cell is rendered from these fields and defaults."""

    # ---- compute
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 1024  # test images per forward pass (for a group given as weights)
    # ---- the fusion model: full-batch Adam on OOF log-loss
    steps: int = 300
    learning_rate: float = 0.05
    seed: int = 42
    # ---- what the submission uses: "learned" weights (fit on all OOF rows), the plain "mean", or "auto"
    fuse: str = "auto"  # auto: the learned weights only when their nested-CV accuracy beats the plain mean's

    @classmethod
    def from_mapping(cls, values: dict) -> EnsembleSettings:
        return settings_from_mapping(cls, values)

    def validate(self) -> None:
        """Before any work: ConfigError naming the parameter."""
        default = EnsembleSettings
        checks = [(is_whole(self.steps), f"steps = {self.steps!r}: must be a positive integer (Adam steps; "
                                         f"{default.steps} is the default)"),
                  (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                   and self.learning_rate > 0, f"learning_rate = {self.learning_rate!r}: must be a positive number "
                                               f"({default.learning_rate} is the default)"),
                  (is_whole(self.batch_size), f"batch_size = {self.batch_size!r}: must be a positive integer"),
                  (is_whole(self.seed, minimum=0), f"seed = {self.seed!r}: use a non-negative integer"),
                  (self.fuse in FUSE_CHOICES, f"fuse = {self.fuse!r}: use one of {FUSE_CHOICES}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


FitFn = Callable[..., np.ndarray]  # (probs (n, M, C), labels (n,), **kwargs) → weights (M,)


class SoftmaxWeightedEnsemble(nn.Module):
    """Learnable convex combination of model probabilities.

    Args:
        n_models: M, the number of models (groups) fused.
        seed: seeds the ``torch.randn`` initialisation, so a fit is reproducible.
    """

    def __init__(self, n_models: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weights = nn.Parameter(torch.randn(n_models, generator=generator))

    def model_weights(self) -> torch.Tensor:
        """(M,) softmax of the raw parameters: non-negative, summing to 1."""
        return torch.softmax(self.weights, dim=0)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """(B, M, C) per-model probabilities → (B, C) weighted sum."""
        return torch.einsum("m,bmc->bc", self.model_weights(), probs)


def blend(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, M, C) probabilities, (M,) weights summing to 1 → (N, C)."""
    return np.einsum("m,nmc->nc", np.asarray(weights, dtype=np.float64), probs)


def log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class; (N, C), (N,)."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], eps, None)).mean())


def fit_weights(probs: np.ndarray, labels: np.ndarray, *, steps: int = EnsembleSettings.steps,
                lr: float = EnsembleSettings.learning_rate,
                seed: int = 0) -> np.ndarray:
    """Fit a ``SoftmaxWeightedEnsemble`` on OOF rows by full-batch Adam on the log-loss of the mixture.

    Args:
        probs: (n, M, C) each model's probabilities on the same n rows.
        labels: (n,) true classes.

    Returns:
        float64 (M,) the learned model weights (softmax of the parameters).
    """
    assert probs.ndim == 3 and len(probs) == len(labels), (probs.shape, labels.shape)
    x = torch.as_tensor(probs, dtype=torch.float32)
    y = torch.tensor(np.asarray(labels), dtype=torch.long)  # a copy: pandas hands out read-only arrays
    model = SoftmaxWeightedEnsemble(probs.shape[1], seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = -torch.log(model(x)[torch.arange(len(y)), y].clamp_min(1e-12)).mean()
        loss.backward()
        optimizer.step()
    return model.model_weights().detach().double().numpy()


@dataclasses.dataclass
class NestedCV:
    """``probs`` (N, C): each row blended with weights learned without its fold; ``fold_weights``: fold → (M,)."""

    probs: np.ndarray
    fold_weights: dict[int, np.ndarray]


def nested_cv(probs: np.ndarray, labels: np.ndarray, folds: np.ndarray, *, fit: FitFn = fit_weights,
              **fit_kwargs) -> NestedCV:
    """Learn weights on the rows of the other folds, blend the held-out fold with them, for every fold.

    Args:
        probs: (N, M, C); labels: (N,); folds: (N,) the OOF fold of every row (the folds the models were trained on).
        fit: the weight learner, called as ``fit(probs[train], labels[train], **fit_kwargs)``; it never receives a
            row of the fold it is evaluated on.
    """
    out = np.zeros((len(probs), probs.shape[2]), dtype=np.float64)
    fold_weights = {}
    for fold in np.unique(folds):
        held_out = folds == fold
        weights = fit(probs[~held_out], labels[~held_out], **fit_kwargs)
        out[held_out] = blend(probs[held_out], weights)
        fold_weights[int(fold)] = np.asarray(weights, dtype=np.float64)
    return NestedCV(probs=out, fold_weights=fold_weights)


@dataclasses.dataclass
class Comparison:
    """The comparison table (one row per option) and the weights it found."""

    table: pd.DataFrame
    weights: np.ndarray  # (M,) fit on all OOF rows: used for the submission
    nested: NestedCV
    figure: object = None  # matplotlib Figure of the table (compare_groups draws it)
    fit: dict = dataclasses.field(default_factory=dict)  # how the weights were fit (recorded in ensemble.json)

    def _repr_html_(self) -> str:
        return self.table.drop(columns=["kind"]).to_html(index=False, float_format=lambda v: f"{v:.5f}")

    def __repr__(self) -> str:  # the saved notebook's plain-text copy: the table, not the arrays and the figure
        return self.table.drop(columns=["kind", "note"]).to_string(index=False, float_format=lambda v: f"{v:.5f}")


def compare(names: Sequence[str], probs: np.ndarray, labels: np.ndarray, folds: np.ndarray, *,
            descriptions: Sequence[str] | None = None, **fit_kwargs) -> Comparison:
    """Score every option on the same OOF rows: each group, the plain mean, learned weights nested and in-sample.

    Args:
        names: M group names; probs: (N, M, C) each group's OOF probabilities; labels, folds: (N,).
        descriptions: M notes for the group rows (e.g. "smallcnn, 5 fold models, each on its own OOF rows").
    """
    n_models = probs.shape[1]
    descriptions = list(descriptions or [""] * n_models)
    nested = nested_cv(probs, labels, folds, **fit_kwargs)
    weights = fit_weights(probs, labels, **fit_kwargs)
    options: list[tuple[str, str, np.ndarray, str]] = []
    for m, name in enumerate(names):
        per_fold = [accuracy(probs[folds == f, m], labels[folds == f]) for f in np.unique(folds)]
        note = f"{descriptions[m]}; fold models {min(per_fold):.4f}–{max(per_fold):.4f}".strip("; ")
        options.append((name, "one group (its k fold models, each on its own OOF rows)", probs[:, m], note))
    options.append(("plain mean", f"average of the {n_models} groups", probs.mean(axis=1), "weights all equal"))
    nested_w = np.mean(list(nested.fold_weights.values()), axis=0)
    options.append(("learned, nested CV", "learned weights, scored on folds they never saw (honest)", nested.probs,
                    "mean weights " + _format_weights(names, nested_w)))
    options.append(("learned, in-sample", "learned and scored on the same rows (OPTIMISTIC)", blend(probs, weights),
                    "weights " + _format_weights(names, weights)))

    correct = {name: p.argmax(1) == labels for name, _, p, _ in options}
    best_group = max(names, key=lambda n: correct[n].mean())
    rows = []
    for name, kind, p, note in options:
        rows.append({"option": name, "kind": kind, "accuracy": accuracy(p, labels), "log_loss": log_loss(p, labels),
                     "p_vs_best_group": mcnemar_exact(correct[best_group], correct[name]).p_value,
                     "p_vs_plain_mean": mcnemar_exact(correct["plain mean"], correct[name]).p_value,
                     "note": note})
    return Comparison(table=pd.DataFrame(rows), weights=weights, nested=nested)


def _format_weights(names: Sequence[str], weights: np.ndarray) -> str:
    return ", ".join(f"{n} {w:.3f}" for n, w in zip(names, weights, strict=True))


def plot_comparison(table: pd.DataFrame, path: str | Path | None = None, title: str = "") -> plt.Figure:
    """One horizontal bar per option (OOF accuracy); the optimistic in-sample bar is hatched and labelled."""
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(table) + 1.5))
    colors = {"learned, nested CV": "tab:green", "learned, in-sample": "lightgray", "plain mean": "tab:blue"}
    y = np.arange(len(table))[::-1]
    for yi, row in zip(y, table.itertuples(), strict=True):
        optimistic = row.option == "learned, in-sample"
        ax.barh(yi, row.accuracy, color=colors.get(row.option, "tab:orange"), hatch="//" if optimistic else None,
                edgecolor="black", linewidth=0.5)
        ax.text(row.accuracy, yi, f" {row.accuracy:.5f}" + ("  (optimistic)" if optimistic else ""), va="center",
                fontsize=8)
    ax.set_yticks(y, [row.option for row in table.itertuples()])
    low, high = table["accuracy"].min(), table["accuracy"].max()
    margin = max(0.002, (high - low) * 0.6)
    ax.set_xlim(max(0.0, low - margin), min(1.0, high + margin) + margin)
    ax.set(xlabel="OOF accuracy (same rows for every option)", title=title or "ensemble options on OOF rows")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


@dataclasses.dataclass
class EnsembleRun:
    groups: list[Group]
    comparison: Comparison
    submission_path: Path
    verdict: str  # the honest comparison in words, and what was submitted

    @property
    def table(self) -> pd.DataFrame:
        return self.comparison.table

    @property
    def figure(self):
        """The comparison chart (matplotlib Figure)."""
        return self.comparison.figure

    @property
    def summary(self) -> str:
        """The comparison table as text, then the verdict (what a script prints)."""
        return f"{self.comparison!r}\n\n{self.verdict}"


def load_ensemble_groups(group_dirs: Sequence[str | Path], *, data_dir: str | Path | None = None,
                         device: str = EnsembleSettings.device,
                         batch_size: int = EnsembleSettings.batch_size) -> list[Group]:
    """Step 1: load the groups, check they were trained on the same folds.csv and train.csv, and give each its test
    probabilities: its ``test_probs.npz``, else predicted here from its weights (as its manifest says: best/SWA,
    TTA), which needs ``data_dir`` (the competition)."""
    EnsembleSettings(device=device, batch_size=batch_size).validate()
    resolve_device(device)
    groups = load_groups(group_dirs)
    _predict_missing_test_probs(groups, data_dir=data_dir, device=device, batch_size=batch_size)
    return groups


def groups_table(groups: Sequence[Group]) -> pd.DataFrame:
    """One row per group: its model, fold models, local CV, and the weights and TTA views its predictions use."""
    return pd.DataFrame([{"group": g.name, "model": g.model, "fold models": len(g.manifest["folds"]),
                          "local CV": g.manifest.get("local_cv"), "weights": g.inference_choice[0],
                          "TTA views": len(g.inference_choice[1])} for g in groups]).set_index("group")


def compare_groups(groups: Sequence[Group], *, output_dir: str | Path, steps: int = EnsembleSettings.steps,
                   lr: float = EnsembleSettings.learning_rate, seed: int = EnsembleSettings.seed) -> Comparison:
    """Step 2: every fusion option scored on the same OOF rows (``compare``); writes ``ensemble_table.csv`` and
    ``ensemble_comparison.png``. The comparison's ``figure`` is the chart."""
    EnsembleSettings(steps=steps, learning_rate=lr, seed=seed).validate()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = [g.name for g in groups]
    first = groups[0].oof
    labels, folds = first["label"].to_numpy(), first["fold"].to_numpy()
    probs = np.stack([g.oof_probs for g in groups], axis=1)  # (N, M, 10)
    descriptions = [f"{g.model}, {len(g.manifest['folds'])} fold models, weights={g.inference_choice[0]}, "
                    f"tta={len(g.inference_choice[1])} views" for g in groups]
    log.info("fusing %d groups on %d OOF rows (%d folds): %s", len(groups), len(labels), len(np.unique(folds)),
             ", ".join(names))
    comparison = compare(names, probs, labels, folds, descriptions=descriptions, steps=steps, lr=lr, seed=seed)
    write_text_atomic(output_dir / "ensemble_table.csv", comparison.table.to_csv(index=False, float_format="%.6g"))
    comparison.figure = plot_comparison(comparison.table, output_dir / "ensemble_comparison.png",
                                        title=f"{len(groups)} groups, {len(labels)} OOF rows")
    comparison.fit = {"steps": steps, "lr": lr, "seed": seed, "optimizer": "Adam, full batch, OOF log-loss"}
    return comparison


def submit_ensemble(groups: Sequence[Group], comparison: Comparison, *, output_dir: str | Path,
                    fuse: str = EnsembleSettings.fuse) -> EnsembleRun:
    """Step 3: fuse the groups' test probabilities with the learned weights or the plain mean (``fuse``, see
    ``run_ensemble``); writes ``test_probs.npz``, ``submission.csv`` and ``ensemble.json`` (groups, weights, scores)."""
    EnsembleSettings(fuse=fuse).validate()
    output_dir = Path(output_dir)
    table, names = comparison.table, [g.name for g in groups]
    if fuse == "auto":
        scores = table.set_index("option")["accuracy"]
        fuse = "learned" if scores["learned, nested CV"] > scores["plain mean"] else "mean"
    submit_weights = comparison.weights if fuse == "learned" else np.full(len(groups), 1.0 / len(groups))
    test_probs = blend(np.stack([_test_probs(g) for g in groups], axis=1), submit_weights)
    np.savez(output_dir / "test_probs.npz", mean=test_probs)
    submission = write_submission(output_dir / "submission.csv", make_submission(test_probs), n_test=len(test_probs))
    report = {"groups": [{"name": g.name, "path": str(g.path), "model": g.model, "local_cv": g.manifest.get("local_cv"),
                          "learned_weight": float(w), "submitted_weight": float(s)}
                         for g, w, s in zip(groups, comparison.weights, submit_weights, strict=True)], "fuse": fuse,
              "train_sha256": groups[0].manifest.get("train_sha256"), "oof_rows": len(groups[0].oof),
              "fit": comparison.fit,
              "nested_fold_weights": {str(f): w.tolist() for f, w in comparison.nested.fold_weights.items()},
              "table": json.loads(table.to_json(orient="records"))}
    write_text_atomic(output_dir / "ensemble.json", json.dumps(report, indent=2) + "\n")
    return EnsembleRun(groups=list(groups), comparison=comparison, submission_path=submission,
                       verdict=_verdict(table, names, submit_weights, submission, fuse))


def run_ensemble(group_dirs: Sequence[str | Path], *, output_dir: str | Path, data_dir: str | Path | None = None,
                 device: str = EnsembleSettings.device, batch_size: int = EnsembleSettings.batch_size,
                 steps: int = EnsembleSettings.steps, lr: float = EnsembleSettings.learning_rate,
                 seed: int = EnsembleSettings.seed, fuse: str = EnsembleSettings.fuse) -> EnsembleRun:
    """The ensemble notebook's steps in one call: load and check the groups, compare the fusion options on OOF, fit
    the weights on all OOF rows, submit.

    ``fuse``: what the submission uses. "learned": the weights fit on all OOF rows; "mean": equal weights; "auto":
    the learned weights only when their nested-CV accuracy beats the plain mean's, else the mean. (The weights are
    fit on log-loss, not accuracy: with label-smoothed, under-confident models they can follow calibration rather
    than accuracy, which is what the nested CV exposes.)

    Writes ``ensemble_table.csv``, ``ensemble_comparison.png``, ``ensemble.json``, ``test_probs.npz`` and
    ``submission.csv`` to ``output_dir``.
    """
    EnsembleSettings(device=device, batch_size=batch_size, steps=steps, learning_rate=lr, seed=seed,
                     fuse=fuse).validate()
    groups = load_ensemble_groups(group_dirs, data_dir=data_dir, device=device, batch_size=batch_size)
    comparison = compare_groups(groups, output_dir=output_dir, steps=steps, lr=lr, seed=seed)
    return submit_ensemble(groups, comparison, output_dir=output_dir, fuse=fuse)


def _test_probs(group: Group) -> np.ndarray:
    assert group.test_probs is not None, f"{group.name}: no test probabilities (load_ensemble_groups predicts them)"
    return group.test_probs


def _predict_missing_test_probs(groups: Sequence[Group], *, data_dir: str | Path | None, device: str,
                                batch_size: int) -> None:
    missing = [g for g in groups if g.test_probs is None]
    if not missing:
        return
    if data_dir is None:
        raise FileNotFoundError(f"groups {[g.name for g in missing]} have no test_probs.npz: set data_dir to the "
                                "competition folder so that their weights predict test.csv here")
    test = read_test(find_competition_file(data_dir, "test"))
    images = torch.from_numpy(test.images).to(resolve_device(device))
    for group in missing:
        weights, views = group.inference_choice
        log.info("%s: predicting test.csv from its weights (%s, TTA: %s)", group.name, weights, views or "none")
        per_fold = predict_folds(group.path, group.manifest, images, weights=weights, views=views,
                                 batch_size=batch_size)
        group.test_probs = np.mean(list(per_fold.values()), axis=0)
        group.test_info = {"weights": weights, "tta": views, "test_sha256": test.fingerprint}
    check_compatible(groups)  # the test predictions must agree in shape and source too


def _verdict(table: pd.DataFrame, names: Sequence[str], weights: np.ndarray, submission: Path, fuse: str) -> str:
    get = table.set_index("option")
    nested, mean = get.loc["learned, nested CV"], get.loc["plain mean"]
    if nested["p_vs_plain_mean"] >= 0.05:
        verdict = "no significant difference"
    else:
        verdict = "learned weights are better" if nested["accuracy"] > mean["accuracy"] else "the plain mean is better"
    lines = ["Each group's row is its k fold models, each scored only on its own OOF rows (= the group's OOF).",
             f"Honest comparison: learned weights (nested CV) {nested['accuracy']:.5f} vs plain mean "
             f"{mean['accuracy']:.5f}, McNemar exact p = {nested['p_vs_plain_mean']:.4g}: " + verdict + ".",
             "The in-sample row is optimistic (weights learned on the rows they are scored on).",
             f"submission ({'weights fit on all OOF rows' if fuse == 'learned' else 'plain mean'}): "
             f"{_format_weights(names, weights)} → {submission}"]
    return "\n".join(lines)
