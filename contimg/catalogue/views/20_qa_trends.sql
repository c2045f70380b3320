-- qa_trends: the current image of each window with its QA figures, in time order.
CREATE OR REPLACE VIEW qa_trends AS
SELECT window_key,
       substr(window_key, 1, 10) AS date,
       mid_mjd,
       status,
       rms_jy,
       expected_rms_jy,
       CASE WHEN expected_rms_jy > 0 THEN rms_jy / expected_rms_jy END AS rms_ratio,
       peak_jy,
       dynamic_range,
       n_sources,
       bmaj_arcsec,
       bmin_arcsec,
       bpa_deg,
       flagged_fraction,
       calibrated,
       calset,
       imager,
       reason,
       image_path,
       created_at,
       code_version
FROM cat.images
WHERE status IN ('ok', 'flagged')
ORDER BY window_key;
