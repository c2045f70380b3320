"""The one Definitions object of the platform (loaded by workspace.yaml)."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from contimg_assets.caltable_set import caltable_set
from contimg_assets.housekeeping import housekeeping_job
from contimg_assets.image import image
from contimg_assets.measurement_set import measurement_set
from contimg_assets.nightly_mosaic import nightly_mosaic
from contimg_assets.partitions import DAILY, FIVE_MIN
from contimg_assets.photometry import photometry
from contimg_assets.subband_group import subband_group
from contimg_assets.variability import variability
from contimg_resources import CasaRunner, Catalogue, StorageLayout
from schedules import build_mosaic_schedule, build_variability_schedule
from schedules.housekeeping import housekeeping_schedule
from sensors import build_backfill_retry_sensor, build_ingest_sensor, build_run_failure_sensor

CHUNK_ASSETS = [subband_group, measurement_set, image, photometry]

# One run per 5-minute window carries the whole chain of that window (launching a run costs seconds).
chunk_job = define_asset_job(
    "chunk_job",
    selection=AssetSelection.assets(*CHUNK_ASSETS),
    partitions_def=FIVE_MIN,
    description="Everything for one 5-minute chunk, in one run.",
)
# Calibrator windows also solve their tables, before their own image.
calibrator_chunk_job = define_asset_job(
    "calibrator_chunk_job",
    selection=AssetSelection.assets(*CHUNK_ASSETS, caltable_set),
    partitions_def=FIVE_MIN,
    description="A calibrator transit's chunk: convert, solve, then image.",
)

mosaic_job = define_asset_job(
    "nightly_mosaic_job",
    selection=AssetSelection.assets(nightly_mosaic),
    partitions_def=DAILY,
    description="The day's primary-beam-weighted mosaic.",
)

variability_job = define_asset_job(
    "variability_job",
    selection=AssetSelection.assets(variability),
    partitions_def=DAILY,
    description="The day's light-curve points and the variability search.",
)

defs = Definitions(
    assets=[*CHUNK_ASSETS, caltable_set, nightly_mosaic, variability],
    jobs=[chunk_job, calibrator_chunk_job, mosaic_job, variability_job, housekeeping_job],
    sensors=[
        build_ingest_sensor(chunk_job, calibrator_chunk_job),
        build_run_failure_sensor([chunk_job, calibrator_chunk_job]),
        build_backfill_retry_sensor([chunk_job, calibrator_chunk_job]),
    ],
    schedules=[build_mosaic_schedule(mosaic_job), build_variability_schedule(variability_job), housekeeping_schedule],
    resources={"storage": StorageLayout(), "catalogue": Catalogue(), "casa": CasaRunner()},
)
