"""The solve's model of the calibrator field, predicted in numpy into MODEL_DATA (casatools; child process).

Why not CASA's ``ft`` of a component list: the averaged MS holds time bins of ~60 s phased to the
calibrator, and each bin sees the calibrator (and every field source) through the primary beam at
that bin's time -- 3-4 % apart between the chunk's middle and its ends for a source at the pointing
centre. ``ft`` has one flux per component for the whole MS; a per-bin gain would then absorb the
beam, and the image job applies the nearest bin's gain to other chunks. Here each row gets each
source's flux through the Airy beam at its own time and frequency, and a field source's fringe is
averaged over the bin's span (sub-samples, each with its own smearing), as the averaging did to
the data. The geometry is the
phase shift's (``average._antenna_uvw``: CASA's uvw towards the calibrator, ICRS) and the sign the
MS's: a source at direction cosines (l, m, n) relative to the centre is S exp(+2 pi i (u l + v m +
w (n - 1)) nu / c) (docs/conventions.md).
"""

from __future__ import annotations

import numpy as np

from contimg.calibrate.job.average import _antenna_uvw
from contimg.core.beam import airy_power
from contimg.core.constants import C_M_S

__all__ = ["N_SUBSAMPLES", "write_field_model"]

N_SUBSAMPLES = 5  # fringe samples per bin: a field source's phase averaged as the bin's data were


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


def write_field_model(
    avg: str, sources: list[tuple[float, float, float, float]], centre: tuple[float, float], pointing_dec_deg: float
) -> None:
    """Write MODEL_DATA of ``avg`` (which must have the column) from ``sources``.

    ``sources``: (ra_deg, dec_deg, 1.4 GHz flux_jy, spectral index), the calibrator first, seen
    through the beam at each row's time, phased to ``centre`` (the calibrator, ICRS deg).
    """
    import casatools

    tb = casatools.table()
    tb.open(avg + "/ANTENNA")
    pos = tb.getcol("POSITION").T
    tb.close()
    tb.open(avg + "/SPECTRAL_WINDOW")
    freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
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
        model = np.zeros(tb.getcol("DATA").shape[::-1], np.complex64)  # (row, chan, pol)
        ra = np.array([s[0] for s in sources])
        dec = np.array([s[1] for s in sources])
        flux = np.array([s[2] for s in sources])
        alpha = np.array([s[3] for s in sources])
        # Gaussians (FWHM, PA east of north; 0: a point): exp(-pi^2 / (4 ln 2) (maj^2 q_maj^2 + min^2 q_min^2))
        # with q the baseline in wavelengths along each axis
        maj = np.radians(np.array([s[4] if len(s) > 4 else 0.0 for s in sources]) / 3600.0)
        mnr = np.radians(np.array([s[5] if len(s) > 5 else 0.0 for s in sources]) / 3600.0)
        pa = np.radians(np.array([s[6] if len(s) > 6 else 0.0 for s in sources]))
        lmn = _direction_cosines(ra, dec, *centre)  # (S, 3)
        me, qa = casatools.measures(), casatools.quanta()
        me.doframe(me.observatory(telescope))
        rel = pos - pos.mean(axis=0)
        ra_c, dec_c = np.radians(centre[0]), np.radians(centre[1])
        keys = sorted(set(zip(time_s.tolist(), span_s.tolist(), strict=True)))
        # every sub-sample's edges and middle (K sub-samples share K + 1 edges): one astropy transform for the
        # beam and one CASA uvw per instant, not per data description and sub-sample
        frac = np.arange(2 * N_SUBSAMPLES + 1) / (2 * N_SUBSAMPLES) - 0.5  # edges at even, middles at odd indices
        instants = np.array([t + frac * span for t, span in keys])  # (keys, 2K + 1) s
        theta_all = _beam_offsets_rad(ra, dec, instants[:, 1::2].ravel() / 86400.0, pointing_dec_deg)
        theta_all = theta_all.reshape(len(keys), N_SUBSAMPLES, len(ra))  # (keys, K, S)
        k_f_of_spw = {}
        for i_key, key in enumerate(keys):
            rows = np.flatnonzero((time_s == key[0]) & (span_s == key[1]))
            uvw_ant = [_antenna_uvw(me, qa, rel, float(x), ra_c, dec_c) for x in instants[i_key]]  # (A, 3) m each
            for d in sorted(set(dd[rows].tolist())):
                r = rows[dd[rows] == d]
                f = np.asarray(freqs[spw_of_dd[d]])
                spec = flux[:, None] * (f[None, :] / 1.4e9) ** alpha[:, None]  # (S, C)
                k_f = k_f_of_spw.setdefault(int(spw_of_dd[d]), 2 * np.pi * f[None, None, :] / C_M_S)
                acc = np.zeros((len(r), len(f)), np.complex128)
                for k in range(N_SUBSAMPLES):
                    # the fringe at the sub-sample's middle, and its turn over the sub-sample: a linear
                    # phase ramp of dphi averages to sinc(dphi / 2 pi) times its middle value
                    bs = [uvw_ant[2 * k + j][a1[r]] - uvw_ant[2 * k + j][a2[r]] for j in range(3)]  # CASA's sense
                    w_geom = [b @ lmn.T for b in bs]  # (R, S) m
                    phase = w_geom[1][:, :, None] * k_f  # (R, S, C)
                    smear = np.sinc((w_geom[2] - w_geom[0])[:, :, None] * k_f / (2 * np.pi))
                    s_app = spec * airy_power(theta_all[i_key, k][:, None], f[None, :])  # (S, C)
                    q_maj = bs[1][:, 0:1] * np.sin(pa) + bs[1][:, 1:2] * np.cos(pa)  # (R, S) m
                    q_min = bs[1][:, 0:1] * np.cos(pa) - bs[1][:, 1:2] * np.sin(pa)
                    size2 = (maj * q_maj) ** 2 + (mnr * q_min) ** 2  # (R, S) m^2 rad^2
                    smear = smear * np.exp(-(np.pi**2) / (4 * np.log(2)) * size2[:, :, None] * (f / C_M_S) ** 2)
                    acc += np.einsum("sc,rsc->rc", s_app, smear * np.exp(1j * phase))
                model[r] = (acc / N_SUBSAMPLES)[:, :, None].astype(np.complex64)
        tb.putcol("MODEL_DATA", np.transpose(model, (2, 1, 0)))
    finally:
        tb.close()
