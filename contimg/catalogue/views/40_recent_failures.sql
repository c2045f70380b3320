-- recent_failures: failed chunks, failed images and rejected files, newest first, each with its reason.
CREATE OR REPLACE VIEW recent_failures AS
SELECT * FROM (
    SELECT 'group' AS kind, window_key, NULL AS path, coalesce(error, '') AS reason, updated_at AS at_utc
    FROM cat.groups WHERE state = 'failed'
    UNION ALL
    SELECT 'image', window_key, ms_path, coalesce(reason, ''), created_at
    FROM cat.images WHERE status = 'failed'
    UNION ALL
    SELECT 'file', window_key, path, status || ': ' || coalesce(reason, ''), updated_at
    FROM cat.subband_files WHERE status IN ('corrupt', 'misnamed')
)
ORDER BY at_utc DESC;
