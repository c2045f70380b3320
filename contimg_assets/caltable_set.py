"""caltable_set: delay, bandpass and gain tables solved on a calibrator transit, registered with a validity window."""

import time

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg import __version__
from contimg.calibrate.registry_rules import DEFAULT_VALIDITY_H
from contimg.calibrate.report import CalibrateReport
from contimg.catalogue.ingest import current_ms, record_timing, upsert_group
from contimg.catalogue.registry import register_report
from contimg.core.config import read
from contimg.core.settings import window_slug
from contimg_assets.code_versions import code_version_for
from contimg_assets.measurement_set import measurement_set
from contimg_assets.partitions import FIVE_MIN
from contimg_resources import CasaRunner, Catalogue, StorageLayout


@asset(
    partitions_def=FIVE_MIN,
    deps=[measurement_set],
    pool="casa",
    group_name="stream",
    code_version=code_version_for(__name__, "contimg.calibrate.job"),
    kinds={"casa"},
    description="Calibration tables (B, G) from a calibrator transit; only for calibrator windows.",
)
def caltable_set(
    context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue, casa: CasaRunner
) -> MaterializeResult:
    window = context.partition_key
    layout = storage.layout()
    slug = window_slug(window)
    out_dir = layout.caltable_dir(window)
    conn = catalogue.connect()
    try:
        ms = current_ms(conn, window)
        if ms is None:
            raise Failure(description=f"no Measurement Set for window {window}")
        t0 = time.perf_counter()
        job_args = [ms["path"], "--out", out_dir, "--set-name", slug]
        reference = read("CONTIMG_REFERENCE_CATALOG")  # the field's sources join the calibrator's model
        if reference is not None:
            job_args += ["--reference-catalog", reference]
        result = casa.run(
            context,
            "calibrate",
            job_args,
            log_name=f"calibrate-{slug}",
            report_path=layout.scratch / f"calibrate-{slug}.json",
            layout=layout,
        )
        log_path = result.pop("log_path")  # the runner's additions to the job's report
        result.pop("seconds")
        solved = CalibrateReport.from_dict(result)
        status = register_report(conn, solved, window_key=window, source_ms=ms["path"])
        upsert_group(conn, window, calibrator=solved.calibrator)
        record_timing(
            conn, window, "caltable_set", time.perf_counter() - t0, detail=solved.timings_s, run_id=context.run.run_id
        )
    finally:
        conn.close()
    if status == "failed":
        raise Failure(
            description=f"calibration of {window} on {solved.calibrator} failed quality: {'; '.join(solved.problems)}",
            metadata={
                "bandpass_plot": MetadataValue.path(solved.bandpass_png),
                "bandpass_qa": MetadataValue.json(_bandpass_summary(solved)),
            },
            allow_retries=False,
        )
    return MaterializeResult(
        metadata={
            "set_name": slug,
            "calibrator": solved.calibrator,
            "transit_mjd": float(solved.plan.transit_mjd),
            "model_flux_jy": float(solved.plan.apparent_flux_jy),
            "refant": int(solved.refant),
            "validity_h": DEFAULT_VALIDITY_H,
            "tables": MetadataValue.json(solved.table_paths()),
            "bandpass_plot": MetadataValue.path(solved.bandpass_png),
            "bandpass_qa": MetadataValue.json(_bandpass_summary(solved)),
            "timings_s": MetadataValue.json(solved.timings_s),
            "summary": MetadataValue.md(_summary_md(slug, solved)),
            "log": MetadataValue.path(log_path),
            "code_version": __version__,
        }
    )


def _bandpass_summary(solved: CalibrateReport) -> dict:
    """The bandpass QA's verdict and array figures (the per-antenna lists stay in the report)."""
    qa = solved.bandpass_qa
    return {
        "ok": qa.ok,
        "flagged_fraction": qa.flagged_fraction,
        "median_amp_roughness": qa.median_amp_roughness,
        "median_phase_roughness_deg": qa.median_phase_roughness_deg,
        "outlier_antennas": qa.outlier_antennas,
        "outlier_cells": qa.outlier_cells,
        "problems": qa.problems,
    }


def _summary_md(slug: str, solved: CalibrateReport) -> str:
    rows = "\n".join(
        f"| {t.name} | {t.type} | {t.order} | {100 * t.quality.flagged_fraction:.1f}% | {t.quality.median_snr:.0f} |"
        for t in solved.tables
    )
    return (
        f"Set `{slug}` on **{solved.calibrator}** (model {solved.plan.apparent_flux_jy:.2f} Jy), "
        f"refant {solved.refant}, valid +/-{DEFAULT_VALIDITY_H:g} h\n\n"
        f"| table | type | order | flagged | median SNR |\n|---|---|---|---|---|\n{rows}"
    )
