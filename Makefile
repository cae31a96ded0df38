# labkit — the two commands: `make report` (the full report on the shipped data)
# and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup report test lab bench lint clean phoenix

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[lab,dev,otel,dask,embed,mlflow]"
	@touch $(STAMP)

# Arize Phoenix, for tests/test_phoenix.py, in an environment of its own (its pins are not labkit's).
PHOENIX_VENV  := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-stamp

phoenix: $(PHOENIX_STAMP)

$(PHOENIX_STAMP):
	@test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install -q --upgrade pip
	$(PHOENIX_VENV)/bin/python -m pip install -q "arize-phoenix==20.26.1" "arize-phoenix-client==3.5.0"
	@touch $(PHOENIX_STAMP)

report: setup
	$(BIN)/labkit report

# Two workers, one test file each at a time (module fixtures stay in one process); the slow
# suites (servers, notebooks, the browser) run beside the fast ones.
test: setup phoenix
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The lab works on git-ignored copies of notebooks/ in outputs/lab/ (made once, then kept), so
# autosave never rewrites a tracked notebook; `labkit report` and papermill run the committed ones.
# Offline: no update check, no news feed and no news prompt (outputs/lab-settings/overrides.json
# sets fetchNews to "false"), a read-only extension manager (nothing leaves the machine).
LAB_FLAGS := --notebook-dir=outputs/lab --LabApp.app_settings_dir=outputs/lab-settings \
	--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	--LabApp.news_url=None --LabApp.extension_manager=readonly

lab: setup
	$(BIN)/python -m labkit.commands.lab
	$(BIN)/jupyter lab $(LAB_FLAGS) $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf outputs/runs outputs/reports outputs/screenshots
