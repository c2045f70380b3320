"""Every ``CONTIMG_*`` setting, parsed with its type and range in one place.

Each variable is one :class:`Setting` in :data:`SETTINGS`: its default, what is allowed and the parser
that turns the text into a typed value. :func:`read` reads one variable, :class:`Settings` reads them
all (``Settings.from_env``; the ``contimg`` command does this first, so a wrong value stops it before it
does anything). A value that is not allowed raises :class:`SettingsError`, whose message names the
variable, quotes the value received and says what is allowed; nothing falls back to a default
silently. An unset or empty variable takes the default.

The engine's readers (``Layout.from_env``, ``IngestSettings.from_env``, ``HousekeepingSettings.from_env``,
``min_free_gb_from_env``, ``job_timeout_s``, ``hang_drill_for``) and the Dagster side (partitions,
sensors, the image and mosaic assets) all read through :func:`read`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contimg.core import setting_values as v

__all__ = [
    "SettingsError",
    "Setting",
    "SETTINGS",
    "Directories",
    "Settings",
    "read",
    "directories",
]


class SettingsError(ValueError):
    """A setting has a value that is not allowed.

    The setting is a ``CONTIMG_*`` variable or an :class:`~contimg.image.rules.ImagingConfig` field.

    Attributes
    ----------
    name : str
        The variable (or field) that holds the value.
    value : object
        The value received, as given.
    allowed : str
        What is allowed, in words.
    problem : str or None
        What is wrong with this value, when more can be said than "not allowed".
    """

    def __init__(self, name: str, value: Any, allowed: str, problem: str | None = None):
        self.name, self.value, self.allowed, self.problem = name, value, allowed, problem
        what = f": {problem}" if problem else " is not allowed"
        super().__init__(f"{name}={value!r}{what}; allowed: {allowed}")


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Setting:
    """One ``CONTIMG_*`` variable: its default (typed), what is allowed, its parser and what it means."""

    name: str
    default: Any
    default_text: str
    allowed: str
    parse: Callable[[str], Any]
    meaning: str


def _postgres_url(text: str) -> str:
    """A libpq URL of a PostgreSQL database (the cluster's catalogue); SQLAlchemy's ``+driver`` form is not one."""
    scheme, sep, rest = text.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        raise ValueError("is not a postgresql:// URL")
    host_db = rest.rsplit("@", 1)[-1]
    if "/" not in host_db or not host_db.split("/", 1)[1].split("?", 1)[0]:
        raise ValueError("names no database (postgresql://host[:port]/DBNAME)")
    return text


_S = [
    Setting(
        "CONTIMG_ROOT",
        Path("data"),
        "`data`",
        "a directory path (made when needed)",
        v.directory_path,
        "the platform's root: ingest/, products/, scratch/, state/ under it",
    ),
    Setting(
        "CONTIMG_INGEST_DIR",
        None,
        "`ROOT/ingest`",
        "a directory path",
        v.directory_path,
        "where correlator files arrive",
    ),
    Setting(
        "CONTIMG_PRODUCTS_DIR",
        None,
        "`ROOT/products`",
        "a directory path",
        v.directory_path,
        "measurement sets, caltables, images, mosaics",
    ),
    Setting("CONTIMG_SCRATCH_DIR", None, "`ROOT/scratch`", "a directory path", v.directory_path, "temporary work"),
    Setting(
        "CONTIMG_STATE_DIR",
        None,
        "`ROOT/state`",
        "a directory path",
        v.directory_path,
        "catalogue, logs, the demo's Dagster home",
    ),
    Setting(
        "CONTIMG_PARTITION_START",
        "2026-01-01T00:00",
        "`2026-01-01T00:00`",
        f"a UTC minute YYYY-MM-DDTHH:MM on the {v.WINDOW_MINUTES}-minute grid",
        v.partition_start,
        "first 5-minute partition",
    ),
    Setting(
        "CONTIMG_SENSOR_INTERVAL_S",
        30,
        "30",
        "a whole number of seconds >= 1",
        v.ranged(integer=True, lo=1),
        "ingest and failure sensors' interval",
    ),
    Setting(
        "CONTIMG_GROUP_TOLERANCE_S",
        60.0,
        "60",
        f"a number of seconds >= 0 and below {v.CHUNK_S:g} (a chunk's length)",
        v.ranged(lo=0.0, hi=v.CHUNK_S, hi_open=True),
        "subband stamps of one chunk lie within this of its first",
    ),
    Setting(
        "CONTIMG_GRACE_MINUTES",
        10.0,
        "10",
        "a number of minutes >= 0",
        v.ranged(lo=0.0),
        "wait this long for missing subbands, then run with what is there ...",
    ),
    Setting(
        "CONTIMG_MIN_SUBBANDS",
        12,
        "12",
        f"a whole number from 1 to {v.N_SUBBANDS}",
        v.ranged(integer=True, lo=1, hi=v.N_SUBBANDS),
        "... if at least this many, else mark the chunk `incomplete`",
    ),
    Setting(
        "CONTIMG_MIN_FREE_GB",
        20.0,
        "20",
        "a number of GB >= 0",
        v.ranged(lo=0.0),
        "the disk guard holds new runs below this much free space",
    ),
    Setting(
        "CONTIMG_ALLOW_UNCALIBRATED",
        False,
        "0",
        "0 or 1 (also false or true)",
        v.parse_flag,
        "1: image chunks with no valid calibration (said in metadata and FITS)",
    ),
    Setting(
        "CONTIMG_IMAGING_CONFIG",
        None,
        "unset (the defaults)",
        "a JSON object of ImagingConfig fields, each in its range",
        v.imaging_config,
        "overrides of `contimg.image.rules.ImagingConfig` (imager, weighting, sizes, niter, ...)",
    ),
    Setting(
        "CONTIMG_MIN_COVERAGE",
        0.9,
        "0.9",
        "a fraction from 0 to 1",
        v.ranged(lo=0.0, hi=1.0),
        "the mosaic's coverage check warns below this fraction of 288 windows",
    ),
    Setting(
        "CONTIMG_PB_FLOOR",
        0.1,
        "0.1",
        "a primary-beam response above 0 and below 1",
        v.ranged(lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        "the nightly mosaic uses each image where its beam >= this",
    ),
    Setting(
        "CONTIMG_CASA_TIMEOUT_S",
        v.CasaTimeouts(),
        "1800",
        "N (every job) or job=N,...[,N], seconds > 0",
        v.casa_timeouts,
        "CASA child job timeout: `N` for every job, or `image=600,convert=900,1800`",
    ),
    Setting(
        "CONTIMG_DRILL_HANG",
        (),
        "unset (no drill)",
        "JOB:MATCH[@ATTEMPTS], comma-separated; ATTEMPTS a whole number >= 1 or all",
        v.hang_drills,
        "fault drills only: that job hangs until its timeout (`contimg/childjobs/drills.py`)",
    ),
    Setting(
        "CONTIMG_SCRATCH_MAX_AGE_H",
        24.0,
        "24",
        "a number of hours >= 0",
        v.ranged(lo=0.0),
        "housekeeping deletes scratch entries older than this",
    ),
    Setting(
        "CONTIMG_MS_KEEP_DAYS",
        2,
        "2",
        "a whole number of days >= 0",
        v.ranged(integer=True, lo=0),
        "measurement sets of the N most recent UTC days are kept",
    ),
    Setting(
        "CONTIMG_STALE_GROUP_H",
        6.0,
        "6",
        "a number of hours >= 0",
        v.ranged(lo=0.0),
        "in-flight chunks untouched this long are marked failed",
    ),
    Setting(
        "CONTIMG_RUN_RETENTION_DAYS",
        30.0,
        "30",
        "a number of days >= 0",
        v.ranged(lo=0.0),
        "Dagster runs (and their event logs) kept this long",
    ),
    Setting(
        "CONTIMG_WORKSPACE",
        None,
        "`workspace.yaml` of the repository",
        "the path of an existing file",
        v.existing_file,
        "the Dagster workspace `contimg reprocess` submits to",
    ),
    Setting(
        "CONTIMG_REFERENCE_CATALOG",
        None,
        "unset (none)",
        "the path of an existing file: CSV with ra_deg,dec_deg,flux_jy[,spectral_index] or a VizieR-format table",
        v.existing_file,
        "the reference catalogue (positions, 1.4 GHz fluxes) for calibration field models and science QA",
    ),
    Setting(
        "CONTIMG_CLUSTER_ROOT",
        None,
        "`STATE/cluster`",
        "a directory path",
        v.directory_path,
        "cluster mode's folder (`scripts/cluster.sh`): state, logs, worker scratch; set for the cluster's processes",
    ),
    Setting(
        "CONTIMG_CATALOGUE_URL",
        None,
        "unset (the SQLite file `STATE/catalogue.sqlite3`)",
        "a PostgreSQL URL postgresql://[user[:password]@]host[:port]/dbname",
        _postgres_url,
        "cluster mode: the catalogue's tables in this PostgreSQL database, written by every host's runs",
    ),
    Setting(
        "CONTIMG_DAGSTER_URL",
        "http://127.0.0.1:3000",
        "`http://127.0.0.1:3000`",
        "an http(s) URL",
        v.http_url,
        "where the web pages' and API's Dagster run links point",
    ),
    Setting(
        "CONTIMG_API_TOKEN",
        None,
        "unset (reprocess refused)",
        f"a token of at least {v.MIN_TOKEN_CHARS} characters",
        v.secret,
        "bearer token of `POST /api/reprocess/<window>` (unset: refused)",
    ),
    Setting(
        "CONTIMG_WEB_CACHE_S",
        1.0,
        "1",
        f"a number of seconds from 0 to {v.MAX_WEB_CACHE_S:g}",
        v.ranged(lo=0.0, hi=v.MAX_WEB_CACHE_S),
        "how far `contimg serve`'s status and night page may lag the catalogue (0: no cache)",
    ),
    Setting(
        "CONTIMG_DEBUG",
        False,
        "0",
        "0 or 1 (also false or true)",
        v.parse_flag,
        "1: `contimg` shows the traceback of an error instead of its one-line message",
    ),
]
SETTINGS: dict[str, Setting] = {s.name: s for s in _S}


def read(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The typed value of setting ``name`` from ``environ`` (default ``os.environ``); its default when unset or empty.

    Raises
    ------
    KeyError
        If ``name`` is not one of :data:`SETTINGS` (a programming error, not a user's).
    SettingsError
        If the value is not allowed; the message names the variable, the value and what is allowed.
    """
    setting = SETTINGS[name]
    env = os.environ if environ is None else environ
    raw = env.get(name)
    if raw is None or not raw.strip():
        return setting.default
    try:
        return setting.parse(raw.strip())
    except SettingsError as err:
        if err.name == name:
            raise
        raise SettingsError(name, raw, setting.allowed, err.problem or str(err)) from err
    except ValueError as err:
        raise SettingsError(name, raw, setting.allowed, str(err)) from err


@dataclass(frozen=True)
class Directories:
    """The platform's four directories (absolute), from ``CONTIMG_ROOT`` and the per-directory variables."""

    root: Path
    ingest: Path
    products: Path
    scratch: Path
    state: Path


def directories(environ: Mapping[str, str] | None = None) -> Directories:
    """:class:`Directories` from the environment: each folder's own variable, else ``CONTIMG_ROOT/<folder>``.

    Raises
    ------
    SettingsError
        If a variable holds something that cannot be a directory (an existing file, a NUL character).
    """
    root = read("CONTIMG_ROOT", environ).expanduser().absolute()  # the default, ./data, from where we run

    def pick(var: str, sub: str) -> Path:
        own = read(var, environ)
        return own if own is not None else root / sub

    return Directories(
        root=root,
        ingest=pick("CONTIMG_INGEST_DIR", "ingest"),
        products=pick("CONTIMG_PRODUCTS_DIR", "products"),
        scratch=pick("CONTIMG_SCRATCH_DIR", "scratch"),
        state=pick("CONTIMG_STATE_DIR", "state"),
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, typed; :meth:`from_env` reads and checks them all at once."""

    directories: Directories
    partition_start: str
    sensor_interval_s: int
    group_tolerance_s: float
    grace_s: float
    min_subbands: int
    min_free_gb: float
    allow_uncalibrated: bool
    imaging: Any  # contimg.image.rules.ImagingConfig (imported lazily: the image stage sits above core)
    min_coverage: float
    pb_floor: float
    casa_timeouts: v.CasaTimeouts
    drill_hang: tuple
    scratch_max_age_s: float
    ms_keep_days: int
    stale_group_s: float
    run_retention_days: float
    workspace: Path | None
    debug: bool
    catalogue_url: str | None = None  # None: the SQLite file under STATE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every ``CONTIMG_*`` setting.

        Raises
        ------
        SettingsError
            On the first variable (in :data:`SETTINGS` order) whose value is not allowed.
        """
        from contimg.image.rules import ImagingConfig

        def r(name):
            return read(name, environ)

        return cls(
            directories=directories(environ),
            partition_start=r("CONTIMG_PARTITION_START"),
            sensor_interval_s=r("CONTIMG_SENSOR_INTERVAL_S"),
            group_tolerance_s=r("CONTIMG_GROUP_TOLERANCE_S"),
            grace_s=60.0 * r("CONTIMG_GRACE_MINUTES"),
            min_subbands=r("CONTIMG_MIN_SUBBANDS"),
            min_free_gb=r("CONTIMG_MIN_FREE_GB"),
            allow_uncalibrated=r("CONTIMG_ALLOW_UNCALIBRATED"),
            imaging=r("CONTIMG_IMAGING_CONFIG") or ImagingConfig(),
            min_coverage=r("CONTIMG_MIN_COVERAGE"),
            pb_floor=r("CONTIMG_PB_FLOOR"),
            casa_timeouts=r("CONTIMG_CASA_TIMEOUT_S"),
            drill_hang=r("CONTIMG_DRILL_HANG"),
            scratch_max_age_s=3600.0 * r("CONTIMG_SCRATCH_MAX_AGE_H"),
            ms_keep_days=r("CONTIMG_MS_KEEP_DAYS"),
            stale_group_s=3600.0 * r("CONTIMG_STALE_GROUP_H"),
            run_retention_days=r("CONTIMG_RUN_RETENTION_DAYS"),
            workspace=r("CONTIMG_WORKSPACE"),
            debug=r("CONTIMG_DEBUG"),
            catalogue_url=r("CONTIMG_CATALOGUE_URL"),
        )
