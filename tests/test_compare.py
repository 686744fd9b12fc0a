"""`make compare` (tools/compare.py): McNemar on the same folds only, per digit, flipped digits."""
import json
import math

import numpy as np
import pytest

from tools.compare import CompareError, compare_runs
from core.groups import load_group
from core.manifest import write_manifest
from core.oof import oof_frame, write_oof
from tools import compare as compare_tool


def one_hot(classes: np.ndarray, sure: float = 0.91) -> np.ndarray:
    probs = np.full((len(classes), 10), (1 - sure) / 9)
    probs[np.arange(len(classes)), classes] = sure
    return probs


def write_run(folder, preds, labels, folds, *, folds_text=None, train_sha="t" * 64, rows=None):
    """A finished run's folder: oof.csv (rows ``rows``, default all), folds.csv and manifest.json hashing both."""
    folder.mkdir(parents=True)
    rows = np.arange(len(labels)) if rows is None else rows
    write_oof(folder / "oof.csv", oof_frame(rows, folds[rows], labels[rows], one_hot(preds[rows])))
    (folder / "folds.csv").write_text(folds_text or "row_id,label,fold\n" + "".join(
        f"{i},{label},{fold}\n" for i, (label, fold) in enumerate(zip(labels, folds))))
    manifest = {"model": {"name": "smallcnn", "spec": {"name": "smallcnn"}}, "n_folds": 5,
                "folds": [{"fold": f, "weights": f"smallcnn_fold{f}_best.pth"} for f in range(5)],
                "local_cv": float((preds[rows] == labels[rows]).mean()), "train_sha256": train_sha,
                "inference": {"weights": "best", "tta": []}}
    write_manifest(folder, manifest, ["oof.csv", "folds.csv"])
    return folder


def closed_form(tmp_path):
    """200 rows: both right on 180, only A right on 2 (digit 3), only B right on 10 (digit 9), both wrong on 8."""
    labels = np.arange(200) % 10
    folds = np.arange(200) % 5
    a, b = labels.copy(), labels.copy()
    only_a = np.flatnonzero(labels == 3)[:2]
    only_b = np.flatnonzero(labels == 9)[:10]
    both = np.flatnonzero(labels == 5)[:8]
    a[only_b] = 4
    b[only_a] = 8
    a[both], b[both] = 6, 6
    return (write_run(tmp_path / "a", a, labels, folds), write_run(tmp_path / "b", b, labels, folds), labels, folds)


def test_compare_against_a_closed_form_mcnemar_case(tmp_path):
    a_dir, b_dir, labels, _ = closed_form(tmp_path)
    comparison = compare_runs(load_group(a_dir), load_group(b_dir))
    test = comparison.test
    assert (test.n_rows, test.only_a, test.only_b) == (200, 2, 10)
    # two-sided exact binomial: 2 · (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158 / 4096
    assert test.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert comparison.verdict == "b is better than a, p = 0.039"
    table = comparison.per_class().set_index("digit")
    assert table.loc[9, "diff (b − a)"] == pytest.approx(10 / 20) and table.loc[3, "diff (b − a)"] == pytest.approx(
        -2 / 20)
    assert table.loc[9, "only b"] == 10 and table.loc[3, "only a"] == 2 and table.loc[5, "diff (b − a)"] == 0
    only_b, only_a = comparison.flipped()
    assert sorted(comparison.row_ids[only_b]) == sorted(np.flatnonzero(labels == 9)[:10])
    assert len(only_a) == 2
    images = np.zeros((200, 28, 28), dtype=np.uint8)
    figure = comparison.plot_flips(images, path=tmp_path / "flips.png")
    assert len([ax for ax in figure.axes if ax.images]) == 12 and (tmp_path / "flips.png").stat().st_size > 0


def test_no_detectable_difference_and_shared_rows_only(tmp_path):
    labels = np.arange(100) % 10
    folds = np.arange(100) % 5
    a = write_run(tmp_path / "a", labels, labels, folds)
    b_pred = labels.copy()
    b_pred[:3] = (labels[:3] + 1) % 10
    b = write_run(tmp_path / "b", b_pred, labels, folds, rows=np.flatnonzero(folds < 3))  # folds_to_run 0,1,2
    comparison = compare_runs(load_group(a), load_group(b))
    assert comparison.test.n_rows == 60 and comparison.test.only_a == 3 and comparison.test.only_b == 0
    assert comparison.verdict.startswith("no detectable difference between a and b (McNemar exact p = 0.25")


def test_runs_on_other_folds_or_data_are_refused_naming_both_fingerprints(tmp_path):
    a_dir, _, labels, folds = closed_form(tmp_path)
    other = write_run(tmp_path / "other", labels, labels, np.roll(folds, 1))
    with pytest.raises(CompareError, match=r"different folds files \(folds.csv sha256 [0-9a-f]{12} vs [0-9a-f]{12}\)"):
        compare_runs(load_group(a_dir), load_group(other))
    elsewhere = write_run(tmp_path / "elsewhere", labels, labels, folds, train_sha="u" * 64)
    with pytest.raises(CompareError, match="different train.csv files"):
        compare_runs(load_group(a_dir), load_group(elsewhere))


def test_make_compare_prints_the_verdict_last_and_writes_its_files(tmp_path, capsys):
    closed_form(tmp_path)
    code = compare_tool.main(["--a", "a", "--b", "b", "--runs-dir", str(tmp_path), "--data", str(tmp_path / "none")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.strip().splitlines()[-1] == "b is better than a, p = 0.039"
    assert "rows only b gets right: 10, only a: 2" in out and "grid of flipped digits skipped" in out
    report = json.loads((tmp_path / "compare" / "a-vs-b" / "compare.json").read_text())
    assert report["test"]["only_b"] == 10 and math.isclose(report["test"]["p_value"], 158 / 4096)
    assert (tmp_path / "compare" / "a-vs-b" / "per_class.csv").is_file()
    assert compare_tool.main(["--a", "a", "--b", "nothing", "--runs-dir", str(tmp_path)]) == 1
    assert "run 'nothing': no manifest.json" in capsys.readouterr().err
