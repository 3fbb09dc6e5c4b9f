"""The service's request and answer bodies: validated on the way in, documented in OpenAPI.

Numbers are bounded (a box coordinate is a finite number of pixels below a million), strings
have a length, and nothing is nested deeper than it needs to be, so a hostile body is refused
with a 4xx by the validation, never by a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Coordinate = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
BoxList = Annotated[list[Coordinate], Field(min_length=4, max_length=4,
                                            description="[x1, y1, x2, y2] in pixels of the "
                                            "upright (EXIF-rotated) photo")]
DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Place(Strict):
    lat: Latitude
    lon: Longitude
    accuracy_m: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] | None = None


class S3Object(Strict):
    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    key: Annotated[str, Field(min_length=1, max_length=1024)]


class ProcessReference(Strict):
    """POST /process_metadata as JSON: the photo is an S3 object the service fetches."""

    s3: S3Object
    device_id: DeviceId | None = None
    captured_at: AwareDatetime | None = Field(None, description="Capture time with its UTC "
                                              "offset; replaces the photo's EXIF time.")
    location: Place | None = Field(None, description="Where the photo was taken; replaces "
                                   "the photo's EXIF GPS.")
    name: Annotated[str, Field(max_length=200)] | None = None


class CompareJson(Strict):
    """POST /compare_background as JSON: two photos base64-encoded, optional vehicle boxes."""

    image_a: Annotated[str, Field(min_length=1, description="base64 (or a data: URL)")]
    image_b: Annotated[str, Field(min_length=1, description="base64 (or a data: URL)")]
    box_a: BoxList | None = None
    box_b: BoxList | None = None


class ErrorAnswer(BaseModel):
    error: str = Field(description="One line: what is wrong and what to do.")
    status: int


class HealthAnswer(BaseModel):
    status: str
    version: str
    uptime_s: float
    models: dict[str, str | None]


class ReadyAnswer(BaseModel):
    ready: bool
    reason: str | None = None


class Sighting(BaseModel):
    """One plate sure enough to be evidence, with what pairing needs later."""

    plate: str
    plate_raw: str
    confidence: float
    char_confidences: list[float]
    plate_box: list[float]
    vehicle_box: list[float]
    scene_embedding: list[float] | None
    vehicle_embedding: list[float] | None
    scene_model_id: str | None


class ProcessAnswer(BaseModel):
    name: str
    sha256: str
    device_id: str | None
    meta: dict[str, Any] = Field(description="captured_at, time_source (exif, file, device or "
                                 "request), location, location_source, source_id, warnings")
    image_size: list[int]
    vehicles: list[dict[str, Any]]
    plates: list[dict[str, Any]]
    people: list[list[float]]
    sightings: list[Sighting]
    timings_ms: dict[str, float]
    inference_ms: dict[str, float]
    models: dict[str, str | None]


class CompareAnswer(BaseModel):
    match: dict[str, Any]
    model_id: str | None
    images: list[dict[str, Any]]


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its offset, or None; ValueError names the parameter."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{name}: {value[:40]!r} has no UTC offset; add one (+09:00)")
    return parsed
