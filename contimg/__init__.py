"""contimg: the DSA-110 streaming continuum-imaging engine (no Dagster in this package).

``contimg.__version__`` is the package version that setuptools-scm derives from git (``0.1.devN+gHASH``
between tags, ``+gHASH.dYYYYMMDD`` with uncommitted changes), and :func:`git_commit` the full commit. In
a git checkout both are read from git when first asked for (once per process): the deployment runs an
editable install (``pip install -e .``) whose metadata keeps the version of the day it was installed, so
the installed metadata is used only where there is no checkout (a wheel install). Without either (a source
tarball) the version is ``0+unknown`` and the commit ``unknown``; a FITS header or catalogue row then says
so rather than naming a version the code may not be.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

__all__ = ["__version__", "package_version", "git_commit", "UNKNOWN_VERSION", "UNKNOWN_COMMIT"]

UNKNOWN_VERSION = "0+unknown"  # PEP 440, sorts below every real version; "unknown" says why
UNKNOWN_COMMIT = "unknown"
GIT_TIMEOUT_S = 10.0  # a local `git rev-parse` takes milliseconds; a hung git must not hang imaging

# the folder holding the ``contimg`` package: the checkout's root, or site-packages for a wheel install
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _is_checkout() -> bool:
    # ``.git`` right here (a folder, or a file in a git worktree), not git's upward search: a wheel installed
    # into a venv inside some other checkout must not report that checkout's commit
    return (_SOURCE_ROOT / ".git").exists()


def _installed_from_this_tree(dist: metadata.Distribution) -> bool:
    """Tell whether ``dist`` is a regular (not editable) install whose ``contimg`` package is this one."""
    direct_url = dist.read_text("direct_url.json")
    if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
        return False  # an editable install's version is the one of its install day, not of this code
    try:
        return Path(dist.locate_file("contimg/__init__.py")).resolve() == Path(__file__).resolve()
    except OSError:
        return False


@functools.cache
def package_version() -> str:
    """Return the package version: from git in a checkout, else from a wheel's metadata, else ``0+unknown``."""
    if _is_checkout():
        try:
            from setuptools_scm import get_version

            with warnings.catch_warnings():  # e.g. "shallow repository": still the right version for HEAD
                warnings.simplefilter("ignore")
                return get_version(root=str(_SOURCE_ROOT))
        except (ImportError, LookupError, OSError, subprocess.SubprocessError):
            pass  # setuptools-scm not installed, or no usable git: what the metadata says, if it is ours
    try:
        dist = metadata.distribution("contimg")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
    return dist.version if _installed_from_this_tree(dist) else UNKNOWN_VERSION


@functools.cache
def git_commit() -> str:
    """Full hash of the checked-out commit of this source tree, or ``unknown`` outside a git checkout."""
    if not _is_checkout():
        return UNKNOWN_COMMIT
    try:
        out = subprocess.run(
            ["git", "-C", str(_SOURCE_ROOT), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_COMMIT  # no git binary, or git refuses the tree (e.g. "dubious ownership")
    commit = out.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit) else UNKNOWN_COMMIT


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up on first use, so `import contimg` runs no git
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module 'contimg' has no attribute {name!r}")
