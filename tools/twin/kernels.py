"""Kernels on the twin: a push becomes a version that is queued, run in the Kaggle sandbox, and kept with its output.

``SaveKernel`` stores version N of ``owner/slug`` (N counts up per kernel) under
``<state>/kernels/<owner>/<slug>/versions/<N>/``: ``notebook.ipynb`` (as sent), ``metadata.json`` (the request without
the notebook), ``status.json`` (status, failure message, times, the inputs it got), ``log.jsonl`` (each line the
session printed), ``executed.ipynb`` and ``output/`` (its /kaggle/working). The version is QUEUED, then RUNNING in the
sandbox (tools/twin/sandbox.py: papermill, nothing injected, cwd /kaggle/working, ``KAGGLE_KERNEL_RUN_TYPE=Batch``,
its own network namespace with loopback only when ``enableInternet`` is false), then COMPLETE or ERROR with the failing
cell's ``ename: evalue`` as the failure message. Its inputs are fixed when it starts: the competition at
``/kaggle/input/digit-recognizer/``, each dataset source's newest ready version and each kernel source's newest
COMPLETE version's output at ``/kaggle/input/<slug>/``.

Version tracking, as the kaggle 2.2.5 client asks: ``GetKernelSessionStatus``, ``ListKernelSessionOutput`` and
``GetKernel`` act on the newest version unless the request names one (``versionLabel: "v<N>"``, what the client sends
for ``owner/slug/N``; a bare number is not found, as on Kaggle); ``GetKernel`` and ``ListKernels`` answer the
kernel's ``currentVersionNumber``; ``SaveKernel`` answers the new ``versionNumber``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tools.twin.competition import COMPETITION, Competition
from tools.twin.datasets import Datasets
from tools.twin.faults import Faults
from tools.twin.protocol import BASE_URL, Answer, Recorded, error
from tools.twin.sandbox import SandboxProcess
from tools.twin.store import files_under, inside, iso, link_tree, page, page_of, read_json, write_json

_logger = logging.getLogger("tools.twin")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_SOURCE_BYTES = 1 << 20
FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
QUOTA_MESSAGE = ("You've exceeded the number of hours allowed to use GPU. Your quota will reset to 30 hours in {days} "
                 "days. You will not be able to commit unless you turn off GPU.")
GPU_HOURS, TPU_HOURS = 30, 20


@dataclass
class KernelSettings:
    papermill: Path
    queue_delay: float = 0.2  # seconds a version stays QUEUED before it may start
    max_sessions: int = 2  # sessions running at once; more wait QUEUED
    time_limit: float = 12 * 3600  # a session's wall-clock limit unless the push or a fault sets one


def _label_number(label: str | None) -> int | None:
    """3 for ``v3`` (what the client sends for owner/slug/3); None for anything else."""
    found = re.fullmatch(r"v(\d+)", label or "")
    return int(found.group(1)) if found else None


def render_log(events: list[dict[str, Any]]) -> str:
    """A session log the way Kaggle keeps one: a JSON array of {stream_name, time, data}, one event a line."""
    if not events:
        return ""
    return "[" + "\n,".join(json.dumps(e, separators=(",", ":")) for e in events) + "]\n"


def failure_message(executed: Path, events: list[dict[str, Any]]) -> str:
    """The failing cell's ``ename: evalue``; else the last line papermill printed on stderr."""
    try:
        notebook = json.loads(executed.read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    return f"{output.get('ename')}: {output.get('evalue')}"
    except (OSError, ValueError):
        pass
    lines = [e["data"].strip() for e in events if e["stream_name"] == "stderr" and e["data"].strip()]
    return lines[-1] if lines else "the session ended with an error (no message)"


class Kernels:
    """Kernel versions under ``folder`` and the sessions that run them."""

    def __init__(self, folder: Path, settings: KernelSettings, faults: Faults, datasets: Datasets,
                 competition: Competition):
        self.folder, self.settings, self.faults = Path(folder), settings, faults
        self.datasets, self.competition = datasets, competition
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, settings.max_sessions))
        self._running: dict[tuple[str, int], SandboxProcess] = {}
        self._threads: list[threading.Thread] = []
        self._events: dict[tuple[str, int], list[dict[str, Any]]] = {}  # the logs of sessions in progress
        self._stale: dict[str, int] = {}  # kernel -> status calls left that describe the previous version
        self._stopping = False

    def routes(self) -> dict[str, Callable[[Recorded], Answer]]:
        return {"SaveKernel": self.save, "GetKernelSessionStatus": self.status,
                "ListKernelSessionOutput": self.session_output, "GetKernel": self.get,
                "ListKernels": self.list_kernels, "ListKernelFiles": self.list_files,
                "GetAcceleratorQuotaStatistics": self.quota}

    # -- state --------------------------------------------------------------------------------------------------------
    def _dir(self, ref: str) -> Path:
        owner, slug = ref.split("/", 1)
        return self.folder / owner / slug

    def vdir(self, ref: str, number: int) -> Path:
        return self._dir(ref) / "versions" / str(number)

    def versions(self, ref: str) -> list[int]:
        folder = self._dir(ref) / "versions"
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []

    def refs(self) -> list[str]:
        return sorted(read_json(p)["ref"] for p in self.folder.glob("*/*/kernel.json"))

    def read_status(self, ref: str, number: int) -> dict[str, Any]:
        return read_json(self.vdir(ref, number) / "status.json", {})

    def _set_status(self, ref: str, number: int, **changes: Any) -> None:
        with self._lock:
            path = self.vdir(ref, number) / "status.json"
            write_json(path, {**read_json(path, {}), **changes})
        if "status" in changes:
            _logger.info("%s v%d: %s%s", ref, number, changes["status"],
                         f" ({changes['failureMessage']})" if changes.get("failureMessage") else "")

    def events(self, ref: str, number: int) -> list[dict[str, Any]]:
        live = self._events.get((ref, number))
        if live is not None:
            return list(live)
        path = self.vdir(ref, number) / "log.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def latest_complete_output(self, ref: str) -> tuple[int, Path] | None:
        for number in reversed(self.versions(ref)):
            if self.read_status(ref, number).get("status") == "COMPLETE":
                return number, self.vdir(ref, number) / "output"
        return None

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for ref in self.refs():
            latest = self.versions(ref)[-1]
            status = self.read_status(ref, latest)
            rows.append({"ref": ref, "version": latest, "status": status.get("status"),
                         "failureMessage": status.get("failureMessage") or ""})
        return rows

    def recover(self) -> None:
        """After a restart: a version left QUEUED or RUNNING by a twin that died ends ERROR (its session is killed)."""
        for ref in self.refs():
            for number in self.versions(ref):
                status = self.read_status(ref, number)
                if status.get("status") not in FINISHED:
                    _kill_orphan(status.get("pid"))
                    self._set_status(ref, number, status="ERROR", ended=iso(),
                                     failureMessage="The session was interrupted: the Kaggle twin stopped")

    # -- running ------------------------------------------------------------------------------------------------------
    def _start_thread(self, ref: str, number: int) -> None:
        thread = threading.Thread(target=self._execute, args=(ref, number), name=f"{ref}/v{number}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _attach(self, meta: dict[str, Any], input_dir: Path) -> dict[str, Any]:
        """Put the version's sources under ``input_dir`` as they are now; returns what was attached."""
        attached: dict[str, Any] = {}
        if COMPETITION in (meta.get("competitionDataSources") or []):
            link_tree(self.competition.files, input_dir / COMPETITION)
            attached[COMPETITION] = "competition"
        for ref in meta.get("datasetDataSources") or []:
            ref = "/".join(ref.split("/")[:2])
            found = self.datasets.current_ready(ref) if "/" in ref else None
            if found and not (input_dir / ref.split("/")[1]).exists():
                link_tree(found[1], input_dir / ref.split("/")[1])
                attached[ref.split("/")[1]] = f"dataset {ref} version {found[0]}"
        for ref in meta.get("kernelDataSources") or []:
            ref = "/".join(ref.split("/")[:2])
            found = self.latest_complete_output(ref) if "/" in ref else None
            if found and not (input_dir / ref.split("/")[1]).exists():
                link_tree(found[1], input_dir / ref.split("/")[1])
                attached[ref.split("/")[1]] = f"kernel {ref} version {found[0]}"
        return attached

    def _execute(self, ref: str, number: int) -> None:
        try:
            self._run_session(ref, number)
        except Exception as exc:  # the twin's own failure still ends the version, with the reason
            _logger.exception("%s v%d: the twin failed to run it", ref, number)
            self._set_status(ref, number, status="ERROR", ended=iso(),
                             failureMessage=f"The Kaggle twin failed to run the session: {type(exc).__name__}: {exc}")
        finally:
            self._events.pop((ref, number), None)

    def _run_session(self, ref: str, number: int) -> None:
        vdir = self.vdir(ref, number)
        meta = read_json(vdir / "metadata.json")
        time.sleep(self.settings.queue_delay)
        with self._slots:
            if self._stopping:
                return
            fault = self.faults.take("kernel_error", kernel=ref)
            if fault:
                self._set_status(ref, number, status="RUNNING", started=iso())
                self._set_status(ref, number, status="ERROR", ended=iso(),
                                 failureMessage=fault.get("message", "RuntimeError: injected failure"))
                return
            limit = float(meta.get("sessionTimeoutSeconds") or self.settings.time_limit)
            fault = self.faults.take("time_limit", kernel=ref)
            if fault:
                limit = float(fault.get("seconds", 1))
            session = vdir / "session"
            shutil.rmtree(session, ignore_errors=True)
            kaggle_dir = session / "kaggle"
            for folder in (kaggle_dir / "input", kaggle_dir / "working", kaggle_dir / "temp", session / "home"):
                folder.mkdir(parents=True)
            attached = self._attach(meta, kaggle_dir / "input")
            events: list[dict[str, Any]] = []
            self._events[(ref, number)] = events
            log = open(vdir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - the session's thread writes it; closed below
            log_lock = threading.Lock()

            def on_output(stream: str, seconds: float, line: str) -> None:
                event = {"stream_name": stream, "time": round(seconds, 6), "data": line}
                with log_lock:
                    events.append(event)
                    log.write(json.dumps(event) + "\n")
                    log.flush()

            internet = meta.get("enableInternet", True) is not False
            process = SandboxProcess(kaggle_dir, vdir / "notebook.ipynb", vdir / "executed.ipynb",
                                     papermill=self.settings.papermill, home=session / "home", internet=internet,
                                     pid_namespace=True, on_output=on_output)
            try:
                process.start()
                assert process.process is not None  # start() made it
                self._running[(ref, number)] = process
                self._set_status(ref, number, status="RUNNING", started=iso(), inputs=attached, internet=internet,
                                 pid=process.process.pid, timeLimitSeconds=limit)
                code = process.wait(timeout=limit)
                if code is None:
                    process.kill()
                    outcome = {"status": "ERROR", "failureMessage": f"Kernel run exceeded the time limit of "
                                                                    f"{limit:g} seconds and was stopped"}
                elif self._stopping and code != 0:
                    outcome = {"status": "ERROR", "failureMessage": "The session was interrupted: the Kaggle twin "
                                                                    "stopped"}
                elif code == 0:
                    outcome = {"status": "COMPLETE", "failureMessage": ""}
                else:
                    outcome = {"status": "ERROR", "failureMessage": failure_message(vdir / "executed.ipynb", events)}
            finally:
                self._running.pop((ref, number), None)
                log.close()
                output = vdir / "output"
                shutil.rmtree(output, ignore_errors=True)
                if (kaggle_dir / "working").is_dir():
                    os.replace(kaggle_dir / "working", output)
                shutil.rmtree(session, ignore_errors=True)
            self._set_status(ref, number, ended=iso(), exitCode=code, **outcome)

    def stop(self) -> None:
        """End every session (each version ends ERROR: interrupted) and wait for their threads."""
        self._stopping = True
        for process in list(self._running.values()):
            process.kill()
        for thread in list(self._threads):
            thread.join(timeout=30)
        self.recover()

    # -- API: push ----------------------------------------------------------------------------------------------------
    def save(self, request: Recorded) -> Answer:
        body = request.body
        ref = body.get("slug") or ""
        if "/" not in ref:
            ref = f"{request.user}/{ref}" if request.user and ref else ""
        owner, _, slug = ref.partition("/")
        title = body.get("newTitle") or slug
        if not owner or not SLUG.match(slug or "_") or len(slug) < 5:
            return error(400, f"Invalid kernel slug {ref!r}: lower-case letters, digits and single hyphens, at "
                              "least 5 characters")
        if len(title) > 50:
            return error(400, "The title must be at most 50 characters")
        text = body.get("text") or ""
        if len(text.encode("utf-8")) >= MAX_SOURCE_BYTES:
            return Answer(body={"error": "The kernel source must be less than 1 megabytes in size"})
        if body.get("kernelType", "notebook") != "notebook" or body.get("language", "python") != "python":
            return Answer(body={"error": "The Kaggle twin runs python notebooks only (kernel_type notebook, "
                                         "language python)"})
        wants_accelerator = bool(body.get("enableGpu") or body.get("enableTpu") or body.get("machineShape"))
        if wants_accelerator and self.faults.take("quota_exceeded"):
            return Answer(body={"error": QUOTA_MESSAGE.format(days=2)})
        invalid = {
            "invalidDatasetSources": [s for s in body.get("datasetDataSources") or []
                                      if not self.datasets.exists("/".join(s.split("/")[:2]))],
            "invalidKernelSources": [s for s in body.get("kernelDataSources") or []
                                     if "/".join(s.split("/")[:2]) not in self.refs()],
            "invalidCompetitionSources": [s for s in body.get("competitionDataSources") or [] if s != COMPETITION],
            "invalidModelSources": list(body.get("modelDataSources") or []), "invalidTags": []}
        quick = body.get("kernelExecutionType") == "QUICK_SAVE"
        with self._lock:
            kernel_json = self._dir(ref) / "kernel.json"
            if not kernel_json.is_file():
                write_json(kernel_json, {"ref": ref, "id": zlib.crc32(ref.encode()) % 10**7, "created": iso()})
            number = (self.versions(ref) or [0])[-1] + 1
            vdir = self.vdir(ref, number)
            vdir.mkdir(parents=True)
            (vdir / "notebook.ipynb").write_text(text, encoding="utf-8")
            meta = {k: v for k, v in body.items() if k != "text"}
            write_json(vdir / "metadata.json", {**meta, "ref": ref, "title": title, "version": number,
                                                "pushed": iso(), "user": request.user})
            write_json(vdir / "status.json", {"status": "NEW_SCRIPT" if quick else "QUEUED", "failureMessage": "",
                                              "queued": iso()})
        fault = self.faults.take("stale_status", kernel=ref)
        if fault and number > 1:
            self._stale[ref] = int(fault.get("calls", 3))
        _logger.info("%s v%d: pushed (%s)", ref, number, "quick save" if quick else "QUEUED")
        if not quick:
            self._start_thread(ref, number)
        return Answer(body={"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}",
                            "versionNumber": number, "error": "", **invalid})

    # -- API: one version ---------------------------------------------------------------------------------------------
    def _version(self, body: dict[str, Any], *, stale: bool = False) -> tuple[str, int] | Answer:
        """The kernel and version a request names (its newest without versionLabel), or the 404 answer."""
        owner, slug = body.get("userName") or body.get("ownerSlug") or "", body.get("kernelSlug") or ""
        ref = f"{owner}/{slug}"
        versions = self.versions(ref) if owner and slug else []
        if not versions:
            return error(404, f"Kernel {ref} not found")
        label = body.get("versionLabel")
        if label:
            number = _label_number(label)
            if number not in versions:
                return error(404, f"Kernel {ref} has no version {label!r} (versions are named v1, v2, ...)")
            return ref, number
        number = versions[-1]
        if stale and self._stale.get(ref, 0) > 0 and len(versions) > 1:
            self._stale[ref] -= 1
            number = versions[-2]
        return ref, number

    def status(self, request: Recorded) -> Answer:
        found = self._version(request.body, stale=True)
        if isinstance(found, Answer):
            return found
        status = self.read_status(*found)
        return Answer(body={"status": status.get("status", "QUEUED"), "failureMessage":
                            status.get("failureMessage") or ""})

    def output_files(self, ref: str, number: int) -> list[str]:
        status = self.read_status(ref, number).get("status")
        return files_under(self.vdir(ref, number) / "output") if status in FINISHED else []

    def session_output(self, request: Recorded) -> Answer:
        found = self._version(request.body)
        if isinstance(found, Answer):
            return found
        ref, number = found
        names, token = page(self.output_files(ref, number), request.body.get("pageSize"),
                            request.body.get("pageToken"))
        files = [{"fileName": name, "url": self.file_url(ref, number, name)} for name in names]
        return Answer(body={"files": files, "log": render_log(self.events(ref, number)), "nextPageToken": token})

    def list_files(self, request: Recorded) -> Answer:
        found = self._version(request.body)
        if isinstance(found, Answer):
            return found
        ref, number = found
        output = self.vdir(ref, number) / "output"
        names, token = page(self.output_files(ref, number), request.body.get("pageSize"),
                            request.body.get("pageToken"))
        return Answer(body={"files": [{"name": n, "size": (output / n).stat().st_size,
                                       "creationDate": iso((output / n).stat().st_mtime)} for n in names],
                            "nextPageToken": token})

    def file_url(self, ref: str, number: int, name: str) -> str:
        return f"{BASE_URL}/files/kernels/{ref}/{number}/{quote(name)}"

    def file_path(self, rest: str) -> Path | None:
        """What ``/files/kernels/<owner>/<slug>/<N>/<name>`` serves (None when it names nothing)."""
        parts = rest.split("/", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        ref, number, name = f"{parts[0]}/{parts[1]}", int(parts[2]), unquote(parts[3])
        if number not in self.versions(ref) or name not in self.output_files(ref, number):
            return None
        return inside(self.vdir(ref, number) / "output", name)

    # -- API: kernels as a whole --------------------------------------------------------------------------------------
    def metadata(self, ref: str) -> dict[str, Any]:
        versions = self.versions(ref)
        meta = read_json(self.vdir(ref, versions[-1]) / "metadata.json")
        status = self.read_status(ref, versions[-1])
        owner, slug = ref.split("/")
        return {"id": read_json(self._dir(ref) / "kernel.json")["id"], "ref": ref, "title": meta.get("title"),
                "author": owner, "slug": slug, "lastRunTime": status.get("started") or meta.get("pushed"),
                "language": meta.get("language", "python"), "kernelType": meta.get("kernelType", "notebook"),
                "isPrivate": meta.get("isPrivate", True), "enableGpu": bool(meta.get("enableGpu")),
                "enableTpu": bool(meta.get("enableTpu")), "enableInternet": meta.get("enableInternet", True),
                "categoryIds": meta.get("categoryIds") or [], "datasetDataSources": meta.get("datasetDataSources")
                or [], "kernelDataSources": meta.get("kernelDataSources") or [], "competitionDataSources":
                meta.get("competitionDataSources") or [], "modelDataSources": meta.get("modelDataSources") or [],
                "totalVotes": 0, "currentVersionNumber": versions[-1], "machineShape": meta.get("machineShape")}

    def get(self, request: Recorded) -> Answer:
        found = self._version(request.body)
        if isinstance(found, Answer):
            return found
        ref, number = found
        meta = read_json(self.vdir(ref, number) / "metadata.json")
        source = (self.vdir(ref, number) / "notebook.ipynb").read_text(encoding="utf-8")
        return Answer(body={"metadata": self.metadata(ref), "blob": {
            "source": source, "language": meta.get("language", "python"),
            "kernelType": meta.get("kernelType", "notebook"), "slug": ref.split("/")[1]}})

    def list_kernels(self, request: Recorded) -> Answer:
        body = request.body
        kernels = [self.metadata(ref) for ref in self.refs()]
        if body.get("group") == "PROFILE":
            kernels = [k for k in kernels if k["author"] == request.user]
        if body.get("user"):
            kernels = [k for k in kernels if k["author"] == body["user"]]
        if body.get("search"):
            kernels = [k for k in kernels if body["search"].lower() in (k["title"] + " " + k["slug"]).lower()]
        for key, field in (("dataset", "datasetDataSources"), ("competition", "competitionDataSources")):
            if body.get(key):
                kernels = [k for k in kernels if body[key] in k[field]]
        kernels.sort(key=lambda k: k["lastRunTime"] or "", reverse=True)
        chosen, next_token = page_of(kernels, body, maximum=100)
        return Answer(body={"kernels": chosen, "nextPageToken": next_token})

    def quota(self, request: Recorded) -> Answer:
        now = datetime.now(UTC)
        refresh = (now + timedelta(days=(5 - now.weekday()) % 7 or 7)).replace(hour=0, minute=0, second=0,
                                                                               microsecond=0)
        week_start = (refresh - timedelta(days=7)).timestamp()
        used = {"gpu": 0.0, "tpu": 0.0}
        for ref in self.refs():
            for number in self.versions(ref):
                meta, status = read_json(self.vdir(ref, number) / "metadata.json"), self.read_status(ref, number)
                kind = "tpu" if meta.get("enableTpu") else "gpu" if meta.get("enableGpu") or meta.get(
                    "machineShape") else None
                if kind and status.get("started"):
                    started = _parse_iso(status["started"])
                    ended = _parse_iso(status["ended"]) if status.get("ended") else time.time()
                    if started >= week_start:
                        used[kind] += max(ended - started, 0.0)
        if self.faults.peek("quota_exceeded"):
            used["gpu"] = GPU_HOURS * 3600.0

        def quota(seconds: float, hours: int) -> dict[str, Any]:
            return {"timeUsed": f"{int(seconds)}s", "timeReserved": "0s", "totalTimeAllowed": f"{hours * 3600}s",
                    "minimumTimeAllowed": "0s", "isPayToScaleEnabled": False, "hasEverRun": seconds > 0}

        return Answer(body={"quotaRefreshTime": iso(refresh.timestamp()), "gpuQuota": quota(used["gpu"], GPU_HOURS),
                            "tpuQuota": quota(used["tpu"], TPU_HOURS)})

    # -- the live log -------------------------------------------------------------------------------------------------
    def logs_stream(self, request: Recorded) -> Answer:
        """``GET /api/v1/kernels/logs/stream/<owner>/<slug>[?versionLabel=vN]`` (``kaggle kernels logs -f``): a
        finished session's log as one JSON array; a session in progress as server-sent events until it ends."""
        parts = request.path.rstrip("/").split("/")[-2:]
        found = self._version({"userName": parts[0], "kernelSlug": parts[1],
                               "versionLabel": request.query.get("versionLabel")})
        if isinstance(found, Answer):
            return found
        ref, number = found
        if self.read_status(ref, number).get("status") in (*FINISHED, "NEW_SCRIPT"):
            return Answer(200, json.dumps(self.events(ref, number)).encode(), {"Content-Type": "application/json"})
        return Answer(200, b"", {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                      stream=self._sse(ref, number))

    def _sse(self, ref: str, number: int) -> Iterator[bytes]:
        sent = 0
        while True:
            events = self.events(ref, number)
            for event in events[sent:]:
                yield f"data: {json.dumps(event)}\n\n".encode()
            sent = len(events)
            if self.read_status(ref, number).get("status") in FINISHED:
                for event in self.events(ref, number)[sent:]:
                    yield f"data: {json.dumps(event)}\n\n".encode()
                yield b"data: END_OF_LOG\n\n"
                return
            time.sleep(0.2)


def _parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _kill_orphan(pid: int | None) -> None:
    """End a session a dead twin left running (only an ``unshare`` process: a reused pid is left alone)."""
    if not pid:
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return
    if command.endswith(b"unshare"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
