"""The shared evidence rule: intervals by zone, radius, scene, deadline, clocks, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.results import GeoPoint
from gotcha_contracts.rules import (
    DEFAULT_RULES,
    KST,
    RESIDENT_REPORT_ZONES,
    ZONE_RULES,
    ZONES,
    Rules,
    check_evidence,
    haversine_m,
    min_interval,
    reporting_deadline,
    school_zone_active,
)

# Wednesday 2026-11-25 10:00 KST = 01:00 UTC: a school day, school zone active
T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def test_zones_and_defaults() -> None:
    assert set(ZONES) == {"hydrant", "intersection_corner", "bus_stop", "crosswalk",
                          "school_zone", "sidewalk", "other"}
    assert set(ZONE_RULES) == set(ZONES)
    for zone in RESIDENT_REPORT_ZONES:
        assert min_interval(zone) == 60
    assert min_interval("other") == 300
    assert DEFAULT_RULES.radius_m == 15 and DEFAULT_RULES.scene_threshold == 0.5


def test_unknown_zone_raises_in_min_interval() -> None:
    with pytest.raises(ValueError, match="unknown zone"):
        min_interval("parking_lot")


@pytest.mark.parametrize(("zone", "seconds", "ok"), [
    ("hydrant", 60, True), ("hydrant", 59, False), ("sidewalk", 70, True),
    ("crosswalk", 59.9, False), ("bus_stop", 61, True), ("intersection_corner", 60, True),
    ("school_zone", 60, True), ("other", 299, False), ("other", 300, True),
    ("other", 7200, True), ("sidewalk", 7201, False),
])
def test_interval_by_zone(zone: str, seconds: float, ok: bool) -> None:
    reasons = check_evidence(T0, T0 + timedelta(seconds=seconds), 3.0, 0.9, zone, now=NOW
                             + timedelta(seconds=seconds))
    assert (reasons == []) is ok, reasons


def test_all_good_is_empty() -> None:
    assert check_evidence(T0, T0 + timedelta(seconds=70), 2.5, 0.8, "sidewalk", now=NOW) == []


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"distance_m": 15.1}, "same-spot radius"),
    ({"distance_m": None}, "unknown"),
    ({"distance_m": float("nan")}, "unknown"),
    ({"distance_m": -1.0}, "negative"),
    ({"scene_score": 0.49}, "scene mismatch"),
    ({"scene_score": None}, "no scene"),
    ({"scene_score": float("inf")}, "no scene"),
    ({"scene_score": "0.9"}, "no scene"),
    ({"distance_m": 10 ** 400}, "unknown"),
    ({"zone": "parking_lot"}, "unknown zone"),
    ({"confirmed_at": T0 - timedelta(seconds=90)}, "clock went backwards"),
    ({"confirmed_at": T0 + timedelta(seconds=30)}, "shorter than the 60 s"),
    ({"confirmed_at": T0 + timedelta(hours=3)}, "longer than"),
    ({"now": T0 + timedelta(days=3)}, "reporting deadline"),
    ({"now": T0 - timedelta(hours=1)}, "in the future"),
])
def test_each_failure_has_a_reason(kwargs: dict, fragment: str) -> None:
    args = {"first_seen_at": T0, "confirmed_at": T0 + timedelta(seconds=90), "distance_m": 4.0,
            "scene_score": 0.9, "zone": "hydrant", "now": NOW} | kwargs
    reasons = check_evidence(**args)
    assert any(fragment in r for r in reasons), reasons


def test_every_reason_is_listed() -> None:
    reasons = check_evidence(T0, T0 + timedelta(seconds=10), 100.0, 0.1, "hydrant",
                             now=T0 + timedelta(days=5))
    assert len(reasons) == 4, reasons


def test_boundaries_of_radius_and_threshold() -> None:
    assert check_evidence(T0, T0 + timedelta(seconds=60), 15.0, 0.5, "hydrant", now=NOW) == []


def test_naive_times_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_evidence(datetime(2026, 11, 25, 1), T0, 1.0, 0.9, "hydrant", now=NOW)
    with pytest.raises(TypeError):
        check_evidence("2026-11-25", T0, 1.0, 0.9, "hydrant", now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(("first_kst", "deadline_kst"), [
    (datetime(2026, 11, 25, 10, 0, tzinfo=KST), datetime(2026, 11, 27, 0, 0, tzinfo=KST)),
    (datetime(2026, 11, 25, 0, 0, tzinfo=KST), datetime(2026, 11, 27, 0, 0, tzinfo=KST)),
    (datetime(2026, 11, 25, 23, 59, 59, tzinfo=KST), datetime(2026, 11, 27, 0, 0, tzinfo=KST)),
    (datetime(2026, 12, 31, 8, 0, tzinfo=KST), datetime(2027, 1, 2, 0, 0, tzinfo=KST)),
    (datetime(2028, 2, 28, 12, 0, tzinfo=KST), datetime(2028, 3, 1, 0, 0, tzinfo=KST)),
])
def test_reporting_deadline(first_kst: datetime, deadline_kst: datetime) -> None:
    deadline = reporting_deadline(first_kst)
    assert deadline == deadline_kst
    assert deadline.tzinfo == UTC
    # 23:30 UTC is already the next day in Korea: the deadline counts from the Korean date
    assert reporting_deadline(datetime(2026, 11, 24, 23, 30, tzinfo=UTC)) == datetime(
        2026, 11, 26, 15, 0, tzinfo=UTC)


def test_deadline_accepts_other_offsets() -> None:
    la = timezone(timedelta(hours=-8))
    assert reporting_deadline(datetime(2026, 11, 24, 17, 0, tzinfo=la)) == reporting_deadline(
        datetime(2026, 11, 25, 1, 0, tzinfo=UTC))


@pytest.mark.parametrize(("local", "active"), [
    (datetime(2026, 11, 25, 8, 0, tzinfo=KST), True),  # Wednesday
    (datetime(2026, 11, 25, 7, 59, tzinfo=KST), False),
    (datetime(2026, 11, 25, 19, 59, tzinfo=KST), True),
    (datetime(2026, 11, 25, 20, 0, tzinfo=KST), False),
    (datetime(2026, 11, 28, 12, 0, tzinfo=KST), False),  # Saturday
    (datetime(2026, 11, 29, 12, 0, tzinfo=KST), False),  # Sunday
    (datetime(2026, 11, 27, 12, 0, tzinfo=KST), True),  # Friday
])
def test_school_zone_hours(local: datetime, active: bool) -> None:
    assert school_zone_active(local) is active
    assert school_zone_active(local.astimezone(UTC)) is active


def test_school_zone_off_hours_needs_the_local_interval() -> None:
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=KST)
    assert DEFAULT_RULES.min_interval("school_zone", saturday) == 300
    reasons = check_evidence(saturday, saturday + timedelta(seconds=90), 1.0, 0.9,
                             "school_zone", now=saturday + timedelta(minutes=5))
    assert any("300 s minimum for zone other" in r for r in reasons), reasons
    weekday = datetime(2026, 11, 25, 12, 0, tzinfo=KST)
    assert check_evidence(weekday, weekday + timedelta(seconds=90), 1.0, 0.9, "school_zone",
                          now=weekday + timedelta(minutes=5)) == []


def test_overrides_merge_per_zone_and_stay_frozen() -> None:
    rules = DEFAULT_RULES.with_overrides(min_interval_s={"other": 600}, radius_m=None,
                                         scene_threshold=0.7)
    assert rules.min_interval("other") == 600 and rules.min_interval("hydrant") == 60
    assert rules.scene_threshold == 0.7 and rules.radius_m == DEFAULT_RULES.radius_m
    assert DEFAULT_RULES.min_interval("other") == 300  # the default is untouched
    with pytest.raises(AttributeError):
        rules.radius_m = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        rules.min_interval_s["other"] = 1  # type: ignore[index]
    reasons = check_evidence(T0, T0 + timedelta(seconds=400), 1.0, 0.65, "other", now=NOW,
                             rules=rules)
    assert len(reasons) == 2, reasons


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"min_interval_s": {"moon": 5}}, "unknown zone"),
    ({"min_interval_s": {"other": 0}}, "must be > 0"),
    ({"radius_m": -1}, "positive"),
    ({"scene_threshold": 1.5}, "(0, 1)"),
    ({"max_interval_s": 30}, "shorter than a minimum"),
    ({"colour": "red"}, "unknown rule field"),
])
def test_bad_overrides(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        DEFAULT_RULES.with_overrides(**overrides)


def test_overrides_from_config_section() -> None:
    from edge_agent.config import RulesConfig

    section = RulesConfig(min_interval_s={"sidewalk": 120}, radius_m=20)
    rules = DEFAULT_RULES.with_overrides(**section.model_dump())
    assert rules.min_interval("sidewalk") == 120 and rules.radius_m == 20


@pytest.mark.parametrize(("a", "b", "metres", "tol"), [
    ((37.5665, 126.9780), (37.5665, 126.9780), 0.0, 1e-9),
    # one degree of latitude is about 111.2 km
    ((37.0, 127.0), (38.0, 127.0), 111_195.0, 5.0),
    # Seoul City Hall to Busan City Hall, about 325 km
    ((37.5663, 126.9779), (35.1798, 129.0750), 325_000.0, 3_000.0),
    # 10 m east in Seoul
    ((37.5665, 126.9780), (37.5665, 126.9780 + 10 / (111_320 * 0.7933)), 10.0, 0.1),
])
def test_haversine(a, b, metres: float, tol: float) -> None:
    assert abs(haversine_m(a, b) - metres) <= tol
    assert abs(haversine_m(GeoPoint(*a), GeoPoint(*b)) - metres) <= tol


def test_haversine_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        haversine_m((200.0, 0.0), (0.0, 0.0))


def test_expiry_and_dedup_helpers() -> None:
    rules = Rules()
    assert not rules.expired(T0, T0 + timedelta(hours=1))
    assert rules.expired(T0, T0 + timedelta(hours=2, seconds=1))
    assert rules.is_duplicate(T0, T0 + timedelta(hours=11), 5.0)
    assert not rules.is_duplicate(T0, T0 + timedelta(hours=13), 5.0)
    assert not rules.is_duplicate(T0, T0 + timedelta(hours=1), 50.0)


def test_rules_built_directly_are_validated_too() -> None:
    with pytest.raises(ValueError, match="unknown zone"):
        Rules(min_interval_s={"parking_lot": 60})
    partial = Rules(min_interval_s={"hydrant": 90})
    assert partial.min_interval("hydrant") == 90
    assert partial.min_interval("sidewalk") == partial.default_min_interval_s == 300


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"radius_m": float("nan")}, "positive"),
    ({"dedup_window_s": float("inf")}, "positive"),
    ({"scene_threshold": 0.0}, "(0, 1)"),
    ({"future_tolerance_s": -1}, ">= 0"),
])
def test_rules_refuse_absurd_numbers(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Rules(**kwargs)


def test_future_tolerance_boundary() -> None:
    now = T0
    ok = check_evidence(T0 - timedelta(seconds=60), T0 + timedelta(seconds=299), 1.0, 0.9,
                        "hydrant", now=now)
    assert ok == []
    late = check_evidence(T0 - timedelta(seconds=60), T0 + timedelta(seconds=301), 1.0, 0.9,
                          "hydrant", now=now)
    assert any("confirmed_at" in r and "future" in r for r in late), late
