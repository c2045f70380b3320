"""Pure pieces of the calibrate job's outcome (no CASA): reference antenna, solution quality and its
thresholds, the typed report across the process boundary, the registry's rules and its writer."""

import copy
import json
import math

import numpy as np
import pytest

from contimg.calibrate.registry_rules import APPLY_ORDER, DEFAULT_VALIDITY_H, set_status, validity_window
from contimg.calibrate.report import CalibrateReport, ReportFormatError, TableQuality
from contimg.calibrate.solutions import (
    MAX_FLAGGED_FRACTION,
    MIN_MEDIAN_SNR,
    CalibrationError,
    choose_refant,
    quality_problems,
    solution_quality,
)
from contimg.catalogue import connect
from contimg.catalogue.registry import active_set, register_report
from contimg.childjobs.report import read_report, report
from contimg.cli.image import caltables_from

FIG_RTOL = 1e-12  # figures of a few float64 numbers: only rounding separates them from the hand values
MJD_ATOL = 1e-9  # days (86 us): float64 MJD ~6e4 carries ~1e-11 d; the window maths adds a few ulp


def quality(flagged=0.0, snr=150.0):
    return {
        "flagged_fraction": flagged,
        "median_snr": snr,
        "amp_scatter": 0.1,
        "phase_scatter_deg": 20.0,
        "n_antennas": 16,
    }


def report_dict(root="/data/caltables/s", quality_ok=True, problems=()):
    """A report as the calibrate job publishes it (the keys of a real run's JSON)."""
    return {
        "set_name": "s",
        "calibrator": "0834+555",
        "refant": 102,
        "tables": [
            {"name": "s.B", "type": "B", "order": 10, "quality": quality(), "path": f"{root}/s.B"},
            {"name": "s.G", "type": "G", "order": 20, "quality": quality(snr=300.0), "path": f"{root}/s.G"},
        ],
        "model": {"flux_jy": 8.66, "spectral_index": -0.395, "ra_deg": 128.7288, "dec_deg": 55.5725},
        "quality_ok": quality_ok,
        "problems": list(problems),
        "out_dir": root,
        "source_ms": "/data/ms/cal.ms",
        "bandpass_png": f"{root}/s.bandpass.png",
        "bandpass_qa": {
            "flagged_fraction": 0.0,
            "median_amp_roughness": 0.12,
            "median_phase_roughness_deg": 9.4,
            "antennas": [0, 102],
            "antenna_flagged_fraction": [0.0, 0.0],
            "antenna_amp_roughness": [0.12, 0.13],
            "antenna_phase_roughness_deg": [9.0, 9.8],
            "outlier_antennas": [],
            "outlier_cells": [],
            "problems": [],
        },
        "timings_s": {"flag_shift_average": 5.1, "model": 0.2, "bandpass": 1.6, "gaincal": 2.0},
        "solver_version": "casatasks 6.7.0.31; contimg 0.1.0",
        "solver_params": {
            "bandpass": {"solint": "inf", "minsnr": 3.0, "bandtype": "B"},
            "gaincal": {"solint": "inf", "calmode": "ap", "minsnr": 3.0},
            "rfi": "off",
        },
        "flagging": {"flagged_fraction_input": 0.0, "rfi_flagged_fraction": 3.3e-05, "uvw_column_vs_casa_m": 6e-13},
        "plan": {
            "name": "0834+555",
            "ra_deg": 128.7288,
            "dec_deg": 55.5725,
            "flux_jy": 8.8,
            "transit_mjd": 61065.3413,
            "offset_deg": 2e-08,
            "pb_flux_jy": 8.8,
            "mean_beam": 0.984,
            "apparent_flux_jy": 8.66,
            "intrinsic_spectral_index": -0.363,
            "beam_spectral_index": -0.032,
            "spectral_index": -0.395,
        },
    }


def test_refant_is_the_first_preferred_antenna_with_data():
    assert choose_refant([103, 5, 2], [2, 5, 7]) == 5
    assert choose_refant([103, 104], [2, 5, 7]) == 2, "none preferred has data: the first that has"
    assert choose_refant([], [4]) == 4
    with pytest.raises(CalibrationError, match="no antenna has unflagged cross-correlations"):
        choose_refant([103], [])


def test_solution_quality_counts_only_antennas_with_data():
    # CASA layout (npol, nchan, nrow); rows: antenna 0, antenna 1, antenna 2 (no data: must be ignored)
    gains = np.array([[[1, 3, 100], [2j, -1, 100]]], dtype=np.complex64)
    flags = np.array([[[False, True, False], [False, False, False]]])
    snr = np.array([[[10.0, 5.0, 1.0], [20.0, 30.0, 1.0]]])
    q = solution_quality(gains, flags, snr, np.array([0, 1, 2]), present=[0, 1])
    # by hand over the 4 solutions of antennas 0 and 1: one flagged; unflagged |g| = 1, 2, 1 and
    # phases 0, 90, 180 deg; SNR 10, 20, 30
    assert q.flagged_fraction == pytest.approx(0.25, rel=FIG_RTOL)
    assert q.median_snr == pytest.approx(20.0, rel=FIG_RTOL)
    assert q.amp_scatter == pytest.approx((math.sqrt(2) / 3) / (4 / 3), rel=1e-6)  # complex64 gains
    assert q.phase_scatter_deg == pytest.approx(math.sqrt((90**2 + 0 + 90**2) / 3), rel=1e-6)
    assert q.n_antennas == 2


def test_solution_quality_of_a_fully_flagged_table_has_no_scatter():
    gains = np.ones((2, 3, 4), np.complex64)
    q = solution_quality(gains, np.ones(gains.shape, bool), np.full(gains.shape, 50.0), np.arange(4), [0, 1, 2, 3])
    assert q == TableQuality(
        flagged_fraction=1.0, median_snr=0.0, amp_scatter=None, phase_scatter_deg=None, n_antennas=4
    )


def test_solution_quality_rejects_columns_of_different_shapes():
    with pytest.raises(ValueError, match=r"share one \(npol, nchan, nrow\) shape"):
        solution_quality(np.ones((2, 3, 4)), np.zeros((2, 3, 5), bool), np.ones((2, 3, 4)), np.arange(4), [0])
    with pytest.raises(ValueError, match=r"antenna must be \(nrow,\)"):
        solution_quality(np.ones((2, 3, 4)), np.zeros((2, 3, 4), bool), np.ones((2, 3, 4)), np.arange(5), [0])


def test_quality_thresholds_name_each_failing_figure():
    ok = TableQuality(0.1, 150.0, 0.1, 20.0, 16)
    assert quality_problems({"B": ok, "G": ok}) == []
    at_limits = TableQuality(MAX_FLAGGED_FRACTION, MIN_MEDIAN_SNR, 0.1, 20.0, 16)
    assert quality_problems({"B": at_limits}) == [], "the thresholds themselves pass"
    bad = TableQuality(0.6, 4.0, 0.1, 20.0, 16)
    assert quality_problems({"B": ok, "G": bad}) == ["G: 60% of solutions flagged (> 50%)", "G: median SNR 4.0 < 5.0"]


def test_report_round_trips_through_the_json_file_the_job_writes(tmp_path):
    d = report_dict()
    report(d, tmp_path / "r.json")  # what the child job does with to_dict()
    got = CalibrateReport.from_dict(read_report(tmp_path / "r.json"))
    assert got.to_dict() == d
    assert got.plan.transit_mjd == d["plan"]["transit_mjd"] and got.tables[1].quality.median_snr == 300.0
    assert got.flagging.rfi_flagged_fraction == d["flagging"]["rfi_flagged_fraction"]
    assert got.bandpass_qa.ok and got.bandpass_qa.antenna_amp_roughness == [0.12, 0.13]
    assert got.table_paths() == ["/data/caltables/s/s.B", "/data/caltables/s/s.G"]
    assert got.quality_by_type() == {"B": quality(), "G": quality(snr=300.0)}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("plan"), r"calibrate report: missing key\(s\) \['plan'\]"),
        (lambda d: d.update(log_path="/x.log"), r"calibrate report: unknown key\(s\) \['log_path'\]"),
        (
            lambda d: d["tables"][1]["quality"].pop("median_snr"),
            r"calibrate report\.tables\[1\]\.quality: missing key\(s\) \['median_snr'\]",
        ),
        (lambda d: d["plan"].update(extra=1), r"calibrate report\.plan: unknown key\(s\) \['extra'\]"),
        (lambda d: d.update(flagging=None), r"calibrate report\.flagging: expected a mapping of FlaggingStats"),
        (lambda d: d.update(tables={}), r"calibrate report\.tables: expected a list"),
        (
            lambda d: d["bandpass_qa"].pop("outlier_cells"),
            r"calibrate report\.bandpass_qa: missing key\(s\) \['outlier_cells'\]",
        ),
    ],
    ids=["missing", "unknown", "nested-missing", "nested-unknown", "not-a-mapping", "tables-not-a-list", "bandpass-qa"],
)
def test_report_names_the_key_that_is_missing_or_unknown(edit, message):
    d = copy.deepcopy(report_dict())
    edit(d)
    with pytest.raises(ReportFormatError, match=message):
        CalibrateReport.from_dict(d)


def test_caltables_json_from_the_report_is_what_contimg_image_reads(tmp_path):
    solved = CalibrateReport.from_dict(report_dict(root=str(tmp_path)))
    index = solved.set_index()
    assert "path" not in json.dumps(index), "the folder can move: names only"
    # tables listed out of apply order must still come back in apply order
    index["tables"].reverse()
    (tmp_path / "caltables.json").write_text(json.dumps(index))
    assert caltables_from(str(tmp_path)) == ([str(tmp_path / "s.B"), str(tmp_path / "s.G")], "s")


def test_validity_window_and_apply_order_rules():
    start, end = validity_window(61000.5, 6.0)
    assert start == pytest.approx(61000.25, abs=MJD_ATOL) and end == pytest.approx(61000.75, abs=MJD_ATOL)
    assert validity_window(61000.5) == validity_window(61000.5, DEFAULT_VALIDITY_H)
    with pytest.raises(ValueError, match="validity_h must be a positive number of hours, got 0"):
        validity_window(61000.5, 0)
    assert APPLY_ORDER["B"] < APPLY_ORDER["G"], "gains are solved with the bandpass applied"
    assert APPLY_ORDER["K"] < APPLY_ORDER["B"], "the bandpass is solved with the delays applied"
    assert (set_status(True), set_status(False)) == ("active", "failed")


def test_register_report_records_the_set_and_its_status(tmp_path):
    conn = connect(tmp_path / "cat.sqlite3")
    try:
        good = CalibrateReport.from_dict(report_dict(root="/t/good"))
        assert register_report(conn, good, window_key="w1", source_ms="ms/cal.ms") == "active"
        failed = report_dict(root="/t/bad", quality_ok=False, problems=["G: median SNR 4.0 < 5.0"])
        failed["set_name"] = "bad"
        failed["plan"]["transit_mjd"] += 0.01
        assert register_report(conn, CalibrateReport.from_dict(failed), window_key="w2", source_ms="x.ms") == "failed"
        t = report_dict()["plan"]["transit_mjd"]
        assert active_set(conn, t + 0.01) == {"set_name": "s", "window": "w1", "tables": ["/t/good/s.B", "/t/good/s.G"]}
        assert active_set(conn, t + (DEFAULT_VALIDITY_H + 0.1) / 24) is None
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT set_name, source_ms, refant, status, reason, valid_start_mjd, valid_end_mjd, "
                "quality, solver_params "
                "FROM caltable_sets"
            )
        }
        src, refant, status, reason, v0, v1, q, params = rows["s"]
        assert (src, refant, status, reason) == ("ms/cal.ms", "102", "active", None)
        assert v0 == pytest.approx(t - 0.25, abs=MJD_ATOL) and v1 == pytest.approx(t + 0.25, abs=MJD_ATOL)
        assert json.loads(q) == {"B": quality(), "G": quality(snr=300.0)}
        assert json.loads(params) == report_dict()["solver_params"]
        assert rows["bad"][2:4] == ("failed", "G: median SNR 4.0 < 5.0")
        tables = conn.execute(
            "SELECT path, table_type, apply_order, quality FROM caltables WHERE set_name = 's' ORDER BY apply_order"
        ).fetchall()
        assert [(p, k, o) for p, k, o, _ in tables] == [("/t/good/s.B", "B", 10), ("/t/good/s.G", "G", 20)]
        assert json.loads(tables[1][3]) == quality(snr=300.0)
    finally:
        conn.close()


def test_a_window_one_table_leaves_unsolved_is_a_problem_even_with_nothing_flagged():
    """CASA's gaincal once wrote a G table without SPW 11 (no error, flagged fraction 0): every image would have
    lost that window. A window counts as solved only with an unflagged solution for an antenna with data."""
    from contimg.calibrate.solutions import unsolved_spw_problems

    present = [0, 1, 2]
    ant = np.tile(np.arange(4), 16)  # antenna 3 has no data
    spw = np.repeat(np.arange(16), 4)
    b = (ant, spw, np.zeros((2, 4, ant.size), bool))
    g_rows = spw != 11
    g = (ant[g_rows], spw[g_rows], np.zeros((2, 1, g_rows.sum()), bool))
    assert unsolved_spw_problems({"B": b, "G": g}, present) == ["G: no solution in SPW 11 (solved in another table)"]
    assert unsolved_spw_problems({"B": b, "G": b}, present) == []
    # flagged on every antenna with data (the one left is antenna 3, which has none): unsolved as well
    flag = np.zeros((2, 4, ant.size), bool)
    flag[:, :, (spw == 4) & (ant < 3)] = True
    assert unsolved_spw_problems({"B": (ant, spw, flag), "G": b}, present) == [
        "B: no solution in SPW 4 (solved in another table)"
    ]
