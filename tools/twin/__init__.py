"""The Kaggle twin: a local emulator of the part of Kaggle digitkit uses, which the real ``kaggle`` package (CLI and
``KaggleApi``) talks to unchanged, and which does the work instead of replaying answers (like LocalStack or moto).

    python -m tools.twin start [--state runs/kaggle-twin]    # make twin
    eval "$(python -m tools.twin env)"                        # point this shell's kaggle client at it
    python -m tools.twin stop                                 # make twin-stop

What it emulates (docs/twin.md has the whole story):

- kernels (kernels.py): a push is version N, QUEUED → RUNNING → COMPLETE/ERROR, executed by papermill in the Kaggle
  sandbox (sandbox.py; no network but loopback when the kernel's internet is off); status, output (paged, with its
  log), logs, pull, list, files, quota;
- datasets (datasets.py): create and version through blob uploads, pending then ready;
- the competition (competition.py): its files and zip, submissions scored on a public and a private part of the test
  set, the daily limit;
- faults on demand (faults.py: ``<state>/faults.json``);
- the HTTP side shared with tests/kaggle_stub.py (protocol.py), the front door and call record (server.py), the
  process (control.py), the state on disk (store.py).
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_STATE = "runs/kaggle-twin"  # the one home of the default; control.py reads it here


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.twin ...`` (the command layer calls it for make twin / make twin-stop)."""
    from tools.twin.control import main as control_main

    return control_main(argv)


def client_environment(state: str | Path = DEFAULT_STATE, *, start: bool = True) -> dict[str, str]:
    """The environment variables the real kaggle client needs to talk to the twin serving ``state`` (its proxy
    address and fake credentials, from ``<state>/twin.json``); the twin is started first when it is not running
    and ``start`` is true. RuntimeError when it does not run."""
    from tools.twin.control import running

    info = running(Path(state))
    if info is None and start:
        code = main(["start", "--state", str(state)])
        info = running(Path(state)) if code == 0 else None
    if info is None:
        raise RuntimeError(f"the Kaggle twin is not running (state {state}): python -m tools.twin start")
    return dict(info["env"])


def served_test_rows(state: str | Path = DEFAULT_STATE) -> int:
    """The rows of the test.csv the twin serving ``state`` hands out (its submissions must have as many)."""
    from tools.twin.competition import COMPETITION

    with open(Path(state) / "competition" / COMPETITION / "test.csv", "rb") as handle:
        return sum(1 for line in handle if line.strip()) - 1
