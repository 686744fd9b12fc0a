"""`make kaggle`: the whole Kaggle loop in one command, resumable, with its state in ``runs/<RUN>/kaggle.json``.

    make kaggle RUN=effnet MODEL=efficientnet_b0 EPOCHS=30      # on Kaggle (your credentials)
    make kaggle TWIN=1 RUN=demo EPOCHS=1                        # on the Kaggle twin (tools/twin), no credentials

The steps, each recorded in kaggle.json as it is sent and as it ends, so that a rerun of the same ``RUN`` resumes
where the last one stopped (Ctrl-C, a crash, a closed laptop) and sends nothing twice:

 1. ``build-train``  the train notebook with this run's settings written into its parameters cell (a reader of the
                     notebook on Kaggle sees them), as kernel ``<owner>/digitkit-train-<RUN>``; the GPU quota left;
 2. ``push-train``   push it → its version number N;
 3. ``wait-train``   wait for version N itself (never an earlier version's status): one line per state change;
                     on ERROR the run's last log lines and Kaggle's message, and the loop stops;
 4. ``get-train``    download version N's output into ``runs/<RUN>/`` and verify every hash (manifest.json);
 5. ``weights``      create or version the dataset ``<owner>/digitkit-weights-<RUN>`` from it, wait until ready;
 6. ``push-infer``   the inference notebook attached to that dataset (``<owner>/digitkit-infer-<RUN>``);
 7. ``wait-infer``   as 3;
 8. ``get-infer``    download its output; validate submission.csv;
 9. ``submit``       submit it (the message names the run and both kernel versions);
10. ``score``        wait for the public score and record it beside the file (tools.submissions), where
                     `make runs` shows it beside the local CV.

A finished loop prints its result and sends nothing. A kernel that ended ERROR is built and pushed again on the rerun
(a new version); a wait that reached its limit waits again for the same version; a send interrupted between Kaggle's
answer and its record is found on Kaggle (the kernel's newest version, the submission by its message), not repeated.
The folder is owned like every run's (tools.run_folder): a second `make kaggle RUN=<RUN>` while one runs is refused,
and other training settings need another ``RUN`` or ``RESTART=1``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from core.atomic import write_text_atomic
from tools.kaggle_ids import BuildError, check_loop_name, loop_slug
from tools.run_folder import RunFolderError, claim_run
from tools.shipping import ShipError
from tools.shipping.credentials import scrub

STATE_NAME = "kaggle.json"
STEPS = ("build-train", "push-train", "wait-train", "get-train", "weights", "push-infer", "wait-infer", "get-infer",
         "submit", "score")
# make kaggle RUNS="a b": the ensemble kernel over finished loops' weights datasets (it predicts test.csv itself)
ENSEMBLE_STEPS = ("push-ensemble", "wait-ensemble", "get-ensemble", "submit", "score")
TERMINAL = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
LOG_TAIL = 20  # the lines of a failed run's log printed with Kaggle's message


class LoopError(Exception):
    """The loop stopped: one line saying at which step, why, and what to do (the state is kept for the rerun)."""


class KaggleService(Protocol):
    """What the loop asks of Kaggle (tools.shipping's client: the real Kaggle, or the twin through the same API)."""

    def quota(self) -> Any: ...  # str() says it; .gpu_left_s when known
    def push_kernel(self, folder: Path) -> Any: ...  # → .version (int)
    def kernel_status(self, ref: str) -> Any: ...  # ref "owner/slug/N" → .state, .failure, .finished
    def kernel_version(self, ref: str) -> int | None: ...
    def kernel_log(self, ref: str) -> str: ...
    def kernel_output(self, ref: str, dest: Path) -> list[Path]: ...
    def dataset_status(self, ref: str) -> str | None: ...
    def create_dataset(self, folder: Path, dir_mode: str = "skip") -> Any: ...
    def version_dataset(self, folder: Path, message: str, dir_mode: str = "skip") -> Any: ...
    def submit(self, file: Path, message: str) -> int: ...
    def submissions(self) -> list[Any]: ...


@dataclasses.dataclass
class Waits:
    """How the loop waits: polls back off from ``first`` (s) by ``factor`` to ``most``; ``limit`` (s) per wait."""

    first: float = 5.0
    factor: float = 1.5
    most: float = 60.0
    limit: float = 12 * 3600.0


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Loop:
    """One loop's state (``runs/<RUN>/kaggle.json``) and its steps; :meth:`run` does what is left of them."""

    def __init__(self, run_dir: Path, *, name: str, owner: str, parameters: dict[str, Any], client: KaggleService,
                 build: Callable[[str, Path, dict[str, Any], dict[str, Any]], Path], test_rows: int,
                 waits: Waits | None = None,
                 say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
                 fuse: list[str] | None = None):
        """``test_rows``: the rows of the competition's test.csv (28,000 on Kaggle; the twin serves its own).
        ``fuse``: the names of finished loops whose weights datasets an ensemble kernel fuses (make kaggle RUNS=…);
        the loop then runs ``ENSEMBLE_STEPS``."""
        self.fuse, self.steps = fuse or [], ENSEMBLE_STEPS if fuse else STEPS
        self.run_dir, self.name, self.owner, self.parameters, self.test_rows = run_dir, name, owner, parameters, \
            test_rows
        self.client, self.build, self.waits, self.say, self.sleep = client, build, waits or Waits(), say, sleep
        self.path = run_dir / STATE_NAME
        self.state: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {
            "run": name, "owner": owner, "created": now(), "steps": {}}
        self.state.setdefault("steps", {})

    # ------------------------------------------------------------------------------------------------ naming
    def kernel(self, kind: str) -> str:
        return f"{self.owner}/{loop_slug(kind, self.name)}"

    @property
    def weights(self) -> str:
        return f"{self.owner}/{loop_slug('weights', self.name)}"

    # ------------------------------------------------------------------------------------------------- state
    def step(self, name: str) -> dict[str, Any]:
        return self.state["steps"].setdefault(name, {})

    def done(self, name: str) -> bool:
        return bool(self.state["steps"].get(name, {}).get("done"))

    def record(self, name: str, **values: Any) -> None:
        """Write ``values`` into step ``name`` and save kaggle.json (temp file, then rename) before going on."""
        self.step(name).update(values, at=now())
        write_text_atomic(self.path, json.dumps(self.state, indent=2) + "\n")

    # ------------------------------------------------------------------------------------------------- steps
    def run(self) -> dict[str, Any]:
        """Every step not done yet, in order; returns the result (the ``score`` step's record)."""
        if self.done("score"):
            self.say(f"kaggle loop {self.name}: finished earlier — {self.summary()}; nothing sent")
            return self.step("score")
        started = time.monotonic()
        for name in self.steps:
            if not self.done(name):
                getattr(self, "_" + name.replace("-", "_"))()
        self.say(f"kaggle loop {self.name} finished in {time.monotonic() - started:.0f} s: {self.summary()}")
        return self.step("score")

    def summary(self) -> str:
        score, local = self.step("score"), self.step("get-train").get("local_cv")
        return (f"public score {score.get('public_score')}" + (f", local CV {local:.5f}" if local is not None else "")
                + f" ({self._versions()})")

    def _versions(self) -> str:
        """"train v3, infer v1": each kernel this loop pushed and the version it follows."""
        return ", ".join(f"{step.removeprefix('push-')} v{self.step(step)['version']}" for step in self.steps
                         if step.startswith("push-") and "version" in self.state["steps"].get(step, {}))

    def _build_train(self) -> None:
        folder = self.build("train", self.run_dir / ".kaggle-build", self.parameters, {})
        quota = self.client.quota()
        self.say(f"GPU quota: {quota}")
        if getattr(quota, "gpu_left_s", 1) <= 0:
            raise LoopError(f"build-train: the weekly GPU quota is used up ({quota}): wait for it to reset, then rerun "
                            "the same command (nothing was pushed)")
        self.record("build-train", done=True, folder=str(folder.parent), parameters=self.parameters)

    def _latest_version(self, kind: str) -> int | None:
        """The kernel's newest version on Kaggle (None when it has none yet)."""
        try:
            return self.client.kernel_version(self.kernel(kind))
        except ShipError as err:
            if getattr(err, "status", 0) == 404:
                return None
            raise

    def _push(self, kind: str, folder: Path) -> None:
        """Push ``folder`` once: the version before the send is recorded with it, so that a rerun after a crash
        between Kaggle's answer and its record adopts the version that push made instead of pushing again."""
        step = self.step(f"push-{kind}")
        if step.get("sending"):
            latest = self._latest_version(kind)
            if latest is not None and latest > (step.get("before") or 0):
                self.record(f"push-{kind}", done=True, sending=False, version=latest, ref=self.kernel(kind))
                self.say(f"{self.kernel(kind)} version {latest} was pushed before the interruption: following it")
                return
        self.record(f"push-{kind}", sending=True, before=self._latest_version(kind))
        pushed = self.client.push_kernel(folder)
        version = pushed.version or self._latest_version(kind)
        if version is None:
            raise LoopError(f"push-{kind}: Kaggle saved {self.kernel(kind)} without saying which version; rerun "
                            "the same command to follow its newest version")
        self.record(f"push-{kind}", done=True, sending=False, version=int(version), ref=self.kernel(kind))
        self.say(f"pushed {self.kernel(kind)} version {version}")

    def _push_train(self) -> None:
        self._push("train", Path(self.step("build-train")["folder"]))

    def _wait(self, kind: str) -> None:
        version = self.step(f"push-{kind}")["version"]
        ref = f"{self.kernel(kind)}/{version}"
        state, elapsed = "", 0.0

        def past_limit(seconds: float) -> str:
            self.record(f"wait-{kind}", done=False, error="time limit")
            return (f"wait-{kind}: {ref} is still {state} after {seconds:.0f} s (the loop's limit): rerun the same "
                    "command later to wait again (nothing is pushed twice)")

        for elapsed in self._polls(past_limit):
            status = self.client.kernel_status(ref)
            seen, state = state, str(status.state).rsplit(".", 1)[-1]  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_…
            if state != seen:
                self.say(f"{ref}: {state} after {elapsed:.0f} s")
            if getattr(status, "finished", state in TERMINAL):
                break
        if state != "COMPLETE":
            self._forget(f"build-{kind}", f"push-{kind}", f"wait-{kind}")  # the rerun builds and pushes anew
            try:
                for line in self.client.kernel_log(ref).strip().splitlines()[-LOG_TAIL:]:
                    self.say(f"  | {scrub(line)}")
            except ShipError as err:
                self.say(f"  (its log could not be read: {err})")
            failure = " ".join(scrub(getattr(status, "failure", "") or "no message").split())
            raise LoopError(f"wait-{kind}: {ref} ended {state}: {failure} — fix it, then rerun the same command "
                            f"(it builds and pushes a new version)")
        self.record(f"wait-{kind}", done=True, status=state, seconds=round(elapsed))

    def _polls(self, past_limit: Callable[[float], str]) -> Iterator[float]:
        """The seconds elapsed before each poll, sleeping between polls with back-off (``Waits``); past the limit,
        LoopError(``past_limit(elapsed)``). The caller breaks out when what it waits for has happened."""
        began, delay = time.monotonic(), self.waits.first
        while True:
            yield time.monotonic() - began
            if time.monotonic() - began > self.waits.limit:
                raise LoopError(past_limit(time.monotonic() - began))
            self.sleep(delay)
            delay = min(delay * self.waits.factor, self.waits.most)

    def _forget(self, *steps: str) -> None:
        for name in steps:
            self.state["steps"].pop(name, None)
        write_text_atomic(self.path, json.dumps(self.state, indent=2) + "\n")

    def _wait_train(self) -> None:
        self._wait("train")

    def _get_train(self) -> None:
        from core.manifest import ManifestError, verify_manifest

        ref = f"{self.kernel('train')}/{self.step('push-train')['version']}"
        found: dict[str, Any] = {}

        def verified(scratch: Path) -> None:
            try:
                found.update(verify_manifest(scratch))
            except ManifestError as err:
                raise LoopError(f"get-train: the output of {ref} fails verification ({err}); nothing in "
                                f"{self.run_dir} was changed: rerun the same command to download it again") from None
            if found.get("complete") is False:
                raise LoopError(f"get-train: {ref} trained only {len(found.get('folds', []))} of "
                                f"{found.get('n_folds')} folds (folds_to_run?): make kaggle needs every fold; "
                                "RESTART=1 with other PARAMS")

        files = self._download(ref, check=verified)
        self.record("get-train", done=True, files=len(files), local_cv=found.get("local_cv"))
        self.say(f"{ref}: {len(files)} files in {self.run_dir}, every hash verified; local CV "
                 f"{found.get('local_cv')}")

    def _download(self, ref: str, check: Callable[[Path], None] | None = None) -> list[Path]:
        """Download ``ref``'s output into a scratch folder beside the run, ``check`` it there, then move it in
        (manifest.json last): a failed check or download changes nothing in the run folder."""
        scratch = self.run_dir / ".kaggle-download"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            files = self.client.kernel_output(ref, scratch)
            if check is not None:
                check(scratch)
            moved = []
            for path in sorted(scratch.rglob("*"), key=lambda p: p.name == "manifest.json"):  # the manifest last
                if path.is_file():
                    target = self.run_dir / path.relative_to(scratch)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                    moved.append(target)
            return moved or files
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _weights(self) -> None:
        from tools.ship import dataset_files

        folder = self.run_dir / ".kaggle-weights"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        names = dataset_files(self.run_dir)  # manifest.json and the files it hashes, as make weights sends them
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(self.run_dir / name, folder / name)
        dir_mode = "zip" if any("/" in name for name in names) else "skip"  # logs/… travel zipped, as make weights
        (folder / "dataset-metadata.json").write_text(json.dumps({
            "id": self.weights, "title": f"digitkit weights {self.name}"[:50],
            "licenses": [{"name": "CC0-1.0"}]}, indent=2))
        step = self.step("weights")
        if not step.get("sent"):
            self.record("weights", sending=True)
            message = f"digitkit {self.name}: train v{self.step('push-train')['version']}"
            if self.client.dataset_status(self.weights) is None:
                self.client.create_dataset(folder, dir_mode=dir_mode)
            else:
                self.client.version_dataset(folder, message, dir_mode=dir_mode)
            self.record("weights", sent=True, sending=False)
        state: str | None = None

        def past_limit(seconds: float) -> str:
            return (f"weights: {self.weights} is still {state} after {seconds:.0f} s: rerun the same command later "
                    "(it is not sent again)")

        for _ in self._polls(past_limit):
            state = self.client.dataset_status(self.weights)
            if state == "ready":
                break
            if state in ("failed", "deleted", "error"):
                self._forget("weights")
                raise LoopError(f"weights: {self.weights} is {state} on Kaggle: open "
                                f"https://www.kaggle.com/datasets/{self.weights}, then rerun the same command (it "
                                "versions the dataset again)")
        shutil.rmtree(folder, ignore_errors=True)
        self.record("weights", done=True, dataset=self.weights)
        self.say(f"weights dataset {self.weights}: ready")

    def _push_infer(self) -> None:
        folder = self.build("infer", self.run_dir / ".kaggle-build", {}, {})
        self._push("infer", folder.parent)

    def _push_ensemble(self) -> None:
        datasets = [f"{self.owner}/{loop_slug('weights', name)}" for name in self.fuse]
        folder = self.build("ensemble", self.run_dir / ".kaggle-build", {}, {"dataset_sources": datasets})
        self._push("ensemble", folder.parent)

    def _wait_infer(self) -> None:
        self._wait("infer")

    def _wait_ensemble(self) -> None:
        self._wait("ensemble")

    def _get_submission(self, kind: str) -> None:
        from core.submission import SubmissionError, read_submission

        ref = f"{self.kernel(kind)}/{self.step(f'push-{kind}')['version']}"
        counted: list[int] = []

        def valid(scratch: Path) -> None:
            try:
                counted.append(len(read_submission(scratch / "submission.csv", n_test=self.test_rows)))
            except SubmissionError as err:
                self._forget(f"build-{kind}", f"push-{kind}", f"wait-{kind}")
                raise LoopError(f"get-{kind}: {ref}'s {err}; the rerun pushes the {kind} kernel again") from None

        self._download(ref, check=valid)
        rows = counted[0]
        self.record(f"get-{kind}", done=True, rows=rows)
        self.say(f"{ref}: submission.csv, {rows} rows, valid")

    def _get_infer(self) -> None:
        self._get_submission("infer")

    def _get_ensemble(self) -> None:
        self._get_submission("ensemble")

    def message(self) -> str:
        """The submission's description: the loop and every kernel version it sent (unique per loop and attempt)."""
        local = self.step("get-train").get("local_cv")
        fused = f" fusing {' '.join(self.fuse)}" if self.fuse else ""
        return f"digitkit make kaggle RUN={self.name}{fused}: {self._versions()}" + (
            f", local CV {local}" if local else "")

    def _submit(self) -> None:
        from tools import submissions

        file, message = self.run_dir / "submission.csv", self.message()
        ref = self._submitted(message) if self.step("submit").get("sending") else None  # sent before a crash?
        if ref is None:
            self.record("submit", sending=True)
            ref = self.client.submit(file, message) or self._submitted(message)
            if ref is None:
                raise LoopError(f"submit: Kaggle took {file} without naming it, and its list of submissions does not "
                                "hold it yet: rerun the same command in a minute (it looks it up, it does not submit "
                                "again)")
        submissions.record_submission(file, message, "digit-recognizer", ref=ref)
        self.record("submit", done=True, sending=False, ref=int(ref))
        self.say(f"submitted {file} (ref {ref})")

    def _submitted(self, message: str) -> int | None:
        """The ref of this loop's submission on Kaggle (found by its message, unique per loop and attempt)."""
        sent = next((s for s in self.client.submissions() if getattr(s, "description", "") == message), None)
        return int(sent.ref) if sent is not None and getattr(sent, "ref", None) else None

    def _score(self) -> None:
        from tools import submissions

        ref = self.step("submit")["ref"]
        for _ in self._polls(lambda seconds: f"score: submission {ref} has no public score after {seconds:.0f} s: "
                                             "rerun the same command later (it is not submitted again)"):
            found = next((s for s in self.client.submissions() if int(getattr(s, "ref", -1)) == ref), None)
            score = submissions.score_of(getattr(found, "public_score", None)) if found is not None else None
            status = str(getattr(found, "status", "")).rsplit(".", 1)[-1] if found is not None else ""
            if score is not None or status == "ERROR":
                break
        if status == "ERROR":
            raise LoopError(f"score: Kaggle could not score submission {ref}: "
                            f"{getattr(found, 'error_description', '') or 'no message'}")
        records = submissions.read_records(self.run_dir)
        for record in records:
            if record.get("ref") == ref:
                record["kaggle"] = {"ref": ref, "status": status, "public_score": score,
                                    "private_score": submissions.score_of(getattr(found, "private_score", None)),
                                    "date": str(getattr(found, "date", "")), "checked": submissions.now()}
        submissions.write_records(self.run_dir, records)
        self.record("score", done=True, public_score=score)


# ------------------------------------------------------------------------------------------------ the command
def check_weights_published(run_dir: Path) -> None:
    """Refuse to fuse a loop whose weights dataset is not published yet (its kaggle.json's ``weights`` step)."""
    path = run_dir / STATE_NAME
    state = json.loads(path.read_text()) if path.is_file() else {}
    if not state.get("steps", {}).get("weights", {}).get("done"):
        raise LoopError(f"{run_dir.name}: no published weights dataset ({path} does not record one): finish it with "
                        f"make kaggle RUN={run_dir.name} first")


def check_same_folds(run_dirs: list[Path]) -> None:
    """Refuse, before pushing, loops trained on different folds (their downloaded folds.csv differ): the ensemble
    notebook would refuse them on Kaggle — their OOF rows do not line up. On Kaggle a loop's folds come from its
    ``seed`` and ``n_folds``."""
    from core.manifest import sha256_file

    hashes = {run_dir.name: sha256_file(run_dir / "folds.csv") if (run_dir / "folds.csv").is_file() else "missing"
              for run_dir in run_dirs}
    if len(set(hashes.values())) > 1:
        listed = ", ".join(f"{name} {digest[:12]}" for name, digest in hashes.items())
        raise LoopError(f"make kaggle RUNS=…: the loops were trained on different folds (folds.csv {listed}): fused "
                        "weights would be learned on leaked rows; train them with the same seed and n_folds")


def loop_request(parameters: dict[str, Any]) -> dict[str, Any]:
    """What decides whether runs/<RUN>/ is this loop's (tools.run_folder): the training settings sent to Kaggle."""
    from core.config import Config

    return {"kind": "make kaggle", "settings": Config.from_mapping(parameters).training_settings()}


def builder(owner: str, name: str) -> Callable[[str, Path, dict[str, Any], dict[str, Any]], Path]:
    """Build a kernel for loop ``name``: its title (and so its slug) and weights dataset carry the run's name;
    ``parameters`` go into its parameters cell, ``metadata`` into its kernel-metadata.json."""
    import build as bundler

    repo = Path(bundler.__file__).resolve().parent

    def make(kernel: str, out_dir: Path, parameters: dict[str, Any], metadata: dict[str, Any]) -> Path:
        return bundler.build_kernel(kernel, repo=repo, out_dir=out_dir, owner=owner,
                                    extra={"title": f"digitkit {kernel} {name}",
                                           "weights_dataset": loop_slug("weights", name),
                                           "build_command": f"make kaggle RUN={name}"},
                                    parameters=parameters, metadata_overrides=metadata,
                                    note=f"make kaggle RUN={name}")
    return make


@dataclasses.dataclass
class Target:
    client: KaggleService
    owner: str
    test_rows: int  # rows of the competition's test.csv there


def connect(twin: bool, twin_state: Path | None = None) -> Target:
    """The Kaggle to talk to: the real one (credentials from the environment or kaggle.json), or the twin serving
    ``twin_state`` (default runs/kaggle-twin; started if it is not running; its address and fake credentials from
    its state folder)."""
    from tools.ship import KAGGLE_TEST_ROWS
    from tools.shipping.checks import resolve_username
    from tools.shipping.kaggle_client import KaggleClient

    test_rows = KAGGLE_TEST_ROWS
    if twin:
        from tools.twin import DEFAULT_STATE, client_environment, served_test_rows

        state = Path(twin_state or DEFAULT_STATE)
        try:
            os.environ.update(client_environment(state))
        except RuntimeError as err:
            raise LoopError(str(err)) from None
        # the twin's fake credentials only: a real token (environment or ~/.kaggle) must never be sent to it
        os.environ.pop("KAGGLE_API_TOKEN", None)
        config = state / "client-config"
        config.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["KAGGLE_CONFIG_DIR"] = str(config)
        test_rows = served_test_rows(state)
    owner = resolve_username()
    if not owner:
        raise LoopError("no Kaggle username: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or save "
                        "kaggle.json (docs/kaggle.md, Credentials)")
    return Target(client=KaggleClient(), owner=owner, test_rows=test_rows)


def main(argv: list[str] | None = None) -> int:
    from tools.run_local import run_name_argument

    parser = argparse.ArgumentParser(prog="python -m tools.kaggle_loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=run_name_argument, help="the loop's name: runs/<name>/ (default with --fuse: "
                                                                "kaggle-ensemble-<a>-<b>…)")
    parser.add_argument("--fuse", nargs="+", type=run_name_argument, default=[], metavar="RUN",
                        help="finished loops whose weights the ensemble kernel fuses (make kaggle RUNS=\"a b\")")
    parser.add_argument("--runs", default="runs", help="folder of all runs (default: runs)")
    parser.add_argument("--twin", action="store_true", help="talk to the Kaggle twin instead of Kaggle")
    parser.add_argument("--restart", action="store_true", help="move an earlier loop of that name aside")
    parser.add_argument("--preset", default="kaggle", help="a preset of core/presets.py (default: kaggle)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--twin-state", type=Path, help="the twin's state folder (default: runs/kaggle-twin)")
    parser.add_argument("--wait-limit", type=float, default=None,
                        help=f"seconds one wait may take before the loop stops (default: {Waits.limit / 3600:g} h)")
    args = parser.parse_args(argv)
    from core.presets import preset_parameters
    from tools.run_notebook import parse_parameter

    name = args.run or ("kaggle-ensemble-" + "-".join(args.fuse) if args.fuse else "default")
    try:
        check_loop_name(name)
        if args.fuse:
            if len(args.fuse) < 2:
                raise LoopError(f"make kaggle RUNS=…: fusing needs two or more finished loops; got {len(args.fuse)}")
            parameters: dict[str, Any] = {}
            request = {"kind": "make kaggle RUNS", "settings": {"fuse": " ".join(args.fuse)}}
            for loop_name in args.fuse:
                check_weights_published(Path(args.runs) / loop_name)
            check_same_folds([Path(args.runs) / loop_name for loop_name in args.fuse])
        else:
            parameters = {**preset_parameters(args.preset), **dict(parse_parameter(p) for p in args.param)}
            request = loop_request(parameters)
        target = connect(args.twin, args.twin_state)
        request = {**request, "target": "twin" if args.twin else "kaggle", "owner": target.owner}  # one folder each
        waits = Waits(first=0.5, most=5) if args.twin else Waits()
        waits.limit = args.wait_limit if args.wait_limit is not None else waits.limit
        with claim_run(args.runs, name, request=request, restart=args.restart, command="make kaggle") as run_dir:
            Loop(run_dir, name=name, owner=target.owner, parameters=parameters, client=target.client,
                 build=builder(target.owner, name), test_rows=target.test_rows, fuse=args.fuse,
                 waits=waits).run()
    except (LoopError, RunFolderError, ShipError, BuildError, OSError, ValueError) as err:  # one line each
        print(f"make kaggle failed: {' '.join(scrub(str(err)).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nmake kaggle interrupted; rerun the same command to resume ({Path(args.runs) / name / STATE_NAME}"
              " says where it stopped; nothing is sent twice)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
