"""photometry: forced photometry of the reference catalogue's sources in the window's primary-beam-corrected image."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from contimg.catalogue.images import current_image
from contimg.catalogue.photometry import record_photometry, record_photometry_skip
from contimg.core.config import read
from contimg.core.refcat import read_reference_catalog
from contimg.photometry.forced import measure_image
from contimg_assets.code_versions import code_version_for
from contimg_assets.image import image
from contimg_assets.partitions import FIVE_MIN
from contimg_resources import Catalogue

CODE_VERSION = code_version_for(__name__, None)


def skip_reason(reference_catalog, image_row: dict | None, window: str) -> str | None:
    """Why the window's image is not measured, or None when it is."""
    if reference_catalog is None:
        return "no reference catalogue: CONTIMG_REFERENCE_CATALOG is unset"
    if image_row is None:
        return f"no image for window {window}"
    if image_row["status"] != "ok":
        return f"image failed QA: {image_row.get('reason') or image_row['status']}"
    if not image_row.get("pbcor_path"):
        return f"the image of window {window} has no primary-beam-corrected file"
    return None


@asset(
    partitions_def=FIVE_MIN,
    deps=[image],
    group_name="stream",
    code_version=CODE_VERSION,
    kinds={"python"},
    description="Forced photometry at the reference catalogue's positions inside the primary beam's 20 % level "
    "(skipped, with the reason recorded, without a reference catalogue or when the image failed QA).",
)
def photometry(context: AssetExecutionContext, catalogue: Catalogue) -> MaterializeResult:
    window = context.partition_key
    ref_path = read("CONTIMG_REFERENCE_CATALOG")
    conn = catalogue.connect()
    try:
        img = current_image(conn, window)
        reason = skip_reason(ref_path, img, window)
        if reason:
            record_photometry_skip(
                conn,
                window,
                reason,
                image_path=(img or {}).get("pbcor_path"),
                run_id=context.run.run_id,
                code_version=CODE_VERSION,
            )
            context.log.info(f"photometry of {window} skipped: {reason}")
            return MaterializeResult(metadata={"skipped": reason, "n_measured": 0})
        try:
            sources = read_reference_catalog(ref_path)
            res = measure_image(img["pbcor_path"], sources)
        except (ValueError, OSError) as err:
            # a bad catalogue or an unmeasurable image is recorded, not raised: the chunk's run (its image
            # already made) must not fail for the science product downstream of it
            reason = f"not measured: {' '.join(str(err).split())}"
            record_photometry_skip(
                conn, window, reason, image_path=img["pbcor_path"], run_id=context.run.run_id, code_version=CODE_VERSION
            )
            context.log.warning(f"photometry of {window} {reason}")
            return MaterializeResult(metadata={"skipped": reason, "n_measured": 0})
        rows = res.rows()
        record_photometry(
            conn,
            window,
            img["pbcor_path"],
            rows,
            n_outside=res.n_outside,
            run_id=context.run.run_id,
            code_version=CODE_VERSION,
        )
    finally:
        conn.close()
    brightest = sorted(rows, key=lambda r: -r["flux_jy"])[:10]
    table = "| source | flux (mJy) | err (mJy) | pb | dist (deg) |\n| --- | --- | --- | --- | --- |\n" + "\n".join(
        f"| {r['source_id']} | {r['flux_jy'] * 1e3:.2f} | {r['err_jy'] * 1e3:.2f} | {r['pb']:.2f} "
        f"| {r['dist_deg']:.2f} |"
        for r in brightest
    )
    return MaterializeResult(
        metadata={
            "image": MetadataValue.path(img["pbcor_path"]),
            "reference_catalogue": MetadataValue.path(str(ref_path)),
            "n_measured": len(rows),
            "n_outside": int(res.n_outside),
            "brightest": MetadataValue.md(table),
        }
    )
