"""The promoter on the local MariaDB: rules, cross-device de-duplication, concurrency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cloud_helpers import make_report, query, run_at_once, upload

from cloud_sync import ingest, promote
from gotcha_contracts.plate_identity import match_keys
from gotcha_contracts.rules import DEFAULT_RULES


def ingest_reports(s3, conn, reports):
    for report in reports:
        assert ingest.handle_event(upload(s3, report), conn, s3)["accepted"] == 1


def statuses(conn):
    return {r["report_id"]: r for r in query(conn, "SELECT * FROM `temporary`")}


def test_pending_report_becomes_final(s3, conn):
    report = make_report(plate="서울12가3456", zone="hydrant")
    ingest_reports(s3, conn, [report])
    result = promote.promote_pending(conn)
    assert (result.final, result.duplicate, result.rejected) == (1, 0, 0)
    [final] = query(conn, "SELECT * FROM final")
    assert (final["report_id"], final["plate"], final["zone"], final["device_id"]) == (
        report.report_id, "서울12가3456", "hydrant", "dev-01")
    assert final["photo2_key"].endswith(f"{report.report_id}/photo-2.jpg")
    row = statuses(conn)[report.report_id]
    assert row["status"] == "final" and row["final_id"] == final["id"]
    assert promote.promote_pending(conn).processed == 0  # nothing left, nothing twice


def test_plate_reported_by_two_devices_gives_one_final_and_one_duplicate(s3, conn):
    t = datetime.now(UTC) - timedelta(hours=3)
    first = make_report(device_id="dev-a", plate="123가4567", confirmed_at=t)
    second = make_report(device_id="dev-b", plate="123가4567", confirmed_at=t + timedelta(
        minutes=7), where=(37.56650, 126.97800))  # ~4 m away
    elsewhere = make_report(device_id="dev-c", plate="123가4567", confirmed_at=t + timedelta(
        minutes=9), where=(37.57000, 126.97800))  # ~390 m away: another violation
    ingest_reports(s3, conn, [second, first, elsewhere])  # arrival order differs from time
    result = promote.promote_pending(conn)
    assert (result.final, result.duplicate) == (2, 1)
    rows = statuses(conn)
    assert rows[first.report_id]["status"] == "final"  # the earlier one wins in a batch
    assert rows[second.report_id]["status"] == "duplicate"
    assert rows[second.report_id]["final_id"] == rows[first.report_id]["final_id"]
    assert rows[elsewhere.report_id]["status"] == "final"
    finals = {r["report_id"]: r for r in query(conn, "SELECT * FROM final")}
    assert finals[first.report_id]["duplicate_count"] == 1
    # a later batch still finds the earlier final (not only within one batch)
    late = make_report(device_id="dev-d", plate="123가4567", confirmed_at=t + timedelta(hours=2))
    ingest_reports(s3, conn, [late])
    assert promote.promote_pending(conn).duplicate == 1
    assert statuses(conn)[late.report_id]["final_id"] == finals[first.report_id]["id"]


def test_outside_the_dedup_window_is_a_new_final(s3, conn):
    t = datetime.now(UTC) - timedelta(hours=20)
    reports = [make_report(device_id="dev-a", confirmed_at=t),
               make_report(device_id="dev-b", confirmed_at=t + timedelta(
                   seconds=DEFAULT_RULES.dedup_window_s + 60))]
    ingest_reports(s3, conn, reports)
    assert promote.promote_pending(conn).final == 2


@pytest.mark.parametrize("kwargs, reason", [
    ({"interval_s": 20}, "shorter than the 60 s minimum"),
    ({"zone": "other", "interval_s": 120}, "shorter than the 300 s minimum"),
    ({"scene_score": 0.2}, "scene mismatch"),
    ({"confirmed_at": datetime.now(UTC) - timedelta(days=4)}, "reporting deadline"),
])
def test_rule_failures_are_rejected_with_reason(s3, conn, kwargs, reason):
    report = make_report(**kwargs)
    ingest_reports(s3, conn, [report])
    assert promote.promote_pending(conn).rejected == 1
    row = statuses(conn)[report.report_id]
    assert row["status"] == "rejected" and reason in row["reason"]
    assert query(conn, "SELECT * FROM final") == []


def test_batches_and_limits(s3, conn):
    ingest_reports(s3, conn, [make_report(plate=f"12가{1000 + i}") for i in range(5)])
    result = promote.promote_pending(conn, batch_size=2, max_batches=2)
    assert (result.final, result.batches) == (4, 2)
    assert promote.promote_pending(conn, batch_size=2).final == 1


def test_two_promoters_at_once_promote_each_row_exactly_once(s3, conn, mysql_database):
    """Four threads, separate connections, small batches; same plates across devices."""
    t = datetime.now(UTC) - timedelta(hours=1)
    reports = []
    for i in range(60):
        plate = f"{100 + i % 20}가{2000 + i % 20}"  # 20 plates, each seen by 3 devices
        reports.append(make_report(device_id=f"dev-{i // 20}", plate=plate,
                                   confirmed_at=t + timedelta(seconds=i)))
    ingest_reports(s3, conn, reports)
    results = run_at_once(mysql_database, 4,
                          lambda own: promote.promote_pending(own, batch_size=3))
    assert sum(r.final for r in results) == 20
    assert sum(r.duplicate for r in results) == 40
    assert sum(1 for r in results if r.processed) >= 2  # they really shared the work
    finals = query(conn, "SELECT plate, COUNT(*) AS n, SUM(duplicate_count) AS d FROM final "
                         "GROUP BY plate")
    assert len(finals) == 20 and all(r["n"] == 1 and r["d"] == 2 for r in finals)
    counts = query(conn, "SELECT status, COUNT(*) AS n FROM `temporary` GROUP BY status")
    assert {r["status"]: r["n"] for r in counts} == {"final": 20, "duplicate": 40}


def test_duplicate_lookup_and_claim_use_indexes(conn):
    """EXPLAIN shows the promoter never scans `final` or `temporary`, and that its duplicate
    look-up reads the match key indexes alone."""
    window = (datetime(2026, 1, 1), datetime(2026, 1, 2))
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + promote.NEARBY_FINALS_SQL,
                    [v for key in match_keys("12가3456") for v in (key, *window)])
        plans = [p for p in cur.fetchall() if p["table"] == "final"]
        assert [p["key"] for p in plans] == [f"final_match_{i}_time_ix" for i in (1, 2, 3)]
        assert all(p["type"] == "range" for p in plans)
        assert all("Using index" in p["Extra"].split("; ") for p in plans)  # no table reads
        cur.execute("EXPLAIN " + promote.CLAIM_SQL.replace(" FOR UPDATE SKIP LOCKED", ""),
                    (200,))
        [plan] = cur.fetchall()
        assert plan["key"] == "temporary_status_id_ix" and plan["type"] in ("ref", "range")
    conn.commit()
