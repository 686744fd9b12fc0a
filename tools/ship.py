"""Ship digitkit to Kaggle with the pinned ``kaggle`` CLI: push, status, output, weights, submit, data.

    python -m tools.ship push    --kernel train [--build-dir build] [--dry-run]
    python -m tools.ship status  --kernel train [--id OWNER/SLUG]
    python -m tools.ship output  --kernel train [--dest weights]
    python -m tools.ship weights [--dir weights] [--message M] [--polls 30] [--poll-delay 10]
    python -m tools.ship submit  [--file submission.csv] [--message M] [--test-file data/digit-recognizer/test.csv]  # default: 28,000 rows
    python -m tools.ship scores  [--page-size 100]  # public scores → the submissions.json they came from
    python -m tools.ship data    [--source kaggle] [--dest data/digit-recognizer]

Every command checks locally first and refuses before any call, naming the field and the fix. ``--dry-run`` prints
the exact command and what would be sent, sends nothing and needs no credentials. The CLI runs as a subprocess (never
with VERBOSE=1); its output is echoed with secrets scrubbed, and the failures it reports with exit status 0
("Kernel push error", status ERROR, "creation error", invalid sources) become a non-zero exit with its own message.
Local-only code: it is never inlined into a notebook.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build import git_commit
from core.manifest import MANIFEST_NAME, ManifestError, read_manifest, sha256_file, verify_manifest
from core.submission import SubmissionError, read_submission
from tools import submissions
from tools.cli import DRY_RUN_ENV
from tools.kaggle_ids import KERNELS, MAX_SOURCE_BYTES, PLACEHOLDER_OWNER, kaggle_json, read_json, slugify

COMPETITION = "digit-recognizer"
INFERENCE_KERNELS = ("infer",)  # code-competition rule: no internet, weights come from an attached source
# kagglesdk 0.1.38 documents NvidiaTeslaT4 (T4 x2, the default GPU) and the CLI names TpuV5E8 as the default TPU;
# NvidiaTeslaP100, Tpu1VmV38 and TpuV38 are retired (the server silently runs something else), so they are refused.
MACHINE_SHAPES = ("NvidiaTeslaT4", "TpuV5E8")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
KAGGLE_TEST_ROWS = 28_000
REPO = Path(__file__).resolve().parents[1]
KEEP_IN_WEIGHTS = ("README.md", "dataset-metadata.json")  # tracked files: never uploaded, never overwritten
CREDENTIALS_HELP = ("create an API token at https://www.kaggle.com/settings/api, then export KAGGLE_API_TOKEN=<token>, "
                    "or export KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json (chmod 600) in ~/.kaggle or "
                    "$KAGGLE_CONFIG_DIR")
_EXIT0_FAILURES = (  # what the CLI prints, with exit status 0, when it failed
    re.compile(r"^Kernel push error: .*$", re.M),
    re.compile(r'^.* has status "(?:\w+\.)?ERROR"(?:\nFailure message: .*)?', re.M),
    re.compile(r"^.*[Cc]reation error: .*$", re.M),
    re.compile(r"^The following are not valid \w+ sources .*$", re.M),
)
_HINTS = (  # (pattern in the CLI's output, what to do), first match wins
    (r"less than 1 megabytes", "shrink the notebook below 1 MB: inline less code, drop embedded data/images, clear "
                               "outputs, then rebuild (make build) and push again"),
    (r"not valid dataset sources", "publish the weights first (make weights waits until the dataset is ready) and "
                                   "check dataset_sources in kernel-metadata/*.json.j2"),
    (r"not valid \w+ sources", "check the *_sources lists in kernel-metadata/*.json.j2"),
    (r"already in use", "the slug belongs to another dataset of yours: change the id in weights/dataset-metadata.json"),
    (r"Kernel push error", "fix what the message names (kernel-metadata/<kernel>.json.j2 or the notebook), rebuild "
                           "and push again"),
    (r'has status "', "read the session's log (make output KERNEL=<kernel> downloads it, or open the notebook on "
                      "kaggle.com), fix the cause, then make push again"),
    (r"accept its rules|don't have access", f"accept the rules at https://www.kaggle.com/competitions/{COMPETITION}"
                                            "/rules with the account of your credentials, then run it again"),
    (r"\b401\b|Unauthori[sz]ed|Unauthenticated|Authentication required|was denied|\b403\b|Forbidden",
     "check your credentials (" + CREDENTIALS_HELP + ") and the id"),
    (r"rate limited|\b429\b", "Kaggle is rate-limiting you: wait a few minutes, then run it again"),
    (r"\b5\d\d\b|Kaggle's side|Server Error|Service Unavailable", "Kaggle's servers failed: retry later"),
    (r"\b404\b|not found", "check the id (owner/slug) and that it exists on kaggle.com"),
)
_PROGRESS = re.compile(r"^\s*\d+%\|")  # tqdm bars: noise in logs


class ShipError(Exception):
    """Shipping stopped; the message says what failed and what to do."""


# ---------------------------------------------------------------------------------------------------- credentials
def _token_files() -> list[Path]:
    files = [Path.home() / ".kaggle" / name for name in ("access_token", "access_token.txt")]
    return [path for path in files if path.is_file()]


def credentials_problem() -> str | None:
    """What to set up when the CLI would find no credentials; None when some exist. Never reads them out."""
    config = kaggle_json()
    user = os.environ.get("KAGGLE_USERNAME") or config.get("username")
    key = os.environ.get("KAGGLE_KEY") or config.get("key")
    oauth = (Path.home() / ".kaggle" / "credentials.json").is_file()  # written by `kaggle auth login`
    if os.environ.get("KAGGLE_API_TOKEN") or (user and key) or _token_files() or oauth:
        return None
    return "credentials: none found; " + CREDENTIALS_HELP


def _secrets() -> list[str]:
    token = os.environ.get("KAGGLE_API_TOKEN", "")
    values = [os.environ.get("KAGGLE_KEY", ""), token, str(kaggle_json().get("key", ""))]
    for path in _token_files() + ([Path(token)] if token and Path(token).is_file() else []):
        values.append(path.read_text(encoding="utf-8", errors="replace").strip())
    return sorted({value for value in values if len(value) >= 4}, key=len, reverse=True)


def scrub(text: str) -> str:
    """Remove every known secret (key, token) and any Authorization header value from ``text``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return re.sub(r"(?i)((?:proxy-)?authorization:\s*)\S+(?: \S+)?", r"\1***", text)


# ------------------------------------------------------------------------------------------------------ the runner
@dataclass
class CliResult:
    command: str  # what the user would type: "kaggle kernels push -p build/train"
    returncode: int
    stdout: str  # scrubbed
    stderr: str  # scrubbed

    @property
    def output(self) -> str:
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr


def kaggle_executable() -> str:
    """The CLI installed beside this interpreter (the pinned one in .venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("kaggle")
    found = str(beside) if beside.is_file() else shutil.which("kaggle")
    if not found:
        raise ShipError("the kaggle CLI is not installed: run `make venv` (requirements.txt pins kaggle==2.2.5)")
    return found


def command_line(args: list[str]) -> str:
    return shlex.join(["kaggle", *map(str, args)])


def _clean(text: str) -> str:
    lines = re.split(r"[\r\n]+", text)
    return "\n".join(line for line in lines if line.strip() and not _PROGRESS.match(line))


def run_kaggle(args: list[str], *, timeout: float = 900, check: bool = True, echo: bool = True) -> CliResult:
    """Run ``kaggle <args>``, echo its scrubbed output, and raise ShipError on any failure (``check``)."""
    args = [str(arg) for arg in args]
    if os.environ.get(DRY_RUN_ENV):  # the one door to Kaggle stays shut for the whole process tree of a dry run
        raise ShipError(f"a dry run reached `{command_line(args)}`: nothing was sent (please report this bug)")
    env = {key: value for key, value in os.environ.items()  # VERBOSE(_OUTPUT)=1 would print the auth header
           if key not in ("VERBOSE", "VERBOSE_OUTPUT")}
    print(f"$ {command_line(args)}", flush=True)
    try:
        proc = subprocess.run([kaggle_executable(), *args], capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise ShipError(f"`{command_line(args)}` did not finish in {timeout:.0f} s: check your connection to "
                        "kaggle.com and run it again") from None
    result = CliResult(command_line(args), proc.returncode, _clean(scrub(proc.stdout)), _clean(scrub(proc.stderr)))
    if echo and result.output:
        print(result.output, flush=True)
    if check:
        raise_for_failure(result)
    return result


def raise_for_failure(result: CliResult) -> None:
    """Turn a non-zero exit, or one of the CLI's exit-0 failure messages, into ShipError with a hint."""
    failures = [match.group(0) for pattern in _EXIT0_FAILURES for match in pattern.finditer(result.stdout)]
    if result.returncode == 0 and not failures:
        return
    message = "\n".join(failures) or "\n".join((result.stderr or result.stdout).splitlines()[:3]) or "(no output)"
    hint = next((hint for pattern, hint in _HINTS if re.search(pattern, result.output)), "see the CLI's output above")
    status = f"exit status {result.returncode}" if result.returncode else "it exited 0 but reported a failure"
    raise ShipError(f"`{result.command}` failed ({status}):\n{message}\nwhat to do: {hint}")


def resolve_username(*, dry_run: bool = False) -> str | None:
    """$KAGGLE_USERNAME, kaggle.json's username, else (token only) what `kaggle config view` reports."""
    user = os.environ.get("KAGGLE_USERNAME") or kaggle_json().get("username")
    if user or dry_run:
        return user or None
    found = re.search(r"^- username: (\S+)", run_kaggle(["config", "view"], echo=False).stdout, re.M)
    return found.group(1) if found and found.group(1) != "None" else None


# -------------------------------------------------------------------------------------------------- pre-validation
def _refusal(where: Path, problems: list[str]) -> ShipError:
    return ShipError(f"{where} refused before any call:\n  - " + "\n  - ".join(problems))


def _check_id(value: Any, field: str, *, min_slug: int, max_slug: int = 50, allow_placeholder: bool = False) -> list:
    if not isinstance(value, str) or value.count("/") != 1:
        return [f"{field}: {value!r} is not 'owner/slug'; set it to '<your Kaggle username>/<slug>'"]
    owner, slug = value.split("/")
    problems = []
    if not owner or (owner == PLACEHOLDER_OWNER and not allow_placeholder):
        problems.append(f"{field}: owner {owner!r} is not a Kaggle username; set KAGGLE_USERNAME (or kaggle.json) "
                        "and rebuild: python build.py <kernel> (or --owner NAME)")
    if not SLUG.match(slug) or not min_slug <= len(slug) <= max_slug:
        problems.append(f"{field}: slug {slug!r} must be {min_slug}-{max_slug} characters of a-z, 0-9 and single "
                        "dashes")
    return problems


def notebook_text(notebook: dict[str, Any]) -> str:
    """The notebook exactly as `kaggle kernels push` sends it: code outputs emptied, list sources joined."""
    body = json.loads(json.dumps(notebook))
    for cell in body.get("cells", []):
        if "outputs" in cell and cell.get("cell_type") == "code":
            cell["outputs"] = []
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return json.dumps(body)


def check_kernel_folder(folder: Path, kernel: str, *, dry_run: bool = False) -> tuple[dict[str, Any], str]:
    """Validate build/<kernel>/ the way Kaggle will; return (kernel-metadata.json, the text that would be sent)."""
    fix_build = f"run `make build KERNEL={kernel}` (python build.py {kernel})"
    meta_path = folder / "kernel-metadata.json"
    if not meta_path.is_file():
        raise ShipError(f"{meta_path}: not found; {fix_build}")
    meta = read_json(meta_path)
    if not meta:
        raise ShipError(f"{meta_path}: not a JSON object; {fix_build}")
    title = meta.get("title")
    # A dry run needs no credentials, so it accepts the placeholder owner (a real push refuses it).
    problems = _check_id(meta.get("id"), "id", min_slug=5, allow_placeholder=dry_run)
    if not isinstance(title, str) or not 5 <= len(title) <= 50:
        problems.append(f"title: {title!r} must be 5-50 characters; fix kernel-metadata/{kernel}.json.j2")
    elif not problems and meta["id"].split("/")[1] != slugify(title):
        problems.append(f"id: slug {meta['id'].split('/')[1]!r} differs from slugify(title) = {slugify(title)!r}; "
                        "Kaggle would rename the kernel: make them agree")
    for field, expected in (("language", "python"), ("kernel_type", "notebook")):
        if meta.get(field) != expected:
            problems.append(f"{field}: {meta.get(field)!r}, expected {expected!r}")
    shape = meta.get("machine_shape")
    accelerated = meta.get("enable_gpu") in (True, "true") or meta.get("enable_tpu") in (True, "true")
    if shape and shape not in MACHINE_SHAPES:
        problems.append(f"machine_shape: {shape!r} is not one of {', '.join(MACHINE_SHAPES)} (retired or unknown)")
    elif accelerated and not shape:
        problems.append("machine_shape: missing on a GPU kernel; add \"machine_shape\": \"NvidiaTeslaT4\" "
                        "(without it Kaggle may give a retired P100)")
    sources = {field: list(meta.get(field) or []) for field in ("dataset_sources", "kernel_sources")}
    for field, source in ((field, source) for field, names in sources.items() for source in names):
        if str(source).split("/")[0] == PLACEHOLDER_OWNER and not dry_run:
            problems.append(f"{field}: {source!r} has the placeholder owner; set KAGGLE_USERNAME and rebuild: "
                            "python build.py <kernel>")
    if kernel in INFERENCE_KERNELS:
        if meta.get("enable_internet") not in (False, "false"):
            problems.append("enable_internet: must be false for the inference kernel (code competitions run without "
                            "internet); set it in kernel-metadata/infer.json.j2")
        if not any(sources.values()):
            problems.append("dataset_sources: the inference kernel needs a weights source (dataset_sources or "
                            "kernel_sources), e.g. [\"<owner>/digitkit-weights\"]")
    code_path = folder / str(meta.get("code_file") or "")
    text = ""
    if not meta.get("code_file") or not code_path.is_file():
        problems.append(f"code_file: {meta.get('code_file')!r} not found in {folder}; {fix_build}")
    else:
        try:
            notebook = json.loads(code_path.read_text(encoding="utf-8"))
        except ValueError as err:
            notebook = None
            problems.append(f"code_file: {code_path} is not valid notebook JSON ({err}); {fix_build}")
        if isinstance(notebook, dict):
            spec = (notebook.get("metadata") or {}).get("kernelspec") or {}
            if spec.get("name") != "python3":
                problems.append(f"metadata.kernelspec.name: {spec.get('name')!r} in {code_path.name}, expected "
                                "'python3' (papermill fails with 'No kernel name found in notebook'); rebuild")
            text = notebook_text(notebook)
            size = len(text.encode("utf-8"))
            if size >= MAX_SOURCE_BYTES:
                problems.append(f"code_file: {code_path.name} is {size:,} bytes as sent (outputs emptied), Kaggle's "
                                f"limit is {MAX_SOURCE_BYTES:,}; shrink the notebook (inline less, no embedded data)")
    if not dry_run and (problem := credentials_problem()):
        problems.append(problem)
    if problems:
        raise _refusal(meta_path, problems)
    return meta, text


def check_dataset_folder(folder: Path, *, dry_run: bool) -> dict[str, Any]:
    """Validate weights/: dataset-metadata.json (returned with the owner resolved) and the manifest's hashes."""
    meta_path = folder / "dataset-metadata.json"
    meta = read_json(meta_path)
    if not meta:
        raise ShipError(f"{meta_path}: missing or not a JSON object; restore it with `git checkout {meta_path}`")
    problems = _check_id(meta.get("id"), "id", min_slug=6, allow_placeholder=True)
    title, licenses = meta.get("title"), meta.get("licenses")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        problems.append(f"title: {title!r} must be 6-50 characters")
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict) \
            or not licenses[0].get("name"):
        problems.append(f"licenses: {licenses!r} must hold exactly one licence, e.g. [{{\"name\": \"CC0-1.0\"}}]")
    if not (folder / MANIFEST_NAME).is_file():
        problems.append(f"{MANIFEST_NAME}: missing in {folder}/; fill it first (make output KERNEL=train)")
    else:
        try:
            verify_manifest(folder)
        except ManifestError as err:
            problems.append(f"{MANIFEST_NAME}: {err}")
    if not dry_run and (problem := credentials_problem()):
        problems.append(problem)
    if problems:
        raise _refusal(meta_path, problems)
    owner, slug = meta["id"].split("/")
    if owner == PLACEHOLDER_OWNER:
        user = resolve_username(dry_run=dry_run)
        if not user and not dry_run:
            raise ShipError(f"id: cannot replace the placeholder owner: no username found; {CREDENTIALS_HELP}")
        meta = {**meta, "id": f"{user or PLACEHOLDER_OWNER}/{slug}"}
    return meta


def check_submission(path: Path, test_file: Path | None) -> int:
    """Validate a submission CSV with core.submission (header, ImageId 1..N, labels 0..9); return N.

    N must equal the rows of ``test_file`` when one is given, else Kaggle's 28,000 test images.
    """
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.csv"))
        raise ShipError(f"FILE={path} is a folder: give the submission CSV in it"
                        + (f", e.g. FILE={path / inside[0]}" if inside else " (it holds no .csv file)")
                        + ". Nothing was sent.")
    expected = KAGGLE_TEST_ROWS
    if test_file is not None:
        opener = gzip.open if test_file.suffix == ".gz" else open
        with opener(test_file, "rt", encoding="utf-8") as handle:
            expected = sum(1 for line in handle if line.strip()) - 1
    try:
        return len(read_submission(path, n_test=expected))
    except SubmissionError as err:
        raise ShipError(f"{err}. Nothing was sent.") from None


# ------------------------------------------------------------------------------------------------------ commands
def _require_credentials() -> None:
    if problem := credentials_problem():
        raise ShipError(problem)


def _scratch(dest: Path, purpose: str, *, dry_run: bool = False) -> Path:
    """A new hidden folder beside ``dest`` (same file system: moving files from it into ``dest`` is a rename)."""
    if dry_run:
        return dest.parent / f".{dest.name}-{purpose}-XXXX"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}-{purpose}-", dir=dest.parent))


def _dry_run(commands: list[list[str]], sent: dict[str, Any] | None = None, *notes: str) -> int:
    print("dry run: nothing is sent, no credentials needed")
    for command in commands:
        print(f"would run: {command_line(command)}")
    for name, body in (sent or {}).items():
        print(f"{name} as sent:\n{json.dumps(body, indent=2)}")
    for note in notes:
        print(note)
    return 0


def push(kernel: str, build_dir: Path, *, dry_run: bool = False, timeout: float = 900) -> int:
    folder = build_dir / kernel
    meta, text = check_kernel_folder(folder, kernel, dry_run=dry_run)
    command = ["kernels", "push", "-p", str(folder)]
    size = f"{meta['code_file']}: {len(text.encode('utf-8')):,} bytes as sent (limit {MAX_SOURCE_BYTES:,})"
    if dry_run:
        return _dry_run([command], {"kernel-metadata.json": meta}, size)
    print(size)
    run_kaggle(command, timeout=timeout)
    print(f"pushed {meta['id']}; follow it with: make status KERNEL={kernel}")
    return 0


def kernel_ref(kernel: str, build_dir: Path, override: str | None = None) -> str:
    """The kernel's owner/slug: --id, else the id in build/<kernel>/kernel-metadata.json."""
    meta_path = build_dir / kernel / "kernel-metadata.json"
    ref = override or read_json(meta_path).get("id")
    if not ref:
        raise ShipError(f"{meta_path}: no kernel id; run `make build KERNEL={kernel}` or pass --id owner/slug")
    if problems := _check_id(ref, "id", min_slug=5):
        raise _refusal(meta_path, problems)
    return ref


def status(ref: str, *, dry_run: bool = False, timeout: float = 900) -> int:
    command = ["kernels", "status", ref]
    if dry_run:
        return _dry_run([command])
    _require_credentials()
    result = run_kaggle(command, timeout=timeout)  # raises on ERROR, with the failure message
    state = re.search(r'has status "(?:\w+\.)?(\w+)"', result.stdout)
    print(f"{ref}: {state.group(1) if state else 'unknown'}")
    return 0


def _move_into(source: Path, dest: Path) -> list[Path]:
    """Move every file under ``source`` into ``dest`` (same tree), manifest.json last; tracked files are kept."""
    files = [path for path in source.rglob("*") if path.is_file() and not path.name.endswith(".kaggle-partial")]
    files.sort(key=lambda path: (path.relative_to(source).as_posix() == MANIFEST_NAME, str(path)))
    moved = []
    for path in files:
        relative = path.relative_to(source)
        if relative.as_posix() in KEEP_IN_WEIGHTS:
            print(f"kept the local {relative} (the download has one too)")
            continue
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest / relative)
        moved.append(dest / relative)
    return moved


def output(ref: str, dest: Path, *, require_manifest: bool = True, dry_run: bool = False, timeout: float = 1800) -> int:
    """Download a kernel's output beside ``dest``, verify manifest.json's hashes, then move the files into ``dest``.

    Without ``require_manifest`` (kernels other than train) a download without manifest.json is moved unverified.
    """
    if dry_run:
        return _dry_run([["kernels", "output", ref, "-p", str(_scratch(dest, "download", dry_run=True))]],
                        None, f"then verify the {MANIFEST_NAME} hashes and move the files into {dest}/")
    _require_credentials()
    tmp = _scratch(dest, "download")
    try:
        run_kaggle(["kernels", "output", ref, "-p", str(tmp)], timeout=timeout)
        manifest = None
        if require_manifest or (tmp / MANIFEST_NAME).is_file():
            try:
                manifest = verify_manifest(tmp)
            except ManifestError as err:
                raise ShipError(f"the output of {ref} fails verification (tampered or incomplete download); nothing "
                                f"in {dest}/ was changed:\n{err}") from None
        moved = _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if manifest:
        print(f"{len(manifest['files'])} files verified against {MANIFEST_NAME} (local CV {manifest.get('local_cv')})")
    print(f"{len(moved)} files now in {dest}/")
    return 0


def _dataset_exists(ref: str, timeout: float) -> bool:
    result = run_kaggle(["datasets", "status", ref], check=False, echo=False, timeout=timeout)
    if result.returncode and not re.search(r"\b404\b|not found", result.output, re.I):
        raise_for_failure(result)
    print(f"{ref}: {'exists: adding a version' if result.returncode == 0 else 'absent: creating it'}")
    return result.returncode == 0


def _wait_ready(ref: str, polls: int, delay: float, timeout: float) -> None:
    for attempt in range(1, polls + 1):
        words = run_kaggle(["datasets", "status", ref], echo=False, timeout=timeout).stdout.split()
        state = words[-1] if words else "unknown"
        print(f"weights dataset {ref}: {state} (check {attempt}/{polls})", flush=True)
        if state == "ready":
            return
        if state in ("failed", "deleted"):
            raise ShipError(f"{ref} is {state} on Kaggle: open https://www.kaggle.com/datasets/{ref}, then run "
                            "make weights again")
        if attempt < polls:
            time.sleep(delay)
    raise ShipError(f"{ref} is not ready after {polls} checks: Kaggle is still processing it; wait, then run "
                    "make weights again (or check https://www.kaggle.com/datasets/" + ref + ") before pushing infer")


def dataset_files(folder: Path) -> list[str]:
    """What the weights dataset publishes: manifest.json and the files it hashes — fold weights (best, SWA), OOF
    rows, logs, folds.csv, config.json: all that inference, the ensemble and a resume read. Resume checkpoints
    (``*_last.pth``, optimizer state), executed notebooks and the inlined ``core/`` stay out."""
    return [MANIFEST_NAME, *sorted(set(read_manifest(folder)["files"]) - {MANIFEST_NAME})]


def weights(folder: Path, message: str | None = None, *, polls: int = 30, delay: float = 10, dry_run: bool = False,
            timeout: float = 3600) -> int:
    """Create or version the weights dataset from ``folder`` (a staged copy with the owner resolved); wait for ready."""
    meta = check_dataset_folder(folder, dry_run=dry_run)
    ref = meta["id"]
    cv = read_manifest(folder).get("local_cv")
    note = f"{message + ' ' if message else ''}(local CV {cv}, git {git_commit(REPO)})".strip()
    names = dataset_files(folder)
    left_out = sorted(f"{p.name}{'/' if p.is_dir() else ''}" for p in folder.iterdir()
                      if p.name not in KEEP_IN_WEIGHTS and not p.name.startswith(".")
                      and not any(n == p.name or n.startswith(p.name + "/") for n in names))
    dir_mode = ["--dir-mode", "zip"] if any("/" in name for name in names) else []
    staged = _scratch(folder, "upload", dry_run=True)
    listing = [f"files: {', '.join(names)}"] + ([f"left out (not needed by inference): {', '.join(left_out)}"]
                                                 if left_out else [])
    if dry_run:
        return _dry_run([["datasets", "status", ref], ["datasets", "create", "-p", str(staged), *dir_mode],
                         ["datasets", "version", "-p", str(staged), "-m", note, *dir_mode]],
                        {"dataset-metadata.json": meta},
                        "create runs when the status says absent, version otherwise; then status until ready",
                        *listing)
    print("\n".join(listing))
    staging = _scratch(folder, "upload")
    try:
        for name in names:  # hard links: no copy of large weights, and the tracked metadata stays as it is
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(folder / name, staging / name)
        (staging / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if _dataset_exists(ref, timeout):
            run_kaggle(["datasets", "version", "-p", str(staging), "-m", note, *dir_mode], timeout=timeout)
        else:
            run_kaggle(["datasets", "create", "-p", str(staging), *dir_mode], timeout=timeout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _wait_ready(ref, polls, delay, timeout)
    return 0


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def submit(file: Path, message: str | None = None, test_file: Path | None = None, *, dry_run: bool = False,
           timeout: float = 900) -> int:
    """Validate ``file``, submit it, and record what was sent in the file's folder (tools.submissions)."""
    rows = check_submission(file, test_file)
    folder = file.resolve().parent
    try:
        submissions.read_records(folder)  # a record must be writable after the send: refuse before it
    except ValueError as err:
        raise ShipError(f"{err}. Nothing was sent.") from None
    if message is None:
        message = default_message(file)
    command = ["competitions", "submit", "-c", COMPETITION, "-f", str(file), "-m", message]
    if dry_run:
        return _dry_run([command], None, f"{file}: {rows} rows, valid",
                        f"then record it in {file.resolve().parent / submissions.RECORDS_NAME}")
    _require_credentials()
    result = run_kaggle(command, timeout=timeout)
    ref = re.search(r"^Submission ref: (\d+)", result.stdout, re.M)  # what kaggle 2.2.5 prints on success
    record = submissions.record_submission(file, message, COMPETITION, ref=int(ref.group(1)) if ref else None)
    print(f"recorded in {folder / submissions.RECORDS_NAME} (sha256 {record['sha256'][:12]}); its "
          "public score comes with: make scores")
    if folder not in [f.resolve() for f in record_folders()]:
        print(f"note: make scores and make runs read the records in runs/*/ and weights/ only, not in {folder}/; "
              "submit a file from a run's folder to see its score in the journal")
    return 0


def default_message(file: Path) -> str:
    """"digitkit <run>/<file>, local CV <cv>, git <commit>, sha256 <12 hex>", with the local CV of what made the file
    (tools.journal.predicted_local_cv: its run, its ensemble, or the training run an inference output used)."""
    from tools.journal import predicted_local_cv  # matplotlib is loaded only when a message is made

    folder = file.resolve().parent
    cv = predicted_local_cv(folder, Path("weights"))
    return (f"digitkit {folder.name}/{file.name}" + (f", local CV {cv:.5f}" if cv is not None else "")
            + f", git {git_commit(REPO)}, sha256 {sha256_file(file)[:12]}")


def record_folders(runs_dir: Path = Path("runs"), weights_dir: Path = Path("weights")) -> list[Path]:
    """Every folder that may hold a submissions.json: weights/ and each folder of runs/."""
    folders = [weights_dir] if weights_dir.is_dir() else []
    return folders + (sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else [])


def scores(*, runs_dir: Path = Path("runs"), weights_dir: Path = Path("weights"), page_size: int = 100,
           dry_run: bool = False, timeout: float = 900) -> int:
    """Read the competition's submissions (kaggle competitions submissions) and write each one's status and scores
    into the local record it came from; print them beside the local CV."""
    command = ["competitions", "submissions", COMPETITION, "--format", "json", "--page-size", str(page_size)]
    if dry_run:
        return _dry_run([command], None, "then write each public score into the submissions.json it came from")
    _require_credentials()
    try:
        records = submissions.all_records(record_folders(runs_dir, weights_dir))  # before any call
    except ValueError as err:
        raise ShipError(f"{err}. Nothing was asked of Kaggle.") from None
    result = run_kaggle(command, timeout=timeout, echo=False)
    kaggle = parse_submissions(result.stdout)
    pairs, unmatched = submissions.match_scores(records, kaggle)
    checked = submissions.now()
    for folder, record, found in pairs:
        record["kaggle"] = {"ref": found.get("ref"), "status": str(found.get("status", "")).rsplit(".", 1)[-1],
                            "public_score": submissions.score_of(found.get("publicScore")),
                            "private_score": submissions.score_of(found.get("privateScore")),
                            "date": found.get("date"), "checked": checked}
    for folder in sorted({folder for folder, _, _ in pairs}):
        submissions.write_records(folder, [r for f, r in records if f == folder])
    print(f"{len(kaggle)} submissions on Kaggle; {len(pairs)} matched to a local record, written into its "
          f"{submissions.RECORDS_NAME}")
    for folder, record, _ in pairs:
        score = record["kaggle"]["public_score"]
        print(f"  {folder.name}: {record['kaggle']['status']}, public score "
              f"{'pending' if score is None else f'{score:.5f}'} — {record['message']}")
    for found in unmatched:
        print(f"  not sent by make submit (no local record): {found.get('date')} {found.get('description')!r} "
              f"public {found.get('publicScore') or '—'}")
    if len(kaggle) >= page_size:
        print(f"  (only the latest {page_size} were read: --page-size to read more)")
    print("the journal shows them beside the local CV: make runs")
    return 0


def parse_submissions(stdout: str) -> list[dict[str, Any]]:
    """The JSON list that `kaggle competitions submissions --format json` prints ("No submissions found" = [])."""
    text = stdout.strip()
    if not text or text.startswith("No submissions found"):
        return []
    start = text.find("[")
    try:
        found = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise ShipError("`kaggle competitions submissions` printed something other than a JSON list: "
                        f"{text[:200]!r}; check the kaggle CLI's version (requirements.txt pins 2.2.5)")
    return found


def download_competition(dest: Path, *, required: tuple[str, ...] = ("train.csv", "test.csv"),
                         dry_run: bool = False, timeout: float = 1800) -> list[Path]:
    """`kaggle competitions download` into a temp folder beside ``dest``, unzip, then move the files into ``dest``."""
    dest = Path(dest)
    if dry_run:
        _dry_run([["competitions", "download", "-c", COMPETITION, "-p", str(_scratch(dest, "download", dry_run=True))]],
                 None, f"then unzip into {dest}/")
        return []
    _require_credentials()
    tmp = _scratch(dest, "download")
    try:
        run_kaggle(["competitions", "download", "-c", COMPETITION, "-p", str(tmp)], timeout=timeout)
        unpacked = tmp / "unpacked"
        unpacked.mkdir()
        for archive in sorted(tmp.glob("*.zip")):
            with zipfile.ZipFile(archive) as zipped:
                for info in (info for info in zipped.infolist() if not info.is_dir()):
                    with zipped.open(info) as member, open(unpacked / Path(info.filename).name, "wb") as target:
                        shutil.copyfileobj(member, target)
        for loose in tmp.glob("*.csv"):
            os.replace(loose, unpacked / loose.name)
        missing = [name for name in required if not (unpacked / name).is_file()]
        if missing:
            got = sorted(path.name for path in unpacked.iterdir())
            raise ShipError(f"the download lacks {', '.join(missing)} (it holds {got}); nothing in {dest}/ was "
                            "changed: check the competition's data page on kaggle.com")
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted(unpacked.iterdir()):
            os.replace(path, dest / path.name)
            written.append(dest / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{COMPETITION}: " + ", ".join(path.name for path in written) + f" in {dest}/")
    return written


# ---------------------------------------------------------------------------------------------------------- cli
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="print the command and what would be sent; send nothing")
    common.add_argument("--timeout", type=float, default=1800, help="seconds one kaggle CLI call may take")
    kernel = argparse.ArgumentParser(add_help=False)
    kernel.add_argument("--kernel", choices=KERNELS, default="train")
    kernel.add_argument("--build-dir", type=Path, default=Path("build"), help="where build.py wrote <kernel>/")
    parser = argparse.ArgumentParser(prog="python -m tools.ship", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("push", parents=[common, kernel], help="kaggle kernels push -p build/<kernel>")
    for name, text in (("status", "kaggle kernels status"), ("output", "kaggle kernels output into --dest")):
        sub = commands.add_parser(name, parents=[common, kernel], help=text)
        sub.add_argument("--id", help="owner/slug (default: the id in build/<kernel>/kernel-metadata.json)")
    commands.choices["output"].add_argument("--dest", type=Path, help="default: weights/ for train (verified against "
                                            "manifest.json), else runs/kaggle-<kernel>/")
    sub = commands.add_parser("weights", parents=[common], help="create or version the weights dataset")
    sub.add_argument("--dir", type=Path, default=Path("weights"))
    sub.add_argument("--message", help="version note (local CV and git commit are appended)")
    sub.add_argument("--polls", type=int, default=30, help="status checks while waiting for 'ready'")
    sub.add_argument("--poll-delay", type=float, default=float(os.environ.get("DIGITKIT_POLL_DELAY", 10)))
    sub = commands.add_parser("submit", parents=[common], help="validate and submit a submission CSV")
    sub.add_argument("--file", type=Path, default=Path("submission.csv"))
    sub.add_argument("--message", help="submission description (default: file, local CV, git commit)")
    sub.add_argument("--test-file", type=Path, help="test CSV whose row count the submission must match "
                                                    f"(default: Kaggle's {KAGGLE_TEST_ROWS:,} test images)")
    sub = commands.add_parser("scores", parents=[common], help="read the submissions' public scores into the "
                                                               "records make submit wrote")
    sub.add_argument("--page-size", type=int, default=100, help="how many of the latest submissions to read")
    sub = commands.add_parser("data", parents=[common], help="download the competition data")
    sub.add_argument("--source", choices=("kaggle",), default="kaggle")
    sub.add_argument("--dest", type=Path, default=Path("data") / COMPETITION)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {"dry_run": args.dry_run, "timeout": args.timeout}
    try:
        if args.command == "push":
            return push(args.kernel, args.build_dir, **options)
        if args.command == "status":
            return status(kernel_ref(args.kernel, args.build_dir, args.id), **options)
        if args.command == "output":
            train = args.kernel == "train"
            dest = args.dest or (Path("weights") if train else Path("runs") / f"kaggle-{args.kernel}")
            return output(kernel_ref(args.kernel, args.build_dir, args.id), dest, require_manifest=train, **options)
        if args.command == "weights":
            return weights(args.dir, args.message, polls=args.polls, delay=args.poll_delay, **options)
        if args.command == "submit":
            return submit(args.file, args.message, args.test_file, **options)
        if args.command == "scores":
            return scores(page_size=args.page_size, **options)
        download_competition(args.dest, **options)
        return 0
    except ShipError as err:
        print(f"error: {scrub(str(err))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
