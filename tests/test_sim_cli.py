"""``contimg simulate``'s realism options as an operator runs them (a real subprocess)."""

import json

import numpy as np
import pytest

from tests.test_cli_errors import run_contimg, the_error_line

START = "2026-01-25T00:00:00"


@pytest.mark.parametrize(
    "argv",
    [
        ["--sky", "nosuch.csv"],
        ["--max-delay-ns", "5"],
        ["--delays", "--max-delay-ns", "-1"],
        ["--day-index", "2", "--lightcurve-epoch", "2026-01-01"],
        ["--lightcurve-epoch", "yesterday"],
    ],
    ids=["sky", "max-delay-needs-delays", "max-delay", "day-and-epoch", "epoch"],
)
def test_bad_realism_options_are_one_line_and_leave_no_folder(tmp_path, argv):
    out = tmp_path / "sim"
    line = the_error_line(run_contimg(tmp_path, "simulate", "--out", out, "--start", START, *argv), "simulate")
    assert argv[-1] in line or argv[1] in line
    assert not out.exists()


def test_a_realistic_chunk_from_the_command_line(tmp_path):
    out = tmp_path / "sim"
    proc = run_contimg(
        tmp_path,
        *("simulate", "--out", out, "--start", START, "--antennas", "6", "--channels-per-subband", "2"),
        *("--integrations", "2", "--seed", "3", "--sky", "counts", "--delays", "--drift", "--rfi"),
    )
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((out / "truth.json").read_text())
    assert truth["delays"] and truth["drift"] and truth["rfi"]["dead"]["subband"] in range(16)
    assert truth["sky_model"] == "counts" and truth["visibility_method"] == "matrix"
    assert len(truth["sky"]) > 500  # a main lobe above 2 mJy: ~50 per deg^2 over > 30 deg^2
    assert np.abs(np.array(truth["delays_ns"])).max() <= 10.0
    assert (out / "sky.csv").read_text().splitlines()[0].startswith("ra_deg,dec_deg,flux_jy,spectral_index,maj_arcsec")
    assert len(list(out.glob("*_sb??.hdf5"))) == 16
    assert "sources (counts)" in proc.stdout
