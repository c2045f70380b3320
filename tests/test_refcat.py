"""The reference catalogue reader (contimg.calibrate.refcat): CSV, VizieR TSV and FITS, and its errors."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from contimg.calibrate.refcat import (
    DEFAULT_SPECTRAL_INDEX,
    ReferenceCatalogError,
    field_sources,
    read_reference_catalog,
)

ATOL_DEG = 1e-12  # positions pass through float parsing only


def test_csv_with_extra_columns_like_the_simulators_sky(tmp_path):
    path = tmp_path / "sky.csv"
    path.write_text("name,ra_deg,dec_deg,flux_jy,spectral_index,extra\na,128.5,55.1,0.25,-0.8,x\nb,129.0,54.9,1.5,,y\n")
    got = read_reference_catalog(path)
    assert [(s.ra_deg, s.dec_deg, s.flux_jy) for s in got] == [(128.5, 55.1, 0.25), (129.0, 54.9, 1.5)]
    assert got[0].spectral_index == -0.8 and got[1].spectral_index == DEFAULT_SPECTRAL_INDEX


def test_csv_errors_name_the_file_the_column_and_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ra_deg,dec,flux_jy\n1,2,3\n")
    with pytest.raises(ReferenceCatalogError, match=r"bad\.csv: no column 'dec_deg'"):
        read_reference_catalog(path)
    path.write_text("ra_deg,dec_deg,flux_jy\n1,2,3\n1,x,3\n")
    with pytest.raises(ReferenceCatalogError, match=r"bad\.csv: line 3, column 'dec_deg': 'x'"):
        read_reference_catalog(path)
    with pytest.raises(ReferenceCatalogError, match="no such reference catalogue"):
        read_reference_catalog(tmp_path / "missing.csv")


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
