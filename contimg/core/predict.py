"""Visibilities of many point sources as per-antenna phasors and one matrix product per channel (pure numpy).

A baseline's fringe is the product of its two antennas' fringes: with ``d_as`` the path difference of
antenna a towards source s (metres, in whatever frame and sign the caller's geometry has) and
``e_as = exp(i k d_as)``, ``V_ij(f) = sum_s w_s(f) conj(e_is) e_js``. For each channel that is
``conj(F) F^T`` with ``F = e sqrt(w)`` -- a Hermitian rank-k update (BLAS ``cherk``, complex64):
A^2 S work per channel instead of B S complex exponentials, and no exponential per baseline at all.
The simulator predicts its sky this way; the calibration model and the imager's subtraction of
sources outside the field reuse it with their own geometry.

Exactly what the function computes is a point source at each channel's centre: no smearing within a
channel or an integration, which callers that need it get by sub-sampling.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["phasor", "point_visibilities", "run_single_threaded_blas", "worker_count"]


def phasor(phase_rad: np.ndarray) -> np.ndarray:
    """exp(i phase) in complex64 (within 2e-7), 6x faster than numpy's complex exp.

    The phase (thousands of radians) is reduced to [-pi, pi] in float64 first, so float32's vectorised
    cos and sin see small arguments: their rounding (~1e-7) is that of complex64 itself.
    """
    r = (phase_rad - 2.0 * np.pi * np.round(phase_rad / (2.0 * np.pi))).astype(np.float32)
    out = np.empty(np.shape(phase_rad), dtype=np.complex64)
    out.real = np.cos(r)
    out.imag = np.sin(r)
    return out


def point_visibilities(
    path_m: np.ndarray, k_rad_m: np.ndarray, weights: np.ndarray, ant1: np.ndarray, ant2: np.ndarray
) -> np.ndarray:
    """Visibilities (B, F), complex64: ``V_b(f) = sum_s w[f, s] conj(e[ant1_b, s]) e[ant2_b, s]``.

    Parameters
    ----------
    path_m : (A, S) float
        Each antenna's path difference towards each source, metres; ``e = exp(i k path)``.
    k_rad_m : (F,) float
        Wavenumbers 2 pi nu / c of the channels. Evenly spaced ones are stepped channel to channel
        (one complex multiply instead of a cos and a sin; 47 steps add ~3e-6 rad of rounding).
    weights : (F, S) float, >= 0
        Each source's apparent flux density per channel (Jy).
    ant1, ant2 : (B,) int
        The baselines' antenna indices into ``path_m``'s rows; any order (``ant1 > ant2`` is read from
        the Hermitian's other triangle).
    """
    from scipy.linalg.blas import cherk

    path_m = np.asarray(path_m, dtype=float)
    k = np.asarray(k_rad_m, dtype=float)
    weights = np.asarray(weights, dtype=float)
    ant1, ant2 = np.asarray(ant1), np.asarray(ant2)
    n_f = len(k)
    if weights.shape != (n_f, path_m.shape[1]):
        raise ValueError(f"weights must be (channels, sources) = {(n_f, path_m.shape[1])}, got {weights.shape}")
    if np.any(weights < 0):
        raise ValueError("weights (apparent fluxes) must be >= 0: a negative one has no square root")
    vis = np.zeros((len(ant1), n_f), dtype=np.complex64)
    if path_m.shape[1] == 0 or n_f == 0:
        return vis
    lo, hi = np.minimum(ant1, ant2), np.maximum(ant1, ant2)
    flip = ant1 > ant2
    root = np.sqrt(weights).astype(np.float32)
    steps = np.diff(k)
    even = n_f > 1 and np.allclose(steps, steps[0], rtol=1e-9, atol=0)
    e = phasor(k[0] * path_m)
    step = phasor(steps[0] * path_m) if even else None
    m = np.empty_like(e)
    # a source of weight 0 in a channel adds nothing there: the product takes only the others (a signed model
    # split into its positive and negative parts has each source in one of them per channel, not both)
    seen = root > 0
    for f in range(n_f):
        if f:
            e = e * step if even else phasor(k[f] * path_m)
        if seen[f].all():
            np.multiply(e, root[f][None, :], out=m)
            block = m
        elif seen[f].any():
            block = e[:, seen[f]] * root[f, seen[f]][None, :]
        else:
            continue
        # block.T is (S, A) in Fortran order, so no copy: its a^H a is the upper triangle of
        # conj(m) m^T = sum_s w conj(e_i) e_j, the layout OpenBLAS's cherk runs fastest on (2x the a a^H form)
        c = cherk(1.0, block.T, trans=2)
        vis[:, f] = c[lo, hi]
    vis[flip] = np.conj(vis[flip])
    return vis


def worker_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_single_threaded_blas(func, items, threads: int | None = None) -> None:
    """Call ``func(item)`` for every item on ``threads`` Python threads, BLAS held to one thread each.

    A 96 x 4400 rank-k update is too small for OpenBLAS's own threads: on a loaded 2-core machine they
    ran it 13x slower than one thread does (56 ms against 4 ms; docs/benchmarks.md, Simulator). Whole
    calls on separate threads (BLAS and numpy release the GIL) keep every core busy instead.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    n = worker_count() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with threadpool_limits(limits=1, user_api="blas"):
        if n == 1:
            for item in items:
                func(item)
            return
        with ThreadPoolExecutor(max_workers=n) as pool:
            for _ in pool.map(func, items):  # re-raises a worker's exception here
                pass
