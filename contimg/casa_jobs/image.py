"""Child job: apply calibration and make the quick continuum image of one chunk (casatools only).

    python -m contimg.casa_jobs.image CHUNK.ms --out PREFIX [--caltable T ...] [--calset NAME]
           [--window KEY] [--imager wsclean|tclean] [--config JSON] [--report R.json]

Writes PREFIX.fits (Stokes I, Jy/beam), PREFIX.pbcor.fits, PREFIX.pb.fits (the chunk's effective
primary beam) and PREFIX.png, plus PREFIX.image when tclean made it. Every product is written
under a temporary name and renamed only when all of them exist; a failure leaves none behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.imaging import ImagingConfig, cell_arcsec, expected_image_noise_jy, image_size_px
from contimg.jobreport import report

POINTING_KEYWORD = "CONTIMG_POINTING_DEC_DEG"


class ImagingError(RuntimeError):
    pass


def describe_ms(ms_path: str) -> dict:
    """What imaging needs from the MS: band, longest baseline, times, flags, pointing."""
    import casatools

    tb = casatools.table()
    tb.open(ms_path)
    try:
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        times = tb.getcol("TIME")
        flags = tb.getcol("FLAG")  # (npol, nchan, nrow)
        uvw = tb.getcol("UVW")
        interval = float(np.median(tb.getcol("INTERVAL")))
        keywords = tb.getkeywords()
    finally:
        tb.close()
    tb.open(ms_path + "/SPECTRAL_WINDOW")
    freqs = np.concatenate([tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())])
    widths = np.concatenate([tb.getcell("CHAN_WIDTH", i) for i in range(tb.nrows())])
    tb.close()
    tb.open(ms_path + "/FIELD")
    field_dir = tb.getcol("PHASE_DIR")[:, 0, 0]
    tb.close()
    cross = a1 != a2
    unflagged = int(np.count_nonzero(~flags[:, :, cross]))
    good_rows = cross & ~flags.all(axis=(0, 1))
    lengths = np.linalg.norm(uvw[:, good_rows], axis=0)
    pointing = keywords.get(POINTING_KEYWORD)
    return {
        "freq_min_hz": float(freqs.min()), "freq_max_hz": float(freqs.max()), "freqs_hz": freqs,
        "channel_width_hz": float(np.median(np.abs(widths))), "interval_s": interval,
        "start_mjd": float(times.min() - interval / 2) / 86400.0, "end_mjd": float(times.max() + interval / 2) / 86400.0,
        "flagged_fraction": float(flags[:, :, cross].mean()) if cross.any() else 1.0,
        "n_unflagged_cross": unflagged, "max_baseline_m": float(lengths.max()) if lengths.size else 0.0,
        "field_ra_deg": float(np.degrees(field_dir[0]) % 360.0), "field_dec_deg": float(np.degrees(field_dir[1])),
        "pointing_dec_deg": float(pointing) if pointing is not None else None,
    }


def apply_calibration(ms_path: str, caltables: list[str]) -> None:
    import casatasks

    casatasks.applycal(vis=ms_path, gaintable=caltables, interp=["linear"] * len(caltables), calwt=True,
                       applymode="calflag", flagbackup=False)


def run_wsclean(ms_path: str, prefix: Path, size: int, cell: float, cfg: ImagingConfig, column: str,
                threshold_sigma: float, tmpdir: Path) -> dict:
    argv = ["wsclean", "-name", str(prefix), "-size", str(size), str(size), "-scale", f"{cell:.4f}asec",
            "-pol", "I", "-niter", str(cfg.niter), "-mgain", str(cfg.mgain), "-auto-threshold", str(threshold_sigma),
            "-data-column", column, "-reorder", "-use-wgridder", "-j", str(cfg.threads), "-temp-dir", str(tmpdir),
            "-no-update-model-required", "-quiet"]
    argv += ["-weight", "briggs", str(cfg.robust)] if cfg.weighting == "briggs" else ["-weight", "natural"]
    proc = subprocess.run(argv + [ms_path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImagingError(f"wsclean failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    residual = Path(f"{prefix}-residual.fits")  # absent when niter is 0: the image is then the residual
    return {"image": Path(f"{prefix}-image.fits"), "residual": residual if residual.exists() else Path(f"{prefix}-image.fits"),
            "casa_image": None}


def run_tclean(ms_path: str, prefix: Path, size: int, cell: float, cfg: ImagingConfig, column: str,
               threshold_jy: float) -> dict:
    import casatasks

    casatasks.tclean(vis=ms_path, imagename=str(prefix), imsize=[size, size], cell=f"{cell:.4f}arcsec", stokes="I",
                     specmode="mfs", gridder="wproject", wprojplanes=-1, deconvolver="hogbom",
                     weighting="briggs" if cfg.weighting == "briggs" else "natural", robust=cfg.robust,
                     niter=cfg.niter, gain=0.1, threshold=f"{threshold_jy}Jy", pblimit=-1,
                     datacolumn="corrected" if column == "CORRECTED_DATA" else "data")
    image = Path(f"{prefix}.image")
    if not image.exists():
        raise ImagingError("tclean produced no image")
    casatasks.exportfits(imagename=str(image), fitsimage=f"{prefix}-image.fits", overwrite=True)
    casatasks.exportfits(imagename=f"{prefix}.residual", fitsimage=f"{prefix}-residual.fits", overwrite=True)
    return {"image": Path(f"{prefix}-image.fits"), "residual": Path(f"{prefix}-residual.fits"), "casa_image": image}


def make_image(ms_path: str, out_prefix: str, caltables: list[str], calset: str | None, window: str | None,
               cfg: ImagingConfig) -> dict:
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.fitsio import add_provenance
    from contimg.pbcor import effective_beam
    from contimg.qa import image_qa
    from contimg.thumbnail import write_png

    timings, warnings = {}, []
    t0 = time.perf_counter()
    out_prefix = Path(out_prefix).absolute()
    ms_path = str(Path(ms_path).absolute())  # the job changes directory below
    caltables = [str(Path(t).absolute()) for t in caltables]
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    if caltables:
        ts = time.perf_counter()
        apply_calibration(ms_path, caltables)
        timings["apply"] = time.perf_counter() - ts
    info = describe_ms(ms_path)
    if info["n_unflagged_cross"] == 0:
        raise ImagingError(f"{ms_path}: all cross-correlation data are flagged; nothing to image")
    imager = cfg.imager
    if imager == "wsclean" and shutil.which("wsclean") is None:
        warnings.append("wsclean not found on PATH: imaged with CASA tclean instead")
        imager = "tclean"
    column = "CORRECTED_DATA" if caltables else "DATA"
    cell = cell_arcsec(info["max_baseline_m"], info["freq_max_hz"], cfg.pixels_per_beam)
    size = image_size_px(cell, info["freq_min_hz"], cfg)
    expected = expected_image_noise_jy(info["n_unflagged_cross"], info["channel_width_hz"], info["interval_s"])
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out_prefix.name}.tmp-", dir=out_prefix.parent))
    os.chdir(tmpdir)  # CASA drops TempLattice*/imagesolver* scratch in the working directory
    try:
        ts = time.perf_counter()
        work = tmpdir / "img"
        if imager == "wsclean":
            made = run_wsclean(ms_path, work, size, cell, cfg, column, cfg.threshold_sigma, tmpdir)
        else:
            made = run_tclean(ms_path, work, size, cell, cfg, column, cfg.threshold_sigma * expected)
        timings["image"] = time.perf_counter() - ts
        ts = time.perf_counter()
        with fits.open(made["image"]) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.astype(np.float32)
        residual = fits.getdata(made["residual"]).astype(np.float32)
        plane = data.reshape(data.shape[-2:])
        res_plane = residual.reshape(residual.shape[-2:])
        qa = image_qa(plane, res_plane)
        pointing = info["pointing_dec_deg"] if info["pointing_dec_deg"] is not None else info["field_dec_deg"]
        centre_freqs = np.linspace(info["freq_min_hz"], info["freq_max_hz"], 5)
        pb = effective_beam(WCS(header), plane.shape, info["start_mjd"], info["end_mjd"], pointing, centre_freqs,
                            n_times=cfg.pb_time_samples)
        timings["pb"] = time.perf_counter() - ts
        header = add_provenance(header, rms_jy=qa.rms_jy, peak_jy=qa.peak_jy, expected_rms_jy=expected, calset=calset,
                                caltables=caltables, window=window, imager=imager, data_column=column, ms_path=ms_path,
                                pb_limit=cfg.pb_limit)
        pb_full = pb.reshape(data.shape).astype(np.float32)
        pbcor = np.where(pb_full >= cfg.pb_limit, data / np.maximum(pb_full, 1e-12), np.nan).astype(np.float32)
        staged = {}
        for suffix, arr in ((".fits", data), (".pbcor.fits", pbcor), (".pb.fits", pb_full)):
            tmp = tmpdir / f"out{suffix}"
            h = header.copy()
            if suffix == ".pb.fits":
                h["BUNIT"] = ("", "primary beam response")
            fits.PrimaryHDU(data=arr, header=h).writeto(tmp)
            staged[suffix] = tmp
        write_png(plane, tmpdir / "out.png", title=f"{window or Path(ms_path).name}  rms {qa.rms_jy * 1e3:.2f} mJy/beam",
                  rms=qa.rms_jy)
        staged[".png"] = tmpdir / "out.png"
        if made["casa_image"] is not None:
            staged[".image"] = made["casa_image"]
        # every product exists: move them into place (each rename is atomic)
        for suffix, tmp in staged.items():
            final = Path(f"{out_prefix}{suffix}")
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        os.chdir(out_prefix.parent)  # never leave CASA in a deleted directory (it asserts getcwd at exit)
        shutil.rmtree(tmpdir, ignore_errors=True)
    timings["total"] = time.perf_counter() - t0
    beam = {"bmaj_arcsec": float(header.get("BMAJ", 0.0)) * 3600.0, "bmin_arcsec": float(header.get("BMIN", 0.0)) * 3600.0,
            "bpa_deg": float(header.get("BPA", 0.0))}
    return {
        "image": f"{out_prefix}.fits", "pbcor": f"{out_prefix}.pbcor.fits", "pb": f"{out_prefix}.pb.fits",
        "png": f"{out_prefix}.png", "casa_image": f"{out_prefix}.image" if made["casa_image"] is not None else None,
        "imager": imager, "calibrated": bool(caltables), "data_column": column, "caltables": caltables, "calset": calset,
        "window": window, "cell_arcsec": cell, "size_px": size, **beam, **qa.as_dict(), "expected_rms_jy": expected,
        "flagged_fraction": info["flagged_fraction"], "timings_s": timings, "warnings": warnings,
        "config": cfg.to_json(), "code_version": __version__, "mid_mjd": 0.5 * (info["start_mjd"] + info["end_mjd"]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contimg.casa_jobs.image", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--caltable", action="append", default=[], help="in apply order")
    parser.add_argument("--calset", default=None)
    parser.add_argument("--window", default=None)
    parser.add_argument("--imager", choices=["wsclean", "tclean"], default=None)
    parser.add_argument("--config", default=None, help="JSON overrides of ImagingConfig")
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    cfg = ImagingConfig.from_json(args.config)
    if args.imager:
        from dataclasses import replace

        cfg = replace(cfg, imager=args.imager)
    try:
        metrics = make_image(args.ms, args.out, args.caltable, args.calset, args.window, cfg)
    except ImagingError as err:
        print(f"image: error: {err}", file=sys.stderr)
        return 1
    for w in metrics["warnings"]:
        print(f"WARNING: {w}")
    print(f"wrote {metrics['image']} ({metrics['imager']}, {metrics['size_px']} px at {metrics['cell_arcsec']:.2f}\"), "
          f"rms {metrics['rms_jy'] * 1e3:.2f} mJy/beam (expected {metrics['expected_rms_jy'] * 1e3:.2f}), "
          f"peak {metrics['peak_jy']:.3f} Jy/beam, {metrics['n_sources_5sigma']} sources > 5 sigma")
    report(metrics, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
