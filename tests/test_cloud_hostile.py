"""Hostile manifests and events, as an attacker would send them, against MariaDB and moto S3.

Each is recorded as rejected with its reason, and an honest report delivered in the same event
(or promoted in the same batch) still reaches `final`: one bad input never blocks the others.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cloud_helpers import (
    BUCKET,
    event_for,
    make_report,
    put_manifest,
    put_photos,
    query,
    upload,
)

from cloud_sync import db, ingest, promote
from cloud_sync.events import s3_event, s3_event_record


def rejected(conn):
    return query(conn, "SELECT * FROM rejected_events ORDER BY id")


def status_of(conn, report_id):
    [row] = query(conn, "SELECT status, reason FROM `temporary` WHERE report_id = %s",
                  (report_id,))
    return row["status"], row["reason"]


def deliver_with_an_honest_report(s3, conn, *hostile_keys: str) -> dict:
    """One event: the hostile manifest(s) and an honest report; promote; the honest one is final."""
    honest = make_report(plate="서울12가3456", device_id="dev-honest")
    put_photos(s3, honest)
    summary = ingest.handle_event(event_for(s3, BUCKET, *hostile_keys,
                                            put_manifest(s3, honest)), conn, s3)
    assert summary["accepted"] == 1, summary
    assert summary["rejected"] == len(hostile_keys), summary
    promote.promote_pending(conn)
    assert status_of(conn, honest.report_id) == ("final", None)
    return summary


def hostile_body(s3, report, body: bytes) -> str:
    put_photos(s3, report)
    return put_manifest(s3, report, body=body)


def only_rejection(conn) -> dict:
    [row] = rejected(conn)
    return row


def test_a_confirmation_in_year_9999_is_rejected_and_promotion_goes_on(s3, conn):
    report = make_report(confirmed_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, report.manifest_body))
    row = only_rejection(conn)
    assert "confirmed_at 9999-12-31T23:00:00Z is more than 300 s after the upload" in \
        row["reason"]
    assert row["report_id"] == report.report_id
    # and the next promoter run still works: nothing is stuck
    later = make_report(plate="12가3457")
    assert ingest.handle_event(upload(s3, later), conn, s3)["accepted"] == 1
    assert promote.promote_pending(conn).final == 1


def test_a_pending_row_in_year_9999_is_set_aside_not_the_batch(s3, conn):
    """A row that got past an older ingest: the promoter rejects it and promotes the rest."""
    honest = make_report()
    assert ingest.handle_event(upload(s3, honest), conn, s3)["accepted"] == 1
    [row] = query(conn, "SELECT * FROM `temporary`")
    bad = {c: row[c] for c in ingest.INSERT_TEMPORARY_COLUMNS}
    bad.update(report_id=str(uuid.uuid4()), confirmed_at=datetime(9999, 12, 31, 23, 59),
               first_seen_at=datetime(9999, 12, 31, 23, 57), manifest_sha256="f" * 64)
    with db.transaction(conn) as cur:
        cur.execute(ingest.INSERT_TEMPORARY_SQL, [bad[c] for c in ingest.INSERT_TEMPORARY_COLUMNS])
    # the first run decides both rows (one set aside), the next finds nothing left to block on
    assert [promote.promote_pending(conn).processed for _ in range(2)] == [2, 0]
    assert status_of(conn, honest.report_id) == ("final", None)
    status, reason = status_of(conn, bad["report_id"])
    assert status == "rejected" and "could not check this report: OverflowError" in reason


def test_a_replaced_photo_with_the_old_hash_in_its_metadata_is_rejected(s3, conn):
    report = make_report()
    put_photos(s3, report)
    key = next(iter(report.photos))
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8 someone else's car",
                  Metadata={"sha256": hashlib.sha256(report.photos[key]).hexdigest()})
    deliver_with_an_honest_report(s3, conn, put_manifest(s3, report))
    row = only_rejection(conn)
    assert "photo-1.jpg sha256" in row["reason"] and "does not match" in row["reason"]


@pytest.mark.parametrize(("photo", "when", "fragment"), [
    (1, lambda d: d["photos"][0]["captured_at"], "photos[1].captured_at"),  # 0 s apart
    (0, lambda d: "2001-01-01T00:00:00Z", "photos[0].captured_at 2001-01-01T00:00:00Z is not "
                                          "first_seen_at"),  # 25 years before
])
def test_photo_times_that_are_not_the_reports_are_rejected(s3, conn, photo, when, fragment):
    report = make_report(interval_s=90)
    doc = json.loads(report.manifest_body)
    doc["photos"][photo]["captured_at"] = when(doc)
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, json.dumps(doc).encode()))
    row = only_rejection(conn)
    assert fragment in row["reason"] and row["report_id"] == report.report_id


def test_a_5000_digit_number_is_rejected(s3, conn):
    report = make_report()
    body = report.manifest_body.replace(b'"plate_confidence":0.93',
                                        b'"plate_confidence":1' + b"7" * 4999)
    assert body != report.manifest_body
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, body))
    row = only_rejection(conn)
    assert "not JSON this code can read" in row["reason"]
    assert row["report_id"] == report.report_id  # still read for the record


def test_deeply_nested_json_is_rejected(s3, conn):
    report = make_report()
    body = b'{"schema": "gotcha.report/2", "x": ' + b"[" * 60_000 + b"]" * 60_000 + b"}"
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, body))
    row = only_rejection(conn)
    assert "nested too deeply" in row["reason"] and row["report_id"] is None


def test_a_lone_surrogate_in_device_id_is_rejected(s3, conn):
    report = make_report()
    doc = json.loads(report.manifest_body)
    doc["device_id"] = "dev-\ud800"
    body = json.dumps(doc).encode()  # ASCII JSON: the surrogate travels as \ud800
    assert b"\\ud800" in body
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, body))
    row = only_rejection(conn)
    assert "device_id" in row["reason"] and row["device_id"] == "dev-\\ud800"


def test_a_3000_deep_sqs_envelope_is_recorded_and_the_rest_of_the_event_ingested(s3, conn):
    honest = make_report()
    put_photos(s3, honest)
    key = put_manifest(s3, honest)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    good = s3_event_record(BUCKET, key, size=head["ContentLength"], etag=head["ETag"])
    deep: dict = s3_event([good])
    for _ in range(3000):
        deep = {"Records": [{"eventSource": "aws:sqs", "body": deep}]}
    event = {"Records": [deep["Records"][0], good]}
    summary = ingest.handle_event(event, conn, s3)
    assert (summary["rejected"], summary["accepted"]) == (1, 1)
    assert "nested more than" in only_rejection(conn)["reason"]
    assert ingest.handle_event(event, conn, s3)["replayed"] == 1  # redelivery: recorded once
    assert len(rejected(conn)) == 1
    assert promote.promote_pending(conn).final == 1


@pytest.mark.parametrize("where", [(0.0001, 0.0001), (35.68, 139.69), (39.02, 125.75)])
def test_places_outside_korea_are_rejected(s3, conn, where):
    report = make_report(where=where)
    deliver_with_an_honest_report(s3, conn, hostile_body(s3, report, report.manifest_body))
    row = only_rejection(conn)
    assert "photos[0].location" in row["reason"] and "outside the area" in row["reason"]


def test_a_row_the_database_refuses_is_set_aside_and_the_batch_goes_on(s3, conn):
    """A final that already holds this report id: the batch insert fails, rows go one by one."""
    clash, honest = make_report(), make_report(plate="12가3457")
    for report in (clash, honest):
        assert ingest.handle_event(upload(s3, report), conn, s3)["accepted"] == 1
    with db.transaction(conn) as cur:
        cur.execute("INSERT INTO final (report_id, temporary_id, device_id, plate, zone, lat, "
                    "lon, first_seen_at, confirmed_at, bucket, manifest_key, photo1_key, "
                    "photo1_sha256, photo2_key, photo2_sha256, promoted_at) VALUES (%s, 999999, "
                    "'x', '99가9999', 'other', 37.0, 127.0, %s, %s, 'b', 'm', 'p1', %s, 'p2', "
                    "%s, %s)", (clash.report_id, db.utc_now(), db.utc_now(), "a" * 64,
                                "b" * 64, db.utc_now()))
    result = promote.promote_pending(conn)
    assert (result.final, result.rejected) == (1, 1) and result.errors
    assert status_of(conn, honest.report_id) == ("final", None)
    status, reason = status_of(conn, clash.report_id)
    assert status == "rejected" and "could not be stored: IntegrityError" in reason


def test_event_fields_of_the_wrong_kind_are_recorded_not_crashed_on(s3, conn):
    bad = [
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": "x" * 300}, "object": {"key": "reports/k"}}},
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": BUCKET}, "object": {"key": "r" * 5000}}},
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": BUCKET}, "object": {"key": "raw/\ud800.jpg"}}},
        {"eventSource": "aws:sns", "Sns": "not an object"},
        {"eventSource": "aws:sqs", "body": "{not json"},
        "a string",
    ]
    summary = ingest.handle_event({"Records": bad}, conn, s3)
    assert summary["rejected"] == len(bad)
    reasons = [r["reason"] for r in rejected(conn)]
    assert len(reasons) == len(bad) and all(reasons)


def test_raw_photos_are_hashed_not_trusted(s3, conn):
    s3.put_object(Bucket=BUCKET, Key="raw/cam-7/a.jpg", Body=b"\xff\xd8raw",
                  Metadata={"sha256": "0" * 64})
    assert ingest.handle_event(event_for(s3, BUCKET, "raw/cam-7/a.jpg"), conn, s3)["raw"] == 1
    [row] = query(conn, "SELECT photo1_sha256 FROM `temporary`")
    assert row["photo1_sha256"] == hashlib.sha256(b"\xff\xd8raw").hexdigest()


def test_an_oversized_photo_is_rejected_before_it_is_read_whole(s3, conn):
    from cloud_sync.limits import CloudLimits

    report = make_report()
    big = next(iter(report.photos))
    report.photos[big] = b"\xff\xd8" + b"\0" * 300_000
    report = make_report(report_id=report.report_id, photos=tuple(report.photos.values()))
    summary = ingest.handle_event(upload(s3, report), conn, s3,
                                  limits=CloudLimits(max_photo_bytes=100_000))
    assert summary["rejected"] == 1
    assert "more than the 100000 allowed" in only_rejection(conn)["reason"]


def test_timestamps_of_the_event_itself_are_sanity_checked():
    from cloud_sync.events import split_s3_event

    record = s3_event_record(BUCKET, "reports/x/manifest.json", size=1, etag="e")
    for text in ("9999-12-31T23:59:59.000Z", "0001-01-01T00:00:00Z", "yesterday", 7):
        record["eventTime"] = text
        [obj], _ = split_s3_event(s3_event([record]))
        assert obj.event_time is None
    record["eventTime"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    [obj], _ = split_s3_event(s3_event([record]))
    assert obj.event_time is not None
