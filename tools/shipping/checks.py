"""What is checked locally before any call to Kaggle: the kernel folder, the weights folder, the submission CSV.

Each check refuses with one ShipError naming every problem, the field and the fix, before anything is sent; a dry
run (``dry_run=True``) needs no credentials and accepts the placeholder owner. The rules are Kaggle's, including
those the kaggle package does not check itself (title ≤ 50 characters, slug charset, id == owner/slugify(title),
source < 1 MB, retired machine shapes, kernelspec). Local-only code: it is never inlined into a notebook.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

from core.manifest import MANIFEST_NAME, ManifestError, verify_manifest
from core.submission import SubmissionError, read_submission
from tools.kaggle_ids import MAX_SOURCE_BYTES, PLACEHOLDER_OWNER, kaggle_json, read_json, slugify
from tools.shipping import ShipError
from tools.shipping.credentials import CREDENTIALS_HELP, credentials_problem

INFERENCE_KERNELS = ("infer",)  # code-competition rule: no internet, weights come from an attached source
# kagglesdk 0.1.38 documents NvidiaTeslaT4 (T4 x2, the default GPU) and the CLI names TpuV5E8 as the default TPU;
# NvidiaTeslaP100, Tpu1VmV38 and TpuV38 are retired (the server silently runs something else), so they are refused.
MACHINE_SHAPES = ("NvidiaTeslaT4", "TpuV5E8")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
KAGGLE_TEST_ROWS = 28_000


def resolve_username(*, dry_run: bool = False) -> str | None:
    """$KAGGLE_USERNAME, kaggle.json's username, else (an access token alone) the username Kaggle names for it."""
    user = os.environ.get("KAGGLE_USERNAME") or kaggle_json().get("username")
    if user or dry_run:
        return user or None
    from tools.shipping import kaggle_client

    return kaggle_client.username()


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

