"""The report manifest (``gotcha.report/2``, and /1 still read): schema, typed form and check.

Why pure and strict: the device builds a manifest (manifest_build) and the cloud ingests it;
both run the same checks here, so a manifest the device uploads is one the cloud accepts, and a
damaged or forged one is rejected with a precise, one-line reason the cloud can record (never
dropped silently). Where it lives is s3_layout (docs/design.md, section "S3 layout and
manifest"). Whether the photos exist in S3 with the stated sha256, and whether the evidence
meets the cloud's limits, are the cloud's separate checks.

Version 2 carries what the cloud needs to re-check the evidence itself: each photo's own
location, the distance the device measured, the rules the device applied (rules_diff) and the
plate's per-character confidences. Version 1 carried one location for the report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gotcha_contracts._checks import (
    Box4,
    aware_utc,
    check_box,
    check_device_id,
    check_embedding,
    check_fields,
    check_number,
    check_string,
    check_uuid,
    json_type,
    short_json,
)
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.plate_grammar import ParsedPlate, explain_reject, parse_plate
from gotcha_contracts.rules import DEFAULT_RULES, ZONES, Rules, haversine_m
from gotcha_contracts.rules_diff import RULES_VERSION, parse_rules_block
from gotcha_contracts.s3_layout import MANIFEST_NAME, PHOTO_NAMES, report_prefix
from gotcha_contracts.strict_json import load_object

SCHEMA_V1 = "gotcha.report/1"
SCHEMA = "gotcha.report/2"  # what devices write
SCHEMAS: tuple[str, ...] = (SCHEMA_V1, SCHEMA)  # what ingest reads
MAX_MANIFEST_BYTES = 256 * 1024
MAX_ACCURACY_M = 100_000.0
MAX_DISTANCE_M = 20_100_000.0  # half the Earth's circumference, and a little
DISTANCE_TOLERANCE_M = 0.5  # the stated distance may differ from the photos' by rounding only
MODEL_ROLES: tuple[str, str, str] = ("vehicle_detector", "plate_reader", "scene_embedder")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

TOP_LEVEL_FIELDS_V1: tuple[str, ...] = (
    "schema", "report_id", "device_id", "plate", "plate_confidence", "zone", "location",
    "first_seen_at", "confirmed_at", "photos", "scene_score", "models")
TOP_LEVEL_FIELDS: tuple[str, ...] = (
    "schema", "report_id", "device_id", "plate", "plate_confidence", "plate_char_confidences",
    "zone", "first_seen_at", "confirmed_at", "distance_m", "photos", "scene_score", "rules",
    "models")
PHOTO_FIELDS_V1: tuple[str, ...] = ("key", "sha256", "captured_at", "vehicle_box", "plate_box",
                                    "scene_embedding")
PHOTO_FIELDS: tuple[str, ...] = (*PHOTO_FIELDS_V1, "location")
LOCATION_FIELDS: tuple[str, ...] = ("lat", "lon", "accuracy_m")


# ---------------------------------------------------------------------------- times

def format_time(t: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-25T01:00:00Z`` (microseconds kept if any)."""
    t = aware_utc(t, "time")
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_time(text: object, name: str = "time") -> datetime:
    """The aware UTC datetime of a manifest time; ManifestError unless ISO 8601 UTC with Z."""
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ManifestError(f"{name} {short_json(text)} is not ISO 8601 UTC like "
                            "2026-11-25T01:00:00Z")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ManifestError(f"{name} {text!r} is not a real date/time ({exc})") from None


# ---------------------------------------------------------------------------- the result type

@dataclass(frozen=True, slots=True)
class ManifestLocation:
    lat: float
    lon: float
    accuracy_m: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"lat": self.lat, "lon": self.lon, "accuracy_m": self.accuracy_m}


@dataclass(frozen=True, slots=True)
class ManifestPhoto:
    key: str
    sha256: str
    captured_at: datetime
    vehicle_box: Box4 | None  # None for a plate close-up with no vehicle in view
    plate_box: Box4
    scene_embedding: tuple[float, ...] | None
    location: ManifestLocation | None = None  # where this photo was taken (schema 2)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key, "sha256": self.sha256, "captured_at": format_time(self.captured_at),
            "vehicle_box": list(self.vehicle_box) if self.vehicle_box else None,
            "plate_box": list(self.plate_box),
            "scene_embedding": list(self.scene_embedding)
            if self.scene_embedding is not None else None}
        if self.location is not None:
            out["location"] = self.location.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest. ``to_dict()`` gives back the JSON object of its schema.

    ``location`` is where the report is: schema 1's one location, schema 2's first photo's.
    ``distance_m`` is what the device stated (schema 2; None for 1); ``photo_distance_m``
    is recomputed from the photos' own locations. ``rules`` are the rules the device applied
    (DEFAULT_RULES for schema 1).
    """

    schema: str
    report_id: str
    device_id: str
    plate: str
    plate_confidence: float
    zone: str
    location: ManifestLocation
    first_seen_at: datetime
    confirmed_at: datetime
    photos: tuple[ManifestPhoto, ManifestPhoto]
    scene_score: float
    models: Mapping[str, str | None]
    parsed_plate: ParsedPlate
    plate_char_confidences: tuple[float, ...] | None = None
    distance_m: float | None = None
    rules: Rules = DEFAULT_RULES
    rules_overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return report_prefix(self.device_id, self.confirmed_at, self.report_id)

    @property
    def key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def interval_s(self) -> float:
        """Seconds between the two photos, from their own capture times."""
        return (self.photos[1].captured_at - self.photos[0].captured_at).total_seconds()

    @property
    def photo_distance_m(self) -> float | None:
        """Metres between where the two photos were taken; None when they carry no location."""
        first, second = (p.location for p in self.photos)
        if first is None or second is None:
            return None
        return haversine_m((first.lat, first.lon), (second.lat, second.lon))

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": self.schema, "report_id": self.report_id, "device_id": self.device_id,
            "plate": self.plate, "plate_confidence": self.plate_confidence, "zone": self.zone,
            "first_seen_at": format_time(self.first_seen_at),
            "confirmed_at": format_time(self.confirmed_at),
            "photos": [p.to_dict() for p in self.photos],
            "scene_score": self.scene_score,
            "models": dict(self.models),
        }
        if self.schema == SCHEMA_V1:
            doc["location"] = self.location.to_dict()
        else:
            doc["plate_char_confidences"] = list(self.plate_char_confidences or ())
            doc["distance_m"] = self.distance_m
            doc["rules"] = {"version": RULES_VERSION, "overrides": dict(self.rules_overrides)}
        return doc


# ---------------------------------------------------------------------------- validation

def _location(obj: object, name: str) -> ManifestLocation:
    loc = check_fields(obj, name, LOCATION_FIELDS)
    return ManifestLocation(
        lat=check_number(loc["lat"], f"{name}.lat", -90.0, 90.0),
        lon=check_number(loc["lon"], f"{name}.lon", -180.0, 180.0),
        accuracy_m=None if loc["accuracy_m"] is None else check_number(
            loc["accuracy_m"], f"{name}.accuracy_m", 0.0, MAX_ACCURACY_M))


def _photo(obj: object, index: int, expected_key: str, v2: bool) -> ManifestPhoto:
    name = f"photos[{index}]"
    obj = check_fields(obj, name, PHOTO_FIELDS if v2 else PHOTO_FIELDS_V1)
    key = check_string(obj["key"], f"{name}.key", 300)
    if key != expected_key:
        raise ManifestError(f"{name}.key {key!r} is not {expected_key!r} (photos live under the "
                            "report prefix)")
    sha = obj["sha256"]
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        raise ManifestError(f"{name}.sha256 {short_json(sha)} is not 64 lowercase hex characters")
    return ManifestPhoto(
        key=key, sha256=sha,
        captured_at=parse_time(obj["captured_at"], f"{name}.captured_at"),
        vehicle_box=None if obj["vehicle_box"] is None else check_box(
            obj["vehicle_box"], f"{name}.vehicle_box"),
        plate_box=check_box(obj["plate_box"], f"{name}.plate_box"),
        scene_embedding=check_embedding(obj["scene_embedding"], f"{name}.scene_embedding"),
        location=_location(obj["location"], f"{name}.location") if v2 else None,
    )


def _char_confidences(value: object, plate: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != len(plate):
        shown = len(value) if isinstance(value, list) else json_type(value)
        raise ManifestError(f"plate_char_confidences must be an array of one number per "
                            f"character of the plate ({len(plate)}), got {shown}")
    return tuple(check_number(v, f"plate_char_confidences[{i}]", 0.0, 1.0)
                 for i, v in enumerate(value))


def _check_photo_times(photos: tuple[ManifestPhoto, ManifestPhoto], first_seen_at: datetime,
                       confirmed_at: datetime) -> None:
    """The report's times are its photos' times: the evidence interval is theirs."""
    if photos[1].captured_at < photos[0].captured_at:
        raise ManifestError("photos[1].captured_at is before photos[0].captured_at")
    for index, (photo, stated, name) in enumerate(zip(
            photos, (first_seen_at, confirmed_at), ("first_seen_at", "confirmed_at"),
            strict=True)):
        if photo.captured_at != stated:
            raise ManifestError(f"photos[{index}].captured_at {format_time(photo.captured_at)} "
                                f"is not {name} {format_time(stated)}: the report's times must "
                                "be its photos' capture times")


def _check_distance(value: object, photos: tuple[ManifestPhoto, ManifestPhoto]) -> float:
    stated = check_number(value, "distance_m", 0.0, MAX_DISTANCE_M)
    first, second = (p.location for p in photos)
    assert first is not None and second is not None  # schema 2 photos carry one
    measured = haversine_m((first.lat, first.lon), (second.lat, second.lon))
    if abs(stated - measured) > DISTANCE_TOLERANCE_M:
        raise ManifestError(f"distance_m {stated:g} is not the {measured:.2f} m between the "
                            "photos' locations")
    return stated


def validate_manifest(obj: Mapping[str, Any] | bytes | str) -> Manifest:
    """Check a manifest (JSON bytes/str or a parsed object) and return it typed.

    Raises ManifestError with a one-line reason for the first problem found: not JSON, too
    big, a schema this code does not read, missing, unknown or mistyped fields, a bad UUID or
    device id, a plate that does not parse or is not normalised, times not ISO 8601 UTC, not
    the photos' own times or confirmed before first seen, a location out of range, photo keys
    not under the report prefix, a bad sha256, bad boxes or embeddings; for schema 2 also
    confidences that are not one per plate character, a stated distance that is not the
    photos', and rules of an unknown version or that are not usable.
    """
    doc = load_object(obj, MAX_MANIFEST_BYTES)
    if "schema" not in doc:
        raise ManifestError("manifest is missing field schema")
    if doc["schema"] not in SCHEMAS:
        raise ManifestError(f"schema {short_json(doc['schema'])} is not one this code reads "
                            f"({', '.join(SCHEMAS)})")
    v2 = doc["schema"] == SCHEMA
    doc = check_fields(doc, "manifest", TOP_LEVEL_FIELDS if v2 else TOP_LEVEL_FIELDS_V1)
    report_id = check_uuid(doc["report_id"])
    device_id = check_device_id(doc["device_id"])
    plate_text = check_string(doc["plate"], "plate", 32)
    parsed = parse_plate(plate_text)
    if parsed is None:
        raise ManifestError(f"plate {plate_text!r} does not parse: {explain_reject(plate_text)}")
    if parsed.text != plate_text:
        raise ManifestError(f"plate {plate_text!r} is not normalised (expected {parsed.text!r})")
    plate_confidence = check_number(doc["plate_confidence"], "plate_confidence", 0.0, 1.0)
    char_confidences = _char_confidences(doc["plate_char_confidences"], plate_text) \
        if v2 else None
    zone = doc["zone"]
    if not isinstance(zone, str) or zone not in ZONES:
        raise ManifestError(f"zone {short_json(zone)} is not one of {', '.join(ZONES)}")
    location = None if v2 else _location(doc["location"], "location")
    first_seen_at = parse_time(doc["first_seen_at"], "first_seen_at")
    confirmed_at = parse_time(doc["confirmed_at"], "confirmed_at")
    if confirmed_at < first_seen_at:
        raise ManifestError(f"confirmed_at {doc['confirmed_at']} is before first_seen_at "
                            f"{doc['first_seen_at']}")
    photos_raw = doc["photos"]
    if not isinstance(photos_raw, list) or len(photos_raw) != len(PHOTO_NAMES):
        shown = len(photos_raw) if isinstance(photos_raw, list) else json_type(photos_raw)
        raise ManifestError(f"photos must be an array of exactly 2 photos, got {shown}")
    prefix = report_prefix(device_id, confirmed_at, report_id)
    photos = (_photo(photos_raw[0], 0, prefix + PHOTO_NAMES[0], v2),
              _photo(photos_raw[1], 1, prefix + PHOTO_NAMES[1], v2))
    if photos[0].sha256 == photos[1].sha256:
        raise ManifestError("photos[0] and photos[1] have the same sha256: one photo twice is "
                            "not evidence")
    _check_photo_times(photos, first_seen_at, confirmed_at)
    distance_m = _check_distance(doc["distance_m"], photos) if v2 else None
    rules, overrides = parse_rules_block(doc["rules"]) if v2 else (DEFAULT_RULES, {})
    scene_score = check_number(doc["scene_score"], "scene_score", 0.0, 1.0)
    models_raw = check_fields(doc["models"], "models", MODEL_ROLES)
    models: dict[str, str | None] = {}
    for role in MODEL_ROLES:
        value = models_raw[role]
        if value is None and role != "plate_reader":
            models[role] = None
        else:
            models[role] = check_string(value, f"models.{role}", 128)
    return Manifest(schema=doc["schema"], report_id=report_id, device_id=device_id,
                    plate=plate_text, plate_confidence=plate_confidence, zone=zone,
                    location=location or photos[0].location,  # type: ignore[arg-type]
                    first_seen_at=first_seen_at, confirmed_at=confirmed_at, photos=photos,
                    scene_score=scene_score, models=models, parsed_plate=parsed,
                    plate_char_confidences=char_confidences, distance_m=distance_m,
                    rules=rules, rules_overrides=overrides)
