"""The SQL files on the local MariaDB: re-runnable, zones agree with the shared rules, views."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloud_helpers import query, settings

from cloud_sync import db, ingest, promote
from gotcha_contracts.rules import DEFAULT_RULES, RESIDENT_REPORT_ZONES, ZONE_RULES, ZONES


def test_init_db_is_rerunnable_and_keeps_data(conn, mysql_database):
    with db.transaction(conn) as cur:
        cur.execute("INSERT INTO rejected_events (event_hash, bucket, object_key, reason, "
                    "received_at) VALUES (%s, 'b', 'k', 'r', %s)", ("0" * 64, db.utc_now()))
    assert db.init_db(settings(mysql_database)) == db.init_db(settings(mysql_database))
    assert len(query(conn, "SELECT * FROM rejected_events")) == 1
    assert query(conn, "SELECT value FROM schema_info WHERE name = 'schema_version'") == [
        {"value": "1"}]


def test_zones_agree_with_the_shared_rules(conn):
    rows = {r["zone"]: r for r in query(conn, "SELECT * FROM zones")}
    assert set(rows) == set(ZONES)
    for zone, rule in ZONE_RULES.items():
        assert rows[zone]["min_interval_s"] == DEFAULT_RULES.min_interval(zone) == \
            rule.min_interval_s
        assert rows[zone]["radius_m"] == DEFAULT_RULES.radius_m
        assert rows[zone]["description"] == rule.description
        assert rows[zone]["resident_reportable"] == (zone in RESIDENT_REPORT_ZONES)


def test_hangul_plate_round_trips_byte_exact(conn):
    with db.transaction(conn) as cur:
        for plate in ("서울12가3456", "외교001075"):
            cur.execute("INSERT INTO plate_locks (plate, locked_at) VALUES (%s, %s)",
                        (plate, db.utc_now()))
    rows = query(conn, "SELECT plate FROM plate_locks WHERE plate = %s", ("서울12가3456",))
    assert rows == [{"plate": "서울12가3456"}]
    # utf8mb4_bin: a decomposed (NFD) spelling is another plate, never silently equal
    import unicodedata
    nfd = unicodedata.normalize("NFD", "서울12가3456")
    assert query(conn, "SELECT plate FROM plate_locks WHERE plate = %s", (nfd,)) == []


def test_status_check_constraint_holds(conn):
    import pymysql

    with pytest.raises(pymysql.err.MySQLError), db.transaction(conn) as cur:
        cur.execute("INSERT INTO `temporary` (report_id, status, device_id, bucket, "
                    "manifest_key, received_at) VALUES (%s, 'bogus', 'd', 'b', 'k', %s)",
                    ("0" * 36, db.utc_now()))


def _final(cur, i, plate, zone, device, confirmed):
    cur.execute(
        "INSERT INTO final (report_id, temporary_id, device_id, plate, zone, lat, lon, "
        "first_seen_at, confirmed_at, bucket, manifest_key, photo1_key, photo1_sha256, "
        "photo2_key, photo2_sha256, promoted_at, duplicate_count) VALUES (%s, %s, %s, %s, %s, "
        "37.5, 127.0, %s, %s, 'b', 'm', 'p1', %s, 'p2', %s, %s, %s)",
        (f"{i:036d}", i, device, plate, zone, confirmed - timedelta(minutes=2), confirmed,
         "a" * 64, "b" * 64, confirmed, i % 2))


def test_dashboard_views(conn):
    base = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # 23:30 KST on the 25th
    with db.transaction(conn) as cur:
        _final(cur, 1, "12가3456", "hydrant", "dev-a", db.db_time(base))
        _final(cur, 2, "12가3456", "bus_stop", "dev-b", db.db_time(base + timedelta(hours=1)))
        _final(cur, 3, "34나5678", "hydrant", "dev-a", db.db_time(base + timedelta(hours=2)))
        cur.execute("INSERT INTO `temporary` (report_id, status, device_id, bucket, "
                    "manifest_key, received_at) VALUES (%s, 'duplicate', 'dev-a', 'b', 'k', %s)",
                    ("9" * 36, db.utc_now()))
    days = query(conn, "SELECT * FROM reports_per_day ORDER BY day_kst")
    assert [(str(r["day_kst"]), r["reports"]) for r in days] == [("2026-11-25", 1),
                                                                 ("2026-11-26", 2)]
    zones = {r["zone"]: r for r in query(conn, "SELECT * FROM reports_per_zone")}
    assert zones["hydrant"]["reports"] == 2 and zones["hydrant"]["name_ko"] == "소화전"
    devices = {r["device_id"]: r for r in query(conn, "SELECT * FROM reports_per_device")}
    assert devices["dev-a"]["duplicate"] == 1 and devices["dev-a"]["received"] == 1
    offenders = query(conn, "SELECT * FROM repeat_offenders")
    assert [(r["plate"], r["reports"], r["zones"]) for r in offenders] == [("12가3456", 2, 2)]


@pytest.mark.parametrize("text, statements", [
    ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("-- a; comment\nSELECT ';' ; SELECT `a;b`", ["SELECT ';'", "SELECT `a;b`"]),
    ("INSERT INTO t VALUES ('it''s; fine', 'back\\'slash;')", [
        "INSERT INTO t VALUES ('it''s; fine', 'back\\'slash;')"]),
    ("SELECT 1 -- trailing\n;", ["SELECT 1"]),
])
def test_split_sql(text, statements):
    assert db.split_sql(text) == statements


def test_database_name_is_quoted_not_executed(mariadb_server):
    """--create-database with a hostile name creates exactly that (odd) database, nothing else."""
    import uuid

    name = f"gotcha_t`; DROP DATABASE mysql; -- {uuid.uuid4().hex[:6]}"
    s = db.DbSettings(host=mariadb_server["host"], port=mariadb_server["port"],
                      user=mariadb_server["user"], password=mariadb_server["password"],
                      database=name)
    try:
        db.init_db(s, create_database=True)
        conn = db.connect(s)
        assert len(query(conn, "SELECT * FROM zones")) == 7
        conn.close()
        admin = db.connect(s, database=False)
        names = {r["Database"] for r in query(admin, "SHOW DATABASES")}
        assert name in names and "mysql" in names
    finally:
        admin = db.connect(s, database=False)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db.quote_identifier(name)}")
        admin.close()


# Syntax only one of MySQL 8 / MariaDB 10.11 has (tests here run on MariaDB only).
ONE_SIDED = {
    r"\bRETURNING\b": "MariaDB only",
    r"CREATE\s+OR\s+REPLACE\s+TABLE": "MariaDB only",
    r"CREATE\s+(UNIQUE\s+)?INDEX\s+IF\s+NOT\s+EXISTS": "MariaDB only",
    r"\bSEQUENCE\b": "MariaDB only",
    r"\bINET6\b|\bUUID\s+(NOT\s+)?NULL|\bUUID\s*,": "MariaDB only column types",
    r"utf8mb4_0900": "MySQL 8 only collation",
    r"\)\s+AS\s+new\b": "MySQL 8.0.19+ row alias",
    r"\bLATERAL\b|\bINVISIBLE\b": "MySQL 8 only",
    r"\bVALUES\s*\(\s*\w+\s*\)\s*(,|$)": "VALUES() in ON DUPLICATE KEY UPDATE (MySQL deprecates)",
}


def _sql_texts():
    texts = {p.name: p.read_text(encoding="utf-8") for p in db.SQL_DIR.glob("*.sql")}
    for module in (ingest, promote):
        source = Path(module.__file__).read_text(encoding="utf-8")
        texts[module.__name__] = "\n".join(re.findall(r'"([^"\n]*)"', source))
    return texts


@pytest.mark.parametrize("pattern", sorted(ONE_SIDED))
def test_sql_avoids_one_sided_syntax(pattern):
    for name, text in _sql_texts().items():
        no_comments = re.sub(r"--[^\n]*", "", text)
        match = re.search(pattern, no_comments, re.IGNORECASE | re.MULTILINE)
        assert match is None, f"{name}: {match.group(0)!r} is {ONE_SIDED[pattern]}"
