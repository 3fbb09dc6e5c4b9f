"""The cloud re-checks the evidence: distance and interval from the photos, the rules the
manifest names within the cloud's limits, and plate identity as the device decides it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cloud_helpers import (
    BUCKET,
    SEOUL_CITY_HALL,
    event_for,
    make_report,
    put_manifest,
    put_photos,
    query,
    upload,
)

from cloud_sync import ingest, promote
from cloud_sync.errors import CloudConfigError
from cloud_sync.limits import KOREA_BOUNDS, CloudLimits, limits_from_env
from edge_agent.lifecycle import one_char_match
from edge_agent.results import Box, GeoPoint
from edge_agent.store.records import Sighting
from gotcha_contracts.manifest_build import manifest_bytes
from gotcha_contracts.plate_identity import HIGH_CHAR_CONFIDENCE, LOW_CHAR_CONFIDENCE
from gotcha_contracts.rules import DEFAULT_RULES
from gotcha_contracts.rules_diff import rules_overrides

METRES_200_NORTH = (SEOUL_CITY_HALL[0] + 0.0018, SEOUL_CITY_HALL[1])  # about 200 m


def promoted(s3, conn, *reports, limits: CloudLimits | None = None) -> dict[str, dict]:
    for report in reports:
        assert ingest.handle_event(upload(s3, report), conn, s3)["accepted"] == 1
    promote.promote_pending(conn, limits=limits)
    return {r["report_id"]: r for r in query(conn, "SELECT * FROM `temporary`")}


def test_photos_200_m_apart_are_rejected_with_the_reason(s3, conn):
    report = make_report(where2=METRES_200_NORTH)
    assert 190 < report.doc["distance_m"] < 210  # the device said so, honestly
    row = promoted(s3, conn, report)[report.report_id]
    assert row["status"] == "rejected"
    assert "m apart, more than the 15 m same-spot radius" in row["reason"]
    assert 190 < row["photo_distance_m"] < 210  # recomputed from the photos' own places


def test_photos_30_s_apart_in_a_300_s_zone_are_rejected_with_the_reason(s3, conn):
    report = make_report(zone="other", interval_s=30)
    row = promoted(s3, conn, report)[report.report_id]
    assert row["status"] == "rejected"
    assert "interval 30 s is shorter than the 300 s minimum for zone other" in row["reason"]


def test_the_rules_the_manifest_names_are_applied(s3, conn):
    stricter = DEFAULT_RULES.with_overrides(min_interval_s={"sidewalk": 120}, radius_m=5.0)
    too_soon = make_report(interval_s=90, rules=stricter)
    fine = make_report(plate="12가3457", interval_s=150, rules=stricter)
    rows = promoted(s3, conn, too_soon, fine)
    assert rows[too_soon.report_id]["status"] == "rejected"
    assert "shorter than the 120 s minimum" in rows[too_soon.report_id]["reason"]
    assert rows[fine.report_id]["status"] == "final"


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"radius_m": 50.0}, "radius_m 50 is above the cloud's 15 ceiling"),
    ({"min_interval_s": {"other": 120}}, "min_interval_s[other] 120 s is below the cloud's "
                                         "300 s floor"),
    ({"scene_threshold": 0.2}, "scene_threshold 0.2 is below the cloud's 0.5 floor"),
    ({"max_interval_s": 6 * 3600.0}, "max_interval_s 21600 is above"),
    ({"future_tolerance_s": 3600.0}, "future_tolerance_s 3600 is above"),
    ({"dedup_window_s": 60.0}, "dedup_window_s 60 is below"),
])
def test_rules_looser_than_the_cloud_allows_are_rejected(s3, conn, overrides, fragment):
    report = make_report(zone="other", interval_s=150, where2=(37.56660, 126.97796),
                         rules=DEFAULT_RULES.with_overrides(**overrides))
    row = promoted(s3, conn, report)[report.report_id]
    assert row["status"] == "rejected"
    assert "rules looser than this cloud allows" in row["reason"] and fragment in row["reason"]


def test_a_cloud_that_allows_more_accepts_more(s3, conn):
    looser = DEFAULT_RULES.with_overrides(radius_m=50.0, min_interval_s={"other": 120})
    report = make_report(zone="other", interval_s=150, where2=(37.56680, 126.97796),
                         rules=looser)  # 37 m apart, 150 s
    limits = limits_from_env({"GOTCHA_CLOUD_RADIUS_CEILING_M": "60",
                              "GOTCHA_CLOUD_MIN_INTERVAL_FLOOR_S": "other=100"})
    assert promoted(s3, conn, report, limits=limits)[report.report_id]["status"] == "final"


def test_limits_from_the_environment():
    assert limits_from_env({}) == CloudLimits()
    assert CloudLimits().bounds == KOREA_BOUNDS
    limits = limits_from_env({"GOTCHA_CLOUD_MIN_INTERVAL_FLOOR_S": "45",
                              "GOTCHA_CLOUD_BOUNDS": "30,40,120,135",
                              "GOTCHA_CLOUD_MAX_PHOTO_BYTES": "1000"})
    assert limits.min_interval_floor("other") == 45 and limits.bounds == (30, 40, 120, 135)
    assert limits.max_photo_bytes == 1000
    zones = limits_from_env({"GOTCHA_CLOUD_MIN_INTERVAL_FLOOR_S": "hydrant=90, other=600"})
    assert (zones.min_interval_floor("hydrant"), zones.min_interval_floor("other"),
            zones.min_interval_floor("sidewalk")) == (90, 600, 60)
    for env, name in [({"GOTCHA_CLOUD_RADIUS_CEILING_M": "wide"}, "RADIUS_CEILING_M"),
                      ({"GOTCHA_CLOUD_BOUNDS": "1,2,3"}, "BOUNDS"),
                      ({"GOTCHA_CLOUD_BOUNDS": "40,30,120,135"}, "BOUNDS"),
                      ({"GOTCHA_CLOUD_MIN_INTERVAL_FLOOR_S": "moon=5"}, "moon"),
                      ({"GOTCHA_CLOUD_MAX_AGE_S": "-1"}, "MAX_AGE_S"),
                      ({"GOTCHA_CLOUD_MAX_AGE_S": "1e300"}, "MAX_AGE_S")]:
        with pytest.raises(CloudConfigError, match=name):
            limits_from_env(env)
    assert CloudLimits().rules_failures(DEFAULT_RULES) == []
    assert rules_overrides(DEFAULT_RULES) == {}


# --- plate identity: the one-character cases of edge_agent.lifecycle's docstring -----------

SURE = (0.95,) * 7
UNSURE_LAST = (0.95,) * 6 + (0.3,)
CASES = [  # first report's plate and confidences, second's, and the lifecycle's answer
    ("12가3456", SURE, "12가3458", UNSURE_LAST, True),  # one unsure against a sure one: same
    ("12가3458", UNSURE_LAST, "12가3456", SURE, True),  # the same, the unsure one first
    ("12가3456", SURE, "12가3458", SURE, False),  # two confident different reads: two plates
    ("12가3456", UNSURE_LAST, "12가3458", UNSURE_LAST, False),  # both unsure: nothing to trust
    ("12가3456", SURE, "12가3478", (0.3,) * 7, False),  # two characters apart
    ("12가3456", SURE, "123가3456", (0.3,) * 8, False),  # different lengths
    ("12가3456", SURE, "12가3456", UNSURE_LAST, True),  # equal reads
]


def _device_says_same(a, a_confs, b, b_confs) -> bool:
    def sighting(plate: str, confs: tuple[float, ...]) -> Sighting:
        return Sighting("d", "a" * 64, datetime(2026, 11, 25, tzinfo=UTC), plate, plate, confs,
                        Box(0, 0, 1, 1), GeoPoint(*SEOUL_CITY_HALL))

    return one_char_match(sighting(a, a_confs), sighting(b, b_confs), LOW_CHAR_CONFIDENCE,
                          HIGH_CHAR_CONFIDENCE) is not None


@pytest.mark.parametrize(("a", "a_confs", "b", "b_confs", "same"), CASES)
def test_device_and_cloud_agree_on_plates_one_character_apart(s3, conn, a, a_confs, b,
                                                              b_confs, same):
    t = datetime.now(UTC) - timedelta(hours=2)
    first = make_report(device_id="dev-a", plate=a, char_confidences=list(a_confs),
                        confirmed_at=t)
    second = make_report(device_id="dev-b", plate=b, char_confidences=list(b_confs),
                         confirmed_at=t + timedelta(minutes=4), where=(37.56650, 126.97800))
    assert ingest.handle_event(upload(s3, first), conn, s3)["accepted"] == 1
    promote.promote_pending(conn)  # the first is final before the second arrives
    rows = promoted(s3, conn, second)
    assert rows[first.report_id]["status"] == "final"
    cloud_says_same = rows[second.report_id]["status"] == "duplicate"
    assert cloud_says_same is same  # the docstring's answer, not the code's
    assert _device_says_same(a, a_confs, b, b_confs) is same
    if cloud_says_same:
        assert rows[second.report_id]["final_id"] == rows[first.report_id]["final_id"]
        [final] = query(conn, "SELECT plate, duplicate_count FROM final")
        assert final == {"plate": a, "duplicate_count": 1}  # the final that exists wins
    else:
        assert rows[second.report_id]["status"] == "final"


def test_one_character_apart_in_one_batch_gives_one_final(s3, conn):
    t = datetime.now(UTC) - timedelta(hours=2)
    sure = make_report(device_id="dev-a", plate="12가3456", char_confidences=list(SURE),
                       confirmed_at=t)
    unsure = make_report(device_id="dev-b", plate="12가3458",
                         char_confidences=list(UNSURE_LAST), confirmed_at=t + timedelta(
                             minutes=3))
    rows = promoted(s3, conn, unsure, sure)
    assert rows[sure.report_id]["status"] == "final"
    assert rows[unsure.report_id]["status"] == "duplicate"
    assert "plate 12가3456 (read 12가3458, one unsure character)" in \
        rows[unsure.report_id]["reason"]


def test_schema_1_reports_are_read_but_cannot_prove_their_distance(s3, conn):
    """Schema 1 carried one location: the cloud cannot check the photos were at one spot."""
    report = make_report()
    doc = {k: v for k, v in report.doc.items()
           if k not in ("plate_char_confidences", "distance_m", "rules")}
    doc.update(schema="gotcha.report/1", location=report.doc["photos"][0]["location"],
               photos=[{k: v for k, v in p.items() if k != "location"}
                       for p in report.doc["photos"]])
    put_photos(s3, report)
    key = put_manifest(s3, report, body=manifest_bytes(doc))
    assert ingest.handle_event(event_for(s3, BUCKET, key), conn, s3)["accepted"] == 1
    promote.promote_pending(conn)
    [row] = query(conn, "SELECT * FROM `temporary`")
    assert row["status"] == "rejected" and row["rules"] is None
    assert "distance between the photos is unknown" in row["reason"]


def test_unknown_schema_is_rejected_with_the_reason(s3, conn):
    report = make_report()
    put_photos(s3, report)
    key = put_manifest(s3, report, body=manifest_bytes(dict(report.doc,
                                                            schema="gotcha.report/3")))
    assert ingest.handle_event(event_for(s3, BUCKET, key), conn, s3)["rejected"] == 1
    [row] = query(conn, "SELECT reason FROM rejected_events")
    assert "is not one this code reads (gotcha.report/1, gotcha.report/2)" in row["reason"]
