"""Is the database the one that belongs to this photo store? Checks made before trusting it.

Why: the photo folder and the SQLite file can part ways. A database emptied (``: > gotcha.db``),
deleted or restored from an old backup opens as a fresh, valid, empty store: every report it
listed, confirmed and not yet uploaded ones included, would vanish without a word, and their
photos would stay on disk outside the storage cap. So a store whose database has no schema
while the photo folder holds photos is refused with a named error, and so is any file SQLite
calls damaged; ``gotcha store recover`` (see ``recover``) is the way out.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from edge_agent.config import StoreConfig
from edge_agent.store.db import damaged
from edge_agent.store.photos import sha256_hex

_PHOTO_NAME = re.compile(r"^[0-9a-f]{64}\.jpg$")


def photo_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(sha256, path) of every evidence photo file under ``root`` (``ab/cd/<sha>.jpg``)."""
    if not root.is_dir():
        return
    for path in sorted(root.glob("??/??/*.jpg")):
        if _PHOTO_NAME.match(path.name) and path.name.startswith(path.parent.parent.name
                                                                 + path.parent.name):
            yield path.name[:64], path


def _count_photos(root: Path) -> int:
    return sum(1 for _ in photo_files(root))


def refuse_missing_database(path: Path, photo_root: Path) -> None:
    """Before opening: a missing or empty database file next to stored photos is refused."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    if next(photo_files(photo_root), None) is None:
        return  # a new device, or one whose photos are all gone: nothing to lose
    what = "does not exist" if size is None else "is empty (0 bytes)"
    raise damaged(path, f"the database {what}, but {photo_root} holds "
                        f"{_count_photos(photo_root)} evidence photo(s): the database was lost "
                        "or emptied, and the reports it held (confirmed ones not yet uploaded "
                        "too) would vanish without a word")


def refuse_unmigrated(db: sqlite_utils.Database, path: Path, photo_root: Path) -> None:
    """After opening: a database without any schema next to stored photos is refused."""
    if int(db.execute("PRAGMA user_version").fetchone()[0]) != 0:
        return
    if next(photo_files(photo_root), None) is None:
        return
    raise damaged(path, f"the database has no tables, but {photo_root} holds "
                        f"{_count_photos(photo_root)} evidence photo(s): it was replaced or "
                        "emptied, and the reports it held would vanish without a word")


def quick_check(db: sqlite_utils.Database, path: Path) -> None:
    """SQLite's quick_check; any failure (a finding or an error) is a DamagedStoreError."""
    try:
        rows = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise damaged(path, f"the database is damaged (quick_check: {exc})") from exc
    if rows != ["ok"]:
        found = " / ".join(" ".join(r.split()) for r in rows[:3])
        raise damaged(path, f"the database is damaged (quick_check: {found})")


@dataclass(frozen=True)
class StoreHealth:
    """What ``gotcha store check`` found: plain facts, and problems that need a person."""

    facts: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def diagnose(config: StoreConfig) -> StoreHealth:
    """Look at the database and the photo folder without changing either (no migration, no
    repair): SQLite's quick_check, reports by state, photo files against the photo rows."""
    facts: list[str] = []
    problems: list[str] = []
    on_disk = dict(photo_files(config.photo_dir))
    disk_bytes = sum(p.stat().st_size for p in on_disk.values())
    facts.append(f"{config.photo_dir}: {len(on_disk)} photo file(s), {disk_bytes / 1e6:.1f} MB")
    size = config.path.stat().st_size if config.path.exists() else None
    if not size:
        what = "does not exist" if size is None else "is empty (0 bytes)"
        (problems if on_disk else facts).append(
            f"{config.path}: the database {what}"
            + (f" while {len(on_disk)} evidence photo(s) are stored; run `gotcha store recover`"
               if on_disk else " (a new device)"))
        return StoreHealth(tuple(facts), tuple(problems))
    facts.append(f"{config.path}: {size / 1e6:.1f} MB")
    try:
        conn = sqlite3.connect(f"file:{config.path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        problems.append(f"{config.path}: cannot be opened ({exc})")
        return StoreHealth(tuple(facts), tuple(problems))
    try:
        _diagnose_rows(conn, config, on_disk, facts, problems)
    except sqlite3.DatabaseError as exc:
        problems.append(f"{config.path}: the database is damaged ({exc}); run `gotcha store "
                        "recover`")
    finally:
        conn.close()
    return StoreHealth(tuple(facts), tuple(problems))


def _diagnose_rows(conn: sqlite3.Connection, config: StoreConfig, on_disk: dict[str, Path],
                   facts: list[str], problems: list[str]) -> None:
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        found = " / ".join(" ".join(r.split()) for r in rows[:3])
        problems.append(f"{config.path}: quick_check: {found}; run `gotcha store recover`")
        return
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        (problems if on_disk else facts).append(
            f"{config.path}: no tables" + ("; run `gotcha store recover`" if on_disk else ""))
        return
    states = dict(conn.execute("SELECT state, COUNT(*) FROM reports GROUP BY state").fetchall())
    counts = ", ".join(f"{states.get(s, 0)} {s}"
                       for s in ("candidate", "confirmed", "uploaded", "expired"))
    facts.append(f"schema {version}; reports: {counts}")
    waiting = conn.execute("SELECT COUNT(*) FROM outbox WHERE state != 'done'").fetchone()[0]
    pinned = conn.execute("SELECT COUNT(*) FROM photos WHERE pinned = 1 AND evicted_at IS NULL"
                          ).fetchone()[0]
    facts.append(f"outbox: {waiting} waiting; photos pinned: {pinned}")
    named = {r[0] for r in conn.execute("SELECT sha256 FROM photos WHERE evicted_at IS NULL")}
    unnamed = sorted(set(on_disk) - named)
    if unnamed:
        problems.append(f"{len(unnamed)} photo file(s) the database does not name (outside the "
                        f"storage cap), e.g. {on_disk[unnamed[0]]}; run `gotcha store recover`")
    needed = conn.execute(
        "SELECT DISTINCT r.report_id, r.state, s.photo_sha256 FROM reports r JOIN sightings s "
        "ON s.id IN (r.first_sighting_id, r.confirming_sighting_id) "
        "WHERE r.state IN ('candidate', 'confirmed')").fetchall()
    for report_id, state, sha in needed:
        path = on_disk.get(sha)
        if path is None or sha256_hex(path.read_bytes()) != sha:
            problems.append(f"{state} report {report_id}: evidence photo {sha[:12]} is missing "
                            "or altered; restore it from a backup")
