-- Light curves (issue #23). photometry_images: one row per window whose image was measured or skipped, with
-- the reason; photometry: one row per reference source measured in that window's current image (a re-run
-- replaces the window's rows).
CREATE TABLE IF NOT EXISTS photometry_images (
    window_key    TEXT PRIMARY KEY,
    image_path    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('measured', 'skipped')),
    reason        TEXT,
    n_measured    INTEGER,
    n_outside     INTEGER,
    run_id        TEXT,
    updated_at    TEXT NOT NULL,
    code_version  TEXT
);
CREATE TABLE IF NOT EXISTS photometry (
    window_key  TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    ra_deg      REAL NOT NULL,
    dec_deg     REAL NOT NULL,
    start_iso   TEXT NOT NULL,     -- the window start (UTC)
    flux_jy     REAL NOT NULL,     -- primary-beam corrected, forced fit of the restoring beam
    err_jy      REAL NOT NULL,
    rms_jy      REAL NOT NULL,     -- local background rms of the flat-noise image
    pb          REAL NOT NULL,
    dist_deg    REAL NOT NULL,
    image_path  TEXT,
    PRIMARY KEY (window_key, source_id)
);
CREATE INDEX IF NOT EXISTS photometry_source ON photometry (source_id, window_key);
-- flux_scale: each day's flux-scale factor (measured / true) from bright references; factor NULL when fewer
-- than 3 references (not applied). variables: per source per day, the statistics over the sliding window of
-- days ending that day and the rules that fired ('' when none).
CREATE TABLE IF NOT EXISTS flux_scale (
    date        TEXT PRIMARY KEY,
    factor      REAL,
    n_refs      INTEGER NOT NULL,
    run_id      TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS variables (
    date          TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    window_days   INTEGER NOT NULL,
    n_epochs      INTEGER NOT NULL,
    mean_flux_jy  REAL,
    v             REAL,
    eta           REAL,
    max_abs_vs    REAL,
    max_abs_m     REAL,
    dip_sigma     REAL,
    dip_depth     REAL,
    dip_start     TEXT,
    dip_days      INTEGER,
    variable      INTEGER NOT NULL,
    rule          TEXT NOT NULL,
    run_id        TEXT,
    updated_at    TEXT NOT NULL,
    code_version  TEXT,
    PRIMARY KEY (date, source_id)
);
