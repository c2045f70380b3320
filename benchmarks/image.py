"""Apply calibration + quick image of a full-size chunk: WSClean vs tclean, with the image quality kept.

    python benchmarks/image.py [--chunks sky,target,calibrator] [--tclean-size PX] [--before-speed] [--no-reference]
                               [--also JSON ...]

Two full-size chunks are simulated with the same injected gains: a calibrator chunk (0834+555,
8.8 Jy, at transit) and a target chunk an hour later with seven sources of 0.05-2 Jy out to the
primary beam's half-power radius. They are converted and the tables solved on the calibrator once
(cached under benchmarks/out), then each imager runs as the `image` child job (calibration applied
into the imaging copy, imaging, effective primary beam, QA, FITS, PNG) on each chunk. Beside each
time: fitted flux and position of every source above 10 sigma in the primary-beam-corrected image
against the truth, and the rms against the radiometer expectation for the weighting used. The sky
chunk is imaged with the defaults and with the previous ones (SHALLOW_IMAGING: one-term clean, no mask, niter 1000),
with the simulator's sky.csv as the reference catalogue as the stream has one (--no-reference: none), and measured
with tests/sky_figures.py (issue #22's acceptance figures, from the simulator's sky.csv); --before-speed adds the
defaults before the speed work (BEFORE_SPEED: 4 px per beam at any array size, WSClean's own first images), and
--also the defaults with other ImagingConfig overrides (e.g. '{"channels_out": 3}'), each in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env, run_measured  # noqa: E402

from contimg.childjobs.env import child_command  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from contimg.image.rules import SHALLOW_IMAGING  # noqa: E402
from tests import sky_figures  # noqa: E402


def measure(prefix: Path, truth: dict, rms: float) -> list[dict]:
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.image.qa import fit_point_source

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
        out.append(
            {
                "name": s["name"],
                "true_jy": expected,
                "flux_jy": flux,
                "flux_err_pct": 100 * (flux / expected - 1),
                "offset_arcsec": offset,
                "offset_over_bmin": offset / (h["BMIN"] * 3600),
            }
        )
    return out


# The target field: a 2 Jy source and fainter ones out to the primary beam's half-power radius
# (offsets on the sky from the meridian at mid-chunk, degrees east and north; flux at 1.4 GHz).
TARGET_SKY = [
    ("t2000", 0.30, -0.20, 2.0, -0.7),
    ("t0500", -0.80, 0.50, 0.5, -0.7),
    ("t1000", 1.25, 0.10, 1.0, -0.5),
    ("t0300", 0.70, 1.00, 0.3, 0.0),
    ("t0200", -1.10, -0.70, 0.2, -0.7),
    ("t0100", 0.50, -1.10, 0.1, -0.7),
    ("t0050", -0.30, 1.20, 0.05, 0.0),
]


def simulate_pair(root: Path) -> tuple[Path, Path]:
    """A full-size calibrator chunk (0834+555 at transit, nothing else) and a target chunk an hour
    later with TARGET_SKY, the same antennas and the same injected gains (both skies given, so the
    simulator's random stream, and with it the gains, is the same); cached in ``root``."""
    from astropy import units as u
    from astropy.time import Time

    from contimg.core.phasing import meridian_icrs

    cal, target = root / "calibrator", root / "target"
    common = ["--antennas", "96", "--channels-per-subband", "48", "--integrations", "24", "--seed", "7"]
    if not (cal / "truth.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "empty.csv").write_text("ra_deg,dec_deg,flux_jy,spectral_index\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "contimg.cli",
                "simulate",
                "--out",
                str(cal),
                "--start",
                "2025-06-15T00:00:00",
                "--calibrator",
                "0834+555",
                "--sky",
                str(root / "empty.csv"),
                *common,
            ],
            check=True,
        )
    if not (target / "truth.json").exists():
        truth = json.loads((cal / "truth.json").read_text())
        start = Time(truth["chunks"][0]["start"]) + 1 * u.hour
        dec = truth["pointing_dec_deg"]
        centre = meridian_icrs(start + truth["n_integrations"] * truth["integration_s"] / 2 * u.s, dec)
        rows = ["ra_deg,dec_deg,flux_jy,spectral_index,name"]
        for name, east, north, flux, alpha in TARGET_SKY:
            c = centre.spherical_offsets_by(east * u.deg, north * u.deg)
            rows.append(f"{c.ra.deg:.6f},{c.dec.deg:.6f},{flux},{alpha},{name}")
        (root / "target.csv").write_text("\n".join(rows) + "\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "contimg.cli",
                "simulate",
                "--out",
                str(target),
                "--start",
                start.isot,
                "--dec",
                str(dec),
                "--sky",
                str(root / "target.csv"),
                *common,
            ],
            check=True,
        )
    return cal, target


def simulate_sky(root: Path, cal: Path) -> tuple[Path, Path]:
    """The realistic sky an hour after the calibrator chunk (same antennas, gains and pointing) and its
    noise-only twin (no sources, the same seed: the same gains and noise); cached in ``root``."""
    from astropy import units as u
    from astropy.time import Time

    truth = json.loads((cal / "truth.json").read_text())
    start = (Time(truth["chunks"][0]["start"]) + 1 * u.hour).isot
    common = ["--antennas", "96", "--channels-per-subband", "48", "--integrations", "24", "--seed", "7"]
    common += ["--start", start, "--dec", str(truth["pointing_dec_deg"])]
    for name, sky in (("sky", "counts"), ("noise", str(root / "empty.csv"))):
        if not (root / name / "truth.json").exists():
            subprocess.run(
                [sys.executable, "-m", "contimg.cli", "simulate", "--out", str(root / name), "--sky", sky, *common],
                check=True,
            )
    return root / "sky", root / "noise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tclean-size",
        type=int,
        default=1024,
        help="tclean image side (px): the full 1.3 x FWHM field takes tclean far longer than a chunk",
    )
    parser.add_argument("--chunks", default="sky,target,calibrator", help="which chunks to image, in order")
    parser.add_argument(
        "--before-speed", action="store_true", help="sky chunk: also the defaults before the speed work (BEFORE_SPEED)"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="sky chunk: image without the reference catalogue (no subtraction)"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="JSON",
        help="sky chunk: also image with these ImagingConfig overrides, e.g. '{\"channels_out\": 3}' (repeatable)",
    )
    args = parser.parse_args()
    work = bench_dir() / "image-work"
    work.mkdir(exist_ok=True)
    env = casa_env(work)
    cal_dir, target_dir = simulate_pair(bench_dir() / "image-sim")
    chunks = args.chunks.split(",")
    dirs = [("calibrator", cal_dir), ("target", target_dir)]
    if "sky" in chunks:
        sky_dir, noise_dir = simulate_sky(bench_dir() / "image-sim", cal_dir)
        dirs += [("sky", sky_dir), ("noise", noise_dir)]
    for name, d in dirs:
        if name != "calibrator" and name[:3] not in {c[:3] for c in chunks} and name != "noise":
            continue
        if not (work / f"{name}.ms").exists():
            wall, rss, rc = run_measured(
                child_command("convert", *sorted(d.glob("*.hdf5")), "--out", work / f"{name}.ms"), env
            )
            assert rc == 0, f"convert of the {name} chunk failed"
            print(f"convert {name} (once, cached): {wall:.1f} s")
    cal = work / "cal"
    if not (cal / "caltables.json").exists():
        wall, rss, rc = run_measured(
            child_command("calibrate", work / "calibrator.ms", "--out", cal, "--calibrator", "0834+555"), env
        )
        assert rc == 0, "calibrate failed"
        print(f"calibrate (once, cached): {wall:.1f} s")
    info = json.loads((cal / "caltables.json").read_text())
    tables = [str(cal / t["name"]) for t in sorted(info["tables"], key=lambda t: t["order"])]
    for chunk in chunks:
        print(f"\n=== {chunk} chunk ===")
        if chunk == "sky":
            extra = [json.loads(a) for a in args.also]
            image_sky(work, tables, info, env, sky_dir, args.before_speed, not args.no_reference, extra)
            continue
        truth = json.loads(((target_dir if chunk == "target" else cal_dir) / "truth.json").read_text())
        image_chunk(work, work / f"{chunk}.ms", chunk, truth, tables, info, env, args.tclean_size)
    print(f"\nwork folder: {work}")


def run_image(
    work: Path, ms: Path, name: str, overrides: dict, tables: list, info: dict, env: dict, reference: Path | None = None
):
    """(report, job wall s, peak RSS MB) of the image job on ``ms`` with ``overrides``; None if it failed.

    ``reference``: the reference catalogue (--reference-catalog), as the stream passes one."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    argv = child_command(
        "image", ms, "--out", out / "img", "--config", json.dumps(overrides), "--report", out / "report.json"
    )
    argv += ["--calset", info.get("set_name") or "bench"]
    if reference is not None:
        argv += ["--reference-catalog", reference]
    for t in tables:
        argv += ["--caltable", t]
    wall, rss, rc = run_measured(argv, env)
    if rc != 0:
        print(f"{name} {overrides}: failed")
        return None
    return json.loads((out / "report.json").read_text()), wall, rss


# The defaults before issue #22's speed work (docs/benchmarks.md, "Speed of the deep clean"): 4 pixels per beam and
# WSClean's own first images of its two output channels
BEFORE_SPEED = {"dense_pixels_per_beam": 0.0, "pixels_per_beam": 4.0, "initial_images_by_ducc0": False}


def image_sky(
    work: Path,
    tables: list,
    info: dict,
    env: dict,
    sky_dir: Path,
    before_speed: bool = False,
    reference: bool = True,
    extra: list | None = None,
) -> None:
    """The realistic sky with the defaults (issue #22's deep clean) and the previous shallow ones, in the same run,
    each beside the noise-only twin imaged alike: issue #22's figures (tests/sky_figures.py). With ``reference``
    the sky chunk gets the simulator's sky.csv as its reference catalogue, as the stream has one (sources beyond
    the edge and bright sources' drift subtracted; the noise twin has no sources and gets none); with
    ``before_speed`` the defaults before the speed work (BEFORE_SPEED) run too."""
    import casacore.tables as pt

    with pt.table(str(work / "sky.ms" / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ").ravel()
    runs = [("defaults", {}, "default"), ("previous shallow defaults", SHALLOW_IMAGING, "shallow")]
    if before_speed:
        runs.insert(1, ("defaults before the speed work", BEFORE_SPEED, "before-speed"))
    for i, overrides in enumerate(extra or []):
        runs.insert(1 + i, (f"defaults with {json.dumps(overrides)}", overrides, f"also-{i}"))
    for label, overrides, slug in runs:
        made = {}
        for chunk in ("noise", "sky"):
            ref = sky_dir / "sky.csv" if chunk == "sky" and reference else None
            made[chunk] = run_image(work, work / f"{chunk}.ms", f"{chunk}-{slug}", overrides, tables, info, env, ref)
        if made["sky"] is None or made["noise"] is None:
            continue
        m, wall, rss = made["sky"]
        f = sky_figures.figures(
            work / f"sky-{slug}" / "img.fits", sky_dir, freqs, noise_twin_fits=work / f"noise-{slug}" / "img.fits"
        )
        noise_rms = sky_figures.image_rms(work / f"noise-{slug}" / "img.fits")
        t, cpu = m["timings_s"], m["cpu_s"]
        used = json.loads(m["config"])
        print(
            f"\nsky, {label} ({used['channels_out']} channel(s) out, {used['pixels_per_beam']:g} px per beam, first "
            f"images by {m['initial_images']}; reference catalogue {'yes' if reference else 'no'}; load "
            f"{os.getloadavg()[0]:.1f}): apply + image "
            f"{t.get('apply', 0) + t['image']:.1f} s (apply {t.get('apply', 0):.1f} s, image {t['image']:.1f} s; CPU "
            f"{cpu.get('apply', 0):.1f} + {cpu['image']:.1f} s), sources {t.get('sources', 0):.1f} s, job wall "
            f"{wall:.1f} s, peak RSS {rss:.0f} MB; {m['size_px']} px"
        )
        print(
            f"  rms {f['rms'] * 1e3:.3f} mJy/beam, noise-only twin {noise_rms * 1e3:.3f} (ratio "
            f"{f['rms'] / noise_rms:.2f}; target <= 1.3), radiometer {m['expected_rms_jy'] * 1e3:.3f}"
        )
        print(
            f"  isolated point sources >= 10 sigma: {f['n_isolated']}, within 0.2 beam and 10 % (3 sigma below 30): "
            f"{100 * f['fraction_good']:.0f} % (flux {100 * f['fraction_flux']:.0f} %, position "
            f"{100 * f['fraction_pos']:.0f} %; target 95 %), median flux ratio {f['median_ratio']:.3f} "
            f"(target within 0.03 of 1), median offset {f['median_offset_beams']:.2f} beam"
        )
        print(
            f"  islands > 5 sigma farther than 10 beams from the {f['n_bright']} sources seen above "
            f"{sky_figures.BRIGHT_JY} Jy and not at a true source: {f['n_artefacts']} "
            f"(max {f['max_artefact_sigma']:.1f} sigma; target none); {f['n_noise_peaks']} more where the noise twin "
            "holds half the peak or more"
        )


def image_chunk(
    work: Path, ms: Path, chunk: str, truth: dict, tables: list, info: dict, env: dict, tclean_size: int
) -> None:
    # the default; the same with the previous settings (no time averaging, WSClean's own Briggs weighting,
    # mgain 0.7, the shallow one-plane clean) as the obvious alternative; then both imagers on a field tclean can
    # make in minutes. One plane from ducc0's PSF and dirty image (contimg.image.gridding) against WSClean making
    # its own (the default two-channel clean starts from ducc0's images of each output channel).
    previous = {
        **SHALLOW_IMAGING,
        "pixels_per_beam": 4.0,
        "dense_pixels_per_beam": 0.0,
        "max_time_smearing_loss": 0.0,
        "briggs_in_copy": False,
        "mgain": 0.7,
        "initial_images_by_ducc0": False,
    }
    one_plane = {"channels_out": 1}
    runs = [
        ("wsclean", {}, ""),
        ("wsclean", one_plane, "one plane from ducc0's PSF and dirty image"),
        ("wsclean", {**one_plane, "initial_images_by_ducc0": False}, "one plane, WSClean's own PSF and dirty image"),
        ("wsclean", previous, "previous settings"),
        ("wsclean", {"max_size_px": tclean_size}, ""),
        ("tclean", {"max_size_px": tclean_size}, ""),
    ]
    slugs = {
        "": "",
        "one plane from ducc0's PSF and dirty image": "-one-plane",
        "one plane, WSClean's own PSF and dirty image": "-one-plane-own-initial",
        "previous settings": "-previous",
    }
    for imager, overrides, label in runs:
        out = work / f"{chunk}-{imager}-{overrides.get('max_size_px', 'full')}{slugs[label]}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        argv = child_command(
            "image",
            ms,
            "--out",
            out / "img",
            "--imager",
            imager,
            "--config",
            json.dumps(overrides),
            "--report",
            out / "report.json",
            "--calset",
            info.get("set_name") or "bench",
        )
        for t in tables:
            argv += ["--caltable", t]
        wall, rss, rc = run_measured(argv, env)
        if rc != 0:
            print(f"{imager} {overrides}: failed")
            continue
        m = json.loads((out / "report.json").read_text())
        srcs = measure(out / "img", truth, m["rms_jy"])
        t, cpu = m["timings_s"], m["cpu_s"]
        apply_image = t.get("apply", 0) + t["image"]
        initial = (
            f" of which the PSF and dirty image by ducc0 {t['image_initial']:.1f} s" if "image_initial" in t else ""
        )
        print(
            f'\n{imager}{f" ({label})" if label else ""} {m["size_px"]} px at {m["cell_arcsec"]:.2f}": '
            f"apply + image {apply_image:.1f} s (apply "
            f"{t.get('apply', 0):.1f} s, image {t['image']:.1f} s{initial}; "
            f"CPU {cpu.get('apply', 0):.1f} + {cpu['image']:.1f} s), "
            f"pb {t['pb']:.1f} s, job wall {wall:.1f} s, peak RSS {rss:.0f} MB"
        )
        print(
            f"  imaging copy: channels averaged x{m['chan_bin']}, subbands in one window: {m['merged_spws']} (loss "
            f"{m['merge_loss'] or 0:.2e}), rows kept after per-baseline time averaging {m['rows_kept_fraction']:.2f} "
            f"(up to {m['max_time_bin']} integrations); weighting {m['weighting']}, mgain {m['mgain']}"
            f" (effective uv cells {m.get('effective_uv_cells') or 0:.3g})"
        )
        print(
            f'  beam {m["bmaj_arcsec"]:.1f}" x {m["bmin_arcsec"]:.1f}" PA {m["bpa_deg"]:.0f}; '
            f"rms {m['rms_jy'] * 1e3:.3f} mJy/beam"
            f" (radiometer, {'for these weights' if 'in the copy' in m['weighting'] else 'natural'}: "
            f"{m['expected_rms_jy'] * 1e3:.3f}); {m['n_sources_5sigma']} islands > 5 sigma;"
            f" warnings {m['warnings']}"
        )
        for s in srcs:
            print(
                f"  {s['name']:>10}: {s['flux_jy']:.4f} Jy vs {s['true_jy']:.4f} ({s['flux_err_pct']:+.1f} %), "
                f'offset {s["offset_arcsec"]:.2f}" ({s["offset_over_bmin"]:.2f} BMIN)'
            )


if __name__ == "__main__":
    main()
