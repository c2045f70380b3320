"""The child jobs' worker pools: spawned processes, started at once (pure Python; no CASA here).

Spawned, never forked, even for one worker: a job's own process holds casatools and its workers
python-casacore, which must not meet in one process (docs/architecture.md).
"""

from __future__ import annotations

__all__ = ["spawned_pool"]


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
