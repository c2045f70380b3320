"""variability: the day's light-curve points, flux-scale normalisation and the variability search."""

import base64
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from contimg.catalogue.photometry import day_range, measurements_between, record_day
from contimg.core.config import read
from contimg.core.refcat import read_reference_catalog
from contimg.photometry.lightcurves import analyse
from contimg.photometry.plot import plot_light_curves
from contimg.photometry.reference import compact_ids
from contimg_assets.code_versions import code_version_for
from contimg_assets.partitions import DAILY
from contimg_assets.photometry import photometry
from contimg_resources import Catalogue, StorageLayout

CODE_VERSION = code_version_for(__name__, None)
# The sliding window of days the statistics cover: ESEs last days to weeks, and a month holds the baseline of
# a dip of up to MAX_DIP_DAYS (5) with room; the rules' false-positive rate over 30 days is 4.3e-3 per source
# (contimg.photometry.variability.false_positive_rates).
WINDOW_DAYS = 30


@asset(
    partitions_def=DAILY,
    deps=[photometry],
    group_name="nightly",
    code_version=CODE_VERSION,
    kinds={"python"},
    description=f"Daily light-curve points and the variability search over the last {WINDOW_DAYS} days; "
    "candidates' light curves plotted.",
)
def variability(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue) -> MaterializeResult:
    date = context.partition_key
    first, last = day_range(date, WINDOW_DAYS)
    conn = catalogue.connect()
    try:
        rows = measurements_between(conn, first, last)
        if not rows:
            reason = f"no photometry between {first} and {last}"
            context.log.info(reason)
            return MaterializeResult(metadata={"skipped": reason, "n_sources": 0})
        ref_path = read("CONTIMG_REFERENCE_CATALOG")
        eligible = compact_ids(read_reference_catalog(ref_path)) if ref_path else None
        points, factors, results = analyse(rows, eligible_refs=eligible)
        factor, n_refs = factors.get(date, (float("nan"), 0))
        record_day(
            conn,
            date,
            factors=factors,
            results=[r.as_dict() for r in results],
            window_days=WINDOW_DAYS,
            run_id=context.run.run_id,
            code_version=CODE_VERSION,
        )
    finally:
        conn.close()
    candidates = [r for r in results if r.variable]
    metadata = {
        "n_sources": len(results),
        "n_days": len(factors),
        "n_candidates": len(candidates),
        "candidates": MetadataValue.json([{"source_id": r.source_id, "rule": r.rule} for r in candidates]),
        "flux_scale": float(factor) if factor == factor else "not normalised",
        "n_flux_scale_refs": int(n_refs),
    }
    if candidates:
        png = plot_light_curves(
            points,
            {r.source_id: r.rule for r in candidates},
            storage.layout().products / "lightcurves" / f"{date}.png",
            title=f"variability candidates {first} .. {last}",
        )
        data = base64.b64encode(Path(png).read_bytes()).decode()
        metadata["plot"] = MetadataValue.path(str(png))
        metadata["light_curves"] = MetadataValue.md(f"![light curves](data:image/png;base64,{data})")
    return MaterializeResult(metadata=metadata)
