-- lightcurves: one point per source per UTC day: the day's forced measurements combined with weights
-- pb^2 / rms^2 (contimg.photometry.daily.combine), and the same normalised by the day's flux-scale factor when
-- one was measured (flux_scale.factor; NULL: not normalised, flux_norm_jy = flux_jy).
CREATE OR REPLACE VIEW lightcurves AS
WITH w AS (
    SELECT source_id, substr(window_key, 1, 10) AS date, ra_deg, dec_deg, flux_jy, err_jy, pb,
           pb * pb / (rms_jy * rms_jy) AS weight
    FROM cat.photometry
    WHERE rms_jy > 0 AND pb > 0
), d AS (
    SELECT source_id, date, min(ra_deg) AS ra_deg, min(dec_deg) AS dec_deg,
           sum(weight * flux_jy) / sum(weight) AS flux_jy,
           sqrt(sum(weight * weight * err_jy * err_jy)) / sum(weight) AS err_jy,
           count(*) AS n_images, max(pb) AS pb
    FROM w
    GROUP BY source_id, date
)
SELECT d.source_id, d.date, d.ra_deg, d.dec_deg, d.flux_jy, d.err_jy, d.n_images, d.pb,
       f.factor AS scale,
       d.flux_jy / coalesce(f.factor, 1.0) AS flux_norm_jy,
       d.err_jy / coalesce(f.factor, 1.0) AS err_norm_jy,
       coalesce(v.variable, 0) = 1 AS variable,
       v.rule
FROM d
LEFT JOIN cat.flux_scale f ON f.date = d.date
LEFT JOIN cat.variables v ON v.date = d.date AND v.source_id = d.source_id
ORDER BY d.source_id, d.date;
