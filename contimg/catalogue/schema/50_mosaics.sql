CREATE TABLE IF NOT EXISTS mosaics (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    date           TEXT NOT NULL,
    path           TEXT,
    noise_path     TEXT,
    png_path       TEXT,
    n_images       INTEGER,
    n_possible     INTEGER,
    coverage       REAL,
    gaps           TEXT,      -- JSON list of windows without an image
    excluded       TEXT,      -- JSON list of {window, reason} left out (QA)
    status         TEXT NOT NULL CHECK (status IN ('current', 'superseded', 'failed')),
    reason         TEXT,
    run_id         TEXT,
    created_at     TEXT NOT NULL,
    code_version   TEXT
);
CREATE INDEX IF NOT EXISTS mosaics_date ON mosaics (date, status);
