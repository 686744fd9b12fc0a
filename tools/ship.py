"""Ship digitkit to Kaggle through the ``kaggle`` package's Python API: push, status, output, weights, submit, data.

    python -m tools.ship push    --kernel train [--build-dir build] [--dry-run]
    python -m tools.ship status  --kernel train [--id OWNER/SLUG]
    python -m tools.ship output  --kernel train [--dest weights]
    python -m tools.ship weights [--dir weights] [--message M] [--polls 30] [--poll-delay 10]
    python -m tools.ship submit  [--file submission.csv] [--message M]
                                 [--test-file data/digit-recognizer/test.csv]  # default: 28,000 rows
    python -m tools.ship scores  [--page-size 100]  # public scores → the submissions.json they came from
    python -m tools.ship data    [--source kaggle] [--dest data/digit-recognizer]

Every command checks locally first and refuses before any call, naming the field and the fix. ``--dry-run`` prints
the equivalent ``kaggle …`` command lines and what would be sent, sends nothing and needs no credentials. Calls go
through tools.shipping.kaggle_client, the one door to Kaggle: structured answers instead of scraped text, bounded
retries, timeouts, secrets scrubbed; what Kaggle reports as a failure (a push error, a session in ERROR, a slug in
use, invalid sources) is a non-zero exit with one line saying what to do. The code lives in tools/shipping/
(credentials, checks, kaggle_client, commands); this module is its command line. Local-only code: it is never
inlined into a notebook.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.manifest import sha256_file
from tools.kaggle_ids import KERNELS
from tools.shipping import ShipError
from tools.shipping.checks import (INFERENCE_KERNELS, KAGGLE_TEST_ROWS, MACHINE_SHAPES, check_dataset_folder,
                                   check_kernel_folder, check_submission, notebook_text, resolve_username)
from tools.shipping.commands import (dataset_files, default_message, download_competition, kernel_ref, output, push,
                                     record_folders, scores, status, submit, weights)
from tools.shipping.credentials import CREDENTIALS_HELP, credentials_problem, scrub
from tools.shipping.kaggle_client import COMPETITION, DEFAULT_TIMEOUT, command_line

__all__ = [  # what callers and tests read from here; the code lives in tools/shipping/
    "ShipError", "CREDENTIALS_HELP", "credentials_problem", "scrub", "COMPETITION", "command_line", "sha256_file",
    "INFERENCE_KERNELS", "KAGGLE_TEST_ROWS", "MACHINE_SHAPES", "check_dataset_folder", "check_kernel_folder",
    "check_submission", "notebook_text", "resolve_username", "dataset_files", "default_message",
    "download_competition", "kernel_ref", "output", "push", "record_folders", "scores", "status", "submit", "weights",
    "build_parser", "main"]


# ---------------------------------------------------------------------------------------------------------- cli
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="print the command and what would be sent; send nothing")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one request to Kaggle may take to connect, and between two reads")
    kernel = argparse.ArgumentParser(add_help=False)
    kernel.add_argument("--kernel", choices=KERNELS, default="train")
    kernel.add_argument("--build-dir", type=Path, default=Path("build"), help="where build.py wrote <kernel>/")
    parser = argparse.ArgumentParser(prog="python -m tools.ship", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("push", parents=[common, kernel], help="kaggle kernels push -p build/<kernel>")
    for name, text in (("status", "kaggle kernels status"), ("output", "kaggle kernels output into --dest")):
        sub = commands.add_parser(name, parents=[common, kernel], help=text)
        sub.add_argument("--id", help="owner/slug (default: the id in build/<kernel>/kernel-metadata.json)")
    commands.choices["output"].add_argument("--dest", type=Path, help="default: weights/ for train (verified against "
                                            "manifest.json), else runs/kaggle-<kernel>/")
    sub = commands.add_parser("weights", parents=[common], help="create or version the weights dataset")
    sub.add_argument("--dir", type=Path, default=Path("weights"))
    sub.add_argument("--message", help="version note (local CV and git commit are appended)")
    sub.add_argument("--polls", type=int, default=30, help="status checks while waiting for 'ready'")
    sub.add_argument("--poll-delay", type=float, default=float(os.environ.get("DIGITKIT_POLL_DELAY", 10)))
    sub = commands.add_parser("submit", parents=[common], help="validate and submit a submission CSV")
    sub.add_argument("--file", type=Path, default=Path("submission.csv"))
    sub.add_argument("--message", help="submission description (default: file, local CV, git commit)")
    sub.add_argument("--test-file", type=Path, help="test CSV whose row count the submission must match "
                                                    f"(default: Kaggle's {KAGGLE_TEST_ROWS:,} test images)")
    sub = commands.add_parser("scores", parents=[common], help="read the submissions' public scores into the "
                                                               "records make submit wrote")
    sub.add_argument("--page-size", type=int, default=100, help="how many of the latest submissions to read")
    sub = commands.add_parser("data", parents=[common], help="download the competition data")
    sub.add_argument("--source", choices=("kaggle",), default="kaggle")
    sub.add_argument("--dest", type=Path, default=Path("data") / COMPETITION)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {"dry_run": args.dry_run, "timeout": args.timeout}
    try:
        if args.command == "push":
            return push(args.kernel, args.build_dir, **options)
        if args.command == "status":
            return status(kernel_ref(args.kernel, args.build_dir, args.id), **options)
        if args.command == "output":
            train = args.kernel == "train"
            dest = args.dest or (Path("weights") if train else Path("runs") / f"kaggle-{args.kernel}")
            return output(kernel_ref(args.kernel, args.build_dir, args.id), dest, require_manifest=train, **options)
        if args.command == "weights":
            return weights(args.dir, args.message, polls=args.polls, delay=args.poll_delay, **options)
        if args.command == "submit":
            return submit(args.file, args.message, args.test_file, **options)
        if args.command == "scores":
            return scores(page_size=args.page_size, **options)
        download_competition(args.dest, **options)
        return 0
    except ShipError as err:
        print(f"error: {scrub(str(err))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
