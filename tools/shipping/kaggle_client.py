"""The one door from digitkit to Kaggle: typed calls over the ``kaggle`` package's Python API (kaggle 2.2.5).

    pushed = push_kernel(Path("build/train"))            # Pushed(ref, version, url)
    kernel_status("me/digitkit-train", version=pushed.version)   # KernelStatus("RUNNING", "")
    kernel_output("me/digitkit-train", Path("out"), version=pushed.version)   # every page of files, then the log

Every function sends one operation to Kaggle and returns a structured answer, never printed text. A failure is a
:class:`ShipError` whose message is one line: the equivalent ``kaggle …`` command a user could type, what Kaggle
answered (secrets scrubbed), and what to do. Nothing is printed here; the ``kaggle`` package's own prints (warnings,
retry notices) are caught and passed on to stderr, scrubbed.

Sharp edges, all handled here:

- A dry run refuses: with ``$DIGITKIT_DRY_RUN`` set (``tools.cli.DRY_RUN_ENV``, set for the whole process tree of
  ``make … DRY_RUN=1``) every function raises ShipError before importing ``kaggle`` or sending anything.
- Importing ``kaggle`` authenticates at once (with an access token that is a call), reads ``$KAGGLE_CONFIG_DIR`` and
  ``$VERBOSE`` once, at import, into class attributes. The import happens on the first call, never at module import;
  each client re-reads the environment, and never turns on the package's verbose mode (it prints the
  Authorization header).
- The package sets no timeout on API requests or uploads: each request here gets ``timeout`` seconds to connect and
  between two reads (requests' meaning: not a limit on a whole transfer).
- One call at a time per process: while a call runs, the package's prints are caught and requests' default timeout
  is set process-wide (its sessions are made deep inside it). Call from one thread.
- Retries are bounded (``RETRY_DELAYS``): a 429 (Kaggle refused the request: nothing was done) is retried for every
  call, honouring Retry-After up to ``MAX_RETRY_AFTER``; a 5xx or a broken connection is retried only for reads and
  downloads, never for a push, an upload or a submission (it may have been done: a retry could do it twice).

Version tracking (what the API offers, read in kaggle 2.2.5 / kagglesdk 0.1.38):

- ``SaveKernel`` (push) answers the new version's number: ``Pushed.version``.
- ``GetKernelSessionStatus`` answers only ``status`` and ``failureMessage``, not which version they describe. Without
  a version it describes the latest session, which right after a push can still be the previous run (the stale run
  that kaggle-cli PR #1177's ``kernels run`` guards against). Its request takes ``version_label``, written ``v<N>``
  (a bare number is a 404; kaggle-cli #1200/#1201): ``kernel_status(ref, version=N)`` asks about version N itself, so
  a loop that pushed version N never reads the previous run's COMPLETE. ``kernel_output`` and ``kernel_log`` take
  ``version`` the same way (``ListKernelSessionOutput.version_label``).
- ``GetKernel`` (what ``kaggle kernels pull --metadata`` reads) answers ``metadata.current_version_number``, the
  kernel's latest saved version, and ``last_run_time``: :func:`kernel_version`. A loop that did not push (a restart)
  can read it, then pin its status and output calls to that version.
- Datasets: ``GetDatasetStatus`` answers the processing state only; ``GetDataset`` has ``current_version_number``.

Local-only code: it is never inlined into a notebook.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tools.cli import DRY_RUN_ENV
from tools.shipping import ShipError
from tools.shipping.credentials import CREDENTIALS_HELP, credentials_problem, scrub

__all__ = ["ShipError", "KaggleCallError", "KaggleClient", "Pushed", "KernelStatus", "Submission", "Quota",
           "push_kernel", "kernel_status", "kernel_version", "kernel_output", "kernel_log", "dataset_status",
           "create_dataset", "version_dataset", "submit", "submissions", "quota", "download_data", "username",
           "command_line"]

COMPETITION = "digit-recognizer"
DEFAULT_TIMEOUT = 120.0  # seconds one HTTP request may take to connect, and between two reads
RETRY_DELAYS = (2.0, 8.0, 30.0)  # seconds before each retry: at most len(RETRY_DELAYS) retries
MAX_RETRY_AFTER = 120.0  # a longer Retry-After is not waited for: the call fails, saying when to try again
FINISHED = ("COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED")
OUTPUT_PAGE_SIZE = 100  # files per ListKernelSessionOutput page (the CLI asks for 20; the API allows 200)
_HINTS = (  # (pattern in "HTTP <status> <message>", what to do), first match wins
    (r"less than 1 megabytes", "shrink the notebook below 1 MB: inline less code, drop embedded data/images, clear "
                               "outputs, then rebuild (make build) and push again"),
    (r"not valid dataset sources", "publish the weights first (make weights waits until the dataset is ready) and "
                                   "check dataset_sources in kernel-metadata/*.json.j2"),
    (r"not valid \w+ sources", "check the *_sources lists in kernel-metadata/*.json.j2"),
    (r"already in use", "the slug belongs to another dataset of yours: change the id in weights/dataset-metadata.json"),
    (r"Kernel push error", "fix what the message names (kernel-metadata/<kernel>.json.j2 or the notebook), rebuild "
                           "and push again"),
    (r"accept its rules|accept this competition|don't have access",
     f"accept the rules at https://www.kaggle.com/competitions/{COMPETITION}/rules with the account of your "
     "credentials, then run it again"),
    (r"^HTTP (401|403)\b|Unauthori[sz]ed|Unauthenticated|Authentication required|was denied|Forbidden",
     "check your credentials (" + CREDENTIALS_HELP + ") and the id"),
    (r"^HTTP 429\b|rate limited", "Kaggle is rate-limiting you: wait a few minutes, then run it again"),
    (r"^HTTP 5\d\d\b|Server Error|Service Unavailable", "Kaggle's servers failed: retry later"),
    (r"^HTTP 404\b|not found", "check the id (owner/slug) and that it exists on kaggle.com"),
    (r"^connection\b", "check your connection to kaggle.com (and any proxy), then run it again"),
)
_PROGRESS = re.compile(r"^\s*\d+%\|")  # tqdm bars
T = TypeVar("T")


class KaggleCallError(ShipError):
    """A call Kaggle answered with an error (``status``: its HTTP status, 0 when it never answered)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------------------ answers
@dataclass(frozen=True)
class Pushed:
    ref: str  # "owner/slug"
    version: int | None  # the version this push saved (None if Kaggle did not say)
    url: str


@dataclass(frozen=True)
class KernelStatus:
    state: str  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED or NEW_SCRIPT
    failure: str = ""  # Kaggle's failure message ("" unless ERROR)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class Submission:
    ref: int
    date: str | None  # ISO time, UTC
    description: str
    file_name: str
    status: str  # PENDING, COMPLETE or ERROR
    public_score: float | None  # None while pending
    private_score: float | None
    error: str = ""


@dataclass(frozen=True)
class Quota:
    gpu_used_s: float  # this week's GPU time used, in seconds
    gpu_reserved_s: float  # held by sessions running now
    gpu_allowed_s: float
    tpu_used_s: float
    tpu_allowed_s: float
    refresh_time: str | None  # ISO time the weekly window resets

    @property
    def gpu_left_s(self) -> float:
        return max(0.0, self.gpu_allowed_s - self.gpu_used_s - self.gpu_reserved_s)

    def __str__(self) -> str:
        hours = lambda seconds: f"{seconds / 3600:.1f} h"  # noqa: E731
        return (f"GPU {hours(self.gpu_used_s)} used" + (f" + {hours(self.gpu_reserved_s)} running"
                                                        if self.gpu_reserved_s else "")
                + f" of {hours(self.gpu_allowed_s)}, {hours(self.gpu_left_s)} left"
                + (f"; resets {self.refresh_time}" if self.refresh_time else ""))


# ------------------------------------------------------------------------------------------------------ the door
def command_line(args: list[Any]) -> str:
    """The ``kaggle …`` command a user could type for the same operation."""
    return shlex.join(["kaggle", *map(str, args)])


@contextlib.contextmanager
def _default_timeout(seconds: float):
    """Give every request made through requests while inside ``seconds`` of timeout unless it names its own: the
    package sets none on its API calls and uploads (its sessions are made deep inside it). Process-wide while it
    lasts, like the print capture: one call at a time per process."""
    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send

    def send(self, request, stream=False, timeout=None, **kwargs):  # requests' signature
        return original(self, request, stream=stream, timeout=timeout or seconds, **kwargs)

    HTTPAdapter.send = send  # type: ignore[method-assign, assignment]  # process-wide while it lasts, undone below
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]  # the patch undone


_cache: dict[tuple, Any] = {}


def _api() -> Any:
    """An authenticated KaggleApi for the current environment (kept while the environment is unchanged)."""
    key = (str(Path.home()), *(f"{k}={v}" for k, v in sorted(os.environ.items())
                               if k.startswith(("KAGGLE_", "XDG_CONFIG")) or k.lower().endswith("_proxy")))
    if key in _cache:
        return _cache[key]
    saved = {name: os.environ.pop(name) for name in ("VERBOSE", "VERBOSE_OUTPUT") if name in os.environ}
    try:  # the import authenticates once and reads $VERBOSE: never verbose (it prints the Authorization header)
        with _caught_prints():
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as err:
        raise ShipError(f"the kaggle package cannot be imported ({err}): run `make venv` (requirements.txt pins "
                        "kaggle==2.2.5 and six)") from None
    finally:
        os.environ.update(saved)

    class Api(KaggleApi):
        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            client._http_client._verbose = False  # verbose prints the Authorization header
            return client

    api = Api()
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR") or str(Path.home() / ".kaggle")
    if not os.environ.get("KAGGLE_CONFIG_DIR") and sys.platform.startswith("linux") and not Path(config_dir).exists():
        config_dir = str(Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle")
    api.config_dir, api.config = config_dir, os.path.join(config_dir, "kaggle.json")
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    try:
        with _caught_prints():
            api.authenticate()
    except SystemExit:
        raise ShipError("credentials: the kaggle package found none it could use; " + CREDENTIALS_HELP) from None
    _cache.clear()
    _cache[key] = api
    return api


@contextlib.contextmanager
def _caught_prints():
    """Catch what the kaggle package prints; pass it on to stderr, scrubbed, without progress bars."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        lines = [line for line in re.split(r"[\r\n]+", scrub(buffer.getvalue()))
                 if line.strip() and not _PROGRESS.match(line)]
        if lines:
            print("\n".join(f"kaggle: {line}" for line in lines), file=sys.stderr, flush=True)


def _response(err: BaseException) -> Any:
    """The HTTP answer a failed call carries (requests' HTTPError and the package's errors keep one), or None."""
    return getattr(err, "response", None)


def _http_status(err: BaseException) -> int:
    """The HTTP status of a failed call: the answer's own ``code`` when it has one (Kaggle's API may answer an error
    with HTTP 200 and ``{"code": 429, "message": …}``), else the HTTP status; 0 when nothing answered."""
    response = _response(err)
    try:
        code = response.json().get("code") if response is not None else None
    except (ValueError, AttributeError):
        code = None
    if isinstance(code, int) and code >= 400:
        return code
    return int(getattr(response, "status_code", 0) or 0)


def _problem(err: BaseException) -> str:
    """What went wrong, as "HTTP 404 Dataset not found", "connection …" or the exception's own message."""
    import requests

    status = _http_status(err)
    if status:
        message = str(err)
        try:
            body = _response(err).json()  # a status came from it
            message = str(body.get("message") or body.get("error") or message) if isinstance(body, dict) else message
        except ValueError:
            pass
        message = re.sub(rf"^{status} (Client|Server) Error: ", "", message)
        return f"HTTP {status} {message}"
    if isinstance(err, (requests.ConnectionError, requests.Timeout)):
        return f"connection to Kaggle failed ({type(err).__name__}: {err})"
    return str(err) or type(err).__name__


def failure(command: str, problem: str, status: int = 0) -> KaggleCallError:
    """One line: the command, what Kaggle said (scrubbed) and what to do."""
    problem = " ".join(scrub(problem).split())
    hint = next((hint for pattern, hint in _HINTS if re.search(pattern, problem, re.I)), "see the message; then run "
                "it again")
    return KaggleCallError(f"`{command}` failed: {problem}; what to do: {hint}", status)


def _retry_delay(err: BaseException, attempt: int, *, idempotent: bool) -> float | None:
    """Seconds to wait before retrying ``err`` (attempt 0 = the first retry); None: do not retry."""
    import requests

    if attempt >= len(RETRY_DELAYS):
        return None
    status = _http_status(err)
    if status == 429:
        after = _response(err).headers.get("Retry-After", "")
        wait = float(after) if after.strip().isdigit() else RETRY_DELAYS[attempt]
        return wait if wait <= MAX_RETRY_AFTER else None
    # a connection cut mid-answer too: urllib3 enforces Content-Length and requests raises ChunkedEncodingError
    broken = isinstance(err, (requests.ConnectionError, requests.Timeout,
                              requests.exceptions.ChunkedEncodingError)) and not status
    if idempotent and (status >= 500 or broken):
        return RETRY_DELAYS[attempt]
    return None


def _call(command: list[Any], operation: Callable[[Any], T], *, idempotent: bool, timeout: float) -> T:
    """Run ``operation(api)`` with the guard, credentials, retries and one-line errors."""
    line = command_line(command)
    if os.environ.get(DRY_RUN_ENV):  # the door stays shut for the whole process tree of a dry run
        raise ShipError(f"a dry run reached `{line}`: nothing was sent (please report this bug)")
    if problem := credentials_problem():
        raise ShipError(problem)
    try:
        with _default_timeout(timeout):
            api = _api()  # with an access token, authenticating is a call
    except ShipError:
        raise
    except Exception as err:  # noqa: BLE001
        raise failure(line, _problem(err), _http_status(err)) from None
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            with _caught_prints(), _default_timeout(timeout):
                return operation(api)
        except ShipError:
            raise
        except Exception as err:  # noqa: BLE001 — every failure of the package becomes one line
            wait = _retry_delay(err, attempt, idempotent=idempotent)
            if wait is None:
                raise failure(line, _problem(err), _http_status(err)) from None
            print(f"kaggle: `{line}`: {scrub(_problem(err))}; retry {attempt + 1}/{len(RETRY_DELAYS)} in {wait:g} s",
                  file=sys.stderr, flush=True)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _owner_slug(ref: str) -> tuple[str, str]:
    parts = ref.split("/")
    if len(parts) != 2 or not all(parts):
        raise ShipError(f"{ref!r} is not 'owner/slug'")
    return parts[0], parts[1]


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return str(value) if value else None


def _score(text: Any) -> float | None:
    try:
        return float(text) if str(text or "").strip() else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------------ kernels
def push_kernel(folder: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Pushed:
    """Save and run a new version of the kernel in ``folder`` (kernel-metadata.json + its code_file).

    Raises:
        ShipError: Kaggle refused it ("Kernel push error: …"), or saved it with sources it does not know (the version
            exists but runs without them).
    """
    line = ["kernels", "push", "-p", folder]
    answer = _call(line, lambda api: api.kernels_push(str(folder)), idempotent=False, timeout=timeout)
    if answer is None or answer.error:
        raise failure(command_line(line), f"Kernel push error: {answer.error if answer else 'no answer'}")
    invalid = [(kind, names) for kind, names in (
        ("dataset", answer.invalid_dataset_sources), ("competition", answer.invalid_competition_sources),
        ("kernel", answer.invalid_kernel_sources), ("model", answer.invalid_model_sources)) if names]
    if invalid:
        saved = f"version {answer.version_number} was saved, but " if answer.version_number else ""
        raise failure(command_line(line), saved + "; ".join(f"the following are not valid {kind} sources: "
                                                            f"{', '.join(names)}" for kind, names in invalid))
    ref = answer.ref.removeprefix("/code/").strip("/") or _meta_id(folder)
    return Pushed(ref=ref, version=answer.version_number, url=answer.url)


def _meta_id(folder: Path) -> str:
    from tools.kaggle_ids import read_json

    return str(read_json(Path(folder) / "kernel-metadata.json").get("id", ""))


def _kernel(ref: str, version: int | None = None) -> tuple[str, str, int | None]:
    """(owner, slug, version) from "owner/slug" or "owner/slug/N" (also "owner/slug/vN"); ``version`` wins."""
    parts = ref.split("/")
    if len(parts) == 3 and re.fullmatch(r"v?\d+", parts[2]):
        version = int(parts[2].lstrip("v")) if version is None else version
        parts = parts[:2]
    owner, slug = _owner_slug("/".join(parts))
    return owner, slug, version


def _kernel_request(request: Any, ref: str, version: int | None) -> Any:
    request.user_name, request.kernel_slug, version = _kernel(ref, version)
    if version is not None:
        request.version_label = f"v{int(version)}"  # the API's form; a bare number is a 404
    return request


def _ref_line(ref: str, version: int | None) -> str:
    owner, slug, version = _kernel(ref, version)
    return f"{owner}/{slug}" + (f"/{version}" if version is not None else "")


def kernel_status(ref: str, *, version: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> KernelStatus:
    """The state of the kernel's latest session, or of version ``version``'s (also ``ref`` = "owner/slug/N"): asking
    for the version a push returned never reads the previous run's state (see the module's notes)."""
    def operation(api: Any) -> KernelStatus:
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        with api.build_kaggle_client() as kaggle:
            answer = kaggle.kernels.kernels_api_client.get_kernel_session_status(
                _kernel_request(ApiGetKernelSessionStatusRequest(), ref, version))
        return KernelStatus(state=answer.status.name, failure=answer.failure_message or "")

    return _call(["kernels", "status", _ref_line(ref, version)], operation, idempotent=True, timeout=timeout)


def kernel_version(ref: str, *, timeout: float = DEFAULT_TIMEOUT) -> int | None:
    """The kernel's latest saved version (GetKernel's metadata.current_version_number); None if Kaggle has none."""
    def operation(api: Any) -> int | None:
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

        with api.build_kaggle_client() as kaggle:
            answer = kaggle.kernels.kernels_api_client.get_kernel(_kernel_request(ApiGetKernelRequest(), ref, None))
        return (answer.metadata.current_version_number or None) if answer.metadata else None

    return _call(["kernels", "pull", ref, "--metadata"], operation, idempotent=True, timeout=timeout)


def _output_page(api: Any, ref: str, version: int | None, token: str, page_size: int) -> Any:
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    request = _kernel_request(ApiListKernelSessionOutputRequest(), ref, version)
    request.page_size, request.page_token = page_size, token
    with api.build_kaggle_client() as kaggle:
        return kaggle.kernels.kernels_api_client.list_kernel_session_output(request)


def _download_with(api: Any, *, url: str, target: Path, timeout: float) -> None:
    """``_download`` as the operation ``_call`` runs (it needs no ``api``: a GET of the file's own URL)."""
    _download(url, target, timeout)


def _download(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target`` through a partial file (an interrupted download leaves no file)."""
    import requests

    partial = target.with_name(target.name + ".kaggle-partial")
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(partial, "wb") as handle:  # a body cut short of its Content-Length raises (urllib3)
            for chunk in response.iter_content(chunk_size=1 << 20):
                handle.write(chunk)
    os.replace(partial, target)


def kernel_output(ref: str, dest: Path, *, version: int | None = None, page_size: int = OUTPUT_PAGE_SIZE,
                  timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Download every output file of the kernel's latest (or ``version``'s) session into ``dest``, all pages, and its
    log as ``<slug>.log`` when there is one; return the paths written. A name that would land outside ``dest`` is
    refused."""
    line = ["kernels", "output", _ref_line(ref, version), "-p", dest]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: list[Path] = []
    token, log = "", None
    while True:
        page = _call(line, functools.partial(_output_page, ref=ref, version=version, token=token, page_size=page_size),
                     idempotent=True, timeout=timeout)
        log = page.log if log is None else log
        for item in page.files or []:
            target = dest / item.file_name
            if not target.resolve().is_relative_to(root):
                raise failure(command_line(line), f"the output names {item.file_name!r}, which lies outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            _call(line, functools.partial(_download_with, url=item.url, target=target, timeout=timeout),
                  idempotent=True, timeout=timeout)
            written.append(target)
        token = page.next_page_token or ""
        if not token:
            break
    if log:
        target = dest / f"{_kernel(ref)[1]}.log"
        target.write_text(log, encoding="utf-8")
        written.append(target)
    return written


def kernel_log(ref: str, *, version: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The log of the kernel's latest (or ``version``'s) session; "" when it has none yet."""
    return _call(["kernels", "logs", _ref_line(ref, version)],
                 lambda api: _output_page(api, ref, version, "", 1).log or "", idempotent=True, timeout=timeout)


def quota(*, timeout: float = DEFAULT_TIMEOUT) -> Quota:
    """This week's GPU and TPU time: used, reserved by running sessions, allowed; when the window resets."""
    def seconds(value: Any) -> float:
        return value.total_seconds() if isinstance(value, dt.timedelta) else float(value or 0)

    def operation(api: Any) -> Quota:
        answer = api.quota_view()
        gpu, tpu = answer.gpu_quota, answer.tpu_quota
        return Quota(gpu_used_s=seconds(gpu and gpu.time_used), gpu_reserved_s=seconds(gpu and gpu.time_reserved),
                     gpu_allowed_s=seconds(gpu and gpu.total_time_allowed), tpu_used_s=seconds(tpu and tpu.time_used),
                     tpu_allowed_s=seconds(tpu and tpu.total_time_allowed),
                     refresh_time=_iso(answer.quota_refresh_time))

    return _call(["quota"], operation, idempotent=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------------ datasets
def dataset_status(ref: str, *, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The dataset's processing state in lower case ("ready", "not_yet_persisted", "blobs_received", "failed", …);
    None when Kaggle has no such dataset (404)."""
    line = ["datasets", "status", ref]
    try:
        return _call(line, lambda api: api.dataset_status(ref), idempotent=True, timeout=timeout)
    except KaggleCallError as err:
        if err.status == 404:
            return None
        raise


def _dataset_answer(line: list[Any], answer: Any, verb: str) -> str:
    if answer is None or getattr(answer, "error", None):
        raise failure(command_line(line), f"Dataset {verb} error: {answer.error if answer else 'no answer'}")
    return answer.url or answer.ref


def create_dataset(folder: Path, *, dir_mode: str = "skip", public: bool = False,
                   timeout: float = DEFAULT_TIMEOUT) -> str:
    """Create the dataset described by ``folder``/dataset-metadata.json from the folder's files (sub-folders zipped
    with ``dir_mode="zip"``, else skipped); return its URL. Refused when the slug is in use."""
    line = ["datasets", "create", "-p", folder, *(["--dir-mode", dir_mode] if dir_mode != "skip" else []),
            *(["--public"] if public else [])]
    answer = _call(line, lambda api: api.dataset_create_new(str(folder), public=public, quiet=True,
                                                            convert_to_csv=False, dir_mode=dir_mode),
                   idempotent=False, timeout=timeout)
    return _dataset_answer(line, answer, "creation")


def version_dataset(folder: Path, message: str, *, dir_mode: str = "skip", timeout: float = DEFAULT_TIMEOUT) -> str:
    """Add a version to the dataset of ``folder``/dataset-metadata.json, ``message`` its notes; return its URL."""
    line = ["datasets", "version", "-p", folder, "-m", message, *(["--dir-mode", dir_mode] if dir_mode != "skip"
                                                                  else [])]
    answer = _call(line, lambda api: api.dataset_create_version(str(folder), message, quiet=True, convert_to_csv=False,
                                                                dir_mode=dir_mode),
                   idempotent=False, timeout=timeout)
    return _dataset_answer(line, answer, "version")


# ------------------------------------------------------------------------------------------------------ competition
def submit(file: Path, message: str, *, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Submit ``file`` to Digit Recognizer with ``message``; return Kaggle's submission ref (0 if it gave none)."""
    line = ["competitions", "submit", "-c", COMPETITION, "-f", file, "-m", message]
    answer = _call(line, lambda api: api.competition_submit(str(file), message, COMPETITION, quiet=True),
                   idempotent=False, timeout=timeout)
    if answer is None or (not answer.ref and "Could not submit" in (answer.message or "")):
        raise failure(command_line(line), answer.message if answer else "no answer")
    return int(answer.ref or 0)


def submissions(page_size: int = 100, *, timeout: float = DEFAULT_TIMEOUT) -> list[Submission]:
    """The latest ``page_size`` submissions to Digit Recognizer, newest first."""
    def operation(api: Any) -> list[Submission]:
        found = api.competition_submissions(COMPETITION, page_size=page_size) or []
        return [Submission(ref=int(s.ref or 0), date=_iso(s.date), description=s.description or "",
                           file_name=s.file_name or "", status=getattr(s.status, "name", str(s.status)),
                           public_score=_score(s.public_score), private_score=_score(s.private_score),
                           error=s.error_description or "") for s in found if s is not None]

    return _call(["competitions", "submissions", COMPETITION, "--page-size", page_size], operation, idempotent=True,
                 timeout=timeout)


def download_data(folder: Path, *, timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Download the competition's files (one zip) into ``folder``; return the files now in it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _call(["competitions", "download", "-c", COMPETITION, "-p", folder],
          lambda api: api.competition_download_files(COMPETITION, str(folder), force=True, quiet=True),
          idempotent=True, timeout=timeout)
    return sorted(path for path in folder.iterdir() if path.is_file())


def username(*, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The Kaggle username of the credentials (with an access token alone, the one Kaggle names for it)."""
    return _call(["config", "view"], lambda api: api.config_values.get("username") or None, idempotent=True,
                 timeout=timeout)


# ------------------------------------------------------------------------------------------------------ as an object
class KaggleClient:
    """The functions above as methods, with one ``timeout``: what tools.kaggle_loop (and a test double) takes."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout

    def push_kernel(self, folder: Path) -> Pushed:
        return push_kernel(folder, timeout=self.timeout)

    def kernel_status(self, ref: str, version: int | None = None) -> KernelStatus:
        return kernel_status(ref, version=version, timeout=self.timeout)

    def kernel_version(self, ref: str) -> int | None:
        return kernel_version(ref, timeout=self.timeout)

    def kernel_output(self, ref: str, dest: Path, version: int | None = None) -> list[Path]:
        return kernel_output(ref, dest, version=version, timeout=self.timeout)

    def kernel_log(self, ref: str, version: int | None = None) -> str:
        return kernel_log(ref, version=version, timeout=self.timeout)

    def quota(self) -> Quota:
        return quota(timeout=self.timeout)

    def dataset_status(self, ref: str) -> str | None:
        return dataset_status(ref, timeout=self.timeout)

    def create_dataset(self, folder: Path, dir_mode: str = "skip") -> str:
        return create_dataset(folder, dir_mode=dir_mode, timeout=self.timeout)

    def version_dataset(self, folder: Path, message: str, dir_mode: str = "skip") -> str:
        return version_dataset(folder, message, dir_mode=dir_mode, timeout=self.timeout)

    def submit(self, file: Path, message: str) -> int:
        return submit(file, message, timeout=self.timeout)

    def submissions(self, page_size: int = 100) -> list[Submission]:
        return submissions(page_size, timeout=self.timeout)

    def download_data(self, folder: Path) -> list[Path]:
        return download_data(folder, timeout=self.timeout)

    def username(self) -> str | None:
        return username(timeout=self.timeout)
