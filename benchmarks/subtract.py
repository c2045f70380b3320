"""Time the image job's subtraction of sources outside the field for one full-size subband.

    python benchmarks/subtract.py [--sources 76] [--antennas 96]

One spectral window of a full-size chunk (96 antennas, 48 channels, 24 integrations; antenna uvw over
2.6 km) and ``--sources`` catalogue sources 2-6 deg from the centre (76 were selected on the full-size
realistic sky), predicted by contimg.image.subtract.model_visibilities (per-antenna phasors, one cherk
per channel, on one thread as in the averaging workers), beside the obvious alternative: the direct
sum over baselines, sources and channels (timed on one integration, scaled to 24). A full chunk is 16
such windows on the job's two workers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from astropy import units as u
from astropy.time import Time
from threadpoolctl import threadpool_limits

from contimg.core.beam import C_M_S, airy_power
from contimg.core.phasing import meridian_icrs
from contimg.image.subtract import OutsideSources, direction_cosines, model_visibilities

DEC, MJD0, N_INT, INT_S = 55.5, 60841.99, 24, 12.884901888


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=76)
    parser.add_argument("--antennas", type=int, default=96)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by(
        rng.uniform(0, 360, args.sources) * u.deg, rng.uniform(2, 6, args.sources) * u.deg
    )
    flux = rng.uniform(0.05, 2.0, args.sources)
    src = OutsideSources(
        pos.ra.deg, pos.dec.deg, flux, np.full(args.sources, -0.7), flux, centre.ra.deg, centre.dec.deg, DEC
    )
    n_ant = args.antennas
    a1, a2 = np.triu_indices(n_ant)
    times = MJD0 * 86400.0 + INT_S * np.arange(N_INT)
    ant = rng.uniform(-1300, 1300, (N_INT, n_ant, 3))
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(N_INT)])
    rows_a1, rows_a2 = np.tile(a1, N_INT), np.tile(a2, N_INT)
    time_s = np.repeat(times, a1.size)
    freqs = 1.4e9 + 244_140.625 * np.arange(48)
    with threadpool_limits(limits=1, user_api="blas"):
        model_visibilities(src, time_s[: a1.size], uvw[: a1.size], a1, a2, freqs)  # astropy's first transform
        t0, c0 = time.perf_counter(), time.process_time()
        model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # the direct sum for one integration: every baseline, source and channel its own exponential
    lmn = direction_cosines(src.ra_deg, src.dec_deg, src.centre_ra_deg, src.centre_dec_deg)
    k = 2 * np.pi * freqs / C_M_S
    s_app = flux[None, :] * airy_power(np.radians(4.0), freqs)[:, None]  # a beam value per channel (not timed)
    t0 = time.perf_counter()
    phase = (uvw[: a1.size] @ lmn.T)[:, :, None] * k[None, None, :]  # (B, S, F)
    np.einsum("bsf,fs->bf", np.exp(1j * phase), s_app)
    direct = (time.perf_counter() - t0) * N_INT
    rows = len(rows_a1)
    print(f"one window: {rows} rows x {len(freqs)} channels, {args.sources} sources, {n_ant} antennas, one thread")
    print(f"  per-antenna phasors + cherk: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"  direct sum over baselines:   {direct:.2f} s (one integration x {N_INT}); ratio {direct / wall:.1f}x")
    print(f"  a chunk (16 windows, 2 workers): ~{16 * cpu:.0f} CPU s, ~{8 * wall:.0f} s wall on 2 idle cores")


if __name__ == "__main__":
    main()
