"""`make sweep`: execute the built sweep notebook locally into runs/<name>/ (resumable: finished cells are kept).

    python -m tools.run_sweep --run sweep --data data/digit-recognizer -p batch_sizes=[16,64] -p budget=steps=200

This is the very notebook `make push` sends to Kaggle. Its own defaults are the full grid for a GPU; locally the
grid and budget of ``core.presets.SWEEP_LOCAL`` (4 batch sizes × 5 learning rates × 150 steps, about 10 minutes on
two CPU cores with the embedded data) apply unless a ``-p`` overrides them. Any parameter of the notebook works:
``batch_sizes``, ``learning_rates``, ``seeds``, ``min_lr_ratio``, ``budget``, ``sweep_fold``, ``metric``, ``n_boot``
and every training setting (``model``, ``weight_decay``, ...). Ends by printing α and where the outputs are.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from core.presets import SWEEP_LOCAL
from tools.run_local import add_run_arguments, prepare_run
from tools.run_notebook import run_built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, kernel="sweep", default_run="sweep", example="learning_rates=[1e-3,1e-4]")
    args = parser.parse_args(argv)
    try:
        run_dir, params = prepare_run(args)
    except ValueError as err:
        print(f"make sweep failed: {err}", file=sys.stderr)
        return 2
    params.update({**SWEEP_LOCAL, **dict(args.param)})
    # On a shared CPU, OpenMP threads that spin while waiting stall each other (measured here: 10-50x slower steps).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the kernel inherits this process's environment

    started = time.perf_counter()
    code = run_built("sweep", run_dir, params, build=args.build, timeout=args.timeout, target="make sweep")
    if code:
        return code
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
