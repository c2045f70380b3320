"""The reference catalogue's one reader (contimg.core.refcat) and the stages' rules over it.

Merged from the three former readers' tests (contimg.calibrate.refcat, contimg.image.refcat,
contimg.photometry.reference): CSV (extra columns, blank and missing spectral index, shapes, names,
compact), VizieR TSV, FITS and VOTable (mJy, sexagesimal), and every error case, each naming the file,
the column and the line or row.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from contimg.calibrate.refcat import field_sources
from contimg.core.refcat import (
    DEFAULT_SPECTRAL_INDEX,
    ReferenceCatalogError,
    ReferenceCatalogNotFoundError,
    read_reference_catalog,
    source_name,
)
from contimg.photometry.reference import compact_ids

ATOL_DEG = 1e-12  # positions pass through float parsing only


# --- CSV ---------------------------------------------------------------------------------------------


def test_csv_with_extra_columns_like_the_simulators_sky(tmp_path):
    path = tmp_path / "sky.csv"
    path.write_text("name,ra_deg,dec_deg,flux_jy,spectral_index,extra\na,128.5,55.1,0.25,-0.8,x\nb,129.0,54.9,1.5,,y\n")
    got = read_reference_catalog(path)
    assert [(s.ra_deg, s.dec_deg, s.flux_jy) for s in got] == [(128.5, 55.1, 0.25), (129.0, 54.9, 1.5)]
    assert got[0].spectral_index == -0.8 and got[1].spectral_index == DEFAULT_SPECTRAL_INDEX
    assert list(got.source_id) == ["a", "b"] and got.compact is None
    np.testing.assert_array_equal(got.maj_arcsec, [0.0, 0.0])


def test_csv_ra_wraps_and_flux_at_extrapolates(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(
        "name,ra_deg,dec_deg,flux_jy,spectral_index,extra\na,150.0,55.0,1.5,-0.7,x\nb,-10.0,54.0,0.2,0.0,y\n"
    )
    cat = read_reference_catalog(path)
    np.testing.assert_array_equal(cat.ra_deg, [150.0, 350.0])
    # S(nu) = S(1.4 GHz) (nu / 1.4 GHz)^alpha, by hand
    np.testing.assert_allclose(cat.flux_at(1.3e9), [1.5 * (1.3 / 1.4) ** -0.7, 0.2], rtol=1e-12)
    assert cat.path == str(path)


def test_csv_without_spectral_index_column_defaults_and_names_from_positions(tmp_path):
    """The former photometry and imaging readers refused this; calibration's defaulted: the default won."""
    good = tmp_path / "good.csv"
    good.write_text("ra_deg,dec_deg,flux_jy,extra\n150.5,55.25,1.5,x\n")
    ref = read_reference_catalog(good)
    assert list(ref.source_id) == ["J150.5000+55.2500"] and ref.flux_jy[0] == 1.5
    assert ref.spectral_index[0] == DEFAULT_SPECTRAL_INDEX
    assert source_name(-9.5, -5.0) == "J350.5000-05.0000"


def test_csv_gaussian_shapes_comments_and_source_id(tmp_path):
    path = tmp_path / "sky.csv"
    path.write_text(
        "# the simulator's sky\nsource_id,name,ra_deg,dec_deg,flux_jy,spectral_index,maj_arcsec,min_arcsec,pa_deg\n"
        "S0,x,10,20,0.5,-0.7,30,10,45\nS1,y,11,21,0.6,-0.7,,,\n"
    )
    cat = read_reference_catalog(path)
    assert list(cat.source_id) == ["S0", "S1"]  # source_id before name
    assert (cat[0].maj_arcsec, cat[0].min_arcsec, cat[0].pa_deg) == (30.0, 10.0, 45.0)
    assert (cat[1].maj_arcsec, cat[1].min_arcsec, cat[1].pa_deg) == (0.0, 0.0, 0.0)


def test_compact_column_and_photometrys_rule(tmp_path):
    good = tmp_path / "ref.csv"
    good.write_text("name,ra_deg,dec_deg,flux_jy,spectral_index,compact\nA,1,2,1,0,1\nB,3,4,1,0,false\n")
    cat = read_reference_catalog(good)
    assert compact_ids(cat) == {"A"}
    np.testing.assert_array_equal(cat.compact, [True, False])
    bad = tmp_path / "bad.csv"
    bad.write_text("ra_deg,dec_deg,flux_jy,spectral_index,compact\n1,2,1,0,maybe\n")
    with pytest.raises(ReferenceCatalogError, match=r"bad\.csv: line 2, column 'compact' holds 'maybe'"):
        read_reference_catalog(bad)
    plain = tmp_path / "plain.csv"
    plain.write_text("ra_deg,dec_deg,flux_jy\n1,2,1\n")
    assert compact_ids(read_reference_catalog(plain)) is None


def test_csv_errors_name_the_file_the_column_and_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ra_deg,dec,flux_jy\n1,2,3\n")
    with pytest.raises(ReferenceCatalogError, match=r"bad\.csv: missing column\(s\) dec_deg \(has: ra_deg, dec, flux"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux\n150,55,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv: missing column\(s\) flux_jy \("):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy\n1,2,3\n1,x,3\n")
    with pytest.raises(ReferenceCatalogError, match=r"bad\.csv: line 3, column 'dec_deg': 'x' is not a number"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy,spectral_index\n150,55,1,0\n150,55,lots,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3, column 'flux_jy': 'lots' is not a number"):
        read_reference_catalog(path)
    path.write_text("# a comment\nra_deg,dec_deg,flux_jy,spectral_index\n150,55,1,0\n150,95,1,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 4, column 'dec_deg': 95\.0 is outside \[-90, 90\]"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy,spectral_index\n150,55,-1,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 2, column 'flux_jy': -1\.0 is outside \[0, inf\]"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy,spectral_index\n150,55,nan,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 2, column 'flux_jy': nan is not a finite number"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy,spectral_index\n150,55,1,steep\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 2, column 'spectral_index': 'steep' is not a number"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy\n")
    with pytest.raises(ValueError, match=r"bad\.csv: no sources"):
        read_reference_catalog(path)
    path.write_text("name,ra_deg,dec_deg,flux_jy\nA,1,2,1\nA,3,4,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3: source 'A' appears twice \(first at line 2\)"):
        read_reference_catalog(path)


def test_a_missing_file_is_both_a_catalogue_error_and_file_not_found(tmp_path):
    with pytest.raises(ReferenceCatalogError, match="no such reference catalogue"):
        read_reference_catalog(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_reference_catalog(tmp_path / "nowhere.csv")
    with pytest.raises(ReferenceCatalogNotFoundError):
        read_reference_catalog(tmp_path / "nowhere.fits")


# --- VizieR formats ----------------------------------------------------------------------------------


def test_vizier_tsv_and_fits_in_mjy(tmp_path):
    tsv = tmp_path / "nvss.tsv"
    tsv.write_text(
        "#\n# VizieR Astronomical Server\n#RESOURCE=yCat_8065\n"
        "RAJ2000\tDEJ2000\tS1.4\n"
        "deg\tdeg\tmJy\n"
        "--------\t--------\t------\n"
        "128.7\t55.6\t250.0\n"
        "130.1\t54.2\t12.5\n"
    )
    got = read_reference_catalog(tsv)
    assert [(s.ra_deg, s.dec_deg, s.flux_jy) for s in got] == [(128.7, 55.6, 0.25), (130.1, 54.2, 0.0125)]
    fits_path = tmp_path / "first.fits"
    Table({"RA_ICRS": [10.0], "DE_ICRS": [-5.0], "Fint": [100.0], "alpha": [-0.5]}).write(fits_path)
    (s,) = read_reference_catalog(fits_path)
    assert (s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index) == (10.0, -5.0, 0.1, -0.5)
    Table({"RA_ICRS": [10.0], "DE_ICRS": [-5.0]}).write(tmp_path / "noflux.fits")
    with pytest.raises(ReferenceCatalogError, match=r"noflux\.fits: no 1\.4 GHz flux column"):
        read_reference_catalog(tmp_path / "noflux.fits")


def test_vizier_tsv_sexagesimal_without_units_line_and_its_errors(tmp_path):
    tsv = tmp_path / "cat.tsv"
    tsv.write_text("RAJ2000\tDEJ2000\tS1.4\nh:m:s\td:m:s\tmJy\n10 00 00.00\t+55 00 00.0\t1500\n")
    (s,) = read_reference_catalog(tsv)
    assert s.ra_deg == pytest.approx(150.0, abs=1e-9) and s.dec_deg == pytest.approx(55.0, abs=1e-9)
    assert s.flux_jy == pytest.approx(1.5, rel=1e-12)
    tsv.write_text('NVSS\tRAJ2000\tDEJ2000\tS1.4\n\t"h:m:s"\t"d:m:s"\tmJy\nJ1\t10 00 00.00\t+55 00 00.0\t1500\n')
    (s,) = read_reference_catalog(tsv)  # VizieR's units line with a blank first field
    assert s.ra_deg == pytest.approx(150.0, abs=1e-9) and s.flux_jy == pytest.approx(1.5, rel=1e-12)
    tsv.write_text("RAJ2000\tDEJ2000\tS1.4\n128.7\t55.6\t250.0\n")
    (s,) = read_reference_catalog(tsv)
    assert s.flux_jy == 0.25  # no units line: VizieR's mJy
    tsv.write_text("RAJ2000\tDEJ2000\tS1.4\ndeg\tdeg\tmJy\n128.7\t55.6\t250.0\n128.7\t55.6\tbright\n")
    with pytest.raises(ReferenceCatalogError, match=r"cat\.tsv: line 4, column 'S1\.4': 'bright' is not a number"):
        read_reference_catalog(tsv)


@pytest.mark.parametrize("fmt", ["fits", "votable"])
def test_reference_catalog_vizier_formats(tmp_path, fmt):
    """NVSS as VizieR serves it: sexagesimal RAJ2000/DEJ2000 strings, S1.4 in mJy, no spectral index."""
    t = Table(
        {
            "RAJ2000": ["10 00 00.00", "09 59 00.00"],
            "DEJ2000": ["+55 00 00.0", "-05 30 00.0"],
            "S1.4": [1500.0, 25.0],
        }
    )
    t["S1.4"].unit = u.mJy
    path = tmp_path / f"nvss.{'fits' if fmt == 'fits' else 'xml'}"
    t.write(path, format=fmt)
    cat = read_reference_catalog(path)
    np.testing.assert_allclose(cat.ra_deg, [150.0, 149.75], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cat.dec_deg, [55.0, -5.5], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cat.flux_jy, [1.5, 0.025], rtol=1e-12)
    np.testing.assert_array_equal(cat.spectral_index, [DEFAULT_SPECTRAL_INDEX] * 2)
    t2 = Table({"RAJ2000": [150.0], "DEJ2000": [55.0], "mag": [3.0]})
    t2["RAJ2000"].unit = u.deg
    t2.write(tmp_path / "noflux.fits")
    with pytest.raises(ValueError, match=r"noflux.fits: no 1\.4 GHz flux column \(looked for flux_jy, S1.4"):
        read_reference_catalog(tmp_path / "noflux.fits")


def test_table_units_blanks_and_row_errors(tmp_path):
    t = Table({"ra": [2.0, 3.0], "dec": [10.0, 11.0], "flux_jy": [0.5, 0.6], "alpha": [np.nan, 0.3]})
    t["ra"].unit = u.rad  # another angle unit is converted
    t.write(tmp_path / "t.fits")
    cat = read_reference_catalog(tmp_path / "t.fits")
    np.testing.assert_allclose(cat.ra_deg, np.degrees([2.0, 3.0]), rtol=1e-12)
    np.testing.assert_array_equal(cat.flux_jy, [0.5, 0.6])  # flux_jy without a unit: Jy
    np.testing.assert_array_equal(cat.spectral_index, [DEFAULT_SPECTRAL_INDEX, 0.3])  # VizieR's blank index
    t = Table({"RA_ICRS": [1.0, 2.0], "DE_ICRS": [95.0, 0.0], "Fint": [1.0, 1.0]})
    t.write(tmp_path / "far.fits")
    with pytest.raises(ReferenceCatalogError, match=r"far\.fits: row 1, column 'dec_deg': 95\.0 is outside"):
        read_reference_catalog(tmp_path / "far.fits")
    t = Table({"RA_ICRS": [1.0], "DE_ICRS": [0.0], "Fint": [1.0]})
    t["Fint"].unit = u.deg
    t.write(tmp_path / "unit.fits")
    with pytest.raises(ReferenceCatalogError, match=r"unit\.fits: column 'Fint' has unit deg, not a flux density"):
        read_reference_catalog(tmp_path / "unit.fits")
    (tmp_path / "junk.fits").write_bytes(b"not a table")
    with pytest.raises(ReferenceCatalogError, match=r"junk\.fits: not a table astropy can read"):
        read_reference_catalog(tmp_path / "junk.fits")


# --- calibration's selection ---------------------------------------------------------------------------


def test_field_sources_by_radius_flux_and_the_calibrator_left_out(tmp_path):
    rng = np.random.default_rng(5)
    ra, dec = 128.7 + rng.uniform(-5, 5, 200), 55.5 + rng.uniform(-4, 4, 200)
    flux = rng.uniform(0, 1, 200)
    path = tmp_path / "f.csv"
    path.write_text(
        "ra_deg,dec_deg,flux_jy\n"
        + "".join(f"{float(a)!r},{float(d)!r},{float(f)!r}\n" for a, d, f in zip(ra, dec, flux, strict=True))
    )
    got = field_sources(
        read_reference_catalog(path), 128.7, 55.5, radius_deg=3.0, min_flux_jy=0.3, exclude_within_deg=0.5
    )
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(128.7 * u.deg, 55.5 * u.deg)).deg
    want = (sep <= 3.0) & (sep > 0.5) & (flux >= 0.3)
    assert sorted((s.ra_deg, s.dec_deg) for s in got) == sorted(zip(ra[want], dec[want], strict=True))
