"""The converter's Measurement Sets, checked by CASA itself (casatools in a child process)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.childjobs.env import casa_child_env, child_command
from contimg.core.beam import airy_power
from contimg.core.instrument import SITE
from contimg.core.phasing import meridian_icrs
from contimg.sim import Source, simulate
from tests.casa_helpers import run_in_child

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

# A date inside the Earth-orientation tables shipped in casadata (they end in late 2025): CASA
# computes uvw "with less precision" (no UT1-UTC, no polar motion) outside them.
START = "2025-06-15T00:00:00"
DEC = 55.0
N_INT = 12
UVW_TOL_M = 1e-3
FLUX_RTOL = 0.02
POSITION_FRACTION_OF_BEAM = 0.2


def convert(files, out, state, report=None):
    argv = child_command("convert", *files, "--out", out) + (["--report", str(report)] if report else [])
    return subprocess.run(argv, env=casa_child_env(state), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def lone_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    t_mid = Time(START) + N_INT / 2 * 96 * 0.134217728 * u.s
    centre = meridian_icrs(t_mid, DEC)
    src = Source(centre.ra.deg + 0.4, centre.dec.deg + 0.25, 3.0, 0.0, "off")
    truth = simulate(
        root / "sim",
        START,
        n_antennas=24,
        n_chan_per_subband=4,
        n_integrations=N_INT,
        dec_deg=DEC,
        sky=[src],
        noise=False,
        gains=False,
        seed=1,
    )
    proc = convert(
        sorted((root / "sim").glob("*.hdf5")),
        root / "products" / "chunk.ms",
        root / "casa",
        report=root / "report.json",
    )
    assert proc.returncode == 0, proc.stderr
    return root, truth, json.loads((root / "report.json").read_text())


def test_casa_reads_the_expected_layout_and_the_checks_pass(lone_source):
    root, truth, report = lone_source
    assert all(c["passed"] for c in report["checks"].values()), report["checks"]
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        msmd = casatools.msmetadata(); msmd.open("{root}/products/chunk.ms")
        freqs = np.concatenate([msmd.chanfreqs(s) for s in range(msmd.nspw())])
        pc = msmd.phasecenter(0)
        out = dict(nspw=msmd.nspw(), ascending=bool(np.all(np.diff(freqs) > 0)), fmin=freqs.min(), fmax=freqs.max(),
                   nchan=[int(msmd.nchan(s)) for s in range(msmd.nspw())], ants=sorted(set(msmd.antennasforscan(1).tolist())),
                   ntimes=len(msmd.timesforspws(0)), ra=pc['m0']['value'], dec=pc['m1']['value'],
                   corr=[int(c) for c in msmd.corrtypesforpol(0)], names=msmd.antennanames([0, 116]))
        msmd.close()
        tb = casatools.table(); tb.open("{root}/products/chunk.ms/OBSERVATION"); out['telescope'] = tb.getcol('TELESCOPE_NAME')[0]; tb.close()
        tb.open("{root}/products/chunk.ms/ANTENNA"); out['mount'] = sorted(set(tb.getcol('MOUNT'))); out['diam'] = float(tb.getcol('DISH_DIAMETER')[0]); tb.close()
        tb.open("{root}/products/chunk.ms"); out['cols'] = tb.colnames(); tb.close()
        print(json.dumps(out))
    """,  # noqa: E501 (a CASA script run as is in a child process)
        root / "casa",
    )
    assert got["nspw"] == 16 and got["nchan"] == [4] * 16 and got["ascending"]
    assert got["fmin"] > 1311.25e6 and got["fmax"] < 1498.75e6
    assert got["ants"] == sorted(n - 1 for n in truth["station_numbers"])
    assert got["ntimes"] == N_INT
    assert got["corr"] == [9, 12]  # XX, YY
    assert got["names"] == ["DSA-001", "DSA-117"]
    assert got["telescope"] == "OVRO_MMA" and got["mount"] == ["ALT-AZ"] and got["diam"] == pytest.approx(4.65)
    assert {"DATA", "FLAG", "WEIGHT", "SIGMA"} <= set(got["cols"])
    # the simulator's nsamples are uniform across each row's channels (as DSA-110's are): WEIGHT carries them
    assert "WEIGHT_SPECTRUM" not in got["cols"] and report["weight_spectrum"] is False
    assert not {"MODEL_DATA", "CORRECTED_DATA"} & set(got["cols"])  # scratch columns: made by CASA when needed
    # field = ICRS of (HA=0, pointing dec) at the chunk midpoint, recomputed here with astropy
    mid = Time(report["mid_mjd"], format="mjd")
    expected = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=HADec(obstime=mid, location=SITE, pressure=0 * u.hPa)).icrs
    assert SkyCoord(got["ra"] * u.rad, got["dec"] * u.rad).separation(expected).arcsec < 1.0


def test_uvw_agree_with_casa_measures_to_a_millimetre(lone_source):
    root, _, _ = lone_source
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        ms = "{root}/products/chunk.ms"
        tb = casatools.table(); me = casatools.measures(); qa = casatools.quanta()
        tb.open(ms); a1 = tb.getcol('ANTENNA1'); a2 = tb.getcol('ANTENNA2'); tm = tb.getcol('TIME'); uvw = tb.getcol('UVW').T; tb.close()
        tb.open(ms + '/ANTENNA'); pos = tb.getcol('POSITION').T; tb.close()
        tb.open(ms + '/FIELD'); pd = tb.getcol('PHASE_DIR'); tb.close()
        me.doframe(me.observatory('OVRO_MMA'))
        me.doframe(me.direction('J2000', qa.quantity(pd[0, 0, 0], 'rad'), qa.quantity(pd[1, 0, 0], 'rad')))
        rel = pos - pos.mean(axis=0)
        casa = np.zeros_like(uvw)
        for t in np.unique(tm):
            me.doframe(me.epoch('UTC', qa.quantity(t, 's')))
            b = me.baseline('ITRF', qa.quantity(rel[:, 0], 'm'), qa.quantity(rel[:, 1], 'm'), qa.quantity(rel[:, 2], 'm'))
            ant = np.array(me.touvw(b)[1]['value']).reshape(-1, 3)
            sel = tm == t
            casa[sel] = ant[a1[sel]] - ant[a2[sel]]  # CASA's sense: antenna1 - antenna2
        cross = a1 != a2
        print(json.dumps(dict(max_diff=float(np.abs(casa[cross] - uvw[cross]).max()), n=int(cross.sum()),
                              max_len=float(np.linalg.norm(uvw[cross], axis=1).max()))))
    """,  # noqa: E501 (a CASA script run as is in a child process)
        root / "casa",
    )
    assert got["n"] > 0 and got["max_len"] > 1000.0
    assert got["max_diff"] < UVW_TOL_M


def test_casa_dirty_image_puts_the_source_at_its_position_and_apparent_flux(lone_source):
    root, truth, report = lone_source
    src = truth["sky"][0]
    got = run_in_child(
        f"""
        import casatasks, casatools, json, numpy as np
        casatasks.tclean(vis="{root}/products/chunk.ms", imagename="{root}/dirty", imsize=[160, 160], cell='2arcsec',
                         phasecenter="J2000 {src["ra_deg"]}deg {src["dec_deg"]}deg", niter=0, gridder='widefield',
                         wprojplanes=-1, weighting='natural', specmode='mfs', pblimit=-1, stokes='I')
        ia = casatools.image(); ia.open("{root}/dirty.image")
        fit = ia.fitcomponents(box='55,55,105,105')['results']['component0']
        beam = ia.restoringbeam(); pix = ia.getchunk()[:, :, 0, 0]; ia.close()
        # A dirty image is in Jy/PSF and the PSF peaks at 1: a point source's flux is its peak. The image is
        # centred on the source, so the peak is a pixel value; a Gaussian fit to the non-Gaussian dirty beam
        # would bias it. The position comes from the fit.
        print(json.dumps(dict(flux=float(pix.max()), ra=fit['shape']['direction']['m0']['value'],
                              dec=fit['shape']['direction']['m1']['value'], bmin=beam['minor']['value'])))
    """,
        root / "casa",
    )
    # Expected apparent flux: flux x Airy beam, averaged over every integration and channel,
    # with the source's offset from (HA=0, pointing dec) computed here with astropy.
    times, freqs = [], []
    for f in truth["chunks"][0]["files"]:
        t0 = Time(f["start"])
        times.append(t0 + (np.arange(N_INT) + 0.5) * 96 * 0.134217728 * u.s)
    from contimg.core.instrument import subband_freqs_hz

    freqs = np.concatenate([subband_freqs_hz(sb, 4) for sb in range(16)])
    beam = []
    for t in times:  # one entry per subband, each with that subband's times
        frame = HADec(obstime=t, location=SITE, pressure=0 * u.hPa)
        s = SkyCoord(ra=src["ra_deg"] * u.deg, dec=src["dec_deg"] * u.deg).transform_to(frame)
        p = SkyCoord(ha=np.zeros(N_INT) * u.deg, dec=np.full(N_INT, DEC) * u.deg, frame=frame)
        beam.append(airy_power(s.separation(p).rad[:, None], freqs[None, :]).mean())
    expected_flux = src["flux_jy"] * np.mean(beam)
    assert got["flux"] == pytest.approx(expected_flux, rel=FLUX_RTOL)
    offset = SkyCoord(got["ra"] * u.rad, got["dec"] * u.rad).separation(
        SkyCoord(src["ra_deg"] * u.deg, src["dec_deg"] * u.deg)
    )
    assert offset.arcsec < POSITION_FRACTION_OF_BEAM * got["bmin"]


def test_wsclean_accepts_the_ms(lone_source, tmp_path):
    root, _, _ = lone_source
    wsclean = shutil.which("wsclean")
    assert wsclean, "wsclean is installed by the project's setup (scripts/install-system-deps.sh)"
    # -reorder: the SPWs carry their subbands' own (jittered) times, so WSClean must reorder them
    proc = subprocess.run(
        [
            wsclean,
            "-size",
            "128",
            "128",
            "-scale",
            "20asec",
            "-niter",
            "0",
            "-quiet",
            "-reorder",
            "-name",
            str(tmp_path / "ws"),
            str(root / "products" / "chunk.ms"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ws-image.fits").exists()


def test_missing_subband_is_flagged_and_nans_never_reach_the_data(tmp_path):
    simulate(
        tmp_path / "sim",
        START,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=3,
        dec_deg=DEC,
        seed=4,
        faults="missing@0:6,nan@0:2",
    )
    proc = convert(
        sorted((tmp_path / "sim").glob("*.hdf5")), tmp_path / "out.ms", tmp_path / "casa", report=tmp_path / "r.json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["missing_subbands"] == [6] and report["nan_flagged"] > 0
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table(); tb.open("{tmp_path}/out.ms")
        out = {{}}
        for spw in range(16):
            sub = tb.query(f'DATA_DESC_ID=={{spw}}')
            flags = sub.getcol('FLAG'); data = sub.getcol('DATA')
            a1 = sub.getcol('ANTENNA1'); a2 = sub.getcol('ANTENNA2')
            cross = a1 != a2
            out[spw] = dict(all_flagged=bool(flags.all()), cross_flag_frac=float(flags[:, :, cross].mean()),
                            autos_flagged=bool(flags[:, :, ~cross].all()), finite=bool(np.isfinite(data).all()))
            sub.close()
        tb.close(); print(json.dumps(out))
    """,
        tmp_path / "casa",
    )
    assert got["9"]["all_flagged"], "SPW 9 holds subband 6 (SPW k = subband 15 - k)"
    assert all(not got[str(k)]["all_flagged"] for k in range(16) if k != 9)
    assert all(v["autos_flagged"] and v["finite"] for v in got.values())
    assert 0 < got["13"]["cross_flag_frac"] < 0.5, "subband 2 (SPW 13) had NaNs, flagged"


def test_weight_spectrum_only_when_nsamples_vary_across_channels(tmp_path):
    """Subband 3 (SPW 12, written after SPWs 0-11) gets nsamples that vary across channels: the
    MS then has WEIGHT_SPECTRUM for every row, the uniform SPWs' filled from their WEIGHT."""
    import h5py

    simulate(
        tmp_path / "sim",
        START,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=3,
        dec_deg=DEC,
        seed=5,
        faults="nan@0:9",
    )
    files = sorted((tmp_path / "sim").glob("*.hdf5"))
    ns_file = {}
    for f in files:
        sb = int(f.stem[-2:])
        with h5py.File(f, "r+") as h5:
            if sb == 3:
                ns = h5["Data/nsamples"][()]
                ns[:, 0, :, 0] *= np.array([1.0, 0.5, 0.25, 0.75], np.float32)  # file order (descending)
                ns[:, 0, :, 1] *= np.array([0.5, 1.0, 1.0, 1.0], np.float32)
                h5["Data/nsamples"][...] = ns
            ns_file[sb] = h5["Data/nsamples"][()][:, 0, ::-1, :]  # channels ascending, as in the MS
    proc = convert(files, tmp_path / "out.ms", tmp_path / "casa", report=tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["weight_spectrum"] is True
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table(); tb.open("{tmp_path}/out.ms")
        out = dict(defined=all(tb.iscelldefined('WEIGHT_SPECTRUM', r) for r in range(tb.nrows())))
        for c in ('WEIGHT_SPECTRUM', 'FLAG', 'WEIGHT', 'SIGMA', 'DATA_DESC_ID'):
            out[c] = np.asarray(tb.getcol(c)).T.tolist()  # (row, chan, pol) / (row, pol)
        tb.close(); print(json.dumps(out))
    """,
        tmp_path / "casa",
    )
    assert got["defined"]
    wspec, flags = np.array(got["WEIGHT_SPECTRUM"]), np.array(got["FLAG"], bool)
    weight, sigma, dd = np.array(got["WEIGHT"]), np.array(got["SIGMA"]), np.array(got["DATA_DESC_ID"])
    assert 0 < flags.mean() < 1
    for k in range(16):
        rows = dd == k
        expected = np.where(flags[rows], 0, ns_file[15 - k])
        np.testing.assert_allclose(wspec[rows], expected, rtol=1e-6)
        good = (~flags[rows]).sum(axis=1)
        mean_good = np.where(good > 0, expected.sum(axis=1) / np.maximum(good, 1), 0)
        np.testing.assert_allclose(weight[rows], mean_good, rtol=1e-6)
    assert not np.allclose(wspec[dd == 12][:, :, 0], wspec[dd == 12][:, :1, 0] * np.ones(4))  # varies in SPW 12
    np.testing.assert_allclose(sigma, np.where(weight > 0, 1 / np.sqrt(np.maximum(weight, 1e-30)), 0), rtol=1e-6)


def test_truncated_file_fails_naming_it_and_leaves_nothing(tmp_path):
    simulate(
        tmp_path / "sim",
        START,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=3,
        dec_deg=DEC,
        seed=4,
        faults="truncate@0:11",
    )
    out_dir = tmp_path / "products"
    proc = convert(sorted((tmp_path / "sim").glob("*.hdf5")), out_dir / "out.ms", tmp_path / "casa")
    assert proc.returncode != 0
    bad = next(p.name for p in (tmp_path / "sim").glob("*_sb11.hdf5"))
    assert bad in proc.stderr and "truncated or corrupt" in proc.stderr
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
