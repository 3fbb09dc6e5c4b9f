"""The result types every stage passes along: small, frozen, validated when built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

VehicleClass = Literal["car", "bus", "truck", "motorcycle"]
VEHICLE_CLASSES: tuple[VehicleClass, ...] = ("car", "bus", "truck", "motorcycle")


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixel coordinates of the (orientation-corrected) photo."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"Box coordinates must be finite, got {values}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"Box needs x1<=x2 and y1<=y2, got {values}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]

    def clip(self, width: int, height: int) -> Box:
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """WGS84 position; accuracy in metres when known."""

    lat: float
    lon: float
    accuracy_m: float | None = None
    altitude_m: float | None = None

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0) or not (-180.0 <= self.lon <= 180.0):
            raise ValueError(f"GeoPoint out of range: lat={self.lat}, lon={self.lon}")


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One detected vehicle."""

    box: Box
    label: VehicleClass
    score: float


@dataclass(frozen=True, slots=True)
class TokenRead:
    """What a CTC recogniser read: its tokens in order and one confidence per token.

    A token is one class of the model: a digit, a letter, or a whole region name such as 서울,
    so a token's confidence may stand for several characters.
    """

    tokens: tuple[str, ...]
    confidences: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.confidences):
            raise ValueError(f"TokenRead needs one confidence per token, got {len(self.tokens)} "
                             f"tokens and {len(self.confidences)} confidences")

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(frozen=True, slots=True)
class PlateRead:
    """A plate's text as the recogniser read it, before and after the grammar.

    ``tokens`` and ``token_confidences`` are the recogniser's own (``raw_text`` is the tokens
    joined); ``char_confidences`` has one value per character of ``text`` for a plate, else
    per character of ``raw_text`` (derived once, by edge_agent.plates.text). ``dissent`` has,
    per character of ``text``, how many of the ``views_checked`` jittered views of the crop
    read it otherwise (edge_agent.plates.agreement; empty when the read was not checked).
    ``crop_size`` is the (width, height) in pixels of the crop it was read from ((0, 0): not
    known), which the evidence rule's size floor looks at (plates.evidence.legible_px).
    """

    raw_text: str
    char_confidences: tuple[float, ...]
    text: str | None = None  # normalised plate if the grammar accepted it
    valid: bool = False
    reject_reason: str | None = None
    tokens: tuple[str, ...] = ()
    token_confidences: tuple[float, ...] = ()
    dissent: tuple[int, ...] = ()
    views_checked: int = 0
    crop_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.dissent and (self.text is None or len(self.dissent) != len(self.text)):
            raise ValueError(f"PlateRead needs one dissent count per character of its plate "
                             f"{self.text!r}, got {len(self.dissent)}")
        if any(d < 0 or d > self.views_checked for d in self.dissent):
            raise ValueError(f"PlateRead dissent {self.dissent} must be within 0.."
                             f"{self.views_checked} views")
        if len(self.crop_size) != 2 or min(self.crop_size) < 0:
            raise ValueError(f"PlateRead crop_size {self.crop_size} is no (width, height)")
        if len(self.tokens) != len(self.token_confidences):
            raise ValueError(f"PlateRead needs one confidence per token, got {len(self.tokens)} "
                             f"tokens and {len(self.token_confidences)} confidences")
        if self.tokens and "".join(self.tokens) != self.raw_text:
            raise ValueError(f"PlateRead tokens {self.tokens} do not spell {self.raw_text!r}")
        chars = self.text if self.valid and self.text is not None else self.raw_text
        if len(self.char_confidences) != len(chars):
            raise ValueError(f"PlateRead needs one confidence per character of {chars!r}, got "
                             f"{len(self.char_confidences)}")

    @property
    def confidence(self) -> float:
        """Weakest part decides: one unreadable digit makes the whole plate doubtful. Every
        token the reader gave counts, also one the grammar dropped (a stray mark read between
        the digits): a read with a doubtful part is a doubtful read."""
        values = (*self.char_confidences, *self.token_confidences)
        return min(values) if values else 0.0


@dataclass(frozen=True, slots=True)
class PlateDetection:
    """A located plate: its box in the photo, the locator's score, and what was read."""

    box: Box
    score: float
    read: PlateRead | None = None
    vehicle_index: int | None = None  # index into PhotoResult.vehicles, None if outside any


@dataclass(frozen=True, slots=True)
class PhotoMeta:
    """When and where a photo was taken, and how sure we are of it."""

    captured_at: datetime  # timezone-aware UTC
    location: GeoPoint | None
    time_source: Literal["exif", "file", "device"]
    location_source: Literal["exif", "device", "none"]
    source_id: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.captured_at.tzinfo is None:
            raise ValueError("PhotoMeta.captured_at must be timezone-aware (UTC)")


def _meta_dict(meta: PhotoMeta) -> dict[str, object]:
    loc = meta.location
    return {
        "captured_at": meta.captured_at.isoformat(),
        "time_source": meta.time_source,
        "location": None if loc is None else {"lat": loc.lat, "lon": loc.lon,
                                              "accuracy_m": loc.accuracy_m,
                                              "altitude_m": loc.altitude_m},
        "location_source": meta.location_source,
        "source_id": meta.source_id,
        "warnings": list(meta.warnings),
    }


def _plate_dict(plate: PlateDetection) -> dict[str, object]:
    read = plate.read
    return {
        "box": plate.box.as_list(),
        "score": round(plate.score, 3),
        "vehicle_index": plate.vehicle_index,
        "read": None if read is None else {
            "raw_text": read.raw_text,
            "text": read.text,
            "valid": read.valid,
            "confidence": round(read.confidence, 3),
            "char_confidences": [round(c, 3) for c in read.char_confidences],
            "tokens": list(read.tokens),
            "token_confidences": [round(c, 3) for c in read.token_confidences],
            "reject_reason": read.reject_reason,
            "views_checked": read.views_checked,
            "dissent": list(read.dissent),
            "crop_size": list(read.crop_size),
        },
    }


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """What the vision pipeline saw in one photo, with per-stage wall times.

    ``timings_ms``: decode, vehicle, plate_locate, plate_read, total (pipeline wall time);
    ``inference_ms``: the bare model run time inside those stages (for the benchmark's
    overhead ratio). ``people`` are boxes for the uploader's privacy blur, never vehicles.
    """

    photo_meta: PhotoMeta
    image_size: tuple[int, int]  # (width, height) of the upright image
    vehicles: list[Vehicle]
    plates: list[PlateDetection]
    timings_ms: dict[str, float]
    people: list[Box] = field(default_factory=list)
    inference_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (plain types only)."""
        return {
            "meta": _meta_dict(self.photo_meta),
            "image_size": list(self.image_size),
            "vehicles": [{"box": v.box.as_list(), "label": v.label, "score": round(v.score, 3)}
                         for v in self.vehicles],
            "plates": [_plate_dict(p) for p in self.plates],
            "people": [b.as_list() for b in self.people],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "inference_ms": {k: round(v, 2) for k, v in self.inference_ms.items()},
        }
