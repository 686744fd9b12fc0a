"""manifest.json: the contract between training and inference.

Training writes everything inference must know about its models (architecture spec, k, which weights file per fold,
TTA/SWA choices, local CV) plus the sha256 of every file it produced. Inference reads only this file for model
settings and refuses any weights file whose hash does not match.

Layout::

    {"format": 1, "created": "2026-…Z", "model": {"name": …, "spec": {…}}, "n_folds": 5,
     "folds": [{"fold": 0, "weights": "smallcnn_fold0_best.pth", "val_acc": 0.99, "best_epoch": 3, "n_val": 800,
                "swa_weights": "smallcnn_fold0_swa.pth", "swa_val_acc": 0.99}, …],  # swa_* only with swa_epochs > 0
     "local_cv": 0.99, "config": {…},
     "inference": {"weights": "best" | "swa", "tta": ["identity", "shift_left", …] or [], "tta_setting": "auto",
                   "oof_acc": {"best": …, "best+tta": …, "swa": …, "swa+tta": …},
                   "tests": {"swa_vs_best": {"p_value": …, …}, "tta_vs_none": {…}}, "oof_files": {…}},
     "run": {"commit": "3e22721", "device": "cuda × 2: Tesla T4, Tesla T4", "on_kaggle": true,
             "started": "2026-…Z", "wall_seconds": 1181.7},  # what the experiment journal lists
     "files": {"smallcnn_fold0_best.pth": "<sha256>", "oof.csv": "<sha256>", …}}

``local_cv`` and ``oof.csv`` describe what inference does (``inference.weights`` + ``inference.tta``); see
core/choice.py for how that is chosen on OOF rows.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .data import IMAGE_SIDE

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """The manifest or a file it lists is missing, malformed or altered; the message says which and the fix."""


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: str | Path, manifest: dict[str, Any], file_names: list[str]) -> dict[str, Any]:
    """Hash ``file_names`` (relative to ``directory``) into ``manifest["files"]``, write manifest.json and return
    what was written."""
    directory = Path(directory)
    body = dict(manifest)
    body.setdefault("format", FORMAT_VERSION)
    body["files"] = {name: sha256_file(directory / name) for name in sorted(set(file_names))}
    write_text_atomic(directory / MANIFEST_NAME, json.dumps(body, indent=2, sort_keys=False) + "\n")
    return body


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path}: no manifest.json. Point weights_dir at the output folder of a digitkit train run "
            f"(it holds manifest.json next to the fold weights), or attach the weights dataset on Kaggle.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not valid JSON ({err}); re-download the training output") from None
    problem = shape_problem(manifest)
    if problem:
        raise ManifestError(f"{path}: {problem}; this file was not written by digitkit training, or was edited: "
                            "re-download the training output")
    return manifest


def _is(kind: type | tuple[type, ...]):
    return lambda value: isinstance(value, kind) and not isinstance(value, bool)


# (field, test, what it must be): every field inference, the ensemble or a resume reads, in reading order
_SHAPE = (
    ("model", _is(dict), "an object"), ("model.name", _is(str), "a model name"),
    ("n_folds", lambda v: _is(int)(v) and v >= 1, "a positive integer"),
    ("folds", lambda v: _is(list)(v) and all(_is(dict)(f) for f in v), "a list of objects"),
    ("files", lambda v: _is(dict)(v) and all(_is(str)(k) and _is(str)(h) for k, h in v.items()),
     "an object of file name -> sha256"),
)
_FOLD_SHAPE = (("fold", lambda v: _is(int)(v) and v >= 0, "a fold index"), ("weights", _is(str), "a file name"))


def shape_problem(manifest: Any) -> str | None:
    """What is wrong with the structure of a parsed manifest.json (its first problem, naming the field), or None."""
    if not isinstance(manifest, dict):
        return f"holds {type(manifest).__name__ if manifest is not None else 'null'}, not an object"
    for field, ok, expected in _SHAPE:
        value: Any = manifest
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return f"field {field!r} is missing (or null)"
        if not ok(value):
            return f"field {field!r} is {json.dumps(value)[:60]}, expected {expected}"
    for i, entry in enumerate(manifest["folds"]):
        for field, ok, expected in _FOLD_SHAPE:
            if not ok(entry.get(field)):
                return f"field 'folds[{i}].{field}' is {json.dumps(entry.get(field))[:60]}, expected {expected}"
    for field in ("inference", "config"):
        if field in manifest and not isinstance(manifest[field], dict):
            return f"field {field!r} is {json.dumps(manifest[field])[:60]}, expected an object"
    if "spec" in manifest["model"] and not isinstance(manifest["model"]["spec"], dict):
        return f"field 'model.spec' is {json.dumps(manifest['model']['spec'])[:60]}, expected an object"
    return None


def verify_manifest(directory: str | Path) -> dict[str, Any]:
    """Read manifest.json in ``directory`` and check every file it lists; return the manifest."""
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    return manifest


def verify_files(directory: str | Path, manifest: dict[str, Any], names: list[str] | None = None) -> None:
    """Check that every listed file (or only ``names``) exists in ``directory`` and matches its sha256.

    Raises:
        ManifestError: naming every missing or altered file and what to do about it.
    """
    directory = Path(directory)
    expected = manifest["files"]
    problems = []
    for name in names if names is not None else sorted(expected):
        path = directory / name
        if name not in expected:
            problems.append(f"{name}: not listed in manifest.json")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != expected[name]:
            problems.append(f"{name}: sha256 differs from manifest.json (file altered, truncated or from another run)")
    if problems:
        raise ManifestError(
            f"{directory}: " + "; ".join(problems)
            + ". Re-download the train kernel's output or retrain; never mix files of two runs.")


def inference_choice(manifest: dict[str, Any]) -> tuple[str, list[str]]:
    """(weights, TTA views) that training chose for inference: ``manifest["inference"]``, "best" and no views for a
    manifest without that choice."""
    chosen = manifest.get("inference", {})
    return chosen.get("weights", "best"), list(chosen.get("tta", []))


def describe_manifest(manifest: dict[str, Any], folder: str | Path | None = None,
                      views: list[str] | None = None) -> str:
    """One line: the architecture (and its input size when the digits are resized) × k folds, the local CV, which
    weights and TTA views inference uses (``views`` when inference was told other views than training chose), and
    the files hashed in ``folder``."""
    weights, chosen_views = inference_choice(manifest)
    views = chosen_views if views is None else views
    where = f"; {len(manifest.get('files', {}))} files hashed in {Path(folder).resolve()}" if folder else ""
    spec = manifest["model"]["spec"]
    side = spec.get("input_size", IMAGE_SIDE)
    size = f" at {side} px" if side != IMAGE_SIDE else ""  # resized inside the model
    return (f"{spec['name']}{size} × {len(manifest['folds'])} folds, local CV "
            f"{manifest.get('local_cv', float('nan')):.5f}; inference: {weights} weights, TTA "
            f"{', '.join(views) or 'none'}{where}")
