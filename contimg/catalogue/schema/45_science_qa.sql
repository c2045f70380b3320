-- Science QA of each image row (contimg.image.crossmatch): one row per image made with a reference
-- catalogue, and the image's source list (contimg.image.sources), one row per detection.
CREATE TABLE IF NOT EXISTS image_science_qa (
    image_id            INTEGER PRIMARY KEY REFERENCES images (id),
    window_key          TEXT NOT NULL,
    reference_catalog   TEXT,
    grade               TEXT NOT NULL CHECK (grade IN ('green', 'amber', 'red', 'ungraded')),
    problems            TEXT,              -- JSON list
    n_detected          INTEGER,
    n_reference         INTEGER,           -- inside the image (primary beam >= pb_limit)
    n_matched           INTEGER,
    flux_ratio          REAL,              -- median S_measured / S_ref, compact sources >= 10 sigma
    flux_ratio_scatter  REAL,              -- 1.4826 MAD of those ratios
    n_flux              INTEGER,
    offset_ra_arcsec    REAL,              -- median (RA - RA_ref) cos dec
    offset_dec_arcsec   REAL,
    offset_ra_beams     REAL,              -- over the beam's FWHM along RA
    offset_dec_beams    REAL,
    completeness        REAL,              -- of reference sources expected >= 10 sigma
    n_complete          INTEGER,
    reliability         REAL,              -- of detections >= 10 sigma
    n_reliable          INTEGER
);
CREATE INDEX IF NOT EXISTS image_science_qa_window ON image_science_qa (window_key);

CREATE TABLE IF NOT EXISTS sources (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id       INTEGER NOT NULL REFERENCES images (id),
    window_key     TEXT NOT NULL,
    ra_deg         REAL NOT NULL,
    dec_deg        REAL NOT NULL,
    err_ra_arcsec  REAL,
    err_dec_arcsec REAL,
    peak_jy        REAL,                   -- Jy/beam, primary-beam corrected
    err_peak_jy    REAL,
    int_jy         REAL,                   -- Jy, primary-beam corrected
    err_int_jy     REAL,
    a_arcsec       REAL,                   -- fitted FWHM
    b_arcsec       REAL,
    pa_deg         REAL,
    local_rms_jy   REAL,                   -- Jy/beam, primary-beam corrected
    pb             REAL
);
CREATE INDEX IF NOT EXISTS sources_image ON sources (image_id);
CREATE INDEX IF NOT EXISTS sources_window ON sources (window_key);
CREATE INDEX IF NOT EXISTS sources_dec ON sources (dec_deg);
