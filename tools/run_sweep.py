"""`make sweep`: execute the built sweep notebook locally into runs/<name>/ (resumable: finished cells are kept).

    python -m tools.run_sweep --run sweep --data data/digit-recognizer -p batch_sizes=[16,64] -p budget=steps=200

This is the very notebook `make push` sends to Kaggle. Its own defaults are the full grid for a GPU; locally the
grid and budgets of ``core.presets.SWEEP_LOCAL`` (fastcnn, 4 batch sizes × 4 learning rates × 2 seeds, at 1 epoch
and at 100 steps, on the embedded data) apply unless a ``-p`` overrides them. Any parameter of the notebook works:
``batch_sizes``, ``learning_rates``, ``seeds``, ``min_lr_ratio``, ``budget``, ``sweep_fold``, ``refine_rounds``,
``curve_points``, ``curve_rows``, ``metric``, ``n_boot``, ``target_acc`` and every training setting (``model``,
``weight_decay``, ...). Ends by printing α per budget, the critical batch size beside the noise scale, the
recommendation and where the outputs are.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core.presets import SWEEP_LOCAL
from core.sweep_report import STUDY_FILE
from tools.run_folder import claim_run
from tools.run_local import add_run_arguments, check_runner_parameters, run_parameters
from tools.run_notebook import run_built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, kernel="sweep", default_run="sweep", example="learning_rates=[1e-3,1e-4]")
    args = parser.parse_args(argv)
    try:  # the sweep's own resume refuses a folder made with other fixed settings (core.sweep)
        check_runner_parameters(args)
        with claim_run(args.runs, args.run, request={"kind": "make sweep"}, restart=args.restart,
                       command="make sweep") as run_dir:
            return _sweep(args, run_dir)
    except ValueError as err:
        print(f"make sweep failed: {err}", file=sys.stderr)
        return 2


def _sweep(args: argparse.Namespace, run_dir: Path) -> int:
    params = {**run_parameters(args, run_dir), **SWEEP_LOCAL, **dict(args.param)}
    # On a shared CPU, OpenMP threads that spin while waiting stall each other (measured here: 10-50x slower steps).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the kernel inherits this process's environment

    started = time.perf_counter()
    code = run_built("sweep", run_dir, params, build=args.build, timeout=args.timeout, target="make sweep")
    if code:
        return code
    study = json.loads((run_dir / STUDY_FILE).read_text())
    print(f"\nsweep {args.run} finished in {time.perf_counter() - started:.0f} s: {run_dir}")
    for budget, fit in study["budgets"].items():
        law = (fit["alpha_text"] if fit["alpha"] is None or None in fit["ci95"]  # null in study.json: not fitted
               else f"α = {fit['alpha']:.2f} (95% bootstrap CI {fit['ci95'][0]:.2f} … {fit['ci95'][1]:.2f})")
        print(f"budget {budget}: lr*(B) ∝ B^α, {law}; {fit['verdict']}")
        for warning in fit["warnings"]:
            print(f"  warning: {warning}")
    critical = study["critical_batch"]
    if critical:
        print(f"critical batch size (steps to accuracy {critical['target']:.3f}): {critical['agreement']}")
    print(f"RECOMMENDATION: {study['recommendation']}")
    for name in ("runs.csv", "curves.csv", "sweep_report.txt", STUDY_FILE, "critical_batch.png"):
        print(f"  {run_dir / name}")
    print(f"  {run_dir}/lr_batch_heatmap*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
