-- products: every current product file with its type, date, window and path. An image's source list
-- (PREFIX.sources.fits beside PREFIX.fits) has no column of its own: it is listed when its rows or its
-- cross-match were recorded (a list of no detections, written for an empty image, is not).
CREATE OR REPLACE VIEW products AS
SELECT 'ms' AS type, substr(window_key, 1, 10) AS date, window_key, path, status, size_bytes, created_at
FROM cat.measurement_sets WHERE status = 'current'
UNION ALL
SELECT 'image', substr(window_key, 1, 10), window_key, p.path, status, NULL, created_at
FROM (SELECT window_key, status, created_at,
             unnest([image_path, pbcor_path, pb_path, png_path,
                     CASE WHEN image_path LIKE '%.fits'
                           AND (EXISTS (SELECT 1 FROM cat.sources AS s WHERE s.image_id = i.id)
                                OR EXISTS (SELECT 1 FROM cat.image_science_qa AS q WHERE q.image_id = i.id))
                          THEN substr(image_path, 1, length(image_path) - 5) || '.sources.fits' END]) AS path
      FROM cat.images AS i WHERE status IN ('ok', 'flagged')) AS p
WHERE p.path IS NOT NULL;
