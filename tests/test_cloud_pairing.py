"""Pairing raw-photo sightings on the local MariaDB: the device's rules, decided in the cloud."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from cloud_helpers import query, run_at_once

from cloud_sync import db, pairing, promote, raw

SPOT = (37.56647, 126.97796)
SCENE = [1.0, 0.0, 0.0, 0.0]
NOW = datetime.now(UTC).replace(microsecond=0)


def _sighting(conn, *, plate: str = "12가3456", at: datetime = NOW - timedelta(minutes=40),
              where: tuple[float, float] = SPOT, device: str = "cam-1", zone: str = "other",
              scene: list[float] | None = None, confs: list[float] | None = None) -> str:
    report_id = str(uuid.uuid4())
    doc = json.dumps({"schema": raw.SIGHTING_SCHEMA, "char_confidences": confs or
                      [0.95] * len(plate), "scene_embedding": scene or SCENE,
                      "scene_model_id": "m"})
    row = {"report_id": report_id, "status": "sighting", "reason": None, "device_id": device,
           "plate": plate, "plate_confidence": 0.9, "plate_use": "private", "zone": zone,
           "lat": where[0], "lon": where[1], "accuracy_m": 5.0, "first_seen_at": db.db_time(at),
           "confirmed_at": db.db_time(at), "bucket": "b", "manifest_key": f"raw/{device}/{at}.jpg",
           "manifest_etag": None, "manifest_sha256": hashlib.sha256(doc.encode()).hexdigest(),
           "photo1_key": f"raw/{device}/{report_id}.jpg", "photo1_sha256": "0" * 64,
           "manifest": doc, "received_at": db.db_time(at + timedelta(seconds=30))}
    with db.transaction(conn) as cur:
        cur.execute(raw.INSERT_SIGHTING_SQL, [row[c] for c in raw.SIGHTING_COLUMNS])
    return report_id


def _statuses(conn) -> dict[str, str]:
    return {r["report_id"]: r["status"] for r in query(
        conn, "SELECT report_id, status FROM `temporary` WHERE plate_use IS NOT NULL "
        "AND photo2_key IS NULL")}


def test_two_sightings_pair_and_promote(conn):
    a = _sighting(conn, confs=[0.95, 0.95, 0.4, 0.95, 0.95, 0.95, 0.95])
    b = _sighting(conn, at=NOW - timedelta(minutes=34))
    assert pairing.pair_sightings(conn).paired == 1
    [pair] = query(conn, "SELECT plate_confidence, plate_char_confidences FROM `temporary` "
                         "WHERE photo2_key IS NOT NULL")
    # the pair keeps each character's weakest read, as a device report does (not 0.9 each)
    assert json.loads(pair["plate_char_confidences"])[2] == 0.4
    assert pair["plate_confidence"] == 0.4
    assert _statuses(conn) == {a: "paired", b: "paired"}
    assert pairing.pair_sightings(conn).as_dict()["paired"] == 0  # nothing twice
    assert promote.promote_pending(conn).final == 1
    [final] = query(conn, "SELECT * FROM final")
    assert final["scene_score"] > 0.9 and final["plate"] == "12가3456"


def test_one_unsure_character_apart_is_the_same_plate(conn):
    _sighting(conn, plate="123가4567", confs=[0.95] * 8)
    _sighting(conn, plate="123가4568", at=NOW - timedelta(minutes=34),
              confs=[0.95] * 7 + [0.3])
    assert pairing.pair_sightings(conn).paired == 1
    [pair] = query(conn, "SELECT * FROM `temporary` WHERE photo2_key IS NOT NULL")
    assert pair["plate"] == "123가4567" and json.loads(pair["manifest"])["plate_alt"] == \
        "123가4568"


def test_what_does_not_pair(conn):
    base = NOW - timedelta(minutes=50)
    _sighting(conn, at=base, plate="11가1111")
    _sighting(conn, at=base + timedelta(minutes=2), plate="11가1111")  # before the 5 minutes
    _sighting(conn, at=base, plate="22나2222")
    _sighting(conn, at=base + timedelta(minutes=6), plate="22나2222",
              where=(SPOT[0] + 0.001, SPOT[1]))  # 111 m away
    _sighting(conn, at=base, plate="33다3333")
    _sighting(conn, at=base + timedelta(minutes=6), plate="33다3333",
              scene=[0.6, 0.8, 0.0, 0.0])  # another background
    _sighting(conn, at=base, plate="44라4444")
    _sighting(conn, at=base + timedelta(minutes=6), plate="44라4444", device="cam-2")
    _sighting(conn, at=base, plate="55마5555")
    _sighting(conn, at=base + timedelta(minutes=6), plate="55마5556")  # two sure reads
    result = pairing.pair_sightings(conn)
    assert result.paired == 0 and result.waiting == 10


def test_the_zone_sets_the_interval(conn):
    base = NOW - timedelta(minutes=50)
    _sighting(conn, at=base, zone="hydrant")
    _sighting(conn, at=base + timedelta(seconds=90), zone="hydrant")
    assert pairing.pair_sightings(conn).paired == 1


def test_a_lone_sighting_near_a_final_is_its_duplicate_and_old_ones_expire(conn):
    _sighting(conn)
    _sighting(conn, at=NOW - timedelta(minutes=34))
    pairing.pair_sightings(conn)
    promote.promote_pending(conn)
    late = _sighting(conn, at=NOW - timedelta(minutes=20))
    old = _sighting(conn, plate="99하9999", at=NOW - timedelta(days=3))
    result = pairing.pair_sightings(conn)
    assert (result.duplicate, result.expired) == (1, 1)
    assert _statuses(conn)[late] == "duplicate" and _statuses(conn)[old] == "expired"
    assert query(conn, "SELECT duplicate_count FROM final") == [{"duplicate_count": 1}]


def test_two_promoters_pair_once(conn, mysql_database):
    for i in range(6):
        _sighting(conn, plate=f"{10 + i}가1234")
        _sighting(conn, plate=f"{10 + i}가1234", at=NOW - timedelta(minutes=34))
    results = run_at_once(mysql_database, 3,
                          lambda own: pairing.pair_sightings(own, lock_wait_s=30), 60)
    assert sum(r.paired for r in results) == 6
    assert len(query(conn, "SELECT * FROM `temporary` WHERE photo2_key IS NOT NULL")) == 6


def test_a_sighting_with_a_garbage_embedding_blocks_no_one(conn):
    """A stored embedding that is no list of numbers cannot be compared: that pair is not
    made, and the promoter's other sightings still pair (before, every run raised)."""
    bad = _sighting(conn, plate="34나5678", scene=["x", 1])
    bad_partner = _sighting(conn, plate="34나5678", at=NOW - timedelta(minutes=34),
                            scene=[1.0, 2.0])
    a = _sighting(conn)
    b = _sighting(conn, at=NOW - timedelta(minutes=34))
    assert pairing.pair_sightings(conn).paired == 1
    statuses = _statuses(conn)
    assert statuses[a] == statuses[b] == "paired"
    assert statuses[bad] != "paired" and statuses[bad_partner] != "paired"
