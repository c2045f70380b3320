"""The default solve (K, B and the gains in numpy on the chunk summed per baseline) against
CASA doing every step on the binned MS (``--solver casa``), on one small chunk with delays, drifting
gains and noise: CASA's gaincal (K and G) and bandpass are the independent computation.

Both sets must reproduce the injected gains at mid-chunk (tests/test_calibrate_real.py's measure), and
agree with each other solution by solution: K x B x G at every G solution time, channel by channel.
"""

import json
import subprocess

import numpy as np
import pytest

from contimg.childjobs.env import casa_child_env, child_command
from contimg.sim import simulate
from tests.casa_helpers import run_in_child
from tests.test_calibrate_real import DRIFT_AMP_MEDIAN, DRIFT_PHASE_MEDIAN_DEG, mid_chunk_errors

pytestmark = pytest.mark.casa

# The two paths see the same data through different averaging (one sum per chunk against five bins for
# K and B): they differ by the noise of that, far below the 2 % / 2 deg the set must reach.
AGREE_AMP_MEDIAN = 0.003
AGREE_PHASE_MEDIAN_DEG = 0.3
# numpy's delays (contimg.calibrate.delaysolve) against CASA's K: half the 0.2 ns the issue asks of either
AGREE_DELAY_NS = 0.1


def delays(table: str, state) -> dict:
    """A K table's unflagged delays per antenna (SPW 0's rows) and its reference frequency (casatools)."""
    return run_in_child(
        f"""
        import casatools, json
        tb = casatools.table(); tb.open("{table}")
        k, f, a, s = (tb.getcol(c) for c in ("FPARAM", "FLAG", "ANTENNA1", "SPECTRAL_WINDOW_ID"))
        tb.close(); tb.open("{table}/SPECTRAL_WINDOW"); ref = float(tb.getcell("CHAN_FREQ", 0)[0]); tb.close()
        good = {{int(a[r]): k[:, 0, r].tolist() for r in range(len(a)) if s[r] == 0 and not f[:, 0, r].any()}}
        print(json.dumps({{"delays": good, "ref_hz": ref}}))
    """,
        state,
    )


def _job(name, *args, state):
    return subprocess.run(
        child_command(name, *args), env=casa_child_env(state), capture_output=True, text=True, timeout=900
    )


def products(tables: dict, state) -> dict:
    """K x B x G per antenna, SPW, pol and channel at each G solution (CASA's tables read by casatools)."""
    return run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table()
        t = {json.dumps(tables)}
        def load(path, col):
            tb.open(path)
            d = {{c: tb.getcol(c) for c in (col, "FLAG", "ANTENNA1", "SPECTRAL_WINDOW_ID", "TIME")}}
            tb.close()
            return d
        K, B, G = load(t["K"], "FPARAM"), load(t["B"], "CPARAM"), load(t["G"], "CPARAM")
        def chan_freqs(path):
            tb.open(path + "/SPECTRAL_WINDOW")
            f = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
            tb.close()
            return f
        kref = [f[0] for f in chan_freqs(t["K"])]
        freqs = chan_freqs(t["B"])
        out = {{}}
        for r in range(G["CPARAM"].shape[2]):
            a, k, time = int(G["ANTENNA1"][r]), int(G["SPECTRAL_WINDOW_ID"][r]), float(G["TIME"][r])
            kr = np.flatnonzero((K["ANTENNA1"] == a) & (K["SPECTRAL_WINDOW_ID"] == k))[0]
            br = np.flatnonzero((B["ANTENNA1"] == a) & (B["SPECTRAL_WINDOW_ID"] == k))[0]
            kg = np.exp(2j * np.pi * 1e-9 * K["FPARAM"][:, 0, kr][:, None] * (freqs[k] - kref[k])[None, :])
            p = kg * B["CPARAM"][:, :, br] * G["CPARAM"][:, :, r]
            f = B["FLAG"][:, :, br] | G["FLAG"][:, :, r] | K["FLAG"][:, :1, kr]
            out[f"{{a}},{{k}},{{round(time, 1)}}"] = [p.real.tolist(), p.imag.tolist(), f.tolist()]
        print(json.dumps(out))
    """,
        state,
    )


def test_reduced_solve_matches_casa_on_the_binned_ms(tmp_path):
    truth = simulate(
        tmp_path / "cal",
        "2026-01-25T00:00:00",
        n_antennas=16,
        n_chan_per_subband=4,
        n_integrations=24,
        calibrator="0834+555",
        sky=[],
        seed=55,
        delays=True,
        drift=True,
    )
    files = sorted((tmp_path / "cal").glob("*.hdf5"))
    proc = _job("convert", *files, "--out", tmp_path / "cal.ms", state=tmp_path / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports, got = {}, {}
    for solver in ("reduced", "casa"):
        out = tmp_path / solver
        args = [tmp_path / "cal.ms", "--out", out / "tables", "--report", out / "r.json", "--solver", solver]
        proc = _job("calibrate", *args, state=tmp_path / "casa")
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports[solver] = json.loads((out / "r.json").read_text())
        assert reports[solver]["quality_ok"], reports[solver]["problems"]
        amp, phase = mid_chunk_errors(tmp_path, truth, reports[solver])
        print(solver, "mid-chunk amp err median %", 100 * np.median(amp), "phase deg", np.median(phase))
        assert np.median(amp) < DRIFT_AMP_MEDIAN
        assert np.median(phase) < DRIFT_PHASE_MEDIAN_DEG
        got[solver] = products({t["type"]: t["path"] for t in reports[solver]["tables"]}, tmp_path / "casa")
    assert reports["reduced"]["refant"] == reports["casa"]["refant"]
    assert reports["reduced"]["solver_params"]["solver"] == "reduced"
    common = sorted(set(got["reduced"]) & set(got["casa"]))
    assert len(common) == len(got["casa"]) > 0  # the same solution times, antennas and SPWs
    amp_diff, phase_diff = [], []
    for key in common:
        (re1, im1, f1), (re2, im2, f2) = got["reduced"][key], got["casa"][key]
        p1, p2 = np.array(re1) + 1j * np.array(im1), np.array(re2) + 1j * np.array(im2)
        ok = ~(np.array(f1) | np.array(f2))
        amp_diff.append(np.abs(np.abs(p1[ok]) / np.abs(p2[ok]) - 1))
        phase_diff.append(np.abs(np.degrees(np.angle(p1[ok] * np.conj(p2[ok])))))
    amp_diff, phase_diff = np.concatenate(amp_diff), np.concatenate(phase_diff)
    print("reduced vs casa: amp diff median %", 100 * np.median(amp_diff), "phase deg", np.median(phase_diff))
    assert amp_diff.size > 0.9 * len(truth["station_numbers"]) * 2 * 16 * 4 * 5
    assert np.median(amp_diff) < AGREE_AMP_MEDIAN
    assert np.median(phase_diff) < AGREE_PHASE_MEDIAN_DEG
    k = {s: delays(next(t["path"] for t in reports[s]["tables"] if t["type"] == "K"), tmp_path / "casa") for s in got}
    assert k["reduced"]["ref_hz"] == pytest.approx(k["casa"]["ref_hz"], abs=1.0)  # the band's middle, as CASA's
    assert set(k["reduced"]["delays"]) == set(k["casa"]["delays"])
    k_diff = np.abs([np.subtract(k["reduced"]["delays"][a], k["casa"]["delays"][a]) for a in k["casa"]["delays"]])
    print("reduced (numpy) vs casa K: delay diff ns median", np.median(k_diff), "max", np.max(k_diff))
    assert np.max(k_diff) < AGREE_DELAY_NS
