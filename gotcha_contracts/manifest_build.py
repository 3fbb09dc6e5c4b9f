"""Building a manifest on the device: from a confirmed report to canonical, validated JSON bytes.

It writes ``gotcha.report/2``: each photo with its own location, the measured distance, the
rules in force and the plate's per-character confidences, so the cloud can re-check them.

Why beside the check and not in edge_agent: the builder validates what it builds with the very
check the cloud runs (gotcha_contracts.manifest), so a device never uploads a manifest the cloud
would refuse. Keys are derived from the S3 layout, never passed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gotcha_contracts._checks import aware_utc
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.manifest import (
    MODEL_ROLES,
    SCHEMA,
    format_time,
    parse_time,
    validate_manifest,
)
from gotcha_contracts.plate_grammar import explain_reject, parse_plate
from gotcha_contracts.rules import DEFAULT_RULES, Rules, haversine_m
from gotcha_contracts.rules_diff import rules_block
from gotcha_contracts.s3_layout import PHOTO_NAMES, photo_keys


def _get(obj: object, name: str, default: Any = ...) -> Any:
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
    elif hasattr(obj, name):
        return getattr(obj, name)
    if default is ...:
        raise ManifestError(f"{name} is missing from {type(obj).__name__}")
    return default


def _box_list(box: object) -> list[float] | None:
    """A Box-like (x1, y1, x2, y2 attributes), sequence of 4 numbers, or None -> JSON list."""
    if box is None:
        return None
    has_xy = hasattr(box, "x1")
    values = [box.x1, box.y1, box.x2, box.y2] if has_xy else list(box)  # type: ignore
    return [round(float(v), 1) for v in values]


def _time_text(t: object, name: str) -> str:
    if isinstance(t, str):
        return format_time(parse_time(t, name))
    return format_time(aware_utc(t, name))  # type: ignore[arg-type]


def _location(obj: object, name: str) -> dict[str, float | None]:
    """A GeoPoint-like (``lat``, ``lon``, ``accuracy_m``) or mapping -> the manifest object."""
    if obj is None:
        raise ManifestError(f"{name} is missing: every photo needs the location it was taken at")
    accuracy = _get(obj, "accuracy_m", None)
    return {"lat": float(_get(obj, "lat")), "lon": float(_get(obj, "lon")),
            "accuracy_m": None if accuracy is None else float(accuracy)}


def build_manifest(*, report_id: str, device_id: str, plate: str, plate_confidence: float,
                   zone: str, first_seen_at: datetime, confirmed_at: datetime,
                   photos: Sequence[object], scene_score: float,
                   models: Mapping[str, str | None],
                   plate_char_confidences: Sequence[float] | None = None,
                   distance_m: float | None = None,
                   rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The ``gotcha.report/2`` manifest of one confirmed report, validated (ManifestError).

    ``photos``: two items (first sighting, confirming sighting), each a mapping or object with
    ``sha256``, ``captured_at`` (aware datetime; the report's first_seen_at and confirmed_at
    must be these), ``location`` (GeoPoint-like or mapping with lat, lon, accuracy_m: where
    that photo was taken), ``vehicle_box`` (Box, [x1,y1,x2,y2] or None), ``plate_box`` and
    ``scene_embedding`` (numbers or None). Keys are derived, never passed.
    ``plate`` may be any accepted spelling; the normalised text is stored.
    ``plate_char_confidences``: one per character of the normalised plate (default: each the
    plate confidence, the weakest assumption). ``distance_m``: what the device measured
    between the photos (default: computed from their locations). ``rules``: the rules the
    device applied, carried as their difference from DEFAULT_RULES.
    ``models``: ids for vehicle_detector, plate_reader, scene_embedder (None where unused).
    """
    parsed = parse_plate(plate)
    if parsed is None:
        raise ManifestError(f"plate {plate!r} does not parse: {explain_reject(plate)}")
    if len(photos) != len(PHOTO_NAMES):
        raise ManifestError(f"a report has exactly 2 photos, got {len(photos)}")
    confirmed_utc = aware_utc(confirmed_at, "confirmed_at")
    keys = photo_keys(device_id, confirmed_utc, report_id)
    photo_dicts = []
    for index, (key, photo) in enumerate(zip(keys, photos, strict=True)):
        embedding = _get(photo, "scene_embedding", None)
        photo_dicts.append({
            "key": key,
            "sha256": _get(photo, "sha256"),
            "captured_at": _time_text(_get(photo, "captured_at"), "captured_at"),
            "location": _location(_get(photo, "location", None), f"photos[{index}].location"),
            "vehicle_box": _box_list(_get(photo, "vehicle_box", None)),
            "plate_box": _box_list(_get(photo, "plate_box")),
            "scene_embedding": None if embedding is None else [
                round(float(v), 6) for v in embedding],
        })
    if distance_m is None:
        first, second = (p["location"] for p in photo_dicts)
        distance_m = haversine_m((first["lat"], first["lon"]), (second["lat"], second["lon"]))
    confidences = [float(plate_confidence)] * len(parsed.text) \
        if plate_char_confidences is None else [float(c) for c in plate_char_confidences]
    doc = {
        "schema": SCHEMA,
        "report_id": report_id,
        "device_id": device_id,
        "plate": parsed.text,
        "plate_confidence": round(float(plate_confidence), 4),
        "plate_char_confidences": [round(c, 4) for c in confidences],
        "zone": zone,
        "first_seen_at": format_time(aware_utc(first_seen_at, "first_seen_at")),
        "confirmed_at": format_time(confirmed_utc),
        "distance_m": round(float(distance_m), 2),
        "photos": photo_dicts,
        "scene_score": round(float(scene_score), 4),
        "rules": rules_block(rules),
        "models": {role: models.get(role) for role in MODEL_ROLES},
    }
    validate_manifest(doc)
    return doc


def manifest_bytes(doc: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON (sorted keys, compact), so the same report gives the same sha256."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
