"""`make sweep`: execute the built sweep notebook locally into runs/<name>/ (resumable: finished cells are kept).

    python -m tools.run_sweep --run sweep --data data/digit-recognizer -p batch_sizes=[16,64] -p budget=steps=200

This is the very notebook `make push` sends to Kaggle. Its own defaults are the full grid for a GPU; locally the
grid and budget below (``LOCAL_DEFAULTS``: 4 batch sizes × 5 learning rates × 150 steps, about 10 minutes on two
CPU cores with the embedded data) apply unless a ``-p`` overrides them. Any parameter of the notebook works:
``batch_sizes``, ``learning_rates``, ``seeds``, ``min_lr_ratio``, ``budget``, ``sweep_fold``, ``metric``, ``n_boot``
and every training setting (``model``, ``weight_decay``, ...). Ends by printing α and where the outputs are.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tools.run_local import folds_file_for
from tools.run_notebook import NotebookFailed, parse_parameter, run_notebook

LOCAL_DEFAULTS = {"batch_sizes": [8, 16, 32, 64], "learning_rates": [3e-2, 1e-2, 3e-3, 1e-3, 3e-4], "seeds": [42],
                  "budget": "steps=150"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="sweep", help="run name: outputs go to runs/<name>/ (default: sweep)")
    parser.add_argument("--data", default="data/digit-recognizer", help="folder in Kaggle's layout")
    parser.add_argument("--build", default="build", help="folder holding the built notebooks")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a sweep-notebook parameter, e.g. -p learning_rates=[1e-3,1e-4] (repeatable)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    args = parser.parse_args(argv)

    data_dir, runs_dir = Path(args.data).resolve(), Path(args.runs).resolve()
    run_dir = runs_dir / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"data_dir": str(data_dir), "output_dir": str(run_dir),
              "folds_path": str(folds_file_for(data_dir, runs_dir)), **LOCAL_DEFAULTS}
    params.update(dict(parse_parameter(p) for p in args.param))
    notebook = Path(args.build) / "sweep" / "sweep.ipynb"
    # On a shared CPU, OpenMP threads that spin while waiting stall each other (measured here: 10-50x slower steps).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the kernel inherits this process's environment

    started = time.perf_counter()
    print(f"\n=== sweep: {notebook} → {run_dir / 'sweep.ipynb'}", flush=True)
    try:
        run_notebook(notebook, run_dir / "sweep.ipynb", cwd=run_dir, parameters=params, timeout=args.timeout)
    except (NotebookFailed, ValueError, FileNotFoundError) as err:
        print(f"\nmake sweep failed: {err}", file=sys.stderr)
        return 1
    fit = json.loads((run_dir / "fit.json").read_text())
    lo, hi = fit["ci95"]
    print(f"\nsweep {args.run} finished in {time.perf_counter() - started:.0f} s: {run_dir}")
    print(f"lr*(B) ∝ B^α: α = {fit['alpha']:.2f} (95% bootstrap CI {lo:.2f} … {hi:.2f}), budget {fit['budget']}")
    for warning in fit["warnings"]:
        print(f"warning: {warning}")
    for name in ("runs.csv", "sweep_table.txt", "fit.json", "lr_batch_heatmap.png"):
        print(f"  {run_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
