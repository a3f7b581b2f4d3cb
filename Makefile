# Relaygate: `make run` starts the gateway, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test install install-test install-bench lint typecheck bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/runtime.lock requirements/build.lock
	$(PIP) install --require-hashes -r requirements/build.lock -r requirements/runtime.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements/test.lock
	$(PIP) install --require-hashes -r requirements/build.lock -r requirements/test.lock
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test requirements/bench.lock
	$(PIP) install --require-hashes -r requirements/build.lock -r requirements/bench.lock
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

install-bench: $(VENV)/.installed-bench

run: install
	$(BIN)/relaygate serve

test: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: install-test
	$(BIN)/mypy

bench: install-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Regenerate the hashed lock files after changing dependencies in pyproject.toml or requirements/*.in.
# The bench lock is compiled against the test lock (`-c test.lock` in bench.in): regenerate it after it.
# A local pip configuration's index URLs and wheel folders are not written into the locks.
LOCK_FLAGS := --generate-hashes --no-emit-index-url --no-emit-find-links
lock:
	$(PIP) install pip-tools
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --strip-extras --allow-unsafe -o requirements/runtime.lock pyproject.toml
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --strip-extras --allow-unsafe --extra test -o requirements/test.lock pyproject.toml
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --allow-unsafe -o requirements/bench.lock requirements/bench.in
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --allow-unsafe -o requirements/build.lock requirements/build.in

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
