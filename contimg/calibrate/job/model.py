"""The solve's model of the calibrator field, predicted in numpy into MODEL_DATA (casatools; child process).

Why not CASA's ``ft`` of a component list: the averaged MS holds time bins of ~60 s phased to the
calibrator, and each bin sees the calibrator (and every field source) through the primary beam at
that bin's time -- 3-4 % apart between the chunk's middle and its ends for a source at the pointing
centre. ``ft`` has one flux per component for the whole MS; a per-bin gain would then absorb the
beam, and the image job applies the nearest bin's gain to other chunks. Here each row gets each
source's flux through the Airy beam at its own time and frequency, and a field source's fringe is
averaged over the bin's span, as the averaging did to the data. The geometry is the phase shift's
(``average._antenna_uvw``: CASA's uvw towards the calibrator, ICRS) and the sign the MS's: a source
at direction cosines (l, m, n) relative to the centre is S exp(+2 pi i (u l + v m + w (n - 1)) nu / c)
(docs/conventions.md).

How: the bin average of a source's fringe is an integral over the bin's time, done as a
Gauss-Legendre quadrature (``quadrature_order``) -- each node an instant at which the source is a point
whose fringe factorizes per antenna, so the whole model of a (bin, SPW) is one call of
``contimg.core.predict.point_visibilities`` (a cherk per channel) over the (source, node) columns,
with path = -(per-antenna uvw . lmn): exp(i k (path_a2 - path_a1)) = exp(+i k (uvw_a1 - uvw_a2) . lmn).
A Gaussian source (the taper is per baseline, not per antenna) enters as its Gauss-Hermite point
components (``contimg.core.gaussians``). The direct per-baseline sum this replaces cost ~2.6e9 complex
exponentials at full size (168 s); docs/benchmarks.md, Field model.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from contimg.calibrate.job.average import _antenna_uvw
from contimg.core.beam import airy_power
from contimg.core.constants import C_M_S
from contimg.core.gaussians import gaussian_components
from contimg.core.predict import point_visibilities, run_single_threaded_blas

__all__ = ["QUADRATURE_TOL", "bin_quadrature", "drift_averaged_beams", "quadrature_order", "write_field_model"]

# A source's fringe turns by up to ~20 rad over a 60 s bin (3.5 deg out, 2.6 km, 1.5 GHz). Its bin average
# is the integral of exp(i phi(t)) over the bin; the quadrature's nodes are chosen per source and SPW so
# that, for the largest turn over any baseline, it errs from that integral (sinc(turn / 2 pi) for a linear
# ramp) by at most 1e-3 of the source's flux -- tighter than the 0.3 % a midpoint rule would need ~80
# sub-samples of 0.75 s for, and Gauss-Legendre gets there with 9 nodes at 20 rad (6 at 10, 4 at 5).
QUADRATURE_TOL = 1e-3
# A Gaussian's Gauss-Hermite points (contimg.core.gaussians) reproduce its taper to QUADRATURE_TOL of its
# flux, or to this fraction of the calibrator's apparent flux if that is looser (both through the beam): the
# simulator's 0.1 mJy intrinsic made the 11 Gaussians among 100 field sources 190 extra points, each as
# costly in the predict as a source, for errors of 1e-5 of the calibrator.
GAUSSIAN_TOL_OF_CALIBRATOR = 1e-4
# At least two nodes even for the calibrator (no turn): the beam's curvature over the bin (~0.05 % at the
# chunk's end with one midpoint) is then integrated exactly to third order.
MIN_NODES = 2


class _Source(NamedTuple):
    """A model source in ``gaussian_components``' terms (the calibration's tuples carry no names)."""

    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float
    maj_arcsec: float = 0.0
    min_arcsec: float = 0.0
    pa_deg: float = 0.0


@cache
def _max_turn(n: int, tol: float) -> float:
    """Largest turn (rad) up to which ``n`` Gauss-Legendre nodes are within ``tol`` of the exact average.

    The average is that of exp(i phi tau) over tau in [-1/2, 1/2], sinc(phi / 2 pi); every smaller turn
    must be within ``tol`` too.
    """
    x, w = np.polynomial.legendre.leggauss(n)
    phi = np.arange(0.0, 4.0 * n + 8.0, 1e-3)
    err = np.abs(np.exp(1j * phi[:, None] * (x / 2)[None, :]) @ (w / 2) - np.sinc(phi / (2 * np.pi)))
    bad = np.flatnonzero(err > tol)
    return float(phi[bad[0] - 1]) if bad.size else float(phi[-1])


def quadrature_order(turn_rad: float, tol: float = QUADRATURE_TOL) -> int:
    """The fewest Gauss-Legendre nodes (MIN_NODES at least) for a fringe turning by up to ``turn_rad``.

    With them the mean over the bin errs by at most ``tol`` (of the source's flux) from the exact average.
    """
    if not np.isfinite(turn_rad) or turn_rad < 0:
        raise ValueError(f"a fringe's turn over a bin must be finite and >= 0 rad, got {turn_rad}")
    n = MIN_NODES
    while _max_turn(n, tol) < turn_rad:
        n += 1
    return n


def bin_quadrature(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` Gauss-Legendre nodes as fractions of the bin (in [-1/2, 1/2]) and their weights (sum 1)."""
    x, w = np.polynomial.legendre.leggauss(int(n))
    return x / 2, w / 2


def _direction_cosines(ra_deg, dec_deg, ra0_deg, dec0_deg) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    dra = ra - ra0
    lm = np.stack(
        [
            np.cos(dec) * np.sin(dra),
            np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(dra),
        ],
        axis=-1,
    )
    n = np.sqrt(np.clip(1 - (lm**2).sum(-1), 0, 1))
    return np.column_stack([lm, n - 1])  # (S, 3): l, m, n - 1


def _beam_offsets_rad(ra_deg, dec_deg, times_mjd, pointing_dec_deg) -> np.ndarray:
    """Angle (T, S) of each source from the pointing (HA = 0, pointing dec) at each time."""
    from astropy import units as u
    from astropy.coordinates import HADec, SkyCoord
    from astropy.time import Time

    from contimg.core.instrument import SITE

    t = Time(np.asarray(times_mjd), format="mjd", scale="utc")
    frame = HADec(obstime=t[:, None], location=SITE, pressure=0 * u.hPa)
    src = SkyCoord(ra=np.asarray(ra_deg)[None, :] * u.deg, dec=np.asarray(dec_deg)[None, :] * u.deg).transform_to(frame)
    ptg = SkyCoord(
        ha=np.zeros(src.shape) * u.deg,
        dec=np.full(src.shape, pointing_dec_deg) * u.deg,
        frame=HADec(obstime=t[:, None], location=SITE, pressure=0 * u.hPa),
    )
    return src.separation(ptg).rad


def drift_averaged_beams(ra_deg, dec_deg, start_mjd, end_mjd, pointing_dec_deg, freq_hz=1.4e9, n=3) -> np.ndarray:
    """Mean Airy response (S,) of each source while the beam drifts over [start, end] (n instants).

    ``contimg.calibrate.plan.drift_averaged_beam`` for many sources in one astropy transform: the field's
    selection ranks ~2000 catalogue sources by it, one transform each took 9 CPU s.
    """
    t = start_mjd + (np.arange(n) + 0.5) / n * (end_mjd - start_mjd)
    return airy_power(_beam_offsets_rad(ra_deg, dec_deg, t, pointing_dec_deg), freq_hz).mean(axis=0)


def _quadratic(start, middle, end, tau):
    """The parabola through (-1/2, start), (0, middle), (1/2, end) at ``tau``.

    For per-antenna uvw and a source's squared beam offset over a ~60 s bin: the Earth turns 0.25 deg,
    and the cubic term left out is ~1e-6 m of a 2.6 km baseline (x lmn < 0.06: 1e-4 rad of phase).
    """
    return middle + (end - start) * tau + 2.0 * (end + start - 2.0 * middle) * tau**2


def write_field_model(
    avg: str,
    sources: list[tuple[float, ...]],
    centre: tuple[float, float],
    pointing_dec_deg: float,
    threads: int | None = None,
) -> None:
    """Write MODEL_DATA of ``avg`` (which must have the column) from ``sources``.

    ``sources``: (ra_deg, dec_deg, 1.4 GHz flux_jy, spectral index[, maj_arcsec, min_arcsec, pa_deg]), the
    calibrator first, seen through the beam at each row's time, phased to ``centre`` (the calibrator, ICRS
    deg); a positive ``maj_arcsec`` makes an elliptical Gaussian (FWHM, position angle east of north).
    ``threads``: workers for the (bin, SPW) predicts (default: this process's cores).
    """
    import casatools

    if not sources:
        raise ValueError("write_field_model needs at least one source (the calibrator)")
    srcs = [_Source(*map(float, s)) for s in sources]
    tb = casatools.table()
    tb.open(avg + "/ANTENNA")
    pos = tb.getcol("POSITION").T
    tb.close()
    tb.open(avg + "/SPECTRAL_WINDOW")
    freqs = [np.asarray(tb.getcell("CHAN_FREQ", i), float) for i in range(tb.nrows())]
    tb.close()
    tb.open(avg + "/DATA_DESCRIPTION")
    spw_of_dd = tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(avg + "/OBSERVATION")
    telescope = str(tb.getcell("TELESCOPE_NAME", 0))
    tb.close()
    tb.open(avg, nomodify=False)
    try:
        time_s, span_s = tb.getcol("TIME"), tb.getcol("INTERVAL")
        a1, a2, dd = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2"), tb.getcol("DATA_DESC_ID")
        n_pol, n_chan = tb.getcell("DATA", 0).shape
        if any(len(freqs[spw_of_dd[d]]) != n_chan for d in set(dd.tolist())):
            raise ValueError(f"{avg}: SPWs of different channel counts; the model column needs one shape")
        model = np.zeros((len(time_s), n_chan), np.complex64)  # (row, chan): the same in every polarization
        rel = pos - pos.mean(axis=0)
        longest = float(np.max(np.linalg.norm(rel[:, None] - rel[None, :], axis=-1)))
        f_max, f_min = max(float(f.max()) for f in freqs), min(float(f.min()) for f in freqs)
        # each source's beam at the chunk's middle and the lowest frequency (the widest beam: the largest
        # apparent flux), for a Gaussian's error budget in apparent Jy
        seen = airy_power(
            _beam_offsets_rad(
                [s.ra_deg for s in srcs], [s.dec_deg for s in srcs], [np.median(time_s) / 86400.0], pointing_dec_deg
            )[0],
            f_min,
        )
        budget_jy = GAUSSIAN_TOL_OF_CALIBRATOR * srcs[0].flux_jy * seen[0]
        parts = [
            gaussian_components([s], f_max, max(longest, 1.0), tol_jy=budget_jy / max(b, 1e-12), tol_rel=QUADRATURE_TOL)
            for s, b in zip(srcs, seen, strict=True)
        ]
        comp = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        lmn = _direction_cosines(comp["ra_deg"], comp["dec_deg"], *centre)  # (S, 3)
        me, qa = casatools.measures(), casatools.quanta()
        me.doframe(me.observatory(telescope))
        ra_c, dec_c = np.radians(centre[0]), np.radians(centre[1])
        keys = sorted(set(zip(time_s.tolist(), span_s.tolist(), strict=True)))
        # a bin's rows in each SPW have their own TIME (the mean of their unflagged rows): the keys of one bin
        # share a span [start, end], and its start, middle and end get one CASA uvw and one astropy beam offset
        # each (80 (bin, SPW) keys at full size: 240 CASA calls took 3 s); every instant in the span is then
        # read off the parabola through those three
        spans, span_of_key = [], []
        for t, span in keys:
            if not spans or t - spans[-1][2] >= span / 2:
                spans.append([t - span / 2, t + span / 2, t])  # start, end, the first key's middle
            spans[-1][0], spans[-1][1] = min(spans[-1][0], t - span / 2), max(spans[-1][1], t + span / 2)
            span_of_key.append(len(spans) - 1)
        ends = np.array([[a, (a + b) / 2, b] for a, b, _ in spans])  # (spans, 3) s
        uvw3 = [[_antenna_uvw(me, qa, rel, float(x), ra_c, dec_c) for x in row] for row in ends]  # (A, 3) m each
        theta2 = _beam_offsets_rad(comp["ra_deg"], comp["dec_deg"], ends.ravel() / 86400.0, pointing_dec_deg) ** 2
        theta2 = theta2.reshape(len(spans), 3, -1)  # (spans, 3, S): squared, smooth through the beam's centre
        rows_of = {}
        for i_key, key in enumerate(keys):
            rows = np.flatnonzero((time_s == key[0]) & (span_s == key[1]))
            for d in sorted(set(dd[rows].tolist())):
                rows_of[(i_key, d)] = rows[dd[rows] == d]

        def one(item) -> None:
            i_key, d = item
            r = rows_of[item]
            f = freqs[spw_of_dd[d]]
            k = 2 * np.pi * f / C_M_S
            g = span_of_key[i_key]
            t_key, span_key = keys[i_key]

            def tau(x):  # a fraction x of this key's bin as a fraction of its shared span's
                return (t_key + x * span_key - ends[g, 1]) / (ends[g, 2] - ends[g, 0])

            u0, u1 = (_quadratic(*uvw3[g], tau(x)) for x in (-0.5, 0.5))
            # the largest turn of each source's fringe over the bin on any baseline: the spread of the
            # antennas' path changes (the longest baseline along the source's motion), at the top channel
            dpath = (u1 - u0) @ lmn.T  # (A, S) m
            turn = k.max() * np.ptp(dpath, axis=0)
            spec = comp["flux_jy"][:, None] * (f[None, :] / 1.4e9) ** comp["spectral_index"][:, None]  # (S, F)
            paths, weights = [], []
            orders = np.array([quadrature_order(t) for t in turn])
            for n in np.unique(orders):
                sel = orders == n
                for x, w in zip(*bin_quadrature(n), strict=True):
                    uvw = _quadratic(*uvw3[g], tau(x))  # (A, 3)
                    paths.append(-(uvw @ lmn[sel].T))  # (A, S_n): e = exp(i k path), see the module's docstring
                    th = np.sqrt(np.maximum(_quadratic(*theta2[g][:, sel], tau(x)), 0.0))
                    weights.append(w * (spec[sel] * airy_power(th[:, None], f[None, :])).T)  # (F, S_n)
            vis = point_visibilities(np.hstack(paths), k, np.hstack(weights), a1[r], a2[r])
            model[r] = vis

        run_single_threaded_blas(one, sorted(rows_of), threads)
        tb.putcol("MODEL_DATA", np.repeat(model.T[None], n_pol, axis=0))  # (pol, chan, row)
    finally:
        tb.close()
