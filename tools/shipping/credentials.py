"""Where the ``kaggle`` package finds credentials, and :func:`scrub`, which keeps every secret out of what we print.

The package looks, in order, for an access token (``$KAGGLE_API_TOKEN``, or ``~/.kaggle/access_token``), the legacy
pair (``$KAGGLE_USERNAME`` + ``$KAGGLE_KEY``, or kaggle.json), then OAuth credentials (``kaggle auth login``). Nothing
here reads a secret out: :func:`credentials_problem` only says whether one exists.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from tools.kaggle_ids import kaggle_json

CREDENTIALS_HELP = ("create an API token at https://www.kaggle.com/settings/api, then export KAGGLE_API_TOKEN=<token>, "
                    "or export KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json (chmod 600) in ~/.kaggle or "
                    "$KAGGLE_CONFIG_DIR")


def _token_files() -> list[Path]:
    files = [Path.home() / ".kaggle" / name for name in ("access_token", "access_token.txt")]
    return [path for path in files if path.is_file()]


def credentials_problem() -> str | None:
    """What to set up when the kaggle package would find no credentials; None when some exist."""
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
