"""Pairing raw-photo sightings into reports, by the rules the device confirms its own with.

A raw photo gives single sightings (:mod:`cloud_sync.raw`). Two of them are one report when,
as on the device (docs/design.md, "Lifecycle" and "Evidence rule"):

* they come from the same device and are the same plate (:func:`plate_identity.same_plate`:
  equal, or one unsure character apart; the sure read is kept);
* the two photos' own places are within the same-spot radius;
* the later one is at least the zone's minimum interval after the earlier one, and at most
  the maximum interval; the reporting deadline has not passed when the later one arrived;
* their scenes match: the score comes from the scene embeddings stored with the sightings
  (the scene with the vehicle masked out), never from calling the service again.

The pair becomes a ``pending`` row of `temporary` (source ``raw``, photos 1 and 2), which the
promoter then checks and de-duplicates exactly like a device's report. A sighting with no
partner that lies within the radius and dedup window of a final of its plate is a duplicate
of it, as on the device; one still alone at the reporting deadline is ``expired``.

Pairing runs under one MySQL named lock, so two promoters never pair the same sighting twice;
raw photos are few, and one pass over them is a few queries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql.cursors

from cloud_sync import db
from cloud_sync.decide import MAX_REASON, ROW_ERRORS
from cloud_sync.promote import find_duplicate
from gotcha_contracts.plate_grammar import parse_plate
from gotcha_contracts.plate_identity import same_plate
from gotcha_contracts.rules import DEFAULT_RULES, Rules, haversine_m, reporting_deadline

log = logging.getLogger(__name__)

Cursor = pymysql.cursors.DictCursor
LOCK_NAME = "gotcha_raw_pairing"
PAIR_NAMESPACE = uuid.UUID("0d5c3f4e-8b21-4f6a-9c0e-2a7b91d4e6f3")
PAIR_SCHEMA = "gotcha.raw-pair/1"
# Scene score from the cosine of the two masked-scene embeddings: a logistic centred where the
# two kinds of pair part. Re-shot photos of one spot (camera moved a little, light changed)
# gave 0.90-0.95 on the e2e-dev photos, photos of other spots 0.61-0.80.
EMBEDDING_MID, EMBEDDING_SCALE = 0.85, 0.02

COLUMNS = ("id, report_id, device_id, plate, plate_confidence, zone, lat, lon, accuracy_m, "
           "confirmed_at, received_at, bucket, manifest_key, photo1_key, photo1_sha256, manifest")
BATCH_SQL = (f"SELECT {COLUMNS} FROM `temporary` FORCE INDEX (temporary_status_id_ix) "
             "WHERE status = 'sighting' ORDER BY id LIMIT %s FOR UPDATE")
PARTNERS_SQL = (f"SELECT {COLUMNS} FROM `temporary` FORCE INDEX (temporary_device_time_ix) "
                "WHERE device_id = %s AND confirmed_at BETWEEN %s AND %s AND status = 'sighting' "
                "AND id <> %s ORDER BY confirmed_at, id FOR UPDATE")
INSERT_PAIR_SQL = (
    "INSERT INTO `temporary` (report_id, source, status, device_id, plate, plate_confidence, "
    "plate_char_confidences, plate_use, zone, lat, lon, accuracy_m, first_seen_at, confirmed_at, "
    "scene_score, photo_distance_m, bucket, manifest_key, manifest_sha256, photo1_key, "
    "photo1_sha256, photo2_key, photo2_sha256, manifest, received_at) "
    "VALUES (%s, 'raw', 'pending', " + ", ".join(["%s"] * 22) + ") "
    "ON DUPLICATE KEY UPDATE id = id")


@dataclass
class PairingResult:
    paired: int = 0
    duplicate: int = 0
    expired: int = 0
    waiting: int = 0
    skipped: bool = False  # another promoter held the pairing lock
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"paired": self.paired, "duplicate": self.duplicate, "expired": self.expired,
                "waiting": self.waiting, "skipped": self.skipped}


def scene_score(a: list[float] | None, b: list[float] | None) -> float | None:
    """Scene-match score in [0, 1] of two stored embeddings; None when they cannot be compared."""
    if not (_numbers(a) and _numbers(b)) or len(a) != len(b):  # type: ignore[arg-type]
        return None
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if not norm or not math.isfinite(dot):
        return None
    z = (dot / norm - EMBEDDING_MID) / EMBEDDING_SCALE
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _numbers(values: object) -> bool:
    """A non-empty list of finite numbers (what a stored embedding must be to be compared)."""
    return (isinstance(values, list) and bool(values)
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values))


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    try:
        doc = json.loads(row.get("manifest") or "{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def judge_identity(a: str, a_confs: Any, b: str, b_confs: Any) -> tuple[str, str] | None:
    """The device's plate identity (gotcha_contracts.plate_identity) on two sightings' stored
    per-character confidences; a list that does not line up with its plate counts as unsure
    everywhere."""
    return same_plate(a, _line_up(a, a_confs), b, _line_up(b, b_confs))


def _line_up(plate: str, confs: Any) -> list[float]:
    ok = (isinstance(confs, list) and len(confs) == len(plate)
          and all(isinstance(c, int | float) and not isinstance(c, bool) for c in confs))
    return [float(c) for c in confs] if ok else [0.0] * len(plate)


def judge(first: dict[str, Any], second: dict[str, Any], rules: Rules
          ) -> tuple[list[str], dict[str, Any]]:
    """Why two sightings are not one report ([] when they are), and the pair's numbers."""
    doc_a, doc_b = _doc(first), _doc(second)
    identity = judge_identity(first["plate"], doc_a.get("char_confidences"),
                              second["plate"], doc_b.get("char_confidences"))
    if identity is None:
        return [f"plates {first['plate']} and {second['plate']} differ"], {}
    distance = haversine_m((first["lat"], first["lon"]), (second["lat"], second["lon"]))
    score = None
    if doc_a.get("scene_model_id") == doc_b.get("scene_model_id"):
        score = scene_score(doc_a.get("scene_embedding"), doc_b.get("scene_embedding"))
    later = max(first["received_at"], second["received_at"])
    reasons = rules.check_evidence(_utc(first["confirmed_at"]), _utc(second["confirmed_at"]),
                                   distance, score, first["zone"] or "other", now=_utc(later))
    return reasons, {"plate": identity[0], "plate_alt": identity[1], "distance_m": distance,
                     "scene_score": score, "received_at": later}


def pair_sightings(conn: db.Connection, rules: Rules = DEFAULT_RULES, batch_size: int = 500,
                   now: datetime | None = None, lock_wait_s: int = 10) -> PairingResult:
    """One pass over the waiting sightings, under the pairing lock."""
    result = PairingResult()
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s) AS got", (LOCK_NAME, lock_wait_s))
        got = (cur.fetchone() or {}).get("got")
    conn.commit()
    if got != 1:
        result.skipped = True
        log.info("pairing skipped: another promoter holds the %s lock", LOCK_NAME)
        return result
    try:
        db.run_transaction(conn, lambda cur: _pass(cur, rules, batch_size, now, result))
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))
        conn.commit()
    log.info("pairing: %s", result.as_dict())
    return result


def _pass(cur: Cursor, rules: Rules, batch_size: int, now: datetime | None,
          result: PairingResult) -> None:
    for name in ("paired", "duplicate", "expired", "waiting"):
        setattr(result, name, 0)  # a retried transaction starts its counts again
    now = now or datetime.now(UTC)
    cur.execute(BATCH_SQL, (batch_size,))
    rows = sorted(cur.fetchall(), key=lambda r: (r["confirmed_at"], r["id"]))
    done: set[int] = set()
    window = timedelta(seconds=rules.max_interval_s)
    for first in rows:
        if first["id"] in done:
            continue
        try:
            _pair_or_wait(cur, first, rules, window, now, done, result)
        except ROW_ERRORS as exc:  # one unusable sighting is set aside; the others go on
            reason = f"could not pair this sighting: {type(exc).__name__}: {exc}"[:MAX_REASON]
            cur.execute("UPDATE `temporary` SET status = 'rejected', reason = %s, "
                        "processed_at = %s WHERE id = %s", (reason, db.db_time(now), first["id"]))
            done.add(first["id"])


def _pair_or_wait(cur: Cursor, first: dict[str, Any], rules: Rules, window: timedelta,
                  now: datetime, done: set[int], result: PairingResult) -> None:
    """Pair ``first`` with its earliest partner that meets the rules, or leave it alone."""
    cur.execute(PARTNERS_SQL, (first["device_id"], first["confirmed_at"],
                               first["confirmed_at"] + window, first["id"]))
    for second in cur.fetchall():
        if second["id"] in done or (second["confirmed_at"], second["id"]) < (
                first["confirmed_at"], first["id"]):
            continue
        reasons, pair = judge(first, second, rules)
        if not reasons:
            _store_pair(cur, first, second, pair, now)
            done |= {first["id"], second["id"]}
            result.paired += 1
            return
    _alone(cur, first, rules, now, result)
    done.add(first["id"])


def _alone(cur: Cursor, row: dict[str, Any], rules: Rules, now: datetime,
           result: PairingResult) -> None:
    """A sighting with no partner yet: a duplicate of a final, expired, or still waiting."""
    stamp = db.db_time(now)
    match = find_duplicate(cur, row, _line_up(row["plate"], _doc(row).get("char_confidences")),
                           rules)
    if match is not None:
        final_id, distance, gap = match
        cur.execute("UPDATE `temporary` SET status = 'duplicate', final_id = %s, reason = %s, "
                    "processed_at = %s WHERE id = %s",
                    (final_id, f"duplicate of final {final_id}: same plate {distance:.1f} m and "
                     f"{gap:.0f} s away", stamp, row["id"]))
        cur.execute("UPDATE final SET duplicate_count = duplicate_count + 1, "
                    "last_duplicate_at = GREATEST(COALESCE(last_duplicate_at, %s), %s) "
                    "WHERE id = %s", (row["confirmed_at"], row["confirmed_at"], final_id))
        result.duplicate += 1
    elif now >= reporting_deadline(_utc(row["confirmed_at"])):
        cur.execute("UPDATE `temporary` SET status = 'expired', reason = %s, processed_at = %s "
                    "WHERE id = %s", ("no second photo of this plate here before the reporting "
                                      "deadline", stamp, row["id"]))
        result.expired += 1
    else:
        result.waiting += 1


def _store_pair(cur: Cursor, first: dict[str, Any], second: dict[str, Any],
                pair: dict[str, Any], now: datetime) -> None:
    report_id = str(uuid.uuid5(PAIR_NAMESPACE, f"{first['report_id']}+{second['report_id']}"))
    parsed = parse_plate(pair["plate"])
    keep_first = pair["plate"] == first["plate"]
    source = first if keep_first else second
    doc = {"schema": PAIR_SCHEMA, "report_id": report_id, "plate": pair["plate"],
           "plate_alt": pair["plate_alt"] if pair["plate_alt"] != pair["plate"] else None,
           "sightings": [first["report_id"], second["report_id"]],
           "distance_m": round(pair["distance_m"], 2), "scene_score": pair["scene_score"],
           "photos": [{"key": r["photo1_key"], "sha256": r["photo1_sha256"],
                       "captured_at": _utc(r["confirmed_at"]).isoformat(),
                       "lat": r["lat"], "lon": r["lon"]} for r in (first, second)]}
    body = json.dumps(doc, ensure_ascii=False, sort_keys=True)
    # per character, the weakest of the reads that gave the kept plate (as a device report)
    reads = [_line_up(r["plate"], _doc(r).get("char_confidences")) for r in (first, second)
             if r["plate"] == pair["plate"]]
    confidences = [min(column) for column in zip(*reads, strict=True)]
    cur.execute(INSERT_PAIR_SQL, (
        report_id, first["device_id"], pair["plate"],
        min([source["plate_confidence"], *confidences]), json.dumps(confidences),
        parsed.use if parsed else None, first["zone"], first["lat"], first["lon"],
        first["accuracy_m"], first["confirmed_at"], second["confirmed_at"], pair["scene_score"],
        pair["distance_m"], first["bucket"], second["manifest_key"],
        hashlib.sha256(body.encode("utf-8")).hexdigest(), first["photo1_key"],
        first["photo1_sha256"], second["photo1_key"], second["photo1_sha256"], body,
        pair["received_at"]))
    cur.execute("UPDATE `temporary` SET status = 'paired', reason = %s, processed_at = %s "
                "WHERE id IN (%s, %s)", (f"photo of report {report_id}", db.db_time(now),
                                         first["id"], second["id"]))
    log.info("paired %s: %s, %.1f m, scene %.2f", report_id, pair["plate"], pair["distance_m"],
             pair["scene_score"] or 0.0)
