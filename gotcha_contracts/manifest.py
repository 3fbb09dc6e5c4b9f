"""The report manifest (``gotcha.report/1``): its schema, its typed form and its check.

Why pure and strict: the device builds a manifest (manifest_build) and the cloud ingests it;
both run the same checks here, so a manifest the device uploads is one the cloud accepts, and a
damaged or forged one is rejected with a precise, one-line reason the cloud can record (never
dropped silently). Where it lives is s3_layout (docs/design.md, section "S3 layout and
manifest"). Whether the photos exist in S3 with the stated sha256 is the cloud's separate check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
from gotcha_contracts.rules import ZONES
from gotcha_contracts.s3_layout import MANIFEST_NAME, PHOTO_NAMES, report_prefix

SCHEMA = "gotcha.report/1"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_ACCURACY_M = 100_000.0
MODEL_ROLES: tuple[str, str, str] = ("vehicle_detector", "plate_reader", "scene_embedder")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

TOP_LEVEL_FIELDS: tuple[str, ...] = (
    "schema", "report_id", "device_id", "plate", "plate_confidence", "zone", "location",
    "first_seen_at", "confirmed_at", "photos", "scene_score", "models")
PHOTO_FIELDS: tuple[str, ...] = ("key", "sha256", "captured_at", "vehicle_box", "plate_box",
                                 "scene_embedding")
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
        raise ManifestError(f"{name} {text!r} is not ISO 8601 UTC like 2026-11-25T01:00:00Z")
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


@dataclass(frozen=True, slots=True)
class ManifestPhoto:
    key: str
    sha256: str
    captured_at: datetime
    vehicle_box: Box4 | None  # None for a plate close-up with no vehicle in view
    plate_box: Box4
    scene_embedding: tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest. ``to_dict()`` gives back the JSON object."""

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

    @property
    def prefix(self) -> str:
        return report_prefix(self.device_id, self.confirmed_at, self.report_id)

    @property
    def key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def interval_s(self) -> float:
        return (self.confirmed_at - self.first_seen_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "report_id": self.report_id, "device_id": self.device_id,
            "plate": self.plate, "plate_confidence": self.plate_confidence, "zone": self.zone,
            "location": {"lat": self.location.lat, "lon": self.location.lon,
                         "accuracy_m": self.location.accuracy_m},
            "first_seen_at": format_time(self.first_seen_at),
            "confirmed_at": format_time(self.confirmed_at),
            "photos": [{"key": p.key, "sha256": p.sha256, "captured_at": format_time(
                p.captured_at), "vehicle_box": list(p.vehicle_box) if p.vehicle_box else None,
                "plate_box": list(p.plate_box), "scene_embedding": list(p.scene_embedding)
                if p.scene_embedding is not None else None} for p in self.photos],
            "scene_score": self.scene_score,
            "models": dict(self.models),
        }


# ---------------------------------------------------------------------------- validation

def _reject_constant(name: str) -> float:
    raise ManifestError(f"not strict JSON: {name} is not a number JSON allows")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ManifestError(f"field {key!r} appears twice")
        obj[key] = value
    return obj


def _load(obj: object) -> dict[str, Any]:
    """Bytes/str/mapping -> a plain dict, enforcing the size cap and strict JSON."""
    if isinstance(obj, Mapping):
        try:
            size = len(json.dumps(obj, ensure_ascii=False).encode("utf-8"))
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"manifest is not JSON-serialisable: {exc}") from None
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES}")
        return dict(obj)
    if isinstance(obj, str):
        obj = obj.encode("utf-8")
    if not isinstance(obj, bytes | bytearray | memoryview):
        raise ManifestError(f"manifest must be JSON bytes or an object, got {type(obj).__name__}")
    data = bytes(obj)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    if not data.strip():
        raise ManifestError("manifest is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not UTF-8 text (byte {exc.start})") from None
    try:
        loaded = json.loads(text, parse_constant=_reject_constant,
                            object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest is not JSON: {exc.msg} at line {exc.lineno} column "
                            f"{exc.colno}") from None
    except RecursionError:
        raise ManifestError("manifest is not JSON: nested too deeply") from None
    if not isinstance(loaded, dict):
        raise ManifestError(f"manifest must be a JSON object, got {type(loaded).__name__}")
    return loaded


def _photo(obj: object, index: int, expected_key: str) -> ManifestPhoto:
    name = f"photos[{index}]"
    obj = check_fields(obj, name, PHOTO_FIELDS)
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
    )


def validate_manifest(obj: Mapping[str, Any] | bytes | str) -> Manifest:
    """Check a manifest (JSON bytes/str or a parsed object) and return it typed.

    Raises ManifestError with a one-line reason for the first problem found: not JSON, too
    big, wrong schema, missing, unknown or mistyped fields, a bad UUID or device id, a plate
    that does not parse or is not normalised, times not ISO 8601 UTC or confirmed before first
    seen, a location out of range, photo keys not under the report prefix, a bad sha256, bad
    boxes or embeddings.
    """
    doc = _load(obj)
    if "schema" not in doc:
        raise ManifestError("manifest is missing field schema")
    if doc["schema"] != SCHEMA:
        raise ManifestError(f"schema {short_json(doc['schema'])} is not {SCHEMA!r}")
    doc = check_fields(doc, "manifest", TOP_LEVEL_FIELDS)
    report_id = check_uuid(doc["report_id"])
    device_id = check_device_id(doc["device_id"])
    plate_text = check_string(doc["plate"], "plate", 32)
    parsed = parse_plate(plate_text)
    if parsed is None:
        raise ManifestError(f"plate {plate_text!r} does not parse: {explain_reject(plate_text)}")
    if parsed.text != plate_text:
        raise ManifestError(f"plate {plate_text!r} is not normalised (expected {parsed.text!r})")
    plate_confidence = check_number(doc["plate_confidence"], "plate_confidence", 0.0, 1.0)
    zone = doc["zone"]
    if not isinstance(zone, str) or zone not in ZONES:
        raise ManifestError(f"zone {short_json(zone)} is not one of {', '.join(ZONES)}")
    loc = check_fields(doc["location"], "location", LOCATION_FIELDS)
    location = ManifestLocation(
        lat=check_number(loc["lat"], "location.lat", -90.0, 90.0),
        lon=check_number(loc["lon"], "location.lon", -180.0, 180.0),
        accuracy_m=None if loc["accuracy_m"] is None else check_number(
            loc["accuracy_m"], "location.accuracy_m", 0.0, MAX_ACCURACY_M))
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
    photos = (_photo(photos_raw[0], 0, prefix + PHOTO_NAMES[0]),
              _photo(photos_raw[1], 1, prefix + PHOTO_NAMES[1]))
    if photos[0].sha256 == photos[1].sha256:
        raise ManifestError("photos[0] and photos[1] have the same sha256: one photo twice is "
                            "not evidence")
    if photos[1].captured_at < photos[0].captured_at:
        raise ManifestError("photos[1].captured_at is before photos[0].captured_at")
    scene_score = check_number(doc["scene_score"], "scene_score", 0.0, 1.0)
    models_raw = check_fields(doc["models"], "models", MODEL_ROLES)
    models: dict[str, str | None] = {}
    for role in MODEL_ROLES:
        value = models_raw[role]
        if value is None and role != "plate_reader":
            models[role] = None
        else:
            models[role] = check_string(value, f"models.{role}", 128)
    return Manifest(schema=SCHEMA, report_id=report_id, device_id=device_id, plate=plate_text,
                    plate_confidence=plate_confidence, zone=zone, location=location,
                    first_seen_at=first_seen_at, confirmed_at=confirmed_at, photos=photos,
                    scene_score=scene_score, models=models, parsed_plate=parsed)
