"""The shipping commands: push, status, output, weights, submit, scores, data — local checks, then the client.

Each command checks locally first (tools.shipping.checks) and refuses before any call. A dry run prints the
``kaggle …`` command lines a user could type for the same operations and what would be sent, sends nothing and needs
no credentials. Otherwise each operation prints its equivalent ``$ kaggle …`` line, then goes through
tools.shipping.kaggle_client (the one door to Kaggle). Local-only code: it is never inlined into a notebook.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from build import git_commit
from core.manifest import MANIFEST_NAME, ManifestError, read_manifest, sha256_file, verify_manifest
from tools import submissions
from tools.kaggle_ids import MAX_SOURCE_BYTES, read_json
from tools.shipping import ShipError, kaggle_client
from tools.shipping.checks import _check_id, _refusal, check_dataset_folder, check_kernel_folder, check_submission
from tools.shipping.credentials import credentials_problem, scrub
from tools.shipping.kaggle_client import COMPETITION, DEFAULT_TIMEOUT, command_line

REPO = Path(__file__).resolve().parents[2]
KEEP_IN_WEIGHTS = ("README.md", "dataset-metadata.json")  # tracked files: never uploaded, never overwritten
STATUS_HINT = ("read the session's log (make output KERNEL=<kernel> downloads it, or open the notebook on kaggle.com), "
               "fix the cause, then make push again")


def _require_credentials() -> None:
    if problem := credentials_problem():
        raise ShipError(problem)


def _echo(command: list[Any]) -> None:
    print(f"$ {command_line(command)}", flush=True)


def _scratch(dest: Path, purpose: str, *, dry_run: bool = False) -> Path:
    """A new hidden folder beside ``dest`` (same file system: moving files from it into ``dest`` is a rename)."""
    if dry_run:
        return dest.parent / f".{dest.name}-{purpose}-XXXX"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}-{purpose}-", dir=dest.parent))


def _dry_run(commands: list[list[Any]], sent: dict[str, Any] | None = None, *notes: str) -> int:
    print("dry run: nothing is sent, no credentials needed")
    for command in commands:
        print(f"would run: {command_line(command)}")
    for name, body in (sent or {}).items():
        print(f"{name} as sent:\n{json.dumps(body, indent=2)}")
    for note in notes:
        print(note)
    return 0


# ------------------------------------------------------------------------------------------------------ kernels
def push(kernel: str, build_dir: Path, *, dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> int:
    folder = build_dir / kernel
    meta, text = check_kernel_folder(folder, kernel, dry_run=dry_run)
    command = ["kernels", "push", "-p", str(folder)]
    size = f"{meta['code_file']}: {len(text.encode('utf-8')):,} bytes as sent (limit {MAX_SOURCE_BYTES:,})"
    if dry_run:
        return _dry_run([command], {"kernel-metadata.json": meta}, size)
    print(size)
    _echo(command)
    pushed = kaggle_client.push_kernel(folder, timeout=timeout)
    version = f" version {pushed.version}" if pushed.version else ""
    print(f"pushed {meta['id']}{version} ({pushed.url}); follow it with: make status KERNEL={kernel}")
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


def status(ref: str, *, dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Print the state of the kernel's latest session; a session that failed is an error with Kaggle's message."""
    command = ["kernels", "status", ref]
    if dry_run:
        return _dry_run([command])
    _require_credentials()
    _echo(command)
    found = kaggle_client.kernel_status(ref, timeout=timeout)
    if found.state == "ERROR":
        message = " ".join(scrub(found.failure).split()) or "Kaggle gave no message"
        raise ShipError(f"{ref}: the session failed (ERROR): {message}; what to do: {STATUS_HINT}")
    print(f"{ref}: {found.state}")
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


def output(ref: str, dest: Path, *, require_manifest: bool = True, dry_run: bool = False,
           timeout: float = DEFAULT_TIMEOUT) -> int:
    """Download a kernel's output beside ``dest``, verify manifest.json's hashes, then move the files into ``dest``.

    Without ``require_manifest`` (kernels other than train) a download without manifest.json is moved unverified.
    """
    if dry_run:
        return _dry_run([["kernels", "output", ref, "-p", str(_scratch(dest, "download", dry_run=True))]],
                        None, f"then verify the {MANIFEST_NAME} hashes and move the files into {dest}/")
    _require_credentials()
    tmp = _scratch(dest, "download")
    try:
        _echo(["kernels", "output", ref, "-p", str(tmp)])
        files = kaggle_client.kernel_output(ref, tmp, timeout=timeout)
        print(f"{len(files)} files downloaded (every page)")
        manifest = None
        if require_manifest or (tmp / MANIFEST_NAME).is_file():
            try:
                manifest = verify_manifest(tmp)
            except ManifestError as err:
                raise ShipError(f"the output of {ref} fails verification (tampered or incomplete download); nothing "
                                f"in {dest}/ was changed: {'; '.join(str(err).splitlines())}") from None
        moved = _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if manifest:
        print(f"{len(manifest['files'])} files verified against {MANIFEST_NAME} (local CV {manifest.get('local_cv')})")
    print(f"{len(moved)} files now in {dest}/")
    return 0


# ------------------------------------------------------------------------------------------------------ weights
def dataset_files(folder: Path) -> list[str]:
    """What the weights dataset publishes: manifest.json and the files it hashes — fold weights (best, SWA), OOF
    rows, logs, folds.csv, config.json: all that inference, the ensemble and a resume read. Resume checkpoints
    (``*_last.pth``, optimizer state), executed notebooks and the inlined ``core/`` stay out."""
    return [MANIFEST_NAME, *sorted(set(read_manifest(folder)["files"]) - {MANIFEST_NAME})]


def _wait_ready(ref: str, polls: int, delay: float, timeout: float) -> None:
    for attempt in range(1, polls + 1):
        state = kaggle_client.dataset_status(ref, timeout=timeout) or "absent"
        print(f"weights dataset {ref}: {state} (check {attempt}/{polls})", flush=True)
        if state == "ready":
            return
        if state in ("failed", "deleted"):
            raise ShipError(f"{ref} is {state} on Kaggle: open https://www.kaggle.com/datasets/{ref}, then run "
                            "make weights again")
        if attempt < polls:
            time.sleep(delay)
    raise ShipError(f"{ref} is not ready after {polls} checks: Kaggle is still processing it; wait, then run "
                    f"make weights again (or check https://www.kaggle.com/datasets/{ref}) before pushing infer")


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def weights(folder: Path, message: str | None = None, *, polls: int = 30, delay: float = 10, dry_run: bool = False,
            timeout: float = DEFAULT_TIMEOUT) -> int:
    """Create or version the weights dataset from ``folder`` (a staged copy with the owner resolved); wait for ready."""
    meta = check_dataset_folder(folder, dry_run=dry_run)
    ref = meta["id"]
    cv = read_manifest(folder).get("local_cv")
    note = f"{message + ' ' if message else ''}(local CV {cv}, git {git_commit(REPO)})".strip()
    names = dataset_files(folder)
    left_out = sorted(f"{p.name}{'/' if p.is_dir() else ''}" for p in folder.iterdir()
                      if p.name not in KEEP_IN_WEIGHTS and not p.name.startswith(".")
                      and not any(n == p.name or n.startswith(p.name + "/") for n in names))
    dir_mode = "zip" if any("/" in name for name in names) else "skip"
    zip_flag = ["--dir-mode", "zip"] if dir_mode == "zip" else []
    staged = _scratch(folder, "upload", dry_run=True)
    listing = [f"files: {', '.join(names)}"] + ([f"left out (not needed by inference): {', '.join(left_out)}"]
                                                 if left_out else [])
    if dry_run:
        return _dry_run([["datasets", "status", ref], ["datasets", "create", "-p", str(staged), *zip_flag],
                         ["datasets", "version", "-p", str(staged), "-m", note, *zip_flag]],
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
        _echo(["datasets", "status", ref])
        exists = kaggle_client.dataset_status(ref, timeout=timeout) is not None
        print(f"{ref}: {'exists: adding a version' if exists else 'absent: creating it'}")
        if exists:
            _echo(["datasets", "version", "-p", str(staging), "-m", note, *zip_flag])
            kaggle_client.version_dataset(staging, note, dir_mode=dir_mode, timeout=timeout)
        else:
            _echo(["datasets", "create", "-p", str(staging), *zip_flag])
            kaggle_client.create_dataset(staging, dir_mode=dir_mode, timeout=timeout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _wait_ready(ref, polls, delay, timeout)
    return 0


# ------------------------------------------------------------------------------------------------------ competition
def submit(file: Path, message: str | None = None, test_file: Path | None = None, *, dry_run: bool = False,
           timeout: float = DEFAULT_TIMEOUT) -> int:
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
    _echo(command)
    ref = kaggle_client.submit(file, message, timeout=timeout)
    record = submissions.record_submission(file, message, COMPETITION, ref=ref or None)
    print(f"submitted (ref {ref}); recorded in {folder / submissions.RECORDS_NAME} (sha256 {record['sha256'][:12]}); "
          "its public score comes with: make scores")
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
           dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Read the competition's submissions and write each one's status and scores into the local record it came from;
    print them beside the local CV."""
    command = ["competitions", "submissions", COMPETITION, "--page-size", str(page_size)]
    if dry_run:
        return _dry_run([command], None, "then write each public score into the submissions.json it came from")
    _require_credentials()
    try:
        records = submissions.all_records(record_folders(runs_dir, weights_dir))  # before any call
    except ValueError as err:
        raise ShipError(f"{err}. Nothing was asked of Kaggle.") from None
    _echo(command)
    kaggle = [dataclasses.asdict(found) for found in kaggle_client.submissions(page_size, timeout=timeout)]
    pairs, unmatched = submissions.match_scores(records, kaggle)
    checked = submissions.now()
    for _, record, found in pairs:
        record["kaggle"] = {"ref": found["ref"], "status": found["status"], "public_score": found["public_score"],
                            "private_score": found["private_score"], "date": found["date"], "checked": checked}
    for folder in sorted({folder for folder, _, _ in pairs}):
        submissions.write_records(folder, [r for f, r in records if f == folder])
    print(f"{len(kaggle)} submissions on Kaggle; {len(pairs)} matched to a local record, written into its "
          f"{submissions.RECORDS_NAME}")
    for folder, record, _ in pairs:
        score = record["kaggle"]["public_score"]
        print(f"  {folder.name}: {record['kaggle']['status']}, public score "
              f"{'pending' if score is None else f'{score:.5f}'} — {record['message']}")
    for found in unmatched:
        score = found["public_score"]
        print(f"  not sent by make submit (no local record): {found['date']} {found['description']!r} "
              f"public {'—' if score is None else f'{score:.5f}'}")
    if len(kaggle) >= page_size:
        print(f"  (only the latest {page_size} were read: --page-size to read more)")
    print("the journal shows them beside the local CV: make runs")
    return 0


def download_competition(dest: Path, *, required: tuple[str, ...] = ("train.csv", "test.csv"),
                         dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Download the competition's zip into a temp folder beside ``dest``, unzip, then move the files into ``dest``."""
    dest = Path(dest)
    if dry_run:
        _dry_run([["competitions", "download", "-c", COMPETITION, "-p", str(_scratch(dest, "download", dry_run=True))]],
                 None, f"then unzip into {dest}/")
        return []
    _require_credentials()
    tmp = _scratch(dest, "download")
    try:
        _echo(["competitions", "download", "-c", COMPETITION, "-p", str(tmp)])
        kaggle_client.download_data(tmp, timeout=timeout)
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
