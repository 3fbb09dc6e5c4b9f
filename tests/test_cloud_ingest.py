"""The ingest handler on real S3 event JSON, a moto S3 server and the local MariaDB."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cloud_helpers import (
    BUCKET,
    event_for,
    make_report,
    put_manifest,
    put_photos,
    query,
    settings,
    upload,
)

from cloud_sync import db, ingest
from cloud_sync.errors import EventError, PhotosNotReadyError
from cloud_sync.events import parse_s3_event, s3_event, s3_event_record


def temporary(conn):
    return query(conn, "SELECT * FROM `temporary` ORDER BY id")


def rejected(conn):
    return query(conn, "SELECT * FROM rejected_events ORDER BY id")


# --- event parsing (pure) -------------------------------------------------------------------

def test_event_keys_are_url_decoded_like_s3_sends_them():
    key = "raw/dev 01/서울 사진+1.jpg"
    record = s3_event_record(BUCKET, key, size=10, etag='"abc"')
    encoded = "raw/dev+01/%EC%84%9C%EC%9A%B8+%EC%82%AC%EC%A7%84%2B1.jpg"
    assert record["s3"]["object"]["key"] == encoded
    [obj] = parse_s3_event(s3_event([record]))
    assert (obj.bucket, obj.key, obj.size, obj.etag) == (BUCKET, key, 10, "abc")
    assert obj.event_time is not None and obj.event_time.tzinfo is not None


def test_event_wrapped_in_sqs_and_test_event_and_deletes():
    record = s3_event_record(BUCKET, "reports/x/manifest.json", size=1, etag="e")
    sqs = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(s3_event([record]))}]}
    assert [o.key for o in parse_s3_event(sqs)] == ["reports/x/manifest.json"]
    assert parse_s3_event({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []
    deleted = dict(record, eventName="ObjectRemoved:Delete")
    assert parse_s3_event(s3_event([deleted])) == []


@pytest.mark.parametrize("event, message", [
    ("not json", "not JSON"),
    ([1, 2], "JSON object"),
    ({"detail": {}}, "no Records"),
    ({"Records": ["x"]}, "Records[0] is not an object"),
    ({"Records": [{"eventSource": "aws:dynamodb"}]}, "expected 'aws:s3'"),
    ({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]},
     "lacks s3.bucket.name"),
])
def test_malformed_event_is_a_clear_error(event, message):
    with pytest.raises(EventError, match=re.escape(message)):
        parse_s3_event(event)


# --- the handler --------------------------------------------------------------------------

def test_manifest_becomes_one_pending_row(s3, conn):
    report = make_report(plate="서울12가3456")
    summary = ingest.handle_event(upload(s3, report), conn, s3)
    assert summary["accepted"] == 1
    [row] = temporary(conn)
    assert row["report_id"] == report.report_id
    assert (row["status"], row["source"], row["plate"], row["zone"]) == (
        "pending", "agent", "서울12가3456", "sidewalk")
    assert row["photo1_sha256"] == report.doc["photos"][0]["sha256"]
    assert row["manifest_sha256"] == hashlib.sha256(report.manifest_body).hexdigest()
    assert row["confirmed_at"] == datetime.fromisoformat(
        report.doc["confirmed_at"][:-1])  # stored in UTC
    assert query(conn, "SELECT reports FROM devices WHERE device_id = 'dev-01'") == [
        {"reports": 1}]


def test_event_delivered_twice_changes_nothing(s3, conn):
    event = upload(s3, make_report())
    ingest.handle_event(event, conn, s3)
    before = temporary(conn)
    summary = ingest.handle_event(event, conn, s3)
    assert summary["replayed"] == 1 and summary["accepted"] == 0
    assert temporary(conn) == before
    assert query(conn, "SELECT reports FROM devices") == [{"reports": 1}]


def test_photos_hashed_when_metadata_missing(s3, conn):
    report = make_report()
    put_photos(s3, report, metadata=False)
    summary = ingest.handle_event(event_for(s3, BUCKET, put_manifest(s3, report)), conn, s3)
    assert summary["accepted"] == 1


def test_manifest_before_its_photos_waits_then_is_accepted(s3, conn):
    report = make_report()
    event = event_for(s3, BUCKET, put_manifest(s3, report))
    with pytest.raises(PhotosNotReadyError, match=re.escape("photo-1.jpg, photo-2.jpg")):
        ingest.handle_event(event, conn, s3)
    [row] = temporary(conn)
    assert row["status"] == "waiting" and "not in S3" in row["reason"]
    with pytest.raises(PhotosNotReadyError):  # Lambda's retry, photos still missing
        ingest.handle_event(event, conn, s3)
    assert len(temporary(conn)) == 1
    put_photos(s3, report)
    summary = ingest.handle_event(event, conn, s3)  # the retry that finds them
    assert summary["accepted"] == 1
    [row] = temporary(conn)
    assert row["status"] == "pending" and row["reason"] is None


def test_waiting_report_whose_photos_turn_up_wrong_is_rejected(s3, conn):
    report = make_report()
    event = event_for(s3, BUCKET, put_manifest(s3, report))
    with pytest.raises(PhotosNotReadyError):
        ingest.handle_event(event, conn, s3)
    for key in report.photos:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8 not the evidence")
    assert ingest.handle_event(event, conn, s3)["rejected"] == 1
    [row] = temporary(conn)
    assert row["status"] == "rejected" and "sha256" in row["reason"]
    assert len(rejected(conn)) == 1


def test_photo_with_other_content_is_rejected(s3, conn):
    report = make_report()
    key = next(iter(report.photos))
    report.photos[key] = b"\xff\xd8 tampered"
    summary = ingest.handle_event(upload(s3, report), conn, s3)
    assert summary["rejected"] == 1
    [row] = rejected(conn)
    assert "photo-1.jpg sha256" in row["reason"] and row["report_id"] == report.report_id
    assert temporary(conn) == []


@pytest.mark.parametrize("body, reason", [
    (b"\x89PNG not json", "not UTF-8"),
    (b'{"schema": "gotcha.report/1"', "not JSON"),
    (json.dumps({"schema": "gotcha.report/0"}).encode(), "schema"),
    (b"[]", "JSON object"),
])
def test_malformed_manifest_is_recorded_with_its_reason(s3, conn, body, reason):
    key = "reports/dev-01/2026/11/25/0f0e0d0c-0b0a-4908-8706-050403020100/manifest.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    event = event_for(s3, BUCKET, key)
    assert ingest.handle_event(event, conn, s3)["rejected"] == 1
    ingest.handle_event(event, conn, s3)  # replay: recorded once
    [row] = rejected(conn)
    assert reason in row["reason"] and row["object_key"] == key
    assert temporary(conn) == []


def test_manifest_field_errors_are_recorded(s3, conn):
    report = make_report()
    doc = dict(report.doc, plate="ABC123")
    put_photos(s3, report)
    key = put_manifest(s3, report, body=json.dumps(doc).encode())
    ingest.handle_event(event_for(s3, BUCKET, key), conn, s3)
    [row] = rejected(conn)
    assert "plate" in row["reason"] and row["report_id"] == report.report_id


def test_manifest_under_another_devices_key_is_rejected(s3, conn):
    report = make_report(device_id="dev-01")
    put_photos(s3, report)
    key = report.manifest_key.replace("reports/dev-01/", "reports/dev-99/")
    ingest.handle_event(event_for(s3, BUCKET, put_manifest(s3, report, key=key)), conn, s3)
    [row] = rejected(conn)
    assert "does not match its content" in row["reason"]


def test_second_different_manifest_for_a_report_is_rejected(s3, conn):
    report = make_report()
    ingest.handle_event(upload(s3, report), conn, s3)
    changed = dict(report.doc, plate_confidence=0.5)
    key = put_manifest(s3, report, body=json.dumps(changed).encode())
    summary = ingest.handle_event(event_for(s3, BUCKET, key), conn, s3)
    assert summary["rejected"] == 1
    assert "different manifest" in rejected(conn)[0]["reason"]
    assert [r["plate_confidence"] for r in temporary(conn)] == [0.93]


def test_photo_events_are_ignored(s3, conn, caplog):
    report = make_report()
    put_photos(s3, report)
    caplog.set_level("INFO", logger="cloud_sync.ingest")
    summary = ingest.handle_event(event_for(s3, BUCKET, *report.photos), conn, s3)
    assert summary["ignored"] == 2 and temporary(conn) == []
    assert "not a report manifest" in caplog.text


def test_raw_photo_becomes_a_raw_sighting(s3, conn):
    s3.put_object(Bucket=BUCKET, Key="raw/cam-7/2026-11-25 0901.jpg", Body=b"\xff\xd8raw")
    event = event_for(s3, BUCKET, "raw/cam-7/2026-11-25 0901.jpg")
    assert ingest.handle_event(event, conn, s3)["raw"] == 1
    assert ingest.handle_event(event, conn, s3)["replayed"] == 1
    [row] = temporary(conn)
    assert (row["source"], row["status"], row["device_id"], row["plate"]) == (
        "raw", "raw", "cam-7", None)
    assert row["photo1_sha256"] == hashlib.sha256(b"\xff\xd8raw").hexdigest()


INJECTIONS = ["x'); DROP TABLE final; --", "' OR '1'='1", "\"; DELETE FROM `temporary`; #",
              "Robert'); DROP TABLE zones;--"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_injection_in_every_text_field_is_inert(s3, conn, payload):
    report = make_report()
    put_photos(s3, report)
    # hostile values in each text field of a manifest at its proper key ...
    fields = {"plate": payload, "device_id": payload, "zone": payload, "report_id": payload,
              "schema": payload, "first_seen_at": payload,
              "photos": [dict(report.doc["photos"][0], key=payload), report.doc["photos"][1]]}
    for name, value in fields.items():
        body = json.dumps(dict(report.doc, **{name: value}), ensure_ascii=False).encode()
        key = put_manifest(s3, report, body=body)
        assert ingest.handle_event(event_for(s3, BUCKET, key), conn, s3)["rejected"] == 1, name
    # ... and in the object keys themselves
    keys = [put_manifest(s3, report, key=f"reports/{payload}/manifest.json"),
            f"raw/{payload}.jpg", f"raw/{payload}/x.jpg"]
    s3.put_object(Bucket=BUCKET, Key=keys[1], Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=keys[2], Body=b"x")
    assert ingest.handle_event(event_for(s3, BUCKET, *keys), conn, s3)["rejected"] == 3
    rows = rejected(conn)
    assert len(rows) == len(fields) + 3
    assert set(keys) <= {r["object_key"] for r in rows}  # hostile keys stored verbatim
    assert any(payload in r["reason"] for r in rows)  # hostile values quoted verbatim
    tables = {next(iter(r.values())) for r in query(conn, "SHOW TABLES")}
    assert {"final", "temporary", "zones", "rejected_events"} <= tables
    assert len(query(conn, "SELECT * FROM zones")) == 7
    # and the honest manifest still goes through afterwards
    assert ingest.handle_event(upload(s3, report), conn, s3)["accepted"] == 1
    # free text the schema allows (a model id) is accepted and stored verbatim
    other = make_report()
    other.doc["models"]["plate_reader"] = payload
    assert ingest.handle_event(upload(s3, other), conn, s3)["accepted"] == 1
    stored = {r["report_id"]: r for r in temporary(conn)}
    assert set(stored) == {report.report_id, other.report_id}
    assert json.loads(stored[other.report_id]["manifest"])["models"]["plate_reader"] == payload


def test_hangul_and_time_round_trip(s3, conn):
    confirmed = datetime(2026, 11, 25, 14, 59, 59, tzinfo=UTC)
    report = make_report(plate="경기34바5678", confirmed_at=confirmed)
    ingest.handle_event(upload(s3, report), conn, s3)
    [row] = temporary(conn)
    assert row["plate"] == "경기34바5678" and row["plate_use"] == "commercial"
    assert row["confirmed_at"] == confirmed.replace(tzinfo=None)
    assert row["first_seen_at"] == (confirmed - timedelta(seconds=90)).replace(tzinfo=None)


def test_same_event_delivered_concurrently_inserts_once(s3, conn, mysql_database):
    """Two Lambda instances get the same event at once: one row, the other a replay."""
    event = upload(s3, make_report())
    outcomes, errors = [], []
    barrier = threading.Barrier(4)

    def deliver():
        own = db.connect(settings(mysql_database))
        try:
            barrier.wait()
            summary = ingest.handle_event(event, own, s3)
            outcomes.append("accepted" if summary["accepted"] else "replayed")
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=deliver, name=f"lambda-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(outcomes) == ["accepted", "replayed", "replayed", "replayed"]
    assert len(temporary(conn)) == 1
    assert query(conn, "SELECT reports FROM devices") == [{"reports": 1}]
