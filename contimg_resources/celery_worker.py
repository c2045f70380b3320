"""The Celery app the cluster's workers run: ``celery -A contimg_resources.celery_worker worker ...``.

The same tasks as ``dagster_celery.app`` (``execute_job``, ``resume_job``; dagster-celery 0.29.27), on an app
configured like the launcher's (``contimg_resources.celery_launcher.celery_app_args``): broker and result
backend from ``CONTIMG_CELERY_BROKER`` / ``CONTIMG_CELERY_BACKEND``, no prefetch, ``STARTED`` recorded.
(``dagster-celery worker start -y FILE`` does the same by writing a ``dagster_celery_config`` module into
``$DAGSTER_HOME/dagster_celery/config/<uuid>/`` on every start; this module keeps one source of settings.)

Each task executes one whole run in a pool process, against the instance in the worker's
``DAGSTER_HOME`` (the shared Postgres instance). A pool process dies with its worker
(``PR_SET_PDEATHSIG``): a run worker never outlives the Celery worker that the health check asks about. A
pool process may start children (Dagster's multiprocess executor runs each step in one).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.process
import os
import signal

from celery.signals import worker_process_init
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from contimg_resources.celery_launcher import celery_app_args

PR_SET_PDEATHSIG = 1

app = make_app(celery_app_args())
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)


@worker_process_init.connect
def _prepare_pool_process(**_kwargs) -> None:
    # A pool process is "daemonic" to multiprocessing, which then refuses to start children -- and Dagster's
    # multiprocess executor runs each step in a child ("AssertionError: daemonic processes are not allowed to
    # have children" on the first step). The pool process is a run worker here: let it have children.
    # Its authkey is billiard's AuthenticationString, which multiprocessing's spawn refuses to pickle
    # ("Pickling an AuthenticationString object is disallowed"): give it multiprocessing's own.
    config = multiprocessing.current_process()._config
    config["daemon"] = False
    config["authkey"] = multiprocessing.process.AuthenticationString(bytes(config.get("authkey") or os.urandom(32)))
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the health check still fails the run, the process may linger
        pass
