"""Recording what ingest could not accept in `rejected_events`: once, with its reason, always.

Why its own module, and why every value is made storable first: whatever a hostile event or
manifest holds (a lone UTF-16 surrogate, a key longer than the column, text that will not
encode), recording it must not fail, or the event would crash the handler and Lambda would
retry it for ever. Text is stored with anything UTF-8 cannot hold escaped, and cut to its
column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from cloud_sync import db

MAX_REASON = 1000


def db_text(value: object, max_chars: int) -> str | None:
    """``value`` as text a utf8mb4 column stores as is: unencodable characters escaped, cut."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:max_chars]


def _zero(text: str) -> int:
    return 0


def peek_ids(body: bytes | None) -> tuple[str | None, str | None]:
    """report_id and device_id of a rejected manifest, when they can be read at all."""
    try:  # numbers are not needed to read two ids, and a huge one must not stop the reading
        data = json.loads(body or b"", parse_int=_zero, parse_float=_zero,
                          parse_constant=_zero)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, Mapping):
        return None, None
    ids = [data.get("report_id"), data.get("device_id")]
    return tuple(db_text(v, 64) if isinstance(v, str) else None  # type: ignore[return-value]
                 for v in ids)


def record_rejected(conn: db.Connection, *, bucket: str, key: str, etag: str | None,
                    reason: str, ids: tuple[str | None, str | None] = (None, None),
                    received_at: datetime | None = None, settle_waiting: bool = False,
                    fingerprint: str = "") -> None:
    """Record a rejected event, once per (bucket, key, ETag, reason, fingerprint).

    ``settle_waiting``: a report left ``waiting`` by an earlier delivery of this manifest
    (its photos were missing) is rejected too, so no row stays waiting for ever.
    """
    bucket_text = db_text(bucket, 255) or ""
    key_text = db_text(key, 1024) or ""
    etag_text = db_text(etag, 80) or None
    reason_text = db_text(reason, MAX_REASON) or "rejected"
    report_id, device_id = (db_text(v, 64) for v in ids)
    event_hash = hashlib.sha256("\x00".join(
        (bucket_text, key_text, etag_text or "", reason_text, fingerprint)).encode("utf-8")
    ).hexdigest()
    received = db.db_time(received_at) if received_at else db.utc_now()

    def work(cur: db.pymysql.cursors.DictCursor) -> None:
        cur.execute("INSERT INTO rejected_events (event_hash, bucket, object_key, etag, "
                    "report_id, device_id, reason, received_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE id = id",
                    (event_hash, bucket_text, key_text, etag_text, report_id, device_id,
                     reason_text, received))
        if settle_waiting and report_id and device_id:
            cur.execute("UPDATE `temporary` SET status = 'rejected', reason = %s, "
                        "processed_at = %s WHERE report_id = %s AND device_id = %s "
                        "AND manifest_key = %s AND status = 'waiting'",
                        (reason_text, db.utc_now(), report_id, device_id, key_text))

    db.run_transaction(conn, work)
