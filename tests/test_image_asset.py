"""The image asset materialized on a real instance: the real converter and image child jobs on a small
uncalibrated chunk, its metadata, its QA check and its catalogue row."""

import json
import shutil
import sqlite3

import numpy as np
import pytest
from astropy.io import fits
from dagster import AssetKey, DagsterInstance, materialize

from contimg.sim import simulate

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

WINDOW = "2026-01-25T00:00"
# what the asset's metadata has held since the image asset was written: the Dagster UI and the docs name them
METADATA_KEYS = {
    "fits",
    "pbcor_fits",
    "thumbnail",
    "summary",
    "imager",
    "calibrated",
    "calset",
    "caltables",
    "calset_window",
    "data_column",
    "rms_jy",
    "expected_rms_jy",
    "peak_jy",
    "dynamic_range",
    "n_sources_5sigma",
    "bmaj_arcsec",
    "bmin_arcsec",
    "bpa_deg",
    "flagged_fraction",
    "timings_s",
    "chan_bin",
    "subbands_in_one_window",
    "rows_kept_fraction",
    "max_time_bin",
    "weighting",
    "mgain",
    "initial_images",
    "effective_uv_cells",
    "warnings",
    "log",
    "ms",
    "code_version",
    # science QA (#22): the source list's length; the grade says when no reference catalogue was set
    "n_detections",
    "science_grade",
    # catalogue sources beyond the image's edge subtracted before imaging (0 without a reference catalogue)
    "outside_subtracted_n",
    "drifting_subtracted_n",
    "outside_subtracted_jy",
    "known_sources_in_mask_n",
}
ARCSEC_PER_DEG = 3600.0
# the catalogue row and the metadata carry the report's floats (JSON, then SQLite REAL): equal to 1e-12
FLOAT_RTOL = 1e-12


def test_materialize_image_of_an_uncalibrated_chunk(layout, tmp_path, monkeypatch):
    from contimg_assets.definitions import defs
    from contimg_assets.image import image
    from contimg_assets.measurement_set import measurement_set
    from contimg_assets.subband_group import subband_group

    monkeypatch.setenv("CONTIMG_ALLOW_UNCALIBRATED", "1")
    monkeypatch.setenv("CONTIMG_IMAGING_CONFIG", json.dumps({"max_size_px": 512, "niter": 200, "threads": 1}))
    simulate(
        tmp_path / "sim",
        "2026-01-25T00:00:00",
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=3,
        seed=6,
        gains=False,
    )
    for f in (tmp_path / "sim").glob("*.hdf5"):
        shutil.copyfile(f, layout.ingest / f.name)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [subband_group, measurement_set, image], partition_key=WINDOW, instance=instance, resources=defs.resources
    )
    assert result.success

    meta = {
        k: v.value
        for k, v in instance.get_latest_materialization_event(AssetKey("image")).asset_materialization.metadata.items()
    }
    assert set(meta) == METADATA_KEYS
    assert meta["calibrated"] is False and meta["calset"] == "NONE" and meta["calset_window"] == "NONE"
    assert meta["caltables"] == [] and meta["data_column"] == "DATA" and meta["ms"] == str(layout.ms_path(WINDOW))
    assert meta["initial_images"] in ("ducc0", meta["imager"]) and meta["imager"] in ("wsclean", "tclean")
    prefix = layout.image_prefix(WINDOW)
    assert meta["fits"] == f"{prefix}.fits" and meta["pbcor_fits"] == f"{prefix}.pbcor.fits"
    assert meta["thumbnail"] == f"{prefix}.png"
    # the beam the metadata reports is the one in the FITS file the imager wrote
    header = fits.getheader(meta["fits"])
    assert meta["bmaj_arcsec"] == pytest.approx(header["BMAJ"] * ARCSEC_PER_DEG, rel=FLOAT_RTOL)
    assert meta["bmin_arcsec"] == pytest.approx(header["BMIN"] * ARCSEC_PER_DEG, rel=FLOAT_RTOL)
    assert meta["rms_jy"] == pytest.approx(header["QARMS"], rel=1e-6)  # FITS keeps ~7 significant digits
    assert meta["peak_jy"] == pytest.approx(float(np.nanmax(fits.getdata(meta["fits"]))), rel=1e-6)

    # the QA check: rms within 3x the radiometer's; uncalibrated is allowed here, and said
    (check,) = result.get_asset_check_evaluations()
    ratio = meta["rms_jy"] / meta["expected_rms_jy"]
    assert check.check_name == "image_quality" and check.passed == (ratio <= 3.0)
    assert check.metadata["rms_over_expected"].value == pytest.approx(ratio, rel=FLOAT_RTOL)
    problems = check.metadata["problems"].value
    assert problems[-1] == "uncalibrated" and (len(problems) == 1) == (ratio <= 3.0)

    con = sqlite3.connect(layout.catalogue)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM images WHERE window_key = ?", (WINDOW,)).fetchone())
    con.close()
    assert row["status"] == ("ok" if ratio <= 3.0 else "flagged") and row["reason"] == "; ".join(problems)
    assert row["image_path"] == meta["fits"] and row["pbcor_path"] == meta["pbcor_fits"]
    assert row["pb_path"] == f"{prefix}.pb.fits" and row["png_path"] == meta["thumbnail"]
    assert row["calibrated"] == 0 and row["calset"] is None and json.loads(row["caltables"]) == []
    for key in (
        "rms_jy",
        "expected_rms_jy",
        "peak_jy",
        "dynamic_range",
        "bmaj_arcsec",
        "bmin_arcsec",
        "bpa_deg",
        "flagged_fraction",
    ):
        assert row[key] == pytest.approx(meta[key], rel=FLOAT_RTOL), key
    assert row["n_sources"] == meta["n_sources_5sigma"] and row["size_px"] == fits.getheader(meta["fits"])["NAXIS1"]
    assert row["cell_arcsec"] == pytest.approx(abs(header["CDELT2"]) * ARCSEC_PER_DEG, rel=1e-6)
    assert row["mid_mjd"] is not None and row["code_version"] == meta["code_version"]
