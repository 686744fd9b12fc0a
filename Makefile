# digitkit — `make help` lists the targets. Everything runs inside .venv, made from requirements.txt.
override SHELL := /bin/bash
.DEFAULT_GOAL := help

# What a user types never reaches a shell. Every NAME=value given on make's command line is taken as typed (make's own
# $(...) expansion switched off by $(value)), exported, and read from the environment by the one command layer,
# tools/cli.py (`make help` lists the variables; they are defined there, not here). No recipe below names a user's
# variable: a value with quotes, ';', '#', '$(...)' or a newline cannot become part of a shell line.
COMMAND_LINE_VARIABLES := $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $v)),$v))
$(foreach v,$(COMMAND_LINE_VARIABLES),$(eval override $v := $$(value $v)))
export $(COMMAND_LINE_VARIABLES)
export DIGITKIT_MAKE_VARIABLES := $(COMMAND_LINE_VARIABLES)
export DIGITKIT_MAKE_GOALS := $(MAKECMDGOALS)

# `override`: the Makefile's own names win over the command line and `make -e` (they name programs it runs)
override VENV   := .venv
override PY     := $(VENV)/bin/python
override STAMP  := $(VENV)/.installed
override CLI    := $(PY) -m tools.cli
# the first step of every target: unknown variables, DRY_RUN and every value the goals read, checked before any work
# (the standard library only: it runs before .venv exists)
override CHECK  := python3 -m tools.cli check

export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1
# Idle OpenMP threads spin by default; on a small, busy CPU they stall each other (1.9 s vs 36 ms per step seen here).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv data build run test check clean kaggle push status output weights submit scores ensemble sweep bench gpu-bench cpu-recipe cpu-quick runs compare select .check

.check:
	@$(CHECK)

help: .check ## list the targets and the variables
	@python3 -m tools.cli help

venv: .check $(STAMP) ## make .venv and install the pinned requirements
$(STAMP): requirements.txt | .check
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# ---- extra environments: core/ under other package versions (make venv-kaggle, make venv-oldest) ----
# .venv-NAME is a venv of its own, over the main .venv: a .pth file in its site-packages appends .venv's site-packages,
# so torch/torchvision (one 5 GB CUDA build, installed only in .venv) and every package that requirements-NAME.txt does
# not pin come from .venv, while the pinned ones are installed into .venv-NAME, whose own site-packages comes first and
# shadows .venv's copies (pip: "Not uninstalling ... outside environment"; .venv is left as it is). Python must be the
# same minor version as .venv's. Remade from nothing when requirements-NAME.txt or .venv changes; the last step fails
# unless every pin (and torch/torchvision at requirements.txt's pins) imports at its version from the right place.
# bin/kaggle links to .venv's pinned Kaggle CLI (a console script that runs under .venv's own Python).
# Use: .venv-kaggle/bin/python -m pytest -q -m "not slow" ...
.PHONY: venv-kaggle venv-oldest
override SITE_PACKAGES = -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'

venv-kaggle: .venv-kaggle/.installed ## .venv-kaggle: Kaggle image's versions (requirements-kaggle.txt), .venv's torch
venv-oldest: .venv-oldest/.installed ## .venv-oldest: oldest promised versions (requirements-oldest.txt), .venv's torch

.venv-%/.installed: requirements-%.txt $(STAMP)
	rm -rf .venv-$*
	python3 -m venv .venv-$*
	$(PY) $(SITE_PACKAGES) > "$$(.venv-$*/bin/python $(SITE_PACKAGES))/digitkit-main-venv.pth"
	ln -s $(abspath $(VENV))/bin/kaggle .venv-$*/bin/kaggle  # tools.ship runs the pinned CLI beside sys.executable
	.venv-$*/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-$*.txt
	.venv-$*/bin/python -m tools.check_venv requirements-$*.txt
	touch $@

data: .check $(STAMP) ## write the embedded MNIST 5k in Kaggle's layout (SOURCE=kaggle downloads the real files)
	@$(CLI) data

override KERNELS   := $(patsubst kernels/%.py.j2,%,$(wildcard kernels/*.py.j2))
override NOTEBOOKS := $(foreach k,$(KERNELS),build/$(k)/$(k).ipynb)

build: .check $(STAMP) $(NOTEBOOKS) ## build every notebook + kernel-metadata.json into build/ (only what is stale)

# A notebook is stale when core/, its template, its metadata template or build.py changed.
.SECONDEXPANSION:
build/%.ipynb: $(STAMP) build.py $(wildcard core/*.py) kernels/$$(notdir $$*).py.j2 kernel-metadata/$$(notdir $$*).json.j2 | .check
	$(PY) build.py $(notdir $*)

run: .check $(STAMP) data build ## train (k folds) then infer, locally, with the built notebooks → runs/RUN/
	@$(CLI) run

ensemble: .check $(STAMP) build ## fuse finished runs: make ensemble RUNS="a b" → runs/ensemble-a-b/ (table, chart, submission)
	@$(CLI) ensemble

runs: .check $(STAMP) ## the experiment journal: every run (finished or not) in one table → runs/journal.csv + journal.png
	@$(CLI) runs

compare: .check $(STAMP) ## is run B really better than run A? McNemar on the same folds, per digit, flipped digits (A=, B=, DATA)
	@$(CLI) compare

select: .check $(STAMP) ## which runs to fuse: forward selection under nested CV → the make ensemble line (RUNS= to restrict)
	@$(CLI) select

sweep: .check $(STAMP) data build ## learning rate × batch size sweep (the built sweep notebook) → runs/sweep/ (RUN, DATA, PARAMS)
	@$(CLI) sweep

bench: .check $(STAMP) data ## digitkit's trainer vs a seed-style loop: img/s, FLOP/s, speed-up (MODEL, DATA, STEPS, BATCH, ROUNDS, FLAGS)
	@$(CLI) bench

gpu-bench: .check $(STAMP) data ## on a GPU machine: bench with AMP, channels_last and compile switched one at a time
	@$(CLI) gpu-bench

cpu-recipe: .check $(STAMP) build ## the 2-core CPU recipe on the full 42k: local CV 0.9965, ~25 min with AMX (DATA=<real competition folder>)
	@$(CLI) cpu-recipe

cpu-quick: .check $(STAMP) build ## the CPU preset for iterating on the full 42k: local CV 0.9952, ~10 min (DATA=...)
	@$(CLI) cpu-quick

test: .check $(STAMP) .venv-kaggle/.installed .venv-oldest/.installed ## the whole suite (unit, build, the notebooks in a Kaggle sandbox in 3 package sets, the Kaggle loop on the twin)
	$(PY) -m pytest -q

check: .check $(STAMP) ## lint (ruff) and types (mypy) on core/ and tools/
	$(PY) -m ruff check core tools build.py
	$(PY) -m mypy core tools build.py

clean: .check ## remove build/ (runs/ holds your runs, Kaggle loop states and moved-aside runs: delete those by hand)
	rm -rf build

# ---- Kaggle (the pinned kaggle package's Python API; DRY_RUN=1 prints the kaggle commands and metadata, sends nothing) ----
kaggle: .check $(STAMP) ## the whole Kaggle loop for RUN: push train → wait → weights → push infer → wait → submit → public score (TWIN=1: the twin)
	@$(CLI) kaggle

push: .check $(STAMP) ## rebuild build/KERNEL/ (owner from your credentials), check it, kaggle kernels push
	@$(CLI) push

status: .check $(STAMP) ## state of KERNEL's latest Kaggle run; fails on ERROR with Kaggle's message
	@$(CLI) status

output: .check $(STAMP) ## KERNEL's Kaggle output → weights/ (train; sha256-verified) or runs/kaggle-KERNEL/
	@$(CLI) output

weights: .check $(STAMP) ## create/version the weights dataset from weights/ and wait until ready (MESSAGE='...')
	@$(CLI) weights

submit: .check $(STAMP) ## validate FILE (default runs/kaggle-infer/submission.csv), submit it, record it beside FILE (MESSAGE='...')
	@$(CLI) submit

scores: .check $(STAMP) ## read your submissions' public scores from Kaggle into the records make submit wrote (make runs shows them)
	@$(CLI) scores

# ---- the Kaggle twin (tools/twin/): a local Kaggle that runs pushed kernels in the /kaggle sandbox (docs/twin.md) ----
.PHONY: twin twin-stop
twin: .check $(STAMP) ## start the Kaggle twin in the background (runs/kaggle-twin/; prints the environment a kaggle client needs)
	@$(CLI) twin

twin-stop: .check $(STAMP) ## stop the Kaggle twin (its state stays in runs/kaggle-twin/)
	@$(CLI) twin-stop
