"""RFI flagging measured against the simulator's injected RFI: our pass beside AOFlagger 3.1.

    python benchmarks/flagging.py [--size small|full|both]

A chunk simulated with ``--rfi`` (narrowband lines, broadband bursts, a dead input; the truth in
``truth.json``) is converted once and cached under benchmarks/out/flagging-SIZE (small: 16 antennas,
16 x 16 channels; full: 96 antennas, 16 x 48; 24 integrations both). Then, on the same MS:

- ours: ``contimg.calibrate.rfi.flag_rows`` per spectral window on the DATA amplitudes (what the image job
  and, on the calibrator, the calibrate job run), read with python-casacore;
- AOFlagger: the ``aoflagger`` command (its default strategy) on a copy of the MS, which it flags in place,
  its subbands' times first laid on one grid (``common_time_grid``: without it AOFlagger flags everything).

For each: the fraction of the injected RFI samples flagged (detection), of the clean cross-correlation
samples flagged (false flags), of the dead input's samples flagged, and the wall time (ours: the pass
alone, its read beside; AOFlagger: the command, its own read and write included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, run_measured  # noqa: E402

SIZES = {"small": (16, 16), "full": (96, 48)}  # antennas, channels per subband
N_SUBBANDS = 16


def chunk_ms(size: str) -> tuple[Path, dict]:
    """The cached simulated chunk's MS and truth (made when missing)."""
    base = bench_dir() / f"flagging-{size}"
    ms, chunk = base / "chunk.ms", base / "chunk"
    if not (ms / "table.dat").exists() or not (chunk / "truth.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        chunk.mkdir(parents=True)
        n_ant, n_chan = SIZES[size]
        sim = [sys.executable, "-m", "contimg.cli", "simulate", "--out", str(chunk), "--start", "2026-01-25T03:00:00"]
        sim += ["--antennas", str(n_ant), "--channels-per-subband", str(n_chan), "--integrations", "24"]
        subprocess.run(sim + ["--seed", "5", "--rfi"], check=True, stdout=subprocess.DEVNULL)
        wall, _, rc = run_measured(
            [sys.executable, "-m", "contimg.convert.job", *map(str, sorted(chunk.glob("*.hdf5"))), "--out", str(ms)]
        )
        if rc:
            sys.exit(rc)
    return ms, json.loads((chunk / "truth.json").read_text())


def spw_rows(tb, dd: int):
    """One spectral window's rows, sorted time-major: (sub-table, row order, ant1, ant2, time index)."""
    sub = tb.query(f"DATA_DESC_ID == {dd}")
    t, a1, a2 = sub.getcol("TIME"), sub.getcol("ANTENNA1"), sub.getcol("ANTENNA2")
    order = np.lexsort((a2, a1, t))
    return sub, order, a1[order], a2[order], np.unique(t, return_inverse=True)[1][order]


def score(flags_of, ms: Path, truth: dict) -> dict:
    """Detection, false-flag and dead-input fractions of the flags ``flags_of(sub, order, a1, a2)`` per SPW."""
    from casacore.tables import table

    counts = dict.fromkeys(["hit", "rfi", "false", "clean", "dead_hit", "dead"], 0)
    with table(str(ms), ack=False) as tb, table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spws:
        dds = sorted(set(tb.getcol("DATA_DESC_ID").tolist()))
        for dd in dds:  # the converter's DATA_DESCRIPTION k is SPW k, which holds subband 15 - k
            sub, order, a1, a2, t_idx = spw_rows(tb, dd)
            before = sub.getcol("FLAG")[order]
            new = flags_of(sub, order, a1, a2, before) & ~before
            rfi, dead = _masks(truth, N_SUBBANDS - 1 - dd, spws.getcell("CHAN_FREQ", dd), a1, a2, t_idx, before)
            clean = (~rfi & ~dead & (a1 != a2)[:, None, None]) & ~before
            for name, mask in (("", rfi), ("dead_", dead)):
                counts[name + "hit"] += np.count_nonzero(new & mask)
                counts[(name + "rfi") if not name else "dead"] += np.count_nonzero(mask)
            counts["false"] += np.count_nonzero(new & clean)
            counts["clean"] += np.count_nonzero(clean)
            sub.close()
    return {
        "detection": counts["hit"] / max(counts["rfi"], 1),
        "false_flags": counts["false"] / max(counts["clean"], 1),
        "dead_flagged": counts["dead_hit"] / max(counts["dead"], 1),
        "n_rfi": int(counts["rfi"]),
        "n_clean": int(counts["clean"]),
    }


def _masks(truth, sb, freqs, a1, a2, t_idx, before):
    from contimg.sim.rfi_truth import rfi_masks

    rfi, dead = rfi_masks(truth, sb, freqs, a1, a2, t_idx)
    shape = before.shape
    return np.broadcast_to(rfi[:, :, None], shape) & ~before, np.broadcast_to(dead[:, :, None], shape) & ~before


def run_ours(ms: Path, truth: dict) -> tuple[dict, float, float]:
    """Our pass on every SPW: (score, seconds flagging, seconds reading DATA)."""
    from contimg.calibrate.rfi import baselines_per_time, flag_rows

    spent = {"flag": 0.0, "read": 0.0}

    def flags_of(sub, order, a1, a2, before):
        t = time.perf_counter()
        data = sub.getcol("DATA")[order]
        spent["read"] += time.perf_counter() - t
        t = time.perf_counter()
        out = flag_rows(data, before, baselines_per_time(a1, a2))
        spent["flag"] += time.perf_counter() - t
        return out

    return score(flags_of, ms, truth), spent["flag"], spent["read"]


def common_time_grid(ms: Path) -> None:
    """Give every SPW of ``ms`` the first SPW's integration times, by index (a copy made for flagging only).

    DSA-110 subbands start seconds apart, so a chunk's MS holds 16 x 24 distinct times. AOFlagger lays all
    of them on one time axis per band: 360 of the 384 steps are empty (zeros once its strategy clears the
    input flags), the median timestep rms is then 0 and ``threshold_timestep_rms`` flags every real
    integration (measured: 100 % of the samples flagged). On one grid it flags as meant.
    """
    from casacore.tables import table

    with table(str(ms), ack=False, readonly=False) as tb:
        t, dd = tb.getcol("TIME"), tb.getcol("DATA_DESC_ID")
        ref = np.unique(t[dd == dd.min()])
        for k in np.unique(dd):
            rows = dd == k
            own, idx = np.unique(t[rows], return_inverse=True)
            if own.size != ref.size:
                raise ValueError(f"{ms}: SPW {k} has {own.size} integrations, SPW {dd.min()} {ref.size}")
            t[rows] = ref[idx]
        tb.putcol("TIME", t)


def run_aoflagger(ms: Path, truth: dict) -> tuple[dict, float, float]:
    """AOFlagger's default strategy on a retimed copy of the MS: (score, seconds of the command, of the retime)."""
    work = ms.with_name("aoflagger.ms")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ms, work)
    try:
        t = time.perf_counter()
        common_time_grid(work)
        t_grid = time.perf_counter() - t
        t = time.perf_counter()
        proc = subprocess.run(["aoflagger", str(work)], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"aoflagger failed ({proc.returncode}): {proc.stderr[-2000:]}")
        flagged = {}
        with _table(work) as tb:
            for dd in sorted(set(tb.getcol("DATA_DESC_ID").tolist())):
                sub, order, *_ = spw_rows(tb, dd)
                flagged[dd] = sub.getcol("FLAG")[order]
                sub.close()

        def flags_of(sub, order, a1, a2, before):
            return flagged[int(sub.getcell("DATA_DESC_ID", 0))]

        return score(flags_of, ms, truth), wall, t_grid
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _table(path: Path):
    from casacore.tables import table

    return table(str(path), ack=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "full", "both"], default="both")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    header = f"{'size':>6} {'flagger':>10} {'detected':>9} {'false':>9} {'dead in.':>9} {'seconds':>8}"
    for size in ["small", "full"] if args.size == "both" else [args.size]:
        ms, truth = chunk_ms(size)
        ours, t_flag, t_read = run_ours(ms, truth)
        aof, t_aof, t_grid = run_aoflagger(ms, truth)
        print(header)
        print(
            f"{size:>6} {'ours':>10} {ours['detection']:9.4f} {ours['false_flags']:9.2e} "
            f"{ours['dead_flagged']:9.3f} {t_flag:8.1f}  (+{t_read:.1f} s reading DATA)"
        )
        print(
            f"{size:>6} {'aoflagger':>10} {aof['detection']:9.4f} {aof['false_flags']:9.2e} "
            f"{aof['dead_flagged']:9.3f} {t_aof:8.1f}  (its read and write included; +{t_grid:.1f} s retiming the copy)"
        )
        print(f"        {ours['n_rfi']} injected RFI samples, {ours['n_clean']} clean ones")


if __name__ == "__main__":
    main()
