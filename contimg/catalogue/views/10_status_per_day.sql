-- status_per_day: one row per UTC date with chunks by state, images and their median noise.
CREATE OR REPLACE VIEW status_per_day AS
WITH g AS (
    SELECT substr(window_key, 1, 10) AS date,
           count(*) AS n_groups,
           count(*) FILTER (WHERE state = 'imaged') AS n_imaged,
           count(*) FILTER (WHERE state = 'failed') AS n_failed,
           count(*) FILTER (WHERE state = 'incomplete') AS n_incomplete,
           count(*) FILTER (WHERE state IN ('requested', 'grouped', 'converted', 'calibrated')) AS n_in_flight,
           count(*) FILTER (WHERE calibrator IS NOT NULL AND calibrator != '') AS n_calibrator_chunks
    FROM cat.groups GROUP BY 1
), i AS (
    SELECT substr(window_key, 1, 10) AS date,
           count(*) FILTER (WHERE status = 'ok') AS n_images_ok,
           count(*) FILTER (WHERE status = 'flagged') AS n_images_flagged,
           median(rms_jy) FILTER (WHERE status = 'ok') AS median_rms_jy
    FROM cat.images WHERE status != 'superseded' GROUP BY 1
)
SELECT coalesce(g.date, i.date) AS date,
       coalesce(g.n_groups, 0) AS n_groups,
       coalesce(g.n_imaged, 0) AS n_imaged,
       coalesce(g.n_failed, 0) AS n_failed,
       coalesce(g.n_incomplete, 0) AS n_incomplete,
       coalesce(g.n_in_flight, 0) AS n_in_flight,
       coalesce(g.n_calibrator_chunks, 0) AS n_calibrator_chunks,
       coalesce(i.n_images_ok, 0) AS n_images_ok,
       coalesce(i.n_images_flagged, 0) AS n_images_flagged,
       coalesce(i.n_images_ok, 0) / 288.0 AS image_coverage,   -- 288 five-minute windows a day
       i.median_rms_jy
FROM g FULL OUTER JOIN i ON g.date = i.date
ORDER BY date;
