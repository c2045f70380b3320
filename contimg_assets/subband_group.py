"""subband_group: the checked set of subband files of one 5-minute window."""

import time

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg import __version__
from contimg.catalogue.ingest import record_timing
from contimg.ingest.scan import IngestSettings, NoFilesError, assemble_group
from contimg_assets.code_versions import code_version_for
from contimg_assets.partitions import FIVE_MIN
from contimg_resources import Catalogue, StorageLayout


@asset(
    partitions_def=FIVE_MIN,
    group_name="stream",
    code_version=code_version_for(__name__),
    kinds={"hdf5"},
    description="The chunk's UVH5 subband files, each opened and checked; corrupt ones recorded and left out.",
)
def subband_group(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue) -> MaterializeResult:
    window = context.partition_key
    layout = storage.layout()
    t0 = time.perf_counter()
    conn = catalogue.connect()
    try:
        try:
            group = assemble_group(layout.ingest, window, conn, IngestSettings.from_env())
        except NoFilesError as err:
            raise Failure(description=str(err), allow_retries=False) from err
        record_timing(conn, window, "subband_group", time.perf_counter() - t0, run_id=context.run_id)
    finally:
        conn.close()
    total = sum(group["sizes"].values())
    rows = "\n".join(f"| {p.rsplit('/', 1)[-1]} | {s / 1e6:.1f} |" for p, s in group["sizes"].items())
    corrupt = "".join(f"\n- corrupt, left out: `{p}`: {r}" for p, r in group["corrupt"])
    summary = (
        f"**{len(group['files'])}/16 subbands** for window `{window}`, {total / 1e9:.2f} GB; "
        f"missing {group['missing_subbands'] or 'none'}{corrupt}\n\n| file | MB |\n|---|---|\n{rows}"
    )
    return MaterializeResult(
        metadata={
            "n_subbands": len(group["files"]),
            "missing_subbands": MetadataValue.json(group["missing_subbands"]),
            "corrupt_files": MetadataValue.json([p for p, _ in group["corrupt"]]),
            "total_bytes": total,
            "files": MetadataValue.json(group["files"]),
            "summary": MetadataValue.md(summary),
            "code_version": __version__,
        }
    )
