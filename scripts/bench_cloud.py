#!/usr/bin/env python3
"""Cloud throughput: manifests ingested per second and rows promoted per second.

Runs against the local MariaDB (or RDS_* from the environment) in a scratch database that is
dropped afterwards, and a moto S3 server started here (or --endpoint-url). For each size of
`final` (default 10 000 and 100 000 rows, bulk-inserted with executemany) it measures:

* ingest: the handler on one S3 ObjectCreated event per manifest (GET the manifest, GET and
  hash both photos, insert into `temporary`), as Lambda calls it;
* promote: pending rows -> final/duplicate, half of them plates already in `final` nearby
  (so the duplicate look-up finds rows), in the promoter's default batches; --rounds times
  (the rows promoted in a round are removed before the next), the median reported.

Before measuring, it waits (at most --settle-s) for InnoDB to write out the dirty pages of
the bulk load: a database that gathered its finals over weeks has no such backlog, and with a
small buffer pool (MariaDB's default 128 MB) that backlog, not the code, would be measured.

Promotion must not slow down as `final` grows: its look-ups go through the plate match keys'
(match_key_i, confirmed_at) indexes.

usage: .venv/bin/python scripts/bench_cloud.py [--sizes 10000 100000] [--manifests 300]
       [--pending 3000] [--rounds 7] [--settle-s 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud_sync import db, ingest, promote  # noqa: E402
from cloud_sync.config import DbSettings  # noqa: E402
from cloud_sync.events import s3_event, s3_event_record  # noqa: E402
from gotcha_contracts.manifest_build import build_manifest, manifest_bytes  # noqa: E402
from gotcha_contracts.plate_grammar import PRIVATE_LETTERS  # noqa: E402
from gotcha_contracts.plate_identity import match_keys  # noqa: E402
from gotcha_contracts.s3_layout import manifest_key, photo_keys  # noqa: E402

BUCKET = "gotcha-bench"
BASE = (37.50, 127.00)


def plate(n: int) -> str:
    return f"{100 + n % 600}{PRIVATE_LETTERS[n % len(PRIVATE_LETTERS)]}{1000 + n % 9000}"


def scratch_db(args: argparse.Namespace) -> DbSettings:
    base = DbSettings(host=os.environ.get("RDS_HOST", "127.0.0.1"),
                      port=int(os.environ.get("RDS_PORT", "3306")),
                      user=os.environ.get("RDS_USERNAME", "root"),
                      password=os.environ.get("RDS_PASSWORD", ""),
                      database=f"gotcha_bench_{uuid.uuid4().hex[:8]}")
    db.init_db(base, create_database=True)
    return base


def drop_db(settings: DbSettings) -> None:
    conn = db.connect(settings, database=False)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db.quote_identifier(settings.database)}")
    conn.close()


def reset(conn) -> None:
    with conn.cursor() as cur:
        for table in ("final", "`temporary`", "plate_locks", "devices", "rejected_events"):
            cur.execute(f"TRUNCATE TABLE {table}")
    conn.commit()


def fill_final(conn, rows: int, now: datetime) -> float:
    """``rows`` finals over the last 30 days, plates drawn from rows/2 distinct plates."""
    rng = random.Random(rows)
    started = time.perf_counter()
    sql = promote.INSERT_FINAL_SQL
    chunk = []
    for i in range(rows):
        confirmed = db.db_time(now - timedelta(seconds=rng.uniform(0, 30 * 86400)))
        lat, lon = BASE[0] + rng.uniform(0, 0.2), BASE[1] + rng.uniform(0, 0.2)
        text = plate(rng.randrange(max(1, rows // 2)))
        chunk.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), 10_000_000 + i,
                      f"dev-{i % 50}", text, 0.9, "private",
                      "sidewalk", lat, lon, confirmed - timedelta(seconds=90), confirmed, 0.9,
                      BUCKET, "m", "p1", "a" * 64, "p2", "b" * 64, confirmed,
                      json.dumps([0.9] * len(text)), *match_keys(text)))
        if len(chunk) == 5000:
            with conn.cursor() as cur:
                cur.executemany(sql, chunk)
            conn.commit()
            chunk = []
    if chunk:
        with conn.cursor() as cur:
            cur.executemany(sql, chunk)
        conn.commit()
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE final")
        cur.fetchall()
    conn.commit()
    return time.perf_counter() - started


def upload_manifests(s3, count: int, now: datetime) -> list[dict]:
    """``count`` device-style reports in S3; returns one S3 event per manifest."""
    events = []
    for i in range(count):
        report_id = str(uuid.uuid4())
        confirmed = now - timedelta(minutes=10, seconds=i)
        photos = [os.urandom(2048) for _ in range(2)]
        keys = photo_keys("dev-bench", confirmed, report_id)
        for key, body in zip(keys, photos, strict=True):
            s3.put_object(Bucket=BUCKET, Key=key, Body=body,
                          Metadata={"sha256": hashlib.sha256(body).hexdigest()})
        doc = build_manifest(
            report_id=report_id, device_id="dev-bench", plate=plate(i), plate_confidence=0.9,
            zone="sidewalk", first_seen_at=confirmed - timedelta(seconds=90),
            confirmed_at=confirmed,
            photos=[{"sha256": hashlib.sha256(b).hexdigest(), "captured_at": t,
                     "location": {"lat": BASE[0], "lon": BASE[1], "accuracy_m": 5.0},
                     "plate_box": [1, 1, 5, 5], "vehicle_box": None,
                     "scene_embedding": [0.0] * 128}
                    for b, t in zip(photos, (confirmed - timedelta(seconds=90), confirmed),
                                    strict=True)],
            scene_score=0.9, models={"vehicle_detector": None, "plate_reader": "crnn",
                                     "scene_embedder": None})
        key = manifest_key("dev-bench", confirmed, report_id)
        body = manifest_bytes(doc)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        events.append(s3_event([s3_event_record(BUCKET, key, size=len(body),
                                                etag=hashlib.md5(body).hexdigest())]))
    return events


def bench_ingest(conn, s3, events: list[dict]) -> tuple[float, float]:
    """Seconds for the whole handler, and for its database part alone (same manifests)."""
    started = time.perf_counter()
    for event in events:
        summary = ingest.handle_event(event, conn, s3)
        assert summary["accepted"] == 1, summary
    total = time.perf_counter() - started
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM `temporary` ORDER BY id")
        rows = list(cur.fetchall())
        cur.execute("DELETE FROM `temporary`")
    conn.commit()
    started = time.perf_counter()
    for row in rows:
        row["report_id"] = str(uuid.uuid4())
        assert db.run_transaction(conn, lambda cur, r=row: ingest._store(cur, r)) == "accepted"
    return total, time.perf_counter() - started


def add_pending(conn, count: int, final_rows: int, now: datetime) -> None:
    """Pending rows: half are plates already in `final` at the same place (duplicates)."""
    with conn.cursor() as cur:  # recent finals: a duplicate of them is still reportable
        cur.execute("SELECT plate, lat, lon, confirmed_at FROM final WHERE confirmed_at >= %s "
                    "ORDER BY confirmed_at DESC LIMIT %s",
                    (db.db_time(now - timedelta(hours=18)), count // 2))
        existing = list(cur.fetchall())
    rows = []
    cols = ingest.INSERT_TEMPORARY_COLUMNS
    for i in range(count):
        if i % 2 == 0 and existing:
            src = existing[(i // 2) % len(existing)]
            p, lat, lon = src["plate"], src["lat"], src["lon"]
            confirmed = min(src["confirmed_at"] + timedelta(minutes=5),
                            db.db_time(now - timedelta(minutes=1)))
        else:
            p, lat, lon = plate(final_rows + i), BASE[0] - 0.3 - i * 1e-3, BASE[1]
            confirmed = db.db_time(now - timedelta(minutes=20))
        row = {"report_id": str(uuid.uuid4()), "source": "agent", "status": "pending",
               "reason": None, "device_id": "dev-bench", "plate": p, "plate_confidence": 0.9,
               "plate_use": "private", "zone": "sidewalk", "lat": lat, "lon": lon,
               "accuracy_m": 5.0, "first_seen_at": confirmed - timedelta(seconds=90),
               "confirmed_at": confirmed, "scene_score": 0.9, "photo_distance_m": 0.0,
               "bucket": BUCKET, "manifest_key": "m", "manifest_etag": None,
               "manifest_sha256": "c" * 64, "photo1_key": "p1", "photo1_sha256": "a" * 64,
               "photo2_key": "p2", "photo2_sha256": "b" * 64, "manifest": None,
               "received_at": db.db_time(now), "plate_char_confidences": json.dumps(
                   [0.9] * len(p)), "rules": '{"overrides":{},"version":1}'}
        rows.append([row[c] for c in cols])
    with conn.cursor() as cur:
        cur.executemany(ingest.INSERT_TEMPORARY_SQL, rows)
    conn.commit()


def dirty_pages(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
        row = cur.fetchone()
    conn.commit()
    return int(row["Value"]) if row else 0


def settle(conn, limit_s: float) -> tuple[float, int, int]:
    """Wait until InnoDB has written most of the bulk load's dirty pages (or ``limit_s``).

    Returns (seconds waited, dirty pages before, after). The server may be shared, so the
    target is a quarter of the pages dirty after the load, or 500, whichever is more.
    """
    started, before = time.perf_counter(), dirty_pages(conn)
    target, now = max(500, before // 4), before
    while now > target and time.perf_counter() - started < limit_s:
        time.sleep(2)
        now = dirty_pages(conn)
    return time.perf_counter() - started, before, now


def bench_promote(conn, pending: int, size: int, now: datetime, rounds: int) -> list:
    """``rounds`` promotions of ``pending`` rows, each undone before the next."""
    outcomes = []
    for _ in range(rounds):
        add_pending(conn, pending, size, now)
        outcomes.append(promote.promote_pending(conn))
        with conn.cursor() as cur:  # back to `size` finals for the next round
            cur.execute("DELETE f FROM final f JOIN `temporary` t ON t.id = f.temporary_id")
            cur.execute("DELETE FROM `temporary`")
        conn.commit()
    return outcomes


def dedup_plan_rows(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT plate, confirmed_at FROM final ORDER BY id LIMIT 1")
        row = cur.fetchone()
        window = (row["confirmed_at"] - timedelta(hours=12), row["confirmed_at"] + timedelta(
            hours=12))
        cur.execute("EXPLAIN " + promote.NEARBY_FINALS_SQL,
                    [v for key in match_keys(row["plate"]) for v in (key, *window)])
        plans = [p for p in cur.fetchall() if p["table"] == "final"]
    conn.commit()
    return sum(int(p["rows"]) for p in plans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="rows already in `final` for each run")
    parser.add_argument("--manifests", type=int, default=300, help="manifests to ingest")
    parser.add_argument("--pending", type=int, default=3000, help="pending rows to promote")
    parser.add_argument("--rounds", type=int, default=7, help="promotions per size (median)")
    parser.add_argument("--settle-s", type=float, default=60.0,
                        help="longest wait for the bulk load's dirty pages to be written")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: start moto)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines

    server = None
    endpoint = args.endpoint_url
    if endpoint is None:
        import socket

        from moto.server import ThreadedMotoServer

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
            os.environ.setdefault(key, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)

    settings = scratch_db(args)
    conn = db.connect(settings)
    results = []
    try:
        for size in args.sizes:
            reset(conn)
            now = datetime.now(UTC)
            fill_s = fill_final(conn, size, now)
            settled_s, dirty_before, dirty_after = settle(conn, args.settle_s)
            events = upload_manifests(s3, args.manifests, now)
            ingest_s, ingest_db_s = bench_ingest(conn, s3, events)
            with conn.cursor() as cur:
                cur.execute("DELETE FROM `temporary`")
            conn.commit()
            outcomes = bench_promote(conn, args.pending, size, now, args.rounds)
            rates = [o.processed / o.seconds for o in outcomes]
            outcome = sorted(outcomes, key=lambda o: o.processed / o.seconds)[len(outcomes) // 2]
            results.append({
                "settle_s": round(settled_s, 1), "dirty_pages": [dirty_before, dirty_after],
                "final_rows_before": size, "bulk_insert_s": round(fill_s, 2),
                "bulk_insert_rows_per_s": round(size / fill_s),
                "manifests": args.manifests, "ingest_s": round(ingest_s, 3),
                "ingest_per_s": round(args.manifests / ingest_s, 1),
                "ingest_db_only_per_s": round(args.manifests / ingest_db_s, 1),
                "promoted": outcome.processed, "promote_final": outcome.final,
                "promote_duplicate": outcome.duplicate, "promote_rejected": outcome.rejected,
                "promote_s": round(outcome.seconds, 3),
                "promote_per_s": round(outcome.processed / outcome.seconds, 1),
                "promote_per_s_rounds": [round(r, 1) for r in rates],
                "dedup_lookup_plan_rows": dedup_plan_rows(conn),
            })
    finally:
        conn.close()
        drop_db(settings)
        if server is not None:
            server.stop()

    header = ("rows in final", "ingest/s (moto S3)", "ingest DB part/s", "promote/s",
              "promoted (final+dup)", "dedup look-up rows (EXPLAIN)", "bulk insert rows/s")
    table = [header] + [(f"{r['final_rows_before']:,}", f"{r['ingest_per_s']:.1f}",
                         f"{r['ingest_db_only_per_s']:.1f}",
                         f"{r['promote_per_s']:.1f}",
                         f"{r['promoted']} ({r['promote_final']}+{r['promote_duplicate']})",
                         str(r["dedup_lookup_plan_rows"]), f"{r['bulk_insert_rows_per_s']:,}")
                        for r in results]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    report = {"database": "MariaDB/MySQL at " + f"{settings.host}:{settings.port}",
              "s3": "moto (local)" if server is not None else endpoint,
              "cpu_count": os.cpu_count(), "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
