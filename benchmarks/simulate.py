"""Time and peak memory to simulate one full-size chunk (96 antennas, 16 x 48 channels, 24 integrations).

    python benchmarks/simulate.py [--out DIR]

The chunk is left in DIR (default benchmarks/out/fullsize) for benchmarks/convert.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, run_measured  # noqa: E402

CHUNK_S = 309.237645312


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bench_dir() / "fullsize")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    argv = [
        sys.executable,
        "-m",
        "contimg.cli",
        "simulate",
        "--out",
        str(args.out),
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
    wall, rss, rc = run_measured(argv)
    if rc:
        sys.exit(rc)
    size = sum(p.stat().st_size for p in args.out.glob("*.hdf5"))
    print(
        f"simulate full-size chunk: {wall:.1f} s wall ({wall / CHUNK_S:.3f} of the chunk's 309.24 s), "
        f"peak RSS {rss:.0f} MB, {size / 1e9:.2f} GB in {len(list(args.out.glob('*.hdf5')))} files -> {args.out}"
    )


if __name__ == "__main__":
    main()
