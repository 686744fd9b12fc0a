"""`make ensemble RUNS="a b"`: execute the built ensemble notebook locally on runs/a, runs/b, … → runs/<name>/.

    python -m tools.run_ensemble --runs a b [--name ensemble-a-b] [--data data/digit-recognizer] [-p steps=500]

Each run is a model group made by `make run RUN=<name>` (manifest.json, oof.csv, test_probs.npz). The groups must
share one folds.csv, which `make run` arranges per data folder. Prints the comparison table (each group, plain mean,
learned weights under nested CV, learned weights in-sample) and the path of submission.csv.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from tools.journal import RunNotFound, run_folder
from tools.run_notebook import add_runner_arguments, run_built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN",
                        help="two or more run names under --runs-dir")
    parser.add_argument("--name", default="", help="output run name (default: ensemble-<run>-<run>…)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--weights-dir", default="weights", help='the run named "weights" (the Kaggle train output)')
    add_runner_arguments(parser, kernel="ensemble", example="fuse=mean")  # --data: for groups without test_probs.npz
    args = parser.parse_args(argv)

    runs_dir = Path(args.runs_dir).resolve()
    if len(args.runs) < 2:
        print(f"make ensemble needs two or more finished runs, RUNS=\"a b\"; got {len(args.runs)}: "
              f"{' '.join(args.runs)}", file=sys.stderr)
        return 2
    try:  # "weights" is the Kaggle train output in weights/, as in make runs and make select
        groups = [run_folder(run, runs_dir, Path(args.weights_dir).resolve()).resolve() for run in args.runs]
    except RunNotFound as err:
        print(f"make ensemble: {err}; finish it with make run RUN=<name>, or leave it out of RUNS", file=sys.stderr)
        return 1
    out_dir = runs_dir / (args.name or "ensemble-" + "-".join(args.runs))
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"groups": ",".join(str(g) for g in groups), "data_dir": str(Path(args.data).resolve()),
              "output_dir": str(out_dir)}
    params.update(dict(args.param))

    started = time.perf_counter()
    code = run_built("ensemble", out_dir, params, build=args.build, timeout=args.timeout, target="make ensemble")
    if code:
        return code
    table = pd.read_csv(out_dir / "ensemble_table.csv")
    print(f"\nensemble of {', '.join(args.runs)} finished in {time.perf_counter() - started:.0f} s: {out_dir}")
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print(table.drop(columns=["kind"]).to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    print(f"figure: {out_dir / 'ensemble_comparison.png'}\nsubmission: {out_dir / 'submission.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
