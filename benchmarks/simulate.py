"""Time and peak memory to simulate one full-size chunk (96 antennas, 16 x 48 channels, 24 integrations).

    python benchmarks/simulate.py [--out DIR] [--sky default|counts|both] [--realism]

``default`` is today's sky (the calibrator and a few sources, one by one); ``counts`` embeds the calibrator
in a realistic field from the source counts (~2000 sources, matrix products); ``both`` (the default) prints
the two side by side. ``--realism`` adds delays, drifting gains and RFI. The default-sky chunk is left in
DIR (default benchmarks/out/fullsize) for benchmarks/convert.py; the counts chunk in DIR-counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

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
    wall, rss, rc = run_measured(argv)
    if rc:
        sys.exit(rc)
    size = sum(p.stat().st_size for p in out.glob("*.hdf5"))
    truth = json.loads((out / "truth.json").read_text())
    print(
        f"simulate full-size chunk, {sky} sky ({len(truth['sky'])} sources, {truth['visibility_method']}"
        f"{', delays + drift + RFI' if realism else ''}): {wall:.1f} s wall ({wall / CHUNK_S:.3f} of the chunk's "
        f"309.24 s), peak RSS {rss:.0f} MB, {size / 1e9:.2f} GB in {len(list(out.glob('*.hdf5')))} files -> {out}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bench_dir() / "fullsize")
    parser.add_argument("--sky", choices=("default", "counts", "both"), default="both")
    parser.add_argument("--realism", action="store_true")
    args = parser.parse_args()
    if args.sky in ("default", "both"):
        simulate_once(args.out, "default", args.realism)
    if args.sky in ("counts", "both"):
        simulate_once(args.out.with_name(args.out.name + "-counts"), "counts", args.realism)


if __name__ == "__main__":
    main()
