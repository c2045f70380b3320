"""Files as the real correlator and pyuvdata write them, not as our simulator does (issue #21).

The chunk here is built with pyuvdata's own API (``UVData.new`` + ``write_uvh5``): new-style
header, ``freq_array`` of shape (Nfreqs,), one ``channel_width`` per channel, float32 uvw, the
correlator's drift-scan keywords, and the correlator's channel labels computed here from the
published ``correlator_parameters.yaml``. The MS is read back with casacore in a child process.
"""

import json
import re
import subprocess
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from astropy.time import Time

from contimg.childjobs.env import casa_child_env, child_command
from contimg.convert.plan import ConversionError, plan_chunk, read_subband
from contimg.core.instrument import SITE, load_stations, subband_freqs_hz
from tests.casa_helpers import run_in_child

YAML = Path(__file__).resolve().parents[1] / "contimg" / "core" / "data" / "correlator_parameters.yaml"
STAMP = "2025-06-15T00:00:00"  # inside casadata's Earth-orientation tables (see test_convert.py)
DEC_DEG = 55.0
INTEGRATION_S = 96 * 0.134217728
N_CHAN, N_INT = 4, 3
STATIONS = [1, 12, 40, 75, 100, 110]  # both arms and an outrigger, all active
ASCENDING_SB = 5  # one file with its channels ascending: the converter must follow the file's order
FREQ_TOL_HZ = 1e-3  # pyuvdata's own tolerance on freq_array; the MS must carry the labels exactly
# A real DSA-110 file's sb00 channel 0 label, printed to 6 decimals in MHz (issue #21): 1 Hz.
REAL_SB00_CH0_HZ = 1498.643188e6
REAL_LABEL_TOL_HZ = 1.0
# DATA is complex64: amplitudes survive a unit rotation to ~1e-7 relative.
AMP_RTOL = 1e-6
# At the chunk's middle integration the field and the fringe-stop centre are the same direction
# (the field is defined as it): the rotation there is 1 (measured: 0 rad; elsewhere up to 3 rad on
# these baselines). 1e-4 rad allows the two routes to that direction (HA/Dec -> GCRS, ICRS -> GCRS)
# to differ by 1e-10 rad (< 1e-6 m of w on 2.5 km) and still catches any sign or conjugation error.
MID_PHASE_TOL_RAD = 1e-4


def correlator_labels_hz(sb: int, n_chan: int) -> np.ndarray:
    """sb's channel labels straight from the yaml: means of the raw channels' labels, descending."""
    par = yaml.safe_load(YAML.read_text())
    raw_hz = par["f0_GHz"] * 1e9 - np.arange(par["nchan"]) * (par["bw_GHz"] * 1e9 / par["nchan"])
    firsts = sorted(v for k, v in par["ch0"].items() if k.startswith("corr"))
    block = raw_hz[firsts[sb] : firsts[sb] + par["nchan_spw"]]
    return block.reshape(n_chan, -1).mean(axis=1)


def write_chunk(out_dir: Path, seed: int = 0) -> dict:
    """16 subband files written by pyuvdata; returns per subband (path, freqs, data, ant1, ant2, times)."""
    from pyuvdata import Telescope, UVData

    out_dir.mkdir(parents=True, exist_ok=True)
    st = load_stations()
    site_m = np.array([SITE.x.value, SITE.y.value, SITE.z.value])
    telescope = Telescope.new(
        name="OVRO_MMA",
        location=SITE,
        instrument="DSA",
        antenna_names=list(st.name),
        antenna_numbers=list(st.number - 1),
        antenna_positions={int(n) - 1: x - site_m for n, x in zip(st.number, st.itrf_m, strict=True)},
        antenna_diameters=np.full(len(st.number), 4.65),
        update_from_known=False,
    )
    numbers = [s - 1 for s in STATIONS]
    pairs = [(a, b) for i, a in enumerate(numbers) for b in numbers[i:]]  # autos included, as the correlator
    times = Time(STAMP).jd + (np.arange(N_INT) + 0.5) * INTEGRATION_S / 86400.0
    rng = np.random.default_rng(seed)
    out = {}
    for sb in range(16):
        freqs = correlator_labels_hz(sb, N_CHAN)
        if sb == ASCENDING_SB:
            freqs = freqs[::-1]
        shape = (N_INT * len(pairs), N_CHAN, 2)
        data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyuvdata's notes on a telescope it does not know
            uv = UVData.new(
                freq_array=freqs,
                polarization_array=[-5, -6],
                times=times,
                telescope=telescope,
                antpairs=pairs,
                do_blt_outer=True,
                time_axis_faster_than_bls=False,
                integration_time=INTEGRATION_S,
                channel_width=np.full(N_CHAN, 11.71875e6 / N_CHAN),
                data_array=data,
                flag_array=np.zeros(shape, bool),
                nsample_array=np.ones(shape, np.float32),
                vis_units="uncalib",
            )
        uv.extra_keywords = {
            "phase_center_dec": np.radians(DEC_DEG),
            "ha_phase_center": 0.0,
            "phase_center_epoch": "HADEC",
            "fs_table": "fringestopping_table.npz",
            "applied_delays_ns": " ".join(["0"] * 2 * len(st.number)),
        }
        uv.uvw_array = uv.uvw_array.astype(np.float32)  # as the correlator writes it (never read by us)
        path = out_dir / f"{STAMP}_sb{sb:02d}.hdf5"
        uv.write_uvh5(str(path), clobber=True, run_check=False)
        out[sb] = {
            "path": path,
            "freqs": freqs,
            "data": data,
            "ant1": uv.ant_1_array.copy(),
            "ant2": uv.ant_2_array.copy(),
            "times": uv.time_array.copy(),
        }
    return out


def convert(files, out: Path, state: Path, report: Path | None = None):
    argv = child_command("convert", *files, "--out", out) + (["--report", str(report)] if report else [])
    return subprocess.run(argv, env=casa_child_env(state), capture_output=True, text=True, timeout=600, check=False)


def test_correlator_labels_follow_the_published_parameters():
    """The instrument model's labels are the means of the raw correlator labels (yaml), any channel count."""
    for n_chan in (48, 8, 4, 1):
        for sb in range(16):
            np.testing.assert_allclose(
                subband_freqs_hz(sb, n_chan), correlator_labels_hz(sb, n_chan), rtol=0, atol=FREQ_TOL_HZ
            )
    assert subband_freqs_hz(0)[0] == pytest.approx(REAL_SB00_CH0_HZ, rel=0, abs=REAL_LABEL_TOL_HZ)
    step = np.diff(subband_freqs_hz(0))
    np.testing.assert_allclose(step, -244140.625, rtol=0, atol=FREQ_TOL_HZ)


@pytest.fixture(scope="module")
def real_chunk(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    truth = write_chunk(root / "in")
    proc = convert([t["path"] for t in truth.values()], root / "out" / "chunk.ms", root / "casa", root / "r.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, truth, json.loads((root / "r.json").read_text())


@pytest.mark.casa
def test_pyuvdata_written_chunk_converts_with_its_own_frequencies(real_chunk):
    root, truth, report = real_chunk
    assert all(c["passed"] for c in report["checks"].values()), report["checks"]
    got = run_in_child(
        f"""
        import json, numpy as np
        from casacore import tables
        with tables.table("{root}/out/chunk.ms::SPECTRAL_WINDOW", ack=False) as spw:
            out = dict(freqs=[spw.getcell("CHAN_FREQ", k).tolist() for k in range(spw.nrows())],
                       widths=[spw.getcell("CHAN_WIDTH", k).tolist() for k in range(spw.nrows())],
                       names=list(spw.getcol("NAME")))
        print(json.dumps(out))
    """,
        root / "casa",
    )
    assert got["names"] == [f"sb{15 - k:02d}" for k in range(16)]
    for k in range(16):
        sb = 15 - k
        np.testing.assert_allclose(got["freqs"][k], np.sort(truth[sb]["freqs"]), rtol=0, atol=FREQ_TOL_HZ)
        np.testing.assert_allclose(got["widths"][k], 11.71875e6 / N_CHAN, rtol=0, atol=FREQ_TOL_HZ)
    assert report["freq_max_hz"] == pytest.approx(truth[0]["freqs"].max(), rel=0, abs=FREQ_TOL_HZ)


@pytest.mark.casa
@pytest.mark.parametrize("sb", [3, ASCENDING_SB])
def test_visibilities_round_trip_for_one_baseline(real_chunk, sb):
    """One cross baseline of one subband: |DATA| = |vis| at every time and channel, and at the middle
    integration (where the field is the fringe-stop centre) DATA = conj(vis), the MS's sign convention."""
    root, truth, _ = real_chunk
    t = truth[sb]
    a1, a2 = STATIONS[1] - 1, STATIONS[4] - 1
    rows = np.flatnonzero((t["ant1"] == a1) & (t["ant2"] == a2))
    order = np.argsort(t["freqs"])  # the MS's channels ascend
    vis = t["data"][rows][:, order, :]  # (time, chan, pol)
    got = run_in_child(
        f"""
        import json, numpy as np
        from casacore import tables
        with tables.table("{root}/out/chunk.ms", ack=False) as ms:
            sel = ms.query("DATA_DESC_ID=={15 - sb} && ANTENNA1=={a1} && ANTENNA2=={a2}", sortlist="TIME")
            d = sel.getcol("DATA"); f = sel.getcol("FLAG"); tm = sel.getcol("TIME"); sel.close()
        print(json.dumps(dict(re=d.real.tolist(), im=d.imag.tolist(), flagged=bool(f.any()), time=tm.tolist())))
    """,
        root / "casa",
    )
    data = np.array(got["re"]) + 1j * np.array(got["im"])
    assert data.shape == vis.shape and not got["flagged"]
    np.testing.assert_allclose(got["time"], (t["times"][rows] - 2400000.5) * 86400.0, rtol=0, atol=1e-3)
    np.testing.assert_allclose(np.abs(data), np.abs(vis), rtol=AMP_RTOL)
    mid = N_INT // 2
    np.testing.assert_allclose(
        np.abs(data[mid] - np.conj(vis[mid])), 0.0, rtol=0, atol=MID_PHASE_TOL_RAD * np.abs(vis[mid]).max()
    )


def _edit(path: Path, item: str, value=None) -> None:
    """Delete ``item`` from the file (value None) or replace it with ``value``."""
    with h5py.File(path, "r+") as h5:
        del h5[item]
        if value is not None:
            h5[item] = value


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_chunk(tmp_path_factory.mktemp("pristine"), seed=1)


def _copy_chunk(pristine, dest: Path) -> list[Path]:
    import shutil

    dest.mkdir()
    return [Path(shutil.copy(t["path"], dest)) for t in pristine.values()]


BAD = [
    ("Header/freq_array", None),
    ("Header/freq_array", correlator_labels_hz(4, N_CHAN)),  # subband 4's labels in sb03's file
    ("Header/channel_width", np.full(N_CHAN, 2 * 11.71875e6 / N_CHAN)),  # two subbands' worth
    ("Header/extra_keywords/phase_center_dec", None),
    ("Header/extra_keywords/ha_phase_center", 0.1),
    ("Header/polarization_array", np.array([-5, -7])),
    ("Header/time_array", np.zeros(7)),
    ("Header/ant_1_array", None),
    ("Header/Nblts", 5),
    ("Data/nsamples", None),
    ("Data/visdata", np.zeros((3, N_CHAN, 2), np.complex64)),
]


@pytest.mark.parametrize("item,value", BAD, ids=[f"{i}-{'missing' if v is None else 'bad'}" for i, v in BAD])
def test_bad_required_item_is_named_with_its_file(pristine, tmp_path, item, value):
    files = _copy_chunk(pristine, tmp_path / "in")
    bad = files[3]
    _edit(bad, item, value)
    with pytest.raises(ConversionError, match=re.escape(f"{bad.name}: {item}: ")):
        plan_chunk(files)


@pytest.mark.parametrize(
    "variant", ["scalar_width", "negative_width", "old_shape_freqs", "centre_labels", "extra_items"]
)
def test_header_variants_real_writers_use_are_accepted(pristine, tmp_path, variant):
    """Old UVH5 shapes, a signed width, the 15 kHz-off centre labels of older files, unknown keywords."""
    files = _copy_chunk(pristine, tmp_path / "in")
    path = files[7]
    freqs = correlator_labels_hz(7, N_CHAN)
    width = 11.71875e6 / N_CHAN
    if variant == "scalar_width":
        _edit(path, "Header/channel_width", width)
    elif variant == "negative_width":
        _edit(path, "Header/channel_width", np.full(N_CHAN, -width))
    elif variant == "old_shape_freqs":
        _edit(path, "Header/freq_array", freqs[None, :])
    elif variant == "centre_labels":  # channel centres: half a raw channel (15.26 kHz) below the labels
        freqs = freqs - 0.5 * 250e6 / 8192
        _edit(path, "Header/freq_array", freqs)
    else:
        with h5py.File(path, "r+") as h5:
            h5["Header/extra_keywords/some_new_keyword"] = np.bytes_("whatever")
            h5["Header/some_future_item"] = np.arange(3)
    info = read_subband(path)
    np.testing.assert_allclose(info.freqs_hz, freqs, rtol=0, atol=FREQ_TOL_HZ)
    np.testing.assert_allclose(info.channel_widths_hz, width, rtol=0, atol=FREQ_TOL_HZ)
    assert info.pointing_dec_deg == pytest.approx(DEC_DEG, rel=0, abs=1e-9)
    assert len(plan_chunk(files).subbands) == 16


@pytest.mark.casa
def test_conversion_of_a_bad_file_fails_naming_it_and_writes_nothing(pristine, tmp_path):
    files = _copy_chunk(pristine, tmp_path / "in")
    bad = files[11]
    _edit(bad, "Header/freq_array")
    out = tmp_path / "products" / "chunk.ms"
    proc = convert(files, out, tmp_path / "casa")
    assert proc.returncode != 0
    assert f"{bad.name}: Header/freq_array: missing" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.casa
def test_corrupt_data_block_found_while_writing_fails_naming_it_and_leaves_no_partial_ms(pristine, tmp_path):
    """A damaged block in the middle of Data/visdata passes the plan's last-row probe and fails only
    when a worker reads it, after the MS was created: the job names file and item and removes it."""
    files = _copy_chunk(pristine, tmp_path / "in")
    bad = files[9]
    with h5py.File(bad, "r+") as h5:  # rewrite visdata compressed, one chunk per row
        vis = h5["Data/visdata"][()]
        del h5["Data/visdata"]
        h5.create_dataset("Data/visdata", data=vis, chunks=(1,) + vis.shape[1:], compression="gzip")
        info = h5["Data/visdata"].id.get_chunk_info(0)
    with open(bad, "r+b") as fh:  # garble the first row's compressed bytes
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    assert len(plan_chunk(files).subbands) == 16  # the plan's last-row probe cannot see it
    out = tmp_path / "products" / "chunk.ms"
    proc = convert(files, out, tmp_path / "casa")
    assert proc.returncode != 0
    assert f"{bad.name}: Data/visdata: cannot be read" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()
    assert list(out.parent.iterdir()) == [], "the temporary MS must be removed"
