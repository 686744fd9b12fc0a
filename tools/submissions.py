"""What was submitted to Kaggle, and what it scored: ``submissions.json`` beside every submitted file.

``make submit`` appends a record to the folder of the file it sent (a run's folder: runs/<run>/, runs/kaggle-infer/,
runs/ensemble-…/)::

    {"submissions": [{"time": "2026-12-01T20:30:05+00:00", "file": "submission.csv", "sha256": "<hex>",
                      "message": "…", "competition": "digit-recognizer", "run": "cpu-recipe",
                      "manifest_sha256": "<hex of the training run's manifest.json, or null>", "ref": 51234,
                      "kaggle": {"ref": 51234, "status": "COMPLETE", "public_score": 0.99614,
                                 "private_score": null, "date": "…", "checked": "…"}}]}  # kaggle: by make scores

``make scores`` reads the competition's submissions through the kaggle package (tools.shipping.kaggle_client) and
writes each one's status and scores into the record it came from: matched by Kaggle's submission id (which a submit
returns), else by the exact message sent, the nearest in time when one message was sent twice. ``manifest_sha256``
links a submission made from an inference output (runs/kaggle-infer/, whose test_probs.json names the training
manifest it used) to the training run, so the journal shows the public score beside that run's local CV. Local-only
code: never inlined into a notebook.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.manifest import MANIFEST_NAME, sha256_file

RECORDS_NAME = "submissions.json"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO time (Kaggle's "2026-12-01 20:30:05.123000" or "…T…Z"), as UTC; None when absent or unreadable."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # Kaggle's times are UTC


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """The records in ``folder``/submissions.json ([] when there is none).

    Raises:
        ValueError: the file is not a submissions.json of this form (naming it and the fix).
    """
    path = Path(folder) / RECORDS_NAME
    if not path.is_file():
        return []
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); restore it from a backup or delete it (the scores "
                         "come back with make scores, the records of what was sent do not)") from None
    records = body.get("submissions") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: expected {{\"submissions\": [ {{…}}, … ]}}; it was edited or not written by "
                         "make submit")
    return records


def write_records(folder: str | Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(Path(folder) / RECORDS_NAME, json.dumps({"submissions": records}, indent=2) + "\n")


def training_manifest_sha256(folder: Path) -> str | None:
    """The sha256 of the training manifest behind a folder's predictions: its own manifest.json (a run), else the
    one its test_probs.json names (an inference output)."""
    if (folder / MANIFEST_NAME).is_file():
        return sha256_file(folder / MANIFEST_NAME)
    info = folder / "test_probs.json"
    if info.is_file():
        try:
            return json.loads(info.read_text(encoding="utf-8")).get("manifest_sha256")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return None
    return None


def record_submission(file: Path, message: str, competition: str, ref: int | None = None) -> dict[str, Any]:
    """Append what was just sent (``ref``: Kaggle's id of the submission, when the CLI printed it) to ``file``'s
    folder's submissions.json (atomically); return the record."""
    folder = file.resolve().parent
    record = {"time": now(), "file": file.name, "sha256": sha256_file(file), "message": message,
              "competition": competition, "run": folder.name, "manifest_sha256": training_manifest_sha256(folder),
              "ref": ref}
    write_records(folder, [*read_records(folder), record])
    return record


def match_scores(records: list[tuple[Path, dict[str, Any]]], kaggle: list[dict[str, Any]]) -> tuple[
        list[tuple[Path, dict[str, Any], dict[str, Any]]], list[dict[str, Any]]]:
    """Pair Kaggle's submissions with local records: by Kaggle's submission id (``ref``) where the record has one,
    else the same message and the nearest submission time; each side used at most once.

    Args:
        records: (folder, record) of every local record.
        kaggle: Kaggle's submissions, each with ``description`` and ``date``.

    Returns:
        (folder, record, Kaggle's submission) for each pair, and Kaggle's submissions no record claims.
    """
    pairs, unmatched, taken = [], [], set()
    by_ref = {record.get("ref"): i for i, (_, record) in enumerate(records) if record.get("ref") is not None}
    for submission in kaggle:
        sent = parse_time(submission.get("date"))
        same_id = by_ref.get(submission.get("ref"))
        options = [same_id] if same_id is not None and same_id not in taken else [
            i for i, (_, record) in enumerate(records) if i not in taken and record.get("ref") is None
            and record.get("message") == submission.get("description")]

        def distance(i: int, sent: dt.datetime | None = sent) -> float:
            mine = parse_time(records[i][1].get("time"))
            return abs((mine - sent).total_seconds()) if mine and sent else float("inf")

        if not options:
            unmatched.append(submission)
            continue
        best = min(options, key=distance)
        taken.add(best)
        pairs.append((records[best][0], records[best][1], submission))
    return pairs, unmatched


def all_records(folders: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, record) for every record in the given folders."""
    return [(folder, record) for folder in folders for record in read_records(folder)]


def score_of(text: Any) -> float | None:
    """Kaggle's score ("0.99614", a number, or ""/None while pending) as a float, or None."""
    try:
        return float(text) if text is not None and str(text).strip() else None
    except (TypeError, ValueError):
        return None
