-- One row per image made; reprocessing marks the earlier row 'superseded'.
CREATE TABLE IF NOT EXISTS images (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    window_key        TEXT NOT NULL,
    ms_path           TEXT,
    image_path        TEXT,
    pbcor_path        TEXT,
    pb_path           TEXT,
    png_path          TEXT,
    imager            TEXT,
    calibrated        INTEGER,
    calset            TEXT,
    caltables         TEXT,              -- JSON list, apply order
    rms_jy            REAL,
    expected_rms_jy   REAL,
    peak_jy           REAL,
    dynamic_range     REAL,
    n_sources         INTEGER,
    bmaj_arcsec       REAL,
    bmin_arcsec       REAL,
    bpa_deg           REAL,
    cell_arcsec       REAL,
    size_px           INTEGER,
    flagged_fraction  REAL,
    mid_mjd           REAL,
    status            TEXT NOT NULL CHECK (status IN ('ok', 'flagged', 'failed', 'superseded')),
    reason            TEXT,
    run_id            TEXT,
    created_at        TEXT NOT NULL,
    code_version      TEXT
);
CREATE INDEX IF NOT EXISTS images_window ON images (window_key, status);
CREATE INDEX IF NOT EXISTS images_mjd ON images (mid_mjd);
