-- science_qa: the current image of each window with its science-QA grade and figures (images made
-- without a reference catalogue have no row here), in time order.
CREATE OR REPLACE VIEW science_qa AS
SELECT i.window_key,
       substr(i.window_key, 1, 10) AS date,
       i.mid_mjd,
       i.status,
       q.grade,
       q.flux_ratio,
       q.flux_ratio_scatter,
       q.n_flux,
       q.offset_ra_arcsec,
       q.offset_dec_arcsec,
       q.offset_ra_beams,
       q.offset_dec_beams,
       q.completeness,
       q.n_complete,
       q.reliability,
       q.n_reliable,
       q.n_detected,
       q.n_reference,
       q.n_matched,
       q.problems,
       q.reference_catalog,
       i.rms_jy,
       i.image_path
FROM cat.images AS i
JOIN cat.image_science_qa AS q ON q.image_id = i.id
WHERE i.status IN ('ok', 'flagged')
ORDER BY i.window_key;
