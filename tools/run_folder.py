"""A run owns its folder: ``runs/<name>/`` is named by a rule, locked while a process writes it, and records what it
was asked to do, so that it is never replaced or mixed silently.

- :func:`check_run_name`: a run name is a name — letters, digits, ``.``, ``_``, ``-``, starting with a letter or a
  digit — never a path (``RUN=../x`` and ``RUN=/abs`` would write outside ``runs/``).
- :func:`claim_run`: before the first write, take ``runs/.locks/<name>.lock`` (pid, host, process start, command);
  a second process on the same run is refused at once, naming the holder; the lock ends with its process (flock),
  so a killed run never blocks the next. Then compare what this run is asked to do (``request``: the training settings
  and the data fingerprint) with what the folder recorded (``request.json``; for runs saved before it, manifest.json or
  config.json): a difference is refused, listing each ``name: old → new``, unless ``restart`` moves the old run
  aside to ``runs/<name>.replaced-<UTC time>/`` (never deleted). The same request resumes, as before.

Local-only (the make runners); on Kaggle a version's output folder is its own.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from tools.cli import kernels, shown
from tools.os_errors import describe_os_error

log = logging.getLogger(__name__)

REQUEST_NAME = "request.json"  # what the run was asked to do: its kind, training settings and data fingerprint
RUN_KIND = "make run"  # the kind of a request that names none (runs saved before request.json had kinds)
LOCKS_DIR = ".locks"  # runs/.locks/<name>.lock: who is writing runs/<name>/ now
# Names digitkit gives its own files and folders in runs/: folds/ (the folds.csv shared per data folder), compare/
# (make compare's figures), kaggle-twin/ (the twin's state), kaggle-<kernel>/ (make output), journal.csv/.png (make
# runs), and weights (make runs', make compare's and make ensemble's name for the weights/ folder).
RESERVED_NAMES = ("folds", "compare", "kaggle-twin", "journal.csv", "journal.png", "weights",
                  *(f"kaggle-{kernel}" for kernel in kernels()))
NAME_RULE = ("a run name is letters, digits, '.', '_' and '-', starting with a letter or a digit (at most 100 "
             "characters), e.g. RUN=effnet-b0.lr3e-3; group many runs by a common prefix, not by folders")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class RunFolderError(ValueError):
    """A run name, lock or request refused; the message is one line naming the run and the way on."""


def check_run_name(name: str, *, variable: str = "RUN") -> str:
    """``name`` if it is a valid run name, else RunFolderError stating the rule (``variable``: how the user set it).

    Also used as an ``argparse`` type by the runners, so that a name given to them directly is held to it too.
    """
    if not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        why = (f"{name!r} is reserved for digitkit's own folder runs/{name}/" if name in RESERVED_NAMES else
               "it is empty" if not name else f"{name!r} is not a name")
        raise RunFolderError(f"{variable}={shown(name)}: {why}; {NAME_RULE}")
    return name


def replaced_name(name: str, when: dt.datetime | None = None) -> str:
    """Where ``restart`` moves an old run: ``<name>.replaced-<UTC time>`` (itself a valid run name, so `make runs`,
    `make compare` and `make ensemble` still read it)."""
    when = when or dt.datetime.now(dt.UTC)
    return f"{name}.replaced-{when:%Y%m%dT%H%M%SZ}"


# ------------------------------------------------------------------------------------------------------ the lock
def live_holder(runs_dir: str | Path, name: str) -> str:
    """Who writes ``runs_dir/<name>/`` now, in words ("pid 42 on host since … (make run)"); "" when nobody does."""
    path = Path(runs_dir) / LOCKS_DIR / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: its content says by whom
            return _holder_words(_read_holder(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return ""
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _holder_words(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "another process (it has not said which yet)"
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


@contextlib.contextmanager
def run_lock(runs_dir: Path, name: str, *, command: str) -> Iterator[Path]:
    """Hold ``runs_dir/.locks/<name>.lock`` while the block runs; yields the lock's path.

    The lock is the kernel's (``flock``): it ends with the process that holds it, however that process ends, so a
    killed run never blocks the next one; the file's content (pid, host, time, command) is only
    there to name the holder. After taking it, the file is checked to still be the one at ``path`` (a holder that
    just finished unlinks its file): otherwise it is taken again.

    Raises:
        RunFolderError: another process holds it (the message names it and the way on), or the lock cannot be
            written (read-only folder, full disk: one line naming the folder).
    """
    path = runs_dir / LOCKS_DIR / f"{name}.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": command}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunFolderError(f"{runs_dir / name} is being written by {_holder_words(holder)}: wait for it to "
                                     "end, or use another RUN") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was unlinked by the holder that just finished: take the new one
        left = _read_holder(fd)
        if left:
            log.warning("%s: took over a stale lock (%s ended without releasing it)", path, _holder_words(left))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    except OSError as err:
        raise RunFolderError(describe_os_error(err, doing=f"taking the lock of run {name}")) from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still held: a process waiting on this file sees it gone and takes a new one
        os.close(fd)


# --------------------------------------------------------------------------------------------------- the request
def recorded_request(run_dir: Path) -> dict[str, Any] | None:
    """What ``run_dir`` was asked to do: its request.json, else (runs saved before it) the training settings and
    data fingerprint of its manifest.json or config.json; None for an empty or new folder."""
    request = run_dir / REQUEST_NAME
    if request.is_file():
        try:
            recorded = json.loads(request.read_text())
        except (OSError, ValueError) as err:
            recorded = err
        if not isinstance(recorded, dict):
            raise RunFolderError(f"{request} cannot be read ({recorded}): the run's record was damaged; use another "
                                 "RUN=<name>, or RESTART=1 to move this run aside and start again")
        return recorded
    from core.config import Config  # the runners have torch; this module's name rules need only the stdlib

    for name in ("manifest.json", "config.json"):
        path = run_dir / name
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
            except ValueError:
                continue
            config = saved.get("config", saved) if name == "manifest.json" else saved
            try:
                settings = Config.from_saved(config).training_settings()
            except ValueError:
                continue
            return {"kind": RUN_KIND, "settings": settings,
                    **({"data": saved["train_sha256"]} if "train_sha256" in saved else {})}
    return None


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name: old → new`` for what differs: the kind of run (``make run``, ``make sweep``, ``make ensemble``,
    ``make kaggle`` … — a folder holds one kind), where and as whom it runs (a Kaggle loop's ``target`` and ``owner``),
    each setting, and the data. A setting missing on one side is left out (added since the old run was saved)."""
    lines = []
    if old.get("kind", RUN_KIND) != new.get("kind", RUN_KIND):
        return [f"kind: {old.get('kind', RUN_KIND)!r} → {new.get('kind', RUN_KIND)!r}"]
    for key in ("target", "owner", "settings", "data"):
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += [f"{k}: {before[k]!r} → {after[k]!r}" for k in after if k in before and before[k] != after[k]]
        elif before is not None and after is not None and before != after:  # a fingerprint: its first 12 digits
            lines.append(f"{key}: {str(before)[:12]} → {str(after)[:12]}" if key == "data" else
                         f"{key}: {before!r} → {after!r}")
    return lines


def _has_content(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(run_dir.iterdir())


@contextlib.contextmanager
def claim_run(runs_dir: str | Path, name: str, *, request: Mapping[str, Any], restart: bool = False,
              command: str = "") -> Iterator[Path]:
    """Own ``runs_dir/<name>/`` for the block: lock it, check ``request`` against what it recorded, record it.

    Args:
        request: ``{"kind": "make run", "settings": {...}, "data": "<fingerprint>", ...}``: what decides whether the
            folder's saved work is this run's (:func:`differences`).
        restart: move whatever the folder holds aside (``replaced_name``) and start it anew.
        command: what the holder runs, shown to a second process.

    Yields:
        The run folder (made).

    Raises:
        RunFolderError: a bad name, a live holder, a different request without ``restart``, or a folder that cannot
            be written — one line each.
    """
    check_run_name(name)
    runs_dir = Path(runs_dir).resolve()
    run_dir = runs_dir / name
    with run_lock(runs_dir, name, command=command):
        old = recorded_request(run_dir) if run_dir.is_dir() else None
        changed = differences(old, request) if old else []
        try:
            if restart and _has_content(run_dir):
                aside = runs_dir / replaced_name(name)
                os.replace(run_dir, aside)
                print(f"RESTART: the earlier run {name} moved to {aside}", file=sys.stderr, flush=True)
            elif changed:
                raise RunFolderError(
                    f"{run_dir} holds a run with other settings ({'; '.join(changed)}): use another RUN=<name>, or "
                    f"RESTART=1 to move the earlier run aside to runs/{name}.replaced-<time>/ and start again")
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / REQUEST_NAME, json.dumps(dict(request), indent=2, default=str) + "\n")
        except OSError as err:
            raise RunFolderError(describe_os_error(err, doing=f"preparing run folder {run_dir}")) from None
        yield run_dir
