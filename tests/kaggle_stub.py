"""A small stub of Kaggle's API for driving the real ``kaggle`` CLI in tests.

The CLI only talks to ``http://localhost/api/v1/<service>/<Method>`` when ``KAGGLE_API_ENVIRONMENT=LOCALHOST``,
so the stub runs as a plain HTTP forward proxy on 127.0.0.1 and a free port, and the CLI is pointed at it with
``HTTP_PROXY`` (and empty ``NO_PROXY``). The request line then carries the absolute URL. Besides the API calls it
serves the URLs it hands out itself: ``PUT /upload/<token>`` (blob and submission uploads) and ``GET /files/<name>``
(kernel output files, the competition zip). The HTTP side (proxy server, request record, answers) is
tools/twin/protocol.py, shared with the Kaggle twin (tools/twin/), which emulates instead of replaying.

Every request is recorded (method, path, JSON body, headers without ``Authorization``) for assertions. Answers are
programmable per API method with :meth:`KaggleStub.on`: a queue of answers consumed in order, the last one repeated.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from tools.twin.protocol import API_PREFIX, BASE_URL, Answer, ProxyServer, Recorded, error

__all__ = ["API_PREFIX", "BASE_URL", "Answer", "KaggleStub", "Recorded", "error"]


class KaggleStub:
    """Start with :meth:`start` (returns the port), stop with :meth:`stop`; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.uploads: dict[str, bytes] = {}  # blob name (from StartBlobUpload/StartSubmissionUpload) -> bytes PUT
        self.files: dict[str, bytes] = {}  # served under /files/<name>
        self.output_files: list[str] = []  # names listed by ListKernelSessionOutput
        self.kernel_log = ""
        self.submissions: list[dict[str, Any]] = []  # listed by ListSubmissions (ApiSubmission's camelCase fields)
        self.env: dict[str, str] = {}  # filled by the pytest fixture: the environment for the CLI
        self._answers: dict[str, list[Answer | Callable[[Recorded], Answer]]] = {}
        self._upload_names: dict[str, str] = {}  # upload token -> file name
        self._lock = threading.Lock()
        self._server: ProxyServer | None = None

    # -- programming ------------------------------------------------------------------------------------------------
    def on(self, method: str, *answers: Answer | Callable[[Recorded], Answer]) -> None:
        """Answer API ``method`` with ``answers`` in order; the last one repeats. Replaces earlier programming."""
        assert answers, "give at least one answer"
        with self._lock:
            self._answers[method] = list(answers)

    def serve(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"{BASE_URL}/files/{name}"

    def set_kernel_output(self, files: dict[str, bytes], log: str = "") -> None:
        """What ``kaggle kernels output`` downloads: ``files`` (name -> bytes) and the session log."""
        self.output_files = list(files)
        for name, data in files.items():
            self.serve(f"output/{name}", data)
        self.kernel_log = log

    # -- inspection -------------------------------------------------------------------------------------------------
    def calls(self, method: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.api_method == method]

    def api_methods(self) -> list[str]:
        with self._lock:
            return [r.api_method for r in self.requests if r.api_method]

    # -- default answers --------------------------------------------------------------------------------------------
    def _default(self, method: str, request: Recorded) -> Answer:
        body = request.body or {}
        if method == "SaveKernel":
            slug = body.get("slug", "stubuser/kernel")
            return Answer(body={"ref": f"/code/{slug}", "url": f"https://www.kaggle.com/code/{slug}",
                                "versionNumber": 1, "invalidDatasetSources": [], "invalidCompetitionSources": [],
                                "invalidKernelSources": [], "invalidTags": []})
        if method == "GetKernelSessionStatus":
            return Answer(body={"status": "COMPLETE", "failureMessage": ""})
        if method == "ListKernelSessionOutput":
            files = [{"fileName": n, "url": f"{BASE_URL}/files/output/{n}"} for n in self.output_files]
            return Answer(body={"files": files, "log": self.kernel_log, "nextPageToken": ""})
        if method == "GetDatasetStatus":
            return Answer(body={"status": "READY"})
        if method in ("StartBlobUpload", "StartSubmissionUpload"):
            token = f"token{len(self._upload_names)}"
            self._upload_names[token] = body.get("name") or body.get("fileName") or token
            return Answer(body={"token": token, "createUrl": f"{BASE_URL}/upload/{token}"})
        if method in ("CreateDataset", "CreateDatasetVersion"):
            ref = f"{body.get('ownerSlug', 'stubuser')}/{body.get('slug') or body.get('datasetSlug', 'dataset')}"
            return Answer(body={"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"})
        if method == "CreateSubmission":
            return Answer(body={"message": "Successfully submitted to Digit Recognizer", "ref": 12345})
        if method == "ListSubmissions":
            return Answer(body={"submissions": self.submissions, "nextPageToken": ""})
        if method == "GetSubmissionLimits":
            return Answer(body={"numAllowedNow": 4})
        if method == "DownloadDataFiles":
            return Answer(302, b"", {"Location": f"{BASE_URL}/files/digit-recognizer.zip"})
        return error(404, f"stub: no answer programmed for {method}")

    def _answer(self, request: Recorded) -> Answer:
        method = request.api_method
        if method is None:
            return self._file_traffic(request)
        with self._lock:
            queue = self._answers.get(method)
            programmed = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
            if programmed is None:
                return self._default(method, request)
        return programmed(request) if callable(programmed) else programmed

    def _file_traffic(self, request: Recorded) -> Answer:
        kind, _, name = request.path.lstrip("/").partition("/")
        if request.method == "PUT" and kind == "upload":
            with self._lock:
                self.uploads[self._upload_names.get(name, name)] = request.raw
            return Answer(200, {})
        if request.method == "GET" and kind == "files" and name in self.files:
            return Answer(200, self.files[name], {"Content-Type": "application/octet-stream"})
        return error(404, f"stub: nothing at {request.method} {request.path}")

    # -- server -----------------------------------------------------------------------------------------------------
    def _record_and_answer(self, request: Recorded) -> Answer:
        with self._lock:
            self.requests.append(request)
        return self._answer(request)

    def start(self) -> int:
        self._server = ProxyServer(self._record_and_answer, name="kaggle-stub")
        return self._server.start()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stub first"
        return self._server.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "KaggleStub":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
