# labkit — the two commands: `make report` (the full report on the shipped data)
# and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup report test lab bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,otel,dask]"
	@touch $(STAMP)

report: setup
	$(BIN)/labkit report

test: setup
	$(BIN)/python -m pytest -q

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf outputs/runs outputs/reports outputs/screenshots
