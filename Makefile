# Golden Path: `make run` serves on embedded defaults, `make test` runs every check.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run backstage test lint unit mutants bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	export GOLDENPATH_CONFIG=$${GOLDENPATH_CONFIG:-goldenpath.local.yaml}; $(BIN)/goldenpath db upgrade && exec $(BIN)/goldenpath serve

backstage: install
	$(BIN)/python backstage/run.py

lint: install
	$(BIN)/ruff check backend scaffolder_actions tests backstage $(wildcard benchmarks)
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest-xdist, 2 workers (PYTEST_WORKERS=0: serially); the tests marked xdist_group (Backstage end-to-end) share
# one worker. pytest's exit status is the target's: 5 (no tests collected) fails it too. A worker that dies ends the
# run, naming the test it was running: pytest-xdist 3.8's loadgroup cannot replace one (INTERNALERROR or a hang).
PYTEST_WORKERS ?= 2
unit: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --max-worker-restart 0

# every realistic bug of tests/mutants/catalogue must fail a guarding test (a copy of the code is mutated)
mutants: install
	$(BIN)/python tests/mutants/run.py

test: lint unit mutants

bench: install
	$(BIN)/python benchmarks/vault_service_vs_hvac.py
	PYTHONPATH=. $(BIN)/python benchmarks/github_push.py
	PYTHONPATH=. $(BIN)/python benchmarks/replicas.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
