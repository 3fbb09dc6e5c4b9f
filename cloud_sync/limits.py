"""What this cloud accepts: bounds on the rules a device names, and on every value's range.

Why: a manifest is the device's claim. The cloud applies the rules the manifest names (a device
may run stricter ones than the defaults), but never looser than the limits set here, and it
takes no time or place outside the ranges set here (docs/design.md, section "Cloud").

Environment (all optional; the defaults are the law's numbers, DEFAULT_RULES, and Korea):

================================================  ==============================================
GOTCHA_CLOUD_MIN_INTERVAL_FLOOR_S                 shortest interval accepted: one number for
                                                  every zone, or ``zone=seconds,...`` (the zones
                                                  not named keep their default); default the
                                                  DEFAULT_RULES intervals (60 s, 300 s other)
GOTCHA_CLOUD_RADIUS_CEILING_M                     widest same-spot radius (15)
GOTCHA_CLOUD_SCENE_THRESHOLD_FLOOR                lowest scene threshold (0.5)
GOTCHA_CLOUD_MAX_INTERVAL_CEILING_S               longest interval a device may wait (7200)
GOTCHA_CLOUD_DEDUP_WINDOW_FLOOR_S                 shortest duplicate window (43200)
GOTCHA_CLOUD_FUTURE_TOLERANCE_CEILING_S           most clock drift a device may allow (300)
GOTCHA_CLOUD_BOUNDS                               ``lat_min,lat_max,lon_min,lon_max`` every
                                                  location must lie in (33.0,38.7,124.5,131.0)
GOTCHA_CLOUD_MAX_AGE_S                            oldest a time may be before the upload (30 days)
GOTCHA_CLOUD_MAX_FUTURE_S                         latest a time may be after the upload (300)
GOTCHA_CLOUD_MAX_PHOTO_BYTES                      largest photo hashed and accepted (20 MB)
================================================  ==============================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from cloud_sync.errors import CloudConfigError
from gotcha_contracts.manifest import Manifest, ManifestLocation, format_time
from gotcha_contracts.rules import DEFAULT_RULES, ZONES, Rules

KOREA_BOUNDS = (33.0, 38.7, 124.5, 131.0)
ENV_PREFIX = "GOTCHA_CLOUD_"
MAX_WINDOW_S = 100 * 365 * 86_400.0

# Rules fields the cloud bounds, and how; a field not named here must keep its default.
_FLOORS = {"scene_threshold": "scene_threshold_floor", "dedup_window_s": "dedup_window_floor_s"}
_CEILINGS = {"radius_m": "radius_ceiling_m", "max_interval_s": "max_interval_ceiling_s",
             "future_tolerance_s": "future_tolerance_ceiling_s"}
# read through min_interval(zone), which the floors bound
_BY_ZONE = frozenset({"min_interval_s", "default_min_interval_s"})


@dataclass(frozen=True)
class CloudLimits:
    """The cloud's limits; hashable, so a promoter can cache decisions per (rules, limits)."""

    min_interval_floor_s: tuple[tuple[str, float], ...] = tuple(
        (zone, DEFAULT_RULES.min_interval(zone)) for zone in ZONES)
    radius_ceiling_m: float = DEFAULT_RULES.radius_m
    scene_threshold_floor: float = DEFAULT_RULES.scene_threshold
    max_interval_ceiling_s: float = DEFAULT_RULES.max_interval_s
    dedup_window_floor_s: float = DEFAULT_RULES.dedup_window_s
    future_tolerance_ceiling_s: float = DEFAULT_RULES.future_tolerance_s
    bounds: tuple[float, float, float, float] = KOREA_BOUNDS
    max_age_s: float = 30 * 86_400.0
    max_future_s: float = 300.0
    max_photo_bytes: int = 20_000_000

    def __post_init__(self) -> None:
        lat_min, lat_max, lon_min, lon_max = self.bounds
        if not (-90 <= lat_min < lat_max <= 90 and -180 <= lon_min < lon_max <= 180):
            raise CloudConfigError(f"{ENV_PREFIX}BOUNDS {self.bounds} must be lat_min < lat_max "
                                   "within -90..90 and lon_min < lon_max within -180..180")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
                raise CloudConfigError(f"{ENV_PREFIX}{f.name.upper()} must be a number >= 0, "
                                       f"got {value}")

        if max(self.max_age_s, self.max_future_s) > MAX_WINDOW_S:
            raise CloudConfigError(f"{ENV_PREFIX}MAX_AGE_S and MAX_FUTURE_S must be at most "
                                   f"{MAX_WINDOW_S:g} s")

    def min_interval_floor(self, zone: str) -> float:
        return dict(self.min_interval_floor_s).get(zone, DEFAULT_RULES.min_interval(zone))

    # ---------------------------------------------------------------- rules
    def rules_failures(self, rules: Rules) -> list[str]:
        """Why ``rules`` are looser than this cloud allows ([] when they are within limits)."""
        reasons: list[str] = []
        for zone in ZONES:
            floor = self.min_interval_floor(zone)
            if rules.min_interval(zone) < floor:
                reasons.append(f"min_interval_s[{zone}] {rules.min_interval(zone):g} s is below "
                               f"the cloud's {floor:g} s floor")
        for name in (f.name for f in fields(Rules)):
            value, default = getattr(rules, name), getattr(DEFAULT_RULES, name)
            if name in _BY_ZONE:
                continue
            if name in _FLOORS and value < getattr(self, _FLOORS[name]):
                reasons.append(f"{name} {value:g} is below the cloud's "
                               f"{getattr(self, _FLOORS[name]):g} floor")
            elif name in _CEILINGS and value > getattr(self, _CEILINGS[name]):
                reasons.append(f"{name} {value:g} is above the cloud's "
                               f"{getattr(self, _CEILINGS[name]):g} ceiling")
            elif name not in _FLOORS and name not in _CEILINGS and value != default:
                reasons.append(f"{name} {value!r} differs from the default {default!r}, which "
                               "this cloud does not let a device change")
        return [f"rules looser than this cloud allows: {r}" for r in reasons]

    # ---------------------------------------------------------------- values
    def place_failure(self, where: ManifestLocation, name: str) -> str | None:
        lat_min, lat_max, lon_min, lon_max = self.bounds
        if lat_min <= where.lat <= lat_max and lon_min <= where.lon <= lon_max:
            return None
        return (f"{name} ({where.lat:g}, {where.lon:g}) is outside the area this cloud serves "
                f"(lat {lat_min:g}..{lat_max:g}, lon {lon_min:g}..{lon_max:g})")

    def time_failure(self, t: datetime, name: str, received_at: datetime) -> str | None:
        if t < received_at - timedelta(seconds=self.max_age_s):
            return (f"{name} {format_time(t)} is more than {self.max_age_s:g} s before the "
                    f"upload ({format_time(received_at)})")
        if t > received_at + timedelta(seconds=self.max_future_s):
            return (f"{name} {format_time(t)} is more than {self.max_future_s:g} s after the "
                    f"upload ({format_time(received_at)})")
        return None

    def manifest_failures(self, manifest: Manifest, received_at: datetime) -> list[str]:
        """Every time and place of a validated manifest outside this cloud's ranges."""
        reasons: list[str] = []
        places = [(p.location, f"photos[{i}].location") for i, p in enumerate(manifest.photos)
                  if p.location is not None] or [(manifest.location, "location")]
        for where, name in places:
            if (reason := self.place_failure(where, name)) is not None:
                reasons.append(reason)
        times = [(manifest.first_seen_at, "first_seen_at"),
                 (manifest.confirmed_at, "confirmed_at")]
        times += [(p.captured_at, f"photos[{i}].captured_at")
                  for i, p in enumerate(manifest.photos)]
        for t, name in times:
            if (reason := self.time_failure(t, name, received_at)) is not None:
                reasons.append(reason)
        return reasons


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(ENV_PREFIX + name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise CloudConfigError(f"{ENV_PREFIX}{name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise CloudConfigError(f"{ENV_PREFIX}{name} must be a number >= 0, got {text!r}")
    return value


def _interval_floors(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    name = ENV_PREFIX + "MIN_INTERVAL_FLOOR_S"
    text = env.get(name, "").strip()
    floors = {zone: DEFAULT_RULES.min_interval(zone) for zone in ZONES}
    if not text:
        return tuple(floors.items())
    if "=" not in text:
        every = _number(env, "MIN_INTERVAL_FLOOR_S", 0.0)
        return tuple((zone, every) for zone in ZONES)
    for part in text.split(","):
        zone, _, seconds = part.partition("=")
        zone = zone.strip()
        if zone not in ZONES:
            raise CloudConfigError(f"{name}: unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        floors[zone] = _number({name: seconds}, "MIN_INTERVAL_FLOOR_S", 0.0)
    return tuple(floors.items())


def _bounds(env: Mapping[str, str]) -> tuple[float, float, float, float]:
    text = env.get(ENV_PREFIX + "BOUNDS", "").strip()
    if not text:
        return KOREA_BOUNDS
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise CloudConfigError(f"{ENV_PREFIX}BOUNDS must be lat_min,lat_max,lon_min,lon_max, "
                               f"got {text!r}")
    return values  # type: ignore[return-value]


def limits_from_env(env: Mapping[str, str] | None = None) -> CloudLimits:
    """The limits from ``GOTCHA_CLOUD_*`` variables (module docstring); defaults otherwise."""
    env = os.environ if env is None else env
    d = CloudLimits()
    values: dict[str, Any] = {
        "min_interval_floor_s": _interval_floors(env),
        "radius_ceiling_m": _number(env, "RADIUS_CEILING_M", d.radius_ceiling_m),
        "scene_threshold_floor": _number(env, "SCENE_THRESHOLD_FLOOR", d.scene_threshold_floor),
        "max_interval_ceiling_s": _number(env, "MAX_INTERVAL_CEILING_S",
                                          d.max_interval_ceiling_s),
        "dedup_window_floor_s": _number(env, "DEDUP_WINDOW_FLOOR_S", d.dedup_window_floor_s),
        "future_tolerance_ceiling_s": _number(env, "FUTURE_TOLERANCE_CEILING_S",
                                              d.future_tolerance_ceiling_s),
        "bounds": _bounds(env),
        "max_age_s": _number(env, "MAX_AGE_S", d.max_age_s),
        "max_future_s": _number(env, "MAX_FUTURE_S", d.max_future_s),
        "max_photo_bytes": int(_number(env, "MAX_PHOTO_BYTES", d.max_photo_bytes)),
    }
    return CloudLimits(**values)
