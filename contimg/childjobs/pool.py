"""The child jobs' worker pools: spawned processes, started at once (pure Python; no CASA here).

Spawned, never forked, even for one worker: a job's own process holds casatools and its workers
python-casacore, which must not meet in one process (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["spawned_pool", "pool_with_scratch"]


def spawned_pool(workers: int, initializer):
    """A ``ProcessPoolExecutor`` of ``max(1, workers)`` spawned processes, each running ``initializer`` first.

    Every process is started now (a pool spawns one per task submitted while none is idle), so their
    imports in ``initializer`` overlap the job's own work until the first real task.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = max(1, workers)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=initializer)
    for _ in range(n):
        pool.submit(int)
    return pool


@contextlib.contextmanager
def pool_with_scratch(pool, beside: str | Path, prefix: str) -> Iterator[str]:
    """Run a block with ``pool`` and a scratch folder (yielded) beside ``beside``, for arrays between processes.

    On an error no worker may go on writing the scratch folder or the job's output, so the pool's
    pending tasks are cancelled and its running ones waited for before the error goes on; on
    success every task has ended and the idle workers exit in the background. The scratch folder
    is removed either way.
    """
    scratch = tempfile.mkdtemp(prefix=prefix, dir=Path(beside).absolute().parent)
    try:
        yield scratch
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pool.shutdown(wait=False)
