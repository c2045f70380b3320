"""Where everything lives: one root (``CONTIMG_ROOT``) and four folders that can each be moved.

All paths used by the engine, the child jobs, the Dagster resources and the CLI come from
:class:`Layout`; nothing else hard-codes a directory. The variables are parsed in
:mod:`contimg.core.config` with every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contimg.core.config import directories

__all__ = ["Layout", "window_slug", "window_date"]


def window_slug(window_key: str) -> str:
    """File-system and CASA friendly form of a window key: ``2026-01-25T00:05`` -> ``2026-01-25T0005``."""
    return window_key.replace(":", "")


def window_date(window_key: str) -> str:
    """The UTC date (``YYYY-MM-DD``) of a window key."""
    return window_key[:10]


@dataclass(frozen=True)
class Layout:
    """The platform's directories.

    ``ingest`` is where correlator files arrive, ``products`` holds MS, caltables, images and
    mosaics, ``scratch`` holds temporary work (safe to delete when nothing runs) and ``state``
    holds the catalogue, logs and the demo's Dagster home.
    """

    ingest: Path
    products: Path
    scratch: Path
    state: Path

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Layout:
        """The directories of ``CONTIMG_ROOT`` and ``CONTIMG_{INGEST,PRODUCTS,SCRATCH,STATE}_DIR``.

        Raises
        ------
        SettingsError
            If one of them cannot be a directory (see :func:`contimg.core.config.directories`).
        """
        d = directories(environ)
        return cls(ingest=d.ingest, products=d.products, scratch=d.scratch, state=d.state)

    @classmethod
    def under(cls, root: Path) -> Layout:
        """The layout with its four folders ``ingest``, ``products``, ``scratch``, ``state`` under ``root``."""
        root = Path(root).absolute()
        return cls(ingest=root / "ingest", products=root / "products", scratch=root / "scratch", state=root / "state")

    def ensure(self) -> Layout:
        """Create the four folders and the log folder if missing; return ``self``."""
        for d in (self.ingest, self.products, self.scratch, self.state, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # --- state ---
    @property
    def catalogue(self) -> Path:
        """The SQLite catalogue, ``state/catalogue.sqlite3``."""
        return self.state / "catalogue.sqlite3"

    @property
    def logs(self) -> Path:
        """The child jobs' log folder, ``state/logs``."""
        return self.state / "logs"

    @property
    def casa_state(self) -> Path:
        """The CASA children's state folder (casarc, cache, logs, matplotlib), ``state/casa``."""
        return self.state / "casa"

    @property
    def dagster_home(self) -> Path:
        """The demo's ``DAGSTER_HOME``, ``state/dagster``."""
        return self.state / "dagster"

    # --- products ---
    def ms_path(self, window_key: str) -> Path:
        """The window's product MS, ``products/ms/DATE/SLUG.ms``."""
        return self.products / "ms" / window_date(window_key) / f"{window_slug(window_key)}.ms"

    def caltable_dir(self, window_key: str) -> Path:
        """The folder of the window's calibration tables, ``products/caltables/SLUG``."""
        return self.products / "caltables" / window_slug(window_key)

    def image_prefix(self, window_key: str) -> Path:
        """The path prefix of the window's images, ``products/images/DATE/SLUG``."""
        return self.products / "images" / window_date(window_key) / window_slug(window_key)

    def mosaic_path(self, date: str) -> Path:
        """The day's mosaic FITS file, ``products/mosaics/DATE.fits``."""
        return self.products / "mosaics" / f"{date}.fits"
