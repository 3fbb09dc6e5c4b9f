"""MySQL/MariaDB access: one connection helper, transactions with deadlock retry, SQL files.

Every statement the cloud code runs is parameterised (``%s`` placeholders filled by pymysql);
no value is ever formatted into SQL text. Sessions run in UTC so DATETIME(3) columns hold UTC.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pymysql
import pymysql.cursors

from cloud_sync.config import DbSettings
from cloud_sync.errors import DatabaseError

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = pymysql.connections.Connection

# Errors after which the whole transaction can simply be run again.
RETRYABLE = frozenset({1205, 1213})  # lock wait timeout, deadlock
# Errors that mean the server went away (Lambda containers keep a connection between calls).
CONNECTION_LOST = frozenset({2006, 2013, 2014})

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SQL_FILES = ("schema.sql", "init_data.sql", "views.sql")


def connect(settings: DbSettings, *, database: bool = True) -> Connection:
    """Open a connection in UTC with utf8mb4 and autocommit off.

    The time zone is set by init_command, so a reconnect (``ping(reconnect=True)``) keeps it.
    """
    try:
        return pymysql.connect(
            host=settings.host, port=settings.port, user=settings.user,
            password=settings.password, database=settings.database if database else None,
            charset="utf8mb4", autocommit=False, connect_timeout=settings.connect_timeout_s,
            cursorclass=pymysql.cursors.DictCursor,
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.err.OperationalError as exc:
        raise DatabaseError(f"cannot connect to MySQL at {settings.host}:{settings.port} "
                            f"as {settings.user}: {exc.args[-1]}; check the RDS_* "
                            f"variables and that the server is up") from exc


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a pymysql error, or None."""
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[pymysql.cursors.DictCursor]:
    """BEGIN (READ COMMITTED); yield a cursor; COMMIT, or ROLLBACK on any error (re-raised).

    READ COMMITTED: the promoter's duplicate look-up must see rows another promoter committed
    a moment ago, and it takes fewer gap locks than REPEATABLE READ. Set per transaction (the
    syntax both MySQL 8 and MariaDB accept), so it survives a reconnect.
    """
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        with contextlib.suppress(pymysql.err.MySQLError):
            conn.rollback()
        raise


def run_transaction(conn: Connection, work: Callable[[pymysql.cursors.DictCursor], T],
                    *, attempts: int = 6, retry_on: frozenset[int] = RETRYABLE) -> T:
    """Run ``work(cursor)`` in a transaction, re-running it after a deadlock or lock timeout.

    ``work`` must be safe to re-run: it sees a fresh transaction each time. ``retry_on`` adds
    error numbers worth a re-run (the ingest handler adds 1062, a racing duplicate insert).
    """
    for attempt in range(1, attempts + 1):
        try:
            with transaction(conn) as cur:
                return work(cur)
        except pymysql.err.MySQLError as exc:
            if error_code(exc) not in retry_on or attempt == attempts:
                raise
            delay = min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.0)
            log.info("transaction retry %d after MySQL error %s (%.0f ms)", attempt,
                     error_code(exc), delay * 1000)
            time.sleep(delay)
    raise AssertionError("unreachable")


def db_time(value: datetime) -> datetime:
    """A naive UTC datetime truncated to milliseconds, as DATETIME(3) stores it.

    Truncating here makes MySQL (which rounds) and MariaDB (which truncates) store the same.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    return db_time(datetime.now(UTC))


def split_sql(text: str) -> list[str]:
    """Split a SQL file into statements on ``;``, minding quotes and ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i) and (i + 2 >= len(text) or text[i + 2] in " \t\r\n"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(ch)
        i += 1
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def apply_sql_files(conn: Connection, paths: list[Path]) -> int:
    """Run each file's statements in order (DDL commits by itself); return how many ran."""
    count = 0
    for path in paths:
        for statement in split_sql(path.read_text(encoding="utf-8")):
            with conn.cursor() as cur:
                cur.execute(statement)
            count += 1
        conn.commit()
    return count


def init_db(settings: DbSettings, *, sql_dir: Path = SQL_DIR, create_database: bool = False) -> int:
    """Create (or bring up to date) the tables, zones and views; safe to run again.

    Returns the number of statements run.
    """
    paths = [sql_dir / name for name in SQL_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatabaseError(f"SQL file(s) not found: {', '.join(missing)}; run from a checkout "
                            f"of the repository or pass the sql folder")
    if create_database:
        conn = connect(settings, database=False)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(settings.database)}"
                            " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            conn.commit()
        finally:
            conn.close()
    conn = connect(settings)
    try:
        return apply_sql_files(conn, paths)
    finally:
        conn.close()


def quote_identifier(name: str) -> str:
    """Backtick-quote an identifier (a database name can't be a ``%s`` parameter)."""
    if not name or len(name) > 64 or "\x00" in name:
        raise DatabaseError(f"bad database name {name!r}: 1 to 64 characters, no NUL")
    return "`" + name.replace("`", "``") + "`"
