-- Ingest and conversion: one row per file seen, per chunk (5-minute window), per MS version.
-- Column `window_key` is the FIVE_MIN partition key ('2026-01-25T00:05').
CREATE TABLE IF NOT EXISTS subband_files (
    path        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    window_key  TEXT,                 -- NULL when the name does not parse
    subband     INTEGER,
    size_bytes  INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('accepted', 'duplicate', 'late', 'misnamed', 'corrupt', 'excluded')),
    reason      TEXT,
    first_seen  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subband_files_window ON subband_files (window_key);
CREATE INDEX IF NOT EXISTS subband_files_status ON subband_files (status);

CREATE TABLE IF NOT EXISTS groups (
    window_key       TEXT PRIMARY KEY,
    start_utc        TEXT NOT NULL,     -- earliest subband stamp
    state            TEXT NOT NULL,     -- requested, grouped, converted, calibrated, imaged, failed, incomplete
    n_subbands       INTEGER,
    missing_subbands TEXT,              -- JSON list
    files            TEXT,              -- JSON list of accepted paths, in subband order
    calibrator       TEXT,              -- set when a calibrator transits in the chunk
    transit_utc      TEXT,
    error            TEXT,
    run_key          TEXT,
    run_id           TEXT,
    requested_at     TEXT,
    updated_at       TEXT NOT NULL,
    code_version     TEXT
);
CREATE INDEX IF NOT EXISTS groups_state ON groups (state);

CREATE TABLE IF NOT EXISTS measurement_sets (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    window_key           TEXT NOT NULL,
    path                 TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('current', 'superseded', 'deleted')),
    n_rows               INTEGER,
    n_subbands           INTEGER,
    missing_subbands     TEXT,
    start_mjd            REAL,
    mid_mjd              REAL,
    end_mjd              REAL,
    phase_center_ra_deg  REAL,
    phase_center_dec_deg REAL,
    pointing_dec_deg     REAL,
    flagged_fraction     REAL,
    checks               TEXT,          -- JSON: name -> {passed, value, limit}
    size_bytes           INTEGER,
    run_id               TEXT,
    created_at           TEXT NOT NULL,
    code_version         TEXT
);
CREATE INDEX IF NOT EXISTS measurement_sets_window ON measurement_sets (window_key, status);

CREATE TABLE IF NOT EXISTS stage_timings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    window_key  TEXT NOT NULL,
    stage       TEXT NOT NULL,
    seconds     REAL NOT NULL,
    detail      TEXT,                  -- JSON: sub-step timings
    run_id      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stage_timings_window ON stage_timings (window_key);
