"""``gotcha store recover``: a new database rebuilt from what the disk still holds.

What survives a lost or damaged database: the evidence photos, named by their sha256 (see
``photos``), and the manifest of every report that was uploaded (``reports/.../manifest.json``
in the local object store folder, or copied down from S3). From a manifest the whole report is
rebuilt as ``uploaded``, so it is never uploaded twice. A stored photo that no manifest names
may be the evidence of a confirmed report not yet uploaded, or of a candidate: it is
registered pinned (counted against the storage cap, never evicted) and, when the caller
passes a ``replay``, read again through vision and the lifecycle in capture order, which
rebuilds its candidates and confirmations. The damaged file is renamed aside with a
timestamp, its ``-wal`` and ``-shm`` with it; nothing is ever deleted.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge_agent.config import GotchaConfig
from edge_agent.durable import fsync_dir
from edge_agent.errors import StoreError
from edge_agent.io.photo import photo_exif
from edge_agent.printable import printable
from edge_agent.store.health import photo_files
from edge_agent.store.photos import relative_path, sha256_hex
from edge_agent.store.records import to_iso
from edge_agent.store.store import Store, utc_now
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.manifest import Manifest, validate_manifest
from gotcha_contracts.s3_layout import MANIFEST_NAME

log = logging.getLogger(__name__)

Replay = Callable[[str, bytes], int]
"""``replay(sha256, photo bytes)`` reads one kept photo again and records its sightings;
returns how many it recorded."""
EVICTED_SIZE_UNKNOWN = 1  # photos.bytes of an uploaded photo already evicted (size unknown)


@dataclass(frozen=True)
class RecoveryResult:
    """What ``recover_store`` did, for the command's output."""

    quarantined: tuple[Path, ...]
    reports_rebuilt: int
    manifests_skipped: tuple[str, ...]
    photos_from_manifests: int
    kept: tuple[str, ...]  # sha256 of stored photos no manifest names: registered, pinned
    altered: tuple[Path, ...]  # files whose bytes do not hash to their name: left alone

    def lines(self) -> list[str]:
        out = [f"moved aside: {printable(p)}" for p in self.quarantined]
        out.append(f"{self.reports_rebuilt} uploaded report(s) rebuilt from their manifests "
                   f"({self.photos_from_manifests} photo(s))")
        out += [f"  skipped {printable(s)}" for s in self.manifests_skipped]
        out.append(f"{len(self.kept)} stored photo(s) no manifest names: kept, pinned (never "
                   "evicted) until read again")
        out += [f"  not registered, its bytes do not match its name: {printable(p)}"
                for p in self.altered]
        return out


def quarantine(db_path: Path, now: datetime) -> tuple[Path, ...]:
    """Rename the database and its -wal/-shm to ``<name>.damaged-<UTC time>``; never delete."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    base = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    number = 1
    while any(Path(f"{base}{s}").exists() for s in ("", "-wal", "-shm")):
        base = db_path.with_name(f"{db_path.name}.damaged-{stamp}-{number}")
        number += 1
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db_path}{suffix}")
        if source.exists():
            target = Path(f"{base}{suffix}")
            os.rename(source, target)
            moved.append(target)
    if moved:
        fsync_dir(db_path.parent)
    return tuple(moved)


def find_manifests(roots: Iterable[Path]) -> list[Path]:
    """Every ``manifest.json`` under the given folders (missing folders are skipped)."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found.extend(sorted(root.rglob(MANIFEST_NAME)))
    return found


def _insert_manifest(store: Store, m: Manifest, now: str) -> int:
    """One uploaded report with its two sightings, photo rows and done outbox row; returns
    how many of its photos are on disk."""
    db = store.db
    on_disk = 0
    sighting_ids = []
    char_confidences = list(m.plate_char_confidences or [m.plate_confidence] * len(m.plate))
    for role, photo in zip(("first", "confirming"), m.photos, strict=True):
        where = photo.location or m.location  # schema 2 names each photo's own place
        present = store.photos.verify(photo.sha256)
        on_disk += present
        size = store.photos.path(photo.sha256).stat().st_size if present else EVICTED_SIZE_UNKNOWN
        db.execute("INSERT INTO photos (sha256, path, bytes, captured_at, created_at, evicted_at)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO NOTHING",
                   (photo.sha256, relative_path(photo.sha256), size, to_iso(photo.captured_at),
                    now, None if present else now))
        cursor = db.execute(
            "INSERT INTO sightings (device_id, photo_sha256, captured_at, captured_ts, "
            "time_source, lat, lon, accuracy_m, plate, plate_raw, plate_confidence, "
            "char_confidences, vehicle_box, plate_box, scene_signature, report_id, role, note, "
            "created_at) VALUES (?, ?, ?, ?, 'recovered', ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL,"
            " ?, 'rebuilt from its uploaded manifest', ?)",
            (m.device_id, photo.sha256, to_iso(photo.captured_at), photo.captured_at.timestamp(),
             where.lat, where.lon, where.accuracy_m, m.plate, m.plate,
             m.plate_confidence, json.dumps(char_confidences),
             json.dumps(list(photo.vehicle_box)) if photo.vehicle_box else None,
             json.dumps(list(photo.plate_box)), role, now))
        sighting_ids.append(int(cursor.lastrowid))
    db.execute(
        "INSERT INTO reports (report_id, device_id, plate, zone, state, lat, lon, "
        "first_sighting_id, confirming_sighting_id, first_seen_at, first_seen_ts, confirmed_at, "
        "expires_at, expires_ts, scene_score, scene_reason, distance_m, models, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, 'uploaded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "'rebuilt from its uploaded manifest', ?, ?, ?, ?)",
        (m.report_id, m.device_id, m.plate, m.zone, m.location.lat, m.location.lon,
         sighting_ids[0], sighting_ids[1], to_iso(m.first_seen_at), m.first_seen_at.timestamp(),
         to_iso(m.confirmed_at), to_iso(m.confirmed_at), m.confirmed_at.timestamp(),
         m.scene_score, m.distance_m if m.distance_m is not None else m.photo_distance_m,
         json.dumps(dict(m.models)), now, now))
    db.execute("UPDATE sightings SET report_id = ? WHERE id IN (?, ?)",
               (m.report_id, *sighting_ids))
    db.execute("INSERT INTO outbox (report_id, state, attempts, next_attempt_at, created_at, "
               "updated_at) VALUES (?, 'done', 0, ?, ?, ?)", (m.report_id, now, now, now))
    return on_disk


def _rebuild_from_manifests(store: Store, manifests: list[Path], device_id: str, now: str
                            ) -> tuple[int, int, list[str]]:
    rebuilt, photos, skipped = 0, 0, []
    for path in manifests:
        try:
            manifest = validate_manifest(path.read_bytes())
        except (ManifestError, OSError) as exc:
            skipped.append(f"{path}: {exc}")
            continue
        if manifest.device_id != device_id:
            skipped.append(f"{path}: report of device {manifest.device_id}, not {device_id}")
            continue
        if store.db.execute("SELECT 1 FROM reports WHERE report_id = ?",
                            (manifest.report_id,)).fetchone():
            continue  # the same manifest in two folders
        try:
            with store.transaction():
                photos += _insert_manifest(store, manifest, now)
        except sqlite3.IntegrityError as exc:  # a photo already named by another report's row
            skipped.append(f"{path}: does not fit the rebuilt store ({exc})")
            continue
        rebuilt += 1
    return rebuilt, photos, skipped


def _keep_unnamed_photos(store: Store, device_tz: str, now: str
                         ) -> tuple[list[tuple[str, str]], list[Path]]:
    """Register every stored photo no row names, pinned; returns ((captured_at, sha), ...)
    of those kept, and the files whose bytes do not match their name."""
    kept, altered = [], []
    for sha, path in photo_files(store.photos.root):
        if store.db.execute("SELECT 1 FROM photos WHERE sha256 = ?", (sha,)).fetchone():
            continue
        data = path.read_bytes()
        if sha256_hex(data) != sha:
            altered.append(path)
            continue
        captured = photo_exif(data, device_tz).captured_at
        with store.transaction():
            store.db.execute(
                "INSERT INTO photos (sha256, path, bytes, captured_at, created_at, pinned) "
                "VALUES (?, ?, ?, ?, ?, 1)",
                (sha, relative_path(sha), len(data), to_iso(captured) if captured else None, now))
        kept.append((to_iso(captured) if captured else now, sha))
    return sorted(kept), altered


def recover_store(config: GotchaConfig, manifest_roots: Iterable[Path],
                  clock: Callable[[], datetime] = utc_now) -> RecoveryResult:
    """Move the database aside and rebuild it: uploaded reports from their manifests, then
    every other stored photo registered and pinned (returned in capture order, for replay)."""
    now = clock()
    moved = quarantine(config.store.path, now)
    manifests = find_manifests(manifest_roots)
    with Store.open(config.store, check=False, clock=clock, rebuilding=True) as store:
        rebuilt, on_disk, skipped = _rebuild_from_manifests(store, manifests, config.device.id,
                                                            to_iso(now))
        kept, altered = _keep_unnamed_photos(store, config.device.timezone, to_iso(now))
    for line in skipped:
        log.warning("store recover: skipped %s", line)
    return RecoveryResult(moved, rebuilt, tuple(skipped), on_disk,
                          tuple(sha for _, sha in kept), tuple(altered))


def replay_kept(config: GotchaConfig, kept: Iterable[str], replay: Replay) -> tuple[int, int]:
    """Read the kept photos again, oldest first, through ``replay`` (vision and the lifecycle);
    a photo that now has sightings is unpinned (its reports protect it from here on).
    Returns (photos replayed, sightings recorded)."""
    done = recorded = 0
    with Store.open(config.store, check=False) as store:
        for sha in kept:
            try:
                data = store.photos.read(sha)
            except StoreError as exc:
                log.warning("store recover: %s", exc)
                continue
            recorded += replay(sha, data)
            done += 1
        with store.transaction():
            store.db.conn.executemany(
                "UPDATE photos SET pinned = 0 WHERE sha256 = ? AND pinned = 1 AND EXISTS "
                "(SELECT 1 FROM sightings WHERE photo_sha256 = photos.sha256)",
                [(sha,) for sha in kept])
    return done, recorded
