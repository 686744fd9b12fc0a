"""`make runs`: the experiment journal — every run in one table, runs/journal.csv, and local CV against wall time.

    python -m tools.journal [--runs-dir runs] [--weights-dir weights]

A run is a folder of runs/ (``make run``, ``make cpu-recipe``, ``make ensemble``) or weights/ (the Kaggle train
kernel's output, pulled by ``make output``). Each finished one gives a row: name, date, digitkit commit, model, the
settings that differ from Config's defaults for its model (its family's recipe), k and the folds file's fingerprint
(runs with the same one can be compared and fused), local CV with its 95 % Wilson interval, the inference choice,
epochs, wall time, device and the Kaggle public score recorded by ``make scores``. Unfinished, failed and broken runs
get a row saying so; folders that are not runs (the shared folds, sweeps, comparisons, Kaggle inference outputs) are
named in one line below the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
import pandas as pd

from core.atomic import write_text_atomic
from core.config import Config, with_legacy_values
from core.groups import folds_sha256
from core.manifest import MANIFEST_NAME, ManifestError, inference_choice, read_manifest, sha256_file
from core.run_state import BROKEN, FINISHED, run_state
from core.stats import wilson_interval
from tools import submissions
from tools.run_folder import live_holder

JOURNAL_CSV = "journal.csv"
JOURNAL_PNG = "journal.png"
# run settings that have their own column, or that only say where things were
OWN_COLUMNS = ("model", "epochs")
SHORT = 12  # hex digits of a fingerprint shown


@dataclasses.dataclass
class Entry:
    """One row of the journal (a run, finished or not)."""

    run: str
    status: str  # core.run_state's phrase ("finished", "unfinished: …", "broken: …", "empty: …"); ensembles: own
    kind: str = "train"  # train | ensemble
    date: str = ""
    commit: str = ""
    model: str = ""
    changed: str = ""  # settings that differ from Config's defaults for the run's model, "name=value …"
    k: int | None = None
    folds: str = ""  # the first hex digits of folds.csv's sha256
    local_cv: float | None = None
    oof_rows: int | None = None
    inference: str = ""
    epochs: int | None = None
    wall_min: float | None = None
    device: str = ""
    public_score: float | None = None
    submissions: int = 0
    path: str = ""
    members: str = ""  # an ensemble's runs, their folders as a JSON list

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """The 95 % Wilson interval of the local CV over its OOF rows; (None, None) without both."""
        if self.local_cv is None or not self.oof_rows:
            return None, None
        return wilson_interval(round(self.local_cv * self.oof_rows), self.oof_rows)

    @property
    def gap(self) -> float | None:
        """public score − local CV (negative: Kaggle's test scored lower than the local estimate)."""
        return None if self.public_score is None or self.local_cv is None else self.public_score - self.local_cv


# ---------------------------------------------------------------------------------------------- reading a run
class RunNotFound(ValueError):
    """No run of that name; the message lists the finished ones."""


def run_folder(name: str, runs_dir: Path = Path("runs"), weights_dir: Path = Path("weights")) -> Path:
    """The folder of the run called ``name`` in the journal: runs/<name>, weights/ for "weights" (the Kaggle train
    output), or ``name`` itself when it is a folder path: the first holding manifest.json, else the first that exists
    (its state then says why it is no finished run: core.run_state). The one resolver of make compare, select and
    ensemble.

    Raises:
        RunNotFound: none of them exists (naming the finished runs there are).
    """
    candidates = ((weights_dir,) if name == "weights" else ()) + (runs_dir / name, Path(name))
    found = [c for c in candidates if (c / MANIFEST_NAME).is_file()] + [c for c in candidates if c.is_dir()]
    if found:
        return found[0]

    def finished(folder: Path) -> bool:
        return (folder / MANIFEST_NAME).is_file() and run_state(folder).kind == FINISHED

    known = sorted(p.name for p in runs_dir.iterdir() if finished(p)) if runs_dir.is_dir() else []
    known += ["weights"] if finished(weights_dir) else []
    raise RunNotFound(f"run {name!r}: no manifest.json in {runs_dir / name} (no such folder); finished runs: "
                      f"{', '.join(known) or 'none'} — make runs lists them")


def notebook_info(path: Path) -> dict[str, Any]:
    """From an executed notebook: the digitkit commit it was built from, papermill's duration (s) and, when it
    raised, the error ("ValueError: …"). {} when there is no such notebook."""
    if not path.is_file():
        return {}
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": f"{path.name} is not valid notebook JSON"}
    info: dict[str, Any] = {}
    for cell in notebook.get("cells", [])[:3]:
        source = "".join(cell.get("source", ""))
        found = re.search(r"from commit `?([0-9a-f]{7,40}(?:\+dirty)?|unknown)`?", source)
        if found:
            info["commit"] = found.group(1)
            break
    papermill = notebook.get("metadata", {}).get("papermill", {})
    if isinstance(papermill.get("duration"), (int, float)):
        info["seconds"] = float(papermill["duration"])
    if papermill.get("exception"):
        errors = [out for cell in notebook.get("cells", []) for out in cell.get("outputs", [])
                  if out.get("output_type") == "error"]
        info["error"] = (f"{errors[-1].get('ename')}: {errors[-1].get('evalue', '')}" if errors
                         else "the notebook raised an error")
    return info


def changed_settings(config: dict[str, Any]) -> str:
    """"name=value …" for every setting that differs from Config's default for the run's model (its family's recipe;
    model and epochs have columns of their own; settings whose default is "auto" are resolved per machine and left
    out; a setting the run's config.json predates counts with the value it ran with, core.config.LEGACY_VALUES)."""
    defaults = dataclasses.asdict(Config(model=str(config.get("model", Config.model))))
    changed = []
    for name, value in with_legacy_values(config).items():
        default = defaults.get(name, object())
        if name in OWN_COLUMNS or default == "auto" or value == default or (
                isinstance(default, (list, tuple)) and list(value or []) == list(default)):
            continue
        text = f"{value:g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (list, str)) \
            and not value else str(value)
        changed.append(f"{name}={text}")
    return " ".join(changed)


def describe_inference(manifest: dict[str, Any]) -> str:
    weights, views = inference_choice(manifest)
    return f"{weights}" + (f"+TTA{len(views)}" if views else "")


def _short_date(text: str | None) -> str:
    when = submissions.parse_time(text)
    return when.strftime("%Y-%m-%d %H:%M") if when else ""


def read_train_run(folder: Path, name: str) -> Entry:
    """The entry of a folder holding manifest.json (or a train run that never wrote one). Its status is the run's
    one description (core.run_state, as make compare, select, ensemble and inference say it), "finished, not inferred"
    for a finished run without test predictions, and "; train.ipynb failed: <error>" after it when the executed
    notebook raised."""
    entry = Entry(run=name, status="", path=str(folder))

    @functools.cache
    def train_nb() -> dict[str, Any]:  # the executed notebook (often megabytes of figures): read once, if needed
        return notebook_info(folder / "train.ipynb")

    state = run_state(folder)
    writer = live_holder(folder.parent, name) if state.kind != FINISHED else ""  # its lock (tools.run_folder)
    failed = f"; train.ipynb failed: {train_nb()['error']}" if state.kind != FINISHED and "error" in train_nb() \
        and not writer else ""
    entry.status = f"running: {state.kind}, being written by {writer}" if writer else state.describe() + failed
    try:
        manifest = read_manifest(folder)
    except ManifestError:  # no manifest.json (the run's config.json, if any, says what it trains) or a broken one
        entry.commit = train_nb().get("commit", "")
        if state.kind != BROKEN:
            _add_config(entry, folder)
        return entry
    config = manifest.get("config", {})
    run = manifest.get("run", {}) if isinstance(manifest.get("run"), dict) else {}
    entry.date = _short_date(run.get("started") or manifest.get("created"))
    entry.commit = run.get("commit") or train_nb().get("commit", "")
    entry.model = manifest["model"]["name"]
    entry.changed = changed_settings(config)
    entry.k = manifest["n_folds"]
    entry.folds = (folds_sha256(manifest) or "")[:SHORT]
    entry.epochs = config.get("epochs")
    entry.device = run.get("device", "")
    seconds = run["wall_seconds"] if "wall_seconds" in run else train_nb().get("seconds")
    entry.wall_min = seconds / 60 if isinstance(seconds, (int, float)) else None
    if state.kind != FINISHED:
        return entry
    entry.local_cv = float(manifest["local_cv"])
    entry.oof_rows = int(manifest.get("oof_rows") or manifest.get("train_rows") or 0)
    entry.inference = describe_inference(manifest)
    if entry.oof_rows and entry.oof_rows < int(manifest.get("train_rows") or 0):
        entry.inference += f" ({entry.oof_rows} of {manifest['train_rows']} rows)"
    inferred = (folder / "submission.csv").is_file() or (folder / "test_probs.npz").is_file()
    entry.status = FINISHED if inferred or name == "weights" else "finished, not inferred"
    return entry


def _is_accuracy(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value <= 1


def _add_config(entry: Entry, folder: Path) -> None:
    """Model, settings and epochs from config.json, for a run that has no manifest.json."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return
    if isinstance(config, dict):
        entry.model, entry.epochs = str(config.get("model", "")), config.get("epochs")
        entry.changed = changed_settings(config)


def read_ensemble_run(folder: Path, name: str) -> Entry:
    """The entry of a ``make ensemble`` output (ensemble.json): the local CV of what it submitted, honestly scored
    (the plain mean, or the learned weights under nested CV)."""
    entry = Entry(run=name, status=FINISHED, kind="ensemble", path=str(folder))
    try:
        report = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
        groups = [g["name"] for g in report["groups"]]
        scored = {row["option"]: row["accuracy"] for row in report["table"]}
        option = "plain mean" if report.get("fuse") == "mean" else "learned, nested CV"
        if not _is_accuracy(scored[option]):
            raise ValueError(f"the {option!r} accuracy is {scored[option]!r}")
        entry.local_cv = float(scored[option])
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        entry.status = f"broken: ensemble.json unreadable ({type(err).__name__}: {err})"
        return entry
    entry.model = "ensemble: " + " + ".join(groups)
    entry.inference = f"fuse={report.get('fuse')}" + (" (nested CV)" if option != "plain mean" else "")
    entry.oof_rows = int(report.get("oof_rows") or 0)
    notebook = notebook_info(folder / "ensemble.ipynb")
    entry.commit = notebook.get("commit", "")
    entry.date = dt.datetime.fromtimestamp((folder / "ensemble.json").stat().st_mtime, dt.UTC) \
        .strftime("%Y-%m-%d %H:%M")
    first = Path(report["groups"][0].get("path", "")) if report["groups"] else None
    if first is not None and (first / MANIFEST_NAME).is_file():
        try:
            manifest = read_manifest(first)
            entry.k, entry.folds = manifest["n_folds"], (folds_sha256(manifest) or "")[:SHORT]
        except ManifestError:
            pass
    entry.members = json.dumps([g.get("path", "") for g in report["groups"]])  # their walls: _ensemble_walls
    return entry


def predicted_local_cv(folder: Path, weights_dir: Path | None = None) -> float | None:
    """The local CV behind the predictions in ``folder``: its own run's (manifest.json), its ensemble's
    (ensemble.json), or, for an inference output, that of the run in ``weights_dir`` its test_probs.json names by
    the manifest's sha256; None when none of them is there."""
    def manifest_cv(where: Path) -> float | None:
        try:
            cv = read_manifest(where).get("local_cv")
        except ManifestError:
            return None
        return float(cv) if isinstance(cv, (int, float)) else None

    if (folder / MANIFEST_NAME).is_file():
        return manifest_cv(folder)
    if (folder / "ensemble.json").is_file():
        return read_ensemble_run(folder, folder.name).local_cv
    used = submissions.training_manifest_sha256(folder)
    if used and weights_dir is not None and (weights_dir / MANIFEST_NAME).is_file() \
            and sha256_file(weights_dir / MANIFEST_NAME) == used:
        return manifest_cv(weights_dir)
    return None


def classify(folder: Path) -> str | None:
    """What a folder of runs/ is when it is not a run: a short reason; None when it is (or was meant to be) one."""
    names = {p.name for p in folder.iterdir()}
    if folder.name == "folds" and all(n.endswith(".csv") for n in names):
        return "the shared folds files"
    if "sweep.json" in names or "study.json" in names or "runs.csv" in names:
        return "a sweep (make sweep)"
    if "test_probs.json" in names and not names & {MANIFEST_NAME, "config.json", "train.ipynb"}:
        return "an inference output (its scores count for the run it predicted with)"
    if folder.name == "compare":
        return "comparisons (make compare)"
    if not names & {MANIFEST_NAME, "config.json", "train.ipynb", "ensemble.json", "ensemble.ipynb"} \
            and not any(n.endswith("_oof.npz") for n in names):
        return "no manifest.json, config.json, notebook or fold file"
    return None


# ------------------------------------------------------------------------------------------------- the journal
@dataclasses.dataclass
class Journal:
    entries: list[Entry]
    others: list[tuple[str, str]]  # (folder, what it is) for folders that are not runs

    def frame(self) -> pd.DataFrame:
        """Every field of every entry, finished runs first by local CV (best first), then the rest by name."""
        rows = [dict(dataclasses.asdict(e), cv_low=e.interval[0], cv_high=e.interval[1], gap=e.gap)
                for e in self.entries]
        columns = [f.name for f in dataclasses.fields(Entry)]
        after_cv = columns.index("local_cv") + 1
        columns = [*columns[:after_cv], "cv_low", "cv_high", *columns[after_cv:], "gap"]  # the interval beside the CV
        frame = pd.DataFrame(rows, columns=columns)
        frame["_done"] = frame["local_cv"].notna()
        frame = frame.sort_values(["_done", "local_cv", "run"], ascending=[False, False, True], kind="stable")
        return frame.drop(columns="_done").reset_index(drop=True)


def read_journal(runs_dir: Path, weights_dir: Path | None = None) -> Journal:
    """Every run under ``runs_dir`` (one level) and ``weights_dir``, with the public scores recorded beside them."""
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if runs_dir.is_dir() else []
    entries, others = [], []
    if weights_dir is not None and (weights_dir / MANIFEST_NAME).is_file():
        entries.append(read_train_run(weights_dir, "weights"))
    for folder in folders:
        reason = classify(folder)
        if reason:
            others.append((folder.name, reason))
        elif (folder / "ensemble.json").is_file() or (folder / "ensemble.ipynb").is_file():
            entries.append(read_ensemble_run(folder, folder.name) if (folder / "ensemble.json").is_file() else
                           Entry(run=folder.name, status="failed: " + notebook_info(folder / "ensemble.ipynb").get(
                               "error", "no ensemble.json"), kind="ensemble", path=str(folder)))
        else:
            entries.append(read_train_run(folder, folder.name))
    _ensemble_walls(entries)
    _public_scores(entries, ([weights_dir] if weights_dir is not None and weights_dir.is_dir() else []) + folders)
    return Journal(entries=entries, others=others)


def _ensemble_walls(entries: list[Entry]) -> None:
    """An ensemble's wall time is what its runs took to train (its own fusion takes seconds): each run found by its
    path, else (a copied runs/ folder) by its name."""
    walls = {str(Path(e.path).resolve()): e.wall_min for e in entries if e.kind == "train"}
    by_name = {Path(e.path).name: e.wall_min for e in entries if e.kind == "train"}
    for entry in (e for e in entries if e.kind == "ensemble" and e.members):
        members = [walls.get(str(Path(p).resolve()), by_name.get(Path(p).name)) for p in json.loads(entry.members)]
        known = [m for m in members if m is not None]
        entry.wall_min = sum(known) if members and len(known) == len(members) else None


def _public_scores(entries: list[Entry], folders: list[Path]) -> None:
    """The latest public score recorded for each run: a record naming the run's manifest.json by its sha256 (in
    the run's folder or an inference output's), or, for a record that names no manifest (an ensemble's), the run of
    the folder it is in. A record naming a manifest that is no longer there (a rerun of that RUN) counts for none."""
    by_folder = {e.run: e for e in entries}
    by_manifest = {}
    for entry in entries:
        manifest = Path(entry.path) / MANIFEST_NAME
        if entry.kind == "train" and manifest.is_file():
            by_manifest[sha256_file(manifest)] = entry
    latest: dict[str, tuple[str, float]] = {}
    for folder in folders:
        try:
            records = submissions.read_records(folder)
        except ValueError as err:
            print(f"warning: {err}", file=sys.stderr)
            continue
        for record in records:
            named = record.get("manifest_sha256")
            owner = by_manifest.get(named) if named else by_folder.get(
                "weights" if folder.name == "weights" else folder.name)
            if owner is None:
                continue
            owner.submissions += 1
            score = (record.get("kaggle") or {}).get("public_score")
            if isinstance(score, (int, float)) and record.get("time", "") >= latest.get(owner.run, ("", 0))[0]:
                latest[owner.run] = (record.get("time", ""), float(score))
    for run, (_, score) in latest.items():
        by_folder[run].public_score = score


def text_table(frame: pd.DataFrame, width: int = 60) -> str:
    """The journal as a terminal table: the columns a person scans (journal.csv has all of them). A run that is not
    finished shows the first word of its status here; ``not_finished`` gives the whole of it."""
    def number(value: Any, digits: int = 5) -> str:
        return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"

    rows = []
    for row in frame.itertuples():
        cv = number(row.local_cv)
        interval = f"[{number(row.cv_low, 4)}, {number(row.cv_high, 4)}]" if cv and not pd.isna(row.cv_low) else ""
        rows.append({"run": row.run, "local CV": cv or "—", "95 % CI": interval,
                     "public": number(row.public_score) or ("sent" if row.submissions else ""),
                     "gap": "" if pd.isna(row.gap) else f"{row.gap:+.5f}", "model": row.model,
                     "epochs": "" if pd.isna(row.epochs) else str(int(row.epochs)), "inference": row.inference,
                     "wall": "" if pd.isna(row.wall_min) else f"{row.wall_min:.1f} min", "device": row.device,
                     "k/folds": f"{int(row.k)}/{row.folds}" if not pd.isna(row.k) else "", "date": row.date,
                     "commit": row.commit, "status": _status_word(row.status),
                     "settings changed": (row.changed[:width] + "…") if len(row.changed) > width else row.changed})
    if not rows:
        return "(no runs)"
    table = pd.DataFrame(rows)
    table = table.loc[:, [c == "run" or table[c].astype(bool).any() for c in table.columns]]  # no empty columns
    with pd.option_context("display.width", 400, "display.max_colwidth", 200, "display.max_columns", 50):
        return table.to_string(index=False)


def _status_word(status: str) -> str:
    """"" for a finished run, "finished, not inferred", else the state's first word ("unfinished", "broken", …)."""
    return "" if status == FINISHED else status if status.startswith(FINISHED) else status.split(":", 1)[0]


def not_finished(frame: pd.DataFrame) -> str:
    """One line per run that is not finished: its name and its whole status (the phrase make compare, select,
    ensemble and inference give for it); "" when every run is finished."""
    return "\n".join(f"  {row.run}: {row.status}" for row in frame.itertuples() if not row.status.startswith(FINISHED))


def plot_journal(frame: pd.DataFrame, path: Path | None = None, max_panels: int = 3) -> plt.Figure:
    """Local CV against wall time, one panel per folds file and OOF row count (only runs in one panel were scored on
    the same rows), one point per finished run with its 95 % interval, labelled in a column beside the panel in table
    order. The y axis is local CV on the log scale of its error rate 1 − CV, better upwards: 0.9963 and 0.9957 stay
    apart and a run that did not learn still fits. The public score, where recorded, is a cross at the same wall
    time."""
    done = frame[frame["local_cv"].notna() & frame["wall_min"].notna()].copy()
    done["panel"] = done["folds"] + " · " + done["oof_rows"].map(lambda n: f"{int(n):,}") + " OOF rows"
    panels = list(done["panel"].value_counts().index[:max_panels])
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(7.5 * max(1, len(panels)), 5.5), squeeze=False)
    for ax, folds in zip(axes.flat, panels or [None], strict=True):
        rows = done[done["panel"] == folds].sort_values("local_cv", ascending=False)
        step = min(0.07, 0.9 / max(1, len(rows)))
        for i, row in enumerate(rows.itertuples()):
            error = 1 - row.local_cv
            bars = [[error - (1 - row.cv_high)], [(1 - row.cv_low) - error]] if not pd.isna(row.cv_low) else None
            colour = "tab:green" if row.kind == "ensemble" else "tab:blue"
            ax.errorbar(row.wall_min, error, yerr=bars, fmt="s" if row.kind == "ensemble" else "o", color=colour,
                        capsize=3, ms=5)
            if not pd.isna(row.public_score):
                ax.plot([row.wall_min], [max(1 - row.public_score, 1e-5)], "x", color="tab:red", ms=8)
            ax.annotate(f"{row.run} {row.local_cv:.5f}", (row.wall_min, error), xytext=(1.03, 0.95 - i * step),
                        textcoords="axes fraction", fontsize=8, va="center",
                        arrowprops={"arrowstyle": "-", "color": "0.7", "lw": 0.6})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_yaxis()
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{1 - v:.4g}"))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
        ax.set(xlabel="wall time (minutes, log scale)", ylabel="local CV (axis: log of 1 − CV; better ↑)",
               title=f"folds {folds} · {len(rows)} runs" if folds is not None else "no runs")
        ax.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=t) for m, c, t in (
        ("o", "tab:blue", "run (95 % Wilson interval)"), ("s", "tab:green", "ensemble (wall: its runs' training)"),
        ("x", "tab:red", "Kaggle public score"))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    left_out = len(frame) - len(done) + len(done[~done["panel"].isin(panels)])
    fig.suptitle("experiment journal: local CV against wall time" + (
        f" ({left_out} runs unfinished, without a wall time or on further folds files not shown)" if left_out else ""))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.subplots_adjust(right=1 - 0.3 / max(1, len(panels)), wspace=0.95)
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir() and not (args.weights_dir / MANIFEST_NAME).is_file():
        print(f"make runs: no {args.runs_dir}/ folder and no run in {args.weights_dir}/: train one first (make run)",
              file=sys.stderr)
        return 1
    journal = read_journal(args.runs_dir, args.weights_dir)
    frame = journal.frame()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.runs_dir / JOURNAL_CSV, frame.to_csv(index=False, float_format="%.6g"))
    plot_journal(frame, args.runs_dir / JOURNAL_PNG)
    print(text_table(frame))
    if not_finished(frame):
        print("\nnot finished:\n" + not_finished(frame))
    finished = int(frame["local_cv"].notna().sum())
    print(f"\n{len(frame)} runs ({finished} finished, {len(frame) - finished} unfinished, failed or broken); "
          "sorted by local CV. Only runs with the same k/folds (and all their rows: see inference) were scored on the "
          "same rows.")
    if journal.others:
        print("not runs: " + "; ".join(f"{name}/ ({reason})" for name, reason in journal.others))
    print(f"table: {args.runs_dir / JOURNAL_CSV}\nfigure: {args.runs_dir / JOURNAL_PNG}\n"
          "next: make compare A=<run> B=<run> (is one really better?), make select (which runs to fuse)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
