"""Apply calibration + quick image of a full-size chunk: WSClean vs tclean, with the image quality kept.

    python benchmarks/image.py [--chunk DIR] [--tclean-size PX]

DIR holds one simulated full-size chunk with gains injected and a calibrator (benchmarks/simulate.py).
It is converted and its tables solved once (cached beside the chunk), then each imager runs as the
`image` child job (applycal of the tables, imaging, effective primary beam, QA, FITS, PNG). Beside
each time: fitted flux and position of every source above 10 sigma in the primary-beam-corrected
image against the truth, and the rms against the radiometer expectation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env, run_measured  # noqa: E402

from contimg.casa_env import child_command  # noqa: E402


def measure(prefix: Path, truth: dict, rms: float) -> list[dict]:
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.qa import fit_point_source

    with fits.open(f"{prefix}.pbcor.fits") as hdul:
        h, data = hdul[0].header, hdul[0].data[0, 0]
    wcs = WCS(h).celestial
    cell = abs(h["CDELT2"]) * 3600
    freq = h["CRVAL3"]
    out = []
    for s in truth["sky"]:
        true = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg)
        x, y = (float(v) for v in wcs.world_to_pixel(true))
        if not (20 < x < data.shape[1] - 20 and 20 < y < data.shape[0] - 20):
            continue
        expected = s["flux_jy"] * (freq / 1.4e9) ** s.get("spectral_index", 0.0)
        flux, fx, fy = fit_point_source(data, x, y, h["BMAJ"] * 3600 / cell, h["BMIN"] * 3600 / cell, h["BPA"])
        if not np.isfinite(flux) or expected < 10 * rms:
            continue
        offset = wcs.pixel_to_world(fx, fy).separation(true).arcsec
        out.append({"name": s["name"], "true_jy": expected, "flux_jy": flux, "flux_err_pct": 100 * (flux / expected - 1),
                    "offset_arcsec": offset, "offset_over_bmin": offset / (h["BMIN"] * 3600)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, default=bench_dir() / "fullsize")
    parser.add_argument("--tclean-size", type=int, default=1024,
                        help="tclean image side (px): the full 1.3 x FWHM field takes tclean far longer than a chunk")
    args = parser.parse_args()
    if not any(args.chunk.glob("*.hdf5")):
        subprocess.run([sys.executable, str(Path(__file__).with_name("simulate.py")), "--out", str(args.chunk)], check=True)
    truth = json.loads((args.chunk / "truth.json").read_text())
    work = bench_dir() / "image-work"
    work.mkdir(exist_ok=True)
    env = casa_env(work)
    ms = work / "chunk.ms"
    if not ms.exists():
        wall, rss, rc = run_measured(child_command("convert", *sorted(args.chunk.glob("*.hdf5")), "--out", ms), env)
        assert rc == 0, "convert failed"
        print(f"convert (once, cached): {wall:.1f} s")
    cal = work / "cal"
    if not (cal / "caltables.json").exists():
        wall, rss, rc = run_measured(child_command("calibrate", ms, "--out", cal, "--calibrator", truth["sky"][0]["name"]), env)
        assert rc == 0, "calibrate failed"
        print(f"calibrate (once, cached): {wall:.1f} s")
    info = json.loads((cal / "caltables.json").read_text())
    tables = [str(cal / t["name"]) for t in sorted(info["tables"], key=lambda t: t["order"])]
    runs = [("wsclean", {}), ("wsclean", {"max_size_px": args.tclean_size}), ("tclean", {"max_size_px": args.tclean_size})]
    rows = []
    for imager, overrides in runs:
        out = work / f"{imager}-{overrides.get('max_size_px', 'full')}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        argv = child_command("image", ms, "--out", out / "img", "--imager", imager, "--config", json.dumps(overrides),
                             "--report", out / "report.json", "--calset", info.get("set_name") or "bench")
        for t in tables:
            argv += ["--caltable", t]
        t0 = time.perf_counter()
        wall, rss, rc = run_measured(argv, env)
        if rc != 0:
            print(f"{imager} {overrides}: failed")
            continue
        m = json.loads((out / "report.json").read_text())
        srcs = measure(out / "img", truth, m["rms_jy"])
        rows.append((imager, m, wall, rss, srcs))
        print(f"\n{imager} {m['size_px']} px at {m['cell_arcsec']:.2f}\": wall {wall:.1f} s (apply {m['timings_s'].get('apply', 0):.1f}"
              f" s, image {m['timings_s']['image']:.1f} s, pb {m['timings_s']['pb']:.1f} s), peak RSS {rss:.0f} MB;"
              f" channels averaged x{m['chan_bin']}, subbands in one window: {m['merged_spws']} (loss {m['merge_loss'] or 0:.2e})")
        print(f"  beam {m['bmaj_arcsec']:.1f}\" x {m['bmin_arcsec']:.1f}\" PA {m['bpa_deg']:.0f}; rms {m['rms_jy'] * 1e3:.3f} mJy/beam"
              f" (radiometer, natural: {m['expected_rms_jy'] * 1e3:.3f}); {m['n_sources_5sigma']} islands > 5 sigma;"
              f" warnings {m['warnings']}")
        for s in srcs:
            print(f"  {s['name']:>10}: {s['flux_jy']:.4f} Jy vs {s['true_jy']:.4f} ({s['flux_err_pct']:+.1f} %), "
                  f"offset {s['offset_arcsec']:.2f}\" ({s['offset_over_bmin']:.2f} BMIN)")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
