"""core/paths.py: finding inputs among Kaggle's attached folders."""
from __future__ import annotations

from core.paths import find_input_dir, find_input_file


def test_find_input_file_takes_the_first_breadth_first_and_none_when_absent(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "folds.csv").write_text("deep")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "folds.csv").write_text("shallow")
    assert find_input_file("folds.csv", root=tmp_path) == tmp_path / "c" / "folds.csv"
    assert find_input_file("runs.csv", root=tmp_path) is None
    assert find_input_file("folds.csv", root=tmp_path / "missing") is None
    assert find_input_dir(None, "folds.csv", "folds", root=tmp_path) == tmp_path / "c"
