"""The scheduled promoter: pending `temporary` rows -> rules -> `final`, duplicate or rejected.

Safe with any number of promoters at once:

* each batch is one transaction that claims its rows with ``FOR UPDATE SKIP LOCKED`` (MySQL 8
  and MariaDB 10.6+), so two promoters never take the same row;
* before looking for duplicates it locks one `plate_locks` row per plate of the batch, in
  sorted order (no deadlock cycle), so two promoters never both promote the same violation
  seen by two devices; the look-up runs in READ COMMITTED and sees the other's commit.

Nothing scans a whole table: rows are claimed through the (status, id) index and duplicates
are found through the (plate, confirmed_at) index of `final`.

De-duplication: a report is a duplicate when `final` already holds the same plate within
``rules.radius_m`` and ``rules.dedup_window_s`` of it; the final that exists wins (finals are
never swapped, dashboards may already show them), and within one batch the earlier-confirmed
report is decided first. "The same plate" is the exact normalised plate
(gotcha_contracts.plate_identity.plate_key): tolerating a misread character is the device's
job, done before it confirmed the report. Rules are checked against when the report reached
S3 (``received_at``), so a promoter running late never pushes a report past its deadline.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql.cursors

from cloud_sync import db
from gotcha_contracts.plate_grammar import explain_reject, parse_plate
from gotcha_contracts.plate_identity import plate_key
from gotcha_contracts.rules import DEFAULT_RULES, Rules, haversine_m

log = logging.getLogger(__name__)

Cursor = pymysql.cursors.DictCursor

CLAIM_SQL = (
    "SELECT id, report_id, device_id, plate, plate_confidence, plate_use, zone, lat, lon, "
    "first_seen_at, confirmed_at, scene_score, photo_distance_m, bucket, manifest_key, "
    "photo1_key, photo1_sha256, photo2_key, photo2_sha256, received_at "
    "FROM `temporary` FORCE INDEX (temporary_status_id_ix) "
    "WHERE status = 'pending' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED")

# Uses final_plate_time_ix: only this plate's rows inside the window are read.
NEARBY_FINALS_SQL = (
    "SELECT id, report_id, lat, lon, confirmed_at FROM final FORCE INDEX (final_plate_time_ix) "
    "WHERE plate = %s AND confirmed_at BETWEEN %s AND %s ORDER BY confirmed_at, id")

INSERT_FINAL_SQL = (
    "INSERT INTO final (report_id, temporary_id, device_id, plate, plate_confidence, plate_use, "
    "zone, lat, lon, first_seen_at, confirmed_at, scene_score, bucket, manifest_key, "
    "photo1_key, photo1_sha256, photo2_key, photo2_sha256, promoted_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")

MAX_REASON = 1000


@dataclass
class PromoteResult:
    """What one promoter run did."""

    final: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.final + self.duplicate + self.rejected

    def as_dict(self) -> dict[str, Any]:
        return {"final": self.final, "duplicate": self.duplicate, "rejected": self.rejected,
                "processed": self.processed, "batches": self.batches,
                "seconds": round(self.seconds, 3), "stopped_early": self.stopped_early}


def promote_pending(conn: db.Connection, *, rules: Rules = DEFAULT_RULES,
                    batch_size: int = 200, max_batches: int | None = None,
                    time_budget_s: float | None = None) -> PromoteResult:
    """Promote pending rows batch by batch until none is left (or a limit is reached).

    ``time_budget_s`` keeps a Lambda inside its timeout: no new batch starts after it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    result = PromoteResult()
    started = time.monotonic()
    while max_batches is None or result.batches < max_batches:
        if time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            result.stopped_early = True
            break
        counts = db.run_transaction(conn, lambda cur: promote_batch(cur, rules, batch_size))
        if not counts:
            break
        result.batches += 1
        result.final += counts["final"]
        result.duplicate += counts["duplicate"]
        result.rejected += counts["rejected"]
    result.seconds = time.monotonic() - started
    log.info("promoted: %s", result.as_dict())
    return result


def promote_batch(cur: Cursor, rules: Rules, batch_size: int) -> Counter[str]:
    """Claim up to ``batch_size`` pending rows and decide each; runs inside one transaction."""
    cur.execute(CLAIM_SQL, (batch_size,))
    rows = list(cur.fetchall())
    counts: Counter[str] = Counter()
    if not rows:
        return counts
    _lock_plates(cur, sorted({key for row in rows if (key := plate_key(row["plate"] or ""))}))
    now = db.utc_now()
    # Earlier violations first, so within a batch the earlier report becomes the final.
    for row in sorted(rows, key=lambda r: (r["confirmed_at"] or datetime.min, r["id"])):
        counts[_decide(cur, row, rules, now)] += 1
    return counts


def _lock_plates(cur: Cursor, plates: list[str]) -> None:
    """Lock one row per plate, in sorted order, held until the batch commits."""
    if not plates:
        return
    values = ", ".join(["(%s, UTC_TIMESTAMP(3))"] * len(plates))
    cur.execute(f"INSERT INTO plate_locks (plate, locked_at) VALUES {values} "
                "ON DUPLICATE KEY UPDATE locked_at = UTC_TIMESTAMP(3)", plates)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def rule_failures(row: dict[str, Any], rules: Rules) -> list[str]:
    """Why a temporary row fails the shared evidence rule and plate grammar ([] = it passes)."""
    reasons: list[str] = []
    plate = row.get("plate")
    if not plate or parse_plate(plate) is None:
        reasons.append(f"plate {plate!r} is not a Korean plate: {explain_reject(plate or '')}")
    first, confirmed = _aware(row.get("first_seen_at")), _aware(row.get("confirmed_at"))
    if first is None or confirmed is None:
        reasons.append("first_seen_at or confirmed_at is missing")
        return reasons
    if row.get("lat") is None or row.get("lon") is None:
        reasons.append("the report has no location")
    # Filed when it reached S3: a promoter running late must not push it past the deadline.
    reasons += rules.check_evidence(first, confirmed, row.get("photo_distance_m"),
                                    row.get("scene_score"), row.get("zone") or "",
                                    now=_aware(row["received_at"]))
    return reasons


def _decide(cur: Cursor, row: dict[str, Any], rules: Rules, now: datetime) -> str:
    reasons = rule_failures(row, rules)
    if reasons:
        cur.execute("UPDATE `temporary` SET status = 'rejected', reason = %s, processed_at = %s "
                    "WHERE id = %s", ("; ".join(reasons)[:MAX_REASON], now, row["id"]))
        return "rejected"
    match = find_duplicate(cur, row, rules)
    if match is not None:
        final_id, distance, gap = match
        cur.execute("UPDATE `temporary` SET status = 'duplicate', final_id = %s, reason = %s, "
                    "processed_at = %s WHERE id = %s",
                    (final_id, f"duplicate of final {final_id}: same plate {distance:.1f} m and "
                     f"{gap:.0f} s away", now, row["id"]))
        cur.execute("UPDATE final SET duplicate_count = duplicate_count + 1, "
                    "last_duplicate_at = GREATEST(COALESCE(last_duplicate_at, %s), %s) "
                    "WHERE id = %s", (row["confirmed_at"], row["confirmed_at"], final_id))
        return "duplicate"
    cur.execute(INSERT_FINAL_SQL, (
        row["report_id"], row["id"], row["device_id"], plate_key(row["plate"]),
        row["plate_confidence"], row["plate_use"], row["zone"], row["lat"], row["lon"],
        row["first_seen_at"], row["confirmed_at"], row["scene_score"], row["bucket"],
        row["manifest_key"], row["photo1_key"], row["photo1_sha256"], row["photo2_key"],
        row["photo2_sha256"], now))
    cur.execute("UPDATE `temporary` SET status = 'final', final_id = %s, reason = NULL, "
                "processed_at = %s WHERE id = %s", (cur.lastrowid, now, row["id"]))
    return "final"


def find_duplicate(cur: Cursor, row: dict[str, Any], rules: Rules
                   ) -> tuple[int, float, float] | None:
    """The earliest final of the same plate within the radius and the dedup window, if any.

    Returns (final id, distance m, time gap s).
    """
    window = timedelta(seconds=rules.dedup_window_s)
    confirmed = row["confirmed_at"]
    cur.execute(NEARBY_FINALS_SQL, (plate_key(row["plate"]), confirmed - window,
                                    confirmed + window))
    for final in cur.fetchall():
        distance = haversine_m((row["lat"], row["lon"]), (final["lat"], final["lon"]))
        if rules.same_spot(distance):
            gap = abs((final["confirmed_at"] - confirmed).total_seconds())
            return final["id"], distance, gap
    return None
