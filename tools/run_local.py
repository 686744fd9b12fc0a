"""`make run`: execute the built train notebook, then the built inference notebook, locally, into runs/<name>/.

    python -m tools.run_local --run default --data data/digit-recognizer [--preset local] [-p model=fastcnn ...]

These are the very notebooks `make push` sends to Kaggle; only their parameters differ (injected papermill-style):
the named preset's (core/presets.py; default ``local``), then each ``-p name=value``, which wins over the preset.
Ends by printing the local CV and the path of submission.csv.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

from core.config import Config, ConfigError
from core.manifest import inference_choice
from core.presets import PRESETS, preset_parameters
from tools.run_folder import NAME_RULE, RUN_KIND, RunFolderError, check_run_name, claim_run
from tools.run_notebook import add_runner_arguments, run_built

DEFAULT_PRESET = "local"


def folds_file_for(data_dir: Path, runs_dir: Path) -> Path:
    """One folds.csv per data folder, shared by every run on it (so runs are compared on the same split)."""
    resolved = str(data_dir.resolve())
    slug = re.sub(r"[^A-Za-z0-9]+", "-", resolved).strip("-")[-60:]  # readable; the hash keeps it unique
    return runs_dir / "folds" / f"{slug}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}.csv"


def run_name_argument(text: str) -> str:
    """``check_run_name`` as an argparse type (every runner's ``--run``)."""
    try:
        return check_run_name(text)
    except RunFolderError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_run_arguments(parser: argparse.ArgumentParser, *, kernel: str, default_run: str, example: str) -> None:
    """--run and --runs (outputs go to <runs>/<run>/), --restart, plus the options of every notebook runner."""
    parser.add_argument("--run", type=run_name_argument, default=default_run,
                        help=f"run name: outputs go to runs/<name>/ (default: {default_run}); {NAME_RULE}")
    parser.add_argument("--runs", default="runs", help="folder of all runs (default: runs)")
    parser.add_argument("--restart", action="store_true", help="a run of that name with other settings is moved "
                                                                "aside to runs/<name>.replaced-<time>/, not refused")
    add_runner_arguments(parser, kernel=kernel, example=example)


# Where a run's inputs and outputs are is the runner's to say (DATA, RUN), so that training and inference agree.
RUNNER_PARAMETERS = {"data_dir": "DATA=<folder> (--data)", "output_dir": "RUN=<name> (--run): outputs go to "
                     "runs/<name>/", "weights_dir": "RUN=<name> (--run): inference reads the run it trained"}


def check_runner_parameters(args: argparse.Namespace) -> None:
    """Raises ValueError when ``-p`` sets one of ``RUNNER_PARAMETERS`` (the message says which make variable to use)."""
    for name, _ in args.param:
        if name in RUNNER_PARAMETERS:
            raise ValueError(f"-p {name}=… is set by the runner; use {RUNNER_PARAMETERS[name]}")


def run_parameters(args: argparse.Namespace, run_dir: Path) -> dict:
    """The parameters every run notebook takes: ``data_dir``, ``output_dir`` and, once the first run on this data
    has made it, ``folds_path`` (the data folder's shared folds.csv)."""
    data_dir = Path(args.data).resolve()
    shared = folds_file_for(data_dir, Path(args.runs).resolve())
    return {"data_dir": str(data_dir), "output_dir": str(run_dir),
            **({"folds_path": str(shared)} if shared.is_file() else {})}


def training_request(parameters: dict) -> dict:
    """What decides whether a run folder's saved work is this run's (tools.run_folder.claim_run): the resolved
    training settings (``Config.training_settings``; how it runs — device, workers, evaluation batch — is left out)
    and the fingerprint of train.csv's content. Reading them checks every setting and train.csv before any work.

    Raises:
        ConfigError, DataError: a setting or train.csv is refused (one line).
    """
    from core.data import find_competition_file, read_train
    from core.models import resolve_pretrained

    config = Config.from_mapping(parameters)
    config = dataclasses.replace(config, pretrained=resolve_pretrained(config.pretrained, config.model,
                                                                       on_kaggle=False))
    train = read_train(find_competition_file(parameters["data_dir"], "train"), group_column=config.group_column)
    return {"kind": RUN_KIND, "settings": config.training_settings(), "data": train.fingerprint}


def _preset(name: str) -> dict[str, object]:
    try:
        return preset_parameters(name)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, kernel="train", default_run="default", example="batch_size=64")
    parser.add_argument("--preset", type=_preset, default=DEFAULT_PRESET, metavar="NAME",
                        help=f"a named recipe of core/presets.py, one of {', '.join(PRESETS)} (default: "
                             f"{DEFAULT_PRESET}); -p wins over its values")
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs).resolve()
    try:
        check_runner_parameters(args)
        train_params = {**run_parameters(args, runs_dir / args.run), **args.preset, **dict(args.param)}
        request = training_request(train_params)
        with claim_run(runs_dir, args.run, request=request, restart=args.restart, command="make run") as run_dir:
            return _train_and_infer(args, run_dir, train_params)
    except ValueError as err:  # ConfigError, DataError, RunFolderError: one line each
        print(f"make run failed: {err}", file=sys.stderr)
        return 2


def _train_and_infer(args: argparse.Namespace, run_dir: Path, train_params: dict) -> int:
    shared = folds_file_for(Path(train_params["data_dir"]), Path(args.runs).resolve())
    infer_params = {"data_dir": train_params["data_dir"], "weights_dir": str(run_dir), "output_dir": str(run_dir)}
    started = time.perf_counter()
    for kernel, params in (("train", train_params), ("infer", infer_params)):
        code = run_built(kernel, run_dir, params, build=args.build, timeout=args.timeout, target="make run")
        if code:
            return code
        if kernel == "train" and not shared.is_file() and (run_dir / "folds.csv").is_file():
            shared.parent.mkdir(parents=True, exist_ok=True)  # the first run's folds: every later run's folds
            shutil.copy(run_dir / "folds.csv", shared)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    print(f"\nrun {args.run} finished in {time.perf_counter() - started:.0f} s: {run_dir}")
    print(f"local CV (OOF accuracy): {manifest['local_cv']:.5f}")
    weights, views = inference_choice(manifest)
    scored = manifest.get("inference", {}).get("oof_acc", {})  # every option training scored on the OOF rows
    print(f"inference: {weights} weights, TTA: {', '.join(views) or 'none'} "
          f"(OOF: {', '.join(f'{k} {v:.5f}' for k, v in scored.items())})")
    print(f"submission: {run_dir / 'submission.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
