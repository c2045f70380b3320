"""Calibration as real data need it (issue #21): the calibrator's position across an array with
outriggers, and per-antenna delays.

One calibrator chunk, simulated without noise at an antenna layout that includes outriggers (2.5 km
baselines), with the pointing 1 deg south of the calibrator (the phase shift to the calibrator then
matters), and per-antenna delays injected into the UVH5 files here (h5py) in the convention of
docs/conventions.md. Every expectation comes from the simulator's truth (truth.json,
truth_gains.npz) and the delays injected, never from the code under test.
"""

import json
import subprocess

import h5py
import numpy as np
import pytest

from contimg.childjobs.env import casa_child_env, child_command
from contimg.sim import simulate
from tests.casa_helpers import run_in_child

pytestmark = pytest.mark.casa

N_ANTENNAS = 32  # select_stations(32) holds 5 outriggers: baselines up to 2.5 km
DEC_OFFSET_DEG = 1.0  # pointing south of the calibrator: the phase shift moves the centre by 1 deg
DELAY_RMS_NS = 3.0  # injected per-antenna delays (a few ns: cable and clock errors at DSA-110)
# Phases of the solved gains against the truth, noise-free data. The phase shift left 14 mas of
# offset (0.15 deg on a 2.5 km baseline, measured); the reported fault was 0.5" (5-8 deg on the
# outriggers), so 0.5 deg max / 0.1 deg median catch a tenth of it on the longest baselines.
PHASE_MAX_DEG = 0.5
PHASE_MEDIAN_DEG = 0.1
# A position offset theta gives phase 2 pi theta (b . e) / lambda across the array: the fitted
# offset must be below 50 mas (the ICRS/FK5 frame bias is 14-23 mas; the fault was 500 mas).
MAX_POSITION_OFFSET_MAS = 50.0
DELAY_ATOL_NS = 0.2  # issue #21


def job(name, *args, state):
    return subprocess.run(
        child_command(name, *args), env=casa_child_env(state), capture_output=True, text=True, timeout=900
    )


def inject_delays(files, delays_ns: dict[int, np.ndarray]) -> None:
    """Multiply each file's visibilities by the delays' gains, UVH5 convention (docs/conventions.md).

    ``delays_ns[a]`` (2,) per antenna number and pol: the antenna's gain is d_a(nu) = exp(+2 pi i nu tau_a),
    the sense of CASA's K tables (a K solve returns +tau_a - tau_ref for it; -tau with the other sign:
    checked on this chunk), so V_uvh5(ant_1=i, ant_2=j) *= conj(d_i) d_j.
    """
    for path in files:
        with h5py.File(path, "r+") as f:
            a1, a2 = f["Header/ant_1_array"][()], f["Header/ant_2_array"][()]
            freqs = np.ravel(f["Header/freq_array"][()])
            vis = f["Data/visdata"][()]
            tau1 = np.array([delays_ns[int(a)] for a in a1]) * 1e-9  # (nblt, 2)
            tau2 = np.array([delays_ns[int(a)] for a in a2]) * 1e-9
            ph = np.exp(2j * np.pi * freqs[None, :, None] * (tau2 - tau1)[:, None, :])  # conj(d_i) d_j
            f["Data/visdata"][...] = (vis * ph[:, None, :, :]).astype(vis.dtype)


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    from contimg.calibrate.calibrators import find_calibrator

    root = tmp_path_factory.mktemp("calreal")
    cal = find_calibrator("0834+555")
    truth = simulate(
        root / "cal",
        "2026-01-25T00:00:00",
        n_antennas=N_ANTENNAS,
        n_chan_per_subband=4,
        n_integrations=8,
        calibrator="0834+555",
        sky=[],
        seed=21,
        dec_deg=cal.dec_deg - DEC_OFFSET_DEG,
        noise=False,
    )
    rng = np.random.default_rng(2121)
    numbers = truth["station_numbers"]
    delays = {n - 1: DELAY_RMS_NS * rng.standard_normal(2) for n in numbers}
    files = sorted((root / "cal").glob("*.hdf5"))
    inject_delays(files, delays)
    proc = job("convert", *files, "--out", root / "cal.ms", state=root / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = job(
        "calibrate", root / "cal.ms", "--out", root / "tables", "--report", root / "cal.json", state=root / "casa"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((root / "cal.json").read_text())
    return root, truth, report, delays


def solved_gains(root, report) -> dict:
    """Every table of the set multiplied per antenna, SPW, pol and channel (CASA reads the tables).

    K tables enter as CASA applies them; read back through a CASA ``applycal`` would be circular for
    the numpy path, so this uses CASA's own tables and the K convention checked in test_applycal.
    """
    tables = {t["type"]: t["path"] for t in report["tables"]}
    return run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table()
        tables = {json.dumps(tables)}
        def load(t, col):
            tb.open(t)
            g, f, a, s = (tb.getcol(c) for c in (col, 'FLAG', 'ANTENNA1', 'SPECTRAL_WINDOW_ID'))
            tb.close()
            return g, f, a, s
        B = load(tables['B'], 'CPARAM'); G = load(tables['G'], 'CPARAM')
        out = {{}}
        for row in range(B[0].shape[2]):
            a, spw = int(B[2][row]), int(B[3][row])
            grow = [r for r in range(G[0].shape[2]) if G[2][r] == a and G[3][r] == spw][0]
            prod = B[0][:, :, row] * G[0][:, :, grow]  # (pol, chan)
            flag = B[1][:, :, row] | G[1][:, :, grow]
            out.setdefault(a, {{}})[spw] = dict(re=prod.real.tolist(), im=prod.imag.tolist(), flag=flag.tolist())
        result = {{"BG": out}}
        if 'K' in tables:
            K = load(tables['K'], 'FPARAM')
            good = [r for r in range(K[0].shape[2]) if not K[1][:, 0, r].any()]
            result["K"] = {{int(K[2][r]): K[0][:, 0, r].tolist() for r in good if K[3][r] == 0}}
            tb.open(tables['K'] + '/SPECTRAL_WINDOW')
            result["K_ref_hz"] = float(tb.getcell('CHAN_FREQ', 0)[0])  # CASA's K reference frequency
            tb.close()
        print(json.dumps(result))
    """,
        root / "casa",
    )


def test_solved_phases_are_flat_across_the_array(delayed):
    """No position offset between the solve's calibrator and the data's: the solved phases match the
    injected ones on every baseline length, outriggers included (issue #21's 0.5" gradient)."""
    from contimg.core.instrument import load_stations

    root, truth, report, delays = delayed
    got = solved_gains(root, report)
    gains = np.load(root / "cal" / truth["gains_file"])
    numbers = list(gains["antenna_numbers"])
    freqs = gains["freq_hz"]
    n_chan = truth["n_chan_per_subband"]
    # injected gains: the simulator's times the delays', d = exp(+2 pi i nu tau)
    g = gains["gains"] * np.exp(
        2j * np.pi * freqs[None, None, :] * 1e-9 * np.array([delays[n - 1] for n in numbers])[:, :, None]
    )
    ref = report["refant"]
    ref_idx = numbers.index(ref + 1)
    ref_phase = np.exp(1j * np.angle(g[ref_idx]))
    k_delays = got.get("K", {})
    per_ant, phase_err = {}, []
    for a_str, spws in got["BG"].items():
        a = int(a_str)
        if a + 1 not in numbers:  # the tables hold every antenna of the MS, flagged where absent
            continue
        ai = numbers.index(a + 1)
        errs = []
        for spw_str, sol in spws.items():
            k = int(spw_str)
            sl = slice(k * n_chan, (k + 1) * n_chan)
            solved = np.array(sol["re"]) + 1j * np.array(sol["im"])
            if k_delays:  # CASA's K: the data carry exp(+2 pi i (nu - nu_ref) tau); B holds the rest
                tau = np.array(k_delays[a_str]) if a_str in k_delays else np.zeros(2)
                dnu = freqs[sl] - got["K_ref_hz"]
                solved = solved * np.exp(2j * np.pi * dnu[None, :] * 1e-9 * tau[:, None])
            expected = g[ai, :, sl] * np.conj(ref_phase[:, sl])
            err = np.degrees(np.angle(solved * np.conj(expected)))[~np.array(sol["flag"])]
            errs.append(err)
        per_ant[a] = np.concatenate(errs)
        phase_err.append(per_ant[a])
    phase_err = np.concatenate(phase_err)
    assert phase_err.size > 0.9 * len(numbers) * 2 * 16 * n_chan
    print("phase error median / max deg", np.median(np.abs(phase_err)), np.max(np.abs(phase_err)))
    assert np.median(np.abs(phase_err)) < PHASE_MEDIAN_DEG
    assert np.max(np.abs(phase_err)) < PHASE_MAX_DEG
    # the gradient: phase (rad) = 2 pi nu / c (b . theta) with b the antenna's offset from the refant
    stations = load_stations()
    pos = stations.itrf_m[stations.index_of(np.array([a + 1 for a in per_ant]))]
    ref_pos = stations.itrf_m[stations.index_of(np.array([ref + 1]))][0]
    b = pos - ref_pos
    y = np.radians([np.median(per_ant[a]) for a in per_ant]) * 2.998e8 / (2 * np.pi * np.mean(freqs))
    theta, *_ = np.linalg.lstsq(b, y, rcond=None)  # (3,) rad, the offset vector's components
    offset_mas = np.degrees(np.linalg.norm(theta)) * 3.6e6
    print("fitted position offset mas", offset_mas)
    assert offset_mas < MAX_POSITION_OFFSET_MAS


def test_injected_delays_are_recovered(delayed):
    """The K table holds the injected delays relative to the reference antenna's, per antenna and pol."""
    root, truth, report, delays = delayed
    assert [t["type"] for t in sorted(report["tables"], key=lambda t: t["order"])] == ["K", "B", "G"]
    got = solved_gains(root, report)["K"]
    ref = report["refant"]
    errors = [np.array(tau) - (delays[int(a)] - delays[ref]) for a, tau in got.items()]
    assert len(errors) == len(delays)
    errors = np.abs(np.concatenate(errors))
    print("delay error ns median / max", np.median(errors), np.max(errors))
    assert np.max(errors) < DELAY_ATOL_NS


# float32 columns: CASA's CORRECTED_DATA and our products each carry ~1e-7 relative rounding; 1e-4
# (the figure) is far above that and far below a wrong delay reference (2 pi tau dnu).
APPLY_RTOL = 1e-4


def test_numpy_delays_bandpass_and_gains_match_casa_applycal(delayed, tmp_path):
    """The image job's numpy path (load_gains with K, B and the time-variable G) divides a target chunk's
    data exactly as CASA's applycal."""
    root, truth, report, delays = delayed
    tables = [t["path"] for t in sorted(report["tables"], key=lambda t: t["order"])]
    got = run_in_child(
        f"""
        import json, shutil, casatools, casatasks, numpy as np
        from contimg.image.job.msread import load_gains, read_windows
        ms = "{tmp_path}/applied.ms"
        shutil.copytree("{root}/cal.ms", ms)
        tb = casatools.table(); tb.open(ms, nomodify=False)
        for c in ("TIME", "TIME_CENTROID"):  # a target chunk an hour after the solutions: their last applies
            tb.putcol(c, tb.getcol(c) + 3600.0)
        t_span = (float(tb.getcol("TIME").min()), float(tb.getcol("TIME").max())); tb.close()
        tables = {json.dumps(tables)}
        casatasks.applycal(vis=ms, gaintable=tables, interp=["linear"] * 3, calwt=True, applymode="calflag",
                           flagbackup=False)
        freqs, widths, spw_of_dd, n_ant = read_windows(ms)
        gains, bad = load_gains(tables, n_ant, [len(f) for f in freqs], freqs, t_span)
        tb = casatools.table(); tb.open(ms)
        a1, a2, dd = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2"), tb.getcol("DATA_DESC_ID")
        data = np.transpose(tb.getcol("DATA"), (2, 1, 0)); corr = np.transpose(tb.getcol("CORRECTED_DATA"), (2, 1, 0))
        flag = np.transpose(tb.getcol("FLAG"), (2, 1, 0)); tb.close()
        worst, n = 0.0, 0
        for d in np.unique(dd):
            k = spw_of_dd[d]
            rows = (dd == d) & (a1 != a2)
            g = gains[k]
            gg = g[a1[rows]] * np.conj(g[a2[rows]])
            ok = ~(flag[rows] | bad[k][a1[rows]] | bad[k][a2[rows]])
            ours = data[rows] / np.where(ok, gg, 1)
            err = np.abs(ours - corr[rows])[ok] / np.abs(corr[rows][ok])
            worst, n = max(worst, float(err.max())), n + int(ok.sum())
        print(json.dumps({{"worst": worst, "n": n, "n_cross": int(np.sum(a1 != a2) * data.shape[1] * data.shape[2])}}))
    """,
        tmp_path / "casa",
    )
    print("numpy vs CASA applycal, worst relative difference", got["worst"], "over", got["n"])
    assert got["n"] > 0.9 * got["n_cross"]
    assert got["worst"] < APPLY_RTOL


# Drifting gains, delays and noise: K x B x G at mid-chunk against the truth there (issue #21: 2 % and
# 2 deg median on unflagged channels).
DRIFT_AMP_MEDIAN = 0.02
DRIFT_PHASE_MEDIAN_DEG = 2.0


def test_drifting_gains_are_followed_at_mid_chunk(tmp_path):
    truth = simulate(
        tmp_path / "cal",
        "2026-01-25T00:00:00",
        n_antennas=N_ANTENNAS,
        n_chan_per_subband=4,
        n_integrations=24,
        calibrator="0834+555",
        sky=[],
        seed=33,
        delays=True,
        drift=True,
    )
    files = sorted((tmp_path / "cal").glob("*.hdf5"))
    proc = job("convert", *files, "--out", tmp_path / "cal.ms", state=tmp_path / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = job(
        "calibrate",
        tmp_path / "cal.ms",
        "--out",
        tmp_path / "tables",
        "--report",
        tmp_path / "r.json",
        state=tmp_path / "casa",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["quality_ok"], report["problems"]
    amp_err, phase_err = mid_chunk_errors(tmp_path, truth, report)
    print("drift: amp err median %", 100 * np.median(amp_err), "phase err median deg", np.median(phase_err))
    assert amp_err.size > 0.9 * len(truth["station_numbers"]) * 2 * 16 * truth["n_chan_per_subband"]
    assert np.median(amp_err) < DRIFT_AMP_MEDIAN
    assert np.median(phase_err) < DRIFT_PHASE_MEDIAN_DEG


def mid_chunk_errors(tmp_path, truth, report):
    """|amplitude ratio - 1| and |phase error| (deg) of K x B x G at mid-chunk against truth_gains there,
    on unflagged channels (G interpolated linearly in time between its solutions, amplitude and phase)."""
    from contimg.sim.gains import truth_gains

    mid_mjd = truth["chunks"][0]["mid_mjd"]
    tables = {t["type"]: t["path"] for t in report["tables"]}
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table()
        tables = {json.dumps(tables)}
        cols = {{}}
        for kind, col in (("K", "FPARAM"), ("B", "CPARAM"), ("G", "CPARAM")):
            tb.open(tables[kind])
            cols[kind] = {{c: tb.getcol(c) for c in (col, "FLAG", "ANTENNA1", "SPECTRAL_WINDOW_ID", "TIME")}}
            tb.close()
        def chan_freqs(t):
            tb.open(t + "/SPECTRAL_WINDOW"); f = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]; tb.close()
            return f
        k_ref = [float(f[0]) for f in chan_freqs(tables["K"])]
        freqs = [f.tolist() for f in chan_freqs(tables["B"])]
        def plain(v):
            return (v.real.tolist(), v.imag.tolist()) if np.iscomplexobj(v) else v.tolist()
        out = {{k: {{c: plain(v) for c, v in d.items()}} for k, d in cols.items()}}
        print(json.dumps({{"tables": out, "k_ref": k_ref, "freqs": freqs}}))
    """,
        tmp_path / "casa",
    )

    def arr(kind, col):
        v = got["tables"][kind][col]
        return (
            np.array(v[0]) + 1j * np.array(v[1])
            if isinstance(v, list) and len(v) == 2 and col == "CPARAM"
            else np.array(v)
        )

    K, B, G = ({c: arr(k, c) for c in got["tables"][k]} for k in ("K", "B", "G"))
    t_mid_s = mid_mjd * 86400.0
    ref = report["refant"]
    numbers = truth["station_numbers"]
    amp_err, phase_err = [], []
    for n in numbers:
        a = n - 1
        for spw in range(16):
            freqs = np.array(got["freqs"][spw])
            kr = np.flatnonzero((K["ANTENNA1"] == a) & (K["SPECTRAL_WINDOW_ID"] == spw))
            br = np.flatnonzero((B["ANTENNA1"] == a) & (B["SPECTRAL_WINDOW_ID"] == spw))
            gr = np.flatnonzero((G["ANTENNA1"] == a) & (G["SPECTRAL_WINDOW_ID"] == spw) & ~G["FLAG"][0, 0, :])
            if not (kr.size and br.size and gr.size):
                continue
            # G at mid-chunk: amplitude and phase interpolated linearly in time between its solutions
            gt = G["TIME"][gr]
            gg = G["CPARAM"][:, 0, gr]  # (pol, time)
            amp = np.array([np.interp(t_mid_s, gt, np.abs(gg[p])) for p in range(2)])
            ph = np.array([np.interp(t_mid_s, gt, np.unwrap(np.angle(gg[p]))) for p in range(2)])
            g_mid = amp * np.exp(1j * ph)
            kgain = np.exp(2j * np.pi * 1e-9 * K["FPARAM"][:, 0, kr[0]][:, None] * (freqs - got["k_ref"][spw])[None, :])
            solved = kgain * B["CPARAM"][:, :, br[0]] * g_mid[:, None]  # (pol, chan)
            flag = B["FLAG"][:, :, br[0]] | K["FLAG"][:, :1, kr[0]]
            for p in range(2):
                true = truth_gains(tmp_path / "cal", a, p, mid_mjd)[0]
                true_ref = truth_gains(tmp_path / "cal", ref, p, mid_mjd)[0]
                sel = np.searchsorted(np.load(tmp_path / "cal" / truth["gains_file"])["freq_hz"], freqs)
                expected = true[sel] * np.exp(-1j * np.angle(true_ref[sel]))
                good = ~flag[p]
                amp_err.append((np.abs(solved[p]) / np.abs(expected) - 1)[good])
                phase_err.append(np.degrees(np.angle(solved[p] * np.conj(expected)))[good])
    return np.abs(np.concatenate(amp_err)), np.abs(np.concatenate(phase_err))


def test_crowded_field_with_the_reference_catalogue(tmp_path):
    """A calibrator in a realistic field (the simulator's counts sky), delays, drift and noise: with the
    field's catalogue in the model the solved gains meet 2 % / 2 deg at mid-chunk (issue #21).

    It failed (1.47 % / 1.35 deg with the field, worse than without) while the simulator put Gaussian
    sources' fluxes at other sources' positions (contimg.sim.model.gaussian_components' order), so its
    visibilities did not hold the sky.csv it wrote; 0.40 % / 0.29 deg once they do (1.31 % / 1.33 deg without).
    """
    truth = simulate(
        tmp_path / "cal",
        "2026-01-25T00:00:00",
        n_antennas=N_ANTENNAS,
        n_chan_per_subband=4,
        n_integrations=24,
        calibrator="0834+555",
        sky="counts",
        seed=44,
        delays=True,
        drift=True,
    )
    files = sorted((tmp_path / "cal").glob("*.hdf5"))
    proc = job("convert", *files, "--out", tmp_path / "cal.ms", state=tmp_path / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = {}
    for label, extra in (("without", []), ("with", ["--reference-catalog", tmp_path / "cal" / "sky.csv"])):
        out = tmp_path / label
        args = [tmp_path / "cal.ms", "--out", out / "tables", "--report", out / "r.json", *extra]
        proc = job("calibrate", *args, state=tmp_path / "casa")
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads((out / "r.json").read_text())
        assert report["quality_ok"], report["problems"]
        amp_err, phase_err = mid_chunk_errors(tmp_path, truth, report)
        figures[label] = (100 * np.median(amp_err), np.median(phase_err))
        if label == "with":
            assert "field sources from the reference catalogue" in proc.stdout
    print("crowded field: median amp % / phase deg", figures)
    assert figures["with"][0] < 100 * DRIFT_AMP_MEDIAN
    assert figures["with"][1] < DRIFT_PHASE_MEDIAN_DEG
