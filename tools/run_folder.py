"""A run owns its folder: ``runs/<name>/`` is named by a rule, locked while a process writes it, and records what it
was asked to do, so that it is never replaced or mixed silently.

- :func:`check_run_name`: a run name is a name — letters, digits, ``.``, ``_``, ``-``, starting with a letter or a
  digit — never a path (``RUN=../x`` and ``RUN=/abs`` would write outside ``runs/``).
- :func:`claim_run`: before the first write, take ``runs/.locks/<name>.lock`` (pid, host, process start, command);
  a second process on the same run is refused at once, naming the holder; a lock whose process is gone (same host)
  is stale and taken over. Then compare what this run is asked to do (``request``: the training settings and the
  data fingerprint) with what the folder recorded (``request.json``; for runs saved before it, manifest.json or
  config.json): a difference is refused, listing each ``name: old → new``, unless ``restart`` moves the old run
  aside to ``runs/<name>.replaced-<UTC time>/`` (never deleted). The same request resumes, as before.

Local-only (the make runners); on Kaggle a version's output folder is its own.
"""
from __future__ import annotations

import contextlib
import datetime as dt
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
from tools.os_errors import describe_os_error

log = logging.getLogger(__name__)

REQUEST_NAME = "request.json"  # what the run was asked to do: its training settings and data fingerprint
LOCKS_DIR = ".locks"  # runs/.locks/<name>.lock: who is writing runs/<name>/ now
RESERVED_NAMES = ("folds",)  # runs/folds/ holds the folds.csv shared per data folder (tools.run_local)
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
        from tools.cli import shown

        why = (f"{name!r} is reserved for digitkit's own folder runs/{name}/" if name in RESERVED_NAMES else
               "it is empty" if not name else f"{name!r} is not a name")
        raise RunFolderError(f"{variable}={shown(name)}: {why}; {NAME_RULE}")
    return name


def replaced_name(name: str, when: dt.datetime | None = None) -> str:
    """Where ``restart`` moves an old run: ``<name>.replaced-<UTC time>`` (itself a valid run name, so `make runs`,
    `make compare` and `make ensemble` still read it)."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return f"{name}.replaced-{when:%Y%m%dT%H%M%SZ}"


# ------------------------------------------------------------------------------------------------------ the lock
def _process_start(pid: int) -> str:
    """The kernel's start time of process ``pid`` (clock ticks since boot), "" where /proc cannot tell: with the pid,
    it tells a live holder from a new process that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name in parentheses


def _alive(holder: Mapping[str, Any]) -> bool:
    """Whether the process that wrote a lock still runs (on this host; another host's lock is taken as alive)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = int(holder.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    started = holder.get("process_start", "")
    return not started or started == _process_start(pid) or not _process_start(pid)


def live_holder(runs_dir: str | Path, name: str) -> str:
    """Who writes ``runs_dir/<name>/`` now, in words ("pid 42 on host since … (make run)"); "" when nobody does."""
    path = Path(runs_dir) / LOCKS_DIR / f"{name}.lock"
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    return _holder_words(holder) if isinstance(holder, dict) and _alive(holder) else ""


def _holder_words(holder: Mapping[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


@contextlib.contextmanager
def run_lock(runs_dir: Path, name: str, *, command: str) -> Iterator[Path]:
    """Hold ``runs_dir/.locks/<name>.lock`` while the block runs; yields the lock's path.

    Raises:
        RunFolderError: another live process holds it (the message names it and the way on), or the lock cannot be
            written (read-only folder, full disk: one line naming the folder).
    """
    locks = runs_dir / LOCKS_DIR
    path = locks / f"{name}.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
          "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command}
    try:
        locks.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock is moved away and taken once more; O_EXCL decides between racers
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text() or "{}")
                except (OSError, ValueError):
                    holder = {}
                if holder and _alive(holder):
                    where = runs_dir / name
                    raise RunFolderError(
                        f"{where} is being written by {_holder_words(holder)}: wait for it to end, or use another "
                        f"RUN; if that process is gone from another machine, delete {path}") from None
                stale = path.with_name(f"{path.name}.stale-{os.getpid()}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, stale)
                    stale.unlink()
                    log.warning("%s: took over a stale lock (%s is no longer running)", path,
                                _holder_words(holder) if holder else "an unreadable lock")
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            break
        else:
            raise RunFolderError(f"{path}: could not take the run's lock (other processes keep taking it)")
    except OSError as err:
        raise RunFolderError(describe_os_error(err, doing=f"taking the lock of run {name}")) from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


# --------------------------------------------------------------------------------------------------- the request
def recorded_request(run_dir: Path) -> dict[str, Any] | None:
    """What ``run_dir`` was asked to do: its request.json, else (runs saved before it) the training settings and
    data fingerprint of its manifest.json or config.json; None for an empty or new folder."""
    request = run_dir / REQUEST_NAME
    if request.is_file():
        try:
            return json.loads(request.read_text())
        except ValueError:
            return None
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
            return {"settings": settings, **({"data": saved["train_sha256"]} if "train_sha256" in saved else {})}
    return None


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name: old → new`` for each setting (and ``data``) that differs; a key missing on one side is left out (a
    setting added since the old run was saved, or a fingerprint not recorded)."""
    lines = []
    for key in ("settings", "data"):
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += [f"{k}: {before[k]!r} → {after[k]!r}" for k in after if k in before and before[k] != after[k]]
        elif before is not None and after is not None and before != after:
            lines.append(f"{key}: {str(before)[:12]} → {str(after)[:12]}")
    return lines


def _has_content(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(run_dir.iterdir())


@contextlib.contextmanager
def claim_run(runs_dir: str | Path, name: str, *, request: Mapping[str, Any], restart: bool = False,
              command: str = "") -> Iterator[Path]:
    """Own ``runs_dir/<name>/`` for the block: lock it, check ``request`` against what it recorded, record it.

    Args:
        request: ``{"settings": {...}, "data": "<fingerprint>", ...}``: what decides whether saved work is reused.
        restart: move an existing run aside (``replaced_name``) instead of refusing a different request.
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
