"""`make kaggle`'s state machine (tools/kaggle_loop.py) against a fake Kaggle that keeps versions, outputs, datasets
and submissions: the whole loop, a rerun that sends nothing, a crash at every send resumed without a second send, a
failed kernel, a stale status, time limits. The end-to-end loop against the twin is in tests/test_kaggle_twin_loop.py.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from core.manifest import write_manifest
from tools.kaggle_loop import STATE_NAME, STEPS, Loop, LoopError, Waits

TEST_ROWS = 6


@dataclasses.dataclass
class Status:
    state: str
    failure: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETE", "ERROR")


@dataclasses.dataclass
class Sub:
    ref: int
    description: str
    status: str = "COMPLETE"
    public_score: Any = None
    private_score: Any = None
    date: str = "2026-12-05 00:00:00"


@dataclasses.dataclass
class Pushed:
    version: int


class FakeKaggle:
    """Kaggle as the loop sees it: versions per kernel, statuses that progress per poll, outputs, a dataset."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.versions: dict[str, int] = {}
        self.polls: dict[str, int] = {}
        self.fail: dict[str, str] = {}  # kernel slug → failure message of its next version
        self.crash_after: str | None = None  # a call name after which the "process dies"
        self.dataset: str | None = None
        self.pending_polls = 1
        self.subs: list[Sub] = []
        self.stale_first = False  # the first status after a push describes the previous version

    def _call(self, name: str) -> None:
        self.calls.append(name)

    def _maybe_crash(self, name: str) -> None:
        if self.crash_after == name:
            self.crash_after = None
            raise KeyboardInterrupt(f"killed after {name}")

    def quota(self) -> str:
        self._call("quota")
        return "29.5 h of 30 h GPU left this week"

    def push_kernel(self, folder: Path) -> Pushed:
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        slug = meta["id"]
        self._call(f"push {slug}")
        self.versions[slug] = self.versions.get(slug, 0) + 1
        self.polls[f"{slug}/{self.versions[slug]}"] = 0
        self._maybe_crash("push")
        return Pushed(self.versions[slug])

    def kernel_version(self, ref: str) -> int | None:
        self._call(f"version {ref}")
        return self.versions.get(ref)

    def kernel_status(self, ref: str) -> Status:
        self._call(f"status {ref}")
        slug, version = ref.rsplit("/", 1)
        self.polls[ref] += 1
        if self.polls[ref] <= 2:
            return Status("QUEUED" if self.polls[ref] == 1 else "RUNNING")
        if slug in self.fail:
            return Status("ERROR", self.fail.pop(slug))
        return Status("COMPLETE")

    def kernel_log(self, ref: str) -> str:
        return "\n".join(f"line {i}" for i in range(30)) + "\nValueError: boom"

    def kernel_output(self, ref: str, dest: Path) -> list[Path]:
        self._call(f"output {ref}")
        if "-train-" in ref:
            (dest / "m_fold0_best.pth").write_bytes(b"weights")
            (dest / "oof.csv").write_text("row_id,label,pred\n0,1,1\n")
            write_manifest(dest, {"model": {"name": "m"}, "n_folds": 1, "folds": [{"fold": 0, "weights":
                                  "m_fold0_best.pth"}], "complete": True, "local_cv": 0.99},
                           ["m_fold0_best.pth", "oof.csv"])
        else:
            rows = "\n".join(f"{i},{i % 10}" for i in range(1, TEST_ROWS + 1))
            (dest / "submission.csv").write_text(f"ImageId,Label\n{rows}\n")
        return sorted(dest.iterdir())

    def dataset_status(self, ref: str) -> str | None:
        self._call("dataset_status")
        if self.dataset is None:
            return None
        self.pending_polls -= 1
        return "ready" if self.pending_polls < 0 else "pending"

    def create_dataset(self, folder: Path, dir_mode: str = "skip") -> None:
        self._call("create_dataset")
        assert sorted(p.name for p in folder.iterdir()) == ["dataset-metadata.json", "m_fold0_best.pth",
                                                            "manifest.json", "oof.csv"]
        self.dataset = json.loads((folder / "dataset-metadata.json").read_text())["id"]
        self._maybe_crash("create_dataset")

    def version_dataset(self, folder: Path, message: str, dir_mode: str = "skip") -> None:
        self._call("version_dataset")

    def submit(self, file: Path, message: str) -> int:
        self._call("submit")
        self.subs.append(Sub(ref=100 + len(self.subs), description=message))
        self._maybe_crash("submit")
        return self.subs[-1].ref

    def submissions(self) -> list[Sub]:
        self._call("submissions")
        for sub in self.subs:
            sub.public_score = 0.987
        return list(self.subs)

    def sends(self) -> list[str]:
        return [c for c in self.calls if c.startswith(("push", "create_dataset", "version_dataset", "submit"))]


def fake_build(kernel: str, out_dir: Path, parameters: dict[str, Any], metadata: dict[str, Any]) -> Path:
    folder = out_dir / kernel
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel-metadata.json").write_text(json.dumps({"id": f"me/digitkit-{kernel}-demo", **metadata}))
    (folder / f"{kernel}.ipynb").write_text(json.dumps({"parameters": parameters}))
    return folder / f"{kernel}.ipynb"


def loop(tmp_path: Path, kaggle: FakeKaggle, lines: list[str] | None = None) -> Loop:
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    out = lines if lines is not None else []
    return Loop(run_dir, name="demo", owner="me", parameters={"epochs": 1}, client=kaggle, build=fake_build,
                test_rows=TEST_ROWS, waits=Waits(first=0, most=0, limit=60), say=out.append, sleep=lambda s: None)


def test_the_whole_loop_ends_with_a_public_score_recorded_beside_the_submission(tmp_path):
    kaggle, lines = FakeKaggle(), []
    result = loop(tmp_path, kaggle, lines).run()
    assert result["public_score"] == 0.987
    assert kaggle.sends() == ["push me/digitkit-train-demo", "create_dataset", "push me/digitkit-infer-demo",
                              "submit"]
    state = json.loads((tmp_path / "runs" / "demo" / STATE_NAME).read_text())
    assert all(state["steps"][step]["done"] for step in STEPS)
    record = json.loads((tmp_path / "runs" / "demo" / "submissions.json").read_text())["submissions"][0]
    assert record["ref"] == 100 and record["kaggle"]["public_score"] == 0.987
    # one line per state change, never a line per poll
    assert [line for line in lines if line.startswith("me/digitkit-train-demo/1:") and " after " in line] == [
        "me/digitkit-train-demo/1: QUEUED after 0 s", "me/digitkit-train-demo/1: RUNNING after 0 s",
        "me/digitkit-train-demo/1: COMPLETE after 0 s"]
    assert "GPU quota: 29.5 h of 30 h GPU left this week" in lines


def test_a_finished_loop_prints_its_result_and_sends_nothing(tmp_path):
    kaggle = FakeKaggle()
    loop(tmp_path, kaggle).run()
    again, lines = FakeKaggle(), []
    loop(tmp_path, again, lines).run()
    assert again.calls == [] and "finished earlier" in lines[0] and "public score 0.987" in lines[0]


@pytest.mark.parametrize("crash", ["push", "create_dataset", "submit"])
def test_a_crash_right_after_a_send_resumes_without_sending_it_twice(tmp_path, crash):
    kaggle = FakeKaggle()
    kaggle.crash_after = crash
    with pytest.raises(KeyboardInterrupt):
        loop(tmp_path, kaggle).run()
    loop(tmp_path, kaggle).run()
    sends = kaggle.sends()  # killed between Kaggle's answer and its record: the rerun finds what was sent
    assert sends.count("submit") == 1 and sends.count("create_dataset") == 1, sends
    assert sends.count("push me/digitkit-train-demo") == 1 and sends.count("push me/digitkit-infer-demo") == 1


def test_a_failed_kernel_stops_with_its_log_and_the_rerun_pushes_a_new_version(tmp_path):
    kaggle, lines = FakeKaggle(), []
    kaggle.fail["me/digitkit-train-demo"] = "ValueError: boom"
    with pytest.raises(LoopError, match=r"wait-train: me/digitkit-train-demo/1 ended ERROR: ValueError: boom — fix"):
        loop(tmp_path, kaggle, lines).run()
    assert lines[-1] == "  | ValueError: boom" and sum(line.startswith("  | ") for line in lines) == 20
    loop(tmp_path, kaggle).run()
    assert kaggle.sends()[:2] == ["push me/digitkit-train-demo", "push me/digitkit-train-demo"]
    assert "status me/digitkit-train-demo/2" in kaggle.calls


def test_the_wait_asks_for_the_version_it_pushed(tmp_path):
    kaggle = FakeKaggle()
    kaggle.versions["me/digitkit-train-demo"] = 6  # six earlier versions on Kaggle
    loop(tmp_path, kaggle).run()
    assert all(c.endswith("/7") for c in kaggle.calls if c.startswith("status me/digitkit-train-demo"))


def test_a_wait_past_its_limit_stops_in_one_line_and_the_rerun_waits_again(tmp_path):
    kaggle = FakeKaggle()
    slow = loop(tmp_path, kaggle)
    slow.waits = Waits(first=0, most=0, limit=-1)
    with pytest.raises(LoopError, match=r"wait-train: .* is still QUEUED after .* rerun the same command later"):
        slow.run()
    loop(tmp_path, kaggle).run()
    assert kaggle.sends().count("push me/digitkit-train-demo") == 1


def test_an_ensemble_loop_fuses_finished_loops_weights_and_submits_once(tmp_path):
    kaggle = FakeKaggle()
    run_dir = tmp_path / "runs" / "fused"
    run_dir.mkdir(parents=True)
    fused = Loop(run_dir, name="demo", owner="me", parameters={}, client=kaggle, build=fake_build,
                 test_rows=TEST_ROWS, waits=Waits(first=0, most=0, limit=60), say=lambda line: None,
                 sleep=lambda s: None, fuse=["a", "b"])
    assert fused.run()["public_score"] == 0.987
    assert kaggle.sends() == ["push me/digitkit-ensemble-demo", "submit"]
    meta = json.loads((run_dir / ".kaggle-build" / "ensemble" / "kernel-metadata.json").read_text())
    assert meta["dataset_sources"] == ["me/digitkit-weights-a", "me/digitkit-weights-b"]
    assert kaggle.subs[0].description == "digitkit make kaggle RUN=demo fusing a b: ensemble v1"


def test_a_loop_name_kaggle_would_change_is_refused_before_anything_is_sent():
    from tools.kaggle_ids import BuildError, check_loop_name

    assert check_loop_name("effnet-b0-lr3e-3") == "effnet-b0-lr3e-3"
    for name, fix in (("effnet.lr3e-3", "RUN=effnet-lr3e-3"), ("Foo", "RUN=foo"), ("a_b", "RUN=a-b"),
                      ("x" * 40, "at most 32 characters")):
        with pytest.raises(BuildError, match=fix):
            check_loop_name(name)


def test_a_failed_infer_output_is_refused_without_touching_the_run_folder(tmp_path):
    kaggle = FakeKaggle()
    original = kaggle.kernel_output

    def broken(ref: str, dest: Path) -> list[Path]:
        files = original(ref, dest)
        if "-infer-" in ref and kaggle.versions["me/digitkit-infer-demo"] == 1:
            (dest / "submission.csv").write_text("ImageId,Label\n1,1\n")  # one row short of many
        return files

    kaggle.kernel_output = broken
    with pytest.raises(LoopError, match=r"get-infer: me/digitkit-infer-demo/1's submission.csv: .*pushes the infer"):
        loop(tmp_path, kaggle).run()
    assert not (tmp_path / "runs" / "demo" / "submission.csv").exists()
    loop(tmp_path, kaggle).run()
    assert kaggle.sends().count("push me/digitkit-infer-demo") == 2 and kaggle.sends().count("submit") == 1


def test_loops_on_different_folds_are_refused_before_an_ensemble_is_pushed(tmp_path):
    from tools.kaggle_loop import check_same_folds

    for name, folds in (("a", "row,fold\n0,0\n1,1\n"), ("b", "row,fold\n0,1\n1,0\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "folds.csv").write_text(folds)
    with pytest.raises(LoopError, match=r"trained on different folds .* same seed and n_folds"):
        check_same_folds([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "b" / "folds.csv").write_text((tmp_path / "a" / "folds.csv").read_text())
    check_same_folds([tmp_path / "a", tmp_path / "b"])
