"""EXIF capture time and GPS of a raw photo, for the cloud (piexif: pure Python, Lambda-safe).

The device has its own, richer reader; this one is the lean cloud copy of the same decisions:
DateTimeOriginal (else DateTime) with OffsetTimeOriginal (else OffsetTime, else Korea time,
where the product runs), GPS with its N/S and E/W references. An implausible value (a camera
clock never set, a GPS without a fix writing 0/0, a zero denominator) is dropped with a
warning, never raised: a photo without a usable time or place is recorded as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

KST = timezone(timedelta(hours=9), "KST")
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)

_DT_ORIGINAL, _OFFSET_ORIGINAL, _OFFSET = 0x9003, 0x9011, 0x9010
_DATETIME = 0x0132
_LAT_REF, _LAT, _LON_REF, _LON, _H_ERROR = 1, 2, 3, 4, 31


@dataclass(frozen=True)
class RawExif:
    """What a raw photo's EXIF says; None where absent or implausible."""

    captured_at: datetime | None = None  # aware UTC
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("ascii", "replace")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _offset(text: str | None) -> timezone | None:
    if not text or len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(delta if text[0] == "+" else -delta)


def _time(exif: dict, zeroth: dict, now: datetime, warnings: list[str]) -> datetime | None:
    raw = _text(exif.get(_DT_ORIGINAL)) or _text(zeroth.get(_DATETIME))
    if raw is None:
        warnings.append("no EXIF capture time")
        return None
    try:
        local = datetime.strptime(raw, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        warnings.append(f"EXIF time {raw[:40]!r} is not YYYY:MM:DD HH:MM:SS")
        return None
    zone = _offset(_text(exif.get(_OFFSET_ORIGINAL)) or _text(exif.get(_OFFSET)))
    if zone is None:
        zone = KST
        warnings.append("EXIF time has no offset; taken as Korea time (+09:00)")
    when = local.replace(tzinfo=zone).astimezone(UTC)
    if not EARLIEST_PLAUSIBLE <= when <= now + MAX_FUTURE:
        warnings.append(f"EXIF time {when.isoformat()} is implausible (camera clock not set?)")
        return None
    return when


def _rational(value: object) -> float | None:
    if (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
            and value[1] != 0):
        return value[0] / value[1]
    return None


def _degrees(value: object) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_rational(v) for v in value]
    if any(p is None for p in parts):
        return None
    d, m, s = parts  # type: ignore[misc]
    return d + m / 60.0 + s / 3600.0


def _place(gps: dict, warnings: list[str]) -> tuple[float | None, float | None, float | None]:
    lat, lon = _degrees(gps.get(_LAT)), _degrees(gps.get(_LON))
    if lat is None or lon is None:
        warnings.append("no usable EXIF GPS")
        return None, None, None
    lat_ref, lon_ref = _text(gps.get(_LAT_REF)), _text(gps.get(_LON_REF))
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        warnings.append("EXIF GPS without its N/S or E/W reference")
        return None, None, None
    lat, lon = (-lat if lat_ref == "S" else lat), (-lon if lon_ref == "W" else lon)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (abs(lat) < 1e-6 and abs(lon) < 1e-6):
        warnings.append(f"EXIF GPS {lat:.6f}, {lon:.6f} is implausible (no fix?)")
        return None, None, None
    error = _rational(gps.get(_H_ERROR))
    return lat, lon, error if error is not None and 0 < error < 100_000 else None


def read_raw_exif(data: bytes, now: datetime | None = None) -> RawExif:
    """Capture time and place of JPEG bytes; an empty RawExif (with a warning) otherwise."""
    import piexif  # imported here: the ingest and promote Lambdas never pay for it

    now = now or datetime.now(UTC)
    try:
        tags = piexif.load(data)
    except Exception as exc:  # piexif raises ValueError, struct.error, its own errors...
        return RawExif(warnings=(f"no readable EXIF ({type(exc).__name__})",))
    warnings: list[str] = []
    when = _time(tags.get("Exif") or {}, tags.get("0th") or {}, now, warnings)
    lat, lon, accuracy = _place(tags.get("GPS") or {}, warnings)
    return RawExif(captured_at=when, lat=lat, lon=lon, accuracy_m=accuracy,
                   warnings=tuple(warnings))
