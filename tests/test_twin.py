"""The Kaggle twin (tools/twin/) held to the real API: the REAL kaggle client (the CLI executable and ``KaggleApi``)
drives a twin started as its own process (``python -m tools.twin start``), on a competition of 300 train and 60 test
rows, with tiny notebooks (no torch) so each kernel runs in seconds.

The chain a user walks: push → QUEUED/RUNNING → COMPLETE → output (paged) and log → a dataset created and versioned
turns ready → a second kernel with the first as kernel source and the dataset attached sees both → submit → scored
on the public and private parts → listed. Then what a loop must survive: a failing cell, a kernel without internet, a
stale status, every injected fault once; and the process model (idempotent start, call record, one-line refusal).

The sandbox needs root (or user namespaces) and unshare: elsewhere the tests skip, saying why, except under
DIGITKIT_REQUIRE_SANDBOX=1 (CI), where they fail.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tools.twin.competition import public_ids, read_solution
from tools.twin.sandbox import sandbox_problem

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OWNER = "twinuser"
N_TRAIN, N_TEST = 300, 60
FIRST = f"{OWNER}/twin-first"
DATASET = f"{OWNER}/twin-data"
READY_DELAY = 1.5  # seconds until a dataset version is ready (Kaggle: minutes)
EXTRA_FILES = 24  # the first kernel's output: submission.csv + 24 files in a sub-folder = 25, more than one page (20)


def _refuse_or_skip(reason: str) -> None:
    """CI sets DIGITKIT_REQUIRE_SANDBOX=1: there the sandbox must run, never pass by skipping."""
    if os.environ.get("DIGITKIT_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DIGITKIT_REQUIRE_SANDBOX=1 but {reason}")
    pytest.skip(reason)


def write_tiny_competition(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Kaggle's three files (random pixels: nothing learns here) and the test labels; returns (folder, labels)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    pixels = [f"pixel{i}" for i in range(784)]

    def image() -> list[int]:
        return [rng.randrange(256) if rng.random() < 0.2 else 0 for _ in range(784)]

    with open(folder / "train.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["label", *pixels])
        writer.writerows([rng.randrange(10), *image()] for _ in range(N_TRAIN))
    with open(folder / "test.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(pixels)
        writer.writerows(image() for _ in range(N_TEST))
    (folder / "sample_submission.csv").write_text("ImageId,Label\n" + "".join(f"{i},0\n" for i in
                                                                               range(1, N_TEST + 1)))
    labels = folder.parent / "labels.csv"
    labels.write_text("ImageId,Label\n" + "".join(f"{i},{rng.randrange(10)}\n" for i in range(1, N_TEST + 1)))
    return folder, labels


def notebook(*cells: str) -> nbformat.NotebookNode:
    """A notebook as build.py makes them: kernelspec python3, a parameters cell, then ``cells``."""
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("EPOCHS = 1\n", metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(source) for source in cells)]
    return nb


class Twin:
    """A twin started with ``python -m tools.twin start`` and the client's environment."""

    def __init__(self, root: Path, state: Path, labels: Path, info: dict, env: dict[str, str]):
        self.root, self.state, self.labels, self.info, self.env = root, state, labels, info, env
        self.api = None

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "kaggle"), *map(str, args)], env=self.env, cwd=self.root, text=True,
                              capture_output=True, timeout=timeout)
        assert self.env["KAGGLE_KEY"] not in done.stdout + done.stderr
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def kernel(self, slug: str, *cells: str, **meta) -> Path:
        """A kernel folder (kernel-metadata.json + notebook) for ``kaggle kernels push -p``."""
        folder = self.root / "kernels" / slug
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook(*cells), folder / f"{slug}.ipynb")
        metadata = {"id": f"{OWNER}/{slug}", "title": slug.replace("-", " "), "code_file": f"{slug}.ipynb",
                    "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": False,
                    "enable_internet": False, "competition_sources": ["digit-recognizer"], "dataset_sources": [],
                    "kernel_sources": [], **meta}
        (folder / "kernel-metadata.json").write_text(json.dumps(metadata))
        return folder

    def push(self, folder: Path) -> int:
        """``kaggle kernels push``; returns the version number it printed."""
        out = self.cli("kernels", "push", "-p", folder).stdout
        assert "Kernel version " in out, out
        return int(out.split("Kernel version ")[1].split()[0])

    def status(self, ref: str) -> tuple[str, str]:
        response = self.api.kernels_status(ref)
        return response.status.name, response.failure_message or ""

    def wait(self, ref: str, timeout: float = 90) -> tuple[str, str]:
        """Poll ``ref`` (``owner/slug/N`` ties it to a version) until it is finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(ref)
            if status[0] in ("COMPLETE", "ERROR"):
                return status
            time.sleep(0.2)
        raise AssertionError(f"{ref} still {status} after {timeout} s")

    def arm(self, *faults: dict) -> None:
        (self.state / "faults.json").write_text(json.dumps({"faults": list(faults)}))

    def armed(self) -> list[dict]:
        return json.loads((self.state / "faults.json").read_text())["faults"]

    def calls(self, api: str | None = None) -> list[dict]:
        lines = [json.loads(line) for line in (self.state / "calls.jsonl").read_text().splitlines()]
        return [c for c in lines if api is None or c["api"] == api]

    def output(self, ref: str, name: str) -> Path:
        return self.state / "kernels" / ref / "versions" / name / "output"


def twin_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.twin", *map(str, args)], cwd=REPO, text=True,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    problem = sandbox_problem(network=True, require_empty=False)
    if problem:
        _refuse_or_skip(problem)
    if not (BIN / "papermill").is_file() or not (BIN / "kaggle").is_file():
        _refuse_or_skip(f"{BIN} has no papermill or kaggle: run make venv")
    root = tmp_path_factory.mktemp("twin")
    data, labels = write_tiny_competition(root / "data" / "digit-recognizer")
    state = root / "state"
    started = twin_command("start", "--state", state, "--data", data, "--labels", labels,
                           "--ready-delay", READY_DELAY, "--queue-delay", "0.3", "--papermill", BIN / "papermill")
    assert started.returncode == 0, started.stdout + started.stderr
    info = json.loads((state / "twin.json").read_text())
    for name in ("home", "config", "tmp"):
        (root / name).mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "VERBOSE"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(info["env"], HOME=str(root / "home"), KAGGLE_CONFIG_DIR=str(root / "config"),
               TMPDIR=str(root / "tmp"))
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # KaggleApi in this process reads its settings and proxy from the environment
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        handle = Twin(root, state, labels, info, env)
        handle.api = KaggleApi()
        handle.api.authenticate()
        yield handle
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stopped = twin_command("stop", "--state", state)
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(autouse=True)
def disarm(request):
    yield
    if "twin" in request.fixturenames:
        faults = request.getfixturevalue("twin").state / "faults.json"
        faults.unlink(missing_ok=True)


FIRST_CELL = f"""
import os, time
time.sleep(1.5)  # long enough for the client to see it RUNNING
rows = sum(1 for _ in open('/kaggle/input/digit-recognizer/test.csv')) - 1
with open('/kaggle/working/submission.csv', 'w') as out:
    out.write('ImageId,Label\\n' + ''.join(f'{{i}},{{i % 10}}\\n' for i in range(1, rows + 1)))
os.makedirs('extra', exist_ok=True)
for k in range({EXTRA_FILES}):
    open(f'extra/file {{k:02d}}.txt', 'w').write(str(k))
print('rows', rows, 'cwd', os.getcwd(), 'run type', os.environ.get('KAGGLE_KERNEL_RUN_TYPE'))
"""


@pytest.fixture(scope="module")
def first(twin):
    """The first kernel, pushed with the CLI and followed until COMPLETE; returns the statuses seen."""
    version = twin.push(twin.kernel("twin-first", FIRST_CELL))
    seen = []
    deadline = time.monotonic() + 90
    while not seen or seen[-1] not in ("COMPLETE", "ERROR"):
        assert time.monotonic() < deadline, seen
        out = twin.cli("kernels", "status", FIRST).stdout
        seen.append(out.split('"KernelWorkerStatus.')[1].split('"')[0])
    return version, seen


# ------------------------------------------------------------------------------------------------------ the chain
def test_a_push_is_queued_then_runs_then_completes(twin, first):
    version, seen = first
    assert version == 1
    assert seen[0] in ("QUEUED", "RUNNING") and seen[-1] == "COMPLETE", seen
    assert seen == sorted(seen, key=["QUEUED", "RUNNING", "COMPLETE"].index), seen  # never backwards
    (save,) = twin.calls("SaveKernel")[:1]
    assert save["body"]["slug"] == FIRST and save["status"] == 200 and "text" in save["body"]
    status = json.loads((twin.state / "kernels" / FIRST / "versions" / "1" / "status.json").read_text())
    assert status["queued"] < status["started"] < status["ended"] and status["internet"] is False
    log = (twin.state / "kernels" / FIRST / "versions" / "1" / "log.jsonl").read_text()
    assert f"rows {N_TEST} cwd /kaggle/working run type Batch" in log


def test_output_is_listed_in_pages_and_downloaded_with_its_log(twin, first):
    out = twin.cli("kernels", "output", FIRST, "-p", twin.root / "out-first").stdout
    got = twin.root / "out-first"
    names = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
    assert names == sorted(["submission.csv", "twin-first.log", *(f"extra/file {k:02d}.txt" for k in
                                                                   range(EXTRA_FILES))])
    assert (got / "submission.csv").read_bytes() == (twin.output(FIRST, "1") / "submission.csv").read_bytes()
    tokens = [c["body"].get("pageToken") for c in twin.calls("ListKernelSessionOutput")
              if c["body"].get("pageSize") == 20]
    assert tokens[-2:] == ["", "20"]  # two pages of 20: the CLI follows nextPageToken
    events = json.loads((got / "twin-first.log").read_text())  # Kaggle's log: [{stream_name, time, data}, ...]
    assert {"stream_name", "time", "data"} <= set(events[0]) and any("rows 60" in e["data"] for e in events)
    assert "Output file downloaded" in out
    logs = twin.cli("kernels", "logs", FIRST).stdout
    assert "rows 60" in logs


def test_a_dataset_created_and_versioned_turns_ready(twin):
    folder = twin.root / "dataset"
    (folder / "logs").mkdir(parents=True)
    (folder / "weights.txt").write_text("v1\n")
    (folder / "logs" / "train.log").write_text("epoch 1\n")
    (folder / "dataset-metadata.json").write_text(json.dumps({"id": DATASET, "title": "twin data",
                                                              "licenses": [{"name": "CC0-1.0"}]}))
    absent = twin.cli("datasets", "status", DATASET, check=False)
    assert absent.returncode != 0
    created = twin.cli("datasets", "create", "-p", folder, "--dir-mode", "zip").stdout
    assert "Your private Dataset is being created" in created
    assert twin.api.dataset_status(DATASET) == "blobs_received"
    time.sleep(READY_DELAY)
    assert twin.cli("datasets", "status", DATASET).stdout.split()[-1] == "ready"
    (folder / "weights.txt").write_text("v2\n")
    twin.cli("datasets", "version", "-p", folder, "-m", "second", "--dir-mode", "zip")
    assert twin.api.dataset_status(DATASET) == "blobs_received"
    time.sleep(READY_DELAY)
    assert json.loads(twin.api.dataset_status(DATASET, format="json")) == {"status": "ready",
                                                                            "current_version_number": 2}
    files = twin.state / "datasets" / DATASET / "versions" / "2" / "files"
    assert (files / "weights.txt").read_text() == "v2\n" and (files / "logs" / "train.log").is_file()  # unzipped


SOURCES_CELL = """
import json, os
seen = {root[len('/kaggle/input/'):]: sorted(files) for root, _, files in os.walk('/kaggle/input') if files}
try:
    open('/kaggle/input/digit-recognizer/x', 'w')
    writable = True
except OSError as err:
    writable = str(err)
json.dump({'seen': seen, 'writable': writable, 'weights': open('/kaggle/input/twin-data/weights.txt').read()},
          open('inputs.json', 'w'))
"""


def test_a_second_kernel_sees_the_first_ones_output_and_the_dataset(twin, first):
    if not (twin.state / "datasets" / DATASET).is_dir():
        pytest.skip("needs test_a_dataset_created_and_versioned_turns_ready first")
    folder = twin.kernel("twin-second", SOURCES_CELL, kernel_sources=[FIRST], dataset_sources=[DATASET])
    twin.push(folder)
    assert twin.wait(f"{OWNER}/twin-second/1") == ("COMPLETE", "")
    got = json.loads((twin.output(f"{OWNER}/twin-second", "1") / "inputs.json").read_text())
    assert got["seen"]["digit-recognizer"] == ["sample_submission.csv", "test.csv", "train.csv"]
    assert got["seen"]["twin-first"] == ["submission.csv"] and len(got["seen"]["twin-first/extra"]) == EXTRA_FILES
    assert got["seen"]["twin-data"] == ["weights.txt"] and got["seen"]["twin-data/logs"] == ["train.log"]
    assert got["weights"] == "v2\n"  # the dataset version current when the run started
    assert "Read-only file system" in got["writable"]
    status = json.loads((twin.state / "kernels" / OWNER / "twin-second" / "versions" / "1" / "status.json")
                        .read_text())
    assert status["inputs"]["twin-data"] == f"dataset {DATASET} version 2"


def test_a_submission_is_scored_on_the_public_and_private_parts(twin, first):
    solution = read_solution(twin.labels)
    public = public_ids(list(solution))
    assert len(public) == round(0.25 * N_TEST)
    submission = twin.output(FIRST, "1") / "submission.csv"
    predicted = {i: i % 10 for i in solution}
    expected = [sum(predicted[i] == solution[i] for i in ids) / len(ids) for ids in (public, set(solution) - public)]
    out = twin.cli("competitions", "submit", "-c", "digit-recognizer", "-f", submission, "-m", "first kernel").stdout
    assert "Submission ref: " in out and "Successfully submitted to Digit Recognizer" in out
    perfect = twin.root / "perfect.csv"
    perfect.write_text("ImageId,Label\n" + "".join(f"{i},{label}\n" for i, label in solution.items()))
    twin.cli("competitions", "submit", "-c", "digit-recognizer", "-f", perfect, "-m", "the labels")
    broken = twin.root / "broken.csv"
    broken.write_text("ImageId,Label\n1,3\n")
    twin.cli("competitions", "submit", "-c", "digit-recognizer", "-f", broken, "-m", "one row")
    listed = json.loads(twin.cli("competitions", "submissions", "digit-recognizer", "--format", "json").stdout)
    assert [s["description"] for s in listed] == ["one row", "the labels", "first kernel"]  # newest first
    assert (listed[2]["publicScore"], listed[2]["privateScore"]) == tuple(f"{x:.5f}" for x in expected)
    assert (listed[1]["publicScore"], listed[1]["privateScore"]) == ("1.00000", "1.00000")
    assert listed[0]["status"].endswith("ERROR") and listed[2]["status"].endswith("COMPLETE")
    error = twin.api.get_submission(int(listed[0]["ref"]))
    assert "Submission must have 60 rows" in error.error_description
    limits = twin.api.competition_get_submission_limits("digit-recognizer")
    assert (limits.num_today, limits.num_allowed_now) == (2, 3)  # the one in error does not count


def test_the_competition_download_is_kaggles_zip(twin):
    twin.cli("competitions", "download", "-c", "digit-recognizer", "-p", twin.root / "download")
    import zipfile

    with zipfile.ZipFile(twin.root / "download" / "digit-recognizer.zip") as archive:
        assert sorted(archive.namelist()) == ["sample_submission.csv", "test.csv", "train.csv"]


# ------------------------------------------------------------------------------------------------------ kernels
NETWORK_CELL = """
import json, socket
def attempt(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return 'connected'
    except OSError as err:
        return f'{type(err).__name__}: {err}'
    finally:
        s.close()
server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen()
interfaces = sorted(line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:])
json.dump({'internet': attempt('1.1.1.1', 80), 'twin': attempt('127.0.0.1', TWIN_PORT),
           'loopback': attempt('127.0.0.1', server.getsockname()[1]), 'interfaces': interfaces},
          open('net.json', 'w'))
"""


def test_a_kernel_without_internet_reaches_nothing_but_its_own_loopback(twin):
    cell = f"TWIN_PORT = {twin.info['port']}\n" + NETWORK_CELL
    twin.push(twin.kernel("twin-offline", cell, enable_internet=False))
    twin.push(twin.kernel("twin-online", cell, enable_internet=True))
    assert twin.wait(f"{OWNER}/twin-offline/1") == ("COMPLETE", "")
    assert twin.wait(f"{OWNER}/twin-online/1") == ("COMPLETE", "")
    offline = json.loads((twin.output(f"{OWNER}/twin-offline", "1") / "net.json").read_text())
    online = json.loads((twin.output(f"{OWNER}/twin-online", "1") / "net.json").read_text())
    assert offline["interfaces"] == ["lo"] and offline["loopback"] == "connected"
    assert offline["internet"].startswith("OSError") and "unreachable" in offline["internet"]
    assert offline["twin"].startswith("ConnectionRefusedError")  # the host's 127.0.0.1 is not this loopback
    assert online["twin"] == "connected"  # with internet on, the same cell reaches the host


def test_a_failing_cell_ends_error_with_its_message(twin):
    twin.push(twin.kernel("twin-failing", "print('before')", "raise ValueError('boom 42')", "print('never')"))
    assert twin.wait(f"{OWNER}/twin-failing/1") == ("ERROR", "ValueError: boom 42")
    out = twin.cli("kernels", "status", f"{OWNER}/twin-failing").stdout
    assert 'has status "KernelWorkerStatus.ERROR"' in out and 'Failure message: "ValueError: boom 42"' in out


def test_versions_can_be_tied_to_their_status(twin):
    """What a loop needs: the version a push made, the kernel's current version, a status for one version."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    folder = twin.kernel("twin-versions", "print('a version')")
    numbers = [twin.api.kernels_push(str(folder)).version_number for _ in range(2)]
    assert numbers == [1, 2]
    ref = f"{OWNER}/twin-versions"
    assert twin.wait(f"{ref}/2") == ("COMPLETE", "") and twin.wait(f"{ref}/1") == ("COMPLETE", "")
    with twin.api.build_kaggle_client() as client:
        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = OWNER, "twin-versions"
        assert client.kernels.kernels_api_client.get_kernel(request).metadata.current_version_number == 2
    (listed,) = [k for k in twin.api.kernels_list(mine=True, search="twin versions") if k.ref == ref]
    assert listed.current_version_number == 2
    labels = [c["body"].get("versionLabel") for c in twin.calls("GetKernelSessionStatus")
              if c["body"]["kernelSlug"] == "twin-versions"]
    assert set(labels) == {"v1", "v2"}  # the client sends owner/slug/N as versionLabel vN
    missing = twin.cli("kernels", "status", f"{ref}/3", check=False)
    assert missing.returncode != 0 and "not found" in (missing.stdout + missing.stderr).lower()


def test_a_killed_client_leaves_the_kernel_running_and_logs_follow_it_live(twin):
    folder = twin.kernel("twin-ticks", "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n"
                                       "    time.sleep(0.7)")
    twin.push(folder)
    follower = subprocess.Popen([str(BIN / "kaggle"), "kernels", "logs", f"{OWNER}/twin-ticks", "--follow"],
                                env=twin.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first_line = ""
        while "tick 0" not in first_line:
            first_line = follower.stdout.readline()
            assert first_line or follower.poll() is None, "the follower ended before the first tick"
        assert twin.status(f"{OWNER}/twin-ticks")[0] == "RUNNING"  # streamed while it runs
        follower.send_signal(signal.SIGKILL)
    finally:
        follower.kill()
        follower.wait()
    assert twin.wait(f"{OWNER}/twin-ticks/1") == ("COMPLETE", "")
    assert "tick 3" in twin.cli("kernels", "logs", f"{OWNER}/twin-ticks").stdout


# ------------------------------------------------------------------------------------------------------ faults
def test_fault_bursts_of_429_and_503_on_api_methods(twin, first):
    from requests.exceptions import HTTPError

    twin.arm({"kind": "http_error", "method": "GetKernelSessionStatus", "status": 429, "times": 2},
             {"kind": "http_error", "method": "ListKernelSessionOutput", "status": 503})
    for _ in range(2):
        refused = twin.cli("kernels", "status", FIRST, check=False)
        assert refused.returncode != 0 and "rate limited" in refused.stdout + refused.stderr
    assert "COMPLETE" in twin.cli("kernels", "status", FIRST).stdout
    with pytest.raises(HTTPError) as raised:
        twin.api.kernels_output(FIRST, str(twin.root / "out-503"))
    assert raised.value.response.status_code == 503
    assert twin.armed() == []  # spent faults are removed from faults.json


def test_fault_a_kernel_that_fails(twin):
    twin.arm({"kind": "kernel_error", "kernel": f"{OWNER}/twin-doomed", "message": "MemoryError: out of memory"})
    twin.push(twin.kernel("twin-doomed", "print('fine')"))
    assert twin.wait(f"{OWNER}/twin-doomed/1") == ("ERROR", "MemoryError: out of memory")


def test_fault_a_run_past_its_time_limit_is_killed_whole(twin):
    marker = "61.25"  # a child process of the kernel: it must die with the session
    cell = f"import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\nprint('started', flush=True)\n" \
           "time.sleep(60)"
    twin.arm({"kind": "time_limit", "kernel": f"{OWNER}/twin-slow", "seconds": 3})
    twin.push(twin.kernel("twin-slow", cell))
    status, message = twin.wait(f"{OWNER}/twin-slow/1", timeout=60)
    assert status == "ERROR" and "exceeded the time limit" in message
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == f"sleep {marker}"]
    assert not alive, "the session's processes outlived it"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_fault_a_dataset_that_stays_pending(twin):
    ref = f"{OWNER}/twin-stuck"
    folder = twin.root / "stuck"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "dataset-metadata.json").write_text(json.dumps({"id": ref, "title": "twin stuck",
                                                              "licenses": [{"name": "CC0-1.0"}]}))
    twin.arm({"kind": "dataset_pending", "dataset": ref})
    twin.cli("datasets", "create", "-p", folder)
    time.sleep(READY_DELAY + 0.5)
    assert twin.cli("datasets", "status", ref).stdout.split()[-1] == "blobs_received"


def test_fault_a_download_cut_mid_file_is_resumed(twin, first):
    twin.arm({"kind": "cut_download", "file": "submission.csv"})
    out = twin.cli("kernels", "output", FIRST, "-p", twin.root / "out-cut", "--file-pattern", "submission").stdout
    assert "Resuming from" in out  # the client saw the cut and asked for the rest with a Range request
    assert (twin.root / "out-cut" / "submission.csv").read_bytes() == \
        (twin.output(FIRST, "1") / "submission.csv").read_bytes()


def test_fault_the_weekly_gpu_quota_used_up(twin):
    twin.arm({"kind": "quota_exceeded", "times": 2})
    quota = twin.cli("quota").stdout
    assert "30.00h" in quota.splitlines()[2]  # GPU: used 30.00h, nothing left
    folder = twin.kernel("twin-gpu", "print('gpu')", enable_gpu=True, machine_shape="NvidiaTeslaT4")
    refused = twin.cli("kernels", "push", "-p", folder).stdout  # Kaggle's way: exit 0, an error line
    assert "Kernel push error: You've exceeded the number of hours allowed to use GPU" in refused
    assert not (twin.state / "kernels" / OWNER / "twin-gpu").exists()
    cpu = twin.kernel("twin-cpu", "print('cpu')")
    assert twin.push(cpu) == 1  # without an accelerator the push is taken


def test_fault_status_still_describes_the_previous_version_after_a_push(twin):
    ref = f"{OWNER}/twin-stale"
    folder = twin.kernel("twin-stale", "import time\ntime.sleep(2)")
    twin.push(folder)
    assert twin.wait(f"{ref}/1") == ("COMPLETE", "")
    twin.arm({"kind": "stale_status", "kernel": ref, "calls": 2})
    assert twin.push(folder) == 2
    assert [twin.status(ref)[0] for _ in range(2)] == ["COMPLETE", "COMPLETE"]  # version 1's, twice
    assert twin.status(ref)[0] in ("QUEUED", "RUNNING") and twin.status(f"{ref}/2")[0] in ("QUEUED", "RUNNING")
    assert twin.wait(f"{ref}/2") == ("COMPLETE", "")


# ------------------------------------------------------------------------------------------------------ process
def test_start_again_says_it_runs_and_status_lists_the_state(twin, first):
    again = twin_command("start", "--state", twin.state)
    assert again.returncode == 0 and again.stdout.startswith("already running")
    assert f"pid {twin.info['pid']}" in again.stdout and f"export HTTP_PROXY=http://127.0.0.1:{twin.info['port']}" \
        in again.stdout
    status = twin_command("status", "--state", twin.state)
    assert status.returncode == 0 and f"kernel {FIRST} version 1: COMPLETE" in status.stdout
    exported = twin_command("env", "--state", twin.state).stdout
    assert "export KAGGLE_API_ENVIRONMENT=LOCALHOST" in exported and "export NO_PROXY=''" in exported


def test_every_call_is_recorded_without_credentials(twin, first):
    calls = twin.calls()
    assert calls and all({"time", "method", "path", "api", "body", "status"} <= set(c) for c in calls)
    assert {"SaveKernel", "GetKernelSessionStatus", "ListKernelSessionOutput"} <= {c["api"] for c in calls}
    assert twin.env["KAGGLE_KEY"] not in (twin.state / "calls.jsonl").read_text()
    assert all(c["user"] == OWNER for c in calls if c["api"])


def test_without_a_sandbox_start_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    from tools.twin import control

    monkeypatch.setattr(control, "sandbox_problem", lambda **kw: "the Kaggle sandbox needs unshare (util-linux)")
    assert control.main(["start", "--state", str(tmp_path / "state")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot start the Kaggle twin" in err and "unshare" in err


def test_make_twin_goes_through_the_command_layer():
    from tools import cli

    assert cli.plan("twin", {}) == [("tools.twin", ["start"])]
    assert cli.plan("twin-stop", {}) == [("tools.twin", ["stop"])]
