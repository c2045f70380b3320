"""measurement_set: the chunk converted to one CASA Measurement Set (a CASA child job)."""


from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg import __version__
from contimg.catalogue.ingest import get_group, record_measurement_set, record_timing, upsert_group
from contimg.core.settings import window_slug
from contimg_assets.code_versions import code_version_for
from contimg_assets.partitions import FIVE_MIN
from contimg_assets.subband_group import subband_group
from contimg_resources import CasaRunner, Catalogue, StorageLayout


def _dir_size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@asset(partitions_def=FIVE_MIN, deps=[subband_group], pool="casa", group_name="stream", code_version=code_version_for(__name__, "contimg.convert.job"),
       kinds={"casa"}, description="One Measurement Set per chunk: 16 SPWs ascending, phased to the meridian field.")
def measurement_set(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue,
                    casa: CasaRunner) -> MaterializeResult:
    window = context.partition_key
    layout = storage.layout()
    slug = window_slug(window)
    conn = catalogue.connect()
    try:
        group = get_group(conn, window)
        if not group or not group["files"]:
            raise Failure(description=f"no checked subband files for window {window}: materialize subband_group first")
        ms_path = layout.ms_path(window)
        try:
            metrics = casa.run(context, "convert", [*group["files"], "--out", ms_path, "--scratch", layout.scratch],
                               log_name=f"convert-{slug}", report_path=layout.scratch / f"convert-{slug}.json",
                               layout=layout)
        except Failure as err:
            upsert_group(conn, window, state="failed", error=f"conversion: {err.description.splitlines()[0]}")
            raise
        size = _dir_size(ms_path)
        record_measurement_set(conn, window, metrics, size_bytes=size, run_id=context.run_id)
        record_timing(conn, window, "measurement_set", metrics["seconds"], detail=metrics.get("timings_s"),
                      run_id=context.run_id)
        upsert_group(conn, window, state="converted", error="")
    finally:
        conn.close()
    checks = metrics.get("checks", {})
    check_rows = "\n".join(f"| {k} | {'ok' if c['passed'] else 'FAILED'} | {c['value']} | {c['limit']} |"
                           for k, c in checks.items())
    summary = (f"`{ms_path}`: {metrics['n_rows']} rows, {metrics['n_antennas']} antennas, {metrics['n_channels']} "
               f"channels in 16 SPWs, missing subbands {metrics['missing_subbands'] or 'none'}, "
               f"{100 * metrics['flagged_fraction']:.1f}% flagged, converted in {metrics['seconds']:.1f} s\n\n"
               f"| check | result | value | limit |\n|---|---|---|---|\n{check_rows}")
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(ms_path)),
        "size_bytes": size,
        "n_rows": metrics["n_rows"],
        "missing_subbands": MetadataValue.json(metrics["missing_subbands"]),
        "flagged_fraction": float(metrics["flagged_fraction"]),
        "phase_center_ra_deg": float(metrics["phase_center_ra_deg"]),
        "phase_center_dec_deg": float(metrics["phase_center_dec_deg"]),
        "mid_mjd": float(metrics["mid_mjd"]),
        "checks": MetadataValue.json(checks),
        "checks_passed": all(c["passed"] for c in checks.values()),
        "timings_s": MetadataValue.json(metrics.get("timings_s", {})),
        "seconds": float(metrics["seconds"]),
        "peak_rss_mb": float(metrics.get("peak_rss_mb", 0.0)),
        "log": MetadataValue.path(metrics["log_path"]),
        "summary": MetadataValue.md(summary),
        "code_version": __version__,
        "upstream_files": MetadataValue.json(group["files"]),
    })
