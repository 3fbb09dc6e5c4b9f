"""The device store on real SQLite files: schema, photos by sha256, outbox, cap, faults."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import StoreConfig
from edge_agent.errors import StoreError
from edge_agent.results import Box, GeoPoint
from edge_agent.store.migrations import SCHEMA_VERSION, current_version
from edge_agent.store.photos import sha256_hex
from edge_agent.store.records import Sighting
from edge_agent.store.store import Store

T0 = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def store_config(tmp_path: Path, **extra: object) -> StoreConfig:
    return StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos", **extra)


def sighting(sha: str, t: datetime, plate: str = "12가3456") -> Sighting:
    return Sighting(device_id="dev-a", photo_sha256=sha, captured_at=t, plate=plate,
                    plate_raw=plate, char_confidences=(0.95,) * len(plate),
                    plate_box=Box(10, 10, 60, 25), location=GeoPoint(37.5665, 126.9780, 5.0),
                    vehicle_box=Box(0, 0, 100, 80), scene_signature=b"sig")


def test_open_creates_wal_schema_and_is_idempotent(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    with Store.open(cfg) as store:
        assert current_version(store.db) == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert {"photos", "sightings", "reports", "outbox"} <= set(store.db.table_names())
    with Store.open(cfg) as store:  # reopening migrates nothing and keeps the version
        assert current_version(store.db) == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    Store.open(cfg).close()
    conn = sqlite3.connect(cfg.path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this gotcha"):
        Store.open(cfg)


def test_photo_is_content_addressed_and_durable(tmp_path: Path) -> None:
    with Store.open(store_config(tmp_path)) as store:
        data = b"\xff\xd8 fake jpeg body \xff\xd9"
        sha = store.put_photo(data)
        assert sha == sha256_hex(data)
        path = store.photos.path(sha)
        assert path.relative_to(tmp_path / "photos").as_posix() == f"{sha[:2]}/{sha[2:4]}/{sha}.jpg"
        assert path.read_bytes() == data
        assert store.put_photo(data) == sha  # twice: same file, no temporaries left
        assert not list(path.parent.glob(".tmp-*"))


def test_sighting_row_needs_its_photo_first(tmp_path: Path) -> None:
    with Store.open(store_config(tmp_path)) as store:
        with pytest.raises(StoreError, match="stored before"), store.transaction():
            store.insert_sighting(sighting("a" * 64, T0), "unmatched")
        assert store.db["photos"].count == 0


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Store.open(store_config(tmp_path)) as store:
        sha = store.put_photo(b"photo-1")
        with pytest.raises(RuntimeError), store.transaction():
            sid = store.insert_sighting(sighting(sha, T0), "first")
            store.create_candidate(store.sighting(sid), sid, "sidewalk", T0 + timedelta(hours=1))
            raise RuntimeError("killed half-way")
        assert store.db["sightings"].count == 0
        assert store.db["reports"].count == 0


def confirmed_report(store: Store) -> str:
    sha1, sha2 = store.put_photo(b"photo-1"), store.put_photo(b"photo-2")
    with store.transaction():
        sid1 = store.insert_sighting(sighting(sha1, T0), "first")
        rid = store.create_candidate(store.sighting(sid1), sid1, "sidewalk",
                                     T0 + timedelta(hours=2))
        sid2 = store.insert_sighting(sighting(sha2, T0 + timedelta(seconds=70)), "confirming",
                                     rid)
        store.confirm(rid, store.sighting(sid1), store.sighting(sid2), "12가3456", None,
                      T0 + timedelta(days=1), 0.9, "same scene", 2.0)
    return rid


def test_confirm_writes_outbox_and_refuses_twice(tmp_path: Path) -> None:
    with Store.open(store_config(tmp_path), clock=lambda: T0) as store:
        rid = confirmed_report(store)
        report = store.report(rid)
        assert report.state == "confirmed"
        assert report.confirmed_at == T0 + timedelta(seconds=70)
        assert [i.report_id for i in store.pending(now=T0)] == [rid]
        first, second = store.report_sightings(rid)
        with pytest.raises(StoreError, match="not a candidate"), store.transaction():
            store.confirm(rid, first, second, "12가3456", None, T0, 0.9, "again", 1.0)
        assert store.db["outbox"].count == 1


def test_outbox_retry_and_upload(tmp_path: Path) -> None:
    with Store.open(store_config(tmp_path), clock=lambda: T0) as store:
        rid = confirmed_report(store)
        store.mark_uploading(rid)
        store.mark_failed(rid, "network down", T0 + timedelta(minutes=5))
        assert store.pending(now=T0) == []
        item = store.pending(now=T0 + timedelta(minutes=6))[0]
        assert (item.attempts, item.last_error) == (2, "network down")
        store.mark_uploaded(rid)
        assert store.report(rid).state == "uploaded"
        assert store.pending(now=T0 + timedelta(days=1)) == []
        assert store.outbox_depth() == 0


def test_interrupted_upload_is_queued_again_at_start(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    with Store.open(cfg, clock=lambda: T0) as store:
        rid = confirmed_report(store)
        store.mark_uploading(rid)
    with Store.open(cfg, clock=lambda: T0) as store:
        assert store.outbox_item(rid).state == "pending"  # type: ignore[union-attr]


def test_cap_evicts_oldest_unneeded_and_keeps_open_reports(tmp_path: Path) -> None:
    clock = [T0]
    cfg = store_config(tmp_path, max_photo_bytes=10_000_000, expired_retention_h=1.0)
    with Store.open(cfg, clock=lambda: clock[0]) as store:
        rid = confirmed_report(store)  # 2 photos an open (confirmed) report needs
        loose = []
        for i in range(3):  # sightings with no report, oldest first
            clock[0] = T0 + timedelta(minutes=i)
            sha = store.put_photo(bytes([i]) * 4_000_000)
            with store.transaction():
                store.insert_sighting(sighting(sha, T0, plate=f"1{i}가3456"), "unmatched")
            loose.append(sha)
        freed = store.evict()
        assert freed == 4_000_000  # 12 MB + 14 bytes over a 10 MB cap: the oldest goes
        assert not store.photos.path(loose[0]).exists()
        assert all(store.photos.path(s).exists() for s in loose[1:])
        assert store.photo_bytes() <= cfg.max_photo_bytes
        for s in store.report_sightings(rid):
            assert store.photos.verify(s.photo_sha256)


def test_expired_candidate_photos_kept_for_retention_then_removed(tmp_path: Path) -> None:
    clock = [T0]
    cfg = store_config(tmp_path, expired_retention_h=2.0)
    with Store.open(cfg, clock=lambda: clock[0]) as store:
        sha = store.put_photo(b"expired evidence")
        with store.transaction():
            sid = store.insert_sighting(sighting(sha, T0), "first")
            rid = store.create_candidate(store.sighting(sid), sid, "sidewalk", T0)
            assert store.expire_due(T0 + timedelta(seconds=1)) == [rid]
        clock[0] = T0 + timedelta(hours=1)
        assert store.evict() == 0 and store.photos.path(sha).exists()
        clock[0] = T0 + timedelta(hours=3)
        assert store.evict() == len(b"expired evidence")
        assert not store.photos.path(sha).exists()


def test_integrity_check_expires_candidate_with_lost_photo(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    with Store.open(cfg, clock=lambda: T0) as store:
        sha = store.put_photo(b"candidate photo")
        with store.transaction():
            sid = store.insert_sighting(sighting(sha, T0), "first")
            rid = store.create_candidate(store.sighting(sid), sid, "sidewalk",
                                         T0 + timedelta(hours=2))
    (tmp_path / "photos" / sha[:2] / sha[2:4] / f"{sha}.jpg").unlink()
    with Store.open(cfg, clock=lambda: T0) as store:
        assert store.report(rid).state == "expired"
        assert "missing" in (store.report(rid).expired_reason or "")


def test_integrity_check_refuses_confirmed_report_with_altered_photo(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    with Store.open(cfg, clock=lambda: T0) as store:
        rid = confirmed_report(store)
        path = store.photos.path(store.report_sightings(rid)[0].photo_sha256)
    path.write_bytes(b"tampered")
    with pytest.raises(StoreError, match="lost its evidence photo"):
        Store.open(cfg)


def test_damaged_database_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = store_config(tmp_path)
    cfg.path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"g\.db"):
        Store.open(cfg)


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    """Another process holds the write lock: retries, then a one-line StoreError."""
    cfg = store_config(tmp_path)
    Store.open(cfg).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            c = sqlite3.connect({str(cfg.path)!r}, isolation_level=None)
            c.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="database is locked by another process"):
            Store.open(cfg, busy_timeout_s=0.2)
    finally:
        holder.kill()
        holder.wait()


def test_full_database_rolls_back_with_clear_error(tmp_path: Path) -> None:
    """SQLite's own 'database or disk is full' (page limit reached) leaves no partial state."""
    with Store.open(store_config(tmp_path), clock=lambda: T0) as store:
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages + 1}")
        sha = store.put_photo(b"p")
        big = Sighting(**{**sighting(sha, T0).__dict__, "scene_signature": b"x" * 200_000})
        with pytest.raises(StoreError, match="disk full"), store.transaction():
            store.insert_sighting(big, "unmatched")
        assert store.db["sightings"].count == 0
        assert store.db["photos"].count == 0


def test_full_disk_while_writing_photo(tmp_path: Path) -> None:
    """The file system refuses the photo (EFBIG under a file-size limit, as ENOSPC would):
    a clear StoreError and no half-written photo left behind."""
    store = Store.open(store_config(tmp_path))
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
        with pytest.raises(StoreError, match="disk full"):
            store.put_photo(os.urandom(5000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    leftovers = [p for p in (tmp_path / "photos").rglob("*") if p.is_file()]
    assert leftovers == []
    store.close()
