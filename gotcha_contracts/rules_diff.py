"""The rules a device runs, as a manifest carries them: a version and what differs from it.

Why a diff: most devices run DEFAULT_RULES, so a manifest names only the values a device's
config (``rules.*``) changed, and the cloud rebuilds exactly the Rules the device applied and
holds them to its own limits (docs/design.md, section "Cloud"). ``RULES_VERSION`` names the
defaults the diff is against: changing a value of DEFAULT_RULES bumps it, so an old device's
diff is never read against new defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from gotcha_contracts._checks import check_fields, check_number, json_type, short_json
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.rules import DEFAULT_RULES, ZONES, Rules

RULES_VERSION = 1
RULES_BLOCK_FIELDS: tuple[str, ...] = ("version", "overrides")

# What a value may be on the wire at all (sense, not policy: the cloud's limits are tighter).
WIRE_BOUNDS: Mapping[str, tuple[float, float]] = {
    "min_interval_s": (1.0, 86_400.0),
    "default_min_interval_s": (1.0, 86_400.0),
    "radius_m": (0.1, 10_000.0),
    "scene_threshold": (0.0, 1.0),
    "max_interval_s": (1.0, 7 * 86_400.0),
    "dedup_window_s": (1.0, 30 * 86_400.0),
    "future_tolerance_s": (0.0, 86_400.0),
}
_ANY_NUMBER = (-1e9, 1e9)


def _scalar_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Rules) if f.name != "min_interval_s")


def rules_overrides(rules: Rules, base: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The values of ``rules`` that differ from ``base``: per zone for the intervals.

    Intervals compare as ``min_interval(zone)`` reads them, so a Rules built with only some
    zones gives the same diff as one that lists every zone.
    """
    out: dict[str, Any] = {}
    zones = {z: rules.min_interval(z) for z in ZONES
             if rules.min_interval(z) != base.min_interval(z)}
    if zones:
        out["min_interval_s"] = zones
    for name in _scalar_fields():
        value = getattr(rules, name)
        if value != getattr(base, name):
            out[name] = value
    return out


def rules_block(rules: Rules) -> dict[str, Any]:
    """The manifest's ``rules`` object: ``{"version": 1, "overrides": {...}}``."""
    return {"version": RULES_VERSION, "overrides": rules_overrides(rules)}


def _number(value: object, name: str, field_name: str) -> float:
    low, high = WIRE_BOUNDS.get(field_name, _ANY_NUMBER)
    return check_number(value, name, low, high)


def parse_rules_block(obj: object, name: str = "rules") -> tuple[Rules, dict[str, Any]]:
    """The Rules a manifest names, and its overrides cleaned; ManifestError with the reason.

    Refuses an unknown version, unknown fields or zones, values outside WIRE_BOUNDS and
    combinations Rules itself refuses (e.g. a maximum interval shorter than a minimum).
    """
    block = check_fields(obj, name, RULES_BLOCK_FIELDS)
    version = block["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != RULES_VERSION:
        raise ManifestError(f"{name}.version {short_json(version)} is not a rules version "
                            f"this code knows ({RULES_VERSION})")
    raw = block["overrides"]
    if not isinstance(raw, dict):
        raise ManifestError(f"{name}.overrides must be an object, got {json_type(raw)}")
    known = {f.name for f in fields(Rules)}
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise ManifestError(f"{name}.overrides has unknown field(s) {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "min_interval_s":
            if not isinstance(value, dict):
                raise ManifestError(f"{name}.overrides.min_interval_s must be an object of "
                                    f"zone: seconds, got {json_type(value)}")
            bad = sorted(str(z) for z in value if z not in ZONES)
            if bad:
                raise ManifestError(f"{name}.overrides.min_interval_s names unknown zone(s) "
                                    f"{', '.join(bad)}")
            clean[key] = {z: _number(v, f"{name}.overrides.min_interval_s.{z}", key)
                          for z, v in value.items()}
        else:
            clean[key] = _number(value, f"{name}.overrides.{key}", key)
    try:
        rules = DEFAULT_RULES.with_overrides(**clean)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{name}.overrides are not usable rules: {exc}") from None
    return rules, clean
