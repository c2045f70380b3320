"""Reading a UVH5 data array fast, in the order its chunks lie on disk (h5py and numpy only).

The correlator's files are chunked a few channels and one pol wide; reading them whole scatters
every chunk element by element into (blt, chan, pol) order (3-15x slower than the bytes warrant).
:func:`read_chunk_ordered` reads slabs one chunk wide instead and hands back a view; the first
numpy pass over the data (which reads it anyway) does the reordering.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_groups", "channels_ascending", "read_chunk_ordered"]


def read_chunk_ordered(dset) -> np.ndarray:
    """A UVH5 data array (Nblts, [1,] Nfreqs, Npols) as a view (Nblts, G, cc, Q, cp).

    Element ``[n, g, i, q, j]`` is row ``n``, channel ``g * cc + i``, pol ``q * cp + j``; the
    dataset is read chunk column by chunk column (``cc`` channels, ``cp`` pols: its chunk shape),
    each slab landing as one contiguous run. Unchunked or oddly chunked data: one slab.

    Parameters
    ----------
    dset : h5py.Dataset
        Of shape (Nblts, Nfreqs, Npols) or (Nblts, 1, Nfreqs, Npols).

    Returns
    -------
    numpy.ndarray
        A view of shape (Nblts, G, cc, Q, cp) on a freshly read buffer.

    Raises
    ------
    ValueError
        If the dataset has fewer than 3 axes.
    """
    shape = dset.shape
    if len(shape) < 3:
        raise ValueError(f"{dset.name}: shape {shape}, expected (Nblts, [1,] Nfreqs, Npols)")
    n, n_f, n_p = shape[0], shape[-2], shape[-1]
    cc, cp = (dset.chunks[-2], dset.chunks[-1]) if dset.chunks else (n_f, n_p)
    if n_f % cc or n_p % cp:
        cc, cp = n_f, n_p
    g, q = n_f // cc, n_p // cp
    buf = np.empty((g, q, n) + (1,) * (len(shape) - 3) + (cc, cp), dset.dtype)
    lead = (slice(None),) * (len(shape) - 2)
    for i in range(g):
        for j in range(q):
            if g == 1 and q == 1:
                dset.read_direct(buf[0, 0])
            else:
                dset.read_direct(buf[i, j], lead + (slice(i * cc, (i + 1) * cc), slice(j * cp, (j + 1) * cp)))
    return buf.reshape(g, q, n, cc, cp).transpose(2, 0, 3, 1, 4)


def as_groups(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a`` (N, F, P), C-contiguous, viewed with the (N, G, cc, Q, cp) grouping of ``like``."""
    n, g, cc, q, cp = like.shape
    return a.reshape(n, g, cc, q, cp)


def channels_ascending(v: np.ndarray, descending: bool) -> np.ndarray:
    """A (N, G, cc, Q, cp) view with channels in ascending frequency (reversed when the file's descend)."""
    return v[:, ::-1, ::-1] if descending else v
