-- Dashboard views over `final` (and `temporary` for the pipeline's health). Re-runnable.
-- Days are Korean calendar days: KST is UTC+9 all year (no daylight saving).

CREATE OR REPLACE VIEW reports_per_day AS
SELECT DATE(DATE_ADD(f.confirmed_at, INTERVAL 9 HOUR)) AS day_kst,
       COUNT(*)                                     AS reports,
       COUNT(DISTINCT f.plate)                      AS plates,
       COUNT(DISTINCT f.device_id)                  AS devices,
       SUM(f.duplicate_count)                       AS duplicates
FROM final f
GROUP BY DATE(DATE_ADD(f.confirmed_at, INTERVAL 9 HOUR));

CREATE OR REPLACE VIEW reports_per_zone AS
SELECT f.zone                   AS zone,
       z.name_ko                AS name_ko,
       COUNT(*)                 AS reports,
       COUNT(DISTINCT f.plate)  AS plates,
       SUM(f.duplicate_count)   AS duplicates,
       MIN(f.confirmed_at)      AS first_confirmed_at,
       MAX(f.confirmed_at)      AS last_confirmed_at
FROM final f
LEFT JOIN zones z ON z.zone = f.zone
GROUP BY f.zone, z.name_ko;

-- Per device: what reached final, and what the cloud did with everything it received.
CREATE OR REPLACE VIEW reports_per_device AS
SELECT t.device_id                                        AS device_id,
       SUM(t.status = 'final')                            AS final,
       SUM(t.status = 'duplicate')                        AS duplicate,
       SUM(t.status = 'rejected')                         AS rejected,
       SUM(t.status IN ('pending', 'waiting', 'raw'))     AS in_progress,
       COUNT(*)                                           AS received,
       MAX(t.received_at)                                 AS last_received_at
FROM `temporary` t
GROUP BY t.device_id;

-- Plates with two or more final reports: the repeat offenders.
CREATE OR REPLACE VIEW repeat_offenders AS
SELECT f.plate                  AS plate,
       COUNT(*)                 AS reports,
       COUNT(DISTINCT f.zone)   AS zones,
       MIN(f.confirmed_at)      AS first_confirmed_at,
       MAX(f.confirmed_at)      AS last_confirmed_at
FROM final f
GROUP BY f.plate
HAVING COUNT(*) >= 2;
