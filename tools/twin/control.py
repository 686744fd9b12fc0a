"""``python -m tools.twin start|stop|status|env|serve``: the Kaggle twin as a process of its own, like Kaggle.

    python -m tools.twin start [--state runs/kaggle-twin] [--port 0] [--data DIR --labels FILE] [...]
    python -m tools.twin status [--state ...]     # running or not; kernels, datasets, submissions
    python -m tools.twin env [--state ...]        # the client's environment as export lines: eval "$(...)"
    python -m tools.twin stop [--state ...]

``start`` runs ``serve`` in the background (its own session: closing the terminal or killing a client leaves it and
its kernels running), waits until it listens, and prints its address, its state folder and the environment a client
needs; ``<state>/twin.json`` holds the same (pid, port, env) for other tools. A second ``start`` on a running state
says so and changes nothing. ``serve`` runs it in the foreground (Ctrl-C stops it). Its log is ``<state>/twin.log``.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tools.twin import DEFAULT_STATE  # the one home of the default state folder
from tools.twin.sandbox import KAGGLE_ROOT, REPO, sandbox_problem
from tools.twin.store import iso, read_json, write_json

DEFAULT_USER = "twinuser"
FAKE_KEY = "c0ffee00c0ffee00c0ffee00c0ffee00"  # 32 hex digits, like a real key; the twin accepts any credentials
INFO_NAME = "twin.json"


def client_env(port: int, user: str = DEFAULT_USER) -> dict[str, str]:
    """What the real kaggle client needs to talk to the twin on ``port`` (see tools/twin/protocol.py)."""
    proxy = f"http://127.0.0.1:{port}"
    return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "",
            "no_proxy": "", "KAGGLE_USERNAME": user, "KAGGLE_KEY": FAKE_KEY}


def running(state: Path) -> dict[str, Any] | None:
    """twin.json of the twin serving ``state``, when its process is alive; None otherwise."""
    info = read_json(Path(state) / INFO_NAME)
    if not info or not _is_twin(info.get("pid")):
        return None
    return info


def _is_twin(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tools.twin" in command and b"serve" in command


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", default=DEFAULT_STATE, help=f"state folder (default {DEFAULT_STATE})")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument("--data", help="competition folder to serve (train.csv, test.csv, sample_submission.csv); "
                                       "default: the embedded MNIST sample, as make data writes it")
    parser.add_argument("--labels", help="the test labels of --data (ImageId,Label)")
    parser.add_argument("--papermill", default=str(REPO / ".venv" / "bin" / "papermill"),
                        help="the papermill that runs kernels (its environment's python runs them)")
    parser.add_argument("--user", default=DEFAULT_USER, help="the user name a client is given")
    parser.add_argument("--ready-delay", type=float, default=1.0, help="seconds until a dataset version is ready")
    parser.add_argument("--queue-delay", type=float, default=0.2, help="seconds a pushed version stays QUEUED")
    parser.add_argument("--max-sessions", type=int, default=2, help="kernel sessions running at once")
    parser.add_argument("--time-limit", type=float, default=12 * 3600, help="a session's limit in seconds")
    parser.add_argument("--daily-submissions", type=int, default=5, help="submissions allowed per UTC day")


def _serve_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--state", str(Path(args.state).resolve()), "--port", str(args.port), "--papermill", args.papermill,
            "--user", args.user, "--ready-delay", str(args.ready_delay), "--queue-delay", str(args.queue_delay),
            "--max-sessions", str(args.max_sessions), "--time-limit", str(args.time_limit),
            "--daily-submissions", str(args.daily_submissions)]
    for name in ("data", "labels"):
        if getattr(args, name):
            argv += [f"--{name}", str(Path(getattr(args, name)).resolve())]
    return argv


def _problem(args: argparse.Namespace) -> str | None:
    if (args.data is None) != (args.labels is None):
        return "give --data and --labels together (--labels: the test labels of --data's test.csv)"
    if not Path(args.papermill).is_file():
        return f"no papermill at {args.papermill}: run make venv, or pass --papermill"
    problem = sandbox_problem(network=True, require_empty=False)
    return f"it runs kernels in the Kaggle sandbox, and {problem}" if problem else None


def describe(info: dict[str, Any]) -> str:
    state = info["state"]
    lines = [f"the Kaggle twin is running: pid {info['pid']}, {info['address']} (a forward proxy for "
             f"http://localhost), state {state}",
             f"a client (the kaggle CLI or KaggleApi) needs this environment (also in {Path(state) / INFO_NAME}):",
             env_lines(info["env"]),
             f"stop it with: python -m tools.twin stop --state {shlex.quote(state)}   (make twin-stop)"]
    return "\n".join(lines)


def env_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


# ------------------------------------------------------------------------------------------------------ commands
def start(args: argparse.Namespace) -> int:
    state = Path(args.state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    with open(state / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two starts at once: the second finds the first running
        info = running(state)
        if info:
            print("already running — " + describe(info))
            return 0
        problem = _problem(args)
        if problem:
            print(f"error: cannot start the Kaggle twin: {problem}", file=sys.stderr)
            return 1
        (state / INFO_NAME).unlink(missing_ok=True)
        with open(state / "twin.log", "ab") as log:
            child = subprocess.Popen([sys.executable, "-m", "tools.twin", "serve", *_serve_argv(args)], cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            info = read_json(state / INFO_NAME)
            if info and info.get("pid") == child.pid:
                print(describe(info))
                return 0
            if child.poll() is not None:
                tail = (state / "twin.log").read_text(errors="replace").splitlines()[-15:]
                print(f"error: the Kaggle twin exited ({child.returncode}) before it listened; "
                      f"{state / 'twin.log'} says:\n" + "\n".join(tail), file=sys.stderr)
                return 1
            time.sleep(0.1)
        print(f"error: the Kaggle twin (pid {child.pid}) did not listen within {args.wait:g} s; see "
              f"{state / 'twin.log'}", file=sys.stderr)
        return 1


def stop(args: argparse.Namespace) -> int:
    state = Path(args.state).resolve()
    info = running(state)
    if not info:
        print(f"the Kaggle twin is not running (state {state})")
        return 0
    pid = info["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.wait
    while _is_twin(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_twin(pid):
        os.kill(pid, signal.SIGKILL)
        print(f"the Kaggle twin (pid {pid}) did not stop within {args.wait:g} s: killed; a session it ran is ended "
              "when it starts again")
    (state / INFO_NAME).unlink(missing_ok=True)
    print(f"the Kaggle twin (pid {pid}) stopped; its state stays in {state}")
    return 0


def status(args: argparse.Namespace) -> int:
    state = Path(args.state).resolve()
    info = running(state)
    print(describe(info) if info else f"the Kaggle twin is not running (state {state})")
    for path in sorted(state.glob("kernels/*/*/kernel.json")):
        versions = sorted(int(p.name) for p in (path.parent / "versions").iterdir() if p.name.isdigit())
        latest = read_json(path.parent / "versions" / str(versions[-1]) / "status.json", {})
        message = f": {latest['failureMessage']}" if latest.get("failureMessage") else ""
        print(f"  kernel {read_json(path)['ref']} version {versions[-1]}: {latest.get('status')}{message}")
    for path in sorted(state.glob("datasets/*/*/dataset.json")):
        versions = sorted(int(p.name) for p in (path.parent / "versions").iterdir() if p.name.isdigit())
        ready_at = read_json(path.parent / "versions" / str(versions[-1]) / "version.json").get("ready_at")
        ready = ready_at is not None and time.time() >= ready_at
        print(f"  dataset {read_json(path)['ref']} version {versions[-1]}: {'ready' if ready else 'pending'}")
    submissions = read_json(state / "submissions.json", {"submissions": []})["submissions"]
    if submissions:
        last = submissions[-1]
        print(f"  {len(submissions)} submissions; the last: {last['status']}, public {last['publicScore'] or '—'}")
    return 0 if info else 1


def env(args: argparse.Namespace) -> int:
    info = running(Path(args.state).resolve())
    if not info:
        print(f"error: the Kaggle twin is not running (state {args.state}): python -m tools.twin start",
              file=sys.stderr)
        return 1
    print(env_lines(info["env"]))
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the twin in this process until SIGTERM or Ctrl-C."""
    from tools.twin.protocol import ProxyServer
    from tools.twin.server import Twin, TwinConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    problem = _problem(args)
    if problem:
        print(f"error: cannot start the Kaggle twin: {problem}", file=sys.stderr)
        return 1
    state = Path(args.state).resolve()
    serving = running(state)
    if serving and serving["pid"] != os.getpid():
        print(f"error: a Kaggle twin already serves {state}: " + describe(serving), file=sys.stderr)
        return 1
    twin = Twin(TwinConfig(state=state, papermill=Path(args.papermill), data=args.data and Path(args.data),
                           labels=args.labels and Path(args.labels), ready_delay=args.ready_delay,
                           queue_delay=args.queue_delay, max_sessions=args.max_sessions, time_limit=args.time_limit,
                           daily_submissions=args.daily_submissions))
    server = ProxyServer(twin.handle, port=args.port, name="kaggle-twin")
    port = server.bind()
    info = {"pid": os.getpid(), "port": port, "address": f"http://127.0.0.1:{port}", "state": str(state),
            "env": client_env(port, args.user), "started": iso(), "config": vars(args)}
    write_json(state / INFO_NAME, info)
    logger = logging.getLogger("tools.twin")
    logger.info("listening on %s, state %s", info["address"], state)
    if KAGGLE_ROOT.is_dir() and any(KAGGLE_ROOT.iterdir()):
        logger.warning("%s on this machine is not empty: kernels do not see it (the sandbox binds over it), but a "
                       "process outside the sandbox takes /kaggle/working for Kaggle's", KAGGLE_ROOT)

    def shut(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut)
    signal.signal(signal.SIGINT, shut)
    try:
        server.serve_forever()
    finally:
        twin.stop()
        server.stop()
        with contextlib.suppress(OSError):
            if read_json(state / INFO_NAME, {}).get("pid") == os.getpid():
                (state / INFO_NAME).unlink()
        logging.getLogger("tools.twin").info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.twin", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("start", "start the twin in the background (nothing if it runs)"),
                       ("serve", "run the twin in the foreground"), ("stop", "stop the twin"),
                       ("status", "is it running; its kernels, datasets, submissions"),
                       ("env", "the client's environment as export lines")):
        sub = commands.add_parser(name, help=text)
        _options(sub)
        if name in ("start", "serve"):
            _serve_options(sub)
        if name in ("start", "stop"):
            sub.add_argument("--wait", type=float, default=180 if name == "start" else 30,
                             help="seconds to wait for it to listen / to stop")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return {"start": start, "serve": serve, "stop": stop, "status": status, "env": env}[args.command](args)
