import numpy as np
import pandas as pd
import pytest

from core.oof import local_cv, oof_frame, read_oof, report, write_oof
from core.submission import SubmissionError, make_submission, read_submission, write_submission


def test_oof_frame_sorts_rows_and_scores():
    probs = np.eye(10)[[1, 2, 3, 4]]
    frame = oof_frame(np.array([3, 0, 2, 1]), np.array([1, 0, 1, 0]), np.array([1, 2, 0, 4]), probs)
    assert frame["row_id"].tolist() == [0, 1, 2, 3]
    assert local_cv(frame) == pytest.approx(0.75)  # row 2 (label 0) is predicted 3
    assert "local CV (OOF accuracy): 0.75000" in report(frame, n_rows=4)


def test_oof_round_trip(tmp_path):
    frame = oof_frame(np.arange(3), np.zeros(3), np.arange(3), np.full((3, 10), 0.1))
    write_oof(tmp_path / "oof.csv", frame)
    assert read_oof(tmp_path / "oof.csv")["row_id"].tolist() == [0, 1, 2]


def test_submission_ids_start_at_one(tmp_path):
    frame = make_submission(np.eye(10)[[7, 3]])
    path = write_submission(tmp_path / "submission.csv", frame, n_test=2)
    assert path.read_text().splitlines() == ["ImageId,Label", "1,7", "2,3"]
    assert len(read_submission(path, n_test=2)) == 2


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"Id": [1], "Label": [1]}), "header"),
    (pd.DataFrame({"ImageId": [1], "Label": [1]}), "1 rows, but the test set has 2"),
    (pd.DataFrame({"ImageId": [1, 3], "Label": [1, 1]}), "row 2: ImageId = '3', expected 2"),
    (pd.DataFrame({"ImageId": [1, 2], "Label": [1, 10]}), "row 2: Label = '10'"),
    (pd.DataFrame({"ImageId": [1, 2], "Label": ["1", "2.0"]}), "row 2: Label = '2.0'"),
])
def test_bad_submissions_are_refused_before_writing(tmp_path, frame, message):
    (tmp_path / "submission.csv").write_text("kept\n")
    with pytest.raises(SubmissionError, match=message):
        write_submission(tmp_path / "submission.csv", frame, n_test=2)
    assert (tmp_path / "submission.csv").read_text() == "kept\n"  # nothing already written is lost
