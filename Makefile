# dsrepo — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: demo test bench bench-scale lint format clean compile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Byte-compile the package: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) Python
# never caches bytecode itself, and every dsrepo command would recompile it (~0.1 s each).
compile: $(STAMP)
	$(BIN)/python -m compileall -q dsrepo

demo: compile
	$(BIN)/python benchmarks/demo.py demo-work

test: compile
	@test -x /usr/bin/chromium || echo "NOTE: no /usr/bin/chromium: the web view's browser tests will be SKIPPED (apt-get install chromium; .ci/run does)"
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: compile
	$(BIN)/python benchmarks/run.py bench-work

# 300k and 1M small files, each step beside git (trees cached in bench-work/scale; not in `test`)
bench-scale: compile
	$(BIN)/python benchmarks/scale.py bench-work/scale

lint: $(STAMP)
	$(BIN)/ruff check dsrepo tests benchmarks
	$(BIN)/ruff format --check dsrepo tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format dsrepo tests benchmarks
	$(BIN)/ruff check --fix dsrepo tests benchmarks

clean:
	rm -rf $(VENV) demo-work bench-work .pytest_cache .mypy_cache .ruff_cache
