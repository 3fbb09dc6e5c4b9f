"""The evidence rule, written once: the device decides with it and the cloud re-checks with it.

Why pure and here: a report the device confirms must be one the cloud would confirm too, so
intervals, radius, scene threshold, windows and the reporting deadline live in one module with
no heavy imports (it ships on the device and in the Lambda zip). Facts (docs/design.md,
section "Evidence rule"): two photos of the vehicle from the same spot, at least 1 minute apart
in the six resident-report zones (5 minutes elsewhere, by local rule), reported by 24:00 the
next day; the school zone counts on weekdays 08:00-20:00.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Protocol

KST = timezone(timedelta(hours=9), "KST")  # Korea keeps no daylight saving time

RESIDENT_REPORT_ZONES: tuple[str, ...] = ("hydrant", "intersection_corner", "bus_stop",
                                          "crosswalk", "school_zone", "sidewalk")
ZONES: tuple[str, ...] = (*RESIDENT_REPORT_ZONES, "other")


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """What the law says about one zone: its minimum interval and where it applies."""

    min_interval_s: float
    description: str


ZONE_RULES: Mapping[str, ZoneRule] = MappingProxyType({
    "hydrant": ZoneRule(60.0, "within 5 m of a fire hydrant"),
    "intersection_corner": ZoneRule(60.0, "within 5 m of an intersection corner"),
    "bus_stop": ZoneRule(60.0, "within 10 m of a bus stop"),
    "crosswalk": ZoneRule(60.0, "on a crosswalk"),
    "school_zone": ZoneRule(60.0, "road at a primary-school main gate, weekdays 08:00-20:00"),
    "sidewalk": ZoneRule(60.0, "on a sidewalk"),
    "other": ZoneRule(300.0, "elsewhere: local rules, commonly 5 minutes"),
})

SCHOOL_ZONE_HOURS_KST = (8, 20)  # active from 08:00 to before 20:00, Monday to Friday


class _HasLatLon(Protocol):
    lat: float
    lon: float


Point = tuple[float, float] | _HasLatLon

EARTH_RADIUS_M = 6_371_008.8


def _as_lat_lon(point: Point) -> tuple[float, float]:
    if isinstance(point, tuple | list):
        lat, lon = point[0], point[1]
    else:
        lat, lon = point.lat, point.lon
    lat, lon = float(lat), float(lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"point out of range: lat={lat}, lon={lon}")
    return lat, lon


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres between two (lat, lon) points or GeoPoint-likes."""
    lat1, lon1 = _as_lat_lon(a)
    lat2, lon2 = _as_lat_lon(b)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _utc(t: datetime, name: str) -> datetime:
    if not isinstance(t, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(UTC)


def finite_or_none(value: object) -> float | None:
    """A finite float, or None for None, NaN, infinities and non-numbers (unknown values)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def reporting_deadline(first_seen_at: datetime) -> datetime:
    """24:00 KST of the day after the first photo, as an aware UTC datetime."""
    local_day = _utc(first_seen_at, "first_seen_at").astimezone(KST).date()
    midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=KST)
    return (midnight + timedelta(days=2)).astimezone(UTC)


def school_zone_active(t: datetime) -> bool:
    """Whether the school-zone rule applies at ``t`` (weekday, 08:00-20:00 KST).

    Public holidays are not modelled: on a weekday holiday the zone counts as active.
    """
    local = _utc(t, "t").astimezone(KST)
    start, end = SCHOOL_ZONE_HOURS_KST
    return local.weekday() < 5 and start <= local.hour < end


def _frozen_mapping(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({str(k): float(v) for k, v in values.items()})


@dataclass(frozen=True, slots=True)
class Rules:
    """The numbers of the evidence rule. Build variants with :meth:`with_overrides`."""

    min_interval_s: Mapping[str, float] = field(
        default_factory=lambda: _frozen_mapping(
            {zone: rule.min_interval_s for zone, rule in ZONE_RULES.items()}),
        hash=False)
    default_min_interval_s: float = 300.0  # for a zone missing from min_interval_s
    radius_m: float = 15.0  # two sightings this close are the same spot
    scene_threshold: float = 0.5  # scene-match score at or above which the scene is the same
    max_interval_s: float = 2 * 3600.0  # a candidate not confirmed within this expires
    dedup_window_s: float = 12 * 3600.0  # a report for P near L this recent absorbs sightings
    future_tolerance_s: float = 300.0  # device clocks drift; beyond this a time is "future"

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_interval_s", _frozen_mapping(self.min_interval_s))
        unknown = sorted(set(self.min_interval_s) - set(ZONES))
        if unknown:
            raise ValueError(f"unknown zone(s) {', '.join(unknown)}; zones are "
                             f"{', '.join(ZONES)}")
        for zone, seconds in self.min_interval_s.items():
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"min_interval_s[{zone!r}] must be > 0 seconds, got {seconds}")
        positive = ("default_min_interval_s", "radius_m", "max_interval_s", "dedup_window_s")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Rules.{name} must be a positive number, got {value!r}")
        if not (0.0 < self.scene_threshold < 1.0):
            raise ValueError(f"Rules.scene_threshold must be in (0, 1), got "
                             f"{self.scene_threshold!r}")
        if self.future_tolerance_s < 0:
            raise ValueError("Rules.future_tolerance_s must be >= 0")
        shortest_needed = max(self.min_interval_s.values(), default=0.0)
        if self.max_interval_s < max(shortest_needed, self.default_min_interval_s):
            raise ValueError(f"Rules.max_interval_s ({self.max_interval_s}) is shorter than a "
                             "minimum interval; no candidate could ever be confirmed")

    def with_overrides(self, **overrides: Any) -> Rules:
        """A copy with the given fields replaced; None values are ignored (config "unset").

        ``min_interval_s`` merges per zone, so ``with_overrides(min_interval_s={"other": 600})``
        keeps the other zones. Pass ``RulesConfig.model_dump()`` straight in.
        """
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f for f in Rules.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        if "min_interval_s" in changes:
            unknown_zones = set(changes["min_interval_s"]) - set(ZONES)
            if unknown_zones:
                raise ValueError(f"unknown zone(s) {', '.join(sorted(unknown_zones))}; zones are "
                                 f"{', '.join(ZONES)}")
            changes["min_interval_s"] = {**self.min_interval_s, **changes["min_interval_s"]}
        return replace(self, **changes)

    def effective_zone(self, zone: str, at: datetime) -> str:
        """The zone whose interval applies at ``at``: a school zone off hours counts as other."""
        if zone == "school_zone" and not school_zone_active(at):
            return "other"
        return zone

    def min_interval(self, zone: str, at: datetime | None = None) -> float:
        """Minimum seconds between the two photos in ``zone`` (at time ``at`` if given).

        Raises ValueError for a zone that is not in ZONES.
        """
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        if at is not None:
            zone = self.effective_zone(zone, at)
        return self.min_interval_s.get(zone, self.default_min_interval_s)

    def same_spot(self, distance_m: float) -> bool:
        """Whether two sightings this far apart are at the same spot."""
        return distance_m <= self.radius_m

    def scene_matches(self, scene_score: float) -> bool:
        return scene_score >= self.scene_threshold

    def expired(self, first_seen_at: datetime, now: datetime) -> bool:
        """Whether a candidate first seen at ``first_seen_at`` can no longer be confirmed."""
        first = _utc(first_seen_at, "first_seen_at")
        now = _utc(now, "now")
        return (now - first).total_seconds() > self.max_interval_s or now >= \
            reporting_deadline(first)

    def is_duplicate(self, report_time: datetime, sighting_time: datetime,
                     distance_m: float) -> bool:
        """Whether a sighting of P belongs to an earlier report of P (same spot, in window)."""
        gap = abs((_utc(sighting_time, "sighting_time")
                   - _utc(report_time, "report_time")).total_seconds())
        return self.same_spot(distance_m) and gap <= self.dedup_window_s

    def check_evidence(self, first_seen_at: datetime, confirmed_at: datetime,
                       distance_m: float | None, scene_score: float | None, zone: str,
                       now: datetime | None = None) -> list[str]:
        """Reasons the two photos do not meet the evidence rule; an empty list means they do.

        ``now`` (default: the current time) is when the report is being filed, for the
        reporting deadline and clock sanity. Every failing reason is listed, not just the first.
        """
        first = _utc(first_seen_at, "first_seen_at")
        confirmed = _utc(confirmed_at, "confirmed_at")
        now = datetime.now(UTC) if now is None else _utc(now, "now")
        reasons: list[str] = []
        interval = (confirmed - first).total_seconds()
        if zone not in ZONES:
            reasons.append(f"unknown zone {zone!r} (zones: {', '.join(ZONES)})")
        if interval < 0:
            reasons.append(f"clock went backwards: confirmed {-interval:.0f} s before first seen")
        elif zone in ZONES:
            needed = self.min_interval(zone, first)
            if interval < needed:
                shown = self.effective_zone(zone, first)
                reasons.append(f"interval {interval:.0f} s is shorter than the {needed:.0f} s "
                               f"minimum for zone {shown}")
        if interval > self.max_interval_s:
            reasons.append(f"interval {interval:.0f} s is longer than the "
                           f"{self.max_interval_s:.0f} s maximum")
        distance_m, scene_score = finite_or_none(distance_m), finite_or_none(scene_score)
        if distance_m is None:
            reasons.append("distance between the photos is unknown (no location)")
        elif distance_m < 0:
            reasons.append(f"distance {distance_m} m is negative")
        elif not self.same_spot(distance_m):
            reasons.append(f"photos {distance_m:.1f} m apart, more than the {self.radius_m:g} m "
                           "same-spot radius")
        if scene_score is None:
            reasons.append("no scene comparison score")
        elif not self.scene_matches(scene_score):
            reasons.append(f"scene mismatch: score {scene_score:.3f} below the threshold "
                           f"{self.scene_threshold:g}")
        deadline = reporting_deadline(first)
        if now >= deadline:
            reasons.append(f"past the reporting deadline {deadline.isoformat()} "
                           "(24:00 KST the day after the first photo)")
        future = timedelta(seconds=self.future_tolerance_s)
        for name, t in (("first_seen_at", first), ("confirmed_at", confirmed)):
            if t > now + future:
                reasons.append(f"{name} {t.isoformat()} is in the future (clock wrong?)")
        return reasons


DEFAULT_RULES = Rules()


def min_interval(zone: str, at: datetime | None = None) -> float:
    """DEFAULT_RULES.min_interval (see Rules.min_interval)."""
    return DEFAULT_RULES.min_interval(zone, at)


def check_evidence(first_seen_at: datetime, confirmed_at: datetime, distance_m: float | None,
                   scene_score: float | None, zone: str, now: datetime | None = None,
                   rules: Rules | None = None) -> list[str]:
    """Reasons the evidence fails under ``rules`` (default DEFAULT_RULES); [] when it holds."""
    return (rules or DEFAULT_RULES).check_evidence(first_seen_at, confirmed_at, distance_m,
                                                   scene_score, zone, now)
