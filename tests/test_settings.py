"""Every CONTIMG_* setting: good values parsed to the expected types, bad ones refused by name.

Expectations are written out by hand (the types and ranges the README promises), not taken from the
registry under test, except where a test checks that the registry and its readers agree.
"""

import json
import re
from pathlib import Path

import pytest

from contimg.childjobs.drills import hang_drill_for
from contimg.core.config import SETTINGS, Settings, SettingsError, read
from contimg.core.setting_values import CasaTimeouts
from contimg.core.settings import Layout
from contimg.image.rules import ImagingConfig
from contimg.ingest.scan import IngestSettings
from contimg.ops.diskguard import min_free_gb_from_env
from contimg.ops.housekeeping import HousekeepingSettings
from contimg_resources.casa_runner import job_timeout_s

REPO = Path(__file__).resolve().parents[1]

# (variable, value) pairs that must be refused
BAD = [
    ("CONTIMG_PARTITION_START", "2026-01-01T00:03"),  # off the 5-minute grid
    ("CONTIMG_PARTITION_START", "2026-01-01"),  # no minute
    ("CONTIMG_PARTITION_START", "2026-13-01T00:00"),  # no such month
    ("CONTIMG_PARTITION_START", "yesterday"),
    ("CONTIMG_SENSOR_INTERVAL_S", "0"),
    ("CONTIMG_SENSOR_INTERVAL_S", "-5"),
    ("CONTIMG_SENSOR_INTERVAL_S", "2.5"),
    ("CONTIMG_SENSOR_INTERVAL_S", "fast"),
    ("CONTIMG_GROUP_TOLERANCE_S", "-1"),
    ("CONTIMG_GROUP_TOLERANCE_S", "300"),  # a whole chunk: chunks would merge
    ("CONTIMG_GROUP_TOLERANCE_S", "nan"),
    ("CONTIMG_GRACE_MINUTES", "-0.5"),
    ("CONTIMG_GRACE_MINUTES", "inf"),
    ("CONTIMG_GRACE_MINUTES", "ten"),
    ("CONTIMG_MIN_SUBBANDS", "0"),
    ("CONTIMG_MIN_SUBBANDS", "17"),
    ("CONTIMG_MIN_SUBBANDS", "12.0"),
    ("CONTIMG_MIN_FREE_GB", "-1"),
    ("CONTIMG_MIN_FREE_GB", "lots"),
    ("CONTIMG_ALLOW_UNCALIBRATED", "yes"),
    ("CONTIMG_ALLOW_UNCALIBRATED", "2"),
    ("CONTIMG_ALLOW_UNCALIBRATED", "on"),
    ("CONTIMG_IMAGING_CONFIG", "niter=5"),
    ("CONTIMG_IMAGING_CONFIG", "[1, 2]"),
    ("CONTIMG_IMAGING_CONFIG", '{"imager": "casa"}'),
    ("CONTIMG_IMAGING_CONFIG", '{"nitre": 100}'),
    ("CONTIMG_MIN_COVERAGE", "1.5"),
    ("CONTIMG_MIN_COVERAGE", "-0.1"),
    ("CONTIMG_MIN_COVERAGE", "90%"),
    ("CONTIMG_PB_FLOOR", "0"),
    ("CONTIMG_PB_FLOOR", "1"),
    ("CONTIMG_CASA_TIMEOUT_S", "soon"),
    ("CONTIMG_CASA_TIMEOUT_S", "0"),
    ("CONTIMG_CASA_TIMEOUT_S", "image=-3"),
    ("CONTIMG_CASA_TIMEOUT_S", "image=soon"),
    ("CONTIMG_CASA_TIMEOUT_S", "600,900"),  # two timeouts for every job
    ("CONTIMG_CASA_TIMEOUT_S", "image=60,image=90"),
    ("CONTIMG_CASA_TIMEOUT_S", "image=60,,600"),
    ("CONTIMG_CASA_TIMEOUT_S", "my job=60"),
    ("CONTIMG_DRILL_HANG", "image"),
    ("CONTIMG_DRILL_HANG", "image:"),
    ("CONTIMG_DRILL_HANG", ":2026-01-25T00:20"),
    ("CONTIMG_DRILL_HANG", "image:x@0"),
    ("CONTIMG_DRILL_HANG", "image:x@soon"),
    ("CONTIMG_SCRATCH_MAX_AGE_H", "-1"),
    ("CONTIMG_MS_KEEP_DAYS", "two"),
    ("CONTIMG_MS_KEEP_DAYS", "1.5"),
    ("CONTIMG_STALE_GROUP_H", "-2"),
    ("CONTIMG_RUN_RETENTION_DAYS", "forever"),
    ("CONTIMG_DEBUG", "verbose"),
    ("CONTIMG_CATALOGUE_URL", "/srv/contimg/state/catalogue.sqlite3"),  # a path is not a URL: unset means SQLite
    ("CONTIMG_CATALOGUE_URL", "postgresql+psycopg2://u@h/contimg"),  # SQLAlchemy's form, not libpq's
    ("CONTIMG_CATALOGUE_URL", "mysql://u@h/contimg"),
    ("CONTIMG_CATALOGUE_URL", "postgresql://u@h:5432"),  # no database
    ("CONTIMG_CATALOGUE_URL", "postgresql://u@h/"),
]


@pytest.mark.parametrize("var,value", BAD, ids=[f"{v}={x}" for v, x in BAD])
def test_bad_values_are_refused_naming_the_variable_value_and_what_is_allowed(var, value):
    with pytest.raises(SettingsError) as info:
        read(var, {var: value})
    message = str(info.value)
    assert message.startswith(f"{var}={value!r}"), message
    assert "allowed: " in message
    assert "\n" not in message
    assert info.value.name == var and info.value.value == value
    # the same through the whole set, as the contimg command reads them
    with pytest.raises(SettingsError, match=re.escape(f"{var}={value!r}")):
        Settings.from_env({var: value})


GOOD = [
    ("CONTIMG_PARTITION_START", "2027-01-01T00:05", "2027-01-01T00:05"),
    ("CONTIMG_SENSOR_INTERVAL_S", "5", 5),
    ("CONTIMG_SENSOR_INTERVAL_S", " 45 ", 45),
    ("CONTIMG_GROUP_TOLERANCE_S", "0", 0.0),
    ("CONTIMG_GROUP_TOLERANCE_S", "90.5", 90.5),
    ("CONTIMG_GRACE_MINUTES", "0", 0.0),
    ("CONTIMG_GRACE_MINUTES", "2.5", 2.5),
    ("CONTIMG_MIN_SUBBANDS", "1", 1),
    ("CONTIMG_MIN_SUBBANDS", "16", 16),
    ("CONTIMG_MIN_FREE_GB", "0", 0.0),
    ("CONTIMG_MIN_FREE_GB", "1e9", 1e9),
    ("CONTIMG_ALLOW_UNCALIBRATED", "1", True),
    ("CONTIMG_ALLOW_UNCALIBRATED", "0", False),
    ("CONTIMG_ALLOW_UNCALIBRATED", "True", True),
    ("CONTIMG_ALLOW_UNCALIBRATED", "false", False),
    ("CONTIMG_MIN_COVERAGE", "0", 0.0),
    ("CONTIMG_MIN_COVERAGE", "1", 1.0),
    ("CONTIMG_MIN_COVERAGE", "0.75", 0.75),
    ("CONTIMG_PB_FLOOR", "0.2", 0.2),
    ("CONTIMG_MS_KEEP_DAYS", "0", 0),
    ("CONTIMG_SCRATCH_MAX_AGE_H", "12", 12.0),
    ("CONTIMG_STALE_GROUP_H", "0.5", 0.5),
    ("CONTIMG_RUN_RETENTION_DAYS", "14", 14.0),
    ("CONTIMG_DEBUG", "1", True),
    (
        "CONTIMG_CATALOGUE_URL",
        "postgresql://contimg@db.example:5433/contimg",
        "postgresql://contimg@db.example:5433/contimg",
    ),
    (
        "CONTIMG_CATALOGUE_URL",
        "postgres://127.0.0.1/contimg?sslmode=disable",
        "postgres://127.0.0.1/contimg?sslmode=disable",
    ),
]


@pytest.mark.parametrize("var,value,expected", GOOD, ids=[f"{v}={x}" for v, x, _ in GOOD])
def test_good_values_are_parsed_to_their_types(var, value, expected):
    got = read(var, {var: value})
    assert got == expected and type(got) is type(expected)


DEFAULTS = {
    "CONTIMG_PARTITION_START": "2026-01-01T00:00",
    "CONTIMG_SENSOR_INTERVAL_S": 30,
    "CONTIMG_GROUP_TOLERANCE_S": 60.0,
    "CONTIMG_GRACE_MINUTES": 10.0,
    "CONTIMG_MIN_SUBBANDS": 12,
    "CONTIMG_MIN_FREE_GB": 20.0,
    "CONTIMG_ALLOW_UNCALIBRATED": False,
    "CONTIMG_IMAGING_CONFIG": None,
    "CONTIMG_MIN_COVERAGE": 0.9,
    "CONTIMG_PB_FLOOR": 0.1,
    "CONTIMG_CASA_TIMEOUT_S": CasaTimeouts(),
    "CONTIMG_DRILL_HANG": (),
    "CONTIMG_SCRATCH_MAX_AGE_H": 24.0,
    "CONTIMG_MS_KEEP_DAYS": 2,
    "CONTIMG_STALE_GROUP_H": 6.0,
    "CONTIMG_RUN_RETENTION_DAYS": 30.0,
    "CONTIMG_DEBUG": False,
    "CONTIMG_WORKSPACE": None,
    "CONTIMG_CATALOGUE_URL": None,
}


@pytest.mark.parametrize("var", sorted(DEFAULTS))
def test_unset_or_empty_takes_the_documented_default(var):
    assert read(var, {}) == DEFAULTS[var]
    assert read(var, {var: ""}) == DEFAULTS[var]
    assert read(var, {var: "   "}) == DEFAULTS[var]


def test_all_settings_at_once_with_units_converted():
    s = Settings.from_env(
        {
            "CONTIMG_GRACE_MINUTES": "2",
            "CONTIMG_STALE_GROUP_H": "3",
            "CONTIMG_SCRATCH_MAX_AGE_H": "0.5",
            "CONTIMG_IMAGING_CONFIG": '{"niter": 300}',
            "CONTIMG_ROOT": "/srv/contimg",
        }
    )
    assert s.grace_s == 120.0 and s.stale_group_s == 10800.0 and s.scratch_max_age_s == 1800.0
    assert s.imaging == ImagingConfig(niter=300)
    assert s.directories.state == Path("/srv/contimg/state")
    assert Settings.from_env({}).imaging == ImagingConfig()


def test_casa_timeouts_per_job_and_for_every_job():
    t = read("CONTIMG_CASA_TIMEOUT_S", {"CONTIMG_CASA_TIMEOUT_S": "convert=900, image=600,1800"})
    assert (t.for_job("image", 5.0), t.for_job("convert", 5.0), t.for_job("calibrate", 5.0)) == (600.0, 900.0, 1800.0)
    only = read("CONTIMG_CASA_TIMEOUT_S", {"CONTIMG_CASA_TIMEOUT_S": "image=45"})
    assert (only.for_job("image", 1800.0), only.for_job("convert", 1800.0)) == (45.0, 1800.0)


def test_directories_from_the_root_or_their_own_variable(tmp_path):
    d = Layout.from_env({"CONTIMG_ROOT": str(tmp_path / "r"), "CONTIMG_SCRATCH_DIR": str(tmp_path / "fast")})
    assert (d.ingest, d.products, d.scratch, d.state) == (
        tmp_path / "r/ingest",
        tmp_path / "r/products",
        tmp_path / "fast",
        tmp_path / "r/state",
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for var in (
        "CONTIMG_ROOT",
        "CONTIMG_INGEST_DIR",
        "CONTIMG_PRODUCTS_DIR",
        "CONTIMG_SCRATCH_DIR",
        "CONTIMG_STATE_DIR",
    ):
        with pytest.raises(SettingsError, match=re.escape(f"{var}={str(a_file)!r}") + ".*not a directory"):
            Layout.from_env({"CONTIMG_ROOT": str(tmp_path / "r"), var: str(a_file)})


def test_workspace_must_be_a_file(tmp_path):
    ws = tmp_path / "workspace.yaml"
    ws.write_text("load_from: []\n")
    assert read("CONTIMG_WORKSPACE", {"CONTIMG_WORKSPACE": str(ws)}) == ws
    with pytest.raises(SettingsError, match="CONTIMG_WORKSPACE="):
        read("CONTIMG_WORKSPACE", {"CONTIMG_WORKSPACE": str(tmp_path / "missing.yaml")})


def test_the_engine_readers_refuse_through_settings_error():
    """Each reader of a variable now refuses what the one place refuses (they used to crash or default)."""
    with pytest.raises(SettingsError, match="CONTIMG_MIN_SUBBANDS='0'"):
        IngestSettings.from_env({"CONTIMG_MIN_SUBBANDS": "0"})
    with pytest.raises(SettingsError, match="CONTIMG_GROUP_TOLERANCE_S='-1'"):
        IngestSettings.from_env({"CONTIMG_GROUP_TOLERANCE_S": "-1"})
    assert IngestSettings.from_env({"CONTIMG_GRACE_MINUTES": "2", "CONTIMG_MIN_SUBBANDS": "13"}) == IngestSettings(
        tolerance_s=60.0, grace_s=120.0, min_subbands=13
    )
    assert min_free_gb_from_env({"CONTIMG_MIN_FREE_GB": ""}) == 20.0  # empty is unset: the default
    with pytest.raises(SettingsError, match="CONTIMG_MIN_FREE_GB='-3'"):
        min_free_gb_from_env({"CONTIMG_MIN_FREE_GB": "-3"})
    with pytest.raises(SettingsError, match="CONTIMG_STALE_GROUP_H='-2'"):
        HousekeepingSettings.from_env({"CONTIMG_STALE_GROUP_H": "-2"})
    with pytest.raises(SettingsError, match="CONTIMG_CASA_TIMEOUT_S='image=0'"):
        job_timeout_s("image", {"CONTIMG_CASA_TIMEOUT_S": "image=0"})
    with pytest.raises(SettingsError, match="CONTIMG_DRILL_HANG='image:x@0'"):
        hang_drill_for("image", "image-x", 0, {"CONTIMG_DRILL_HANG": "image:x@0"})


# ------------------------------------------------------------------------------------------ ImagingConfig


def test_the_niter_size_example_names_both_keys():
    text = '{"niter": -5, "size": "big"}'
    with pytest.raises(SettingsError) as info:
        read("CONTIMG_IMAGING_CONFIG", {"CONTIMG_IMAGING_CONFIG": text})
    message = str(info.value)
    assert message.startswith(f"CONTIMG_IMAGING_CONFIG={text!r}")
    assert "niter=-5" in message and "'size'" in message
    with pytest.raises(SettingsError) as info:
        ImagingConfig.from_json(text)
    assert "niter=-5" in str(info.value) and "'size'" in str(info.value)


# field -> (a value of the wrong type or out of range, a good value that is not the default)
FIELD_CASES = {
    "imager": ("casa", "tclean"),
    "weighting": ("uniform", "natural"),
    "robust": (3.0, -0.5),
    "pixels_per_beam": (0, 3),
    "dense_pixels_per_beam": (-1.0, 0.0),
    "dense_min_antennas": (64.5, 32),
    "field_fwhm": (-1.0, 2.0),
    "max_size_px": (512.5, 512),
    "min_size_px": (0, 128),
    "niter": (-5, 0),
    "threshold_sigma": (-1, 5.0),
    "mgain": (1.5, 0.9),
    "deep_clean_min_uv_cells": (-1, 0),
    "sparse_niter": (-1, 500),
    "nmiter": (0, 3),
    "clean_budget_s": (-1, 60.0),
    "wgridder_accuracy": (0.0, 1e-4),
    "auto_mask_sigma": (-2, 4.0),
    "known_source_sigma": (-1.0, 4.0),
    "channels_out": (0, 3),
    "spectral_terms": (1.5, 1),
    "chan_average": (-1, 6),
    "max_smearing_loss": (1.0, 0.05),
    "max_merge_loss": (-0.1, 0.0),
    "max_time_smearing_loss": ("0.03", 0.0),
    "briggs_in_copy": (1, False),
    "pb_limit": (1.0, 0.2),
    "pb_time_samples": (0, 2),
    "initial_images_by_ducc0": ("yes", False),
    "initial_images_min_uv_cells": (float("nan"), 0.0),
    "threads": (True, 4),
    "subtract_outside": (0, False),
    "subtract_drift": ("true", False),
    "restoring_beam": ("psf", "fit"),
}


def test_every_imaging_field_has_a_case():
    assert set(FIELD_CASES) == set(ImagingConfig.__dataclass_fields__)


@pytest.mark.parametrize("field", sorted(FIELD_CASES))
def test_each_imaging_field_is_checked(field):
    bad, good = FIELD_CASES[field]
    with pytest.raises(SettingsError, match=re.escape(f"{field}={bad!r}")):
        ImagingConfig.from_mapping({field: bad})
    with pytest.raises(SettingsError, match=re.escape(f"{field}={bad!r}")):
        ImagingConfig(**{field: bad})
    cfg = ImagingConfig.from_mapping({field: good})
    assert getattr(cfg, field) == good
    assert ImagingConfig.from_json(json.dumps({field: good})) == cfg


def test_imaging_defaults_unchanged_and_round_trip():
    d = ImagingConfig()
    assert (d.imager, d.weighting, d.robust, d.pixels_per_beam, d.max_size_px, d.min_size_px, d.niter, d.threads) == (
        "wsclean",
        "briggs",
        0.0,
        4.0,
        4096,
        256,
        100_000,
        2,
    )
    # issue #22: two channels with linear spectra, auto-mask 5, niter a safety net (docs/benchmarks.md)
    assert (d.channels_out, d.spectral_terms, d.auto_mask_sigma) == (2, 2, 5.0)
    assert (d.dense_pixels_per_beam, d.dense_min_antennas) == (2.5, 64)


def test_grid_sampling_follows_the_array():
    d = ImagingConfig()
    assert d.grid_pixels_per_beam(96) == d.dense_pixels_per_beam and d.grid_pixels_per_beam(64) == 2.5
    assert d.grid_pixels_per_beam(63) == d.pixels_per_beam == 4.0  # a sparse array's narrower minor axis
    assert ImagingConfig(dense_pixels_per_beam=0.0, pixels_per_beam=5.0).grid_pixels_per_beam(96) == 5.0
    assert ImagingConfig.from_json(None) == d and ImagingConfig.from_json("") == d
    cfg = ImagingConfig.from_mapping({"max_size_px": 512, "niter": 300, "imager": "tclean"})
    assert ImagingConfig.from_json(cfg.to_json()) == cfg


def test_spectral_terms_need_as_many_channels():
    with pytest.raises(SettingsError, match="spectral_terms=3 is above channels_out=2"):
        ImagingConfig.from_mapping({"channels_out": 2, "spectral_terms": 3})
    assert ImagingConfig.from_mapping({"channels_out": 3, "spectral_terms": 3}).spectral_terms == 3
    assert ImagingConfig.from_mapping({"channels_out": 1, "spectral_terms": 3}).spectral_terms == 3  # unused


def test_known_source_depth_is_within_the_mask_and_for_the_sparse_array():
    with pytest.raises(SettingsError, match="known_source_sigma=6.0 is above auto_mask_sigma=5.0"):
        ImagingConfig.from_mapping({"known_source_sigma": 6.0})
    assert ImagingConfig.from_mapping({"known_source_sigma": 6.0, "auto_mask_sigma": 0.0}).known_source_sigma == 6.0
    cfg = ImagingConfig.from_mapping({"known_source_sigma": 3.5, "dense_min_antennas": 64})
    assert (cfg.known_source_depth(32), cfg.known_source_depth(63), cfg.known_source_depth(64)) == (3.5, 3.5, 0.0)
    assert ImagingConfig.from_mapping({"auto_mask_sigma": 0.0}).known_source_depth(32) == 0.0  # no masked phase


def test_imaging_sizes_must_be_in_order():
    with pytest.raises(SettingsError, match="min_size_px=256 is above max_size_px=128"):
        ImagingConfig.from_mapping({"max_size_px": 128})
    assert ImagingConfig.from_mapping({"max_size_px": 128, "min_size_px": 128}).max_size_px == 128


# ------------------------------------------------------------------------------------ one place, documented

READER_PATTERN = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*["']CONTIMG_""")
# set by casa_child_env for the child's casasiteconfig: plumbing between two of our processes, not a setting
INTERNAL = {"CONTIMG_CASA_STATE_DIR"}


def test_no_setting_is_read_outside_the_one_place():
    offenders = []
    for folder in ("contimg", "contimg_assets", "contimg_resources", "sensors", "schedules"):
        for path in (REPO / folder).rglob("*.py"):
            if path == REPO / "contimg/core/config.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if READER_PATTERN.search(line) and not any(v in line for v in INTERNAL):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def test_readme_lists_every_setting():
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Settings (environment)", 1)[1].split("\n## ", 1)[0]
    rows = {
        m[0]: m[1] for m in re.findall(r"^\| `(CONTIMG_[A-Z_]+)` \| [^|]* \| ([^|]*) \|", table, flags=re.MULTILINE)
    }
    assert set(rows) == set(SETTINGS)
    assert {name: rows[name] for name in rows} == {name: SETTINGS[name].allowed for name in rows}, "allowed column"


def test_the_deploy_example_env_file_is_accepted_as_systemd_reads_it():
    """systemd's EnvironmentFile keeps everything after "=" (an inline "# comment" too: systemd/systemd#12527);
    only whole lines starting with # or ; are comments. Read that way, the example must pass every check."""
    env = {}
    for line in (REPO / "deploy" / "contimg.env.example").read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    assert {"CONTIMG_ROOT", "CONTIMG_PARTITION_START", "CONTIMG_MIN_FREE_GB"} <= set(env)
    s = Settings.from_env(env)
    assert (s.partition_start, s.min_free_gb, s.ms_keep_days) == ("2026-01-01T00:00", 20.0, 2)
