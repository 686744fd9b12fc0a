"""`make select`: which runs to fuse — greedy forward selection on OOF probabilities under nested CV (core.selection).

    python -m tools.select_runs [--runs a b c] [--runs-dir runs] [--max-size N]

Candidates are the finished training runs (runs/*, weights/) that can be fused with the best of them: the same
train.csv, the same folds file and every OOF row (the checks of ``make ensemble``); the others are named with the
reason they were left out. Prints the choice, its expected local CV (nested) beside the best single run, and the
``make ensemble RUNS="…"`` line to run next.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from core.groups import EnsembleError, Group, check_compatible, load_group
from core.manifest import ManifestError
from core.oof import local_cv
from core.selection import select_runs


def candidate_folders(runs_dir: Path, weights_dir: Path, names: list[str]) -> list[Path]:
    """The named runs, else every folder of runs/ (and weights/) holding manifest.json and oof.csv."""
    if names:
        return [runs_dir / name if name != "weights" else weights_dir for name in names]
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    return [p for p in [weights_dir, *folders] if (p / "manifest.json").is_file() and (p / "oof.csv").is_file()]


def fusable(groups: list[Group]) -> tuple[list[Group], list[str]]:
    """The groups that can be fused with the best one (by local CV), and a line per reason others were left out."""
    ranked = sorted(groups, key=lambda g: -local_cv(g.oof))
    kept, reasons = [ranked[0]], {}
    for group in ranked[1:]:
        try:
            check_compatible([ranked[0], group])
            kept.append(group)
        except EnsembleError as err:  # "groups 'a' and 'b' <reason>: <fix>" → <reason>
            found = re.match(r"groups '.*?' and '.*?' (.*?)(?::|;|$)", str(err))
            reasons.setdefault(found.group(1) if found else str(err), []).append(group.name)
    return kept, [f"{', '.join(names)}: {reason} (checked against {ranked[0].name}, the best run)"
                  for reason, names in reasons.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="candidate runs (default: every finished run)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--max-size", type=int, default=None, help="at most this many runs in the choice")
    args = parser.parse_args(argv)
    groups, problems = [], []
    for folder in candidate_folders(args.runs_dir, args.weights_dir, args.runs):
        try:
            groups.append(load_group(folder, folder.name))
        except (ManifestError, ValueError, OSError) as err:
            problems.append(f"{folder.name}: {err}")
    if len(groups) < 2:
        print("make select needs two or more finished runs on the same folds (make runs lists them); found "
              f"{len(groups)}" + "".join(f"\n  left out {p}" for p in problems), file=sys.stderr)
        return 1
    kept, left_out = fusable(groups)
    for line in problems + left_out:
        print(f"left out {line}")
    if left_out:
        print(f"  (a run is fused only with runs of the same train.csv, folds file and OOF rows; make ensemble "
              "refuses the others too)")
    if len(kept) < 2:
        print(f"make select: only {kept[0].name} can be fused with itself: train another run on its folds "
              "(make run on the same DATA reuses them)", file=sys.stderr)
        return 1
    first = kept[0].oof
    probs = np.stack([g.oof_probs for g in kept], axis=1)
    selection = select_runs([g.name for g in kept], probs, first["label"].to_numpy(), first["fold"].to_numpy(),
                            max_size=args.max_size)
    print(selection.describe())
    if len(selection.chosen) == 1:
        print(f"no run adds to {selection.chosen[0]} on these rows: submit it alone (nothing to fuse)")
    else:
        print(f"next: {selection.make_line()}   # expected local CV {selection.nested_acc:.5f} (nested)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
