"""Catalogue sources outside the imaged field, predicted through the primary beam and subtracted (issue #22).

A source beyond the image's edge cannot be cleaned (clean puts components only inside the image), so
its sidelobes stay in the image as stripes and spurious islands: at full size 59 islands of 5-13
sigma, all near ~0.1 Jy sources at or beyond the edge (docs/benchmarks.md). Before imaging, the image
job subtracts from the calibrated visibilities every reference-catalogue source outside the field whose
apparent flux could leave sidelobes above the noise, each seen through the Airy beam at its own
integration's time (the sources drift through the beam during a chunk).

Inside the field the same drift leaves a part clean cannot model either: a bright source's apparent
flux changes within the chunk (the calibrator 1.3 deg out falls from 0.95 to 0.64 of its flux in the
demo's first chunk after its transit), and a constant clean component cannot fit a time-varying one.
Its sidelobes held a sparse chunk at 2.5-2.9x the radiometer's rms whatever clean did
(docs/benchmarks.md). For those sources only the varying part, ``S (A(t) - <A>_t)``, is subtracted:
the image keeps each source at its chunk-averaged apparent flux (what the primary-beam correction's
drift-averaged beam expects), clean models that constant part, and a beam-model error enters only
through the beam's change over the chunk.

The same holds across the band: beyond the beam's half-power radius the beam steepens a source's
apparent spectrum, and clean's one component per output channel (a spectral polynomial through them)
is flat within each channel. The deviation within a 94 MHz output channel left islands of 5-7 sigma
270" north and south of 0.1-0.2 Jy sources there at full size (docs/benchmarks.md). So, given the
imager's output channels, the constant part kept is each source's mean over the chunk and its output
channel, and the varying part subtracted, ``S(f) A(t, f) - <S A>_(t, channel)``, covers both.

Pure numpy and astropy (no CASA): ``select_outside`` picks the sources, ``model_visibilities`` predicts
them for a block of Measurement Set rows with contimg.core.predict.point_visibilities. Geometry is
the MS's (docs/conventions.md): ``UVW = uvw(ANTENNA1) - uvw(ANTENNA2)`` in metres towards the phase
centre, and a source at direction cosines (l, m, n) gives ``S A exp(+2 pi i (u l + v m + w (n - 1)) nu / c)``.
Each integration's per-antenna uvw are solved from its rows' UVW by least squares with one antenna
held at 0 (exact for a consistent geometry: only differences enter a visibility).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from contimg.core.beam import C_M_S, airy_power
from contimg.core.predict import point_visibilities

__all__ = [
    "EDGE_MARGIN_DEG",
    "MAX_RADIUS_DEG",
    "SIDELOBE_PEAK_OVER_RMS",
    "OutsideSources",
    "antenna_uvw",
    "beam_offsets_rad",
    "chunk_samples",
    "direction_cosines",
    "min_apparent_flux_jy",
    "model_visibilities",
    "seen_through_beam",
    "output_channel_of",
    "select_outside",
]

# A source closer than this to the image's edge counts as outside: its restored main lobe (45" x 11" at
# DSA-110's resolution) and first PSF ring reach past the edge, where clean cannot put components, and
# sky QA already ignores the outer band (tests/sky_figures.py: 20 px, ~80"). 0.02 deg = 72": 1.6 major axes.
EDGE_MARGIN_DEG = 0.02
# The Airy beam's second null is at 5.9 deg at 1.5 GHz (6.3 deg at 1.31 GHz): the first sidelobe (1.7 % of
# the peak power) ends there. Beyond, the second sidelobe (0.4 %) would need a 10 Jy source to reach 40 mJy;
# the threshold below still decides, this only bounds the search.
MAX_RADIUS_DEG = 6.5
# A point source of apparent flux S far outside the field leaves sidelobes of rms ~ S / sqrt(2 N_b) in the image
# (a PSF made of 2 N_b uv samples, the baselines and their conjugates, with random phases at large offsets);
# their peaks over the ~1e5 beams of an image reach ~4-5 times that rms. Earth rotation and the band spread the
# far sidelobes over more independent samples, so this overestimates them (more sources are subtracted, which
# costs only time).
SIDELOBE_PEAK_OVER_RMS = 5.0
N_MEAN_SAMPLES = 12  # times and frequencies the apparent flux is averaged over (midpoints of equal parts)


@dataclass(frozen=True)
class OutsideSources:
    """The catalogue sources to subtract and the geometry to predict them with (picklable: it goes to workers).

    Arrays are (S,); fluxes at ``ref_freq_hz`` with S ~ nu^alpha. ``apparent_jy`` is each source's flux
    through the beam at the chunk's middle and band centre (what the report sums).
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    apparent_jy: np.ndarray
    centre_ra_deg: float  # the MS's phase centre (ICRS)
    centre_dec_deg: float
    pointing_dec_deg: float  # the beam's declination (apparent), on the meridian
    ref_freq_hz: float = 1.4e9
    min_apparent_jy: float = 0.0  # the threshold they were selected with
    half_side_deg: float = 0.0  # the image's half-side they lie beyond (less the margin)
    # (S,) bool: True for a source inside the field of which only the drift's varying part is subtracted
    # (``S (A(t) - <A>_t)``); None: none is
    varying_only: np.ndarray | None = None
    # (T,) MJD seconds and (T, S) radians: each source's angle from the beam centre at the chunk's row times,
    # worked out once by the job's process (astropy's first transform reads the IERS tables: ~0.6 s, which
    # each averaging worker would otherwise spend again); None: model_visibilities works them out
    beam_times_s: np.ndarray | None = None
    beam_offsets_rad: np.ndarray | None = None
    # The imager's output channels (K + 1 edges, Hz, ascending) and (K, S) each source's mean apparent flux over the
    # chunk and each output channel's part of the band (Jy). Set: a varying_only source enters the model as its
    # apparent flux less the mean of the output channel it is in (see select_outside). None: less its own channel's
    # mean over the times of the rows predicted (the drift alone).
    channel_edges_hz: np.ndarray | None = None
    channel_mean_jy: np.ndarray | None = None

    def __len__(self) -> int:
        """The number of sources."""
        return len(self.ra_deg)

    def varying(self) -> np.ndarray:
        """(S,) bool: which sources have only their varying part subtracted."""
        return np.zeros(len(self), bool) if self.varying_only is None else np.asarray(self.varying_only, bool)

    def summary(self) -> dict:
        """What the image report records: counts, summed apparent flux, the threshold and the field.

        ``n_sources`` and the fluxes are the sources outside the field; ``n_drifting`` the sources inside
        it whose varying part was subtracted, ``drifting_apparent_jy`` their summed mean apparent flux.
        """
        vary = self.varying()
        out_app = self.apparent_jy[~vary]
        return {
            "n_sources": int(np.count_nonzero(~vary)),
            "apparent_flux_jy": float(np.sum(out_app)),
            "max_apparent_jy": float(np.max(out_app, initial=0.0)),
            "min_apparent_jy": self.min_apparent_jy,
            "half_side_deg": self.half_side_deg,
            "n_drifting": int(np.count_nonzero(vary)),
            "drifting_apparent_jy": float(np.sum(self.apparent_jy[vary])),
        }


def direction_cosines(ra_deg, dec_deg, ra0_deg: float, dec0_deg: float) -> np.ndarray:
    """(S, 3): l, m, n - 1 of the directions relative to (ra0, dec0) (SIN projection; l east, m north)."""
    ra, dec = np.radians(np.asarray(ra_deg, float)), np.radians(np.asarray(dec_deg, float))
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    dra = ra - ra0
    l_ = np.cos(dec) * np.sin(dra)
    m_ = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(dra)
    n_ = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(dra)
    return np.column_stack([l_, m_, n_ - 1.0])


def min_apparent_flux_jy(expected_noise_jy: float, n_baselines: int) -> float:
    """The apparent flux above which a source outside the field may leave sidelobes above the image noise.

    A source of apparent flux S leaves far sidelobes of peak ~ SIDELOBE_PEAK_OVER_RMS S / sqrt(2 N_b)
    (see the constant); they stay below the noise sigma when S < sigma sqrt(2 N_b) / SIDELOBE_PEAK_OVER_RMS.
    Near the edge the PSF's inner sidelobes (10-20 %) are higher still, so everything above this goes.
    """
    if expected_noise_jy <= 0 or n_baselines < 1:
        raise ValueError(f"need a positive noise and baselines, got {expected_noise_jy} Jy, {n_baselines}")
    return float(expected_noise_jy * np.sqrt(2.0 * n_baselines) / SIDELOBE_PEAK_OVER_RMS)


def beam_offsets_rad(ra_deg, dec_deg, times_mjd, pointing_dec_deg: float) -> np.ndarray:
    """(T, S): each source's angle from the beam centre, (HA = 0, pointing dec), at each time.

    In the hour-angle frame of date (apparent places, no refraction), as the simulator and the dish see
    them: the ICRS separation from the meridian's ICRS direction differs by the differential aberration
    (2e-4 of a source's beam power at 2-6 deg).
    """
    from astropy import units as u
    from astropy.coordinates import HADec, SkyCoord
    from astropy.time import Time

    from contimg.core.instrument import SITE

    t = Time(np.atleast_1d(times_mjd), format="mjd", scale="utc")
    frame = HADec(obstime=t[:, None], location=SITE, pressure=0 * u.hPa)
    ra, dec = np.asarray(ra_deg, float), np.asarray(dec_deg, float)
    src = SkyCoord(ra=ra[None, :] * u.deg, dec=dec[None, :] * u.deg).transform_to(frame)
    ptg = SkyCoord(ha=np.zeros(src.shape) * u.deg, dec=np.full(src.shape, pointing_dec_deg) * u.deg, frame=frame)
    return src.separation(ptg).rad


def seen_through_beam(catalog, idx, theta_rad: np.ndarray, freqs_hz) -> np.ndarray:
    """(T, F, S) Jy: the sources ``idx`` of ``catalog`` as the beam sees them, at each time and frequency.

    Their flux at each of ``freqs_hz`` (extrapolated with their spectral indices) times the Airy beam's power at
    their angles ``theta_rad`` (T, S) from its centre.
    """
    freqs = np.atleast_1d(np.asarray(freqs_hz, float))
    flux, alpha = np.asarray(catalog.flux_jy, float)[idx], np.asarray(catalog.spectral_index, float)[idx]
    spec = flux[None, :] * (freqs[:, None] / catalog.ref_freq_hz) ** alpha[None, :]  # (F, S)
    return airy_power(theta_rad[:, None, :], freqs[None, :, None]) * spec[None]


def select_outside(
    catalog,
    centre_ra_deg: float,
    centre_dec_deg: float,
    pointing_dec_deg: float,
    times_mjd,
    freqs_hz,
    half_side_deg: float,
    min_apparent_jy: float,
    margin_deg: float = EDGE_MARGIN_DEG,
    max_radius_deg: float = MAX_RADIUS_DEG,
    drifting: bool = False,
    beyond_edge: bool = True,
    channel_edges_hz=None,
) -> OutsideSources:
    """The sources of ``catalog`` beyond the image's edge whose apparent flux reaches ``min_apparent_jy``.

    With ``drifting``, also the sources inside the field whose apparent flux varies over ``times_mjd`` by
    an rms (over those times and ``freqs_hz``) of at least ``min_apparent_jy``, marked ``varying_only``:
    the varying part is a source clean cannot model, and its sidelobes scale with that rms as a source
    outside scales with its flux.

    Parameters
    ----------
    catalog : contimg.core.refcat.ReferenceCatalog
        Positions (ICRS), fluxes at its ``ref_freq_hz``, spectral indices. Gaussian sources are taken
        as points: beyond the field their size (seconds of arc) is far below what their sidelobes resolve.
    centre_ra_deg, centre_dec_deg : float
        The image's centre (the MS phase centre).
    pointing_dec_deg : float
        The beam's declination on the meridian.
    times_mjd : array
        Times at which the beam is evaluated (e.g. midpoints of equal parts of the chunk); the apparent flux is
        the mean over them and over ``freqs_hz``.
    freqs_hz : array
        Frequencies of the band (a few suffice).
    half_side_deg : float
        Half the image's side; a source is outside when max(|l|, |m|) > sin(half_side - margin).
    min_apparent_jy : float
        min_apparent_flux_jy's threshold.
    margin_deg, max_radius_deg : float
        EDGE_MARGIN_DEG and MAX_RADIUS_DEG by default.
    drifting : bool
        Whether to add the sources inside the field whose drift through the beam matters.
    beyond_edge : bool
        Whether to keep the sources beyond the edge (False: only the drifting ones, with ``drifting``).
    channel_edges_hz : array, optional
        The imager's output channels (K + 1 ascending edges). Given, a drifting source's varying part is its
        deviation from its mean over the times and the output channel's part of ``freqs_hz``: what clean, with
        one constant component per output channel (or a spectral polynomial through them), cannot model. Beyond
        the primary beam's half-power radius the beam steepens a source's apparent spectrum so much that the
        deviation within a 94 MHz output channel left islands of 5-7 sigma at full size (docs/benchmarks.md).
        None: the deviation from its mean over the times at each frequency (the drift alone).
    """
    if half_side_deg <= margin_deg:
        raise ValueError(f"half_side_deg {half_side_deg} must exceed the margin {margin_deg}")
    lmn = direction_cosines(catalog.ra_deg, catalog.dec_deg, centre_ra_deg, centre_dec_deg)
    front = lmn[:, 2] > -1.0  # n > 0: the same hemisphere as the centre
    edge = np.sin(np.radians(half_side_deg - margin_deg))
    outside = front & (np.maximum(np.abs(lmn[:, 0]), np.abs(lmn[:, 1])) > edge)
    theta = beam_offsets_rad(catalog.ra_deg, catalog.dec_deg, times_mjd, pointing_dec_deg)  # (T, S)
    near = np.all(theta <= np.radians(max_radius_deg), axis=0)
    cand = np.flatnonzero(front & near if drifting else outside & near)
    freqs = np.atleast_1d(np.asarray(freqs_hz, float))
    seen = seen_through_beam(catalog, cand, theta[:, cand], freqs)  # (T, F, S) Jy
    apparent = np.mean(seen, axis=(0, 1)) if cand.size else np.zeros(0)
    varying_rms = np.sqrt(np.mean((seen - _mean_per_channel(seen, freqs, channel_edges_hz)) ** 2, axis=(0, 1)))
    is_outside = outside[cand]
    keep = np.where(is_outside, beyond_edge & (apparent >= min_apparent_jy), varying_rms >= min_apparent_jy)
    idx = cand[keep]
    return OutsideSources(
        ra_deg=np.asarray(catalog.ra_deg, float)[idx],
        dec_deg=np.asarray(catalog.dec_deg, float)[idx],
        flux_jy=np.asarray(catalog.flux_jy, float)[idx],
        spectral_index=np.asarray(catalog.spectral_index, float)[idx],
        apparent_jy=apparent[keep],
        varying_only=~is_outside[keep],
        centre_ra_deg=float(centre_ra_deg),
        centre_dec_deg=float(centre_dec_deg),
        pointing_dec_deg=float(pointing_dec_deg),
        ref_freq_hz=float(catalog.ref_freq_hz),
        min_apparent_jy=float(min_apparent_jy),
        half_side_deg=float(half_side_deg),
    )


def output_channel_of(freqs_hz, channel_edges_hz) -> np.ndarray:
    """The output channel (0 .. K - 1) each frequency falls in, given the K + 1 ascending edges (the ends inclusive)."""
    edges = np.asarray(channel_edges_hz, float)
    return np.clip(np.searchsorted(edges, np.asarray(freqs_hz, float), side="right") - 1, 0, len(edges) - 2)


def _mean_per_channel(seen: np.ndarray, freqs: np.ndarray, channel_edges_hz) -> np.ndarray:
    """(T, F, S) apparent fluxes' mean over the times and, with ``channel_edges_hz``, each output channel's frequencies.

    Returned broadcastable against ``seen``: what a source's varying part is measured from.
    """
    if channel_edges_hz is None:
        return seen.mean(axis=0, keepdims=True)
    which = output_channel_of(freqs, channel_edges_hz)
    out = np.empty((1, *seen.shape[1:]))
    for k in np.unique(which):
        out[0, which == k] = seen[:, which == k].mean(axis=(0, 1))
    return out


def _uvw_solver(ant1: np.ndarray, ant2: np.ndarray, n_ant: int):
    """(cross, free, pinv): the least-squares solution of ``uvw[b] = U[ant1[b]] - U[ant2[b]]`` for this layout.

    ``U[free] = pinv @ uvw[cross]``; the first antenna that has a cross-correlation is held at 0, and
    antennas without one stay 0. One pseudo-inverse serves every time with the same baselines.
    """
    cross = ant1 != ant2
    a1, a2 = ant1[cross], ant2[cross]
    present = np.unique(np.concatenate([a1, a2]))
    free = present[1:]  # present[0] is the reference, at 0
    col = np.full(n_ant, -1)
    col[free] = np.arange(free.size)
    m = np.zeros((a1.size, free.size))
    rows = np.arange(a1.size)
    m[rows[col[a1] >= 0], col[a1][col[a1] >= 0]] = 1.0
    m[rows[col[a2] >= 0], col[a2][col[a2] >= 0]] = -1.0
    return cross, free, np.linalg.pinv(m)


def antenna_uvw(uvw: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, n_ant: int, solver=None) -> np.ndarray:
    """(n_ant, 3) per-antenna uvw with ``uvw[b] = U[ant1[b]] - U[ant2[b]]`` (least squares; rows of one time).

    The first antenna that has a cross-correlation is held at 0; antennas without one stay 0.
    ``solver`` is _uvw_solver's for these ``ant1``, ``ant2`` (made here when None).
    """
    ant1, ant2 = np.asarray(ant1), np.asarray(ant2)
    out = np.zeros((n_ant, 3))
    if not np.any(ant1 != ant2):
        return out
    cross, free, pinv = solver if solver is not None else _uvw_solver(ant1, ant2, n_ant)
    out[free] = pinv @ np.asarray(uvw, float)[cross]
    return out


def model_visibilities(
    sources: OutsideSources,
    time_s: np.ndarray,
    uvw: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    freqs_hz: np.ndarray,
) -> np.ndarray:
    """Model (rows, channels) complex64 of ``sources`` for Measurement Set rows, in the MS's convention.

    Parameters
    ----------
    sources : OutsideSources
    time_s : (R,) float
        The rows' TIME (MJD seconds, UTC): the beam and the per-antenna uvw are taken per distinct time.
    uvw : (R, 3) float
        The rows' UVW (metres, towards ``sources``' centre).
    ant1, ant2 : (R,) int
    freqs_hz : (F,) float
        The rows' channel frequencies: each channel's centre is predicted (no smearing inside a
        channel or an integration, as the correlator's own channels and integrations are the finest
        the data hold).

    Returns
    -------
    (R, F) complex64, identical for XX and YY (an unpolarized source of flux S gives S in each).
    A ``varying_only`` source enters with ``S A(t, f)`` less its ``channel_mean_jy`` for the output channel of f;
    without those, with ``S (A(t) - <A>)``, ``<A>`` its beam's mean over the distinct
    times of ``time_s`` per channel: the rows must hold the chunk's every integration (a whole window).
    """
    time_s = np.asarray(time_s, float)
    ant1, ant2 = np.asarray(ant1), np.asarray(ant2)
    freqs = np.asarray(freqs_hz, float)
    out = np.zeros((len(time_s), len(freqs)), np.complex64)
    if len(sources) == 0 or len(time_s) == 0:
        return out
    n_ant = int(max(ant1.max(), ant2.max())) + 1
    lmn = direction_cosines(sources.ra_deg, sources.dec_deg, sources.centre_ra_deg, sources.centre_dec_deg)
    times, which = np.unique(time_s, return_inverse=True)
    theta = _offsets_at(sources, times)
    spec = sources.flux_jy[None, :] * (freqs[:, None] / sources.ref_freq_hz) ** sources.spectral_index[None, :]
    k = 2.0 * np.pi * freqs / C_M_S
    vary = sources.varying()
    constant = np.zeros((len(freqs), len(sources)))  # (F, S) Jy: the part of varying_only sources left in the data
    if vary.any() and sources.channel_mean_jy is not None:
        constant[:, vary] = np.asarray(sources.channel_mean_jy)[output_channel_of(freqs, sources.channel_edges_hz)][
            :, vary
        ]
    elif vary.any():
        constant[:, vary] = spec[:, vary] * np.mean(airy_power(theta[:, None, vary], freqs[None, :, None]), axis=0)
    solvers = {}  # one pseudo-inverse per baseline layout (every integration has the same, normally)
    for t in range(len(times)):
        rows = np.flatnonzero(which == t)
        key = (ant1[rows].tobytes(), ant2[rows].tobytes())
        if key not in solvers and np.any(ant1[rows] != ant2[rows]):
            solvers[key] = _uvw_solver(ant1[rows], ant2[rows], n_ant)
        u_ant = antenna_uvw(uvw[rows], ant1[rows], ant2[rows], n_ant, solvers.get(key))
        # e_a = exp(i k path_a) with path_a = -U_a . (l, m, n - 1): conj(e_a1) e_a2 = exp(+i k UVW . (l, m, n - 1))
        path = -(u_ant @ lmn.T)
        weights = spec * airy_power(theta[t][None, :], freqs[:, None]) - constant  # (F, S)
        out[rows] = _signed_point_visibilities(path, k, weights, ant1[rows], ant2[rows])
    return out


def _offsets_at(sources: OutsideSources, times_s: np.ndarray) -> np.ndarray:
    """(T, S) the sources' angles from the beam centre at ``times_s``: the ones they carry, else worked out."""
    known = sources.beam_times_s
    if known is not None and sources.beam_offsets_rad is not None:
        at = np.searchsorted(known, times_s)
        if np.all(at < len(known)) and np.array_equal(known[at], times_s):
            return sources.beam_offsets_rad[at]
    return beam_offsets_rad(sources.ra_deg, sources.dec_deg, times_s / 86400.0, sources.pointing_dec_deg)


def _signed_point_visibilities(path: np.ndarray, k: np.ndarray, weights: np.ndarray, ant1, ant2) -> np.ndarray:
    """point_visibilities for weights of either sign: the positive sources' minus the negative sources'.

    The predict factors the fluxes' square roots, so a negative one goes in a second call, with only
    the sources that have one; point_visibilities skips a source in the channels where its weight is 0,
    so each source costs one column per channel over the two calls, not two.
    """
    pos, neg = np.any(weights > 0, axis=0), np.any(weights < 0, axis=0)
    out = point_visibilities(path[:, pos], k, np.clip(weights[:, pos], 0, None), ant1, ant2)
    if neg.any():
        out -= point_visibilities(path[:, neg], k, np.clip(-weights[:, neg], 0, None), ant1, ant2)
    return out


def chunk_samples(info: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(times MJD, frequencies Hz): the midpoints of ``n`` equal parts of the chunk's time and of its band.

    ``info`` is contimg.image.job.msread.describe_ms's (``start_mjd``, ``end_mjd``, ``freq_min_hz``,
    ``freq_max_hz``). A mean over them is the midpoint rule's mean over the chunk and the band.
    """
    mid = (np.arange(n) + 0.5) / n
    times = info["start_mjd"] + mid * (info["end_mjd"] - info["start_mjd"])
    return times, info["freq_min_hz"] + mid * (info["freq_max_hz"] - info["freq_min_hz"])


def outside_for_chunk(
    catalog,
    info: dict,
    half_side_deg: float,
    n_pol: int = 2,
    drifting: bool = False,
    beyond_edge: bool = True,
    channels_out: int = 1,
) -> OutsideSources:
    """The sources to subtract from one chunk, given the image job's description of its MS.

    ``drifting`` and ``beyond_edge`` as select_outside's: which of the two kinds are subtracted. A drifting
    source's varying part is measured from its mean over the chunk and each of the imager's ``channels_out``
    output channels (the band split as WSClean splits it), carried as ``channel_mean_jy``.

    ``info`` is contimg.image.job.msread.describe_ms's (band, times, field, pointing, cross rows,
    antennas); the sources' beam angles at its row times go with them (``beam_offsets_rad``).
    ``half_side_deg`` is half the image's side (contimg.image.rules.image_half_side_deg: ``field_fwhm`` primary-beam
    FWHMs, or less where ``max_size_px`` clips the image; a source the clip leaves out must be subtracted like any
    other beyond the edge). The threshold is min_apparent_flux_jy of the
    radiometer noise with every cross-correlation sample unflagged (flags raise the noise, so fewer
    sources would be needed: this errs towards subtracting more).
    """
    from contimg.image.gridding import output_channel_edges
    from contimg.image.rules import expected_image_noise_jy

    n_chan = len(info["freqs_hz"]) // max(info["n_spw"], 1)
    noise = expected_image_noise_jy(info["n_cross_rows"] * n_chan * n_pol, info["channel_width_hz"], info["interval_s"])
    n_ant = info["n_antennas"]
    pointing = info["pointing_dec_deg"] if info["pointing_dec_deg"] is not None else info["field_dec_deg"]
    # the mean over the chunk and band as midpoint sums: a source crosses ~0.7 deg of the beam in a chunk
    times, band = chunk_samples(info, N_MEAN_SAMPLES)
    channel_freqs = np.sort(np.asarray(info["freqs_hz"], float))
    # WSClean's split of the band (contimg.image.gridding), as K + 1 boundaries: the ends, and midway between
    # the last channel of one output channel and the first of the next
    split = output_channel_edges(channel_freqs, int(channels_out))
    between = [0.5 * (split[k][1] + split[k + 1][0]) for k in range(len(split) - 1)]
    edges = np.array([split[0][0], *between, split[-1][1]])
    chosen = select_outside(
        catalog,
        info["field_ra_deg"],
        info["field_dec_deg"],
        pointing,
        times,
        band,
        half_side_deg,
        min_apparent_flux_jy(noise, n_ant * (n_ant - 1) // 2),
        drifting=drifting,
        beyond_edge=beyond_edge,
        channel_edges_hz=edges,
    )
    if len(chosen) == 0:
        return chosen
    row_times = np.asarray(info["times_s"], float)
    offsets = beam_offsets_rad(chosen.ra_deg, chosen.dec_deg, row_times / 86400.0, pointing)
    # each source's mean apparent flux per output channel, over the chunk's rows and every channel of the band
    # (summed a time at a time: the whole (time, channel, source) array is ~20 MB, its formula's temporaries 5x that)
    spec = chosen.flux_jy[None, :] * (channel_freqs[:, None] / chosen.ref_freq_hz) ** chosen.spectral_index[None, :]
    which = output_channel_of(channel_freqs, edges)
    groups = [which == k for k in range(len(edges) - 1)]
    sums = np.zeros((len(groups), len(chosen)))
    for at_t in offsets:
        seen = airy_power(at_t[None, :], channel_freqs[:, None]) * spec  # (F, S)
        sums += np.stack([seen[g].sum(axis=0) for g in groups])
    means = sums / (len(offsets) * np.maximum([g.sum() for g in groups], 1))[:, None]
    return replace(
        chosen, beam_times_s=row_times, beam_offsets_rad=offsets, channel_edges_hz=edges, channel_mean_jy=means
    )
