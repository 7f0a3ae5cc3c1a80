# bayes-router: the front door. `make reproduce` does the whole study; `make test` runs the tests.
# Every target installs what it needs first, so a fresh clone needs only python3 (3.11+) and make.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Where the public MMLU-Pro model outputs are: a folder of model_outputs_*.zip.
# Unset: `make data` downloads them into $(RAW_DIR) first.
MMLU_PRO_RESULTS ?=
RAW_DIR := data/raw/eval_results
LOG_DIR := data/logs
LOG := $(LOG_DIR)/mmlu_pro.parquet
PRICES := data/prices.csv
# QUICK=1: the same path on small parameters (a few minutes).
QUICK ?=
SEED ?= 0

ifneq ($(strip $(MMLU_PRO_RESULTS)),)
LOG_SRC := $(abspath $(MMLU_PRO_RESULTS))
LOG_SRC_DEPS := $(wildcard $(LOG_SRC)/model_outputs_*)
else
LOG_SRC := $(RAW_DIR)
LOG_SRC_DEPS := $(RAW_DIR)/.complete
endif

.PHONY: help install data test test-fast lab bench reproduce clean lint
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project (editable) with its dev tools and Jupyter kernel

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "bayes-router needs Python 3.11+"'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name bayes-router --display-name "bayes-router (.venv)"
	touch $@

$(RAW_DIR)/.complete: | $(STAMP)
	$(BIN)/bayes-router download-mmlu-pro $(RAW_DIR)
	touch $@

data: $(LOG) ## import the MMLU-Pro logs (from MMLU_PRO_RESULTS, else downloaded) into data/logs/

$(LOG): $(LOG_SRC_DEPS) $(PRICES) | $(STAMP)
	$(BIN)/bayes-router import-mmlu-pro $(LOG_SRC) -o $@ --prices $(PRICES)

test: $(STAMP) ## run the test suite (real-data tests need MMLU_PRO_RESULTS)
	MMLU_PRO_RESULTS="$(if $(strip $(MMLU_PRO_RESULTS)),$(abspath $(MMLU_PRO_RESULTS)),)" \
	  $(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff
	$(BIN)/ruff check bayes_router tests

lab: $(STAMP) ## JupyterLab on the notebooks with the project's kernel
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP) ## speed and memory benchmarks, written to bench/results.json
	$(BIN)/bayes-router bench -o bench/results.json $(if $(QUICK),--quick,)

reproduce: data ## the whole study: import, fit, notebooks, figures, reports/summary.json, reports/index.html

clean: ## remove generated outputs (keeps .venv and downloaded data)
	rm -rf reports/ $(LOG_DIR)/ bench/results.json
