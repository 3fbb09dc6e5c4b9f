-- Enforcement zones and their rules. Mirrors gotcha_contracts.rules (ZONE_RULES intervals and
-- descriptions, DEFAULT_RULES.radius_m); tests/test_cloud_schema.py fails when the two
-- disagree. Re-runnable: an existing row is updated in place (no VALUES() function, which
-- MySQL 8.0.20+ deprecates).

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('hydrant', '소화전', 60, 15, 1, 'within 5 m of a fire hydrant', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '소화전', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'within 5 m of a fire hydrant', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('intersection_corner', '교차로 모퉁이', 60, 15, 1, 'within 5 m of an intersection corner', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '교차로 모퉁이', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'within 5 m of an intersection corner', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('bus_stop', '버스 정류소', 60, 15, 1, 'within 10 m of a bus stop', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '버스 정류소', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'within 10 m of a bus stop', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('crosswalk', '횡단보도', 60, 15, 1, 'on a crosswalk', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '횡단보도', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'on a crosswalk', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('school_zone', '어린이 보호구역', 60, 15, 1, 'road at a primary-school main gate, weekdays 08:00-20:00', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '어린이 보호구역', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'road at a primary-school main gate, weekdays 08:00-20:00', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('sidewalk', '인도', 60, 15, 1, 'on a sidewalk', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '인도', min_interval_s = 60, radius_m = 15,
    resident_reportable = 1, description = 'on a sidewalk', updated_at = UTC_TIMESTAMP(3);

INSERT INTO zones (zone, name_ko, min_interval_s, radius_m, resident_reportable, description, updated_at)
  VALUES ('other', '기타', 300, 15, 0, 'elsewhere: local rules, commonly 5 minutes', UTC_TIMESTAMP(3))
  ON DUPLICATE KEY UPDATE name_ko = '기타', min_interval_s = 300, radius_m = 15,
    resident_reportable = 0, description = 'elsewhere: local rules, commonly 5 minutes', updated_at = UTC_TIMESTAMP(3);
