-- Operations: what housekeeping did (every deletion and state recovery) and the free-disk guard's decisions.
CREATE TABLE IF NOT EXISTS housekeeping_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT NOT NULL,          -- delete_scratch, delete_temporary, delete_ms, fail_stale_group, delete_runs
    path        TEXT,
    window_key  TEXT,
    size_bytes  INTEGER,
    reason      TEXT NOT NULL,
    run_id      TEXT,                   -- the Dagster run of the housekeeping job, NULL from the command line
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS housekeeping_log_created ON housekeeping_log (created_at);
CREATE INDEX IF NOT EXISTS housekeeping_log_window ON housekeeping_log (window_key);

-- One row per change of the guard's decision (hold <-> ok), not per sensor tick.
CREATE TABLE IF NOT EXISTS disk_guard_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision    TEXT NOT NULL CHECK (decision IN ('hold', 'ok')),
    reason      TEXT NOT NULL,
    free_gb     TEXT NOT NULL,          -- JSON: path -> free GB
    min_free_gb REAL NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disk_guard_events_created ON disk_guard_events (created_at);
