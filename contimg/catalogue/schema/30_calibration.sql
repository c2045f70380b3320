-- Calibration: transits found, solved sets and their tables. A set applies to times inside its
-- validity window only while its status is 'active'; the newest active set wins.
CREATE TABLE IF NOT EXISTS calibrator_transits (
    window_key   TEXT PRIMARY KEY,
    calibrator   TEXT NOT NULL,
    transit_mjd  REAL NOT NULL,
    offset_deg   REAL,
    pb_flux_jy   REAL,
    found_at     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS caltable_sets (
    set_name        TEXT PRIMARY KEY,
    window_key      TEXT NOT NULL,
    calibrator      TEXT NOT NULL,
    source_ms       TEXT,
    transit_mjd     REAL NOT NULL,
    valid_start_mjd REAL NOT NULL,
    valid_end_mjd   REAL NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'retired', 'failed')),
    refant          TEXT,
    solver_version  TEXT,
    solver_params   TEXT,              -- JSON
    quality         TEXT,              -- JSON
    reason          TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS caltable_sets_validity ON caltable_sets (status, valid_start_mjd, valid_end_mjd);

CREATE TABLE IF NOT EXISTS caltables (
    path         TEXT PRIMARY KEY,
    set_name     TEXT NOT NULL REFERENCES caltable_sets (set_name),
    table_type   TEXT NOT NULL,        -- K, B, G
    apply_order  INTEGER NOT NULL,
    quality      TEXT                  -- JSON
);
CREATE INDEX IF NOT EXISTS caltables_set ON caltables (set_name);
