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
from contimg.imaging import ImagingConfig, cell_arcsec, channel_bin, expected_image_noise_jy, image_size_px
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
    widths_per_spw = [tb.getcell("CHAN_WIDTH", i) for i in range(tb.nrows())]
    widths = np.concatenate(widths_per_spw)
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
        "n_spw": len(widths_per_spw),
        "field_ra_deg": float(np.degrees(field_dir[0]) % 360.0), "field_dec_deg": float(np.degrees(field_dir[1])),
        "pointing_dec_deg": float(pointing) if pointing is not None else None,
    }


def apply_calibration(ms_path: str, caltables: list[str]) -> None:
    """CASA's applycal in place (CORRECTED_DATA): the fallback for tables ``load_gains`` cannot apply."""
    import casatasks

    casatasks.applycal(vis=ms_path, gaintable=caltables, interp=["linear"] * len(caltables), calwt=True,
                       applymode="calflag", flagbackup=False)


class UnsupportedTables(Exception):
    """Tables whose application needs CASA's interpolation (several solution times, or not B/G)."""


def load_gains(caltables: list[str], n_ant: int, spw_nchan: list[int]) -> tuple[list, list]:
    """Per SPW, the product of the tables' complex gains (n_ant, nchan, npol) and their flags.

    B (per channel) and G (per SPW) tables with one solution per antenna and SPW (solint=inf, as the
    calibration job writes them) apply exactly by division; anything else raises UnsupportedTables.
    """
    import casatools

    tb = casatools.table()
    gains = [np.ones((n_ant, n, 2), np.complex64) for n in spw_nchan]
    bad = [np.zeros((n_ant, n, 2), bool) for n in spw_nchan]
    for path in caltables:
        tb.open(path)
        try:
            kind = str(tb.getkeyword("VisCal")) if "VisCal" in tb.keywordnames() else "?"
            if kind not in ("B Jones", "G Jones"):
                raise UnsupportedTables(f"{path}: {kind}")
            cparam, flag = tb.getcol("CPARAM"), tb.getcol("FLAG")  # (npol, nchan, nrow)
            ant, spw, times = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("TIME")
        finally:
            tb.close()
        if len(set(zip(ant.tolist(), spw.tolist()))) != len(ant):
            raise UnsupportedTables(f"{path}: several solutions per antenna and SPW ({len(set(times.tolist()))} times)")
        has = [np.zeros(n_ant, bool) for _ in spw_nchan]
        for row in range(len(ant)):
            a, k = int(ant[row]), int(spw[row])
            g = cparam[:, :, row].T  # (nchan or 1, npol)
            f = flag[:, :, row].T
            if g.shape[-1] == 1:  # one polarization solved: applies to both
                g, f = np.repeat(g, 2, axis=-1), np.repeat(f, 2, axis=-1)
            gains[k][a] *= g
            bad[k][a] |= f
            has[k][a] = True
        for k in range(len(spw_nchan)):
            bad[k][~has[k]] = True  # an antenna the table does not solve stays uncalibrated: flag it
    return gains, bad


def make_imaging_ms(ms_path: str, out: str, caltables: list[str], chan_bin: int) -> dict:
    """A compact copy of ``ms_path`` for imaging: calibrated (B, G by division; weights x |g_i g_j|^2,
    as CASA's calwt; failed solutions flag the data), ``chan_bin`` channels averaged (weighted), in DATA.

    The product MS is read, never written. Raises UnsupportedTables when the tables need CASA.
    """
    import casatools

    from contimg.calavg import sigma_from_weight

    tb = casatools.table()
    tb.open(ms_path + "/SPECTRAL_WINDOW")
    freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    widths = [tb.getcell("CHAN_WIDTH", i) for i in range(tb.nrows())]
    tb.close()
    tb.open(ms_path + "/DATA_DESCRIPTION")
    spw_of_dd = tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(ms_path + "/ANTENNA")
    n_ant = tb.nrows()
    tb.close()
    if any(len(f) % chan_bin for f in freqs):
        chan_bin = 1
    gains, gain_flags = load_gains(caltables, n_ant, [len(f) for f in freqs]) if caltables else (None, None)
    tb.open(ms_path)
    try:
        tb.copy(out, deep=True, valuecopy=True, norows=True, returnobject=False)
        subtables = [k for k, v in tb.getkeywords().items() if isinstance(v, str) and v.startswith("Table: ")]
        nrow = tb.nrows()
        small = {c: tb.getcol(c) for c in ("UVW", "TIME", "TIME_CENTROID", "INTERVAL", "EXPOSURE", "ANTENNA1",
                                           "ANTENNA2", "FEED1", "FEED2", "DATA_DESC_ID", "FIELD_ID", "SCAN_NUMBER",
                                           "STATE_ID", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID")}
        has_wspec = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        dd = small["DATA_DESC_ID"]
        blocks = [np.flatnonzero(dd == k) for k in range(len(spw_of_dd))]
        if not all(b.size == 0 or b[-1] - b[0] + 1 == b.size for b in blocks):
            raise UnsupportedTables(f"{ms_path}: rows of a spectral window are not contiguous")
        ot = casatools.table()
        ot.open(out, nomodify=False)
        try:
            ot.addrows(nrow)
            for col, value in small.items():
                ot.putcol(col, value)
            n_flag = n_all = 0
            for k, block in enumerate(blocks):
                if block.size == 0:
                    continue
                start, n = int(block[0]), int(block.size)
                data = tb.getcol("DATA", start, n)  # (npol, nchan, nrow)
                flags = tb.getcol("FLAG", start, n)
                weight = (tb.getcol("WEIGHT_SPECTRUM", start, n) if has_wspec
                          else np.broadcast_to(tb.getcol("WEIGHT", start, n)[:, None, :], data.shape)).astype(np.float32)
                a1, a2 = small["ANTENNA1"][block], small["ANTENNA2"][block]
                spw = int(spw_of_dd[k])
                if gains is not None:
                    g = gains[spw]  # (ant, chan, pol)
                    gg = (g[a1] * np.conj(g[a2])).transpose(2, 1, 0)  # (pol, chan, row)
                    flags = flags | (gain_flags[spw][a1] | gain_flags[spw][a2]).transpose(2, 1, 0) | (gg == 0)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        data = np.where(flags, 0, data / np.where(gg == 0, 1, gg)).astype(np.complex64)
                    weight = weight * (np.abs(gg) ** 2).astype(np.float32)
                w = np.where(flags | ~np.isfinite(data), np.float32(0), weight)
                npol, nchan, nr = data.shape
                nb = nchan // chan_bin
                wsum = w.reshape(npol, nb, chan_bin, nr).sum(axis=2)
                acc = (np.where(w > 0, data, 0) * w).reshape(npol, nb, chan_bin, nr).sum(axis=2)
                with np.errstate(invalid="ignore", divide="ignore"):
                    avg = np.where(wsum > 0, acc / wsum, 0).astype(np.complex64)
                new_flags = wsum <= 0
                row_w = wsum.mean(axis=1)
                ot.putcol("DATA", avg, start, n)
                ot.putcol("FLAG", new_flags, start, n)
                if has_wspec:
                    ot.putcol("WEIGHT_SPECTRUM", wsum.astype(np.float32), start, n)
                ot.putcol("WEIGHT", row_w.astype(np.float32), start, n)
                ot.putcol("SIGMA", sigma_from_weight(row_w).astype(np.float32), start, n)
                ot.putcol("FLAG_ROW", new_flags.all(axis=(0, 1)), start, n)
                n_flag += int(np.count_nonzero(new_flags))
                n_all += new_flags.size
        finally:
            ot.close()
    finally:
        tb.close()
    for name in subtables:  # norows empties the subtables too: bring them over whole
        shutil.rmtree(f"{out}/{name}")
        tb.open(f"{ms_path}/{name}")
        tb.copy(f"{out}/{name}", deep=True, valuecopy=True, returnobject=False)
        tb.close()
    tb.open(out + "/SPECTRAL_WINDOW", nomodify=False)
    try:
        for i, (f, wd) in enumerate(zip(freqs, widths)):
            nb = len(f) // chan_bin
            fb = f.reshape(nb, chan_bin).mean(axis=1)
            wb = wd.reshape(nb, chan_bin).sum(axis=1)
            tb.putcell("NUM_CHAN", i, nb)
            for col, value in (("CHAN_FREQ", fb), ("CHAN_WIDTH", wb), ("EFFECTIVE_BW", np.abs(wb)), ("RESOLUTION", np.abs(wb))):
                tb.putcell(col, i, value)
    finally:
        tb.close()
    return {"chan_bin": chan_bin, "applied": bool(caltables), "flagged_fraction_after_apply": n_flag / max(n_all, 1)}


def run_wsclean(ms_path: str, prefix: Path, size: int, cell: float, cfg: ImagingConfig, column: str,
                threshold_sigma: float, tmpdir: Path) -> dict:
    argv = ["wsclean", "-name", str(prefix), "-size", str(size), str(size), "-scale", f"{cell:.4f}asec",
            "-pol", "I", "-niter", str(cfg.niter), "-mgain", str(cfg.mgain), "-auto-threshold", str(threshold_sigma),
            "-data-column", column, "-reorder", "-use-wgridder", "-j", str(cfg.threads), "-temp-dir", str(tmpdir),
            "-nmiter", str(cfg.nmiter),
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
    source_info = describe_ms(ms_path)
    if source_info["n_unflagged_cross"] == 0:
        raise ImagingError(f"{ms_path}: all cross-correlation data are flagged; nothing to image")
    imager = cfg.imager
    if imager == "wsclean" and shutil.which("wsclean") is None:
        warnings.append("wsclean not found on PATH: imaged with CASA tclean instead")
        imager = "tclean"
    chan_bin = cfg.chan_average or channel_bin(len(source_info["freqs_hz"]) // max(source_info["n_spw"], 1),
                                               source_info["channel_width_hz"], source_info["freq_min_hz"],
                                               source_info["max_baseline_m"], cfg.max_smearing_loss)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out_prefix.name}.tmp-", dir=out_prefix.parent))
    os.chdir(tmpdir)  # CASA drops TempLattice*/imagesolver* scratch in the working directory
    try:
        ts = time.perf_counter()
        image_ms, column = str(tmpdir / "imaging.ms"), "DATA"
        try:  # calibrated and averaged in one read of the product, which is never written
            prep = make_imaging_ms(ms_path, image_ms, caltables, chan_bin)
        except UnsupportedTables as why:  # image the product itself, calibrated by CASA if there are tables
            shutil.rmtree(image_ms, ignore_errors=True)
            image_ms, column, prep = ms_path, "DATA", {"chan_bin": 1, "applied": bool(caltables)}
            if caltables:
                warnings.append(f"tables applied by CASA applycal in place ({why}); no channel averaging")
                apply_calibration(ms_path, caltables)
                column = "CORRECTED_DATA"
            else:
                warnings.append(f"imaged the product MS without channel averaging ({why})")
        timings["apply" if caltables else "prepare"] = time.perf_counter() - ts
        data_column = "CORRECTED_DATA" if caltables else "DATA"  # what was imaged (from the copy, or in place)
        info = describe_ms(image_ms)
        if info["n_unflagged_cross"] == 0:
            raise ImagingError(f"{ms_path}: all cross-correlation data are flagged after calibration; nothing to image")
        cell = cell_arcsec(info["max_baseline_m"], info["freq_max_hz"], cfg.pixels_per_beam)
        size = image_size_px(cell, info["freq_min_hz"], cfg)
        expected = expected_image_noise_jy(info["n_unflagged_cross"], info["channel_width_hz"], info["interval_s"])
        ts = time.perf_counter()
        work = tmpdir / "img"
        if imager == "wsclean":
            made = run_wsclean(image_ms, work, size, cell, cfg, column, cfg.threshold_sigma, tmpdir)
        else:
            made = run_tclean(image_ms, work, size, cell, cfg, column, cfg.threshold_sigma * expected)
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
                                caltables=caltables, window=window, imager=imager, data_column=data_column, ms_path=ms_path,
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
        "imager": imager, "calibrated": bool(caltables), "data_column": data_column, "chan_bin": prep["chan_bin"], "caltables": caltables, "calset": calset,
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
