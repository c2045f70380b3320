"""The whole stream, unattended: a real dagster-daemon, the sensor, one run per chunk, real products."""

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from astropy.io import fits
from dagster import AssetKey, DagsterInstance

from contimg.core.settings import Layout
from contimg.sim import simulate
from contimg_assets.instance.stream import run_stream

ENV = {
    "CONTIMG_SENSOR_INTERVAL_S": "5",
    "CONTIMG_ALLOW_UNCALIBRATED": "1",  # this chunk set has no calibrator transit
    "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
    "CONTIMG_MIN_FREE_GB": "1",
    "CONTIMG_GRACE_MINUTES": "1",  # chunk 2 lacks its misnamed sb07: run it with 15 after a minute
}


def _mentions(proc_dir: Path, needle: bytes) -> bool:
    try:
        return needle in (proc_dir / "cmdline").read_bytes() or needle in (proc_dir / "environ").read_bytes()
    except OSError:
        return False


def casa_children(root) -> list[str]:
    """CASA/WSClean processes working on this test's files."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if (".job " in line or "wsclean" in line) and str(root) in line]


@pytest.mark.e2e
def test_stream_images_every_chunk_and_records_faults(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    layout = Layout.under(tmp_path / "root").ensure()
    simulate(
        tmp_path / "sim",
        "2026-01-25T00:00:00",
        n_chunks=3,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=4,
        seed=1,
        gains=False,
        faults="truncate@1:4,badname@2:7",
    )
    outcome = run_stream(tmp_path / "sim", layout, interval_s=3, timeout_s=900, env_extra=ENV)
    assert not outcome.timed_out, open(outcome.daemon_log).read()[-3000:]
    windows = ["2026-01-25T00:00", "2026-01-25T00:05", "2026-01-25T00:10"]
    assert outcome.windows == {w: "imaged" for w in windows}
    con = sqlite3.connect(layout.catalogue)
    try:
        files = dict(con.execute("SELECT status, count(*) FROM subband_files GROUP BY status").fetchall())
        images = con.execute("SELECT window_key, image_path, status FROM images ORDER BY window_key").fetchall()
        groups = dict(con.execute("SELECT window_key, n_subbands FROM groups").fetchall())
    finally:
        con.close()
    assert files.get("corrupt") == 1 and files.get("misnamed") == 1
    assert groups == {"2026-01-25T00:00": 16, "2026-01-25T00:05": 15, "2026-01-25T00:10": 15}
    assert [w for w, _, _ in images] == windows and all(s == "ok" for _, _, s in images)
    for _, path, _ in images:
        for suffix in ("", ".pbcor"):
            with fits.open(path.replace(".fits", f"{suffix}.fits")) as hdul:
                assert hdul[0].header["BMAJ"] > 0 and hdul[0].data.size > 0
    instance = DagsterInstance.from_config(str(layout.dagster_home))
    for key in ("subband_group", "measurement_set", "image"):
        assert instance.get_materialized_partitions(AssetKey(key)) == set(windows), key
    assert casa_children(tmp_path) == [], "a CASA child process was left behind"
    needle = str(layout.dagster_home).encode()
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and int(p.name) != os.getpid() and _mentions(p, needle)
    ]
    assert leftovers == [], "code server or run workers of the instance left running"
    # every MS opens (a casacore table directory with its main table)
    for w in windows:
        assert (layout.ms_path(w) / "table.dat").exists()
