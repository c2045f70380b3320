# The README's two commands: `make demo` and `make test`. Everything else here serves them
# (`make test-fast` and `make lint` while developing).
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTIMG_ROOT ?= $(CURDIR)/data

.PHONY: setup demo test test-fast lint ui system-deps clean-data cluster cluster-stop

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

setup: system-deps $(VENV)/.installed

demo: setup
	$(PY) -m contimg.cli demo
	@nohup $(PY) -m contimg.cli serve --port 8765 >$(CONTIMG_ROOT)/state/logs/web.log 2>&1 & echo "QA pages and monitoring API: http://127.0.0.1:8765/ (docs at /docs; stop it with: kill $$!)"

# Lint first: CI runs exactly this, so a ruff finding fails it like a test does.
test: lint
	$(PY) -m pytest

# The pure tests (no CASA child job, no Dagster daemon): what to run while editing.
test-fast: setup
	$(PY) -m pytest -m "not casa and not e2e"

# ruff's rules and format, as configured in pyproject.toml; changes nothing (`ruff check --fix .` and
# `ruff format .` do).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The Dagster UI on loopback over the demo's instance and products.
ui: setup
	DAGSTER_HOME=$(CONTIMG_ROOT)/state/dagster $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean-data:
	rm -rf $(CONTIMG_ROOT)

# Cluster mode on this machine: Redis, PostgreSQL, a dagster-daemon and two Celery workers (deploy/README.md).
cluster: setup
	PYTHON=$(PY) bash scripts/cluster.sh start

cluster-stop:
	PYTHON=$(PY) bash scripts/cluster.sh stop
