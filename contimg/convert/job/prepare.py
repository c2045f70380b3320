"""Preparing one SPW from its subband file alone: read, rotate to the field, flag, weigh (a worker's job).

Everything here runs in a worker process (or the job's own when it runs alone); the result goes
to the writer through a shared-memory slot, never pickled.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from contimg.convert.header import ConversionError, SubbandInput
from contimg.convert.job.geometry import geometry
from contimg.convert.plan import ChunkPlan
from contimg.convert.uvh5read import as_groups, channels_ascending, read_chunk_ordered
from contimg.core.instrument import N_SUBBANDS

__all__ = ["Slot", "prepare_spw", "spw_inputs"]


class Slot:
    """One shared-memory block holding a prepared SPW's DATA and FLAG.

    The ~100 MB per SPW thus pass from worker to writer without pickling. The main process creates
    (``name=None``) and unlinks the slots; workers only attach to them by name.
    """

    def __init__(self, nblts: int, n_chan: int, name: str | None = None):
        from multiprocessing import shared_memory

        self.shape = (nblts, n_chan, 2)
        n = nblts * n_chan * 2
        self.shm = shared_memory.SharedMemory(name=name, create=name is None, size=n * 9 if name is None else 0)
        self.data = np.ndarray(self.shape, np.complex64, buffer=self.shm.buf)
        self.flags = np.ndarray(self.shape, np.bool_, buffer=self.shm.buf, offset=n * 8)

    @property
    def name(self) -> str:
        """The shared-memory block's name, by which a worker attaches to it."""
        return self.shm.name

    def close(self) -> None:
        """Drop the arrays and detach from the block (it is not unlinked)."""
        del self.data, self.flags
        try:
            self.shm.close()
        except BufferError:  # an array on it still referenced (a traceback); freed with the process
            pass


def prepare_spw(
    src: SubbandInput,
    present: bool,
    k: int,
    n_chan: int,
    frames: tuple,
    ra0: float,
    dec0: float,
    slot_name: str | None = None,
) -> dict:
    """Everything SPW ``k`` (subband ``15 - k``) writes, computed from its file alone.

    ``src`` is the subband's file, or (``present`` false: the subband is missing) its nearest
    neighbour, whose times and baselines the all-flagged rows take; ``frames`` its
    ``sky_frames`` entry. Runs in a worker process: read once, rotate with the subband's own
    times from the moving fringe-stop centre to the fixed field, flag NaN/Inf, zeros and autos,
    MS sign convention, channels ascending. DATA and FLAG go into the shared-memory slot
    ``slot_name`` (or new arrays in the result when None).

    Weights: when every row's nsamples are the same in all its channels (DSA-110's files), the
    result holds only WEIGHT (per row and pol: that value, 0 where all channels are flagged) and
    ``wspec`` is None; otherwise also WEIGHT_SPECTRUM (nsamples, 0 where flagged), and WEIGHT is
    the mean over the unflagged channels.
    """
    nblts = len(src.time_jd)
    args = (src, present, k, n_chan, frames, ra0, dec0)
    if slot_name is None:
        data, flags = np.empty((nblts, n_chan, 2), np.complex64), np.empty((nblts, n_chan, 2), bool)
        return {**_prepare_into(*args, data, flags), "data": data, "flags": flags}
    slot = Slot(nblts, n_chan, slot_name)
    try:
        return _prepare_into(*args, slot.data, slot.flags)
    finally:
        slot.close()


def _prepare_into(
    src: SubbandInput,
    present: bool,
    k: int,
    n_chan: int,
    frames: tuple,
    ra0: float,
    dec0: float,
    data: np.ndarray,
    flags: np.ndarray,
) -> dict:
    import h5py

    from contimg.calibrate.calavg import rotation, sigma_from_weight

    t0 = time.perf_counter()
    nblts = len(src.time_jd)
    n_nan = 0
    if present:
        desc = src.descending
        item = "Data"
        try:  # the plan probed each array's last row; a corrupt block in the middle shows only here
            with h5py.File(src.path, "r") as h5:
                item = "Data/visdata"
                vis = read_chunk_ordered(h5[item])  # complex64, (N, G, cc, Q, cp) views, file order
                item = "Data/flags"
                flags_in = read_chunk_ordered(h5[item])
                item = "Data/nsamples"
                nsamples = read_chunk_ordered(h5[item])
        except (OSError, KeyError, ValueError) as err:
            raise ConversionError(
                f"{src.path}: {item}: cannot be read ({type(err).__name__}: {err}); truncated or corrupt?"
            ) from err
        t_read = time.perf_counter() - t0
        uvw_new, w_old, w_new = geometry(src, frames, ra0, dec0)
        # MS convention: conj(vis * rot) = conj(vis) * conj(rot), channels ascending, written
        # straight into the output (this pass also puts the chunk-ordered read in row order)
        np.conjugate(channels_ascending(vis, desc), out=as_groups(data, vis))
        del vis
        np.multiply(data, rotation(w_old - w_new, np.sort(src.freqs_hz))[:, :, None], out=data)
        finite = np.isfinite(data)  # a non-finite visibility stays non-finite under a unit rotation
        if not finite.all():
            bad = np.logical_not(finite, out=finite)
            n_nan = int(np.count_nonzero(bad.view(np.uint16)))  # (blt, channel) pairs with a bad pol
            data[bad] = 0
        del finite
        # exact zeros are correlator dropouts, never data (and the NaN/Inf just zeroed)
        np.equal(data, 0, out=flags)
        f5 = as_groups(flags, flags_in)
        np.logical_or(f5, channels_ascending(flags_in, desc), out=f5)
        del flags_in, f5
        flags[src.ant1 == src.ant2] = True  # autos kept but flagged for calibration and imaging
        first = nsamples[:, :1, :1]  # channel 0 of each row and pol
        uniform = bool((nsamples == first).all())
        first = first.reshape(nblts, 2)
        if not uniform:
            nsamples = np.ascontiguousarray(channels_ascending(nsamples, desc)).reshape(nblts, n_chan, 2)
    else:  # a missing subband keeps its SPW, every row flagged
        t_read = 0.0
        uvw_new = geometry(src, frames, ra0, dec0)[0]
        data[...] = 0
        flags[...] = True
        uniform, first = True, np.zeros((nblts, 2), np.float32)
    # per (row, pol): are all channels flagged? (both pols' bools side by side in one uint16)
    all_flagged = np.bitwise_and.reduce(flags.view(np.uint16).reshape(nblts, n_chan), axis=1)
    all_flagged = all_flagged.view(np.uint8).reshape(nblts, 2).astype(bool)
    if uniform:
        wspec = None
        weight = np.where(all_flagged, np.float32(0), first).astype(np.float32)
    else:
        wspec = np.where(flags, np.float32(0), nsamples).astype(np.float32)
        n_good = n_chan - np.count_nonzero(flags, axis=1)
        weight = (wspec.sum(axis=1, dtype=np.float64) / np.maximum(n_good, 1)).astype(np.float32)
    return {
        "k": k,
        "wspec": wspec,
        "weight": weight,
        "sigma": sigma_from_weight(weight),
        "flag_row": all_flagged.all(axis=1),
        "uvw": -uvw_new,
        "n_nan": n_nan,
        "n_flagged": int(np.count_nonzero(flags)),
        "n_vis": flags.size,
        "seconds": {"read": t_read, "phase": time.perf_counter() - t0 - t_read},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def spw_inputs(plan: ChunkPlan, k: int) -> tuple[SubbandInput, bool]:
    """SPW ``k``'s file, or for a missing subband the nearest present one (times and baselines)."""
    sb = N_SUBBANDS - 1 - k
    sub = plan.subbands.get(sb)
    if sub is not None:
        return sub, True
    return plan.subbands[min(plan.subbands, key=lambda s: abs(s - sb))], False
