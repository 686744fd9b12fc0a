"""Model groups for the ensemble: each is one training run (k fold models of one architecture/seed), given as a folder
holding ``manifest.json`` + ``oof.csv`` and either ``test_probs.npz`` (written by the inference notebook) or the fold
weights (then the test set is predicted here, offline, as the manifest says).

Groups can only be fused honestly when their OOF rows line up: the same train.csv, the same rows and the same fold
of every row. Otherwise a row's "out-of-fold" prediction in one group came from a model that trained on it in another,
and the learned weights would reward the leak. ``check_compatible`` refuses such a mix.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .manifest import MANIFEST_NAME, inference_choice, sha256_file
from .oof import CHANCE_ACC, PROB_COLUMNS, local_cv, read_oof
from .paths import walk_folders
from .run_state import finished_manifest

log = logging.getLogger(__name__)


class EnsembleError(ValueError):
    """The groups cannot be fused; the message names the groups, what differs and the fix."""


@dataclasses.dataclass
class Group:
    """One model group.

    Attributes:
        name: unique short name (the folder's name, or parent/name when two folders share one).
        oof: the run's oof.csv, sorted by row_id (its probabilities are the group's OOF predictions).
        test_probs: float64 (n_test, 10), the average of the group's fold models, or None until predicted.
        test_info: test_probs.json of the inference run (weights, tta, test_sha256), or {}.
    """

    name: str
    path: Path
    manifest: dict
    oof: pd.DataFrame
    test_probs: np.ndarray | None = None
    test_info: dict = dataclasses.field(default_factory=dict)

    @property
    def oof_probs(self) -> np.ndarray:
        """float64 (N, 10) in row_id order."""
        return self.oof[PROB_COLUMNS].to_numpy(dtype=np.float64)

    @property
    def model(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def inference_choice(self) -> tuple[str, list[str]]:
        return inference_choice(self.manifest)

    @property
    def folds_sha256(self) -> str | None:
        """The sha256 of the run's folds.csv (as its manifest hashed it): runs with the same one split alike."""
        return folds_sha256(self.manifest)


def folds_sha256(manifest: dict) -> str | None:
    """The sha256 of a run's folds.csv from its manifest.json's ``files``; None for a manifest that lists none."""
    return manifest.get("files", {}).get("folds.csv")


def find_group_dirs(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Every folder under ``root`` (itself included, ``max_depth`` levels) holding manifest.json and oof.csv, sorted."""
    found = [folder for folder, files in walk_folders(root, max_depth + 1)
             if MANIFEST_NAME in files and "oof.csv" in files]
    if not found:
        raise EnsembleError(f"no model group under {root}: a group is a folder holding manifest.json and oof.csv "
                            "(a train run's output); attach two or more, or set groups to a comma-separated list")
    return sorted(found)


def resolve_group_dirs(groups: str | Sequence[str | Path], groups_dir: str | Path) -> list[Path]:
    """``groups`` (comma-separated folders or a list) when given, else every group found under ``groups_dir``."""
    listed = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else [str(g) for g in groups]
    listed = [g for g in listed if g]
    return [Path(g) for g in listed] if listed else find_group_dirs(groups_dir)


def load_group(path: str | Path, name: str | None = None) -> Group:
    """Read one group's manifest, its hash-checked oof.csv and, when present, test_probs.npz (+ test_probs.json).

    Raises:
        RunStateError: (a ManifestError) the run is not finished; the message is its one description (core.run_state).
    """
    path = Path(path)
    manifest = finished_manifest(path)
    oof = read_oof(path / "oof.csv").sort_values("row_id").reset_index(drop=True)
    group = Group(name=name or path.name, path=path, manifest=manifest, oof=oof)
    if (path / "test_probs.npz").is_file():
        with np.load(path / "test_probs.npz") as npz:
            group.test_probs = np.asarray(npz["mean"], dtype=np.float64)
        info_path = path / "test_probs.json"
        group.test_info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        _check_test_provenance(group)
    return group


def load_groups(paths: Sequence[str | Path]) -> list[Group]:
    """Load every group, with unique names, and check that they can be fused (``check_compatible``)."""
    folders = [Path(p) for p in paths]
    names = [p.name for p in folders]
    names = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in folders]
    groups = [load_group(path, name) for path, name in zip(folders, names, strict=True)]
    check_compatible(groups)
    return groups


def check_compatible(groups: Sequence[Group]) -> None:
    """Refuse unless there are ≥ 2 groups with the same train.csv, OOF rows, labels and fold of every row.

    Raises:
        EnsembleError: naming the two groups and what differs.
    """
    if len(groups) < 2:
        raise EnsembleError(f"{len(groups)} model group found ({', '.join(g.name for g in groups)}): fusing needs "
                            "at least two training runs on the same folds")
    for group in groups:
        accuracy = local_cv(group.oof)
        if not accuracy > CHANCE_ACC:
            raise EnsembleError(f"group {group.name!r}: its OOF accuracy is {accuracy:.4f}, at chance level (at most "
                                f"{CHANCE_ACC}): that run did not learn (diverged, or trained far too briefly); leave "
                                "it out, or retrain it")
    first = groups[0]
    fix = ("train every group on the same train.csv with the same folds.csv (set folds_path to the first run's "
           "folds.csv; on Kaggle attach the first run's output to the next train notebook)")
    for other in groups[1:]:
        pair = f"groups {first.name!r} and {other.name!r}"
        if first.manifest.get("train_sha256") != other.manifest.get("train_sha256"):
            raise EnsembleError(f"{pair} were trained on different train.csv files (train_sha256 differs): {fix}")
        if not np.array_equal(first.oof["row_id"].to_numpy(), other.oof["row_id"].to_numpy()):
            raise EnsembleError(f"{pair} predicted different OOF rows ({len(first.oof)} vs {len(other.oof)}; "
                                f"folds_to_run must cover every fold in both): {fix}")
        if not np.array_equal(first.oof["label"].to_numpy(), other.oof["label"].to_numpy()):
            raise EnsembleError(f"{pair} disagree on the labels of the same rows: {fix}")
        moved = int((first.oof["fold"].to_numpy() != other.oof["fold"].to_numpy()).sum())
        if moved:
            raise EnsembleError(f"{pair} used different folds ({moved} rows sit in another fold): their OOF rows do "
                                f"not line up, so fused weights would be learned on leaked rows; {fix}")
    known = [(g, g.test_probs) for g in groups if g.test_probs is not None]
    shapes = {probs.shape for _, probs in known}
    if len(shapes) > 1:
        raise EnsembleError("test probabilities of different shapes: " + ", ".join(
            f"{g.name} {probs.shape}" for g, probs in known) + "; predict the same test.csv with every group")
    tests = {g.test_info.get("test_sha256") for g, _ in known} - {None}
    if len(tests) > 1:
        raise EnsembleError("the groups' test_probs.npz were predicted on different test.csv files: rerun inference")


def _check_test_provenance(group: Group) -> None:
    info = group.test_info
    if not info:
        log.warning("%s: test_probs.npz has no test_probs.json beside it; cannot check it was made by this run with "
                    "the weights and TTA its oof.csv describes", group.name)
        return
    if info.get("manifest_sha256") not in (None, sha256_file(group.path / MANIFEST_NAME)):
        raise EnsembleError(f"{group.name}: test_probs.npz was made from another manifest.json (another training "
                            "run); run the inference notebook on this group's weights again")
    weights, tta = group.inference_choice
    if (info.get("weights"), list(info.get("tta", []))) != (weights, tta):
        log.warning("%s: test probabilities use weights=%s tta=%s but oof.csv describes weights=%s tta=%s; the "
                    "fused weights are learned on the latter", group.name, info.get("weights"),
                    info.get("tta") or "none", weights, tta or "none")
