"""`make compare A=<run> B=<run>`: is B really better than A? Only on the same folds file.

    python -m tools.compare --a cpu-recipe --b cpu-recipe-s7 [--runs-dir runs] [--data data/digit-recognizer]

Runs are folders of runs/ (or weights/ for the Kaggle train output) holding manifest.json and oof.csv. Prints
McNemar's exact test on the OOF rows both predicted, the rows only A / only B gets right, the accuracy per digit,
and the verdict in one line; writes runs/compare/<A>-vs-<B>/ (compare.json, per_class.csv and flips.png, the digits
that flipped, drawn from DATA's train.csv when it is the one the runs trained on).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from core.atomic import write_text_atomic  # noqa: E402
from core.compare import CompareError, compare_runs  # noqa: E402
from core.data import DataError, find_competition_file, read_train  # noqa: E402
from core.groups import EnsembleError, load_group  # noqa: E402
from core.manifest import ManifestError  # noqa: E402


def run_folder(name: str, runs_dir: Path) -> Path:
    """runs/<name>, or weights/ for "weights", or ``name`` itself when it is a folder path."""
    for candidate in (runs_dir / name, Path(name)):
        if (candidate / "manifest.json").is_file():
            return candidate
    known = sorted(p.name for p in runs_dir.iterdir() if (p / "manifest.json").is_file()) if runs_dir.is_dir() else []
    raise CompareError(f"run {name!r}: no manifest.json in {runs_dir / name} (a finished run's folder); finished runs "
                       f"in {runs_dir}/: {', '.join(known) or 'none'} — make runs lists them")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the reference run")
    parser.add_argument("--b", required=True, help="the challenger run")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--data", type=Path, default=Path("data/digit-recognizer"),
                        help="the runs' competition folder (for the grid of flipped digits)")
    args = parser.parse_args(argv)
    try:
        a, b = (load_group(run_folder(name, args.runs_dir), name) for name in (args.a, args.b))
        comparison = compare_runs(a, b)
    except (EnsembleError, ManifestError, ValueError) as err:
        print(f"make compare: {err}", file=sys.stderr)
        return 1
    out_dir = args.runs_dir / "compare" / f"{Path(args.a).name}-vs-{Path(args.b).name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    test = comparison.test
    per_class = comparison.per_class()
    print(f"A = {a.name} ({a.model}), B = {b.name} ({b.model}); same folds file {a.folds_sha256[:12]}")
    print(test.describe(a.name, b.name))
    with pd.option_context("display.width", 200):
        print(per_class.to_string(index=False, float_format=lambda v: f"{v:+.4f}" if abs(v) < 0.5 else f"{v:.4f}"))
    write_text_atomic(out_dir / "per_class.csv", per_class.to_csv(index=False, float_format="%.6g"))
    figure = None
    try:
        train = read_train(find_competition_file(args.data, "train"))
        if train.fingerprint != a.manifest.get("train_sha256"):
            print(f"grid of flipped digits skipped: {args.data}'s train.csv is not the one these runs trained on "
                  f"(sha256 {train.fingerprint[:12]} vs {str(a.manifest.get('train_sha256'))[:12]}); pass "
                  "DATA=<their competition folder>")
        else:
            comparison.plot_flips(train.images, path=out_dir / "flips.png")
            figure = out_dir / "flips.png"
    except (DataError, FileNotFoundError) as err:
        print(f"grid of flipped digits skipped: {err}")
    report = {"a": a.name, "b": b.name, "folds_sha256": a.folds_sha256, "test": test.as_dict(),
              "verdict": comparison.verdict, "per_class": json.loads(per_class.to_json(orient="records"))}
    write_text_atomic(out_dir / "compare.json", json.dumps(report, indent=2) + "\n")
    print(f"files: {out_dir}/ (compare.json, per_class.csv{', flips.png' if figure else ''})")
    print(comparison.verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
