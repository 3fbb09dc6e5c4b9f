"""The store's schema as a numbered list of migrations, each applied in its own transaction.

Why: devices in the field are upgraded in place; a database written by an older agent must
be brought forward step by step, and a half-applied step must roll back. ``PRAGMA
user_version`` records the last step applied (it is part of the transaction).
A migration is append-only: never edit one that has shipped, add the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from edge_agent.errors import StoreError
from edge_agent.store.db import transaction

log = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]


def _v1_initial(db: sqlite_utils.Database) -> None:
    """Photos, sightings, reports and the upload outbox."""
    db.execute("""
        CREATE TABLE photos (
            sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
            path        TEXT NOT NULL,          -- relative to store.photo_dir
            bytes       INTEGER NOT NULL CHECK (bytes > 0),
            captured_at TEXT,                   -- ISO 8601 UTC
            created_at  TEXT NOT NULL,
            pinned      INTEGER NOT NULL DEFAULT 0,  -- 1: never evict (set by a user)
            evicted_at  TEXT                    -- file deleted by the storage cap / retention
        )""")
    db.execute("""
        CREATE TABLE reports (
            report_id       TEXT PRIMARY KEY,   -- UUID made on the device
            device_id       TEXT NOT NULL,
            plate           TEXT NOT NULL,
            plate_alt       TEXT,               -- the other read when one char differed
            zone            TEXT NOT NULL,
            state           TEXT NOT NULL CHECK (state IN
                                ('candidate', 'confirmed', 'expired', 'uploaded')),
            lat             REAL NOT NULL,
            lon             REAL NOT NULL,
            first_sighting_id      INTEGER NOT NULL UNIQUE,
            confirming_sighting_id INTEGER UNIQUE,
            first_seen_at   TEXT NOT NULL,
            first_seen_ts   REAL NOT NULL,
            confirmed_at    TEXT,
            expires_at      TEXT NOT NULL,
            expires_ts      REAL NOT NULL,
            deadline        TEXT,
            scene_score     REAL,
            scene_reason    TEXT,
            distance_m      REAL,
            duplicate_count INTEGER NOT NULL DEFAULT 0,
            expired_reason  TEXT,
            models          TEXT,               -- JSON {role: model id} that made the report
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            CHECK ((state IN ('confirmed', 'uploaded')) =
                   (confirming_sighting_id IS NOT NULL AND confirmed_at IS NOT NULL))
        )""")
    db.execute("""
        CREATE TABLE sightings (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id       TEXT NOT NULL,
            photo_sha256    TEXT NOT NULL REFERENCES photos(sha256),
            captured_at     TEXT NOT NULL,
            captured_ts     REAL NOT NULL,
            time_source     TEXT NOT NULL,
            lat             REAL,
            lon             REAL,
            accuracy_m      REAL,
            plate           TEXT NOT NULL,
            plate_raw       TEXT NOT NULL,
            plate_confidence REAL NOT NULL,
            char_confidences TEXT NOT NULL,     -- JSON list
            vehicle_box     TEXT,               -- JSON [x1, y1, x2, y2]
            plate_box       TEXT NOT NULL,
            scene_signature BLOB,
            report_id       TEXT REFERENCES reports(report_id),
            role            TEXT NOT NULL CHECK (role IN
                                ('first', 'confirming', 'duplicate', 'unmatched')),
            note            TEXT,
            created_at      TEXT NOT NULL,
            UNIQUE (device_id, photo_sha256, plate)
        )""")
    db.execute("""
        CREATE TABLE outbox (
            report_id       TEXT PRIMARY KEY REFERENCES reports(report_id),
            state           TEXT NOT NULL CHECK (state IN ('pending', 'uploading', 'done')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error      TEXT,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX reports_open ON reports (device_id, plate, state)")
    db.execute("CREATE INDEX reports_expiry ON reports (state, expires_ts)")
    db.execute("CREATE INDEX sightings_report ON sightings (report_id)")
    db.execute("CREATE INDEX sightings_photo ON sightings (photo_sha256)")
    db.execute("CREATE INDEX sightings_device_time ON sightings (device_id, captured_ts)")
    db.execute("CREATE INDEX outbox_due ON outbox (state, next_attempt_at)")
    db.execute("CREATE INDEX photos_created ON photos (created_at)")


def _v2_privacy_boxes(db: sqlite_utils.Database) -> None:
    """Per sighting, the people and other plates the pipeline found, for the upload blur."""
    # JSON lists of [x1, y1, x2, y2] in the upright photo; NULL: recorded before schema 2,
    # nothing known (the uploader refuses to guess, see edge_agent.upload.privacy)
    db.execute("ALTER TABLE sightings ADD COLUMN people_boxes TEXT")
    db.execute("ALTER TABLE sightings ADD COLUMN other_plate_boxes TEXT")


MIGRATIONS: list[Migration] = [_v1_initial, _v2_privacy_boxes]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database, path: Path | str = "database") -> int:
    """Apply every migration after the file's user_version; returns the final version."""
    version = current_version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version}, newer than this gotcha "
                         f"({SCHEMA_VERSION}); upgrade gotcha or use another store.path")
    for number in range(version + 1, SCHEMA_VERSION + 1):
        step = MIGRATIONS[number - 1]
        with transaction(db, path):
            if current_version(db) >= number:  # another process migrated meanwhile
                continue
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
        log.info("store %s migrated to schema %d (%s)", path, number, step.__doc__)
    return SCHEMA_VERSION
