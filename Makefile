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

# Where the LLM calibration study's results are: its folder (or its results/ folder) of
# mmlu_pro_<MODEL>_eval_all_None.csv. Unset: `make data` downloads them (pinned commit) first.
# Its questions come from the MMLU-Pro log's question texts, so that log is imported first.
CALIBRATION_STUDY_RESULTS ?=
STUDY_RAW_DIR := data/raw/calibration_study
STUDY_LOG := $(LOG_DIR)/calibration_study.parquet
STUDY_PRICES := data/prices_calibration_study.csv
ifneq ($(strip $(CALIBRATION_STUDY_RESULTS)),)
STUDY_SRC := $(abspath $(CALIBRATION_STUDY_RESULTS))
STUDY_SRC_DEPS := $(wildcard $(STUDY_SRC)/mmlu_pro_*.csv $(STUDY_SRC)/results/mmlu_pro_*.csv)
else
STUDY_SRC := $(STUDY_RAW_DIR)
STUDY_SRC_DEPS := $(STUDY_RAW_DIR)/.complete
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

$(STUDY_RAW_DIR)/.complete: data/calibration_study_files.csv | $(STAMP)
	$(BIN)/bayes-router download-calibration-study $(STUDY_RAW_DIR)
	touch $@

data: $(LOG) $(STUDY_LOG) ## import the MMLU-Pro and calibration-study logs (from MMLU_PRO_RESULTS and CALIBRATION_STUDY_RESULTS, else downloaded) into data/logs/

$(LOG): $(LOG_SRC_DEPS) $(PRICES) | $(STAMP)
	$(BIN)/bayes-router import-mmlu-pro $(LOG_SRC) -o $@ --prices $(PRICES)

$(STUDY_LOG): $(STUDY_SRC_DEPS) $(STUDY_PRICES) $(LOG) | $(STAMP)
	$(BIN)/bayes-router import-calibration-study $(STUDY_SRC) --questions $(LOG:.parquet=.questions.parquet) \
	  -o $@ --prices $(STUDY_PRICES)

test: $(STAMP) ## run the test suite (real-data tests need MMLU_PRO_RESULTS, CALIBRATION_STUDY_RESULTS)
	MMLU_PRO_RESULTS="$(if $(strip $(MMLU_PRO_RESULTS)),$(abspath $(MMLU_PRO_RESULTS)),)" \
	CALIBRATION_STUDY_RESULTS="$(if $(strip $(CALIBRATION_STUDY_RESULTS)),$(abspath $(CALIBRATION_STUDY_RESULTS)),)" \
	  $(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff
	$(BIN)/ruff check bayes_router tests

lab: $(STAMP) ## JupyterLab on the notebooks with the project's kernel
	$(BIN)/jupyter lab notebooks/

# On the imported real log (never a simulated stand-in); FULL_POOL=1 adds the 24-model fits (slow).
# Every fit of the study is also repeated with sampler seeds CONVERGENCE_SEEDS (its pass rate; not with QUICK).
CONVERGENCE_SEEDS := 0,1,2,3
bench: $(LOG) $(STUDY_LOG) | $(STAMP) ## speed, memory and convergence over seeds on the real log, written to bench/results.json (FULL_POOL=1: whole pool too)
	$(BIN)/bayes-router bench --log $(LOG) -o bench/results.json $(if $(QUICK),--quick,--convergence-seeds $(CONVERGENCE_SEEDS)) \
	  $(if $(FULL_POOL),--full-pool,)

# ---------------------------------------------------------------- reproduce (issue 6)
# import -> fit -> every notebook executed by papermill into reports/notebooks/
# (figures to figures/, headline JSON to reports/results/) -> reports/summary.json
# -> reports/index.html. Real file dependencies: a second run redoes only what
# changed (a notebook, the log, the package sources, or the QUICK mode).
REPORTS := reports
EXEC_DIR := $(REPORTS)/notebooks
RESULTS_DIR := $(REPORTS)/results
FIG_DIR := figures
POST_DIR := data/posteriors
SUMMARY := $(REPORTS)/summary.json
INDEX := $(REPORTS)/index.html
MODE := $(if $(filter-out 0,$(strip $(QUICK))),quick,full)
QUICK_PY := $(if $(filter quick,$(MODE)),True,False)
# Holds "quick" or "full"; rewritten only when the mode changes, so switching reruns everything after it.
MODE_FILE := $(REPORTS)/.mode
# Notebooks import the package: any change to it reruns them (the report code excepted).
PKG_SRC := $(filter-out bayes_router/study/report.py bayes_router/study/report_html.py,$(wildcard bayes_router/*.py bayes_router/*/*.py bayes_router/*/*/*.py bayes_router/*.yaml bayes_router/*/*.yaml))

# Pools (cheapest tier first; the last model is "the big model") are defined once, in
# bayes_router/pools.yaml; commands and notebooks take a pool's name: the MMLU-Pro ones, then those
# of the calibration study (study-all, 58 models, is left out of notebook 03: no claim needs its fits).
STUDY_POOLS := study-trio study-cascade study-api
POOLS := trio tiers all $(STUDY_POOLS)
# The call log of pool $(1): data/logs/<its `log:` in pools.yaml>.parquet (mmlu_pro when it names none).
pool_log = $(LOG_DIR)/$(or $(shell sed -n '/^$(1):/,/^[^ ]/s/^ *log: *//p' bayes_router/pools.yaml | head -n 1),mmlu_pro).parquet

# fit: the trio's pre- and post-call posteriors (notebooks 02, 03 and 06 load them instead of
# refitting when they run on the trio with the same split).
FIT_ARGS_quick := --questions 400 --draws 300 --tune 300 --chains 2
FIT_ARGS_full := --questions 4000 --tune 1000 --chains 2  # draws: the default, 4000 in total (2 x 2000)
POSTERIORS := $(POST_DIR)/trio_pre.nc $(POST_DIR)/trio_post.nc
FIT_DIAGNOSTICS := $(RESULTS_DIR)/fit/trio_pre.json $(RESULTS_DIR)/fit/trio_post.json

# Every notebooks/NN_*.ipynb present is executed; 03 once per pool.
NB03 := 03_routing_policies
NB_NAMES := $(basename $(notdir $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))))
NB_EXEC := $(foreach n,$(NB_NAMES),$(if $(filter $(NB03),$(n)),$(foreach p,$(POOLS),$(EXEC_DIR)/$(n)_$(p).ipynb),$(EXEC_DIR)/$(n).ipynb))
NB_DEPS := $(LOG) $(PKG_SRC) $(PRICES) $(MODE_FILE)

# Extra papermill parameters per notebook (every run gets LOG FIGURES_DIR RESULTS_DIR QUICK SEED;
# MODELS is always a pool name of bayes_router/pools.yaml, never a list of models).
# 02 loads the fit step's posteriors when it declares PRE_POSTERIOR/POST_POSTERIOR (else it fits its own).
NB_PARAMS_02_reliability_model := -p MODELS trio $(if $(shell grep -s -l 'POST_POSTERIOR = ' notebooks/02_reliability_model.ipynb),-p PRE_POSTERIOR $(abspath $(POST_DIR)/trio_pre.nc) -p POST_POSTERIOR $(abspath $(POST_DIR)/trio_post.nc),)

.PHONY: reproduce-notebooks reproduce-report figures fit
.FORCE:

$(MODE_FILE): .FORCE
	@mkdir -p $(@D); echo $(MODE) | cmp -s - $@ 2>/dev/null || echo $(MODE) > $@

fit: $(POSTERIORS) ## fit the trio's pre- and post-call reliability posteriors into data/posteriors/

# REPORT_ONLY=1 (used by `reproduce` for its last step) drops the rules that make posteriors and
# executed notebooks, so the report is built from what exists and never reruns a notebook
# whose sources changed meanwhile.
ifndef REPORT_ONLY
$(EXEC_DIR)/02_reliability_model.ipynb: $(if $(NB_PARAMS_02_reliability_model),$(POSTERIORS),)
# 06 reuses the trio's pre-call posterior (it refits by itself if the split differs)
NB_PARAMS_06_budget_allocation := -p MODELS trio -p PRE_POSTERIOR $(abspath $(POST_DIR)/trio_pre.nc)
$(EXEC_DIR)/06_budget_allocation.ipynb: $(POST_DIR)/trio_pre.nc

$(POST_DIR)/trio_%.nc: $(LOG) $(MODE_FILE) $(wildcard bayes_router/models/reliability.py bayes_router/models/reliability/*.py bayes_router/models/diagnostics.py bayes_router/commands/fit.py) bayes_router/data/split.py | $(STAMP)
	@mkdir -p $(@D)
	set -o pipefail; $(BIN)/bayes-router fit $(LOG) --stage $* --models trio $(FIT_ARGS_$(MODE)) --seed $(SEED) -o $@ \
	  | tee $(@:.nc=.diagnostics.txt)

# their convergence diagnostics (R-hat, ESS, divergences, E-BFMI: pass/fail) for the summary
$(RESULTS_DIR)/fit/trio_%.json: $(POST_DIR)/trio_%.nc $(wildcard bayes_router/models/diagnostics.py) | $(STAMP)
	$(BIN)/python -m bayes_router.study.report diagnose $< --mode $(MODE) -o $@

# papermill into a temporary copy; on success it becomes the target, on failure it is kept
# in $(EXEC_DIR)/failed/ (the report shows the failing cell) and the target stays out of date.
# $(1) notebook file, $(2) extra parameters, $(3) figures subfolder, $(4) results subfolder
define run_notebook
	@mkdir -p $(EXEC_DIR)/.tmp $(EXEC_DIR)/failed $(RESULTS_DIR)$(4) $(FIG_DIR)$(3)
	@rm -f $(EXEC_DIR)/failed/$(notdir $@)
	@echo "papermill notebooks/$(1) -> $@ [$(MODE)]"
	@tmp=$(EXEC_DIR)/.tmp/$(notdir $@); \
	if $(BIN)/papermill --cwd notebooks notebooks/$(1) $$tmp \
	     -p LOG $(abspath $(LOG)) -p FIGURES_DIR $(abspath $(FIG_DIR))$(3) \
	     -p RESULTS_DIR $(abspath $(RESULTS_DIR))$(4) -p QUICK $(QUICK_PY) -p SEED $(SEED) $(2); \
	then mv $$tmp $@; \
	else [ -f $$tmp ] && mv $$tmp $(EXEC_DIR)/failed/$(notdir $@); rm -f $@; \
	     echo "FAILED: notebooks/$(1) (executed copy in $(EXEC_DIR)/failed/$(notdir $@))" >&2; exit 1; fi
endef

# notebook 03 on the fit step's pool reuses its posteriors (when its questions, split and seed match);
# on the headline pool it also refits with fit seeds 0-3 on the same split (the seed-to-seed spread)
FIT_SEEDS := 0,1,2,3
NB03_PARAMS_trio := -p PRE_POSTERIOR $(abspath $(POST_DIR)/trio_pre.nc) -p POST_POSTERIOR $(abspath $(POST_DIR)/trio_post.nc) \
  -p FIT_SEEDS $(FIT_SEEDS)
$(EXEC_DIR)/$(NB03)_trio.ipynb: $(POSTERIORS)

# the calibration-study pools read their own log (a later -p LOG wins in papermill)
$(foreach p,$(STUDY_POOLS),$(EXEC_DIR)/$(NB03)_$(p).ipynb): $(STUDY_LOG)

$(EXEC_DIR)/$(NB03)_%.ipynb: notebooks/$(NB03).ipynb $(NB_DEPS) | $(STAMP)
	$(call run_notebook,$(NB03).ipynb,-p MODELS $* -p LOG $(abspath $(call pool_log,$*)) $(NB03_PARAMS_$*),,/pools/$*)

# 07 tests the published claims on notebook 03's evaluations of these pools and on the study's log
NB07_POOLS := study-trio study-cascade study-api trio
NB_PARAMS_07_claims := -p STUDY_LOG $(abspath $(STUDY_LOG))
$(EXEC_DIR)/07_claims.ipynb: $(STUDY_LOG) $(foreach p,$(NB07_POOLS),$(EXEC_DIR)/$(NB03)_$(p).ipynb)

$(EXEC_DIR)/%.ipynb: notebooks/%.ipynb $(NB_DEPS) | $(STAMP)
	$(call run_notebook,$*.ipynb,$(NB_PARAMS_$*),,)

endif

figures: $(NB_EXEC) ## execute the notebooks (they write the figures to figures/)

reproduce-notebooks: $(LOG) $(POSTERIORS) $(FIT_DIAGNOSTICS) $(NB_EXEC)

$(SUMMARY): $(wildcard $(NB_EXEC) $(EXEC_DIR)/failed/*.ipynb) $(wildcard $(RESULTS_DIR)/*.json $(RESULTS_DIR)/*/*.json $(RESULTS_DIR)/*/*/*.json) $(MODE_FILE) bayes_router/study/report.py | $(STAMP)
	$(BIN)/python -m bayes_router.study.report summary --results-dir $(RESULTS_DIR) --notebooks-dir $(EXEC_DIR) \
	  --mode $(MODE) --seed $(SEED) $(foreach p,$(POOLS),--pool $(p)) --command "make reproduce$(if $(filter quick,$(MODE)), QUICK=1,) SEED=$(SEED)" -o $@

$(INDEX): $(SUMMARY) $(wildcard $(NB_EXEC) $(EXEC_DIR)/failed/*.ipynb) bayes_router/study/report.py bayes_router/study/report_html.py | $(STAMP)
	$(BIN)/python -m bayes_router.study.report index --reports-dir $(REPORTS) --figures-dir $(FIG_DIR) -o $@

reproduce-report: $(INDEX)

# -k: one failing notebook does not stop the others; the report is built either way and
# lists what failed; the exit status is non-zero if anything failed.
reproduce: $(STAMP) ## the whole study: import, fit, notebooks, figures, reports/summary.json, reports/index.html (QUICK=1: small)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -k reproduce-notebooks; st=$$?; \
	$(MAKE) --no-print-directory reproduce-report REPORT_ONLY=1; st2=$$?; \
	echo "make reproduce [$(MODE)]: $$(( $$(date +%s) - start )) s; report: $(INDEX)"; \
	if [ $$st -ne 0 ] || [ $$st2 -ne 0 ]; then echo "make reproduce: some steps failed (see $(INDEX))" >&2; exit 1; fi

clean: ## remove generated outputs (keeps .venv, downloaded data and the committed bench/results.json)
	rm -rf reports/ $(LOG_DIR)/ $(POST_DIR)/
