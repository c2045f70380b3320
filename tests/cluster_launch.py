"""Submit several queued partition runs at the same moment, for the cluster's overlap and kill drills.

``contimg_assets.instance.cluster.launch_partition_runs`` goes through the public ``dagster job launch`` command,
one process per run: each loads the code location first, so on a busy machine their runs start tens of seconds
apart, and the small test chunks' CASA steps (a few seconds each) never overlap. The pool-of-two drill needs
them to start together, so this test helper submits every run from one process with one code server, through
Dagster's CLI internals (tests may use private Dagster API; the product code does not).
"""

from __future__ import annotations

import os

from contimg_assets.instance.cluster import cluster_env
from contimg_assets.instance.processes import REPO_ROOT


def launch_partition_runs_at_once(state: dict, keys: list[str], job_name: str = "chunk_job") -> list[str]:
    """Submit one queued run of ``job_name`` per window from this process; return the run ids."""
    from dagster import DagsterInstance
    from dagster import __version__ as dagster_version
    from dagster._cli.job import (
        _create_run,
        get_code_location_from_workspace,
        get_remote_job_from_remote_repo,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )
    from dagster_shared.cli import WorkspaceOpts

    os.environ.update({k: v for k, v in cluster_env(state).items() if k.startswith(("CONTIMG_PG", "CONTIMG_CELERY"))})
    opts = WorkspaceOpts(workspace=[str(REPO_ROOT / "workspace.yaml")])
    with (
        DagsterInstance.from_config(state["dagster_home"]) as instance,
        get_workspace_from_cli_opts(instance, version=dagster_version, workspace_opts=opts) as ws,
    ):
        location = get_code_location_from_workspace(ws, None)
        repo = get_remote_repository_from_code_location(location, None)
        job = get_remote_job_from_remote_repo(repo, job_name)
        ids = []
        for key in keys:
            run = _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repo,
                remote_job=job,
                run_config={},
                tags={"dagster/partition": key},
                op_selection=None,
                run_id=None,
            )
            ids.append(instance.submit_run(run.run_id, ws).run_id)
        return ids
