"""A run's state, read from its manifest.json: the one description every tool gives of a run.

``make runs`` (the journal), ``make compare``, ``make select``, ``make ensemble`` (and the ensemble notebook) and the
inference notebook each list or refuse runs; they all say :meth:`RunState.describe`, so a run reads the same
everywhere:

- ``finished``: manifest.json is complete (``"complete"`` is not False and it holds a local CV), its local CV is an
  accuracy, and oof.csv and every other listed file present match their sha256.
- ``unfinished: 1 of 2 folds trained — rerun `make run RUN=<name>` with the same settings to finish it …``: training
  stopped (killed, timed out or failed) after some folds; core.resume picks them up.
- ``broken: <why>``: manifest.json is unreadable or malformed, or a file it lists was altered.
- ``empty: no manifest.json in <folder> …``: no fold ever finished there (or it is not a run's folder).

A listed file that is absent is not a state: a copy of a run may leave out what its reader does not need (an ensemble
group needs oof.csv, not its weights), and whoever needs it refuses with core.manifest.verify_files' "missing".
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from .manifest import MANIFEST_NAME, ManifestError, read_manifest, verify_files
from .paths import on_kaggle

FINISHED, UNFINISHED, BROKEN, EMPTY = "finished", "unfinished", "broken", "empty"


@dataclasses.dataclass(frozen=True)
class RunState:
    """What a run folder holds.

    Attributes:
        kind: "finished" | "unfinished" | "broken" | "empty".
        run_dir: the run's folder (resolved: every caller names it alike).
        folds_done: folds listed in manifest.json (0 without one).
        n_folds: folds the run trains (its ``folds_to_run``, else ``n_folds``); None when unknown.
        reason: why it is broken ("" otherwise).
    """

    kind: str
    run_dir: Path
    folds_done: int = 0
    n_folds: int | None = None
    reason: str = ""

    def describe(self) -> str:
        """The one phrase for this state (see the module docstring)."""
        if self.kind == FINISHED:
            return FINISHED
        if self.kind == BROKEN:
            return f"{BROKEN}: {self.reason}"
        if self.kind == EMPTY:
            return (f"{EMPTY}: no manifest.json in {self.run_dir} (no fold of a training run has finished there, or "
                    "it is not a run's folder)")
        of = f" of {self.n_folds}" if self.n_folds is not None else ""
        return f"{UNFINISHED}: {self.folds_done}{of} folds trained — {self._finish_hint()}"

    def _finish_hint(self) -> str:
        if on_kaggle() or self.run_dir.name == "weights":  # weights/: the Kaggle train output (make output)
            return ("run the train notebook on Kaggle again with this output attached as an input to finish it "
                    "(finished folds are kept)")
        return (f"rerun `make run RUN={self.run_dir.name}` with the same settings to finish it (finished folds are "
                "kept)")


class RunStateError(ManifestError):
    """A run that is not finished was given where a finished one is needed; the message is ``state.describe()``."""

    def __init__(self, state: RunState):
        super().__init__(state.describe())
        self.state = state


def run_state(run_dir: str | Path) -> RunState:
    """The state of the run in ``run_dir`` (reads manifest.json and hashes the files it lists)."""
    return _assess(Path(run_dir).resolve())[0]


def finished_manifest(run_dir: str | Path) -> dict[str, Any]:
    """manifest.json of the finished run in ``run_dir``, its oof.csv and every listed file present hash-checked.

    Raises:
        RunStateError: the run is unfinished, broken or empty; the message is its one phrase.
    """
    state, manifest = _assess(Path(run_dir).resolve())
    if state.kind != FINISHED:
        raise RunStateError(state)
    assert manifest is not None  # a finished run has read its manifest.json
    return manifest


def _assess(run_dir: Path) -> tuple[RunState, dict[str, Any] | None]:
    if not (run_dir / MANIFEST_NAME).is_file():
        config = _read_json(run_dir / "config.json")  # written as training starts: a run, no fold finished yet
        if config is None:
            return RunState(EMPTY, run_dir), None
        return RunState(UNFINISHED, run_dir, 0, _planned_folds(config, config.get("n_folds"))), None
    try:
        manifest = read_manifest(run_dir)
    except ManifestError as err:
        return RunState(BROKEN, run_dir, reason=str(err)), None
    done, planned = len(manifest["folds"]), _planned_folds(manifest.get("config") or {}, manifest["n_folds"])
    if manifest.get("complete") is False or "local_cv" not in manifest:  # older manifests have no "complete"
        return RunState(UNFINISHED, run_dir, done, planned), manifest
    cv = manifest["local_cv"]
    if not (isinstance(cv, (int, float)) and not isinstance(cv, bool) and math.isfinite(cv) and 0 <= cv <= 1):
        return RunState(BROKEN, run_dir, done, planned, f"manifest.json's local_cv is {cv!r}, not an accuracy"), None
    present = [name for name in manifest["files"] if (run_dir / name).is_file()]
    try:
        verify_files(run_dir, manifest, names=sorted(set(present) | {"oof.csv"}))
    except ManifestError as err:
        return RunState(BROKEN, run_dir, done, planned, str(err)), None
    return RunState(FINISHED, run_dir, done, planned), manifest


def _planned_folds(config: dict[str, Any], n_folds: Any) -> int | None:
    """How many folds the run trains: its ``folds_to_run`` (comma-separated indices), else ``n_folds``."""
    listed = [part for part in str(config.get("folds_to_run") or "").split(",") if part.strip()]
    if listed:
        return len(listed)
    return n_folds if isinstance(n_folds, int) and not isinstance(n_folds, bool) and n_folds > 0 else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
