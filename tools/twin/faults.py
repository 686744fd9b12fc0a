"""Fault injection: ``<state>/faults.json``, re-read by the twin whenever it changes, consumed as faults fire.

The file holds ``{"faults": [FAULT, ...]}``. Each FAULT is an object with a ``kind``, what it matches, and ``times``
(how many times it fires; default 1; ``null`` fires until it is removed). When a fault fires the twin writes the file
back with ``times`` counted down (a spent fault is removed), so the file always says what is still armed. A key a
fault leaves out, or gives as ``"*"``, matches anything.

- ``http_error`` (matches ``method``, an API method such as ``GetKernelSessionStatus``): that call is answered
  ``status`` (default 503) with ``message``; ``retry_after`` adds a Retry-After header.
- ``kernel_error`` (``kernel``: ``owner/slug``): its next run ends ERROR with ``message``, without running.
- ``time_limit`` (``kernel``): its next run is killed after ``seconds`` (default 1) and ends ERROR "Kernel run exceeded
  the time limit of N seconds and was stopped".
- ``dataset_pending`` (``dataset``: ``owner/slug``): the next version created never turns ready.
- ``cut_download`` (``file``: a part of the download's URL path): the download sends half its bytes under the whole
  Content-Length, then closes (the Range request the client retries with is served the rest).
- ``quota_exceeded``: a push asking for a GPU or TPU is refused as Kaggle refuses it (``{"error": ...}``, which the
  CLI prints as "Kernel push error: You've exceeded the number of hours allowed to use GPU...", exit 0); while armed,
  ``kaggle quota`` shows the GPU hours used up (that call does not count it down).
- ``stale_status`` (``kernel``): after its next push, the next ``calls`` (default 3) status calls without a version
  still describe the previous version.

Example: ``{"faults": [{"kind": "http_error", "method": "GetKernelSessionStatus", "status": 429, "times": 2}]}``.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic

KINDS = ("http_error", "kernel_error", "time_limit", "dataset_pending", "cut_download", "quota_exceeded",
         "stale_status")
_logger = logging.getLogger("tools.twin")


class FaultError(ValueError):
    """faults.json cannot be read: the message says where."""


def parse(text: str) -> list[dict[str, Any]]:
    """The faults in ``text`` (faults.json's content), checked."""
    data = json.loads(text) if text.strip() else {"faults": []}
    faults = data.get("faults") if isinstance(data, dict) else data
    if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
        raise FaultError('faults.json: expected {"faults": [{"kind": ...}, ...]}')
    for fault in faults:
        if fault.get("kind") not in KINDS:
            raise FaultError(f"faults.json: unknown kind {fault.get('kind')!r}; the kinds are {', '.join(KINDS)}")
        times = fault.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultError(f"faults.json: times must be a whole number ≥ 1 or null, got {times!r}")
    return faults


def _matches(fault: dict[str, Any], values: dict[str, str]) -> bool:
    for key, value in values.items():
        wanted = fault.get(key, "*")
        if wanted == "*":
            continue
        if key == "file" and str(wanted) not in value:
            return False
        if key != "file" and wanted != value:
            return False
    return True


class Faults:
    """The armed faults of one twin; thread-safe."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []
        self._signature: tuple | None = None

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _reload(self) -> None:
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            self._faults = []
            return
        try:
            self._faults = parse(self.path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            _logger.error("faults.json ignored: %s", err)
            self._faults = []

    def _write(self) -> None:
        write_text_atomic(self.path, json.dumps({"faults": self._faults}, indent=2) + "\n")
        self._signature = self._stat()

    def peek(self, kind: str, **values: str) -> dict[str, Any] | None:
        """The first armed fault of ``kind`` matching ``values``, left armed."""
        with self._lock:
            self._reload()
            return next((dict(f) for f in self._faults if f["kind"] == kind and _matches(f, values)), None)

    def take(self, kind: str, **values: str) -> dict[str, Any] | None:
        """The first armed fault of ``kind`` matching ``values``, counted as fired (None when there is none)."""
        with self._lock:
            self._reload()
            for index, fault in enumerate(self._faults):
                if fault["kind"] != kind or not _matches(fault, values):
                    continue
                fired = dict(fault)
                times = fault.get("times", 1)
                if times is not None:
                    if times <= 1:
                        del self._faults[index]
                    else:
                        fault["times"] = times - 1
                    self._write()
                _logger.info("fault fired: %s", json.dumps(fired))
                return fired
        return None
