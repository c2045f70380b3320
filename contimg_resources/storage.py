"""StorageLayout: the platform's directories as a Dagster resource (same settings as the CLI)."""

from __future__ import annotations

from dagster import ConfigurableResource

from contimg.core.settings import Layout


class StorageLayout(ConfigurableResource):
    """Ingest, products, scratch and state directories.

    Unset fields fall back to the environment (``CONTIMG_ROOT``, ``CONTIMG_INGEST_DIR``, ...) when
    the resource is used, so the webserver, the daemon, runs and the CLI all agree.
    """

    root: str | None = None
    ingest_dir: str | None = None
    products_dir: str | None = None
    scratch_dir: str | None = None
    state_dir: str | None = None

    def layout(self) -> Layout:
        import os

        env = dict(os.environ)
        for var, value in (
            ("CONTIMG_ROOT", self.root),
            ("CONTIMG_INGEST_DIR", self.ingest_dir),
            ("CONTIMG_PRODUCTS_DIR", self.products_dir),
            ("CONTIMG_SCRATCH_DIR", self.scratch_dir),
            ("CONTIMG_STATE_DIR", self.state_dir),
        ):
            if value:
                env[var] = value
        return Layout.from_env(env).ensure()
