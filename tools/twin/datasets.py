"""Uploads and datasets: ``StartBlobUpload`` + PUT, ``CreateDataset``, ``CreateDatasetVersion``, ``GetDatasetStatus``.

An upload is a token with a file name and size (``<state>/uploads/<token>.json``) and its bytes
(``<token>.bin``), PUT to the URL the start call hands out; a resumable status query (``Content-Range: bytes */N``)
is answered 200 when complete, 308 with the bytes held otherwise. A dataset version is the set of files its request
names by token, kept under ``<state>/datasets/<owner>/<slug>/versions/<N>/files/``; an uploaded .zip or .tar
(``--dir-mode zip``: a sub-folder) is unpacked into a folder of its name, as Kaggle does. A version turns ready
``ready_delay`` seconds after it is created (until then ``GetDatasetStatus`` answers ``BLOBS_RECEIVED``, which the
CLI prints as ``blobs_received``); the ``dataset_pending`` fault keeps it from ever turning ready.
"""
from __future__ import annotations

import re
import shutil
import tarfile
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.twin.faults import Faults
from tools.twin.protocol import BASE_URL, Answer, Recorded, error
from tools.twin.store import files_under, iso, page, read_json, write_json

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PENDING = "BLOBS_RECEIVED"


class Blobs:
    """Uploaded files, by token."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def start(self, name: str, size: int, kind: str) -> dict[str, str]:
        token = uuid.uuid4().hex
        write_json(self.folder / f"{token}.json", {"name": name, "contentLength": int(size or 0), "type": kind,
                                                   "created": iso()})
        (self.folder / f"{token}.bin").write_bytes(b"")
        return {"token": token, "createUrl": f"{BASE_URL}/upload/{token}"}

    def info(self, token: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{32}", token or ""):
            return None
        return read_json(self.folder / f"{token}.json")

    def path(self, token: str) -> Path | None:
        """The bytes of a complete upload (None when unknown or incomplete)."""
        info = self.info(token)
        data = self.folder / f"{token}.bin"
        if info is None or not data.is_file() or data.stat().st_size != info["contentLength"]:
            return None
        return data

    def put(self, request: Recorded) -> Answer:
        token = request.path.rsplit("/", 1)[-1]
        info = self.info(token)
        if info is None:
            return error(404, "upload not found or expired")
        data_path = self.folder / f"{token}.bin"
        total = info["contentLength"]
        content_range = request.headers.get("Content-Range", "")
        with self._lock:
            if content_range.startswith("bytes */"):  # a resumable upload asks how much arrived
                held = data_path.stat().st_size
                if held == total:
                    return Answer(200, {})
                return Answer(308, {}, {"Range": f"bytes=0-{held - 1}"} if held else {})
            start = 0
            found = re.match(r"bytes (\d+)-(\d+)/(\d+)", content_range)
            if found:
                start = int(found.group(1))
            with open(data_path, "r+b") as out:
                out.truncate(start)
                out.seek(start)
                out.write(request.raw)
            held = data_path.stat().st_size
        if held == total:
            return Answer(200, {})
        if held > total:
            return error(400, f"upload {info['name']}: {held} bytes sent, {total} announced")
        return Answer(308, {}, {"Range": f"bytes=0-{held - 1}"})

    def start_blob_upload(self, request: Recorded) -> Answer:
        body = request.body
        if not body.get("name"):
            return error(400, "StartBlobUpload: name is required")
        return Answer(body=self.start(body["name"], body.get("contentLength", 0), body.get("type", "")))


class Datasets:
    """Datasets and their versions, under ``folder``."""

    def __init__(self, folder: Path, blobs: Blobs, faults: Faults, *, ready_delay: float = 1.0):
        self.folder, self.blobs, self.faults, self.ready_delay = Path(folder), blobs, faults, ready_delay
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def routes(self) -> dict[str, Callable[[Recorded], Answer]]:
        return {"GetDatasetStatus": self.get_status, "GetDataset": self.get_dataset, "CreateDataset": self.create,
                "CreateDatasetVersion": self.create_version, "ListDatasetFiles": self.list_files,
                "StartBlobUpload": self.blobs.start_blob_upload}

    # -- state --------------------------------------------------------------------------------------------------------
    def _dir(self, ref: str) -> Path:
        owner, slug = ref.split("/", 1)
        return self.folder / owner / slug

    def versions(self, ref: str) -> list[int]:
        folder = self._dir(ref) / "versions"
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []

    def exists(self, ref: str) -> bool:
        return (self._dir(ref) / "dataset.json").is_file()

    def version_meta(self, ref: str, number: int) -> dict[str, Any]:
        return read_json(self._dir(ref) / "versions" / str(number) / "version.json")

    def is_ready(self, ref: str, number: int) -> bool:
        ready_at = self.version_meta(ref, number).get("ready_at")
        return ready_at is not None and time.time() >= ready_at

    def current_ready(self, ref: str) -> tuple[int, Path] | None:
        """The newest ready version and its files folder: what a kernel that starts now gets attached."""
        for number in reversed(self.versions(ref)):
            if self.is_ready(ref, number):
                return number, self._dir(ref) / "versions" / str(number) / "files"
        return None

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for meta_path in sorted(self.folder.glob("*/*/dataset.json")):
            ref = read_json(meta_path)["ref"]
            latest = self.versions(ref)[-1]
            rows.append({"ref": ref, "version": latest, "status": "ready" if self.is_ready(ref, latest) else
                         "pending"})
        return rows

    def _new_version(self, ref: str, files: list[dict[str, Any]], notes: str | None) -> tuple[int | None, str]:
        """Make the next version from uploaded ``files`` ({"token"}); (its number, "") or (None, the problem)."""
        paths = []
        for item in files:
            path = self.blobs.path(item.get("token", ""))
            if path is None:
                return None, f"file upload {item.get('token')!r} was not found or is incomplete"
            info = self.blobs.info(item["token"])
            assert info is not None  # a complete upload (it has a path) has its info
            paths.append((info["name"], path))
        if not paths:
            return None, "a dataset version needs at least one file"
        with self._lock:
            number = (self.versions(ref) or [0])[-1] + 1
            vdir = self._dir(ref) / "versions" / str(number)
            target = vdir / "files"
            target.mkdir(parents=True)
            for name, path in paths:
                _unpack_or_copy(name, path, target)
            pending = self.faults.take("dataset_pending", dataset=ref)
            write_json(vdir / "version.json", {"version": number, "created": iso(), "notes": notes,
                                               "ready_at": None if pending else time.time() + self.ready_delay,
                                               "files": files_under(target)})
        return number, ""

    # -- API ----------------------------------------------------------------------------------------------------------
    def _ref(self, body: dict[str, Any]) -> str | None:
        owner, slug = body.get("ownerSlug") or "", body.get("datasetSlug") or body.get("slug") or ""
        return f"{owner}/{slug}" if owner and slug else None

    def get_status(self, request: Recorded) -> Answer:
        ref = self._ref(request.body)
        if ref is None or not self.exists(ref):
            return error(404, "Not found")
        latest = self.versions(ref)[-1]
        return Answer(body={"status": "READY" if self.is_ready(ref, latest) else PENDING})

    def get_dataset(self, request: Recorded) -> Answer:
        ref = self._ref(request.body)
        if ref is None or not self.exists(ref):
            return error(404, "Not found")
        meta = read_json(self._dir(ref) / "dataset.json")
        versions = [{"versionNumber": n, "creationDate": self.version_meta(ref, n)["created"],
                     "versionNotes": self.version_meta(ref, n).get("notes") or "",
                     "status": "ready" if self.is_ready(ref, n) else "pending"} for n in self.versions(ref)]
        return Answer(body={"id": meta["id"], "ref": ref, "title": meta["title"], "ownerRef": ref.split("/")[0],
                            "currentVersionNumber": versions[-1]["versionNumber"], "isPrivate": meta["isPrivate"],
                            "url": f"https://www.kaggle.com/datasets/{ref}", "versions": versions})

    def list_files(self, request: Recorded) -> Answer:
        body = request.body
        ref = self._ref(body)
        if ref is None or not self.exists(ref):
            return error(404, "Not found")
        number = body.get("datasetVersionNumber") or self.versions(ref)[-1]
        folder = self._dir(ref) / "versions" / str(number) / "files"
        if not folder.is_dir():
            return error(404, "Not found")
        names, token = page(files_under(folder), body.get("pageSize"), body.get("pageToken"))
        return Answer(body={"datasetFiles": [{"name": n, "totalBytes": (folder / n).stat().st_size,
                                              "creationDate": iso((folder / n).stat().st_mtime)} for n in names],
                            "nextPageToken": token})

    def create(self, request: Recorded) -> Answer:
        body = request.body
        ref = self._ref(body)
        problem = _check_new(body, ref)  # refuses a missing ref
        if not problem and ref is not None and self.exists(ref):
            problem = f'The requested slug "{ref.split("/")[1]}" is already in use by a dataset. Please choose ' \
                      "another slug."
        if problem or ref is None:
            return Answer(body={"ref": "", "url": "", "status": "error", "error": problem, "invalidTags": []})
        number, problem = self._new_version(ref, body.get("files") or [], "Initial release")
        if number is None:
            shutil.rmtree(self._dir(ref), ignore_errors=True)
            return Answer(body={"ref": "", "url": "", "status": "error", "error": problem, "invalidTags": []})
        write_json(self._dir(ref) / "dataset.json", {
            "ref": ref, "id": zlib.crc32(ref.encode()) % 10**7, "title": body.get("title"),
            "isPrivate": body.get("isPrivate", True), "license": body.get("licenseName"), "created": iso(),
            "user": request.user})
        return Answer(body=_created(ref))

    def create_version(self, request: Recorded) -> Answer:
        body = request.body
        ref = self._ref(body)
        if ref is None or not self.exists(ref):
            return error(404, f"Dataset {ref} not found")
        inner = body.get("body") or {}
        number, problem = self._new_version(ref, inner.get("files") or [], inner.get("versionNotes"))
        if number is None:
            return Answer(body={"ref": "", "url": "", "status": "error", "error": problem, "invalidTags": []})
        return Answer(body=_created(ref))


def _created(ref: str) -> dict[str, Any]:
    return {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok", "error": "",
            "invalidTags": []}


def _check_new(body: dict[str, Any], ref: str | None) -> str | None:
    if ref is None:
        return "ownerSlug and slug are required"
    slug, title = ref.split("/")[1], body.get("title") or ""
    if not 6 <= len(slug) <= 50 or not SLUG.match(slug):
        return f"The dataset slug {slug!r} must be 6-50 characters: lower-case letters, digits and single hyphens"
    if not 6 <= len(title) <= 50:
        return "The dataset title must be between 6 and 50 characters"
    return None


def _unpack_or_copy(name: str, path: Path, target: Path) -> None:
    """An uploaded archive becomes a folder of its name (Kaggle unpacks them); any other file is copied."""
    if name.endswith(".zip") and zipfile.is_zipfile(path):
        folder = target / name[: -len(".zip")]
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if _safe_member(folder, member.filename):
                    archive.extract(member, folder)
        return
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix) and tarfile.is_tarfile(path):
            folder = target / name[: -len(suffix)]
            with tarfile.open(path) as archive:
                archive.extractall(folder, members=[m for m in archive.getmembers()
                                                    if (m.isfile() or m.isdir()) and _safe_member(folder, m.name)])
            return
    shutil.copy2(path, target / name)


def _safe_member(folder: Path, name: str) -> bool:
    resolved = (folder / name).resolve()
    return folder.resolve() in resolved.parents or resolved == folder.resolve()
