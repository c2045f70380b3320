#!/usr/bin/env bash
# Cluster mode on this machine: Redis (broker), PostgreSQL (Dagster instance), one dagster-daemon and Celery
# workers, each in its own process group, all on 127.0.0.1 (contimg_assets/instance/cluster.py).
#
#   scripts/cluster.sh start [--workers N] [--concurrency C] [--casa-pool K] [--pg-url URL]
#   scripts/cluster.sh status | env | stop
#
# State, logs and per-worker scratch live in $CONTIMG_CLUSTER_ROOT (default $CONTIMG_ROOT/state/cluster);
# ingest, products and the catalogue are the usual CONTIMG_* folders, shared by the workers.
# `eval "$(scripts/cluster.sh env)"` points the dagster CLI (and `contimg reprocess`) at the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cmd="${1:-status}"; shift || true
case "$cmd" in
  start|stop|status|env) exec "$PYTHON" -m contimg_assets.instance.cluster "$cmd" "$@" ;;
  *) echo "usage: $0 start|stop|status|env [options]" >&2; exit 2 ;;
esac
