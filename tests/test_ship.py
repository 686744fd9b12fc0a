"""Contract tests for tools/ship.py and tools/shipping/: the REAL ``kaggle`` package (its Python API, pinned in the
venv) against tests/kaggle_stub — the same HTTP endpoints the kaggle CLI calls.

Each test runs in a temporary working folder holding hand-made build/<kernel>/ and weights/ folders in the shape
build.py and training produce. Every run's output is checked for the fake key; nothing may leak it. Retries wait
no time here (``no_retry_wait``).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from core.manifest import verify_manifest, write_manifest
from tests.conftest import FAKE_KAGGLE_KEY
from tests.kaggle_stub import Answer, error
from tools import ship
from tools.shipping import kaggle_client

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------ fixtures
def kernel_metadata(kernel: str, owner: str = "stubuser") -> dict:
    infer = kernel == "infer"
    return {"id": f"{owner}/digitkit-{kernel}", "title": f"digitkit {kernel}", "code_file": f"{kernel}.ipynb",
            "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": True,
            "enable_tpu": False, "enable_internet": not infer, "machine_shape": "NvidiaTeslaT4",
            "competition_sources": ["digit-recognizer"],
            "dataset_sources": [f"{owner}/digitkit-weights"] if infer else [], "kernel_sources": [],
            "model_sources": []}


def write_kernel(root: Path, kernel: str, meta: dict | None = None, notebook=None) -> Path:
    """build/<kernel>/ as build.py writes it: kernel-metadata.json and a small nbformat v4 notebook."""
    folder = root / "build" / kernel
    folder.mkdir(parents=True, exist_ok=True)
    if notebook is None:
        notebook = nbformat.v4.new_notebook(metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        notebook.cells = [
            nbformat.v4.new_markdown_cell(f"# digitkit {kernel}\nBuilt by build.py."),
            nbformat.v4.new_code_cell("EPOCHS = 3\nSEED = 0\n", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print('hello')\nprint(EPOCHS)",
                                      outputs=[nbformat.v4.new_output("stream", text="hello\n3\n")]),
        ]
    nbformat.write(notebook, folder / f"{kernel}.ipynb")
    (folder / "kernel-metadata.json").write_text(json.dumps(meta or kernel_metadata(kernel), indent=2))
    return folder


def write_run(folder: Path, *, cv: float = 0.987, seed: int = 0) -> dict[str, bytes]:
    """What a train run leaves: fold weights, oof/folds, a log sub-folder and manifest.json hashing them."""
    files = {f"smallcnn_fold{k}_best.pth": bytes([seed, k]) * 100 for k in range(2)}
    files |= {"oof.csv": b"ImageId,fold,prob\n1,0,0.9\n", "folds.csv": b"row,fold\n0,0\n1,1\n",
              "logs/train.log": f"run {seed}\n".encode()}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    write_manifest(folder, {"model": {"name": "smallcnn", "spec": {}}, "n_folds": 2,
                            "folds": [{"fold": k, "weights": f"smallcnn_fold{k}_best.pth"} for k in range(2)],
                            "local_cv": cv}, list(files))
    return {**files, "manifest.json": (folder / "manifest.json").read_bytes()}


def write_weights(root: Path) -> Path:
    folder = root / "weights"
    folder.mkdir(exist_ok=True)
    (folder / "dataset-metadata.json").write_bytes((REPO / "weights" / "dataset-metadata.json").read_bytes())
    (folder / "README.md").write_text("tracked\n")
    write_run(folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(kaggle_client, "RETRY_DELAYS", (0.0, 0.0, 0.0))


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run(kaggle_stub, work, capsys):
    """main(argv) in this process (through the real kaggle package); returns (exit code, stdout, stderr)."""
    def _run(*argv: str) -> tuple[int, str, str]:
        code = ship.main(list(argv))
        out, err = capsys.readouterr()
        assert FAKE_KAGGLE_KEY not in out + err
        return code, out, err
    return _run


def assert_no_key_in_files(*folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert FAKE_KAGGLE_KEY.encode() not in path.read_bytes(), path


# ------------------------------------------------------------------------------------------------------ push
@pytest.mark.parametrize("kernel", ["train", "infer"])
def test_push_sends_the_built_notebook_and_metadata(run, kaggle_stub, work, kernel):
    folder = write_kernel(work, kernel)
    code, out, err = run("push", "--kernel", kernel)
    assert code == 0, err
    assert f"$ kaggle kernels push -p build/{kernel}" in out
    (call,) = kaggle_stub.calls("SaveKernel")
    body = call.body
    assert body["slug"] == f"stubuser/digitkit-{kernel}" and body["newTitle"] == f"digitkit {kernel}"
    assert body["machineShape"] == "NvidiaTeslaT4"
    assert body["competitionDataSources"] == ["digit-recognizer"]
    assert body["enableInternet"] is (kernel == "train")
    assert body.get("datasetDataSources", []) == (["stubuser/digitkit-weights"] if kernel == "infer" else [])
    assert body["language"] == "python" and body["kernelType"] == "notebook" and body["isPrivate"] is True
    sent = json.loads(body["text"])
    built = json.loads((folder / f"{kernel}.ipynb").read_text())
    expected = json.loads(ship.notebook_text(built))["cells"]
    assert sent["cells"] == expected and sent["cells"][2]["outputs"] == []
    assert [c["source"] for c in sent["cells"]] == ["".join(c["source"]) if isinstance(c["source"], list)
                                                    else c["source"] for c in built["cells"]]
    assert sent["metadata"]["kernelspec"]["name"] == "python3"
    assert "authorization" not in {k.lower() for k in call.headers}
    print("SaveKernel body keys:", sorted(body), file=sys.__stderr__)


def test_push_error_reported_with_exit_status_0_becomes_a_failure(run, kaggle_stub, work):
    write_kernel(work, "train")
    before = snapshot(work / "build")
    kaggle_stub.on("SaveKernel", Answer(body={"error": "Notebook digitkit-train could not be saved"}))
    code, out, err = run("push", "--kernel", "train")
    assert code == 1
    assert "Kernel push error: Notebook digitkit-train could not be saved" in err
    assert snapshot(work / "build") == before


def test_push_with_invalid_dataset_source_fails_and_says_publish_weights(run, kaggle_stub, work):
    write_kernel(work, "infer")
    kaggle_stub.on("SaveKernel", Answer(body={"ref": "/code/stubuser/digitkit-infer", "url": "u", "versionNumber": 2,
                                              "invalidDatasetSources": ["stubuser/digitkit-weights"]}))
    code, _, err = run("push", "--kernel", "infer")
    assert code == 1
    assert "not valid dataset sources" in err and "make weights" in err


@pytest.mark.parametrize("answer, advice", [
    (error(400, "The kernel source must be less than 1 megabytes in size"), "shrink the notebook"),
    (error(401, "Unauthenticated"), "check your credentials"),
    (error(500, "Internal error"), "retry later"),
], ids=["400-size", "401", "500"])
def test_push_http_errors_exit_non_zero_with_what_to_do(run, kaggle_stub, work, answer, advice):
    write_kernel(work, "train")
    before = snapshot(work)
    kaggle_stub.on("SaveKernel", answer)
    code, _, err = run("push", "--kernel", "train")
    assert code == 1
    assert advice in err and "`kaggle kernels push -p build/train` failed: HTTP " in err
    assert len(err.strip().splitlines()) == 1  # one line
    assert len(kaggle_stub.calls("SaveKernel")) == 1  # a push is never retried after a 4xx/5xx: it may have been saved
    if answer.status != 401:
        assert answer.body["message"] in err
    assert snapshot(work) == before  # nothing local deleted or half-written


# ------------------------------------------------------------------------------------------------------ status
@pytest.mark.parametrize("state, code", [("RUNNING", 0), ("COMPLETE", 0), ("ERROR", 1)])
def test_status_prints_the_state_and_fails_on_error(run, kaggle_stub, work, state, code):
    write_kernel(work, "train")
    kaggle_stub.on("GetKernelSessionStatus", Answer(body={
        "status": state, "failureMessage": "CUDA out of memory in cell 7" if state == "ERROR" else ""}))
    got, out, err = run("status", "--kernel", "train")
    assert got == code
    (call,) = kaggle_stub.calls("GetKernelSessionStatus")
    assert call.body == {"userName": "stubuser", "kernelSlug": "digitkit-train"}
    if state == "ERROR":
        assert "CUDA out of memory in cell 7" in err and "what to do" in err
    else:
        assert f"stubuser/digitkit-train: {state}" in out


def test_cli_output_is_scrubbed_and_verbose_is_never_passed_on(run, kaggle_stub, work, monkeypatch):
    write_kernel(work, "train")
    monkeypatch.setenv("VERBOSE", "1")
    kaggle_stub.on("GetKernelSessionStatus", error(500, f"server echoed key={FAKE_KAGGLE_KEY}"))
    code, out, err = run("status", "--kernel", "train")  # `run` asserts the key is absent
    assert code == 1 and "key=***" in err and "retry later" in err
    assert "Authorization" not in out + err and "---Request---" not in out + err


# ------------------------------------------------------------------------------------------------------ output
def test_output_lands_in_weights_after_the_hashes_are_verified(run, kaggle_stub, work, tmp_path_factory):
    weights = write_weights(work)
    remote = write_run(tmp_path_factory.mktemp("remote"), cv=0.991, seed=7)
    kaggle_stub.set_kernel_output(remote, log="[session log]")
    code, out, err = run("output", "--kernel", "train", "--id", "stubuser/digitkit-train")
    assert code == 0, err
    for name, data in remote.items():
        assert (weights / name).read_bytes() == data
    assert (weights / "digitkit-train.log").read_text() == "[session log]"
    assert verify_manifest(weights)["local_cv"] == 0.991
    assert (weights / "README.md").read_text() == "tracked\n"
    assert "files verified" in out
    assert not list(work.glob(".weights-download-*"))


def test_output_tampered_file_is_reported_and_weights_stay_untouched(run, kaggle_stub, work, tmp_path_factory):
    write_kernel(work, "train")
    weights = write_weights(work)
    before = snapshot(weights)
    remote = write_run(tmp_path_factory.mktemp("remote"), seed=9)
    remote["smallcnn_fold1_best.pth"] = b"evil" + remote["smallcnn_fold1_best.pth"][4:]
    kaggle_stub.set_kernel_output(remote)
    code, _, err = run("output", "--kernel", "train")
    assert code == 1
    assert "smallcnn_fold1_best.pth: sha256 differs" in err and "nothing in weights/ was changed" in err
    assert snapshot(weights) == before
    assert not list(work.glob(".weights-download-*"))


# ------------------------------------------------------------------------------------------------------ weights
def test_weights_creates_the_dataset_when_absent_and_waits_for_ready(run, kaggle_stub, work):
    weights = write_weights(work)
    (weights / "smallcnn_fold0_last.pth").write_bytes(b"optimizer state" * 100)  # what a Kaggle output also holds
    (weights / "core").mkdir()
    (weights / "core" / "trainer.py").write_text("# the inlined library\n")
    (weights / "train.ipynb").write_text("{}")
    tracked = (weights / "dataset-metadata.json").read_bytes()
    kaggle_stub.on("GetDatasetStatus", error(404, "Dataset not found"), error(404, "Dataset not found"),
                   Answer(body={"status": "NOT_YET_PERSISTED"}), Answer(body={"status": "READY"}))
    code, out, err = run("weights")
    assert code == 0, err
    (create,) = kaggle_stub.calls("CreateDataset")
    assert not kaggle_stub.calls("CreateDatasetVersion")
    assert {k: create.body[k] for k in ("ownerSlug", "slug", "title", "licenseName", "isPrivate")} == {
        "ownerSlug": "stubuser", "slug": "digitkit-weights", "title": "digitkit weights", "licenseName": "CC0-1.0",
        "isPrivate": True}
    assert len(create.body["files"]) == len(kaggle_stub.uploads)
    assert set(kaggle_stub.uploads) == {"smallcnn_fold0_best.pth", "smallcnn_fold1_best.pth", "oof.csv", "folds.csv",
                                        "manifest.json", "logs.zip"}
    for name in ("smallcnn_fold0_best.pth", "manifest.json"):
        assert kaggle_stub.uploads[name] == (weights / name).read_bytes()
    assert zipfile.ZipFile(io.BytesIO(kaggle_stub.uploads["logs.zip"])).namelist() == ["train.log"]
    assert "not_yet_persisted (check 1/30)" in out and "ready (check 2/30)" in out
    assert "left out (not needed by inference): core/, smallcnn_fold0_last.pth, train.ipynb" in out
    assert (weights / "dataset-metadata.json").read_bytes() == tracked  # placeholder owner kept in git
    assert not list(work.glob(".weights-upload-*"))
    assert_no_key_in_files(work, kaggle_stub.root)


def test_weights_versions_the_dataset_when_present(run, kaggle_stub, work):
    write_weights(work)
    code, out, err = run("weights", "--message", "smallcnn 2 folds")
    assert code == 0, err
    assert not kaggle_stub.calls("CreateDataset")
    (version,) = kaggle_stub.calls("CreateDatasetVersion")
    assert version.body["ownerSlug"] == "stubuser" and version.body["datasetSlug"] == "digitkit-weights"
    notes = version.body["body"]["versionNotes"]
    assert notes.startswith("smallcnn 2 folds (local CV 0.987, git ")
    assert "ready (check 1/30)" in out


def test_weights_not_ready_after_the_last_poll_fails(run, kaggle_stub, work):
    write_weights(work)
    kaggle_stub.on("GetDatasetStatus", Answer(body={"status": "BLOBS_RECEIVED"}))
    code, out, err = run("weights", "--polls", "2")
    assert code == 1 and "not ready after 2 checks" in err and "blobs_received (check 2/2)" in out


# ------------------------------------------------------------------------------------------------------ submit
def write_test_csv(work: Path, rows: int) -> None:
    folder = work / "data" / "digit-recognizer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.csv").write_text("pixel0,pixel1\n" + "0,0\n" * rows)


def test_submit_sends_the_csv(run, kaggle_stub, work):
    write_test_csv(work, 3)
    (work / "submission.csv").write_text("ImageId,Label\n1,7\n2,2\n3,1\n")
    code, out, err = run("submit", "--message", "smallcnn cv 0.987", "--test-file", "data/digit-recognizer/test.csv")
    assert code == 0, err
    assert kaggle_stub.uploads["submission.csv"] == (work / "submission.csv").read_bytes()
    (create,) = kaggle_stub.calls("CreateSubmission")
    assert create.body["competitionName"] == "digit-recognizer"
    assert create.body["submissionDescription"] == "smallcnn cv 0.987"


def test_submit_records_what_it_sent_beside_the_file(run, kaggle_stub, work):
    write_test_csv(work, 3)
    folder = work / "runs" / "r1"
    folder.mkdir(parents=True)
    write_run(folder, cv=0.98765)
    (folder / "submission.csv").write_text("ImageId,Label\n1,7\n2,2\n3,1\n")
    code, out, err = run("submit", "--file", "runs/r1/submission.csv", "--test-file", "data/digit-recognizer/test.csv")
    assert code == 0, err
    (record,) = json.loads((folder / "submissions.json").read_text())["submissions"]
    sent = kaggle_stub.calls("CreateSubmission")[0].body["submissionDescription"]
    digest = ship.sha256_file(folder / "submission.csv")
    assert record["message"] == sent and sent.startswith("digitkit r1/submission.csv, local CV 0.98765, git ")
    assert sent.endswith(f"sha256 {digest[:12]}")  # the default message names the file's content
    assert record["sha256"] == digest and record["run"] == "r1" and record["competition"] == "digit-recognizer"
    assert record["manifest_sha256"] == ship.sha256_file(folder / "manifest.json")
    assert record["ref"] == 12345  # the stub's CreateSubmission ref, as the CLI printed it
    assert "make scores" in out


def test_a_dry_run_or_a_failed_submit_records_nothing(run, kaggle_stub, work):
    write_test_csv(work, 3)
    (work / "submission.csv").write_text("ImageId,Label\n1,7\n2,2\n3,1\n")
    assert run("submit", "--dry-run", "--test-file", "data/digit-recognizer/test.csv")[0] == 0
    kaggle_stub.on("CreateSubmission", error(400, "Submission file is wrong"))
    assert run("submit", "--message", "x", "--test-file", "data/digit-recognizer/test.csv")[0] == 1
    assert not (work / "submissions.json").exists()


def test_scores_writes_public_scores_into_the_records_they_came_from(run, kaggle_stub, work):
    """Two records with one message and no id (matched by time), one by its id though its message was edited on
    kaggle.com, and a Kaggle submission no record claims."""
    inference = work / "runs" / "kaggle-infer"
    inference.mkdir(parents=True)
    records = [{"time": "2026-12-01T10:00:00+00:00", "message": "same", "sha256": "a" * 64, "run": "kaggle-infer"},
               {"time": "2026-12-01T12:00:00+00:00", "message": "same", "sha256": "b" * 64, "run": "kaggle-infer"},
               {"time": "2026-12-01T13:00:00+00:00", "message": "later", "sha256": "c" * 64, "run": "kaggle-infer",
                "ref": 3}]
    (inference / "submissions.json").write_text(json.dumps({"submissions": records}))
    kaggle_stub.submissions = [
        {"ref": 3, "date": "2026-12-01T13:00:09Z", "description": "later, renamed", "fileName": "submission.csv",
         "status": "PENDING"},
        {"ref": 2, "date": "2026-12-01T12:00:05Z", "description": "same", "fileName": "submission.csv",
         "status": "COMPLETE", "publicScore": "0.99614", "privateScore": ""},
        {"ref": 1, "date": "2026-12-01T10:00:04Z", "description": "same", "fileName": "submission.csv",
         "status": "COMPLETE", "publicScore": "0.99500", "privateScore": ""},
        {"ref": 0, "date": "2026-11-30T09:00:00Z", "description": "from the website", "fileName": "sub.csv",
         "status": "COMPLETE", "publicScore": "0.98000"}]
    code, out, err = run("scores")
    assert code == 0, err
    (listing,) = kaggle_stub.calls("ListSubmissions")
    assert listing.body["competitionName"] == "digit-recognizer"
    saved = json.loads((inference / "submissions.json").read_text())["submissions"]
    assert [r["kaggle"]["ref"] for r in saved] == [1, 2, 3]  # the nearest in time among equal messages
    assert [r["kaggle"]["public_score"] for r in saved] == [0.995, 0.99614, None]
    assert [r["kaggle"]["status"] for r in saved] == ["COMPLETE", "COMPLETE", "PENDING"]
    assert "3 matched" in out and "'from the website'" in out and "not sent by make submit" in out


def test_scores_refuses_an_edited_records_file(run, kaggle_stub, work):
    (work / "runs" / "r1").mkdir(parents=True)
    (work / "runs" / "r1" / "submissions.json").write_text("[1, 2]")
    code, _, err = run("scores")
    assert code == 1 and "runs/r1/submissions.json" in err and "make submit" in err
    write_test_csv(work, 3)
    (work / "runs" / "r1" / "submission.csv").write_text("ImageId,Label\n1,7\n2,2\n3,1\n")
    code, _, err = run("submit", "--file", "runs/r1/submission.csv", "--message", "x",
                       "--test-file", "data/digit-recognizer/test.csv")
    assert code == 1 and "Nothing was sent" in err  # a send whose record could not be written: refused before it
    assert kaggle_stub.requests == []  # neither command asked anything of Kaggle


@pytest.mark.parametrize("text, problem", [
    ("ImageId,Prediction\n1,7\n2,2\n3,1\n", "header"),
    ("ImageId,Label\n1,7\n3,2\n4,1\n", "row 2: ImageId = '3', expected 2"),
    ("ImageId,Label\n0,7\n1,2\n2,1\n", "row 1: ImageId = '0', expected 1"),
    ("ImageId,Label\n1,7\n2,10\n3,1\n", "row 2: Label = '10'"),
    ("ImageId,Label\n1,7\n2,2.0\n3,1\n", "row 2: Label = '2.0'"),
    ("ImageId,Label\n1,7\n2\n3,1\n", "row 2: Label = ''"),
    ("ImageId,Label\n1,7\n2,2\n", "2 rows, but the test set has 3"),
    ("ImageId,Label\n", "0 rows, but the test set has 3"),
    (None, "not found"),
], ids=["header", "gap", "zero-based", "label-10", "label-float", "short-row", "row-count", "empty", "missing"])
def test_malformed_submission_is_refused_before_any_call(run, kaggle_stub, work, text, problem):
    write_test_csv(work, 3)
    if text is not None:
        (work / "submission.csv").write_text(text)
    code, _, err = run("submit", "--test-file", "data/digit-recognizer/test.csv")
    assert code == 1 and problem in err
    assert kaggle_stub.requests == []


# ------------------------------------------------------------------------------------------------------ data
def competition_zip() -> dict[str, bytes]:
    return {"train.csv": b"label,pixel0\n3,0\n", "test.csv": b"pixel0\n0\n",
            "sample_submission.csv": b"ImageId,Label\n1,0\n"}


def serve_zip(stub, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    stub.serve("digit-recognizer.zip", buffer.getvalue())


def test_data_downloads_and_unzips_the_competition_files(run, kaggle_stub, work):
    serve_zip(kaggle_stub, competition_zip())
    code, out, err = run("data", "--source", "kaggle")
    assert code == 0, err
    assert snapshot(work / "data" / "digit-recognizer") == competition_zip()
    assert kaggle_stub.calls("DownloadDataFiles")[0].body == {"competitionName": "digit-recognizer"}
    assert not list((work / "data").glob(".digit-recognizer-download-*"))


def test_default_data_kaggle_source_delegates_to_ship(kaggle_stub, work, capsys):
    from tools import default_data

    serve_zip(kaggle_stub, competition_zip())
    assert default_data.main(["--source", "kaggle", "--out", "data/digit-recognizer"]) == 0
    out, err = capsys.readouterr()
    assert "$ kaggle competitions download -c digit-recognizer" in out and FAKE_KAGGLE_KEY not in out + err
    assert snapshot(work / "data" / "digit-recognizer") == competition_zip()


# ------------------------------------------------------------------------------------------------------ pre-validation
def _without_credentials(monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")


def _big_notebook():
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("x = '" + "a" * 1_000_000 + "'")]
    return notebook


KERNEL_CASES = {  # id: (kernel, change to kernel-metadata.json, notebook or None, field named in the refusal)
    "title-short": ("train", {"title": "dk"}, None, "title"),
    "title-long": ("train", {"title": "digitkit " + "x" * 45}, None, "title"),
    "slug-charset": ("train", {"id": "stubuser/Digitkit_Train"}, None, "slug"),
    "slug-short": ("train", {"id": "stubuser/dk", "title": "dk dk"}, None, "slug"),
    "slug-not-title": ("train", {"id": "stubuser/digitkit-other"}, None, "slugify(title)"),
    "owner-placeholder": ("train", {"id": "your-kaggle-username/digitkit-train"}, None, "owner"),
    "owner-missing": ("train", {"id": "/digitkit-train"}, None, "owner"),
    "id-form": ("train", {"id": "digitkit-train"}, None, "'owner/slug'"),
    "code-file": ("train", {"code_file": "other.ipynb"}, None, "code_file"),
    "size": ("train", {}, _big_notebook, "limit is 1,000,000"),
    "kernelspec": ("train", {}, lambda: nbformat.v4.new_notebook(), "metadata.kernelspec.name"),
    "machine-shape": ("train", {"machine_shape": "NvidiaTeslaP100"}, None, "machine_shape"),
    "machine-shape-missing": ("train", {"machine_shape": None}, None, "machine_shape"),
    "internet": ("infer", {"enable_internet": True}, None, "enable_internet"),
    "weights-source": ("infer", {"dataset_sources": []}, None, "dataset_sources"),
    "source-placeholder": ("infer", {"dataset_sources": ["your-kaggle-username/digitkit-weights"]}, None,
                           "dataset_sources"),
    "credentials": ("train", {}, None, "credentials"),
}


@pytest.mark.parametrize("case", list(KERNEL_CASES))
def test_push_prevalidation_refuses_before_any_call(run, kaggle_stub, work, monkeypatch, case):
    kernel, change, notebook, field = KERNEL_CASES[case]
    meta = {k: v for k, v in {**kernel_metadata(kernel), **change}.items() if v is not None}
    write_kernel(work, kernel, meta, notebook() if notebook else None)
    if case == "credentials":
        _without_credentials(monkeypatch)
    code, _, err = run("push", "--kernel", kernel)
    assert code == 1 and "refused before any call" in err and field in err
    if case == "credentials":
        assert "KAGGLE_API_TOKEN" in err and "KAGGLE_USERNAME and KAGGLE_KEY" in err and "kaggle.json" in err
    assert kaggle_stub.requests == []


DATASET_CASES = {  # id: (change to dataset-metadata.json, field named in the refusal)
    "slug-short": ({"id": "stubuser/dkw"}, "slug"),
    "slug-charset": ({"id": "stubuser/Digitkit_Weights"}, "slug"),
    "title-short": ({"title": "dkw"}, "title"),
    "title-long": ({"title": "w" * 51}, "title"),
    "two-licences": ({"licenses": [{"name": "CC0-1.0"}, {"name": "MIT"}]}, "licenses"),
    "no-licence": ({"licenses": []}, "licenses"),
    "manifest": ({}, "manifest.json"),
    "manifest-missing": ({}, "manifest.json: missing"),
    "credentials": ({}, "credentials"),
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_weights_prevalidation_refuses_before_any_call(run, kaggle_stub, work, monkeypatch, case):
    change, field = DATASET_CASES[case]
    weights = write_weights(work)
    meta = json.loads((weights / "dataset-metadata.json").read_text())
    (weights / "dataset-metadata.json").write_text(json.dumps({**meta, **change}))
    if case == "manifest":
        (weights / "oof.csv").write_text("altered\n")
    if case == "manifest-missing":
        (weights / "manifest.json").unlink()
    if case == "credentials":
        _without_credentials(monkeypatch)
    code, _, err = run("weights")
    assert code == 1 and "refused before any call" in err and field in err
    assert kaggle_stub.requests == []


def test_outputs_do_not_count_towards_the_size_limit(work):
    folder = write_kernel(work, "train")
    notebook = nbformat.read(folder / "train.ipynb", as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="y" * 2_000_000)]
    nbformat.write(notebook, folder / "train.ipynb")
    meta, text = ship.check_kernel_folder(folder, "train", dry_run=True)
    assert len(text) < 2000 and meta["id"] == "stubuser/digitkit-train"


# ------------------------------------------------------------------------------------------------------ dry-run
@pytest.mark.parametrize("argv, shown", [
    (["push", "--kernel", "infer"],
     ["kaggle kernels push -p build/infer", '"enable_internet": false', "bytes as sent"]),
    (["status", "--kernel", "train"], ["kaggle kernels status stubuser/digitkit-train"]),
    (["output", "--kernel", "train"], ["kaggle kernels output stubuser/digitkit-train -p .weights-download-XXXX"]),
    (["weights"], ["kaggle datasets status your-kaggle-username/digitkit-weights", "kaggle datasets create -p",
                   "--dir-mode zip", "kaggle datasets version -p", '"title": "digitkit weights"', "manifest.json"]),
    (["submit", "--test-file", "data/digit-recognizer/test.csv"], ["kaggle competitions submit -c digit-recognizer -f submission.csv -m", "3 rows, valid"]),
    (["data", "--source", "kaggle"], ["kaggle competitions download -c digit-recognizer -p data/.digit-recognizer"]),
], ids=["push", "status", "output", "weights", "submit", "data"])
def test_dry_run_prints_command_and_metadata_and_sends_nothing(run, kaggle_stub, work, monkeypatch, argv, shown):
    _without_credentials(monkeypatch)
    write_kernel(work, "train")
    write_kernel(work, "infer")
    write_weights(work)
    write_test_csv(work, 3)
    (work / "submission.csv").write_text("ImageId,Label\n1,7\n2,2\n3,1\n")
    code, out, err = run(*argv, "--dry-run")
    assert code == 0, err
    assert "dry run: nothing is sent" in out
    for text in shown:
        assert text in out
    assert kaggle_stub.requests == []
    assert not (work / "data" / "digit-recognizer" / "train.csv").exists()


def test_module_entry_point_runs_the_real_cli(kaggle_stub, work):
    """`python -m tools.ship` as make runs it, in a subprocess with the stub's environment; VERBOSE=1 (which would
    make the kaggle package print the Authorization header) is ignored where the package is first imported."""
    write_kernel(work, "train")
    env = {**kaggle_stub.env, "PYTHONPATH": str(REPO), "VERBOSE": "1"}
    proc = subprocess.run([sys.executable, "-m", "tools.ship", "status", "--kernel", "train"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "stubuser/digitkit-train: COMPLETE" in proc.stdout
    assert FAKE_KAGGLE_KEY not in proc.stdout + proc.stderr
    assert "Authorization" not in proc.stdout + proc.stderr and "Basic " not in proc.stdout + proc.stderr
    assert [r.api_method for r in kaggle_stub.requests] == ["GetKernelSessionStatus"]


def test_output_of_another_kernel_goes_to_runs_without_a_manifest(run, kaggle_stub, work):
    write_kernel(work, "infer")
    kaggle_stub.set_kernel_output({"submission.csv": b"ImageId,Label\n1,7\n"})
    code, out, err = run("output", "--kernel", "infer")
    assert code == 0, err
    assert (work / "runs" / "kaggle-infer" / "submission.csv").read_bytes() == b"ImageId,Label\n1,7\n"
    assert not (work / "weights").exists()


def test_data_failure_leaves_the_data_folder_untouched(run, kaggle_stub, work):
    folder = work / "data" / "digit-recognizer"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("label\n1\n")
    kaggle_stub.on("DownloadDataFiles", error(403, "You must accept this competition's rules"))
    code, _, err = run("data")
    assert code == 1 and "accept the rules" in err
    assert snapshot(folder) == {"train.csv": b"label\n1\n"}
    assert not list((work / "data").glob(".digit-recognizer-download-*"))


def test_weights_with_a_token_only_substitutes_the_token_owner(run, kaggle_stub, work, monkeypatch):
    """KAGGLE_API_TOKEN alone: the owner comes from `kaggle config view`; the token never appears in any output."""
    token = "KGAT_" + "5a" * 16
    _without_credentials(monkeypatch)
    monkeypatch.setenv("KAGGLE_API_TOKEN", token)
    kaggle_stub.on("IntrospectToken", Answer(body={"active": True, "username": "tokenuser"}))
    write_weights(work)
    code, out, err = run("weights")
    assert code == 0, err
    (version,) = kaggle_stub.calls("CreateDatasetVersion")
    assert version.body["ownerSlug"] == "tokenuser" and token not in out + err
    assert all(token not in json.dumps(r.body) for r in kaggle_stub.requests if r.api_method != "IntrospectToken")


# ------------------------------------------------------------------------------------------------------ the client
# tools.shipping.kaggle_client on its own: the structured answers tools.kaggle_loop reads.
def test_push_kernel_answers_the_version_it_saved(kaggle_stub, work):
    folder = write_kernel(work, "train")
    kaggle_stub.on("SaveKernel", Answer(body={"ref": "/code/stubuser/digitkit-train", "versionNumber": 4,
                                              "url": "https://www.kaggle.com/code/stubuser/digitkit-train"}))
    pushed = kaggle_client.push_kernel(folder)
    assert pushed == kaggle_client.Pushed("stubuser/digitkit-train", 4, "https://www.kaggle.com/code/stubuser/"
                                                                         "digitkit-train")


def test_kernel_status_carries_the_failure_message_and_asks_for_a_version(kaggle_stub):
    kaggle_stub.on("GetKernelSessionStatus", Answer(body={"status": "ERROR", "failureMessage": "CUDA out of memory"}))
    found = kaggle_client.kernel_status("stubuser/digitkit-train", version=3)
    assert found == kaggle_client.KernelStatus("ERROR", "CUDA out of memory") and found.finished
    assert kaggle_client.kernel_status("stubuser/digitkit-train/3").state == "ERROR"  # the loop's "owner/slug/N"
    calls = kaggle_stub.calls("GetKernelSessionStatus")
    asked = {"userName": "stubuser", "kernelSlug": "digitkit-train", "versionLabel": "v3"}
    assert [c.body for c in calls] == [asked, asked]
    kaggle_stub.on("GetKernelSessionStatus", Answer(body={"status": "QUEUED"}))
    assert kaggle_client.kernel_status("stubuser/digitkit-train") == kaggle_client.KernelStatus("QUEUED", "")


def test_kernel_version_reads_the_latest_saved_version(kaggle_stub):
    kaggle_stub.on("GetKernel", Answer(body={"metadata": {"ref": "stubuser/digitkit-train", "currentVersionNumber": 7},
                                             "blob": {"source": "{}"}}))
    assert kaggle_client.kernel_version("stubuser/digitkit-train") == 7
    (call,) = kaggle_stub.calls("GetKernel")
    assert call.body == {"userName": "stubuser", "kernelSlug": "digitkit-train"}


def test_kernel_output_reads_every_page(kaggle_stub, work):
    files = {f"fold{k}.pth": bytes([k]) * 10 for k in range(5)}
    kaggle_stub.set_kernel_output(files, log="[log]")

    def paged(request):  # pages of 2, as Kaggle pages them: nextPageToken until the last page
        start = int(request.body.get("pageToken") or 0)
        names = list(files)[start:start + request.body["pageSize"]]
        following = start + len(names)
        return Answer(body={"files": [{"fileName": n, "url": f"http://localhost/files/output/{n}"} for n in names],
                            "log": "[log]", "nextPageToken": str(following) if following < len(files) else ""})

    kaggle_stub.on("ListKernelSessionOutput", paged)
    written = kaggle_client.kernel_output("stubuser/digitkit-train", work / "out", page_size=2, version=2)
    assert sorted(p.name for p in written) == sorted([*files, "digitkit-train.log"])
    assert snapshot(work / "out") == {**files, "digitkit-train.log": b"[log]"}
    pages = kaggle_stub.calls("ListKernelSessionOutput")
    assert [c.body.get("pageToken", "") for c in pages] == ["", "2", "4"]
    assert {c.body["versionLabel"] for c in pages} == {"v2"}


def test_kernel_output_refuses_a_name_outside_the_destination(kaggle_stub, work):
    kaggle_stub.serve("evil", b"x")
    kaggle_stub.on("ListKernelSessionOutput", Answer(body={"files": [{"fileName": "../evil",
                                                                      "url": "http://localhost/files/evil"}]}))
    with pytest.raises(ship.ShipError, match="outside"):
        kaggle_client.kernel_output("stubuser/digitkit-train", work / "out")
    assert not (work / "evil").exists()


def test_kernel_log_is_the_sessions_log(kaggle_stub):
    kaggle_stub.set_kernel_output({}, log="epoch 1\nepoch 2\n")
    assert kaggle_client.kernel_log("stubuser/digitkit-train") == "epoch 1\nepoch 2\n"


def test_a_read_is_retried_after_429_then_succeeds(kaggle_stub, capsys):
    kaggle_stub.on("GetKernelSessionStatus", error(429, "Too many requests"), error(503, "unavailable"),
                   Answer(body={"status": "RUNNING"}))
    assert kaggle_client.kernel_status("stubuser/digitkit-train").state == "RUNNING"
    assert len(kaggle_stub.calls("GetKernelSessionStatus")) == 3
    assert "HTTP 429 Too many requests; retry 1/3" in capsys.readouterr().err


def test_retries_are_bounded_and_a_send_is_retried_only_after_429(kaggle_stub, work):
    kaggle_stub.on("GetKernelSessionStatus", error(500, "Internal error"))
    with pytest.raises(kaggle_client.KaggleCallError, match="HTTP 500 Internal error; what to do: .*retry") as err:
        kaggle_client.kernel_status("stubuser/digitkit-train")
    assert err.value.status == 500 and "\n" not in str(err.value)
    assert len(kaggle_stub.calls("GetKernelSessionStatus")) == 1 + len(kaggle_client.RETRY_DELAYS)
    kaggle_stub.on("SaveKernel", error(429, "slow down"), Answer(body={"ref": "/code/stubuser/digitkit-train",
                                                                       "versionNumber": 2, "url": "u"}))
    assert kaggle_client.push_kernel(write_kernel(work, "train")).version == 2  # refused, not saved: safe to resend
    kaggle_stub.on("GetKernelSessionStatus", Answer(body={"code": 429, "message": "later"},
                                                    headers={"Retry-After": "3600"}))
    with pytest.raises(kaggle_client.KaggleCallError, match="HTTP 429 later; what to do: .*wait a few minutes"):
        kaggle_client.kernel_status("stubuser/digitkit-train")  # an hour's Retry-After is not waited for


def test_a_request_that_hangs_times_out(kaggle_stub):
    def slow(request):
        time.sleep(1.0)
        return Answer(body={"status": "RUNNING"})

    kaggle_stub.on("GetKernelSessionStatus", slow)
    with pytest.raises(kaggle_client.KaggleCallError, match="connection to Kaggle failed .*Timeout"):
        kaggle_client.kernel_status("stubuser/digitkit-train", timeout=0.2)


def test_dataset_status_is_none_when_the_dataset_is_absent(kaggle_stub):
    kaggle_stub.on("GetDatasetStatus", error(404, "Dataset not found"), Answer(body={"status": "NOT_YET_PERSISTED"}))
    assert kaggle_client.dataset_status("stubuser/digitkit-weights") is None
    assert kaggle_client.dataset_status("stubuser/digitkit-weights") == "not_yet_persisted"
    kaggle_stub.on("GetDatasetStatus", error(403, "Permission denied"))
    with pytest.raises(kaggle_client.KaggleCallError, match="check your credentials"):
        kaggle_client.dataset_status("stubuser/digitkit-weights")


def test_create_dataset_refuses_a_slug_in_use(kaggle_stub, work):
    weights = write_weights(work)
    meta = json.loads((weights / "dataset-metadata.json").read_text())
    (weights / "dataset-metadata.json").write_text(json.dumps({**meta, "id": "stubuser/digitkit-weights"}))
    with pytest.raises(ship.ShipError, match="already in use.*what to do: the slug belongs"):
        kaggle_client.create_dataset(weights)  # the stub's GetDatasetStatus says READY: it exists
    assert not kaggle_stub.calls("CreateDataset")


def test_submit_and_submissions_are_structured(kaggle_stub, work):
    (work / "submission.csv").write_text("ImageId,Label\n1,7\n")
    assert kaggle_client.submit(work / "submission.csv", "m") == 12345
    kaggle_stub.submissions = [{"ref": 2, "date": "2026-12-01T12:00:05Z", "description": "m", "fileName": "s.csv",
                                "status": "COMPLETE", "publicScore": "0.99614", "privateScore": ""}]
    (found,) = kaggle_client.submissions(page_size=5)
    assert (found.ref, found.status, found.public_score, found.private_score) == (2, "COMPLETE", 0.99614, None)
    assert found.date.startswith("2026-12-01T12:00:05")
    assert kaggle_stub.calls("ListSubmissions")[0].body["pageSize"] == 5


def test_quota_reads_the_weekly_gpu_hours(kaggle_stub):
    kaggle_stub.on("GetAcceleratorQuotaStatistics", Answer(body={
        "quotaRefreshTime": "2026-12-08T00:00:00Z",
        "gpuQuota": {"timeUsed": "36000s", "timeReserved": "3600s", "totalTimeAllowed": "108000s"}}))
    found = kaggle_client.quota()
    assert (found.gpu_used_s, found.gpu_reserved_s, found.gpu_left_s) == (36000, 3600, 68400)
    assert str(found).startswith("GPU 10.0 h used + 1.0 h running of 30.0 h, 19.0 h left; resets 2026-12-08")


@pytest.mark.parametrize("call", [
    lambda: kaggle_client.push_kernel(Path("build/train")),
    lambda: kaggle_client.kernel_status("stubuser/digitkit-train"),
    lambda: kaggle_client.kernel_version("stubuser/digitkit-train"),
    lambda: kaggle_client.kernel_output("stubuser/digitkit-train", Path("out")),
    lambda: kaggle_client.kernel_log("stubuser/digitkit-train"),
    lambda: kaggle_client.dataset_status("stubuser/digitkit-weights"),
    lambda: kaggle_client.create_dataset(Path("weights")),
    lambda: kaggle_client.version_dataset(Path("weights"), "m"),
    lambda: kaggle_client.submit(Path("submission.csv"), "m"),
    lambda: kaggle_client.submissions(),
    lambda: kaggle_client.quota(),
    lambda: kaggle_client.download_data(Path("data")),
    lambda: kaggle_client.username(),
], ids=["push", "status", "version", "output", "log", "dataset-status", "create", "version-dataset", "submit",
        "submissions", "quota", "data", "username"])
def test_every_call_refuses_in_a_dry_run(kaggle_stub, work, monkeypatch, call):
    from tools.cli import DRY_RUN_ENV

    monkeypatch.setenv(DRY_RUN_ENV, "1")
    with pytest.raises(ship.ShipError, match="a dry run reached `kaggle "):
        call()
    assert kaggle_stub.requests == []
