"""caltable_set: bandpass and gain tables solved on a calibrator transit, registered with a validity window."""

import time

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg import __version__
from contimg.catalogue.ingest import current_ms, record_timing, upsert_group
from contimg.calibrate.registry_rules import DEFAULT_VALIDITY_H
from contimg.catalogue.registry import register_set
from contimg.core.settings import window_slug
from contimg_assets.measurement_set import measurement_set
from contimg_assets.partitions import FIVE_MIN
from contimg_resources import CasaRunner, Catalogue, StorageLayout


@asset(partitions_def=FIVE_MIN, deps=[measurement_set], pool="casa", group_name="stream", code_version=__version__,
       kinds={"casa"}, description="Calibration tables (B, G) from a calibrator transit; only for calibrator windows.")
def caltable_set(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue,
                 casa: CasaRunner) -> MaterializeResult:
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
        m = casa.run(context, "calibrate", [ms["path"], "--out", out_dir, "--set-name", slug],
                     log_name=f"calibrate-{slug}", report_path=layout.scratch / f"calibrate-{slug}.json", layout=layout)
        status = "active" if m["quality_ok"] else "failed"
        register_set(conn, set_name=slug, window_key=window, calibrator=m["calibrator"], source_ms=ms["path"],
                     transit_mjd=m["plan"]["transit_mjd"], tables=m["tables"], status=status, refant=str(m["refant"]),
                     solver_version=m["solver_version"], solver_params=m["solver_params"],
                     quality={t["type"]: t["quality"] for t in m["tables"]}, reason="; ".join(m["problems"]) or None)
        upsert_group(conn, window, calibrator=m["calibrator"])
        record_timing(conn, window, "caltable_set", time.perf_counter() - t0, detail=m["timings_s"], run_id=context.run_id)
    finally:
        conn.close()
    if status == "failed":
        raise Failure(description=f"calibration of {window} on {m['calibrator']} failed quality: {'; '.join(m['problems'])}",
                      metadata={"bandpass_plot": MetadataValue.path(m["bandpass_png"])}, allow_retries=False)
    rows = "\n".join(f"| {t['name']} | {t['type']} | {t['order']} | {100 * t['quality']['flagged_fraction']:.1f}% | "
                     f"{t['quality']['median_snr']:.0f} |" for t in m["tables"])
    return MaterializeResult(metadata={
        "set_name": slug, "calibrator": m["calibrator"], "transit_mjd": float(m["plan"]["transit_mjd"]),
        "model_flux_jy": float(m["plan"]["apparent_flux_jy"]), "refant": int(m["refant"]),
        "validity_h": DEFAULT_VALIDITY_H, "tables": MetadataValue.json([t["path"] for t in m["tables"]]),
        "bandpass_plot": MetadataValue.path(m["bandpass_png"]), "timings_s": MetadataValue.json(m["timings_s"]),
        "summary": MetadataValue.md(f"Set `{slug}` on **{m['calibrator']}** (model {m['plan']['apparent_flux_jy']:.2f} Jy), "
                                    f"refant {m['refant']}, valid +/-{DEFAULT_VALIDITY_H:g} h\n\n"
                                    f"| table | type | order | flagged | median SNR |\n|---|---|---|---|---|\n{rows}"),
        "log": MetadataValue.path(m["log_path"]), "code_version": __version__,
    })
