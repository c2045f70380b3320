"""Real-time factor of the per-chunk stream at full size: convert, apply calibration, image.

    python benchmarks/stream.py [--chunks N] [--keep]

Simulates N full-size target chunks (96 antennas, 16 x 48 channels, 24 integrations) following
the calibrator chunk of benchmarks/out/fullsize (same seed, so the same antenna gains), solves
the calibrator once (not counted: one chunk in ~70 a night), then pushes every target chunk
through the two child jobs a Dagster run launches for it: ``convert`` and ``image`` (applycal of
the tables + WSClean + primary beam + QA + FITS). Prints the time of each step per chunk and the
real-time factor (chunk processing time / 309.24 s of sky). The stream runs CASA jobs one at a
time (the ``casa`` pool), so the factor is the sum of the steps, not their overlap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env, run_measured  # noqa: E402

from contimg.childjobs.env import child_command  # noqa: E402

CHUNK_S = 309.237645312


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the simulated chunks and products")
    args = parser.parse_args()
    cal_chunk = bench_dir() / "fullsize"
    if not any(cal_chunk.glob("*.hdf5")):
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("simulate.py")), "--out", str(cal_chunk)], check=True
        )
    cal_truth = json.loads((cal_chunk / "truth.json").read_text())
    work = bench_dir() / "stream-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = casa_env(work)
    try:
        # the calibrator, once
        wall, _, rc = run_measured(
            child_command("convert", *sorted(cal_chunk.glob("*.hdf5")), "--out", work / "cal.ms"), env
        )
        assert rc == 0, "convert of the calibrator chunk failed"
        wall_cal, _, rc = run_measured(child_command("calibrate", work / "cal.ms", "--out", work / "tables"), env)
        assert rc == 0, "calibrate failed"
        info = json.loads((work / "tables" / "caltables.json").read_text())
        tables = [str(work / "tables" / t["name"]) for t in sorted(info["tables"], key=lambda t: t["order"])]
        print(
            f"calibrator chunk: convert {wall:.1f} s, solve {wall_cal:.1f} s (once a day per calibrator; not counted)"
        )
        # the targets, simulated right after the calibrator chunk with the same seed (same gains)
        sim = work / "targets"
        from astropy import units as u
        from astropy.time import Time

        start = (Time(cal_truth["chunks"][-1]["start"]) + CHUNK_S * u.s).isot
        argv = [
            sys.executable,
            "-m",
            "contimg.cli",
            "simulate",
            "--out",
            str(sim),
            "--start",
            start,
            "--chunks",
            str(args.chunks),
            "--antennas",
            "96",
            "--channels-per-subband",
            "48",
            "--integrations",
            "24",
            "--seed",
            "7",
            "--dec",
            str(cal_truth["pointing_dec_deg"]),
        ]
        wall_sim, _, rc = run_measured(argv)
        assert rc == 0, "simulate failed"
        print(f"simulated {args.chunks} target chunks in {wall_sim:.0f} s (not counted)\n")
        chunks = json.loads((sim / "truth.json").read_text())["chunks"]  # subband stamps of a chunk differ
        rows = []
        for i, chunk in enumerate(chunks):
            stamp = chunk["start"][:19]
            files = [sim / f["file"] for f in chunk["files"]]
            assert len(files) == 16 and all(f.exists() for f in files), f"chunk {i}: {len(files)} files"
            ms = work / f"t{i}.ms"
            t_conv, rss_conv, rc = run_measured(child_command("convert", *files, "--out", ms), env)
            assert rc == 0, f"convert {stamp} failed"
            argv = child_command(
                "image",
                ms,
                "--out",
                work / f"img{i}" / "img",
                "--calset",
                info.get("set_name") or "bench",
                "--window",
                stamp,
                "--report",
                work / f"img{i}.json",
            )
            for t in tables:
                argv += ["--caltable", t]
            t_img, rss_img, rc = run_measured(argv, env)
            assert rc == 0, f"image {stamp} failed"
            m = json.loads((work / f"img{i}.json").read_text())
            total = t_conv + t_img
            rows.append(total)
            print(
                f"chunk {stamp}: convert {t_conv:5.1f} s | apply {m['timings_s'].get('apply', 0):5.1f} s + image "
                f"{m['timings_s']['image']:5.1f} s "
                f"(CPU {m['cpu_s'].get('apply', 0):.1f} + {m['cpu_s']['image']:.1f} s) "
                f"+ pb/QA/FITS {m['timings_s']['pb']:4.1f} s (job wall {t_img:5.1f} s) "
                f"| total {total:5.1f} s, real-time factor {total / CHUNK_S:.2f}; "
                f"{m['size_px']} px, rms {m['rms_jy'] * 1e3:.2f} mJy/beam; peak RSS {max(rss_conv, rss_img):.0f} MB"
            )
            if not args.keep:
                shutil.rmtree(ms, ignore_errors=True)
        mean = sum(rows) / len(rows)
        print(
            f"\nmean per chunk {mean:.1f} s of {CHUNK_S:.2f} s: real-time factor {mean / CHUNK_S:.2f} (target <= 0.5)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
