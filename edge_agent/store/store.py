"""The device store: photos, sightings, reports and the upload outbox in one SQLite file.

Row-level operations here assume the caller holds a transaction (``with store.transaction():``)
so the lifecycle can make one state change (a sighting, its decision, an outbox row) atomic.
Reads and the outbox calls open their own transactions.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from edge_agent.config import StoreConfig
from edge_agent.errors import StoreError
from edge_agent.store.db import BUSY_TIMEOUT_S, connect, store_error, transaction
from edge_agent.store.health import refuse_missing_database, refuse_unmigrated
from edge_agent.store.migrations import migrate
from edge_agent.store.photos import PhotoFiles, relative_path
from edge_agent.store.records import (
    REPORT_STATES,
    OutboxItem,
    Report,
    Sighting,
    SightingRole,
    box_json,
    boxes_json,
    to_iso,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RETENTION_SWEEP_EVERY = timedelta(minutes=10)  # under the cap, retention runs this often


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Open with :meth:`open`; every state change goes through :meth:`transaction`."""

    def __init__(self, db: sqlite_utils.Database, db_path: Path, photos: PhotoFiles,
                 max_photo_bytes: int, expired_retention_h: float,
                 clock: Clock = utc_now) -> None:
        self.db = db
        self.db_path = db_path
        self.photos = photos
        self.max_photo_bytes = max_photo_bytes
        self.expired_retention = timedelta(hours=expired_retention_h)
        self.clock = clock
        self._last_sweep: datetime | None = None

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, config: StoreConfig, check: bool = True, clock: Clock = utc_now,
             busy_timeout_s: float = BUSY_TIMEOUT_S, rebuilding: bool = False) -> Store:
        """Open (creating) the store, migrate it, and check it unless ``check`` is False.
        A lost, emptied or damaged database next to stored photos is a DamagedStoreError
        (``health``); ``rebuilding`` (``gotcha store recover``) makes a new one there."""
        if not rebuilding:
            refuse_missing_database(config.path, config.photo_dir)
        db = connect(config.path, busy_timeout_s)
        store = cls(db, config.path, PhotoFiles(config.photo_dir), config.max_photo_bytes,
                    config.expired_retention_h, clock)
        try:
            if not rebuilding:
                refuse_unmigrated(db, config.path, config.photo_dir)
            migrate(db, config.path)
            if check:
                store.check_integrity()
        except BaseException as exc:
            store.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise store_error(exc, config.path) from exc
            raise
        return store

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with transaction(self.db, self.db_path):
            yield

    # ----------------------------------------------------------------- checks
    def check_integrity(self) -> list[str]:
        """Start-up check (see edge_agent.store.startup_check); the repairs it made."""
        from edge_agent.store.startup_check import check_at_start

        return check_at_start(self)

    # ----------------------------------------------------------------- photos
    def put_photo(self, data: bytes) -> str:
        """Write the photo file durably (before any row names it); returns its sha256."""
        return self.photos.put(data)

    def _photo_row(self, sha: str, size: int, captured_at: datetime | None) -> None:
        self.db.execute(
            "INSERT INTO photos (sha256, path, bytes, captured_at, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET evicted_at = NULL",
            (sha, relative_path(sha), size, to_iso(captured_at) if captured_at else None,
             to_iso(self.clock())))

    # ----------------------------------------------------------------- sightings
    def find_sighting(self, device_id: str, sha: str, plate: str) -> Sighting | None:
        rows = list(self.db.query(
            "SELECT * FROM sightings WHERE device_id = ? AND photo_sha256 = ? AND plate = ?",
            (device_id, sha, plate)))
        return Sighting.from_row(rows[0]) if rows else None

    def sighting(self, sighting_id: int) -> Sighting:
        rows = list(self.db.query("SELECT * FROM sightings WHERE id = ?", (sighting_id,)))
        if not rows:
            raise StoreError(f"no sighting {sighting_id} in {self.db_path}")
        return Sighting.from_row(rows[0])

    def insert_sighting(self, s: Sighting, role: SightingRole, report_id: str | None = None,
                        note: str | None = None) -> int:
        """Insert the photo row (its file must already be stored) and the sighting row."""
        path = self.photos.path(s.photo_sha256)
        if not path.exists():
            raise StoreError(f"photo {s.photo_sha256[:12]} must be stored before its sighting")
        self._photo_row(s.photo_sha256, path.stat().st_size, s.captured_at)
        loc = s.location
        cursor = self.db.execute(
            "INSERT INTO sightings (device_id, photo_sha256, captured_at, captured_ts, "
            "time_source, lat, lon, accuracy_m, plate, plate_raw, plate_confidence, "
            "char_confidences, vehicle_box, plate_box, scene_signature, report_id, role, note, "
            "created_at, people_boxes, other_plate_boxes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s.device_id, s.photo_sha256, to_iso(s.captured_at), s.ts, s.time_source,
             loc.lat if loc else None, loc.lon if loc else None, loc.accuracy_m if loc else None,
             s.plate, s.plate_raw, s.plate_confidence, json.dumps(list(s.char_confidences)),
             box_json(s.vehicle_box), box_json(s.plate_box), s.scene_signature, report_id, role,
             note, to_iso(self.clock()), boxes_json(s.people_boxes),
             boxes_json(s.other_plate_boxes)))
        return int(cursor.lastrowid)

    def set_sighting_role(self, sighting_id: int, role: SightingRole,
                          report_id: str | None) -> None:
        self.db.execute("UPDATE sightings SET role = ?, report_id = ? WHERE id = ?",
                        (role, report_id, sighting_id))

    def report_sightings(self, report_id: str) -> list[Sighting]:
        return [Sighting.from_row(r) for r in self.db.query(
            "SELECT * FROM sightings WHERE report_id = ? ORDER BY captured_ts, id", (report_id,))]

    # ----------------------------------------------------------------- reports
    def create_candidate(self, first: Sighting, first_id: int, zone: str,
                         expires_at: datetime) -> str:
        """A new candidate from its first sighting (which must carry a location)."""
        assert first.location is not None
        report_id = str(uuid.uuid4())
        now = to_iso(self.clock())
        self.db.execute(
            "INSERT INTO reports (report_id, device_id, plate, zone, state, lat, lon, "
            "first_sighting_id, first_seen_at, first_seen_ts, expires_at, expires_ts, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (report_id, first.device_id, first.plate, zone, first.location.lat,
             first.location.lon, first_id, to_iso(first.captured_at), first.ts,
             to_iso(expires_at), expires_at.timestamp(), now, now))
        self.set_sighting_role(first_id, "first", report_id)
        return report_id

    def confirm(self, report_id: str, first: Sighting, confirming: Sighting, plate: str,
                plate_alt: str | None, deadline: datetime, scene_score: float,
                scene_reason: str, distance_m: float,
                models: dict[str, str | None] | None = None) -> None:
        """candidate -> confirmed plus its outbox row; ``first`` is the earlier photo.

        The UPDATE only matches a candidate, so a report is never confirmed twice, and the
        outbox row is written in the same transaction, so no confirmed report lacks one.
        """
        assert first.id is not None and confirming.id is not None
        assert first.location is not None
        now = to_iso(self.clock())
        changed = self.db.execute(
            "UPDATE reports SET state = 'confirmed', plate = ?, plate_alt = ?, "
            "first_sighting_id = ?, confirming_sighting_id = ?, first_seen_at = ?, "
            "first_seen_ts = ?, confirmed_at = ?, deadline = ?, lat = ?, lon = ?, "
            "scene_score = ?, scene_reason = ?, distance_m = ?, models = ?, updated_at = ? "
            "WHERE report_id = ? AND state = 'candidate'",
            (plate, plate_alt, first.id, confirming.id, to_iso(first.captured_at), first.ts,
             to_iso(confirming.captured_at), to_iso(deadline), first.location.lat,
             first.location.lon, scene_score, scene_reason, distance_m,
             json.dumps(models or {}), now, report_id)).rowcount
        if changed != 1:
            raise StoreError(f"report {report_id} is not a candidate any more; not confirming "
                             "it twice")
        self.set_sighting_role(first.id, "first", report_id)
        self.set_sighting_role(confirming.id, "confirming", report_id)
        self.db.execute(
            "INSERT INTO outbox (report_id, state, attempts, next_attempt_at, created_at, "
            "updated_at) VALUES (?, 'pending', 0, ?, ?, ?)", (report_id, now, now, now))

    def expire(self, report_id: str, reason: str) -> bool:
        changed = self.db.execute(
            "UPDATE reports SET state = 'expired', expired_reason = ?, updated_at = ? "
            "WHERE report_id = ? AND state = 'candidate'",
            (reason, to_iso(self.clock()), report_id)).rowcount
        return changed == 1

    def expire_due(self, before: datetime, device_id: str | None = None) -> list[str]:
        """Expire candidates whose window closed before ``before``; returns their ids."""
        sql = "SELECT report_id FROM reports WHERE state = 'candidate' AND expires_ts < ?"
        params: list[Any] = [before.timestamp()]
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        ids = [row[0] for row in self.db.execute(sql, params).fetchall()]
        return [rid for rid in ids if self.expire(rid, "no confirming sighting in time")]

    def add_duplicate(self, report_id: str) -> None:
        self.db.execute("UPDATE reports SET duplicate_count = duplicate_count + 1, "
                        "updated_at = ? WHERE report_id = ?", (to_iso(self.clock()), report_id))

    def reports_for(self, device_id: str, plates: list[str], states: tuple[str, ...],
                    since_ts: float = float("-inf")) -> list[Report]:
        """Reports of one device for any of ``plates`` in ``states``, first seen after
        ``since_ts`` (distance is checked by the caller)."""
        if not plates:
            return []
        marks = ",".join("?" * len(plates))
        smarks = ",".join("?" * len(states))
        rows = self.db.query(
            f"SELECT * FROM reports WHERE device_id = ? AND plate IN ({marks}) "
            f"AND state IN ({smarks}) AND first_seen_ts > ? ORDER BY first_seen_ts",
            [device_id, *plates, *states, since_ts])
        return [Report.from_row(r) for r in rows]

    def candidate_plates(self, device_id: str, length: int,
                         since_ts: float = float("-inf")) -> list[str]:
        """Plates of this device's live reports with a given length, first seen after
        ``since_ts`` (for one-character-off matching)."""
        rows = self.db.execute(
            "SELECT DISTINCT plate FROM reports WHERE device_id = ? AND length(plate) = ? "
            "AND state IN ('candidate', 'confirmed', 'uploaded') AND first_seen_ts > ?",
            (device_id, length, since_ts))
        return [r[0] for r in rows.fetchall()]

    def report(self, report_id: str) -> Report:
        rows = list(self.db.query("SELECT * FROM reports WHERE report_id = ?", (report_id,)))
        if not rows:
            rows = list(self.db.query("SELECT * FROM reports WHERE report_id LIKE ?",
                                      (report_id + "%",)))
            if len(rows) != 1:
                raise StoreError(f"no report {report_id!r} in {self.db_path}; see "
                                 "`gotcha reports list`")
        return Report.from_row(rows[0])

    def list_reports(self, state: str | None = None, limit: int = 1000) -> list[Report]:
        if state is not None and state not in REPORT_STATES:
            raise StoreError(f"unknown report state {state!r}; use one of "
                             f"{', '.join(REPORT_STATES)}")
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = self.db.query(f"SELECT * FROM reports {where} ORDER BY first_seen_ts DESC "
                             "LIMIT ?", [*params, limit])
        return [Report.from_row(r) for r in rows]

    # ----------------------------------------------------------------- outbox
    def pending(self, limit: int = 10, now: datetime | None = None) -> list[OutboxItem]:
        """Confirmed reports due for upload (pending, or interrupted while uploading)."""
        now = now or self.clock()
        rows = self.db.query(
            "SELECT * FROM outbox WHERE state IN ('pending', 'uploading') "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
            (to_iso(now), limit))
        return [OutboxItem.from_row(r) for r in rows]

    def outbox_item(self, report_id: str) -> OutboxItem | None:
        rows = list(self.db.query("SELECT * FROM outbox WHERE report_id = ?", (report_id,)))
        return OutboxItem.from_row(rows[0]) if rows else None

    def outbox_depth(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox WHERE state != 'done'")
                   .fetchone()[0])

    def mark_uploading(self, report_id: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE outbox SET state = 'uploading', attempts = attempts + 1, "
                            "updated_at = ? WHERE report_id = ? AND state != 'done'",
                            (to_iso(self.clock()), report_id))

    def mark_uploaded(self, report_id: str) -> None:
        """Photos and manifest are in the object store: outbox done, report uploaded."""
        now = to_iso(self.clock())
        with self.transaction():
            changed = self.db.execute(
                "UPDATE outbox SET state = 'done', last_error = NULL, updated_at = ? "
                "WHERE report_id = ?", (now, report_id)).rowcount
            if changed != 1:
                raise StoreError(f"report {report_id} has no outbox row; nothing to mark")
            self.db.execute("UPDATE reports SET state = 'uploaded', updated_at = ? "
                            "WHERE report_id = ? AND state = 'confirmed'", (now, report_id))

    def mark_failed(self, report_id: str, error: str, retry_at: datetime) -> None:
        """An upload attempt failed; try again at ``retry_at``."""
        with self.transaction():
            self.db.execute(
                "UPDATE outbox SET state = 'pending', attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ?, updated_at = ? WHERE report_id = ? AND state != 'done'",
                (error[:500], to_iso(retry_at), to_iso(self.clock()), report_id))

    # ----------------------------------------------------------------- space
    def photo_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(bytes), 0) FROM photos "
                                   "WHERE evicted_at IS NULL").fetchone()[0])

    def _evictable(self) -> list[dict[str, Any]]:
        """Stored photos no open report needs, with a rank: 0 expired past retention,
        1 not needed, 2 expired within retention; open reports' photos are never listed."""
        cutoff = to_iso(self.clock() - self.expired_retention)
        return list(self.db.query(
            """
            WITH refs AS (
              SELECT s.photo_sha256 AS sha, MAX(CASE
                  WHEN r.state IN ('candidate', 'confirmed') THEN 3
                  WHEN r.state = 'expired' AND r.updated_at > :cutoff THEN 2
                  WHEN r.state = 'expired' THEN 0
                  ELSE 1 END) AS rank
              FROM sightings s LEFT JOIN reports r ON r.report_id = s.report_id
              GROUP BY s.photo_sha256)
            SELECT p.sha256, p.bytes, COALESCE(refs.rank, 1) AS rank
            FROM photos p LEFT JOIN refs ON refs.sha = p.sha256
            WHERE p.evicted_at IS NULL AND p.pinned = 0 AND COALESCE(refs.rank, 1) < 3
            ORDER BY rank, p.created_at, p.sha256""", {"cutoff": cutoff}))

    def evict(self, incoming_bytes: int = 0) -> int:
        """Apply retention and the storage cap; returns bytes freed.

        Expired candidates' photos go once their retention is over; then, while over
        ``max_photo_bytes`` (counting ``incoming_bytes``), the oldest unneeded photos go. The
        rows are marked first and the files removed after the commit, so a crash leaves at
        worst a stray file, never a row naming a missing photo that a report needs.
        """
        over = self.photo_bytes() + incoming_bytes - self.max_photo_bytes
        now_dt = self.clock()
        if over <= 0 and self._last_sweep is not None \
                and now_dt - self._last_sweep < RETENTION_SWEEP_EVERY:
            return 0  # under the cap, and retention was applied recently
        self._last_sweep = now_dt
        chosen: list[str] = []
        for row in self._evictable():
            if row["rank"] == 0 or over > 0:
                if row["rank"] == 2:
                    log.warning("storage cap reached: evicting a photo of an expired candidate "
                                "before its retention ends")
                chosen.append(row["sha256"])
                over -= row["bytes"]
        if over > 0:
            log.warning("photo store over its cap by %d bytes; every remaining photo belongs "
                        "to an open report", over)
        if not chosen:
            return 0
        now = to_iso(self.clock())
        with self.transaction():
            self.db.conn.executemany("UPDATE photos SET evicted_at = ? WHERE sha256 = ?",
                                [(now, sha) for sha in chosen])
        return sum(self.photos.delete(sha) for sha in chosen)
