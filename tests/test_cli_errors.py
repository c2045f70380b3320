"""The ``contimg`` command as an operator runs it (a real subprocess): a failure is one stderr line and a
non-zero exit, never a traceback; a fresh install (no catalogue) is an empty platform, not an error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S = 300  # a command that imports astropy/casacore on a loaded two-core machine


def run_contimg(tmp_path, *argv, **env_extra):
    """``python -m contimg.cli ARGV`` with CONTIMG_ROOT at ``tmp_path/root`` and no other CONTIMG_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(CONTIMG_ROOT=str(tmp_path / "root"), PYTHONPATH=str(REPO), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "contimg.cli", *map(str, argv)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def the_error_line(proc, command: str, exit_status: int = 1) -> str:
    """The single stderr line of a failed command (checked: status, one line, no traceback)."""
    assert proc.returncode == exit_status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"contimg {command}: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------ fresh install


def test_status_json_on_a_fresh_install_describes_an_empty_platform(tmp_path):
    proc = run_contimg(tmp_path, "status", "--json", CONTIMG_MIN_FREE_GB="0")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    root = tmp_path / "root"
    assert info["catalogue"] == str(root / "state" / "catalogue.sqlite3")
    assert info["catalogue_exists"] is False
    assert info["groups_by_state"] == {} and info["recent_failures"] == []
    assert info["backlog"] == {"n_chunks": 0, "by_state": {}, "oldest_window": None}
    assert info["last_image"] is None and info["active_calibration"] is None
    assert set(info["free_disk_gb"]) == {str(root / "products"), str(root / "scratch")}
    assert info["disk_guard"]["hold"] is False and info["disk_guard"]["last_event"] is None
    assert not root.exists(), "a read-only command made the platform's folders"


def test_products_and_qa_on_a_fresh_install_are_empty(tmp_path):
    proc = run_contimg(tmp_path, "products", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    proc = run_contimg(tmp_path, "qa", "--json", "--since", "2026-01-25", "--until", "2026-01-26")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"since": "2026-01-25T00:00", "until": "2026-01-26T00:00", "images": []}
    proc = run_contimg(tmp_path, "status")  # the table form too
    assert proc.returncode == 0, proc.stderr
    assert "not made yet" in proc.stdout and "no chunks in this range" in proc.stdout


# ----------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "var,value",
    [
        ("CONTIMG_MIN_SUBBANDS", "0"),
        ("CONTIMG_IMAGING_CONFIG", '{"niter": -5, "size": "big"}'),
        ("CONTIMG_CASA_TIMEOUT_S", "image=soon"),
        ("CONTIMG_PARTITION_START", "2026-01-01T00:03"),
        ("CONTIMG_ALLOW_UNCALIBRATED", "yes"),
    ],
)
def test_a_bad_setting_stops_any_command_naming_it(tmp_path, var, value):
    line = the_error_line(run_contimg(tmp_path, "status", **{var: value}), "status")
    assert f"{var}={value!r}" in line and "allowed:" in line
    if var == "CONTIMG_IMAGING_CONFIG":
        assert "niter=-5" in line and "'size'" in line


def test_contimg_debug_shows_the_traceback(tmp_path):
    proc = run_contimg(tmp_path, "status", CONTIMG_MIN_SUBBANDS="0", CONTIMG_DEBUG="1")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "SettingsError: CONTIMG_MIN_SUBBANDS='0'" in proc.stderr


def test_a_bad_contimg_debug_is_itself_one_line(tmp_path):
    line = the_error_line(run_contimg(tmp_path, "status", CONTIMG_DEBUG="maybe"), "status")
    assert "CONTIMG_DEBUG='maybe'" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["--start", "notatime"],
        ["--start", "2026-01-25T00:00:00", "--chunks", "0"],
        ["--start", "2026-01-25T00:00:00", "--faults", "boom@0:1"],
        ["--start", "2026-01-25T00:00:00", "--calibrator", "no-such-calibrator"],  # refused inside simulate()
    ],
    ids=["start", "chunks", "faults", "calibrator"],
)
def test_simulate_with_bad_arguments_leaves_no_output_folder(tmp_path, argv):
    out = tmp_path / "sim"
    line = the_error_line(run_contimg(tmp_path, "simulate", "--out", out, *argv), "simulate")
    assert argv[-1] in line
    assert not out.exists()


def test_simulate_keeps_an_output_folder_it_did_not_make(tmp_path):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    the_error_line(
        run_contimg(
            tmp_path, "simulate", "--out", out, "--start", "2026-01-25T00:00:00", "--calibrator", "no-such-calibrator"
        ),
        "simulate",
    )
    assert (out / "keep.txt").read_text() == "mine"


def test_image_on_a_folder_that_is_not_a_measurement_set(tmp_path):
    folder = tmp_path / "not-an-ms"
    folder.mkdir()
    line = the_error_line(run_contimg(tmp_path, "image", folder, "--out", tmp_path / "img"), "image")
    assert str(folder) in line and "not a Measurement Set" in line
    line = the_error_line(run_contimg(tmp_path, "image", tmp_path / "nothing", "--out", tmp_path / "img"), "image")
    assert str(tmp_path / "nothing") in line


@pytest.mark.casa  # casacore/casatools refuse the input inside the child job
def test_image_child_job_failure_is_its_last_error_line(tmp_path):
    """A folder that looks like a table but is not one gets past the check; casacore refuses it in the child."""
    fake = tmp_path / "fake.ms"
    fake.mkdir()
    (fake / "table.dat").write_bytes(b"not a casacore table")
    line = the_error_line(run_contimg(tmp_path, "image", fake, "--out", tmp_path / "img"), "image")
    assert "the image job failed (exit status 1)" in line
    assert "RuntimeError" in line and str(fake) in line  # casacore's own message, from the child's last line
    log = Path(line.rsplit("(its stderr: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "root" / "state" / "logs"
    assert "Traceback" in log.read_text(), "the whole traceback is kept in the log"


def test_image_config_is_checked_before_the_child_job(tmp_path):
    ms = tmp_path / "x.ms"
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"")
    line = the_error_line(
        run_contimg(tmp_path, "image", ms, "--out", tmp_path / "img", "--config", '{"niter": "many"}'), "image"
    )
    assert "--config=" in line and "niter='many'" in line
    assert not (tmp_path / "root" / "state" / "logs").exists(), "no child job was started"


def test_convert_with_missing_files(tmp_path):
    line = the_error_line(
        run_contimg(tmp_path, "convert", tmp_path / "a_sb00.hdf5", "--out", tmp_path / "x.ms"), "convert"
    )
    assert str(tmp_path / "a_sb00.hdf5") in line


@pytest.mark.parametrize("command", ["status", "products", "qa", "cleanup"])
def test_an_unreadable_catalogue_is_named(tmp_path, command):
    catalogue = tmp_path / "root" / "state" / "catalogue.sqlite3"
    catalogue.parent.mkdir(parents=True)
    catalogue.write_bytes(b"this is not a SQLite database\n" * 100)
    line = the_error_line(run_contimg(tmp_path, command), command)
    assert f"cannot read the catalogue {catalogue}" in line


def test_a_wrong_command_line_is_one_line_with_status_2(tmp_path):
    line = the_error_line(run_contimg(tmp_path, "status", "--since"), "status", exit_status=2)
    assert "--since" in line
    line = the_error_line(run_contimg(tmp_path, "status", "--since", "notatime"), "status")
    assert "'notatime'" in line


def test_an_unknown_command_is_one_line_with_status_2(tmp_path):
    proc = run_contimg(tmp_path, "frobnicate")
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("contimg: error: unknown command 'frobnicate'")


@pytest.mark.casa  # casacore/casatools refuse the input inside the child job
def test_calibrate_child_job_failure_is_its_last_error_line(tmp_path):
    """casatools refuses a missing MS inside the calibrate job; the command prints that line, not the traceback."""
    missing = tmp_path / "missing.ms"
    line = the_error_line(run_contimg(tmp_path, "calibrate", missing, "--out", tmp_path / "cal"), "calibrate")
    assert "the calibrate job failed (exit status 1)" in line
    assert str(missing) in line
