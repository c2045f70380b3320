"""The worker pool that prepares SPWs ahead of the writer, in order, with bounded memory."""

from __future__ import annotations

import numpy as np

from contimg.convert.job.prepare import Slot, prepare_spw, spw_inputs
from contimg.convert.plan import ChunkPlan
from contimg.core.instrument import N_SUBBANDS, TELESCOPE_NAME

__all__ = ["Preparer", "without_rows"]


def _warm_up() -> None:
    """Run once in each worker while the main process plans.

    It pays the imports and casacore's measures tables before the first subband arrives.
    """
    import h5py  # noqa: F401
    import pyuvdata.utils.io.ms  # noqa: F401  (for the subtables, ~1 s of imports off the writer's path)
    from casacore.measures import measures

    from contimg.calibrate.calavg import rotation  # noqa: F401

    measures().observatory(TELESCOPE_NAME)


def without_rows(plan: ChunkPlan) -> ChunkPlan:
    """The plan without its per-row arrays (43 MB at full size): what the subtables need, cheap to pickle."""
    import dataclasses

    none = np.zeros(0, int)
    slim = {
        k: dataclasses.replace(s, time_jd=none.astype(float), ant1=none, ant2=none) for k, s in plan.subbands.items()
    }
    return dataclasses.replace(plan, subbands=slim)


class Preparer:
    """``prepare_spw`` for SPW 0..15 in order, ``workers`` processes computing ahead.

    The pool is started before the chunk is planned so that the workers' imports overlap the
    planning. At most ``workers + 1`` prepared SPWs wait besides the one being written, each in
    its own shared-memory slot, so memory stays bounded while the writer (the main process) and
    the workers overlap.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            self._warm = [self.pool.submit(_warm_up) for _ in range(workers)]
        self.slots: list[Slot] = []

    def run(self, plan: ChunkPlan, frames: list, ra0: float, dec0: float, before_first=None):
        """Yield the prepared SPWs in order; ``before_first()`` runs here while the workers start on them."""
        n_chan = plan.n_chan
        if self.pool is None:
            if before_first:
                before_first()
            for k in range(N_SUBBANDS):
                yield prepare_spw(*spw_inputs(plan, k), k, n_chan, frames[k], ra0, dec0)
            return
        nblts = len(plan.template.time_jd)
        self.slots = [Slot(nblts, n_chan) for _ in range(self.workers + 2)]
        free = list(range(len(self.slots)))
        pending = {}  # k -> (future, slot index)

        def submit_ahead(k, limit=self.workers + 1):
            while free and len(pending) < limit and k + len(pending) < N_SUBBANDS:
                nxt = k + len(pending)
                i = free.pop(0)
                pending[nxt] = (
                    self.pool.submit(
                        prepare_spw, *spw_inputs(plan, nxt), nxt, n_chan, frames[nxt], ra0, dec0, self.slots[i].name
                    ),
                    i,
                )

        submit_ahead(0, limit=1)  # one worker starts on SPW 0, the other is free for before_first's task
        if before_first:
            before_first()
        for k in range(N_SUBBANDS):
            submit_ahead(k)
            future, i = pending.pop(k)
            spw = future.result()
            spw.update(data=self.slots[i].data, flags=self.slots[i].flags)
            yield spw
            del spw
            free.append(i)

    def call(self, fn, *args):
        """``fn(*args)`` in a worker (a future), or here when there is no pool (its result, as a done future)."""
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        from concurrent.futures import Future

        done = Future()
        done.set_result(fn(*args))
        return done

    def close(self) -> None:
        """Shut the pool down (pending SPWs cancelled) and free the shared-memory slots."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for slot in self.slots:
            slot.close()
            slot.shm.unlink()
        self.slots = []
