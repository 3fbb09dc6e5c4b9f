-- Gotcha cloud schema (MySQL 8 and MariaDB 10.11). Applied by `gotcha cloud init-db`;
-- every statement is re-runnable. All times are DATETIME(3) in UTC (the code sets the session
-- time zone to +00:00 and writes UTC itself). Text is utf8mb4 for Hangul plates; plates,
-- keys and ids compare byte-exact (utf8mb4_bin) so 서울12가3456 never matches a look-alike.

CREATE TABLE IF NOT EXISTS schema_info (
  name        VARCHAR(64)  NOT NULL PRIMARY KEY,
  value       VARCHAR(255) NOT NULL,
  updated_at  DATETIME(3)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Enforcement zones and their rules; rows come from sql/init_data.sql, which mirrors
-- gotcha_contracts.rules.DEFAULT_RULES (a test checks they agree).
CREATE TABLE IF NOT EXISTS zones (
  zone                 VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  name_ko              VARCHAR(64)  NOT NULL,
  min_interval_s       DOUBLE       NOT NULL,
  radius_m             DOUBLE       NOT NULL,
  resident_reportable  TINYINT(1)   NOT NULL DEFAULT 0,
  description          VARCHAR(255) NOT NULL DEFAULT '',
  updated_at           DATETIME(3)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Devices seen by the ingest handler (one upsert per accepted manifest).
CREATE TABLE IF NOT EXISTS devices (
  device_id        VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  first_report_at  DATETIME(3) NOT NULL,
  last_report_at   DATETIME(3) NOT NULL,
  reports          INT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per report received (agent manifests) or per raw photo (devices without the agent).
-- status: waiting  manifest seen, a photo is missing from S3 (ingest raised so Lambda retries)
--         pending  accepted, waiting for the promoter
--         raw      a raw photo, waiting for the vision service
--         processed  a raw photo the vision service read; reason lists its sightings
--         failed   a raw photo the service could not read (down, or refused it); reason says
--         sighting one plate in one raw photo, waiting for a second photo (cloud_sync.pairing)
--         paired   a sighting that became one of the two photos of a report
--         expired  a sighting no second photo came for before the reporting deadline
--         final    promoted; final_id names the row in `final`
--         duplicate  same plate, same place, within the dedup window of final_id
--         rejected   the promoter's rule check failed; reason says why
CREATE TABLE IF NOT EXISTS `temporary` (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  report_id           CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source              VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'agent',
  status              VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason              VARCHAR(1000) NULL,
  device_id           VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  plate               VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  plate_confidence    DOUBLE       NULL,
  plate_use           VARCHAR(32)  NULL,
  zone                VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  lat                 DOUBLE       NULL,
  lon                 DOUBLE       NULL,
  accuracy_m          DOUBLE       NULL,
  first_seen_at       DATETIME(3)  NULL,
  confirmed_at        DATETIME(3)  NULL,
  scene_score         DOUBLE       NULL,
  photo_distance_m    DOUBLE       NULL,
  bucket              VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  manifest_key        VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  manifest_etag       VARCHAR(80)  NULL,
  manifest_sha256     CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  photo1_key          VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  photo1_sha256       CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  photo2_key          VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  photo2_sha256       CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  manifest            LONGTEXT     NULL,
  final_id            BIGINT UNSIGNED NULL,
  received_at         DATETIME(3)  NOT NULL,
  processed_at        DATETIME(3)  NULL,
  -- schema 2 manifests: one confidence per plate character (JSON array), and the rules the
  -- device applied as {"version": n, "overrides": {...}} (NULL: schema 1, DEFAULT_RULES)
  plate_char_confidences  VARCHAR(400)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  rules                   VARCHAR(2000) CHARACTER SET ascii COLLATE ascii_bin NULL,
  CONSTRAINT temporary_status_ck
    CHECK (status IN ('waiting', 'pending', 'raw', 'processed', 'failed', 'sighting',
                      'paired', 'expired', 'final', 'duplicate', 'rejected')),
  CONSTRAINT temporary_source_ck CHECK (source IN ('agent', 'raw')),
  UNIQUE KEY temporary_report_id_uq (report_id),
  KEY temporary_status_id_ix (status, id),
  KEY temporary_plate_time_ix (plate, confirmed_at),
  KEY temporary_device_time_ix (device_id, confirmed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Databases made before the raw-photo statuses: the same check, widened (both MySQL 8.0.19+
-- and MariaDB 10.2+ know DROP CONSTRAINT; re-running drops and adds it again).
ALTER TABLE `temporary` DROP CONSTRAINT temporary_status_ck;
ALTER TABLE `temporary` ADD CONSTRAINT temporary_status_ck
  CHECK (status IN ('waiting', 'pending', 'raw', 'processed', 'failed', 'sighting',
                    'paired', 'expired', 'final', 'duplicate', 'rejected'));

-- Promoted reports: what dashboards and enforcement read. One row per distinct violation.
CREATE TABLE IF NOT EXISTS final (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  report_id           CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  temporary_id        BIGINT UNSIGNED NOT NULL,
  device_id           VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  plate               VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  plate_confidence    DOUBLE       NULL,
  plate_use           VARCHAR(32)  NULL,
  zone                VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  lat                 DOUBLE       NOT NULL,
  lon                 DOUBLE       NOT NULL,
  first_seen_at       DATETIME(3)  NOT NULL,
  confirmed_at        DATETIME(3)  NOT NULL,
  scene_score         DOUBLE       NULL,
  bucket              VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  manifest_key        VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  photo1_key          VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  photo1_sha256       CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  photo2_key          VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  photo2_sha256       CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  duplicate_count     INT UNSIGNED NOT NULL DEFAULT 0,
  last_duplicate_at   DATETIME(3)  NULL,
  promoted_at         DATETIME(3)  NOT NULL,
  -- gotcha_contracts.plate_identity: per-character confidences (JSON array) and the three
  -- match_keys through which the duplicate check finds plates one character apart
  plate_char_confidences  VARCHAR(400) CHARACTER SET ascii COLLATE ascii_bin NULL,
  match_key_1         VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  match_key_2         VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  match_key_3         VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  UNIQUE KEY final_report_id_uq (report_id),
  UNIQUE KEY final_temporary_id_uq (temporary_id),
  KEY final_plate_time_ix (plate, confirmed_at),
  KEY final_zone_time_ix (zone, confirmed_at),
  KEY final_device_time_ix (device_id, confirmed_at),
  KEY final_time_ix (confirmed_at),
  -- covering: the duplicate look-up reads these indexes only (plate, place, time)
  KEY final_match_1_time_ix (match_key_1, confirmed_at, plate, lat, lon),
  KEY final_match_2_time_ix (match_key_2, confirmed_at, plate, lat, lon),
  KEY final_match_3_time_ix (match_key_3, confirmed_at, plate, lat, lon)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Events the ingest handler could not accept: malformed manifests, bad photos, keys that do
-- not match their content, conflicting re-uploads. Never dropped silently. Keyed by a hash of
-- bucket + key + etag, so a replayed bad event is recorded once even when no report_id can be
-- read from it.
CREATE TABLE IF NOT EXISTS rejected_events (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_hash   CHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  bucket       VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  object_key   VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  etag         VARCHAR(80)   NULL,
  report_id    VARCHAR(64)   CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  device_id    VARCHAR(64)   CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  reason       VARCHAR(1000) NOT NULL,
  received_at  DATETIME(3)   NOT NULL,
  UNIQUE KEY rejected_events_hash_uq (event_hash),
  KEY rejected_events_time_ix (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per plate match key (gotcha_contracts.plate_identity.match_keys) the promoter has
-- seen. Promoters lock these rows (in sorted order) before the duplicate look-up, so two
-- promoters never both promote the same violation, even read one character apart.
CREATE TABLE IF NOT EXISTS plate_locks (
  plate      VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  locked_at  DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO schema_info (name, value, updated_at) VALUES ('schema_version', '1', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE value = '1', updated_at = UTC_TIMESTAMP(3);
