"""One line for a failure of the operating system: the path, what was being done, and the fix.

    describe_os_error(err, doing="writing the executed notebook", folder=run_dir)
    # '/r/x/train.ipynb is on a read-only file system (while writing the executed notebook): use a folder on a …'

A runner prints this line instead of the traceback (``make run failed: …``); :mod:`tools.run_notebook` also says it
when a notebook's cell fails with such an error inside the kernel. Local-only code.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

MB = 1 << 20
MIN_FREE = 100 * MB  # the least a run folder is told to free: one checkpoint and a notebook, with room to spare
READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def describe_os_error(err: OSError, *, doing: str, folder: str | Path | None = None, needed: int | None = None,
                      fix: str | None = None) -> str:
    """``err`` as one line naming the path, what was being done and the fix.

    Read-only (EROFS) and permission (EACCES, EPERM) failures say the path is read-only or not writable (readable) by
    you; a full disk (ENOSPC) or an exhausted quota (EDQUOT) says which disk, how much is free (``shutil.disk_usage``)
    and a rough amount to free; ENOENT says what does not exist; any other errno gives its text and name.

    Args:
        err: the error as raised: its ``errno``, ``strerror`` and ``filename`` are read. One without an errno (a
            ``FileNotFoundError`` raised with a message of its own) already says what it means: its message is kept.
        doing: what was being done, as a phrase that follows "while" ("writing the executed notebook").
        folder: the folder the work writes in (a run folder): named when ``err`` carries no file name, the base of a
            relative file name (a notebook's cwd), and the folder whose size is the default ``needed``.
        needed: bytes to tell the user to free on a full disk; default: what ``folder`` holds so far (the run has
            written that much and will likely write as much again), at least 100 MB.
        fix: the remedy to give instead of the generic one (say, a runner's own option).

    Returns:
        One line, without a final full stop.
    """
    if err.errno is None:
        return f"{err} (while {doing})"
    base = Path(folder) if folder is not None else None
    named = os.fsdecode(err.filename) if isinstance(err.filename, (str, bytes, os.PathLike)) else ""
    path = (base / named if base is not None else Path(named)) if named else base or Path.cwd()
    where = path if os.path.isdir(path) else path.parent  # os.path's tests answer False where looking is refused
    if err.errno == errno.EROFS:
        return (f"{path} is on a read-only file system (while {doing}): "
                f"{fix or 'use a folder on a writable disk, or remount this one read-write'}")
    if err.errno in READ_ONLY:
        unreadable = os.path.exists(path) and not os.access(path, os.R_OK)
        mode, flag, target = ("readable", "r", path) if unreadable else ("writable", "w", where)
        return (f"{path} is not {mode} by you: permission denied (while {doing}): "
                f"{fix or f'chmod u+{flag} {target} (or ask its owner), or use a folder you own'}")
    if err.errno in DISK_FULL:
        what = (f"your disk quota on the disk holding {where} is used up" if err.errno == errno.EDQUOT else
                f"the disk holding {where} is full")
        need = max(needed if needed is not None else _bytes_under(base), MIN_FREE)
        wrote = f", writing {named}" if named else ""
        return (f"{what}: {_free(where) / MB:,.0f} MB free (while {doing}{wrote}): "
                f"{fix or f'free at least {-(-need // MB):,} MB there, or use a folder on another disk'}")
    if err.errno == errno.ENOENT:
        missing = next((p for p in reversed(path.parents) if not os.path.exists(p)), None)
        nor = f" (nor does the folder {missing})" if missing is not None else ""
        return f"{path} does not exist{nor} (while {doing}): {fix or 'check the path'}"
    name = errno.errorcode.get(err.errno, str(err.errno))
    return f"{path}: {err.strerror or os.strerror(err.errno)} ({name}, while {doing}){': ' + fix if fix else ''}"


def _free(path: Path) -> int:
    """Free bytes on the disk holding ``path`` (or its nearest existing parent); 0 when even that cannot be read."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


def _bytes_under(folder: Path | None, limit: int = 10_000) -> int:
    """The size of the files under ``folder`` (the first ``limit`` of them): what the run wrote so far."""
    if folder is None:
        return 0
    total, seen = 0, 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
            seen += 1
            if seen >= limit:
                return total
    return total
