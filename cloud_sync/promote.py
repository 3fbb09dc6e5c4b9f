"""The scheduled promoter: pending `temporary` rows -> rules -> `final`, duplicate or rejected.

Safe with any number of promoters at once:

* each batch is one transaction that claims its rows with ``FOR UPDATE SKIP LOCKED`` (MySQL 8
  and MariaDB 10.6+), so two promoters never take the same row;
* before looking for duplicates it locks two `plate_locks` rows per plate of the batch (the
  plate's length with each of its halves, lock_keys: two plates one character apart share
  one), so two promoters never both promote the same violation seen by two devices; the
  look-up runs in READ COMMITTED and sees the other's commit.

Fast because batched: a batch is a handful of statements whatever its size (claim, lock, one
look-up of the finals that could match, one multi-row insert of the new finals, one update of
the claimed rows, one of the duplicate counts); the decisions in between are made in memory
(cloud_sync.decide). Nothing scans a whole table: rows are claimed through the (status, id)
index and candidate finals are found through the (match_key_1|2|3, confirmed_at) indexes of
`final`.

De-duplication: a report is a duplicate when `final` already holds the same plate (by
gotcha_contracts.plate_identity.same_plate, as the device decides it) within the rules' radius
and dedup window; the final that exists wins (finals are never swapped, dashboards may already
show them), and within one batch the earlier-confirmed report is decided first. Rules are
checked against when the report reached S3 (``received_at``), so a promoter running late never
pushes a report past its deadline.

One bad row never blocks the others: a row the checks cannot decide is rejected with the error
(cloud_sync.decide); a batch whose writes fail is retried row by row, and a row that still
fails is set aside as rejected with the database's reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pymysql
import pymysql.cursors

from cloud_sync import db
from cloud_sync.decide import (
    MAX_REASON,
    Candidate,
    Decision,
    FinalIndex,
    decide_batch,
    search_window,
)
from cloud_sync.limits import CloudLimits, limits_from_env
from gotcha_contracts.plate_identity import MATCH_KEY_PARTS, match_keys, plate_key
from gotcha_contracts.rules import Rules

log = logging.getLogger(__name__)

Cursor = pymysql.cursors.DictCursor

# Only what the decisions need: the rest of a final is copied server-side (INSERT ... SELECT).
CLAIM_SQL = (
    "SELECT id, plate, plate_confidence, plate_char_confidences, zone, lat, lon, "
    "first_seen_at, confirmed_at, scene_score, photo_distance_m, rules, received_at "
    "FROM `temporary` FORCE INDEX (temporary_status_id_ix) "
    "WHERE status = 'pending' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED")

# All in the match key indexes: the look-up reads no table row (confidences come later, if
# a comparison needs them: _confidences_reader).
_FINAL_COLUMNS = "id, plate, lat, lon, confirmed_at"
CONFIDENCES_SQL = ("SELECT COALESCE(plate_char_confidences, plate_confidence) AS confidences "
                   "FROM final WHERE id = %s")


def nearby_finals_sql(counts: Sequence[int]) -> str:
    """Finals with one of ``counts[i]`` given values of match key i+1, inside a window.

    Parameters, for each key in turn: its values, the window's start and end. Each part
    reads only its own index (match_key_i, confirmed_at); UNION (not ALL) sends a final found
    through several keys (every exact match is) once.
    """
    return " UNION ".join(
        f"SELECT {_FINAL_COLUMNS} FROM final FORCE INDEX (final_match_{i}_time_ix) "
        f"WHERE match_key_{i} IN ({', '.join(['%s'] * n)}) AND confirmed_at BETWEEN %s AND %s"
        for i, n in enumerate(counts, start=1))


NEARBY_FINALS_SQL = nearby_finals_sql((1,) * MATCH_KEY_PARTS)

INSERT_FINAL_COLUMNS = (
    "report_id", "temporary_id", "device_id", "plate", "plate_confidence", "plate_use", "zone",
    "lat", "lon", "first_seen_at", "confirmed_at", "scene_score", "bucket", "manifest_key",
    "photo1_key", "photo1_sha256", "photo2_key", "photo2_sha256", "promoted_at",
    "plate_char_confidences", "match_key_1", "match_key_2", "match_key_3")
INSERT_FINAL_SQL = (f"INSERT INTO final ({', '.join(INSERT_FINAL_COLUMNS)}) "
                    f"VALUES ({', '.join(['%s'] * len(INSERT_FINAL_COLUMNS))})")
# Copied from the claimed `temporary` row as it is; the rest comes from the decision.
_COPIED = ("report_id", "device_id", "plate_confidence", "plate_use", "zone", "lat", "lon",
           "first_seen_at", "confirmed_at", "scene_score", "bucket", "manifest_key",
           "photo1_key", "photo1_sha256", "photo2_key", "photo2_sha256")
_DECIDED = ("plate", "plate_char_confidences", "match_key_1", "match_key_2", "match_key_3")

# A batch whose writes fail with these is retried row by row (a bad row's data, not the server)
BATCH_ERRORS = (pymysql.err.DataError, pymysql.err.IntegrityError, ValueError, TypeError,
                ArithmeticError)


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

    def add(self, counts: Counter[str]) -> None:
        self.final += counts["final"]
        self.duplicate += counts["duplicate"]
        self.rejected += counts["rejected"]

    def as_dict(self) -> dict[str, Any]:
        return {"final": self.final, "duplicate": self.duplicate, "rejected": self.rejected,
                "processed": self.processed, "batches": self.batches,
                "seconds": round(self.seconds, 3), "stopped_early": self.stopped_early}


def promote_pending(conn: db.Connection, *, limits: CloudLimits | None = None,
                    batch_size: int = 500, max_batches: int | None = None,
                    time_budget_s: float | None = None) -> PromoteResult:
    """Promote pending rows batch by batch until none is left (or a limit is reached).

    ``limits``: the cloud's limits (default from the environment). ``time_budget_s`` keeps a
    Lambda inside its timeout: no new batch starts after it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    limits = limits or limits_from_env()
    result = PromoteResult()
    started = time.monotonic()
    while max_batches is None or result.batches < max_batches:
        if time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            result.stopped_early = True
            break
        try:
            counts = db.run_transaction(
                conn, lambda cur: promote_batch(cur, limits, batch_size))
        except BATCH_ERRORS as exc:
            log.warning("batch failed (%s: %s); promoting its rows one by one",
                        type(exc).__name__, exc)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            counts = _promote_one_by_one(conn, limits, batch_size)
        if not counts:
            break
        result.batches += 1
        result.add(counts)
    result.seconds = time.monotonic() - started
    log.info("promoted: %s", result.as_dict())
    return result


def _promote_one_by_one(conn: db.Connection, limits: CloudLimits, rows: int) -> Counter[str]:
    """Up to ``rows`` rows in their own transactions; a row whose writes fail is set aside."""
    total: Counter[str] = Counter()
    for _ in range(rows):
        claimed: list[int] = []
        try:
            counts = db.run_transaction(
                conn, lambda cur, c=claimed: promote_batch(cur, limits, 1, c))  # type: ignore
        except BATCH_ERRORS as exc:
            if not claimed:
                raise
            reason = f"could not be stored: {type(exc).__name__}: {exc}"[:MAX_REASON]
            log.error("pending row %s set aside: %s", claimed[-1], reason)
            db.run_transaction(conn, lambda cur, i=claimed[-1], r=reason: cur.execute(
                "UPDATE `temporary` SET status = 'rejected', reason = %s, processed_at = %s "
                "WHERE id = %s AND status = 'pending'", (r, db.utc_now(), i)))
            counts = Counter({"rejected": 1})
        if not counts:
            break
        total.update(counts)
    return total


def promote_batch(cur: Cursor, limits: CloudLimits, batch_size: int,
                  claimed: list[int] | None = None) -> Counter[str]:
    """Claim up to ``batch_size`` pending rows and decide each; runs inside one transaction.

    ``claimed`` (if given) receives the ids claimed, so a caller can set aside a row whose
    transaction failed.
    """
    cur.execute(CLAIM_SQL, (batch_size,))
    rows = list(cur.fetchall())
    if claimed is not None:
        claimed.extend(r["id"] for r in rows)
    if not rows:
        return Counter()
    plates = {p for r in rows if (p := plate_key(r["plate"] or ""))}
    _lock_keys(cur, sorted({k for p in plates for k in lock_keys(p)}))
    keys = [match_keys(p) for p in plates]
    finals = _nearby_finals(cur, keys, search_window(rows, limits))
    decisions = decide_batch(rows, finals, limits)
    _write(cur, {r["id"]: r for r in rows}, decisions, db.utc_now())
    return Counter(d.status for d in decisions)


def lock_keys(plate: str) -> tuple[str, str]:
    """The plate's length with its first and with its second half: two plates one character
    apart share one of them, so locking both serialises every pair that could match."""
    half = len(plate) // 2
    return f"{len(plate)}<{plate[:half]}", f"{len(plate)}>{plate[half:]}"


def _lock_keys(cur: Cursor, keys: list[str]) -> None:
    """Lock one `plate_locks` row per key, held until the batch commits.

    Rows that exist are locked by a locking read in key order (cheaper than writing them);
    the missing ones are created, which locks them too. A deadlock this may cause between
    two promoters is retried by db.run_transaction.
    """
    if not keys:
        return
    marks = ", ".join(["%s"] * len(keys))
    cur.execute(f"SELECT plate FROM plate_locks WHERE plate IN ({marks}) ORDER BY plate "
                "FOR UPDATE", keys)
    have = {r["plate"] for r in cur.fetchall()}
    missing = [k for k in keys if k not in have]
    if missing:
        values = ", ".join(["(%s, UTC_TIMESTAMP(3))"] * len(missing))
        cur.execute(f"INSERT INTO plate_locks (plate, locked_at) VALUES {values} "
                    "ON DUPLICATE KEY UPDATE locked_at = UTC_TIMESTAMP(3)", missing)


def _nearby_finals(cur: Cursor, keys: list[tuple[str, ...]],
                   window: tuple[datetime, datetime] | None) -> list[Candidate]:
    """The finals sharing a match key with the batch's plates, confirmed inside ``window``."""
    if window is None or not keys:
        return []
    by_part = [sorted({row_keys[i] for row_keys in keys}) for i in range(MATCH_KEY_PARTS)]
    cur.execute(nearby_finals_sql([len(part) for part in by_part]),
                [v for part in by_part for v in (*part, *window)])
    out: dict[int, Candidate] = {}
    for f in cur.fetchall():
        if f["id"] not in out:
            out[f["id"]] = Candidate(f["plate"], _confidences_reader(cur, f["id"]), f["lat"],
                                     f["lon"], f["confirmed_at"], id=f["id"])
    return list(out.values())


def find_duplicate(cur: Cursor, row: dict[str, Any], confidences: Sequence[float],
                   rules: Rules) -> tuple[int, float, float] | None:
    """The earliest final that is ``row``'s plate (the shared plate identity, with these
    per-character confidences) within the radius and the dedup window, for one row decided
    alone (a raw-photo sighting without a partner). Returns (final id, distance m, gap s)."""
    window = timedelta(seconds=rules.dedup_window_s)
    confirmed = row["confirmed_at"]
    finals = _nearby_finals(cur, [match_keys(row["plate"])],
                            (confirmed - window, confirmed + window))
    hit = FinalIndex.of(finals).match(row["plate"], confidences, row["lat"], row["lon"],
                                      confirmed, rules)
    if hit is None or hit[0].id is None:
        return None
    return hit[0].id, hit[1], hit[2]


def _confidences_reader(cur: Cursor, final_id: int) -> Callable[[], object]:
    def read() -> object:
        cur.execute(CONFIDENCES_SQL, (final_id,))
        row = cur.fetchone()
        return row["confidences"] if row else None
    return read


def _union(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> tuple[str, list[Any]]:
    """A derived table of literal rows: ``SELECT %s AS a, %s AS b UNION ALL SELECT %s, %s``."""
    first = "SELECT " + ", ".join(f"%s AS {n}" for n in names)
    rest = " UNION ALL SELECT " + ", ".join(["%s"] * len(names))
    return first + rest * (len(rows) - 1), [v for row in rows for v in row]


def _write(cur: Cursor, rows: dict[int, dict[str, Any]], decisions: list[Decision],
           now: datetime) -> None:
    """All of a batch's decisions in at most four statements (and one read of the new ids)."""
    finals = [d for d in decisions if d.status == "final"]
    if finals:
        decided = []
        for d in finals:
            assert d.final is not None
            decided.append((d.row_id, d.final.plate, json.dumps(list(d.final.confidences)),
                            *match_keys(d.final.plate)))
        table, args = _union(decided, ("id", *_DECIDED))
        cur.execute(f"INSERT INTO final (temporary_id, {', '.join(_COPIED)}, promoted_at, "
                    f"{', '.join(_DECIDED)}) SELECT t.id, "
                    f"{', '.join('t.' + c for c in _COPIED)}, %s, "
                    f"{', '.join('d.' + c for c in _DECIDED)} "
                    f"FROM ({table}) d JOIN `temporary` t ON t.id = d.id", [now, *args])
        cur.execute(f"SELECT id, temporary_id FROM final WHERE temporary_id IN "
                    f"({', '.join(['%s'] * len(finals))})", [d.row_id for d in finals])
        ids = {r["temporary_id"]: r["id"] for r in cur.fetchall()}
        for d in finals:
            d.final.id = ids[d.row_id]  # type: ignore[union-attr]
    updates, counts = [], {}
    for d in decisions:
        final_id = d.final.id if d.final is not None else None
        reason = d.reason
        if d.status == "duplicate":
            reason = f"duplicate of final {final_id}: {d.reason}"[:MAX_REASON]
            when = rows[d.row_id]["confirmed_at"]
            n, last = counts.get(final_id, (0, when))
            counts[final_id] = (n + 1, max(last, when))
        updates.append((d.row_id, d.status, final_id, reason))
    table, args = _union(updates, ("id", "status", "final_id", "reason"))
    cur.execute(f"UPDATE `temporary` t JOIN ({table}) d ON d.id = t.id SET t.status = d.status, "
                "t.final_id = d.final_id, t.reason = d.reason, t.processed_at = %s",
                [*args, now])
    if counts:
        table, args = _union([(i, n, last) for i, (n, last) in counts.items()],
                             ("id", "n", "last"))
        cur.execute(f"UPDATE final f JOIN ({table}) d ON d.id = f.id SET "
                    "f.duplicate_count = f.duplicate_count + d.n, "
                    "f.last_duplicate_at = GREATEST(COALESCE(f.last_duplicate_at, d.last), "
                    "d.last)", args)
