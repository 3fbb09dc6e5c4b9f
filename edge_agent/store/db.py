"""Opening the SQLite file and running one state change as one transaction.

Why this module: every lifecycle step (a sighting, a confirmation plus its outbox row, an
upload) must be all-or-nothing across a power cut or SIGKILL, and a locked or full database
must come back as a one-line StoreError, never as a half-written state or a raw sqlite3 trace.
WAL lets the uploader read while the agent writes; ``synchronous=FULL`` makes a committed
state change survive a power cut (NORMAL could lose the last commits in WAL mode).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from edge_agent.errors import DamagedStoreError, StoreError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0  # sqlite waits this long for another writer before "database is locked"
LOCK_RETRIES = 3  # then we try BEGIN IMMEDIATE again this many times
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
RECOVER_HINT = ("stop gotcha; `gotcha store check` shows what is left and `gotcha store recover` "
                "rebuilds the database from the evidence photos and the uploaded manifests "
                "(the damaged file is kept aside, no photo is deleted)")


def is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower()


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return True
    return isinstance(exc, sqlite3.Error) and "disk is full" in str(exc).lower()


def is_corruption(exc: BaseException) -> bool:
    """SQLite says the file is damaged or is no database at all."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text \
        or "not a database" in text


def damaged(path: Path | str, what: str) -> DamagedStoreError:
    """The one-line error for a database that cannot be trusted, with the way out."""
    return DamagedStoreError(f"{path}: {' '.join(what.split())}; {RECOVER_HINT}")


def store_error(exc: BaseException, path: Path | str) -> StoreError:
    """The one-line StoreError a user sees for a storage failure."""
    if is_corruption(exc):
        return damaged(path, f"the database is damaged ({exc})")
    if is_disk_full(exc):
        return StoreError(f"disk full while writing {path}: free space (or lower "
                          "store.max_photo_bytes) and run again; nothing was half-written")
    if is_locked(exc):
        return StoreError(f"database is locked by another process: {path}; stop the other "
                          "gotcha process using it or point store.path elsewhere")
    return StoreError(f"store error on {path}: {exc}")


def connect(path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode with FULL sync and a busy timeout.

    ``isolation_level=None``: the driver opens no implicit transactions, so BEGIN IMMEDIATE
    in :func:`transaction` is the only way a write transaction starts.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode}); put store.path on "
                             "a local filesystem")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except (sqlite3.Error, OSError) as exc:
        raise store_error(exc, path) from exc
    return sqlite_utils.Database(conn)


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database, path: Path | str = "database") -> Iterator[None]:
    """One state change: BEGIN IMMEDIATE ... COMMIT, rolled back on any error.

    IMMEDIATE takes the write lock up front, so two processes never both read a candidate
    and both confirm it. A lock held by someone else is retried, then reported; disk-full
    and other sqlite errors roll back and become a StoreError.
    """
    for attempt in range(LOCK_RETRIES + 1):
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if is_locked(exc) and attempt < LOCK_RETRIES:
                log.warning("database %s is locked, retrying (%d/%d)", path, attempt + 1,
                            LOCK_RETRIES)
                time.sleep(0.2 * (attempt + 1))
                continue
            raise store_error(exc, path) from exc
    try:
        yield
    except BaseException as exc:
        if db.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.conn.execute("ROLLBACK")
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise store_error(exc, path) from exc
        raise
    try:
        db.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.conn.execute("ROLLBACK")
        raise store_error(exc, path) from exc
