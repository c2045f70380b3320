"""The PSF and dirty image a WSClean clean starts from, gridded with ducc0 (numpy and ducc0 only).

WSClean spends a third of a quick image on its first two inversions (the PSF, then the dirty image):
Debian's WSClean 3.1 carries ducc's w-gridder as it was in 2022, and ducc0 0.42 grids the same
visibilities about 1.7x faster. WSClean starts from images handed to it (``-reuse-psf``,
``-reuse-dirty``) and runs the major cycles itself, so the image job makes these two here, on the
imaging copy's arrays while they are still in memory. They follow WSClean's conventions, checked
against WSClean's own images of the same copy (tests/test_gridding.py):

- Stokes I is (XX + YY) / 2 with weight 4 min(w_XX, w_YY) (the first and last correlations: XX and
  YY, or RR and LL); a sample flagged in either, non-finite, or on an autocorrelation is left out;
- images are (y, x) as FITS stores them, RA increasing to the left, the phase centre at pixel
  (N / 2, N / 2) counted from 0; the dirty image in Jy/beam (divided by the weight sum), the PSF 1 at
  the centre;
- with several output channels (``-channels-out``), one PSF and dirty image per output channel, of the
  channels WSClean puts there (:func:`output_channel_edges`), each normalised by its own weights;
- the header keywords WSClean reads back: the weight sum (WSCIMGWG, WSCNORMF, WSCVWSUM), the number
  of visibilities (WSCNVIS) and the weight sum over the largest weight (WSCENVIS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contimg.core.constants import C_M_S

__all__ = ["InitialImages", "stokes_i", "initial_images", "channel_images", "output_channel_edges", "wsclean_keywords"]


@dataclass(frozen=True)
class InitialImages:
    """The PSF and dirty image made by :func:`initial_images`, with the weight figures WSClean needs.

    Attributes
    ----------
    psf : numpy.ndarray
        (N, N) float32, 1 at pixel (N / 2, N / 2).
    dirty : numpy.ndarray
        (N, N) float32, Jy/beam.
    weight_sum : float
        The sum of the Stokes I weights of the samples gridded.
    n_vis : int
        The number of samples (row, channel) with a non-zero weight.
    max_weight : float
        The largest Stokes I weight of a sample.
    """

    psf: np.ndarray  # (N, N) float32, 1 at (N / 2, N / 2)
    dirty: np.ndarray  # (N, N) float32, Jy/beam
    weight_sum: float
    n_vis: int
    max_weight: float


def stokes_i(
    data: np.ndarray, weight: np.ndarray, flags: np.ndarray, cross: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(vis, weight), each (row, chan): WSClean's Stokes I of ``data``, ``weight`` and ``flags``.

    The inputs are (row, chan, pol); only rows where ``cross`` (not autocorrelations) count, and the
    weight is 0 where a sample is left out.
    """
    a, b = 0, data.shape[2] - 1
    vis = 0.5 * (data[..., a] + data[..., b])
    good = ~(flags[..., a] | flags[..., b]) & cross[:, None] & np.isfinite(vis)
    w = np.where(good, 4.0 * np.minimum(weight[..., a], weight[..., b]), 0.0).astype(np.float32)
    return np.where(good, vis, 0).astype(np.complex64), w


def initial_images(parts: list, size: int, cell_arcsec: float, accuracy: float, threads: int) -> InitialImages | None:
    """The PSF and dirty image of ``parts`` on a ``size`` x ``size`` grid of ``cell_arcsec`` pixels.

    The one-plane case of :func:`channel_images` (every channel in one image): see there.
    """
    made = channel_images(parts, size, cell_arcsec, accuracy, threads, 1)
    return None if made is None else made[0]


def output_channel_edges(freqs_hz: np.ndarray, channels_out: int) -> list[tuple[float, float]]:
    """(lowest, highest) frequency of each of WSClean's ``channels_out`` output channels, in Hz.

    WSClean sorts the distinct channel frequencies of the whole MS (every spectral window) and gives
    output channel k the ones with index from k n / N to (k + 1) n / N - 1 (integer division; n of them,
    N output channels), low frequencies first.

    Raises
    ------
    ValueError
        When there are fewer distinct channels than ``channels_out``.
    """
    unique = np.unique(np.asarray(freqs_hz, dtype=np.float64))
    n = unique.size
    if channels_out < 1 or n < channels_out:
        raise ValueError(f"{n} distinct channel frequencies cannot make {channels_out} output channels")
    return [
        (float(unique[k * n // channels_out]), float(unique[(k + 1) * n // channels_out - 1]))
        for k in range(channels_out)
    ]


def channel_images(
    parts: list, size: int, cell_arcsec: float, accuracy: float, threads: int, channels_out: int
) -> tuple[InitialImages, ...] | None:
    """The PSF and dirty image of each of WSClean's ``channels_out`` output channels of ``parts``.

    Each is on a ``size`` x ``size`` grid of ``cell_arcsec`` pixels, w-gridded to ``accuracy`` (ducc0's
    epsilon, as WSClean's -wgridder-accuracy) on ``threads``, from the channels WSClean puts in that
    output channel (:func:`output_channel_edges`), normalised by that channel's own weight sum, as
    WSClean's ``PREFIX-000k-psf.fits`` / ``-dirty.fits`` are. A part is (uvw (3, row) in metres, channel
    frequencies (chan,) in Hz, data, weights and flags (row, chan, pol), cross (row,)); parts on
    different channels add. None when an output channel has nothing unflagged, or when a sample lies
    beyond the grid's uv extent (1 / (2 pixels)), which WSClean leaves out: WSClean then makes its own.
    """
    import ducc0

    # ducc's image has its centre at pixel n / 2 and runs through (l, m) -> (-l, -m) for the MS's uvw
    # sign: one extra pixel each side lets the N x N FITS plane (centre N / 2) be cut out reversed
    n = size + 2
    pixel = np.radians(cell_arcsec / 3600.0)
    all_freqs = np.concatenate([np.asarray(p[1], np.float64) for p in parts]) if parts else np.zeros(0)
    if all_freqs.size < channels_out:
        return None
    edges = output_channel_edges(all_freqs, channels_out)
    sums = [[0.0, 0.0, 0.0, 0, 0.0] for _ in edges]  # psf, dirty, weight sum, n_vis, max weight per channel
    for uvw, freqs, data, weight, flags, cross in parts:
        vis, w = stokes_i(data, weight, flags, cross)
        if not w.any():
            continue
        freqs = np.asarray(freqs, np.float64)
        used = w.any(axis=1)
        longest_wl = np.abs(np.asarray(uvw)[:2, used]).max() * np.max(freqs) / C_M_S
        if 2.0 * longest_wl * pixel >= 1.0:
            return None
        uvw_rows = np.ascontiguousarray(np.asarray(uvw, np.float64).T)
        for (lo, hi), acc in zip(edges, sums, strict=True):
            chans = np.flatnonzero((freqs >= lo) & (freqs <= hi))
            if chans.size == 0:
                continue
            wk = np.ascontiguousarray(w[:, chans])
            if not wk.any():
                continue
            vk = np.ascontiguousarray(vis[:, chans])
            grid = dict(
                uvw=uvw_rows,
                freq=np.ascontiguousarray(freqs[chans]),
                wgt=wk,
                npix_x=n,
                npix_y=n,
                pixsize_x=pixel,
                pixsize_y=pixel,
                epsilon=accuracy,
                do_wgridding=True,
                divide_by_n=True,
                nthreads=threads,
            )
            acc[0] = acc[0] + ducc0.wgridder.experimental.vis2dirty(vis=np.ones_like(vk), **grid)
            acc[1] = acc[1] + ducc0.wgridder.experimental.vis2dirty(vis=vk, **grid)
            acc[2] += float(wk.sum(dtype=np.float64))
            acc[3] += int(np.count_nonzero(wk))
            acc[4] = max(acc[4], float(wk.max()))
    if any(acc[2] <= 0 for acc in sums):
        return None

    def fits_plane(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image.T[size + 1 : 1 : -1, 1 : size + 1])

    centre = size // 2
    made = []
    for psf, dirty, weight_sum, n_vis, max_weight in sums:
        psf, dirty = fits_plane(psf), fits_plane(dirty)
        made.append(
            InitialImages(
                psf=(psf / psf[centre, centre]).astype(np.float32),
                dirty=(dirty / weight_sum).astype(np.float32),
                weight_sum=weight_sum,
                n_vis=n_vis,
                max_weight=max_weight,
            )
        )
    return tuple(made)


def wsclean_keywords(images: InitialImages) -> dict:
    """The FITS keywords WSClean reads from a PSF or dirty image it is asked to reuse."""
    return {
        "WSCIMGWG": images.weight_sum,
        "WSCNORMF": images.weight_sum,
        "WSCVWSUM": images.weight_sum,
        "WSCNVIS": float(images.n_vis),
        "WSCENVIS": images.weight_sum / images.max_weight,
    }
