-- products: every current product file with its type, date, window and path.
CREATE OR REPLACE VIEW products AS
SELECT 'ms' AS type, substr(window_key, 1, 10) AS date, window_key, path, status, size_bytes, created_at
FROM cat.measurement_sets WHERE status = 'current'
UNION ALL
SELECT 'image', substr(window_key, 1, 10), window_key, p.path, status, NULL, created_at
FROM (SELECT window_key, status, created_at,
             unnest([image_path, pbcor_path, pb_path, png_path]) AS path
      FROM cat.images WHERE status IN ('ok', 'flagged')) AS p
WHERE p.path IS NOT NULL;
