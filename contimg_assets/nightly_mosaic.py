"""nightly_mosaic: the day's images in one primary-beam-weighted mosaic (gap tolerant)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from contimg import __version__
from contimg.catalogue.mosaics import WINDOWS_PER_DAY, day_images, record_mosaic, record_mosaic_failure
from contimg.core.config import SETTINGS, read
from contimg.mosaic.build import build_mosaic
from contimg.mosaic.inputs import read_input
from contimg_assets.code_versions import code_version_for
from contimg_assets.image import image
from contimg_assets.partitions import DAILY
from contimg_resources import Catalogue, StorageLayout

DEFAULT_MIN_COVERAGE = SETTINGS["CONTIMG_MIN_COVERAGE"].default  # 0.9: warn below this fraction of 288 windows


@asset(
    partitions_def=DAILY,
    deps=[image],
    group_name="nightly",
    code_version=code_version_for(__name__),
    kinds={"fits"},
    op_tags={"contimg/stage": "mosaic"},
    check_specs=[
        AssetCheckSpec(
            "coverage",
            asset="nightly_mosaic",
            description="warns when fewer than CONTIMG_MIN_COVERAGE of the day's 288 windows are in",
        )
    ],
    description="Primary-beam-weighted mosaic of the day's images that passed QA; coverage and gaps recorded.",
)
def nightly_mosaic(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue) -> MaterializeResult:
    date = context.partition_key
    run_id = context.run.run_id
    layout = storage.layout()
    min_cov = read("CONTIMG_MIN_COVERAGE")
    pb_floor = read("CONTIMG_PB_FLOOR")
    conn = catalogue.connect()
    try:
        ok, excluded, gaps = day_images(conn, date)
        if not ok:
            reason = (
                f"no images passed QA for {date} "
                f"({len(excluded)} flagged, {len(gaps)} of {WINDOWS_PER_DAY} windows empty)"
            )
            record_mosaic_failure(conn, date, reason, excluded=excluded, run_id=run_id)
            raise Failure(description=reason, allow_retries=False)
        res = build_mosaic(
            [read_input(r["image"], r["window"]) for r in ok],
            layout.mosaic_path(date),
            pb_floor=pb_floor,
            scratch=layout.scratch,
        )
        coverage = record_mosaic(
            conn,
            date,
            path=str(res.path),
            noise_path=str(res.noise_path),
            png_path=str(res.png_path) if res.png_path else None,
            n_images=res.n_images,
            gaps=gaps,
            excluded=excluded,
            run_id=run_id,
        )
    finally:
        conn.close()
    # a red science grade flags the image (contimg.image.qa.image_verdict): its reason names the figures
    n_red = sum("science QA red" in (e.get("reason") or "") for e in excluded)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(res.path)),
            "noise_map": MetadataValue.path(str(res.noise_path)),
            "preview": MetadataValue.path(str(res.png_path)),
            "n_images": res.n_images,
            "coverage": float(coverage),
            "n_gaps": len(gaps),
            "excluded": MetadataValue.json(excluded),
            "n_excluded_science_red": n_red,
            "shape": MetadataValue.json(list(res.shape)),
            "cell_arcsec": float(res.cell_arcsec),
            "code_version": __version__,
            "summary": MetadataValue.md(
                f"**{date}**: {res.n_images}/{WINDOWS_PER_DAY} windows "
                f"({100 * coverage:.1f}%), {len(excluded)} left out by QA"
                + (f" ({n_red} of them science QA red)" if n_red else "")
            ),
        },
        check_results=[
            AssetCheckResult(
                check_name="coverage",
                passed=coverage >= min_cov,
                severity=AssetCheckSeverity.WARN,
                metadata={"coverage": float(coverage), "threshold": min_cov, "n_gaps": len(gaps)},
            )
        ],
    )
