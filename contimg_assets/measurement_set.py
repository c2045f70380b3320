"""measurement_set: the chunk converted to one CASA Measurement Set (a CASA child job)."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg import __version__
from contimg.catalogue.ingest import get_group, record_measurement_set, record_timing, upsert_group
from contimg.convert.report import ConvertReport
from contimg.core.settings import window_slug
from contimg_assets.code_versions import code_version_for
from contimg_assets.partitions import FIVE_MIN
from contimg_assets.subband_group import subband_group
from contimg_resources import CasaRunner, Catalogue, StorageLayout


def _dir_size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@asset(
    partitions_def=FIVE_MIN,
    deps=[subband_group],
    pool="casa",
    group_name="stream",
    code_version=code_version_for(__name__, "contimg.convert.job"),
    kinds={"casa"},
    description="One Measurement Set per chunk: 16 SPWs ascending, phased to the meridian field.",
)
def measurement_set(
    context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue, casa: CasaRunner
) -> MaterializeResult:
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
            result = casa.run(
                context,
                "convert",
                [*group["files"], "--out", ms_path, "--scratch", layout.scratch],
                log_name=f"convert-{slug}",
                report_path=layout.scratch / f"convert-{slug}.json",
                layout=layout,
            )
        except Failure as err:
            upsert_group(conn, window, state="failed", error=f"conversion: {err.description.splitlines()[0]}")
            raise
        # the runner adds its own two figures to the job's report
        job_figures = dict(result)
        log_path, seconds = job_figures.pop("log_path"), float(job_figures.pop("seconds"))
        rep = ConvertReport.from_dict(job_figures)
        size = _dir_size(ms_path)
        record_measurement_set(conn, window, rep, size_bytes=size, run_id=context.run_id)
        record_timing(conn, window, "measurement_set", seconds, detail=rep.timings_s, run_id=context.run_id)
        upsert_group(conn, window, state="converted", error="")
    finally:
        conn.close()
    check_rows = "\n".join(
        f"| {k} | {'ok' if c['passed'] else 'FAILED'} | {c['value']} | {c['limit']} |" for k, c in rep.checks.items()
    )
    summary = (
        f"`{ms_path}`: {rep.n_rows} rows, {rep.n_antennas} antennas, {rep.n_channels} channels in 16 SPWs "
        f"({rep.freq_min_hz / 1e6:.6f}-{rep.freq_max_hz / 1e6:.6f} MHz), missing subbands "
        f"{rep.missing_subbands or 'none'}, {100 * rep.flagged_fraction:.1f}% flagged, converted in {seconds:.1f} s"
        f"\n\n| check | result | value | limit |\n|---|---|---|---|\n{check_rows}"
    )
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(ms_path)),
            "size_bytes": size,
            "n_rows": rep.n_rows,
            "missing_subbands": MetadataValue.json(rep.missing_subbands),
            "flagged_fraction": float(rep.flagged_fraction),
            "phase_center_ra_deg": float(rep.phase_center_ra_deg),
            "phase_center_dec_deg": float(rep.phase_center_dec_deg),
            "mid_mjd": float(rep.mid_mjd),
            "freq_min_hz": float(rep.freq_min_hz),
            "freq_max_hz": float(rep.freq_max_hz),
            "checks": MetadataValue.json(rep.checks),
            "checks_passed": rep.checks_passed,
            "timings_s": MetadataValue.json(rep.timings_s),
            "seconds": seconds,
            "peak_rss_mb": float(rep.peak_rss_mb),
            "log": MetadataValue.path(log_path),
            "summary": MetadataValue.md(summary),
            "code_version": __version__,
            "upstream_files": MetadataValue.json(group["files"]),
        }
    )
