"""The package version and git commit in products: read from git in a checkout, ``unknown`` without one.

The expected commit is asked of git here (``git rev-parse HEAD`` in the repository), independently of
``contimg.git_commit``; the version must name that commit where setuptools-scm puts it (``+gHASH``).
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from astropy.io import fits

import contimg
from contimg.image.fitsio import add_provenance
from contimg.mosaic.build import build_mosaic
from contimg.mosaic.inputs import read_input
from tests.test_mosaic import make_tile

REPO = Path(__file__).resolve().parents[1]
# what the version said before it came from git: a constant that never changed with the code
OLD_CONSTANT_VERSION = "0.1.0"


def head_commit() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def assert_names_head(version: str, commit: str) -> None:
    assert commit == head_commit()
    assert version not in (OLD_CONSTANT_VERSION, contimg.UNKNOWN_VERSION)
    # setuptools-scm: "X.Y.devN+gHASH[.dDATE]" off a tag (every commit now: there is no tag yet), "X.Y.Z" on one
    local = re.search(r"\+g([0-9a-f]{7,})", version)
    assert local is None or commit.startswith(local.group(1)), (version, commit)


def test_version_and_commit_come_from_git():
    assert contimg.__file__.startswith(str(REPO))  # this checkout, not an installed copy
    assert_names_head(contimg.__version__, contimg.git_commit())


def test_image_and_mosaic_headers_carry_version_and_commit(tmp_path):
    h = add_provenance(
        fits.Header(),
        rms_jy=1e-3,
        peak_jy=1.0,
        expected_rms_jy=1e-3,
        calset=None,
        caltables=[],
        window="2026-01-25T00:05",
        imager="wsclean",
        data_column="DATA",
        ms_path="/p/x.ms",
        pb_limit=0.1,
    )
    assert_names_head(h["CIVERS"], h["CICOMMIT"])
    tile = make_tile(tmp_path / "t.fits", 200.0, [], 2e-3, 4)
    res = build_mosaic([read_input(tile)], tmp_path / "m.fits", png=False)
    for path in (res.path, res.noise_path):
        mh = fits.getheader(path)
        assert_names_head(mh["CIVERS"], mh["CICOMMIT"])
        assert mh["CIVERS"] == h["CIVERS"]


def run_contimg_from(site: Path) -> tuple[str, str, str]:
    """(contimg.__file__, __version__, git_commit()) in a fresh interpreter importing contimg from ``site``."""
    code = "import contimg, json; print(json.dumps([contimg.__file__, contimg.__version__, contimg.git_commit()]))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=site,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
    ).stdout
    return tuple(json.loads(out))


def copy_package(site: Path) -> Path:
    shutil.copytree(REPO / "contimg", site / "contimg", ignore=shutil.ignore_patterns("__pycache__"))
    return site / "contimg" / "__init__.py"


def test_source_tree_without_git_says_unknown(tmp_path):
    """A copy of the package without .git (as from a tarball) claims no version: the venv's installed
    metadata belongs to another tree (an editable install of the checkout), not to this copy."""
    init = copy_package(tmp_path)
    assert run_contimg_from(tmp_path) == (str(init), "0+unknown", "unknown")


def test_wheel_install_reports_its_metadata_and_an_editable_one_does_not(tmp_path):
    """Installed files beside their dist-info (a wheel install): the metadata's version is this code's.
    The same metadata marked editable (pip install -e) is the version of its install day: not trusted."""
    init = copy_package(tmp_path)
    dist_info = tmp_path / "contimg-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: contimg\nVersion: 1.2.3\n")
    assert run_contimg_from(tmp_path) == (str(init), "1.2.3", "unknown")
    editable = {"url": f"file://{tmp_path}", "dir_info": {"editable": True}}
    (dist_info / "direct_url.json").write_text(json.dumps(editable))
    assert run_contimg_from(tmp_path) == (str(init), "0+unknown", "unknown")
