"""Calibrator list, transit matching and the caltable registry's rules (pure, no CASA)."""

import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.calibrate.calibrators import (
    CalibratorListError,
    find_calibrator,
    load_vla_calibrators,
    parse_vla_calibrators,
)
from contimg.calibrate.registry_rules import CalSet, select_active
from contimg.calibrate.transit import find_transits
from contimg.catalogue import connect
from contimg.catalogue.registry import active_set, register_set, retire_set
from contimg.core.instrument import SITE
from contimg.sim import transit_start
from tests.catalogue_backends import catalogue_backend_fixture, pg_catalogue_server_fixture  # noqa: F401

CHUNK_DAYS = 309.24 / 86400


def test_vla_list_loads_every_source_and_rejects_malformed_entries():
    cals = load_vla_calibrators()
    assert len(cals) == 1865
    assert 1020 <= sum(1 for c in cals if c.flux_jy) <= 1042
    c = find_calibrator("J0834+555")
    assert c.flux_jy == pytest.approx(8.8) and c.dec_deg == pytest.approx(55.5725, abs=1e-3)
    with pytest.raises(CalibratorListError, match=r"vlacalibrators.txt:2: cannot parse"):
        parse_vla_calibrators("\n0834+555   J2000  A 08h34mXX.9s  55d34'21.07\"  Aug01\n")
    with pytest.raises(ValueError, match="no calibrator named"):
        find_calibrator("9999+999")


@pytest.mark.parametrize("name", ["0834+555", "1331+305", "2253+161"])
def test_transit_matching_finds_the_calibrator_and_its_transit_time(name):
    cal = find_calibrator(name)
    start, transit, dec_app = transit_start(Time("2026-03-01T00:00:00"), cal.ra_deg, cal.dec_deg, 0)
    found = find_transits(start.mjd, start.mjd + CHUNK_DAYS, dec_app)
    assert found and found[0].calibrator.name == name
    # independent check: astropy puts the calibrator's hour angle at 0 at the transit time found
    ha = (
        SkyCoord(cal.ra_deg * u.deg, cal.dec_deg * u.deg)
        .transform_to(HADec(obstime=Time(found[0].transit_mjd, format="mjd"), location=SITE, pressure=0 * u.hPa))
        .ha
    )
    assert abs(ha.wrap_at(12 * u.hourangle).to_value(u.arcsec) / 15) < 1.0  # within a second of time
    # a chunk an hour earlier holds no transit of it
    earlier = find_transits(start.mjd - 1 / 24, start.mjd - 1 / 24 + CHUNK_DAYS, dec_app)
    assert all(t.calibrator.name != name for t in earlier)


def test_no_calibrator_in_an_empty_strip():
    assert find_transits(61000.0, 61000.0 + CHUNK_DAYS, -89.0) == []


def test_validity_lookup_handles_overlaps_gaps_retired_and_failed():
    sets = [
        CalSet("a", 10.0, 10.5, "active", "2026-01-01T00:00"),
        CalSet("b", 10.3, 10.8, "active", "2026-01-01T01:00"),  # newer, overlaps a
        CalSet("c", 10.9, 11.2, "failed", "2026-01-01T02:00"),
        CalSet("d", 11.0, 11.4, "retired", "2026-01-01T03:00"),
    ]
    assert select_active(sets, 10.1).set_name == "a"
    assert select_active(sets, 10.4).set_name == "b", "newest valid set first"
    assert select_active(sets, 10.85) is None, "gap: explicit no-calibration"
    assert select_active(sets, 11.0) is None, "failed and retired sets never apply"


@pytest.mark.usefixtures("catalogue_backend")  # SQLite and Postgres
def test_registry_returns_tables_in_apply_order(tmp_path):
    conn = connect(tmp_path / "cat.sqlite3")
    common = dict(
        calibrator="0834+555", source_ms="x.ms", refant="103", solver_version="t", solver_params={}, quality={}
    )
    register_set(
        conn,
        set_name="s1",
        window_key="w1",
        transit_mjd=100.0,
        status="active",
        validity_h=6,
        tables=[{"path": "/t/s1.G", "type": "G", "order": 20}, {"path": "/t/s1.B", "type": "B", "order": 10}],
        **common,
    )
    register_set(
        conn,
        set_name="s2",
        window_key="w2",
        transit_mjd=100.1,
        status="failed",
        validity_h=6,
        tables=[{"path": "/t/s2.B", "type": "B", "order": 10}],
        **common,
    )
    got = active_set(conn, 100.2)
    assert got["set_name"] == "s1" and got["tables"] == ["/t/s1.B", "/t/s1.G"]
    assert active_set(conn, 100.0 + 6.1 / 24) is None, "outside the +/-6 h validity"
    retire_set(conn, "s1")
    assert active_set(conn, 100.2) is None
