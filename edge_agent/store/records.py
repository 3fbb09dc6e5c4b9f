"""The store's record types: what a sighting, a report and an outbox item carry."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from edge_agent.results import Box, GeoPoint

ReportState = Literal["candidate", "confirmed", "expired", "uploaded"]
REPORT_STATES: tuple[ReportState, ...] = ("candidate", "confirmed", "expired", "uploaded")
OPEN_STATES: tuple[ReportState, ...] = ("candidate", "confirmed")
SightingRole = Literal["first", "confirming", "duplicate", "unmatched"]


def to_iso(moment: datetime) -> str:
    """UTC, microseconds, '+00:00': sorts lexically in the same order as in time."""
    if moment.tzinfo is None:
        raise ValueError("timestamps in the store must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def box_json(box: Box | None) -> str | None:
    return None if box is None else json.dumps(box.as_list())


def box_from_json(text: str | None) -> Box | None:
    return None if not text else Box(*json.loads(text))


def boxes_json(boxes: tuple[Box, ...] | None) -> str | None:
    return None if boxes is None else json.dumps([b.as_list() for b in boxes])


def boxes_from_json(text: str | None) -> tuple[Box, ...] | None:
    return None if text is None else tuple(Box(*b) for b in json.loads(text))


@dataclass(frozen=True)
class Sighting:
    """One valid plate read in one photo, with when and where the photo was taken."""

    device_id: str
    photo_sha256: str
    captured_at: datetime
    plate: str  # normalised by the plate grammar
    plate_raw: str
    char_confidences: tuple[float, ...]  # one per character of plate (PlateRead's)
    plate_box: Box
    location: GeoPoint | None
    vehicle_box: Box | None = None
    scene_signature: bytes | None = None
    time_source: str = "exif"
    id: int | None = None
    report_id: str | None = None
    role: SightingRole | None = None
    note: str | None = None
    # what the upload blurs, as the pipeline found it; None: not recorded (schema 1 rows)
    people_boxes: tuple[Box, ...] | None = None
    other_plate_boxes: tuple[Box, ...] | None = None

    def __post_init__(self) -> None:
        if self.captured_at.tzinfo is None:
            raise ValueError("Sighting.captured_at must be timezone-aware")
        if len(self.photo_sha256) != 64:
            raise ValueError(f"photo_sha256 must be 64 hex chars, got {self.photo_sha256!r}")
        if not self.plate:
            raise ValueError("Sighting.plate is empty; only grammar-valid reads are sightings")
        if not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in self.char_confidences):
            raise ValueError(f"char_confidences must be in [0, 1], got {self.char_confidences}")

    @property
    def plate_confidence(self) -> float:
        return min(self.char_confidences) if self.char_confidences else 0.0

    @property
    def ts(self) -> float:
        return self.captured_at.timestamp()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sighting:
        location = None
        if row["lat"] is not None and row["lon"] is not None:
            location = GeoPoint(row["lat"], row["lon"], row["accuracy_m"])
        return cls(
            device_id=row["device_id"], photo_sha256=row["photo_sha256"],
            captured_at=from_iso(row["captured_at"]), plate=row["plate"],
            plate_raw=row["plate_raw"],
            char_confidences=tuple(json.loads(row["char_confidences"])),
            plate_box=box_from_json(row["plate_box"]),  # type: ignore[arg-type]
            location=location, vehicle_box=box_from_json(row["vehicle_box"]),
            scene_signature=row["scene_signature"], time_source=row["time_source"],
            id=row["id"], report_id=row["report_id"], role=row["role"], note=row["note"],
            people_boxes=boxes_from_json(row.get("people_boxes")),
            other_plate_boxes=boxes_from_json(row.get("other_plate_boxes")),
        )


@dataclass(frozen=True)
class Report:
    """A report row: a candidate waiting for its second photo, or a confirmed one."""

    report_id: str
    device_id: str
    plate: str
    zone: str
    state: ReportState
    lat: float
    lon: float
    first_sighting_id: int
    first_seen_at: datetime
    expires_at: datetime
    updated_at: datetime
    confirming_sighting_id: int | None = None
    confirmed_at: datetime | None = None
    deadline: datetime | None = None
    scene_score: float | None = None
    scene_reason: str | None = None
    distance_m: float | None = None
    duplicate_count: int = 0
    plate_alt: str | None = None
    expired_reason: str | None = None
    models: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Report:
        def when(key: str) -> datetime | None:
            return from_iso(row[key]) if row.get(key) else None

        return cls(
            report_id=row["report_id"], device_id=row["device_id"], plate=row["plate"],
            zone=row["zone"], state=row["state"], lat=row["lat"], lon=row["lon"],
            first_sighting_id=row["first_sighting_id"],
            first_seen_at=from_iso(row["first_seen_at"]),
            expires_at=from_iso(row["expires_at"]), updated_at=from_iso(row["updated_at"]),
            confirming_sighting_id=row["confirming_sighting_id"],
            confirmed_at=when("confirmed_at"), deadline=when("deadline"),
            scene_score=row["scene_score"], scene_reason=row["scene_reason"],
            distance_m=row["distance_m"], duplicate_count=row["duplicate_count"],
            plate_alt=row["plate_alt"], expired_reason=row["expired_reason"],
            models=json.loads(row["models"]) if row.get("models") else {},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for `gotcha reports ... --json`."""
        out: dict[str, Any] = {}
        for key in ("report_id", "device_id", "plate", "plate_alt", "zone", "state", "lat",
                    "lon", "first_sighting_id", "confirming_sighting_id", "scene_score",
                    "scene_reason", "distance_m", "duplicate_count", "expired_reason",
                    "models"):
            out[key] = getattr(self, key)
        for key in ("first_seen_at", "confirmed_at", "expires_at", "deadline", "updated_at"):
            value = getattr(self, key)
            out[key] = to_iso(value) if value else None
        return out


@dataclass(frozen=True)
class OutboxItem:
    """One confirmed report waiting for (or done with) its upload."""

    report_id: str
    state: Literal["pending", "uploading", "done"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxItem:
        return cls(report_id=row["report_id"], state=row["state"], attempts=row["attempts"],
                   next_attempt_at=from_iso(row["next_attempt_at"]),
                   last_error=row["last_error"])
