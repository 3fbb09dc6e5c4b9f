"""The promoter's decisions in memory (no database): rules, limits, duplicates, bad rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from cloud_sync.decide import Candidate, char_confidences, decide_batch, search_window
from cloud_sync.limits import CloudLimits

T = datetime(2026, 11, 25, 3, 0)  # naive UTC, as rows come from MySQL
HERE = (37.56647, 126.97796)


def row(i: int, plate: str = "12가3456", confirmed: datetime = T, where=HERE, **extra) -> dict:
    base = {"id": i, "plate": plate, "plate_confidence": 0.95, "plate_char_confidences": None,
            "zone": "sidewalk", "lat": where[0], "lon": where[1],
            "first_seen_at": confirmed - timedelta(seconds=90), "confirmed_at": confirmed,
            "scene_score": 0.9, "photo_distance_m": 2.0, "rules": None,
            "received_at": T + timedelta(minutes=5)}
    return {**base, **extra}


def test_char_confidences_from_what_a_row_stores():
    assert char_confidences("12가3456", "[0.9,0.9,0.9,0.9,0.9,0.9,0.3]")[-1] == 0.3
    assert char_confidences("12가3456", "0.93") == (0.93,) * 7  # COALESCE gave the number
    assert char_confidences("12가3456", 0.5) == (0.5,) * 7
    assert char_confidences("12가3456", "[0.9]") == (0.0,) * 7  # wrong length: weakest
    assert char_confidences("12가3456", None) == (0.0,) * 7


def test_earlier_report_wins_within_a_batch_and_later_ones_duplicate_it():
    rows = [row(2, confirmed=T + timedelta(minutes=5)), row(1), row(3, plate="34나5678")]
    decisions = {d.row_id: d for d in decide_batch(rows, [], CloudLimits())}
    assert decisions[1].status == "final" and decisions[3].status == "final"
    assert decisions[2].status == "duplicate" and decisions[2].final is decisions[1].final
    assert decisions[2].reason == "same plate 0.0 m and 300 s away"


def test_the_earliest_existing_final_is_the_match():
    finals = [Candidate("12가3456", "0.95", *HERE, T - timedelta(hours=2), id=8),
              Candidate("12가3456", "0.95", *HERE, T - timedelta(hours=3), id=9),
              Candidate("12가3456", "0.95", *HERE, T - timedelta(hours=13), id=7)]  # too old
    [d] = decide_batch([row(1)], finals, CloudLimits())
    assert d.status == "duplicate" and d.final.id == 9


def test_one_unsure_character_matches_a_sure_final_nearby_only():
    unsure = json.dumps([0.95] * 6 + [0.3])
    finals = [Candidate("12가3458", "0.95", 37.57, 126.97796, T, id=1),  # 400 m away
              Candidate("12가3458", "0.95", *HERE, T, id=2)]
    [d] = decide_batch([row(1, plate_char_confidences=unsure)], finals, CloudLimits())
    assert d.status == "duplicate" and d.final.id == 2
    assert d.reason.startswith("plate 12가3458 (read 12가3456, one unsure character)")


def test_bad_rows_are_rejected_one_by_one():
    rows = [row(1, confirmed=datetime(9999, 12, 31, 23, 59)), row(2, plate="12흐3456"),
            row(3, rules='{"version": 1, "overrides": {"radius_m": 99}}'),
            row(4, rules="not json"), row(5, lat=None), row(6, plate="34나5678")]
    decisions = {d.row_id: d for d in decide_batch(rows, [], CloudLimits())}
    assert "could not check this report: OverflowError" in decisions[1].reason
    assert "is not a Korean plate" in decisions[2].reason
    assert "radius_m 99 is above the cloud's 15 ceiling" in decisions[3].reason
    assert "cannot be read" in decisions[4].reason
    assert "no location" in decisions[5].reason
    assert decisions[6].status == "final"
    assert search_window(rows, CloudLimits())[1].year == 9999  # no overflow either


def test_plates_one_character_apart_share_a_lock_key():
    from cloud_sync.promote import lock_keys

    for a, b in [("12가3456", "12가3458"), ("12가3456", "17가3456"), ("서울12가3456",
                                                                   "부산12가3456")]:
        assert set(lock_keys(a)) & set(lock_keys(b))
    assert not set(lock_keys("12가3456")) & set(lock_keys("123가3456"))
