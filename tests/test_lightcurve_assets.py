"""The photometry and variability assets on a real Dagster instance and catalogue, with synthetic images.

Five days of one field (tests/synthimages.py), recorded in the catalogue as the image asset would; one day has
a second window (an overlapping chunk) and one window failed QA. The rows are checked against the injected
truth and against an independent numpy combination of the measurements.
"""

import base64
import sqlite3

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from contimg.catalogue.db import connect
from contimg.catalogue.duck import open_duckdb
from contimg.catalogue.images import record_image
from contimg.photometry.variability import ERROR_FLOOR_FRACTION
from tests.synthimages import random_positions, write_image

pytestmark = pytest.mark.casa  # a Dagster instance: not in `make test-fast`

RA0, DEC0 = 120.0, 60.0
NPIX, PIX_DEG = 300, 10.0 / 3600
BEAM_DEG = (45.0 / 3600, 30.0 / 3600, 10.0)
PB_FWHM_DEG = 0.7
RMS_JY = 3e-3
DAYS = ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"]
WINDOWS = [f"{d}T{5 + k:02d}:{(5 * k) % 60:02d}" for k, d in enumerate(DAYS)]
EXTRA_WINDOW = "2026-02-03T07:15"  # a second chunk on day 3
FLAGGED_WINDOW = "2026-02-04T12:00"  # failed QA
N_SRC = 12
DIP_DAYS = (2, 3)  # source 0 dips by 40 % on days 3 and 4
PULL_MAX = 5.0  # |fit - truth| / err of one measurement: 5 sigma over ~70 measurements is a failure, not chance


def _image_report(pbcor):
    prefix = str(pbcor)[: -len(".pbcor.fits")]
    return {
        "image": prefix + ".pbcor.fits",
        "pbcor": prefix + ".pbcor.fits",
        "pb": prefix + ".pb.fits",
        "png": "",
        "imager": "t",
        "calibrated": True,
        "rms_jy": RMS_JY,
        "expected_rms_jy": RMS_JY,
        "peak_jy": 1.0,
        "dynamic_range": 300,
        "n_sources_5sigma": N_SRC,
        "bmaj_arcsec": 45,
        "bmin_arcsec": 30,
        "bpa_deg": 10,
        "cell_arcsec": 10,
        "size_px": NPIX,
        "flagged_fraction": 0.0,
    }


def test_photometry_and_variability_assets(layout, tmp_path, monkeypatch):
    from contimg_assets.definitions import defs
    from contimg_assets.photometry import photometry
    from contimg_assets.variability import variability

    rng = np.random.default_rng(99)
    pos = random_positions(rng, N_SRC, RA0, DEC0, 0.4, 6 * BEAM_DEG[0])
    flux = np.exp(rng.uniform(np.log(0.1), np.log(1.0), N_SRC))
    flux[0] = 0.5
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "source_id,ra_deg,dec_deg,flux_jy,spectral_index\n"
        + "".join(
            f"S{i:02d},{a:.6f},{d:.6f},{s:.4f},-0.7\n" for i, ((a, d), s) in enumerate(zip(pos, flux, strict=True))
        )
    )
    truth = {}
    conn = connect(layout.catalogue)
    for window in [*WINDOWS, EXTRA_WINDOW, FLAGGED_WINDOW]:
        day = DAYS.index(window[:10])
        s_day = flux.copy()
        if day in DIP_DAYS:
            s_day[0] *= 0.6
        truth[window] = s_day
        path = write_image(
            layout.products / window.replace(":", ""),
            ra0=RA0,
            dec0=DEC0,
            npix=NPIX,
            pix_deg=PIX_DEG,
            beam_deg=BEAM_DEG,
            pb_fwhm_deg=PB_FWHM_DEG,
            sources=[(a, d, s) for (a, d), s in zip(pos, s_day, strict=True)],
            rms_jy=RMS_JY,
            rng=rng,
            window=window,
        )
        status = "flagged" if window == FLAGGED_WINDOW else "ok"
        record_image(conn, window, "x.ms", _image_report(path), status=status, reason="rms high", run_id=None)
    conn.close()

    instance = DagsterInstance.ephemeral()
    monkeypatch.delenv("CONTIMG_REFERENCE_CATALOG", raising=False)
    res = materialize([photometry], partition_key=WINDOWS[0], instance=instance, resources=defs.resources)
    assert res.success
    (mat,) = res.asset_materializations_for_node("photometry")
    assert "CONTIMG_REFERENCE_CATALOG is unset" in mat.metadata["skipped"].value

    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec\n1,2\n")
    monkeypatch.setenv("CONTIMG_REFERENCE_CATALOG", str(bad))
    res = materialize([photometry], partition_key=WINDOWS[0], instance=instance, resources=defs.resources)
    assert res.success, "a bad reference catalogue is recorded, it does not fail the chunk's run"
    (mat,) = res.asset_materializations_for_node("photometry")
    assert "missing column(s) ra_deg, dec_deg" in mat.metadata["skipped"].value

    monkeypatch.setenv("CONTIMG_REFERENCE_CATALOG", str(ref))
    for window in [*WINDOWS, EXTRA_WINDOW, FLAGGED_WINDOW]:
        res = materialize([photometry], partition_key=window, instance=instance, resources=defs.resources)
        assert res.success
    con = sqlite3.connect(layout.catalogue)
    con.row_factory = sqlite3.Row
    status = {r["window_key"]: dict(r) for r in con.execute("SELECT * FROM photometry_images")}
    assert status[FLAGGED_WINDOW]["status"] == "skipped" and "failed QA: rms high" in status[FLAGGED_WINDOW]["reason"]
    assert all(status[w]["status"] == "measured" and status[w]["n_measured"] == N_SRC for w in [*WINDOWS, EXTRA_WINDOW])
    rows = [dict(r) for r in con.execute("SELECT * FROM photometry")]
    assert len(rows) == N_SRC * (len(WINDOWS) + 1)
    for r in rows:
        assert abs(r["flux_jy"] - truth[r["window_key"]][int(r["source_id"][1:])]) < PULL_MAX * r["err_jy"]

    res = materialize([variability], partition_key=DAYS[-1], instance=instance, resources=defs.resources)
    assert res.success
    (mat,) = res.asset_materializations_for_node("variability")
    md = mat.metadata["light_curves"].value
    assert md.startswith("![light curves](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")"))[:8] == b"\x89PNG\r\n\x1a\n"
    assert [c["source_id"] for c in mat.metadata["candidates"].value] == ["S00"]
    assert mat.asset_key == AssetKey("variability")

    var = {r["source_id"]: dict(r) for r in con.execute("SELECT * FROM variables WHERE date = ?", (DAYS[-1],))}
    assert var["S00"]["variable"] == 1 and "dip" in var["S00"]["rule"] and var["S00"]["dip_start"] == DAYS[2]
    assert sum(v["variable"] for v in var.values()) == 1
    con.close()

    # the lightcurves view against an independent combination of the photometry rows (weights pb^2 / rms^2)
    duck = open_duckdb(layout.catalogue)
    view = duck.sql(
        "SELECT source_id, date, flux_jy, err_jy, n_images, flux_norm_jy, scale FROM lightcurves"
    ).fetchall()
    duck.close()
    assert len(view) == N_SRC * len(DAYS)
    for sid, date, f, e, n, fn, scale in view:
        mine = [r for r in rows if r["source_id"] == sid and r["window_key"][:10] == date]
        w = np.array([r["pb"] ** 2 / r["rms_jy"] ** 2 for r in mine])
        s = np.array([r["flux_jy"] for r in mine])
        err = np.array([r["err_jy"] for r in mine])
        assert n == len(mine) == (2 if date == "2026-02-03" else 1)
        assert f == pytest.approx(np.sum(w * s) / np.sum(w), rel=1e-12)
        assert e == pytest.approx(np.sqrt(np.sum(w**2 * err**2)) / np.sum(w), rel=1e-12)
        assert fn == pytest.approx(f / (scale if scale is not None else 1.0), rel=1e-12)
    # the variables row's V and eta from the view's normalised points (floor added as the module documents)
    for sid in ("S00", "S05"):
        pts = sorted((d, fn, e / (f / fn)) for s_, d, f, e, n, fn, scale in view if s_ == sid)
        fl = np.array([p[1] for p in pts])
        ee = np.hypot(np.array([p[2] for p in pts]), ERROR_FLOOR_FRACTION * fl)
        wm = np.sum(fl / ee**2) / np.sum(1 / ee**2)
        assert var[sid]["v"] == pytest.approx(np.std(fl, ddof=1) / np.mean(fl), rel=1e-9)
        assert var[sid]["eta"] == pytest.approx(np.sum((fl - wm) ** 2 / ee**2) / (len(fl) - 1), rel=1e-9)


def test_variability_schedule_requests_the_previous_day_after_the_mosaic():
    from datetime import UTC, datetime

    from dagster import build_schedule_context

    from contimg_assets.definitions import defs

    def minute_of_day(cron: str) -> int:
        minute, hour = cron.split()[:2]
        return 60 * int(hour) + int(minute)

    sched = defs.get_schedule_def("variability_schedule")
    mosaic = defs.get_schedule_def("nightly_mosaic_schedule")
    assert sched.execution_timezone == "UTC" and sched.job_name == "variability_job"
    # after the mosaic's tick on the same day: the day's photometry runs have long finished
    assert minute_of_day(sched.cron_schedule) > minute_of_day(mosaic.cron_schedule)
    ctx = build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 26, 3, 45, tzinfo=UTC), repository_def=defs.get_repository_def()
    )
    reqs = sched.evaluate_tick(ctx).run_requests
    assert [r.partition_key for r in reqs] == ["2026-01-25"]
