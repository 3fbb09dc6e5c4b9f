"""The report manifest (``gotcha.report/1``) and the S3 layout it lives in.

Why pure and strict: the device builds a manifest and the cloud ingests it; both run the same
checks here, so a manifest the device uploads is one the cloud accepts, and a damaged or forged
one is rejected with a precise, one-line reason the cloud can record (never dropped silently).
Keys are deterministic (DESIGN.md "S3 layout and manifest"), so a retry overwrites the same
objects: ``reports/{device_id}/{yyyy}/{mm}/{dd}/{report_id}/photo-1.jpg|photo-2.jpg|
manifest.json`` with the date in UTC of ``confirmed_at``; the manifest is written last.
Whether the photos exist in S3 with the stated sha256 is the cloud's separate check.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cloud_sync.plate_grammar import ParsedPlate, explain_reject, parse_plate
from cloud_sync.rules import ZONES, finite_or_none

SCHEMA = "gotcha.report/1"
PHOTO_NAMES: tuple[str, str] = ("photo-1.jpg", "photo-2.jpg")
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_EMBEDDING_DIM = 4096
MAX_BOX_COORD = 100_000.0
MAX_ACCURACY_M = 100_000.0
MODEL_ROLES: tuple[str, str, str] = ("vehicle_detector", "plate_reader", "scene_embedder")

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_KEY_RE = re.compile(r"^reports/(?P<device>[A-Za-z0-9_.-]{1,64})/(?P<y>\d{4})/(?P<m>\d{2})/"
                     r"(?P<d>\d{2})/(?P<report>[0-9a-f-]{36})/(?P<name>[a-z0-9.-]+)$")

TOP_LEVEL_FIELDS: tuple[str, ...] = (
    "schema", "report_id", "device_id", "plate", "plate_confidence", "zone", "location",
    "first_seen_at", "confirmed_at", "photos", "scene_score", "models")
PHOTO_FIELDS: tuple[str, ...] = ("key", "sha256", "captured_at", "vehicle_box", "plate_box",
                                 "scene_embedding")
LOCATION_FIELDS: tuple[str, ...] = ("lat", "lon", "accuracy_m")


class ManifestError(ValueError):
    """A manifest that must not be accepted; ``reason`` is one line naming the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------- keys and times

def _check_device_id(device_id: object) -> str:
    if not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id) or \
            device_id in (".", ".."):
        raise ManifestError(f"device_id {device_id!r} must be 1-64 of A-Z a-z 0-9 _ . - "
                            "(and not . or ..)")
    return device_id


def _check_uuid(report_id: object) -> str:
    try:
        canonical = str(uuid.UUID(str(report_id)))
    except ValueError:
        canonical = None
    if not isinstance(report_id, str) or canonical != report_id:
        raise ManifestError(f"report_id {report_id!r} is not a lowercase hyphenated UUID")
    return report_id


def _aware_utc(t: datetime, name: str) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ManifestError(f"{name} must be a timezone-aware datetime, got {t!r}")
    return t.astimezone(UTC)


def format_time(t: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-25T01:00:00Z`` (microseconds kept if any)."""
    t = _aware_utc(t, "time")
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


def report_prefix(device_id: str, confirmed_at: datetime, report_id: str) -> str:
    """``reports/{device_id}/{yyyy}/{mm}/{dd}/{report_id}/``, the date in UTC of confirmed_at."""
    _check_device_id(device_id)
    _check_uuid(report_id)
    day = _aware_utc(confirmed_at, "confirmed_at")
    return f"reports/{device_id}/{day:%Y/%m/%d}/{report_id}/"


def photo_keys(device_id: str, confirmed_at: datetime, report_id: str) -> tuple[str, str]:
    prefix = report_prefix(device_id, confirmed_at, report_id)
    return (prefix + PHOTO_NAMES[0], prefix + PHOTO_NAMES[1])


def manifest_key(device_id: str, confirmed_at: datetime, report_id: str) -> str:
    return report_prefix(device_id, confirmed_at, report_id) + MANIFEST_NAME


@dataclass(frozen=True, slots=True)
class ReportKey:
    """The parts of an object key under ``reports/``."""

    device_id: str
    day: date
    report_id: str
    name: str  # photo-1.jpg, photo-2.jpg or manifest.json

    @property
    def prefix(self) -> str:
        return f"reports/{self.device_id}/{self.day:%Y/%m/%d}/{self.report_id}/"

    @property
    def is_manifest(self) -> bool:
        return self.name == MANIFEST_NAME


def parse_report_key(key: str) -> ReportKey | None:
    """Split an S3 key of the report layout (URL-decoded); None for any other key."""
    match = _KEY_RE.match(key) if isinstance(key, str) else None
    if match is None or match["name"] not in (*PHOTO_NAMES, MANIFEST_NAME):
        return None
    try:
        _check_device_id(match["device"])
        _check_uuid(match["report"])
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except (ManifestError, ValueError):
        return None
    return ReportKey(match["device"], day, match["report"], match["name"])


# ---------------------------------------------------------------------------- the result type

Box4 = tuple[float, float, float, float]


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


def _fields(obj: object, name: str, expected: Sequence[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestError(f"{name} must be an object, got {_type(obj)}")
    missing = [f for f in expected if f not in obj]
    if missing:
        raise ManifestError(f"{name} is missing field(s) {', '.join(missing)}")
    extra = sorted(str(f) for f in obj if f not in expected)
    if extra:
        raise ManifestError(f"{name} has unknown field(s) {', '.join(extra)}")
    return obj


def _type(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number"}.get(type(value), type(value).__name__)


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{name} must be a number, got {_type(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise ManifestError(f"{name} is out of range [{low:g}, {high:g}]") from None
    if not math.isfinite(value) or not (low <= value <= high):
        raise ManifestError(f"{name} {value} is out of range [{low:g}, {high:g}]")
    return value


def _string(value: object, name: str, max_len: int = 200) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{name} must be a string, got {_type(value)}")
    if not value or len(value) > max_len:
        raise ManifestError(f"{name} must be 1-{max_len} characters, got {len(value)}")
    return value


def _box(value: object, name: str) -> Box4:
    if not isinstance(value, list) or len(value) != 4:
        raise ManifestError(f"{name} must be [x1, y1, x2, y2], got {_short(value)}")
    x1, y1, x2, y2 = (_number(v, f"{name}[{i}]", 0.0, MAX_BOX_COORD) for i, v in enumerate(value))
    if not (x1 < x2 and y1 < y2):
        raise ManifestError(f"{name} {[x1, y1, x2, y2]} needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


def _embedding(value: object, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ManifestError(f"{name} must be a non-empty array of numbers or null, got "
                            f"{_type(value)}")
    if len(value) > MAX_EMBEDDING_DIM:
        raise ManifestError(f"{name} has {len(value)} values; at most {MAX_EMBEDDING_DIM}")
    out = []
    for i, v in enumerate(value):
        number = finite_or_none(v)
        if number is None:
            raise ManifestError(f"{name}[{i}] must be a finite number, got {_short(v)}")
        out.append(number)
    return tuple(out)


def _photo(obj: object, index: int, expected_key: str) -> ManifestPhoto:
    name = f"photos[{index}]"
    obj = _fields(obj, name, PHOTO_FIELDS)
    key = _string(obj["key"], f"{name}.key", 300)
    if key != expected_key:
        raise ManifestError(f"{name}.key {key!r} is not {expected_key!r} (photos live under the "
                            "report prefix)")
    sha = obj["sha256"]
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        raise ManifestError(f"{name}.sha256 {_short(sha)} is not 64 lowercase hex characters")
    return ManifestPhoto(
        key=key, sha256=sha,
        captured_at=parse_time(obj["captured_at"], f"{name}.captured_at"),
        vehicle_box=None if obj["vehicle_box"] is None else _box(obj["vehicle_box"],
                                                                 f"{name}.vehicle_box"),
        plate_box=_box(obj["plate_box"], f"{name}.plate_box"),
        scene_embedding=_embedding(obj["scene_embedding"], f"{name}.scene_embedding"),
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
        raise ManifestError(f"schema {_short(doc['schema'])} is not {SCHEMA!r}")
    doc = _fields(doc, "manifest", TOP_LEVEL_FIELDS)
    report_id = _check_uuid(doc["report_id"])
    device_id = _check_device_id(doc["device_id"])
    plate_text = _string(doc["plate"], "plate", 32)
    parsed = parse_plate(plate_text)
    if parsed is None:
        raise ManifestError(f"plate {plate_text!r} does not parse: {explain_reject(plate_text)}")
    if parsed.text != plate_text:
        raise ManifestError(f"plate {plate_text!r} is not normalised (expected {parsed.text!r})")
    plate_confidence = _number(doc["plate_confidence"], "plate_confidence", 0.0, 1.0)
    zone = doc["zone"]
    if not isinstance(zone, str) or zone not in ZONES:
        raise ManifestError(f"zone {_short(zone)} is not one of {', '.join(ZONES)}")
    loc = _fields(doc["location"], "location", LOCATION_FIELDS)
    location = ManifestLocation(
        lat=_number(loc["lat"], "location.lat", -90.0, 90.0),
        lon=_number(loc["lon"], "location.lon", -180.0, 180.0),
        accuracy_m=None if loc["accuracy_m"] is None else _number(
            loc["accuracy_m"], "location.accuracy_m", 0.0, MAX_ACCURACY_M))
    first_seen_at = parse_time(doc["first_seen_at"], "first_seen_at")
    confirmed_at = parse_time(doc["confirmed_at"], "confirmed_at")
    if confirmed_at < first_seen_at:
        raise ManifestError(f"confirmed_at {doc['confirmed_at']} is before first_seen_at "
                            f"{doc['first_seen_at']}")
    photos_raw = doc["photos"]
    if not isinstance(photos_raw, list) or len(photos_raw) != len(PHOTO_NAMES):
        shown = len(photos_raw) if isinstance(photos_raw, list) else _type(photos_raw)
        raise ManifestError(f"photos must be an array of exactly 2 photos, got {shown}")
    prefix = report_prefix(device_id, confirmed_at, report_id)
    photos = (_photo(photos_raw[0], 0, prefix + PHOTO_NAMES[0]),
              _photo(photos_raw[1], 1, prefix + PHOTO_NAMES[1]))
    if photos[0].sha256 == photos[1].sha256:
        raise ManifestError("photos[0] and photos[1] have the same sha256: one photo twice is "
                            "not evidence")
    if photos[1].captured_at < photos[0].captured_at:
        raise ManifestError("photos[1].captured_at is before photos[0].captured_at")
    scene_score = _number(doc["scene_score"], "scene_score", 0.0, 1.0)
    models_raw = _fields(doc["models"], "models", MODEL_ROLES)
    models: dict[str, str | None] = {}
    for role in MODEL_ROLES:
        value = models_raw[role]
        if value is None and role != "plate_reader":
            models[role] = None
        else:
            models[role] = _string(value, f"models.{role}", 128)
    return Manifest(schema=SCHEMA, report_id=report_id, device_id=device_id, plate=plate_text,
                    plate_confidence=plate_confidence, zone=zone, location=location,
                    first_seen_at=first_seen_at, confirmed_at=confirmed_at, photos=photos,
                    scene_score=scene_score, models=models, parsed_plate=parsed)


# ---------------------------------------------------------------------------- building

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
    """Box (edge_agent.results.Box), sequence of 4 numbers, or None -> JSON list."""
    if box is None:
        return None
    has_xy = hasattr(box, "x1")
    values = [box.x1, box.y1, box.x2, box.y2] if has_xy else list(box)  # type: ignore
    return [round(float(v), 1) for v in values]


def _time_text(t: object, name: str) -> str:
    if isinstance(t, str):
        return format_time(parse_time(t, name))
    return format_time(_aware_utc(t, name))  # type: ignore[arg-type]


def build_manifest(*, report_id: str, device_id: str, plate: str, plate_confidence: float,
                   zone: str, location: object, first_seen_at: datetime,
                   confirmed_at: datetime, photos: Sequence[object], scene_score: float,
                   models: Mapping[str, str | None]) -> dict[str, Any]:
    """The manifest object for one confirmed report, validated (ManifestError if unusable).

    ``location``: a GeoPoint-like (``lat``, ``lon``, ``accuracy_m``) or a mapping with those.
    ``photos``: two items (first sighting, confirming sighting), each a mapping or object with
    ``sha256``, ``captured_at`` (aware datetime), ``vehicle_box`` (Box, [x1,y1,x2,y2] or None),
    ``plate_box`` and ``scene_embedding`` (numbers or None). Keys are derived, never passed.
    ``plate`` may be any accepted spelling; the normalised text is stored.
    ``models``: ids for vehicle_detector, plate_reader, scene_embedder (None where unused).
    """
    parsed = parse_plate(plate)
    if parsed is None:
        raise ManifestError(f"plate {plate!r} does not parse: {explain_reject(plate)}")
    if len(photos) != len(PHOTO_NAMES):
        raise ManifestError(f"a report has exactly 2 photos, got {len(photos)}")
    confirmed_utc = _aware_utc(confirmed_at, "confirmed_at")
    keys = photo_keys(device_id, confirmed_utc, report_id)
    photo_dicts = []
    for key, photo in zip(keys, photos, strict=True):
        embedding = _get(photo, "scene_embedding", None)
        photo_dicts.append({
            "key": key,
            "sha256": _get(photo, "sha256"),
            "captured_at": _time_text(_get(photo, "captured_at"), "captured_at"),
            "vehicle_box": _box_list(_get(photo, "vehicle_box", None)),
            "plate_box": _box_list(_get(photo, "plate_box")),
            "scene_embedding": None if embedding is None else [
                round(float(v), 6) for v in embedding],
        })
    accuracy = _get(location, "accuracy_m", None)
    doc = {
        "schema": SCHEMA,
        "report_id": report_id,
        "device_id": device_id,
        "plate": parsed.text,
        "plate_confidence": round(float(plate_confidence), 4),
        "zone": zone,
        "location": {"lat": float(_get(location, "lat")), "lon": float(_get(location, "lon")),
                     "accuracy_m": None if accuracy is None else float(accuracy)},
        "first_seen_at": format_time(_aware_utc(first_seen_at, "first_seen_at")),
        "confirmed_at": format_time(confirmed_utc),
        "photos": photo_dicts,
        "scene_score": round(float(scene_score), 4),
        "models": {role: models.get(role) for role in MODEL_ROLES},
    }
    validate_manifest(doc)
    return doc


def manifest_bytes(doc: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON (sorted keys, compact), so the same report gives the same sha256."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
