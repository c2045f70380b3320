"""A small but complete catalogue written through every writer of ``contimg.catalogue``, backend-neutral.

Used to compare the SQLite and PostgreSQL backends: the same calls must leave the same rows and give the
same answers to the views and the operator queries.
"""

from __future__ import annotations

from contimg.catalogue.images import record_image, record_image_failure
from contimg.catalogue.ingest import (
    record_calibrator_transit,
    record_file,
    record_measurement_set,
    record_timing,
    upsert_group,
)
from contimg.catalogue.mosaics import record_mosaic, record_mosaic_failure
from contimg.catalogue.ops import fail_stale_group, log_housekeeping, mark_ms_deleted, record_guard_decision
from contimg.catalogue.photometry import record_day, record_photometry, record_photometry_skip
from contimg.catalogue.registry import register_set, retire_set
from tests.test_housekeeping import image_metrics, ms_metrics

WINDOWS = ["2026-01-25T00:00", "2026-01-25T00:05", "2026-01-25T00:10", "2026-01-26T00:00"]
BIG_MS_BYTES = 5_000_000_000  # more than a 4-byte integer holds
MJD0 = 61065.000011574  # 2026-01-25T00:00:01: a 4-byte float would lose the second


def fill(conn, root: str = "/data") -> None:
    """Write a night's worth of every kind of row into the catalogue ``conn`` (deterministic apart from times)."""
    for i, w in enumerate(WINDOWS):
        for sb in range(2):
            record_file(
                conn,
                f"{root}/ingest/{w}_sb{sb:02d}.hdf5",
                f"{w}_sb{sb:02d}.hdf5",
                "accepted",
                window_key=w,
                subband=sb,
                size_bytes=100 + sb,
            )
        upsert_group(conn, w, start_utc=f"{w}:01", state="requested", n_subbands=2, files=["a", "b"])
        m = ms_metrics(f"{root}/products/ms/{w}.ms")
        m["mid_mjd"] = MJD0 + i / 288
        record_measurement_set(conn, w, m, size_bytes=BIG_MS_BYTES + i, run_id=f"run{i}")
        record_timing(conn, w, "convert", 12.5 + i, detail={"read": 1.0}, run_id=f"run{i}")
        upsert_group(conn, w, state="converted")
    record_file(conn, f"{root}/ingest/junk.hdf5", "junk.hdf5", "misnamed", "name does not parse")
    record_file(conn, f"{root}/ingest/{WINDOWS[0]}_sb00.hdf5", "x", "duplicate", "seen twice")  # the upsert path
    # a reprocessed MS: the first becomes superseded
    record_measurement_set(
        conn, WINDOWS[0], ms_metrics(f"{root}/products/ms/{WINDOWS[0]}.v2.ms"), size_bytes=7, run_id="r2"
    )
    upsert_group(conn, WINDOWS[0], calibrator="3C286")
    record_calibrator_transit(conn, WINDOWS[0], calibrator="3C286", transit_mjd=MJD0, offset_deg=0.2, pb_flux_jy=14.0)
    record_calibrator_transit(
        conn, WINDOWS[0], calibrator="3C286", transit_mjd=MJD0 + 1e-4, offset_deg=0.1, pb_flux_jy=15.0
    )
    for name, t in (("3C286_a", MJD0 - 1), ("3C286_b", MJD0)):
        register_set(
            conn,
            set_name=name,
            window_key=WINDOWS[0],
            calibrator="3C286",
            source_ms="/x.ms",
            transit_mjd=t,
            tables=[
                {"path": f"/cal/{name}.G", "type": "G", "order": 2},
                {"path": f"/cal/{name}.B", "type": "B", "order": 1},
            ],
            status="active",
            refant="pad1",
            solver_version="t",
            solver_params={"solint": "inf"},
            quality={"ok": True},
        )
    retire_set(conn, "3C286_a")
    for i, w in enumerate(WINDOWS[:3]):
        im = image_metrics(f"{root}/products/images/{w}")
        im["mid_mjd"] = MJD0 + i / 288
        im["rms_jy"] = 1e-3 * (1 + i)
        im["calset"] = "3C286_b"
        im["science_qa"] = {"grade": "green", "problems": [], "n_detected": 5, "flux_ratio": 0.98 + i / 100}
        status = "flagged" if i == 2 else "ok"
        record_image(conn, w, f"{root}/products/ms/{w}.ms", im, status=status, reason=None, run_id=f"img{i}")
        upsert_group(conn, w, state="imaged")
    record_image(
        conn, WINDOWS[1], "/ms", image_metrics(f"{root}/re/{WINDOWS[1]}"), status="ok", reason=None, run_id="re"
    )
    record_image_failure(conn, WINDOWS[3], f"{root}/products/ms/{WINDOWS[3]}.ms", "imaging: no calibration", "img3")
    fail_stale_group(conn, WINDOWS[3], "stuck")
    upsert_group(conn, WINDOWS[3], state="failed", error="no valid calibration tables")
    rows = [
        {
            "source_id": s,
            "ra_deg": 10.0 + k,
            "dec_deg": 20.0,
            "start_iso": f"{w}:00",
            "flux_jy": 1.0 + k + j / 10,
            "err_jy": 0.01,
            "rms_jy": 0.002 * (1 + j),
            "pb": 0.9 - k / 10,
            "dist_deg": 0.1 * k,
        }
        for k, s in enumerate(("J1", "J2"))
        for j, w in enumerate(WINDOWS[:1])
    ]
    record_photometry(conn, WINDOWS[0], "/img0.fits", rows, n_outside=3, run_id="p0")
    rows1 = [dict(r, flux_jy=r["flux_jy"] * 1.1, start_iso=f"{WINDOWS[1]}:00") for r in rows]
    record_photometry(conn, WINDOWS[1], "/img1.fits", rows1, n_outside=3, run_id="p1")
    record_photometry(conn, WINDOWS[1], "/img1.fits", rows1, n_outside=2, run_id="p1b")  # a re-run replaces
    record_photometry_skip(conn, WINDOWS[3], "image failed QA")
    result = {
        "source_id": "J1",
        "n_epochs": 2,
        "mean_flux_jy": 1.05,
        "V": 0.05,
        "eta": 3.0,
        "max_abs_Vs": 4.0,
        "max_abs_m": 0.1,
        "dip_sigma": float("nan"),
        "dip_depth": float("nan"),
        "dip_start": "",
        "dip_days": 0,
        "variable": True,
        "rule": "eta",
    }
    record_day(
        conn,
        "2026-01-25",
        factors={"2026-01-25": (1.02, 3), "2026-01-24": (float("nan"), 1)},
        results=[result],
        window_days=7,
        run_id="v",
    )
    record_mosaic(
        conn,
        "2026-01-25",
        path="/m1.fits",
        noise_path="/n1.fits",
        png_path=None,
        n_images=3,
        gaps=["2026-01-25T00:15"],
        excluded=[],
        run_id="m1",
    )
    record_mosaic(
        conn,
        "2026-01-25",
        path="/m2.fits",
        noise_path="/n2.fits",
        png_path="/m2.png",
        n_images=3,
        gaps=[],
        excluded=[{"window": WINDOWS[2], "reason": "flagged"}],
        run_id="m2",
    )
    record_mosaic_failure(conn, "2026-01-26", "no images")
    mark_ms_deleted(conn, WINDOWS[2], f"{root}/products/ms/{WINDOWS[2]}.ms")
    log_housekeeping(
        conn, action="delete_ms", path="/old.ms", window_key=WINDOWS[2], size_bytes=BIG_MS_BYTES, reason="retention"
    )
    record_guard_decision(conn, "hold", "below 20 GB", {"/data": 3.25}, 20.0)
    record_guard_decision(conn, "hold", "below 20 GB", {"/data": 3.0}, 20.0)  # unchanged decision: no row
    record_guard_decision(conn, "ok", "enough", {"/data": 30.5}, 20.0)
