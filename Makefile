# The README's two commands: `make demo` and `make test`. Everything else here serves them.
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTIMG_ROOT ?= $(CURDIR)/data

.PHONY: setup demo test ui system-deps clean-data cluster cluster-stop

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

test: setup
	$(PY) -m pytest

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
