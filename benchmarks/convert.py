"""Convert a full-size chunk: this converter vs the pyuvdata read + phase + write_ms path, and the copy floor.

    python benchmarks/convert.py [--chunk DIR]

DIR holds one simulated full-size chunk (made by benchmarks/simulate.py if missing). All three
are run as child processes in one run, so their figures compare on the same machine state.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env, run_measured  # noqa: E402

PYUVDATA_PATH = textwrap.dedent("""
    import sys, glob, warnings, numpy as np
    from pyuvdata import UVData
    from contimg.convert.plan import plan_chunk
    warnings.simplefilter("ignore")
    files = sorted(glob.glob(sys.argv[1] + "/*.hdf5")); out = sys.argv[2]
    plan = plan_chunk(files)
    uvs = []
    for f in files:
        uv = UVData.from_file(f, file_type="uvh5", run_check=False)
        uv.uvw_array = uv.uvw_array.astype(np.float64)
        uvs.append(uv)
    # subbands have different time stamps: concatenating along frequency needs equal times, so the
    # obvious path forces the first subband's times onto the others (what the earlier pipeline did)
    for uv in uvs[1:]:
        for attr in ("time_array", "lst_array", "phase_center_app_ra", "phase_center_app_dec", "phase_center_frame_pa"):
            setattr(uv, attr, getattr(uvs[0], attr).copy())
    big = uvs[0].fast_concat(uvs[1:], axis="freq", run_check=False)
    big.phase(lon=np.radians(plan.phase_center_ra_deg), lat=np.radians(plan.phase_center_dec_deg), cat_name="meridian")
    big.write_ms(out, run_check=False, clobber=True)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, default=bench_dir() / "fullsize")
    args = parser.parse_args()
    if not any(args.chunk.glob("*.hdf5")):
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("simulate.py")), "--out", str(args.chunk)], check=True
        )
    files = sorted(args.chunk.glob("*.hdf5"))
    size_gb = sum(p.stat().st_size for p in files) / 1e9
    work = Path(tempfile.mkdtemp(prefix="contimg-bench-", dir=bench_dir()))
    env = casa_env(work)
    try:
        t0 = time.perf_counter()
        copy = work / "copy"
        copy.mkdir()
        for f in files:
            shutil.copyfile(f, copy / f.name)
        t_copy = time.perf_counter() - t0
        shutil.rmtree(copy)
        ours = run_measured(
            [sys.executable, "-m", "contimg.convert.job", *map(str, files), "--out", str(work / "ours.ms")], env
        )
        ms_gb = sum(p.stat().st_size for p in (work / "ours.ms").rglob("*") if p.is_file()) / 1e9
        shutil.rmtree(work / "ours.ms", ignore_errors=True)
        theirs = run_measured([sys.executable, "-c", PYUVDATA_PATH, str(args.chunk), str(work / "pyuvdata.ms")], env)
        print(f"input: {len(files)} files, {size_gb:.2f} GB")
        print(f"copy of the input bytes (disk floor): {t_copy:6.1f} s")
        print(
            f"contimg converter:                    {ours[0]:6.1f} s, peak RSS {ours[1]:6.0f} MB (MS {ms_gb:.2f} GB,"
            f" DATA+FLAG+WEIGHT, 16 SPWs, own times)"
        )
        print(
            f"pyuvdata read+concat+phase+write_ms:  {theirs[0]:6.1f} s, peak RSS {theirs[1]:6.0f} MB"
            f"{'' if theirs[2] == 0 else ' (FAILED)'} (DATA+FLAG+WEIGHT_SPECTRUM, one SPW, forced common times)"
        )
        if theirs[2] == 0:
            print(f"speed-up: {theirs[0] / ours[0]:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
