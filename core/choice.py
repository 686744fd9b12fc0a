"""Choose, on out-of-fold rows, how inference predicts: best-epoch or SWA weights, with or without TTA.

Each option is scored on the same OOF rows (every row by the fold model that never trained on it), and each gain
comes with McNemar's exact paired test, because on a few thousand rows a +0.1 % accuracy is often 2 rows of noise.

Options ("variants"): ``best``, ``best+tta``, ``swa``, ``swa+tta`` (SWA only when every fold has SWA weights; TTA
only when ``Config.tta`` is not "none"). Rules:

- weights: "swa" when its OOF accuracy is strictly higher than the best epoch's, else "best". The best-epoch number
  is slightly optimistic (each fold's epoch was picked on those very rows); SWA's is not.
- tta (``Config.tta``): "auto" → the default views when they raise OOF accuracy of the chosen weights, else none;
  an explicit list → that list (still tested and reported); "none" → none, not evaluated.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .inference import load_fold_model
from .oof import local_cv, oof_frame
from .predict import predict_probs
from .stats import PairedTest, mcnemar_exact
from .tta import make_views, views_to_evaluate


@dataclasses.dataclass
class FoldPredictions:
    """One fold's validation rows and the probabilities of each variant on them (float64 (n_val, 10) each)."""

    fold: int
    val_idx: np.ndarray
    probs: dict[str, np.ndarray]


@dataclasses.dataclass
class InferenceChoice:
    """The variants' OOF frames, the paired tests and the decision recorded in ``manifest["inference"]``."""

    weights: str  # "best" | "swa"
    tta: list[str]  # views inference averages ([] = none)
    tta_setting: str
    evaluated_views: list[str]
    frames: dict[str, pd.DataFrame]  # variant → OOF frame (row_id order)
    tests: dict[str, PairedTest]  # "swa_vs_best", "tta_vs_none"

    @property
    def variant(self) -> str:
        return self.weights + ("+tta" if self.tta else "")

    @property
    def oof(self) -> pd.DataFrame:
        """The OOF frame of what inference will do: this is the run's oof.csv and local CV."""
        return self.frames[self.variant]

    def accuracies(self) -> dict[str, float]:
        return {name: local_cv(frame) for name, frame in self.frames.items()}

    def manifest_entry(self) -> dict[str, Any]:
        return {"weights": self.weights, "tta": list(self.tta), "tta_setting": self.tta_setting,
                "tta_views_evaluated": list(self.evaluated_views), "oof_acc": self.accuracies(),
                "tests": {name: test.as_dict() for name, test in self.tests.items()},
                "oof_files": {name: variant_file(name) for name in self.frames}}

    def report(self) -> str:
        lines = ["inference options, OOF accuracy on the same rows:"]
        for name, acc in self.accuracies().items():
            lines.append(f"  {name:<9} {acc:.5f}" + ("   <- inference uses this" if name == self.variant else ""))
        if "swa_vs_best" in self.tests:
            lines.append("SWA vs best epoch (no TTA): " + self.tests["swa_vs_best"].describe("best", "swa"))
            lines.append("  (the best-epoch figure is optimistic: each fold's epoch was picked on these rows)")
        if "tta_vs_none" in self.tests:
            lines.append(f"TTA ({len(self.evaluated_views)} views) vs none, {self.weights} weights: "
                         + self.tests["tta_vs_none"].describe("none", "tta"))
        lines.append(f"inference: weights = {self.weights}, TTA = {', '.join(self.tta) or 'none'} "
                     f"(tta setting {self.tta_setting!r})")
        return "\n".join(lines)


def variant_file(name: str) -> str:
    """``best+tta`` → ``oof_best_tta.csv``."""
    return f"oof_{name.replace('+', '_')}.csv"


@torch.no_grad()
def fold_predictions(*, fold: int, val_idx: np.ndarray, best_probs: np.ndarray, best_path: Path,
                     swa_probs: np.ndarray | None, swa_path: Path | None, images: torch.Tensor, views: Sequence[str],
                     spec: dict[str, Any], channels_last: bool, batch_size: int) -> FoldPredictions:
    """The variants of one fold on its validation rows; the TTA ones are predicted from the saved weights.

    Args:
        best_probs, swa_probs: the trainer's (n_val, 10) probabilities without TTA.
        images: uint8 (N, 28, 28), every train row, on the device to predict on.
    """
    probs = {"best": best_probs}
    if swa_probs is not None:
        probs["swa"] = swa_probs
    if views:
        rows = images[torch.as_tensor(val_idx, dtype=torch.long, device=images.device)]
        view_fns = make_views(views)
        for kind, path in (("best", best_path), ("swa", swa_path)):
            if kind in probs:
                assert path is not None, kind  # swa_probs come with their swa_path
                model = load_fold_model(spec, path, device=images.device, channels_last=channels_last)
                probs[f"{kind}+tta"] = predict_probs(model, rows, views=view_fns, batch_size=batch_size,
                                                     channels_last=channels_last)
    return FoldPredictions(fold=fold, val_idx=np.asarray(val_idx), probs=probs)


def choose_inference(folds: Sequence[FoldPredictions], labels: np.ndarray, *, tta_setting: str) -> InferenceChoice:
    """Build each variant's OOF frame from the folds and decide (see the module docstring).

    Args:
        labels: int64 (N,) all train labels (indexed by ``val_idx``).
    """
    evaluated = views_to_evaluate(tta_setting)
    names = [n for n in ("best", "best+tta", "swa", "swa+tta") if all(n in f.probs for f in folds)]
    row_ids = np.concatenate([f.val_idx for f in folds])
    fold_ids = np.concatenate([np.full(len(f.val_idx), f.fold) for f in folds])
    frames = {name: oof_frame(row_ids=row_ids, folds=fold_ids, labels=labels[row_ids],
                              probs=np.concatenate([f.probs[name] for f in folds])) for name in names}

    def correct(name: str) -> np.ndarray:
        return (frames[name]["pred"] == frames[name]["label"]).to_numpy()

    tests, weights = {}, "best"
    if "swa" in frames:
        tests["swa_vs_best"] = mcnemar_exact(correct("best"), correct("swa"))
        weights = "swa" if local_cv(frames["swa"]) > local_cv(frames["best"]) else "best"
    tta: list[str] = []
    if f"{weights}+tta" in frames:
        tests["tta_vs_none"] = mcnemar_exact(correct(weights), correct(f"{weights}+tta"))
        helped = local_cv(frames[f"{weights}+tta"]) > local_cv(frames[weights])
        tta = list(evaluated) if (helped or tta_setting.strip() != "auto") else []
    return InferenceChoice(weights=weights, tta=tta, tta_setting=tta_setting, evaluated_views=list(evaluated),
                           frames=frames, tests=tests)
