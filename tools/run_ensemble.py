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

from core.run_state import FINISHED, run_state
from tools.journal import RunNotFound, run_folder
from tools.run_folder import RunFolderError, claim_run
from tools.run_local import run_name_argument
from tools.run_notebook import add_runner_arguments, run_built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN", type=run_name_argument,
                        help="two or more run names under --runs-dir")
    parser.add_argument("--name", default=None, type=run_name_argument,
                        help="output run name (default: ensemble-<run>-<run>…)")
    parser.add_argument("--restart", action="store_true", help="an ensemble of that name over other runs is moved "
                                                                "aside to runs/<name>.replaced-<time>/, not refused")
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
        print(f"make ensemble: {err}; check the name, or leave it out of RUNS", file=sys.stderr)
        return 1
    refused = [f"make ensemble: {run}: {state.describe()}"
               for run, state in zip(args.runs, map(run_state, groups), strict=True)
               if state.kind != FINISHED]  # before the notebook starts; its load_group would say the same
    if refused:
        print("\n".join(refused), file=sys.stderr)
        return 1
    name = args.name or "ensemble-" + "-".join(args.runs)
    try:  # the output folder is this ensemble's alone: locked, and refused when it fused other runs
        request = {"kind": "make ensemble", "settings": {"runs": " ".join(args.runs)}}
        with claim_run(runs_dir, name, request=request, restart=args.restart, command="make ensemble") as out_dir:
            return _fuse(args, groups, out_dir)
    except RunFolderError as err:
        print(f"make ensemble failed: {err}", file=sys.stderr)
        return 2


def _fuse(args: argparse.Namespace, groups: list[Path], out_dir: Path) -> int:
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
