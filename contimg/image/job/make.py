"""One chunk's image, start to end: the imaging copy, the grid and noise, the imager, the products.

The steps are in the modules beside this one; here they are put in order, timed (wall and CPU
seconds per step) and summed up in an :class:`contimg.image.report.ImageReport`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from contimg import __version__
from contimg.image.job.errors import CleanOverBudget, ImagingError, UnsupportedTables
from contimg.image.job.imagers import run_tclean, run_wsclean
from contimg.image.job.imaging_copy import make_imaging_ms
from contimg.image.job.msread import apply_calibration, describe_ms
from contimg.image.job.publish import publish_products
from contimg.image.job.workers import cpu_seconds, thread_cpu
from contimg.image.report import ImageReport

__all__ = ["make_image"]


def make_image(
    ms_path: str,
    out_prefix: str,
    caltables: list[str],
    calset: str | None,
    window: str | None,
    cfg,
    reference_catalog: str | None = None,
) -> ImageReport:
    """Apply ``caltables`` to ``ms_path`` and write the chunk's image products at ``out_prefix``.

    Parameters
    ----------
    ms_path : str
        The chunk's Measurement Set (read; written only when CASA must apply the tables in place).
    out_prefix : str
        PREFIX of PREFIX.fits, .pbcor.fits, .pb.fits, .png (and .image with tclean).
    caltables : list of str
        In apply order; empty: image uncalibrated.
    calset, window : str or None
        The caltable set's name and the partition key, for provenance.
    cfg : ImagingConfig
    reference_catalog : str, optional
        A reference catalogue (contimg.core.refcat) to cross-match the source list with: the
        report's science QA. Read first, so a bad file fails the job before it images.

    Returns
    -------
    ImageReport

    Raises
    ------
    ImagingError
        When every cross-correlation is flagged or an imager fails.
    FileNotFoundError, ValueError
        When ``reference_catalog`` cannot be read (contimg.core.refcat.read_reference_catalog).
    """
    from contimg.core.refcat import read_reference_catalog
    from contimg.image.imaging_plan import plan_imaging
    from contimg.image.pbcor import drift_pointings
    from contimg.image.rules import channel_bin

    timings, cpu, warnings = {}, {}, []
    t0 = time.perf_counter()
    reference = read_reference_catalog(reference_catalog) if reference_catalog else None
    out_prefix = Path(out_prefix).absolute()
    ms_path = str(Path(ms_path).absolute())  # the job changes directory below
    caltables = [str(Path(t).absolute()) for t in caltables]
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    source_info = describe_ms(ms_path, with_flags=False)  # flags are counted on the imaging copy below
    # the grid's sampling follows the array (ImagingConfig.dense_pixels_per_beam); the report's config says which
    cfg = replace(cfg, pixels_per_beam=cfg.grid_pixels_per_beam(source_info["n_antennas"]))
    imager = cfg.imager
    if imager == "wsclean" and shutil.which("wsclean") is None:
        warnings.append("wsclean not found on PATH: imaged with CASA tclean instead")
        imager = "tclean"
    outside = None  # catalogue sources beyond the image's edge, subtracted while the copy is made
    if reference is not None and (cfg.subtract_outside or cfg.subtract_drift) and source_info["n_antennas"] >= 2:
        from contimg.image.rules import image_half_side_deg
        from contimg.image.subtract import outside_for_chunk

        outside = outside_for_chunk(
            reference,
            source_info,
            image_half_side_deg(
                source_info["max_baseline_m"], source_info["freq_min_hz"], source_info["freq_max_hz"], cfg
            ),
            drifting=cfg.subtract_drift,
            beyond_edge=cfg.subtract_outside,
            # the imager's output channels: WSClean's, or tclean's one plane
            channels_out=cfg.channels_out if imager == "wsclean" else 1,
        )
        outside = outside if len(outside) else None  # the report's None: nothing was subtracted
    chan_bin = cfg.chan_average or channel_bin(
        len(source_info["freqs_hz"]) // max(source_info["n_spw"], 1),
        source_info["channel_width_hz"],
        source_info["freq_min_hz"],
        source_info["max_baseline_m"],
        cfg.max_smearing_loss,
    )
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out_prefix.name}.tmp-", dir=out_prefix.parent))
    os.chdir(tmpdir)  # CASA drops TempLattice*/imagesolver* scratch in the working directory
    try:
        ts, cs = time.perf_counter(), cpu_seconds()
        image_ms, column, prep = _prepare(ms_path, tmpdir, caltables, chan_bin, cfg, imager, warnings, outside)
        # the initial images (made with the copy) are imaging: their time counts there
        initial_s, initial_cpu = prep.get("initial_images_s", 0.0), prep.get("initial_images_cpu_s", 0.0)
        timings["apply" if caltables else "prepare"] = time.perf_counter() - ts - initial_s
        cpu["apply" if caltables else "prepare"] = cpu_seconds() - cs + prep.get("workers_cpu_s", 0.0) - initial_cpu
        data_column = "CORRECTED_DATA" if caltables else "DATA"  # what was imaged (from the copy, or in place)
        info = describe_ms(image_ms)
        if info["n_unflagged_cross"] == 0:
            raise ImagingError(
                f"{ms_path}: all cross-correlation data are flagged"
                f"{' (after calibration)' if caltables else ''}; nothing to image"
            )
        plan = plan_imaging(prep, info, cfg)
        cell, size, imager_cfg, expected = plan.cell_arcsec, plan.size_px, plan.imager_cfg, plan.expected_rms_jy
        ts, cs = time.perf_counter(), cpu_seconds()
        work = tmpdir / "img"
        pointing = info["pointing_dec_deg"] if info["pointing_dec_deg"] is not None else info["field_dec_deg"]
        threshold = cfg.threshold_sigma * expected
        local_rms, n_known = None, None  # the catalogue's sources in the clean mask (sparse arrays)
        if imager == "wsclean" and reference is not None and imager_cfg.known_source_depth(info["n_antennas"]) > 0:
            grid = (size, cell, expected)
            local_rms, n_known = _known_source_rms(reference, info, pointing, *grid, imager_cfg, prep, tmpdir)
        with ThreadPoolExecutor(1) as beside:  # WSClean leaves part of a core idle: the beam's pointings meanwhile
            track = beside.submit(
                thread_cpu, drift_pointings, info["start_mjd"], info["end_mjd"], pointing, cfg.pb_time_samples
            )
            if imager == "wsclean":
                made = _wsclean_within_budget(
                    image_ms, work, size, cell, imager_cfg, column, threshold, tmpdir, prep, warnings, local_rms
                )
            else:
                made = run_tclean(
                    image_ms, work, size, cell, imager_cfg, column, threshold, beam=prep.get("restoring_beam")
                )
            timings["image"] = time.perf_counter() - ts + initial_s
            if initial_s:
                timings["image_initial"] = initial_s  # of which the PSF and dirty image by ducc0
            pointings, pointings_cpu = track.result()
        cpu["image"] = cpu_seconds() - cs - pointings_cpu + made.get("cpu_s", 0.0) + initial_cpu
        published = publish_products(
            made,
            out_prefix,
            tmpdir,
            pointings=pointings,
            freq_min_hz=info["freq_min_hz"],
            freq_max_hz=info["freq_max_hz"],
            expected_rms_jy=expected,
            cfg=cfg,
            calset=calset,
            caltables=caltables,
            window=window,
            imager=imager,
            data_column=data_column,
            ms_path=ms_path,
            reference=reference,
        )
        timings["pb"] = published.pb_s
        timings["sources"] = published.sources_s  # the finder and the cross-match
    finally:
        os.chdir(out_prefix.parent)  # never leave CASA in a deleted directory (it asserts getcwd at exit)
        shutil.rmtree(tmpdir, ignore_errors=True)
    timings["total"] = time.perf_counter() - t0
    qa = published.qa
    return ImageReport(
        image=f"{out_prefix}.fits",
        pbcor=f"{out_prefix}.pbcor.fits",
        pb=f"{out_prefix}.pb.fits",
        png=f"{out_prefix}.png",
        casa_image=published.casa_image,
        imager=imager,
        calibrated=bool(caltables),
        data_column=data_column,
        chan_bin=prep["chan_bin"],
        merged_spws=bool(prep.get("merged_spws")),
        merge_loss=prep.get("merge_loss"),
        caltables=caltables,
        calset=calset,
        window=window,
        cell_arcsec=cell,
        size_px=size,
        weighting=plan.weighting,
        mgain=imager_cfg.mgain,
        initial_images="ducc0" if prep.get("initial_images") is not None else imager,
        rows_kept_fraction=prep.get("rows_kept_fraction", 1.0),
        max_time_bin=prep.get("max_time_bin", 1),
        effective_uv_cells=prep.get("effective_uv_cells"),
        bmaj_arcsec=published.bmaj_arcsec,
        bmin_arcsec=published.bmin_arcsec,
        bpa_deg=published.bpa_deg,
        rms_jy=qa.rms_jy,
        peak_jy=qa.peak_jy,
        dynamic_range=qa.dynamic_range,
        n_sources_5sigma=qa.n_sources_5sigma,
        expected_rms_jy=expected,
        flagged_fraction=info["flagged_fraction"],
        timings_s=timings,
        cpu_s=cpu,
        warnings=warnings,
        config=cfg.to_json(),
        code_version=__version__,
        mid_mjd=0.5 * (info["start_mjd"] + info["end_mjd"]),
        sources=f"{out_prefix}.sources.fits" if published.n_detections is not None else None,
        n_detections=published.n_detections,
        science_grade=published.science_qa.grade if published.science_qa is not None else None,
        science_qa=published.science_qa.as_dict() if published.science_qa is not None else None,
        outside_subtracted=outside.summary() if outside is not None and prep.get("subtracted") else None,
        known_sources_in_mask=n_known,
    )


def _wsclean_within_budget(
    image_ms: str,
    work: Path,
    size: int,
    cell: float,
    cfg,
    column: str,
    threshold: float,
    tmpdir: Path,
    prep,
    warnings,
    local_rms: Path | None = None,
) -> dict:
    """run_wsclean's image within ``cfg.clean_budget_s``; past it, the quick look (SHALLOW_IMAGING) of the same copy.

    The stream must keep up with 5-minute chunks, and a deep masked clean can chase a field's sidelobes for
    minutes: a 32-antenna chunk with a 2 Jy source just beyond the edge and no catalogue to subtract it took
    ~12 min. The fallback is said in ``warnings`` (the report's, so QA shows it); ``cpu_s`` counts both runs.
    """
    from contimg.image.rules import SHALLOW_IMAGING

    common = (image_ms, work, size, cell)
    rest = {"initial": prep.get("initial_images"), "beam": prep.get("restoring_beam")}
    try:
        budget = cfg.clean_budget_s or None
        return run_wsclean(*common, cfg, column, threshold, tmpdir, **rest, budget_s=budget, local_rms=local_rms)
    except CleanOverBudget as over:
        warnings.append(f"{over}: imaged again with the quick look (SHALLOW_IMAGING)")
        made = run_wsclean(*common, replace(cfg, **SHALLOW_IMAGING), column, threshold, tmpdir, **rest)
        return {**made, "cpu_s": made["cpu_s"] + over.cpu_s}


def _known_source_rms(reference, info, pointing, size, cell, noise, cfg, prep, tmpdir: Path):
    """(the local-rms image for WSClean's masked clean, FITS in ``tmpdir``, or None; the sources in it, or None).

    The image (contimg.image.known_sources) lets the clean go to cfg.known_source_sigma at the reference
    catalogue's sources in the field; None when the catalogue has none there.

    ``noise`` is the radiometer's (the plan's expected rms): on the sparse array the residual's own rms, which
    WSClean's masked phase reads otherwise, is the sidelobes of the sources not yet cleaned (2.7x the
    radiometer in the first major cycle of the 32-antenna test chunk), and the mask closed on them.
    """
    from astropy.io import fits

    from contimg.image.known_sources import MIN_APPARENT_SIGMA, N_MEAN_SAMPLES, known_in_field, local_rms_image
    from contimg.image.subtract import chunk_samples

    known = known_in_field(
        reference,
        info["field_ra_deg"],
        info["field_dec_deg"],
        pointing,
        *chunk_samples(info, N_MEAN_SAMPLES),
        0.5 * size * cell / 3600.0,
        MIN_APPARENT_SIGMA * noise,
    )
    if len(known) == 0:
        return None, None
    beam = prep.get("restoring_beam")  # (major, minor, pa): half the minor axis is inside the main lobe
    radius = 0.5 * beam[1] if beam is not None else 2.0 * cell
    rms = local_rms_image(known, size, cell, noise, cfg.known_source_sigma / cfg.auto_mask_sigma, radius)
    path = tmpdir / "known-sources-rms.fits"
    fits.PrimaryHDU(rms[None, None]).writeto(path, overwrite=True)
    return path, len(known)


def _prepare(
    ms_path: str,
    tmpdir: Path,
    caltables: list[str],
    chan_bin: int,
    cfg,
    imager: str,
    warnings: list[str],
    outside=None,
) -> tuple[str, str, dict]:
    """(the MS to image, its data column, the imaging copy's figures).

    The MS is the calibrated, averaged copy (contimg.image.job.imaging_copy) in ``tmpdir``, made in one
    read of the product, which is never written; or, when the copy cannot be made (UnsupportedTables),
    the product itself, calibrated in place by CASA's applycal if there are tables. Appends to
    ``warnings`` what it fell back on. ``outside`` (contimg.image.subtract.OutsideSources) is subtracted
    in the copy (``subtracted`` True in the figures); the fallback cannot subtract and says so.
    """
    image_ms = str(tmpdir / "imaging.ms")
    try:
        prep = make_imaging_ms(
            ms_path,
            image_ms,
            caltables,
            chan_bin,
            cfg,
            initial_images=imager == "wsclean" and cfg.initial_images_by_ducc0,
            outside=outside if outside is not None and len(outside) else None,
        )
        return image_ms, "DATA", {**prep, "subtracted": outside is not None}
    except UnsupportedTables as why:
        shutil.rmtree(image_ms, ignore_errors=True)
        prep = {"chan_bin": 1, "applied": bool(caltables)}
        if outside is not None and len(outside):
            warnings.append(f"{len(outside)} catalogue sources outside the field not subtracted (no imaging copy)")
        if not caltables:
            warnings.append(f"imaged the product MS without channel averaging ({why})")
            return ms_path, "DATA", prep
        warnings.append(f"tables applied by CASA applycal in place ({why}); no channel averaging")
        apply_calibration(ms_path, caltables)
        return ms_path, "CORRECTED_DATA", prep
