"""Safety rules that hold across the repo: safe checkpoint loading, nothing secret or generated in git."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON_SOURCES = sorted([*REPO.glob("core/*.py"), *REPO.glob("tools/*.py"), REPO / "build.py"])


def torch_load_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load" and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"]


@pytest.mark.parametrize("path", PYTHON_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_torch_load_is_weights_only(path):
    for call in torch_load_calls(path):
        keywords = {k.arg: k.value for k in call.keywords}
        assert "weights_only" in keywords and getattr(keywords["weights_only"], "value", None) is True, \
            f"{path.name} line {call.lineno}: torch.load without weights_only=True"


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("path", ["kaggle.json", ".kaggle/kaggle.json", "data/digit-recognizer/train.csv",
                                  "build/train/train.ipynb", "runs/default/oof.csv", "weights/smallcnn_fold0_best.pth",
                                  "weights/manifest.json", "some/where/model.pth", ".venv/bin/python"])
def test_secrets_and_generated_files_are_git_ignored(path):
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("path", ["weights/dataset-metadata.json", "weights/README.md"])
def test_weights_dataset_metadata_stays_tracked(path):
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 1, path
