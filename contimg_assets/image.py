"""image: the chunk's quick continuum image, calibrated with the registry's active tables (a CASA child job)."""

import base64
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from contimg import __version__
from contimg.catalogue.images import record_image, record_image_failure
from contimg.catalogue.ingest import current_ms, upsert_group
from contimg.catalogue.registry import active_set, pending_calibration_window
from contimg.core.config import read
from contimg.core.settings import window_slug
from contimg.image.qa import image_verdict
from contimg.image.report import ImageReport
from contimg.image.rules import ImagingConfig
from contimg_assets.caltable_set import caltable_set
from contimg_assets.code_versions import code_version_for
from contimg_assets.measurement_set import measurement_set
from contimg_assets.partitions import FIVE_MIN
from contimg_resources import CasaRunner, Catalogue, StorageLayout


def _science_metadata(grade: str | None, sq: dict) -> dict:
    """The science-QA grade and figures as metadata: numbers, so Dagster plots them across partitions."""
    if grade is None:
        return {"science_grade": "none (no CONTIMG_REFERENCE_CATALOG)"}
    out = {"science_grade": grade, "science_problems": MetadataValue.json(sq.get("problems", []))}
    for key in (
        "flux_ratio",
        "flux_ratio_scatter",
        "offset_ra_arcsec",
        "offset_dec_arcsec",
        "offset_ra_beams",
        "offset_dec_beams",
        "completeness",
        "reliability",
    ):
        if sq.get(key) is not None:
            out[f"science_{key}"] = float(sq[key])
    for key in ("n_flux", "n_complete", "n_reliable"):
        out[f"science_{key}"] = int(sq.get(key) or 0)
    return out


def _science_md(grade: str | None, sq: dict) -> str:
    """One line of the summary: the grade and its figures."""
    if grade is None:
        return ""

    def f(key: str, fmt: str, unit: str = "") -> str:
        return "n/a" if sq.get(key) is None else format(sq[key], fmt) + unit

    arcsec = '"'
    return (
        f"\n\nscience QA **{grade}**: flux ratio {f('flux_ratio', '.3f')} (scatter {f('flux_ratio_scatter', '.3f')}, "
        f"{sq.get('n_flux', 0)} sources), offsets RA {f('offset_ra_arcsec', '+.2f', arcsec)} "
        f"Dec {f('offset_dec_arcsec', '+.2f', arcsec)}, "
        f"completeness {f('completeness', '.2f')}, reliability {f('reliability', '.2f')}"
    )


def _thumbnail_md(png: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return f"![thumbnail](data:image/png;base64,{data})"


@asset(
    partitions_def=FIVE_MIN,
    deps=[measurement_set, caltable_set],
    pool="casa",
    group_name="stream",
    code_version=code_version_for(__name__, "contimg.image.job"),
    kinds={"casa", "fits"},
    retry_policy=RetryPolicy(max_retries=6, delay=30, backoff=Backoff.LINEAR),
    check_specs=[
        AssetCheckSpec(
            "image_quality",
            asset="image",
            blocking=True,
            description="rms near the radiometer noise, calibrated with valid tables, and science QA not red "
            "(flux scale, astrometry, completeness, reliability against CONTIMG_REFERENCE_CATALOG)",
        )
    ],
    description="Quick continuum image (Stokes I) with QA, primary-beam correction and FITS products.",
)
def image(
    context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue, casa: CasaRunner
) -> MaterializeResult:
    window = context.partition_key
    layout = storage.layout()
    slug = window_slug(window)
    cfg = read("CONTIMG_IMAGING_CONFIG") or ImagingConfig()
    allow_uncal = read("CONTIMG_ALLOW_UNCALIBRATED")
    reference = read("CONTIMG_REFERENCE_CATALOG")  # None: no science QA against a catalogue
    conn = catalogue.connect()
    try:
        ms = current_ms(conn, window)
        if ms is None:
            raise Failure(description=f"no Measurement Set for window {window}: materialize measurement_set first")
        cal = active_set(conn, ms["mid_mjd"])
        pending = pending_calibration_window(conn, ms["mid_mjd"]) if cal is None else None
        if pending and not allow_uncal:
            raise Failure(
                description=f"calibration from window {pending} is not solved yet; retrying", allow_retries=True
            )
        if cal is None and not allow_uncal:
            reason = (
                f"no valid calibration tables at MJD {ms['mid_mjd']:.5f} for window {window}; "
                "set CONTIMG_ALLOW_UNCALIBRATED=1 to image uncalibrated"
            )
            record_image_failure(conn, window, ms["path"], reason, context.run_id)
            upsert_group(conn, window, state="failed", error=reason)
            raise Failure(description=reason, allow_retries=False)
        args = [ms["path"], "--out", layout.image_prefix(window), "--window", window, "--config", cfg.to_json()]
        if reference is not None:
            args += ["--reference-catalog", str(reference)]
        if cal is not None:
            args += ["--calset", cal["set_name"]]
            for t in cal["tables"]:
                args += ["--caltable", t]
        try:
            job = casa.run(
                context,
                "image",
                args,
                log_name=f"image-{slug}",
                report_path=layout.scratch / f"image-{slug}.json",
                layout=layout,
            )
        except Failure as err:
            reason = err.description.splitlines()[0]
            record_image_failure(conn, window, ms["path"], f"imaging: {reason}", context.run_id)
            upsert_group(conn, window, state="failed", error=f"imaging: {reason}")
            raise
        log_path = job.pop("log_path")  # the runner's additions to the job's report
        job.pop("seconds", None)
        m = ImageReport.from_dict(job)
        sq = m.science_qa or {}
        verdict = image_verdict(
            m.rms_jy,
            m.expected_rms_jy,
            calibrated=m.calibrated,
            allow_uncalibrated=allow_uncal,
            science_grade=m.science_grade,
            science_problems=sq.get("problems"),
        )
        record_image(
            conn,
            window,
            ms["path"],
            m,
            status=verdict.status,
            reason="; ".join(verdict.problems) or None,
            run_id=context.run_id,
        )
        upsert_group(conn, window, state="imaged", error="")
    finally:
        conn.close()
    summary = (
        f"**{window}** {m.imager}, {'calibrated with ' + str(m.calset) if m.calibrated else 'NOT calibrated'}"
        f"; rms {m.rms_jy * 1e3:.2f} mJy/beam (radiometer {m.expected_rms_jy * 1e3:.2f}), peak "
        f"{m.peak_jy:.3f} Jy/beam, DR {m.dynamic_range:.0f}, {m.n_sources_5sigma} sources > 5 sigma, "
        f'beam {m.bmaj_arcsec:.1f}" x {m.bmin_arcsec:.1f}" PA {m.bpa_deg:.0f}'
        f"{_science_md(m.science_grade, sq)}\n\n{_thumbnail_md(m.png)}"
    )
    return MaterializeResult(
        metadata={
            "fits": MetadataValue.path(m.image),
            "pbcor_fits": MetadataValue.path(m.pbcor),
            "thumbnail": MetadataValue.path(m.png),
            "summary": MetadataValue.md(summary),
            "imager": m.imager,
            "calibrated": bool(m.calibrated),
            "calset": m.calset or "NONE",
            "caltables": MetadataValue.json(m.caltables),
            "calset_window": (cal or {}).get("window") or "NONE",
            "data_column": m.data_column,
            "rms_jy": float(m.rms_jy),
            "expected_rms_jy": float(m.expected_rms_jy),
            "peak_jy": float(m.peak_jy),
            "dynamic_range": float(m.dynamic_range),
            "n_sources_5sigma": int(m.n_sources_5sigma),
            "bmaj_arcsec": float(m.bmaj_arcsec),
            "bmin_arcsec": float(m.bmin_arcsec),
            "bpa_deg": float(m.bpa_deg),
            "flagged_fraction": float(m.flagged_fraction),
            "timings_s": MetadataValue.json(m.timings_s),
            "chan_bin": int(m.chan_bin),
            "subbands_in_one_window": bool(m.merged_spws),
            "rows_kept_fraction": float(m.rows_kept_fraction),
            "max_time_bin": int(m.max_time_bin),
            "weighting": str(m.weighting),
            "mgain": float(m.mgain),
            "initial_images": str(m.initial_images or m.imager),  # ducc0's PSF and dirty image, or the imager's
            "effective_uv_cells": float(m.effective_uv_cells or 0.0),
            "warnings": MetadataValue.json(m.warnings),
            "log": MetadataValue.path(log_path),
            "ms": MetadataValue.path(ms["path"]),
            "code_version": __version__,
            "n_detections": int(m.n_detections or 0),
            # catalogue sources beyond the edge subtracted before imaging, and of how many inside the field the
            # drift through the beam's varying part (contimg.image.subtract): numbers, to plot
            "outside_subtracted_n": int((m.outside_subtracted or {}).get("n_sources", 0)),
            "outside_subtracted_jy": float((m.outside_subtracted or {}).get("apparent_flux_jy", 0.0)),
            "drifting_subtracted_n": int((m.outside_subtracted or {}).get("n_drifting", 0)),
            # catalogue sources the masked clean went deeper at (sparse arrays: contimg.image.known_sources)
            "known_sources_in_mask_n": int(m.known_sources_in_mask or 0),
            **_science_metadata(m.science_grade, sq),
        },
        check_results=[
            AssetCheckResult(
                check_name="image_quality",
                passed=verdict.passed,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "problems": MetadataValue.json(verdict.problems),
                    "rms_over_expected": verdict.rms_over_expected,
                    **_science_metadata(m.science_grade, sq),
                },
            )
        ],
    )
