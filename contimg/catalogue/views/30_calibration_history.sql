-- calibration_history: every solved calibration set, newest transit first, with its tables and use.
CREATE OR REPLACE VIEW calibration_history AS
SELECT s.set_name,
       s.window_key,
       s.calibrator,
       s.transit_mjd,
       make_timestamp(CAST(round((s.transit_mjd - 40587) * 86400e6) AS BIGINT)) AS transit_utc,
       s.valid_start_mjd,
       s.valid_end_mjd,
       s.status,
       s.refant,
       s.reason,
       s.quality,
       (SELECT count(*) FROM cat.caltables c WHERE c.set_name = s.set_name) AS n_tables,
       (SELECT string_agg(c.table_type, ',' ORDER BY c.apply_order) FROM cat.caltables c
         WHERE c.set_name = s.set_name) AS table_types,
       (SELECT count(*) FROM cat.images i WHERE i.calset = s.set_name AND i.status IN ('ok', 'flagged'))
           AS n_images,
       s.solver_version,
       s.created_at
FROM cat.caltable_sets s
ORDER BY s.transit_mjd DESC;
