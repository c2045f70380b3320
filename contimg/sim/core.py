"""Simulate DSA-110 chunks: sky through the primary beam, per-antenna gains, thermal noise.

One subband is computed and written at a time, so memory stays at a few subband-sized arrays
even at full size (96 antennas, 16 x 48 channels, 24 integrations).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.core.instrument import (
    CHUNK_DURATION_S,
    INTEGRATION_S,
    N_CHAN_PER_SUBBAND,
    N_INTEGRATIONS,
    N_SUBBANDS,
    SEFD_JY,
    SITE,
    SUBBAND_WIDTH_HZ,
    load_stations,
    select_stations,
    subband_freqs_hz,
)
from contimg.core.phasing import meridian_icrs
from contimg.sim.faults import apply_after_write, parse_faults
from contimg.sim.gains import cable_delays_ns, delay_gains, drift_factors
from contimg.sim.lightcurves import flux_factor
from contimg.sim.model import (
    baseline_uvw,
    gaussian_components,
    ha_frame,
    sky_visibilities,
    sky_visibilities_matrix,
)
from contimg.sim.rfi import burst_integrations, plan_rfi, rfi_visibilities
from contimg.sim.sky import Source, counts_sky, default_sky, write_sky_csv
from contimg.sim.uvh5 import SubbandFile, write_subband

__all__ = ["simulate", "noise_sigma_jy", "transit_start", "DEFAULT_DEC_DEG"]

DEFAULT_DEC_DEG = 55.0
SIDEREAL_PER_SOLAR = 1.002737909350795
SUBBAND_JITTER_S = 3.0  # correlator nodes start their files up to a few seconds apart
GAIN_AMP_RMS = 0.10  # ~10% amplitude scatter between antennas
GAIN_PHASE_RMS_DEG = 30.0  # tens of degrees
BANDPASS_RIPPLE = 0.05  # 5% amplitude ripple across each subband
DEFAULT_MAX_DELAY_NS = 10.0  # cable delays, when on, uniform in +-10 ns
COUNTS_SKY_TAG = 0x5C7  # seed-sequence tag of the counts sky's stream
MATRIX_MIN_SOURCES = 20  # above this many sources the matrix-product visibilities are faster
CALIBRATOR_CLEAR_DEG = 3.0  # default-sky sources kept this far from a calibrator (beyond the primary beam)


def noise_sigma_jy(channel_width_hz: float, integration_s: float = INTEGRATION_S, sefd_jy: float = SEFD_JY) -> float:
    """Radiometer noise of one cross-correlation, per real and per imaginary part (Jy).

    sigma = SEFD / sqrt(2 * dnu * tau) for a single polarisation product of two identical antennas
    (Thompson, Moran & Swenson eq. 6.50 with efficiency 1).
    """
    return sefd_jy / np.sqrt(2.0 * channel_width_hz * integration_s)


def _hour_angle_hours(ra_deg: float, dec_deg: float, t: Time) -> float:
    hadec = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg).transform_to(
        HADec(obstime=t, location=SITE, pressure=0 * u.hPa)
    )
    return float(hadec.ha.wrap_at(12 * u.hourangle).to_value(u.hourangle))


def transit_start(
    start: Time, ra_deg: float, dec_deg: float, transit_chunk: int, n_integrations: int = N_INTEGRATIONS
) -> tuple[Time, Time, float]:
    """First start >= ``start`` that puts the transit (HA=0) of (ra, dec) at the middle of ``transit_chunk``.

    Chunks start every 309.24 s whatever ``n_integrations``; the middle is that of the chunk's
    ``n_integrations`` integrations (so small test chunks still hold the transit).
    Returns the start, the transit time and the apparent declination at transit (deg).
    """
    offset = (transit_chunk * CHUNK_DURATION_S + 0.5 * n_integrations * INTEGRATION_S) * u.s
    t = start + offset
    ha = _hour_angle_hours(ra_deg, dec_deg, t)
    t = t + ((-ha) % 24.0) / SIDEREAL_PER_SOLAR * u.hour
    for _ in range(3):  # refine (precession and aberration make the rate not exactly sidereal)
        t = t - _hour_angle_hours(ra_deg, dec_deg, t) / SIDEREAL_PER_SOLAR * u.hour
    dec_app = (
        SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg)
        .transform_to(HADec(obstime=t, location=SITE, pressure=0 * u.hPa))
        .dec.deg
    )
    return t - offset, t, float(dec_app)


def _gains(rng: np.random.Generator, n_ant: int, freqs_hz: np.ndarray, sb_of_freq: np.ndarray) -> np.ndarray:
    """Complex gains (A, 2, F): per-antenna complex gain times a smooth ripple within each subband."""
    n_f = len(freqs_hz)
    amp = np.clip(1.0 + GAIN_AMP_RMS * rng.standard_normal((n_ant, 2)), 0.7, 1.3)
    phase = np.radians(GAIN_PHASE_RMS_DEG * rng.standard_normal((n_ant, 2)))
    g = amp * np.exp(1j * phase)
    # position of each channel inside its subband, 0..1
    sb_lo = np.array([freqs_hz[sb_of_freq == sb].min() for sb in sb_of_freq])
    x = (freqs_hz - sb_lo) / SUBBAND_WIDTH_HZ
    ripple_phase = rng.uniform(0, 2 * np.pi, (n_ant, 2, 1))
    bp_amp = 1.0 + BANDPASS_RIPPLE * np.sin(2 * np.pi * 1.5 * x[None, None, :] + ripple_phase)
    bp_phase = np.radians(5.0) * np.sin(2 * np.pi * x[None, None, :] + ripple_phase)
    return g[:, :, None] * bp_amp * np.exp(1j * bp_phase) * np.ones((1, 1, n_f))


def _observe(sky_sefd: np.ndarray, gij: np.ndarray, auto: np.ndarray, sigma: float, rng) -> np.ndarray:
    """One polarization's data (T, B, F) complex64: ``gij (V + SEFD on autos) + noise`` scaled by ``|gij|``.

    ``sigma`` is the radiometer noise per real and imaginary part (0: none, nothing drawn); the noise is
    drawn as two float32 standard-normal arrays (real parts, then imaginary parts) of the data's shape, an
    autocorrelation taking sqrt(2) times its real draw and no imaginary part. Done in place in complex64
    (the files' type): float64 temporaries of a full-size subband cost 3x the time for digits the file drops.
    """
    out = np.multiply(sky_sefd, gij.astype(np.complex64))
    if sigma:
        scale = (sigma * np.abs(gij)).astype(np.float32)
        nre = rng.standard_normal(out.shape, dtype=np.float32)
        nim = rng.standard_normal(out.shape, dtype=np.float32)
        nre *= scale
        nim *= scale
        nre[:, auto, :] *= np.float32(np.sqrt(2.0))  # autos: real, sqrt(2) larger per real part
        nim[:, auto, :] = 0.0
        out.real += nre
        out.imag += nim
    return out


def _stamp(t: Time) -> str:
    return t.to_datetime(timezone=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def simulate(
    out_dir,
    start,
    *,
    n_chunks: int = 1,
    n_antennas: int = 96,
    n_chan_per_subband: int = N_CHAN_PER_SUBBAND,
    n_integrations: int = N_INTEGRATIONS,
    dec_deg: float | None = None,
    sky: list[Source] | str | None = None,
    calibrator: str | None = None,
    transit_chunk: int = 0,
    seed: int = 0,
    noise: bool = True,
    gains: bool = True,
    faults=(),
    jitter_s: float = SUBBAND_JITTER_S,
    delays: bool = False,
    max_delay_ns: float = DEFAULT_MAX_DELAY_NS,
    drift: bool = False,
    rfi: bool = False,
    day_index: float | None = None,
    lightcurve_epoch=None,
) -> dict:
    """Write ``n_chunks`` chunks of 16 subband files into ``out_dir`` and ``truth.json`` beside them.

    Parameters
    ----------
    start : str or Time
        Start of the first chunk (UTC). With ``calibrator`` it is moved forward to the first time
        at which the calibrator transits in the middle of chunk ``transit_chunk``.
    sky : list of Source or "counts", optional
        Sources; None means a few seeded sources along the strip, [] means none, ``"counts"`` a seeded
        realistic field from the 1.4 GHz source counts (``contimg.sim.sky.counts_sky``; a calibrator is
        embedded in it). The sky is written beside the data as ``sky.csv`` (the reference catalogue).
    calibrator : str, optional
        VLA calibrator name; it joins the sky with its 20 cm flux and sets the default pointing dec.
    faults : str or iterable of Fault
        e.g. ``"truncate@0:3,missing@1:7,duplicate@0:2,nan@2:5,badname@1:9"`` (kind@chunk:subband).
    delays : bool
        Per-antenna, per-polarization cable delays, uniform in +-``max_delay_ns`` (ns), seeded; part of
        the gains (``truth["delays_ns"]``; sign in docs/conventions.md).
    drift : bool
        Gains drift in time (tens of degrees and a few % within a chunk, more over hours), a seeded
        function of absolute time (``contimg.sim.gains.truth_gains`` evaluates it).
    rfi : bool
        Persistent narrowband RFI, broadband bursts and a dead (antenna, subband), seeded
        (``contimg.sim.rfi``); where they are is in ``truth["rfi"]`` and each chunk's ``rfi_bursts``.
    day_index : float, optional
        The day the sources' light curves are evaluated at (``contimg.sim.lightcurves``); by default the
        whole days from ``lightcurve_epoch`` (UTC) to ``start``, or 0 without an epoch.

    Returns
    -------
    dict
        The truth written to ``truth.json``; gains are in ``truth_gains.npz`` (see ``gains_file``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_chunks < 1 or n_integrations < 1:
        raise ValueError(f"n_chunks and n_integrations must be >= 1, got {n_chunks}, {n_integrations}")
    fault_list = parse_faults(faults) if isinstance(faults, str) else list(faults)
    for fault in fault_list:
        if fault.chunk >= n_chunks:
            raise ValueError(f"fault {fault} names chunk {fault.chunk} but only {n_chunks} are simulated")
    rng = np.random.default_rng(seed)
    t_start = Time(start, scale="utc")
    if isinstance(sky, str) and sky != "counts":
        raise ValueError(f"sky {sky!r}: allowed: a list of Source, None or 'counts'")
    counts = sky == "counts"
    sources = list(sky) if sky is not None and not counts else None
    cal_info = None
    if calibrator:
        from contimg.calibrate.calibrators import find_calibrator

        cal = find_calibrator(calibrator)
        if cal.flux_jy is None:
            raise ValueError(f"calibrator {cal.name} has no 20 cm flux in the VLA list")
        t_start, t_transit, dec_app = transit_start(t_start, cal.ra_deg, cal.dec_deg, transit_chunk, n_integrations)
        if dec_deg is None:
            dec_deg = dec_app
        cal_src = Source(cal.ra_deg, cal.dec_deg, cal.flux_jy, cal.spectral_index or 0.0, cal.name)
        cal_info = {
            "name": cal.name,
            "ra_deg": cal.ra_deg,
            "dec_deg": cal.dec_deg,
            "flux_jy": cal.flux_jy,
            "spectral_index": cal.spectral_index or 0.0,
            "transit_chunk": transit_chunk,
            "transit_time": t_transit.isot,
            "transit_mjd": t_transit.mjd,
        }
    dec_deg = DEFAULT_DEC_DEG if dec_deg is None else float(dec_deg)
    duration_s = n_integrations * INTEGRATION_S
    if counts:
        track = meridian_icrs(t_start + [0, n_chunks * CHUNK_DURATION_S] * u.s, dec_deg)
        # its own stream (seed and start): the static gains and jitters stay those of any other sky
        sky_rng = np.random.default_rng([seed, COUNTS_SKY_TAG, int(round(t_start.mjd * 86400.0))])
        sources = counts_sky((track.ra.deg[0], track.ra.deg[1]), float(np.mean(track.dec.deg)), sky_rng)
    if sources is None:
        span = meridian_icrs(t_start + [0, n_chunks * CHUNK_DURATION_S] * u.s, dec_deg).ra.deg
        n_default = max(3, int(round(6 * n_chunks * CHUNK_DURATION_S / 3600.0)))
        sources = default_sky((span[0], span[1]), dec_deg, rng, n=n_default)
    if cal_info:
        # a calibrator is used in a clean field: default sources stay out of its beam
        if sky is None:
            cal_coord = SkyCoord(cal_src.ra_deg * u.deg, cal_src.dec_deg * u.deg)
            sources = [
                s
                for s in sources
                if SkyCoord(s.ra_deg * u.deg, s.dec_deg * u.deg).separation(cal_coord).deg > CALIBRATOR_CLEAR_DEG
            ]
        sources = [cal_src] + sources
    if day_index is None:
        day_index = 0.0 if lightcurve_epoch is None else float(np.floor((t_start - Time(lightcurve_epoch)).jd))
    catalogue = sources
    factors = [flux_factor(s.lightcurve, day_index) for s in sources]
    sources = [s if f == 1.0 else replace(s, flux_jy=s.flux_jy * f) for s, f in zip(sources, factors, strict=True)]
    # many sources or any Gaussian: per-antenna phasors and matrix products (few point sources: one by one, as before)
    matrix = len(sources) > MATRIX_MIN_SOURCES or any(s.maj_arcsec > 0 for s in sources)

    stations = load_stations()
    numbers = select_stations(n_antennas)
    rows = stations.index_of(numbers)
    ant_ha = ha_frame(stations.itrf_m[rows])
    site_xyz = np.array([SITE.x.to_value(u.m), SITE.y.to_value(u.m), SITE.z.to_value(u.m)])
    i1, i2 = np.triu_indices(len(numbers))  # ant1 <= ant2, autos included
    n_bls = len(i1)
    uvw_bl = baseline_uvw(ant_ha[i2] - ant_ha[i1], dec_deg)  # constant per baseline
    auto = i1 == i2

    # Frequencies of all subbands (file order) and the gains over them.
    freqs_all = np.concatenate([subband_freqs_hz(sb, n_chan_per_subband) for sb in range(N_SUBBANDS)])
    sb_of_freq = np.repeat(np.arange(N_SUBBANDS), n_chan_per_subband)
    g_all = _gains(rng, len(numbers), freqs_all, sb_of_freq) if gains else np.ones((len(numbers), 2, len(freqs_all)))
    if not max_delay_ns >= 0:
        raise ValueError(f"max_delay_ns must be >= 0, got {max_delay_ns}")
    delays_ns = cable_delays_ns(seed, numbers, max_delay_ns) if delays else np.zeros((len(numbers), 2))
    if delays:
        g_all = g_all * delay_gains(delays_ns, freqs_all)
    rfi_plan = plan_rfi(seed, numbers, n_chan_per_subband) if rfi else None
    dead_bl = np.zeros(n_bls, dtype=bool)
    if rfi:
        dead_idx = int(np.flatnonzero(numbers == rfi_plan.dead_station)[0])
        dead_bl = (i1 == dead_idx) | (i2 == dead_idx)
    drift_mjd = np.zeros((n_chunks, N_SUBBANDS, n_integrations))
    drift_all = np.ones((n_chunks, N_SUBBANDS, n_integrations, len(numbers), 2), dtype=np.complex128)
    drift_mid = np.ones((n_chunks, len(numbers), 2), dtype=np.complex128)
    chan_width = SUBBAND_WIDTH_HZ / n_chan_per_subband
    sigma = noise_sigma_jy(chan_width)

    if matrix:
        b_len = np.linalg.norm(ant_ha[:, None, :] - ant_ha[None, :, :], axis=-1).max()
        components = gaussian_components(sources, float(freqs_all.max()), max(float(b_len), 1.0))
    truth_chunks = []
    for c in range(n_chunks):
        chunk_start = t_start + c * CHUNK_DURATION_S * u.s
        files = []
        bursts = burst_integrations(seed, chunk_start.mjd, n_integrations) if rfi else []
        for sb in range(N_SUBBANDS):
            fault_kinds = {f.kind for f in fault_list if f.chunk == c and f.subband == sb}
            jitter = float(rng.uniform(0.0, jitter_s))
            sub_start = chunk_start + jitter * u.s
            stamp = _stamp(sub_start)
            name = f"{stamp}_sb{sb:02d}.hdf5" if "badname" not in fault_kinds else f"{stamp}_subband{sb:02d}.hdf5"
            files.append(
                {
                    "subband": sb,
                    "file": name,
                    "start": sub_start.isot,
                    "jitter_s": jitter,
                    "faults": sorted(fault_kinds),
                }
            )
            if "missing" in fault_kinds:
                continue
            times = sub_start + (np.arange(n_integrations) + 0.5) * INTEGRATION_S * u.s
            freqs = subband_freqs_hz(sb, n_chan_per_subband)
            sel = sb_of_freq == sb
            if matrix:
                vis = sky_visibilities_matrix(ant_ha, i1, i2, times, freqs, components, dec_deg)  # (T, B, F)
            else:
                vis = sky_visibilities(ant_ha, i1, i2, times, freqs, sources, dec_deg)  # (T, B, F)
            if rfi:
                vis = vis + rfi_visibilities(
                    rfi_plan, seed, sb, len(freqs), n_integrations, bursts, chunk_start.mjd, i1, i2, len(numbers)
                )
                if sb == rfi_plan.dead_subband:
                    vis[:, dead_bl, :] = 0.0  # a dead input: no sky, no RFI; the noise (and the auto's SEFD) stay
            data = np.empty((n_integrations, n_bls, len(freqs), 2), dtype=np.complex64)
            sub_rng = np.random.default_rng([seed, c, sb])
            drift_mjd[c, sb] = times.mjd
            if drift:
                drift_all[c, sb] = drift_factors(seed, numbers, times.mjd)  # (T, A, 2)
            sky_sefd = vis.astype(np.complex64)  # the files' precision from here on
            sky_sefd[:, auto, :] += SEFD_JY
            for p in range(2):
                g = g_all[:, p, sel]  # (A, F)
                if drift:
                    g = drift_all[c, sb, :, :, p, None] * g[None]  # (T, A, F)
                    gij = np.conj(g[:, i1]) * g[:, i2]
                else:
                    gij = (np.conj(g[i1]) * g[i2])[None]  # UVH5 convention, see docs/conventions.md
                data[..., p] = _observe(sky_sefd, gij, auto, sigma if noise else 0.0, sub_rng)
            data = data.reshape(n_integrations * n_bls, 1, len(freqs), 2)
            if "nan" in fault_kinds:
                bad = sub_rng.random(data.shape[:3]) < 0.01
                bad.flat[sub_rng.integers(bad.size)] = True  # at least one, even in tiny test data
                data[bad, :] = np.nan + 1j * np.nan
            sub = SubbandFile(
                time_jd=np.repeat(times.jd, n_bls),
                ant1=np.tile(numbers[i1] - 1, n_integrations),
                ant2=np.tile(numbers[i2] - 1, n_integrations),
                uvw_m=np.tile(uvw_bl, (n_integrations, 1)),
                freqs_hz=freqs,
                channel_width_hz=chan_width,
                integration_s=INTEGRATION_S,
                visdata=data,
                flags=np.zeros(data.shape, dtype=bool),
                nsamples=np.ones(data.shape, dtype=np.float32),
                antenna_numbers=stations.number - 1,
                antenna_names=stations.name,
                antenna_positions_m=stations.itrf_m - site_xyz,
                pointing_dec_rad=np.radians(dec_deg),
                n_times=n_integrations,
                n_bls=n_bls,
                history=f"contimg.sim seed={seed} chunk={c} subband={sb}",
            )
            path = write_subband(out_dir / name, sub)
            apply_after_write(path, fault_kinds, sub_rng)
        if drift:
            drift_mid[c] = drift_factors(seed, numbers, [(chunk_start + duration_s / 2 * u.s).mjd])[0]
        truth_chunks.append(
            {
                "index": c,
                "start": chunk_start.isot,
                "start_mjd": chunk_start.mjd,
                "mid_mjd": (chunk_start + duration_s / 2 * u.s).mjd,
                "files": files,
                "rfi_bursts": bursts,
            }
        )

    gains_file = out_dir / "truth_gains.npz"
    order = np.argsort(freqs_all)
    arrays = dict(antenna_numbers=numbers, freq_hz=freqs_all[order], gains=g_all[:, :, order])
    if delays:
        arrays["delays_ns"] = delays_ns
    if drift:
        # the drift factor at each subband's integrations (chunk, subband, time, antenna, pol) and their
        # times; the whole gain at one of them is gains[a, p, :] * drift[c, sb, t, a, p]
        arrays.update(drift=drift_all, drift_time_mjd=drift_mjd, drift_mid=drift_mid)
    np.savez(gains_file, **arrays)
    truth = {
        "seed": seed,
        "pointing_dec_deg": dec_deg,
        "n_antennas": len(numbers),
        "station_numbers": numbers.tolist(),
        "n_chan_per_subband": n_chan_per_subband,
        "n_integrations": n_integrations,
        "integration_s": INTEGRATION_S,
        "channel_width_hz": chan_width,
        "noise": noise,
        "noise_sigma_jy": sigma if noise else 0.0,
        "noise_formula": (
            "sigma per real/imag part of a cross-correlation = SEFD / sqrt(2 * channel_width * integration)"
        ),
        "sefd_jy": SEFD_JY,
        "gains_injected": gains,
        "gains_file": gains_file.name,
        "gains_convention": "CASA: MS DATA(ant1=i, ant2=j) = g_i conj(g_j) V; array (antenna, pol X/Y, freq ascending)",
        "delays": delays,
        "max_delay_ns": max_delay_ns if delays else 0.0,
        "delays_ns": delays_ns.tolist(),
        "delays_convention": (
            "CASA K: g(nu) = exp(+2 pi i nu tau), included in gains; [antenna index of station_numbers][pol X/Y]"
        ),
        "drift": drift,
        "drift_mid": [{"re": drift_mid[c].real.tolist(), "im": drift_mid[c].imag.tolist()} for c in range(n_chunks)]
        if drift
        else None,
        "sky": [s.as_dict() for s in sources],
        "sky_model": "counts" if counts else ("default" if sky is None else "given"),
        "sky_file": "sky.csv",
        "visibility_method": "matrix" if matrix else "direct",
        "day_index": day_index,
        "flux_factors": factors,
        "calibrator": cal_info,
        "faults": [f.as_dict() for f in fault_list],
        "rfi": rfi_plan.as_dict(lambda sb: subband_freqs_hz(sb, n_chan_per_subband)) if rfi else None,
        "chunks": truth_chunks,
    }
    write_sky_csv(out_dir / "sky.csv", catalogue)  # catalogue fluxes (light curves at their base level)
    tmp = out_dir / f".truth.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(truth, indent=2))
    os.replace(tmp, out_dir / "truth.json")
    return truth
