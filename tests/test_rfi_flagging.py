"""Our RFI pass against the simulator's injected RFI (the independent truth: ``truth.json``), no CASA."""

import h5py
import numpy as np
import pytest

from contimg.calibrate.rfi import baselines_per_time, flag_outliers, flag_rows
from contimg.sim import simulate
from contimg.sim.rfi_truth import rfi_masks

MIN_DETECTION = 0.99  # of the injected RFI samples (narrowband lines 50-500 Jy, bursts 20-200 Jy)
MAX_FALSE_FLAGS = 0.01  # of the clean cross-correlation samples


def file_rows(path):
    """One subband file as the flagger sees it: amplitudes (time, baseline, chan, pol) and the rows' layout."""
    with h5py.File(path, "r") as f:
        vis = f["Data/visdata"][:, 0]  # (blt, chan, pol)
        a1, a2 = f["Header/ant_1_array"][:], f["Header/ant_2_array"][:]
        t = f["Header/time_array"][:]
        freqs = np.ravel(f["Header/freq_array"][:])
    t_idx = np.unique(t, return_inverse=True)[1]
    return vis, a1, a2, t_idx, freqs


@pytest.fixture(scope="module")
def rfi_chunk(tmp_path_factory):
    out = tmp_path_factory.mktemp("rfi")
    # 16 channels per subband: the line search needs 8 or more (MIN_CHANNELS_FOR_LINES)
    truth = simulate(
        out, "2026-01-25T03:00:00", n_antennas=16, n_chan_per_subband=16, n_integrations=24, seed=5, rfi=True
    )
    return out, truth


def test_own_pass_catches_the_injected_rfi_with_few_false_flags(rfi_chunk):
    out, truth = rfi_chunk
    hit = n_rfi = false = n_clean = 0
    for path in sorted(out.glob("*_sb*.hdf5")):
        sb = int(path.stem[-2:])
        vis, a1, a2, t_idx, freqs = file_rows(path)
        flags = np.broadcast_to((a1 == a2)[:, None, None], vis.shape)  # autos flagged, as the converter does
        new = flag_rows(vis, flags, baselines_per_time(a1, a2)) & ~flags
        rfi, dead = rfi_masks(truth, sb, freqs, a1, a2, t_idx)
        rfi3 = np.broadcast_to(rfi[:, :, None], vis.shape)
        clean = np.broadcast_to((~rfi & ~dead & (a1 != a2)[:, None])[:, :, None], vis.shape)
        hit += np.count_nonzero(new & rfi3)
        n_rfi += np.count_nonzero(rfi3)
        false += np.count_nonzero(new & clean)
        n_clean += np.count_nonzero(clean)
    assert n_rfi > 0 and n_clean > 0
    assert hit / n_rfi >= MIN_DETECTION, f"detected {hit}/{n_rfi}"
    assert false / n_clean <= MAX_FALSE_FLAGS, f"false flags {false}/{n_clean}"


def test_a_line_in_the_edge_channel_is_found():
    # the simulator puts lines anywhere, the band's edge channels included (seed 21: subband 1, channel 0)
    rng = np.random.default_rng(6)
    amp = (10.0 + rng.normal(0, 0.1, (24, 30, 16, 2))).astype(np.float32)
    amp[:, :, 0] += 2.0  # every baseline, every time: only the median spectrum shows it
    amp[:, :, 15] += 2.0
    out = flag_outliers(amp, np.zeros(amp.shape, bool))
    assert out[:, :, [0, 15]].all() and out[:, :, 1:15].mean() < 1e-3
    amp[:, :, [0, 15]] -= 2.0
    amp[:, :, 13] += 5.0  # a line near the edge must not bend the edge's own test (seen: channel 15 flagged)
    out = flag_outliers(amp, np.zeros(amp.shape, bool))
    assert out[:, :, 13].all() and out[:, :, 15].mean() < 1e-3 and out[:, :, :13].mean() < 1e-3


def test_rows_and_grid_agree_and_bad_layouts_are_refused():
    rng = np.random.default_rng(0)
    nt, ants = 6, [(0, 1), (0, 2), (1, 2)]
    a1 = np.array([a for _ in range(nt) for a, _ in ants])
    a2 = np.array([b for _ in range(nt) for _, b in ants])
    vis = (rng.normal(size=(len(a1), 12, 2)) + 1j * rng.normal(size=(len(a1), 12, 2))).astype(np.complex64)
    vis[7, :, :] += 30  # a burst on one row
    flags = np.zeros(vis.shape, bool)
    assert baselines_per_time(a1, a2) == 3
    got = flag_rows(vis, flags, 3)
    want = flag_outliers(np.abs(vis).reshape(nt, 3, 12, 2), flags.reshape(nt, 3, 12, 2)).reshape(vis.shape)
    assert np.array_equal(got, want) and got[7].all()
    with pytest.raises(ValueError, match="not integrations of one repeated baseline order"):
        baselines_per_time(a1[:-1], a2[:-1])
    with pytest.raises(ValueError, match="not whole integrations"):
        flag_rows(vis[:-1], flags[:-1], 3)


def test_truth_masks_need_an_rfi_record():
    with pytest.raises(ValueError, match="without rfi=True"):
        rfi_masks({"rfi": None, "chunks": [{}]}, 0, np.arange(4.0), [0], [1], [0])
