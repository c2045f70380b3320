"""The environment every CASA child process runs with: offline measures, writes only in state.

casatools and python-casacore each carry their own casacore, so neither is ever imported into
the Dagster process; child jobs (``python -m contimg.<stage>.job``) get this environment.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

__all__ = ["CHILD_JOB_MODULES", "casa_child_env", "child_command"]

# Each stage that runs CASA or casacore has one child job, a package inside the stage.
CHILD_JOB_MODULES = {
    "convert": "contimg.convert.job",
    "calibrate": "contimg.calibrate.job",
    "image": "contimg.image.job",
}


def casa_child_env(casa_state_dir: Path, base: dict | None = None) -> dict:
    """Environment for a CASA child: site config, CASA cache/log dir, no HDF5 locking, 1 thread each."""
    env = dict(os.environ if base is None else base)
    state = Path(casa_state_dir)
    state.mkdir(parents=True, exist_ok=True)
    siteconfig = resources.files("contimg.core.data").joinpath("casasiteconfig.py")
    env["CASASITECONFIG"] = str(Path(str(siteconfig)).absolute())
    env["CONTIMG_CASA_STATE_DIR"] = str(state.absolute())
    # python-casacore reads measures from the same casadata tables as casatools (via an aipsrc file)
    import importlib.util

    casadata = Path(importlib.util.find_spec("casadata").origin).parent / "__data__"
    casarc = state / "casarc"
    casarc.write_text(f"measures.directory: {casadata}\n")
    env["CASARCFILES"] = str(casarc.absolute())
    env["MPLCONFIGDIR"] = str((state / "matplotlib").absolute())
    env["MPLBACKEND"] = "Agg"
    env.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # ingest files may sit on shared storage
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def child_command(job: str, *args: str) -> list[str]:
    """Argv for ``python -m contimg.<job>.job ARGS`` with this interpreter (no shell).

    Raises
    ------
    ValueError
        If ``job`` is not one of :data:`CHILD_JOB_MODULES`.
    """
    if job not in CHILD_JOB_MODULES:
        raise ValueError(f"unknown child job {job!r}: expected one of {sorted(CHILD_JOB_MODULES)}")
    return [sys.executable, "-m", CHILD_JOB_MODULES[job], *map(str, args)]
