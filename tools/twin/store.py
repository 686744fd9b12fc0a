"""The twin's state on disk: small JSON files written atomically, times in Kaggle's format, cheap copies of trees."""
from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def iso(seconds: float | None = None) -> str:
    """A time the way Kaggle's API writes one: ``2026-12-01T13:00:09.123Z`` (UTC)."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def link_or_copy(source: str, target: str) -> None:
    """A hard link (no copy of large files), else a copy: the sandbox mounts inputs read-only anyway."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_tree(source: Path, target: Path) -> None:
    """``source``'s tree at ``target`` (which must not exist), files hard-linked where possible."""
    shutil.copytree(source, target, copy_function=link_or_copy)


def inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` when it stays inside ``root`` (no ``..`` or absolute escape), else None."""
    root = root.resolve()
    path = (root / relative).resolve()
    return path if path == root or root in path.parents else None


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` as a relative POSIX path, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def page(items: list, page_size: int | None, page_token: str | None, *, default: int = 20,
         maximum: int = 200) -> tuple[list, str]:
    """One page of ``items`` and the token of the next ("" at the end); tokens are offsets."""
    size = min(max(int(page_size or default), 1), maximum)
    try:
        start = max(int(page_token or 0), 0)
    except ValueError:
        start = 0
    chunk = items[start:start + size]
    return chunk, (str(start + size) if start + size < len(items) else "")


def page_of(items: list, body: dict, *, maximum: int) -> tuple[list, str]:
    """:func:`page` for a list request that names its page by ``pageToken`` or, as older clients do, by ``page``
    (1-based) and ``pageSize``."""
    token = body.get("pageToken")
    if not token and (body.get("page") or 0) > 1:
        token = str((body["page"] - 1) * int(body.get("pageSize") or 20))
    return page(items, body.get("pageSize"), token, maximum=maximum)
