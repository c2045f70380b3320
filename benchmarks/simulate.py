"""Time and peak memory to simulate one full-size chunk (96 antennas, 16 x 48 channels, 24 integrations).

    python benchmarks/simulate.py [--out DIR] [--sky default|counts|both] [--realism] [--no-predict]

``default`` is today's sky (the calibrator and a few sources, one by one); ``counts`` embeds the calibrator
in a realistic field from the source counts (~2100 sources, matrix products); ``both`` (the default) prints
the two side by side. ``--realism`` adds delays, drifting gains and RFI. The default-sky chunk is left in
DIR (default benchmarks/out/fullsize) for benchmarks/convert.py; the counts chunk in DIR-counts.

Then, unless ``--no-predict``, the counts sky's predict alone (``sky_visibilities_matrix``, one subband,
scaled by 16 to the chunk) beside the predict it replaced (OpenBLAS's own threads on one call at a time,
numpy's complex exp; timed on 4 of the 24 integrations and scaled by 6 x 16, it is that slow), both on the
same components.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, run_measured  # noqa: E402

CHUNK_S = 309.237645312


def simulate_once(out: Path, sky: str, realism: bool) -> None:
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        sys.executable,
        "-m",
        "contimg.cli",
        "simulate",
        "--out",
        str(out),
        "--start",
        "2025-06-15T00:00:00",
        "--antennas",
        "96",
        "--channels-per-subband",
        "48",
        "--integrations",
        "24",
        "--seed",
        "7",
        "--calibrator",
        "0834+555",
    ]
    if sky == "counts":
        argv += ["--sky", "counts"]
    if realism:
        argv += ["--delays", "--drift", "--rfi"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, rss, rc = run_measured(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if rc:
        sys.exit(rc)
    size = sum(p.stat().st_size for p in out.glob("*.hdf5"))
    truth = json.loads((out / "truth.json").read_text())
    print(
        f"simulate full-size chunk, {sky} sky ({len(truth['sky'])} sources, {truth['visibility_method']}"
        f"{', delays + drift + RFI' if realism else ''}): {wall:.1f} s wall ({wall / CHUNK_S:.3f} of the chunk's "
        f"309.24 s), {cpu:.1f} CPU s, load {os.getloadavg()[0]:.1f}, peak RSS {rss:.0f} MB, {size / 1e9:.2f} GB "
        f"in {len(list(out.glob('*.hdf5')))} files -> {out}",
        flush=True,
    )


def _old_predict(ant_ha, ant1, ant2, times, freqs, components, dec_deg):
    """The many-source predict before #22's speed-up (commit 39770c1), kept to time it beside the new one.

    One integration after another, each channel a ``cherk`` of conj(phasors) (antennas x components,
    C order) left to OpenBLAS's own threads, the phasors from numpy's complex exp.
    """
    from scipy.linalg.blas import cherk

    from contimg.core.beam import C_M_S, airy_power
    from contimg.sim.model import _directions_linear, pointing_direction
    from contimg.sim.sky import REF_FREQ_HZ

    vis = np.zeros((len(times), len(ant1), len(freqs)), dtype=np.complex128)
    s0 = pointing_direction(dec_deg)
    dirs = _directions_linear(components["ra_deg"], components["dec_deg"], times)
    theta = np.arccos(np.clip(dirs @ s0, -1.0, 1.0))
    spec = components["flux_jy"][None, :] * (freqs[:, None] / REF_FREQ_HZ) ** components["spectral_index"][None, :]
    k = 2.0 * np.pi * freqs / C_M_S
    for t in range(len(times)):
        d = ant_ha @ (dirs[t] - s0).T
        root = np.sqrt(spec * airy_power(theta[t][None, :], freqs[:, None])).astype(np.float32)
        ce = np.exp(-1j * k[0] * d).astype(np.complex64)
        step = np.exp(-1j * (k[1] - k[0]) * d).astype(np.complex64)
        m = np.empty_like(ce)
        for f in range(len(freqs)):
            if f:
                ce *= step
            np.multiply(ce, root[f][None, :], out=m)
            vis[t, :, f] = cherk(1.0, m)[ant1, ant2]
    return vis


def predict_comparison() -> None:
    """Time the counts sky's predict for one full-size subband, new beside old, on the same components."""
    from astropy import units as u
    from astropy.time import Time

    from contimg.calibrate.calibrators import find_calibrator
    from contimg.core.instrument import (
        CHUNK_DURATION_S,
        INTEGRATION_S,
        N_SUBBANDS,
        load_stations,
        select_stations,
        subband_freqs_hz,
    )
    from contimg.core.phasing import meridian_icrs
    from contimg.core.predict import worker_count as _worker_count
    from contimg.sim.core import COUNTS_SKY_TAG, transit_start
    from contimg.sim.model import gaussian_components, ha_frame, sky_visibilities_matrix
    from contimg.sim.sky import counts_sky

    # the sky `contimg simulate --sky counts --seed 7 --calibrator 0834+555` draws (see simulate_once)
    cal = find_calibrator("0834+555")
    t0, _, dec = transit_start(Time("2025-06-15T00:00:00"), cal.ra_deg, cal.dec_deg, 0, 24)
    track = meridian_icrs(t0 + [0, CHUNK_DURATION_S] * u.s, dec)
    rng = np.random.default_rng([7, COUNTS_SKY_TAG, int(round(t0.mjd * 86400.0))])
    sources = counts_sky((track.ra.deg[0], track.ra.deg[1]), float(np.mean(track.dec.deg)), rng)
    stations = load_stations()
    ant = ha_frame(stations.itrf_m[stations.index_of(select_stations(96))])
    b_len = float(np.linalg.norm(ant[:, None] - ant[None], axis=-1).max())
    comps = gaussian_components(sources, float(subband_freqs_hz(0, 48).max()), b_len)
    i1, i2 = np.triu_indices(len(ant))
    times = t0 + (np.arange(24) + 0.5) * INTEGRATION_S * u.s
    freqs = subband_freqs_hz(0, 48)
    n_res = sum(s.maj_arcsec > 0 for s in sources)
    print(
        f"predict, counts sky: {len(sources)} sources ({n_res} Gaussians) -> {len(comps['flux_jy'])} components; "
        f"{len(ant)} antennas, {len(i1)} baselines + autos, 48 channels x 24 integrations per subband; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for threads in sorted({_worker_count(), 1}, reverse=True):
        tic, cpu = time.perf_counter(), time.process_time()
        new = sky_visibilities_matrix(ant, i1, i2, times, freqs, comps, dec, threads=threads)
        wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
        print(
            f"  new predict ({threads} thread{'s' if threads > 1 else ''}, BLAS 1 each): 1 subband {wall:.1f} s "
            f"({cpu:.1f} CPU s) -> chunk {wall * N_SUBBANDS:.0f} s ({cpu * N_SUBBANDS:.0f} CPU s) (x16); "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    n_old = 4
    tic, cpu = time.perf_counter(), time.process_time()
    old = _old_predict(ant, i1, i2, times[:n_old], freqs, comps, dec)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    scale = len(times) / n_old * N_SUBBANDS
    diff = np.abs(old - new[:n_old]).max()
    print(
        f"  old predict (OpenBLAS threads): {n_old} integrations x 48 channels {wall:.1f} s ({cpu:.1f} CPU s) "
        f"-> chunk {wall * scale:.0f} s ({cpu * scale:.0f} CPU s) (x{scale:.0f}); "
        f"largest difference from the new {diff:.1e} Jy "
        f"(autos {np.abs(new[:, i1 == i2]).max():.1f} Jy); load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bench_dir() / "fullsize")
    parser.add_argument("--sky", choices=("default", "counts", "both"), default="both")
    parser.add_argument("--realism", action="store_true")
    parser.add_argument("--no-predict", action="store_true", help="skip the predict-only comparison")
    args = parser.parse_args()
    if args.sky in ("default", "both"):
        simulate_once(args.out, "default", args.realism)
    if args.sky in ("counts", "both"):
        simulate_once(args.out.with_name(args.out.name + "-counts"), "counts", args.realism)
    if not args.no_predict:
        predict_comparison()


if __name__ == "__main__":
    main()
