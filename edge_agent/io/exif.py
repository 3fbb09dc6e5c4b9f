"""EXIF time, place and orientation of a photo, read and written with piexif.

Why so defensive: field photos come from phones, dashcams and editors, and their EXIF is often
wrong (a camera clock never set says 1970, a GPS with no fix writes 0/0 or garbage, a broken
writer leaves zero denominators). A report built on a wrong time or place is worse than one
that falls back to the device's clock and configured place, so every implausible value is
dropped with a warning the caller shows to the user; nothing in here raises on bad EXIF.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import piexif

from edge_agent.results import GeoPoint

log = logging.getLogger(__name__)

EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)
"""Photos claiming to be older than this come from a camera whose clock was never set."""
MAX_FUTURE = timedelta(days=1)
"""Clock drift we tolerate before a time in the future is called absurd."""

_DATE_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S")
_FIXED_ZONES = {"Asia/Seoul": timezone(timedelta(hours=9), "KST")}  # for hosts without tzdata

_TAG_ORIENTATION = piexif.ImageIFD.Orientation
_TAG_DATETIME = piexif.ImageIFD.DateTime
_TAG_DT_ORIGINAL = piexif.ExifIFD.DateTimeOriginal
_TAG_SUBSEC_ORIGINAL = piexif.ExifIFD.SubSecTimeOriginal
_TAG_OFFSET = piexif.ExifIFD.OffsetTime
_TAG_OFFSET_ORIGINAL = piexif.ExifIFD.OffsetTimeOriginal
_TAG_H_ERROR = piexif.GPSIFD.GPSHPositioningError
_G = piexif.GPSIFD


@dataclass(frozen=True, slots=True)
class ExifInfo:
    """What a photo's EXIF says, after sanity checks. ``None`` means absent or unusable."""

    captured_at: datetime | None = None  # timezone-aware UTC
    location: GeoPoint | None = None
    orientation: int = 1  # EXIF orientation 1..8 (1 = as stored)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.captured_at is not None and self.captured_at.utcoffset() != timedelta(0):
            raise ValueError("ExifInfo.captured_at must be UTC")
        if not 1 <= self.orientation <= 8:
            raise ValueError(f"EXIF orientation must be 1..8, got {self.orientation}")


def resolve_zone(name: str) -> tzinfo | None:
    """The tzinfo for an IANA zone name, or None when the host does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return _FIXED_ZONES.get(name)


# --- reading -----------------------------------------------------------------------------------


def read_exif(data: bytes, default_tz: str = "Asia/Seoul",
              now: datetime | None = None) -> ExifInfo:
    """Read time, place and orientation from JPEG or PNG bytes (or a bare EXIF/TIFF block).

    ``default_tz`` is the zone of times without OffsetTime; ``now`` (UTC, default the clock)
    bounds times in the future. Unusable fields become None with a warning.
    """
    warnings: list[str] = []
    block = _exif_block(data)
    if block is None:
        return ExifInfo()
    try:
        tags = piexif.load(block)
    except Exception as exc:  # piexif raises anything from struct.error to KeyError on junk
        log.debug("piexif could not parse EXIF", exc_info=True)
        return ExifInfo(warnings=(f"EXIF is unreadable ({type(exc).__name__}); ignored",))
    ifd0, exif, gps = (tags.get(k) or {} for k in ("0th", "Exif", "GPS"))
    orientation = _orientation(ifd0, warnings)
    captured_at = _captured_at(ifd0, exif, gps, default_tz, now or datetime.now(UTC), warnings)
    location = _location(gps, warnings)
    return ExifInfo(captured_at, location, orientation, tuple(warnings))


def _exif_block(data: bytes) -> bytes | None:
    """The bytes piexif should parse: a JPEG as is, else a TIFF block found in the container.

    piexif.load treats unknown bytes as a *file name*, so never hand it anything unchecked.
    """
    if data[:3] == b"\xff\xd8\xff":
        return data
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        tiff = _png_exif_chunk(data)
        return tiff if tiff and tiff[:4] in (b"II*\x00", b"MM\x00*") else None
    if data[:6] == b"Exif\x00\x00":
        data = data[6:]
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return data
    return None


def _png_exif_chunk(data: bytes) -> bytes | None:
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"eXIf":
            return data[offset + 8:offset + 8 + length]
        if kind in (b"IDAT", b"IEND"):
            return None  # eXIf must come before the image data
        offset += 12 + length
    return None


def _orientation(ifd0: dict[int, Any], warnings: list[str]) -> int:
    value = ifd0.get(_TAG_ORIENTATION)
    if value is None:
        return 1
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    warnings.append(f"EXIF orientation {value!r} is not 1..8; the photo is used as stored")
    return 1


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    return value.strip("\x00 \t\r\n") or None


def _parse_local(text: str) -> datetime | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _parse_offset(text: str | None) -> timezone | None:
    """'+09:00' / '-03:30' / 'Z' -> timezone; anything else -> None."""
    if not text:
        return None
    if text in ("Z", "+00:00", "-00:00"):
        return UTC
    if len(text) == 6 and text[0] in "+-" and text[3] == ":" and (text[1:3] + text[4:]).isdigit():
        hours, minutes = int(text[1:3]), int(text[4:])
        if hours <= 14 and minutes < 60:
            sign = 1 if text[0] == "+" else -1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    return None


def _captured_at(ifd0: dict[int, Any], exif: dict[int, Any], gps: dict[int, Any],
                 default_tz: str, now: datetime, warnings: list[str]) -> datetime | None:
    """DateTimeOriginal (+ SubSec, + OffsetTimeOriginal / OffsetTime / default zone); else
    the camera's DateTime; else the GPS time stamp, which is UTC by definition."""
    candidates: list[tuple[str, Callable[[], datetime | None]]] = [
        ("DateTimeOriginal", lambda: _local_time(exif, _TAG_DT_ORIGINAL, default_tz, warnings)),
        ("DateTime", lambda: _local_time(ifd0, _TAG_DATETIME, default_tz, warnings,
                                          original=False, exif=exif)),
        ("GPS time", lambda: _gps_time(gps)),
    ]
    for label, get in candidates:
        value = get()
        if value is None:
            continue
        if value < EARLIEST_PLAUSIBLE:
            warnings.append(f"EXIF {label} {value:%Y-%m-%d} is before 2000 (camera clock "
                            "never set?); ignored")
            continue
        if value > now + MAX_FUTURE:
            warnings.append(f"EXIF {label} {value:%Y-%m-%d %H:%M} UTC is in the future; ignored")
            continue
        if label != "DateTimeOriginal":
            warnings.append(f"EXIF has no usable DateTimeOriginal; using its {label}"
                            + (" (may be when the photo was edited)" if label == "DateTime"
                               else ""))
        return value
    return None


def _local_time(ifd: dict[int, Any], tag: int, default_tz: str, warnings: list[str],
                original: bool = True, exif: dict[int, Any] | None = None) -> datetime | None:
    raw = ifd.get(tag)
    if raw is None:
        return None
    name = "DateTimeOriginal" if original else "DateTime"
    text = _text(raw)
    local = _parse_local(text) if text else None
    if local is None:
        warnings.append(f"EXIF {name} {raw!r:.40} is not a date; ignored")
        return None
    exif = ifd if exif is None else exif
    if original:
        subsec = _text(exif.get(_TAG_SUBSEC_ORIGINAL))
        if subsec and subsec.isdigit():
            local = local.replace(microsecond=int((subsec + "000000")[:6]))
    offsets = ([_TAG_OFFSET_ORIGINAL] if original else []) + [_TAG_OFFSET]
    for offset_tag in offsets:
        raw_offset = _text(exif.get(offset_tag))
        zone = _parse_offset(raw_offset)
        if zone is not None:
            return local.replace(tzinfo=zone).astimezone(UTC)
        if raw_offset:
            warnings.append(f"EXIF offset {raw_offset!r:.20} is not ±HH:MM; ignored")
    default_zone = resolve_zone(default_tz)
    if default_zone is None:
        warnings.append(f"time zone {default_tz!r} is unknown on this host; EXIF time read as "
                        "UTC")
        default_zone = UTC
    return local.replace(tzinfo=default_zone).astimezone(UTC)


def _gps_time(gps: dict[int, Any]) -> datetime | None:
    day = _text(gps.get(_G.GPSDateStamp))
    stamp = gps.get(_G.GPSTimeStamp)
    if not day or not stamp:
        return None
    try:
        parsed_day = datetime.strptime(day, "%Y:%m:%d").date()
        h, m, s = (_rational(v) for v in stamp)
        if h is None or m is None or s is None:
            return None
        whole = int(s)
        clock = time(int(h), int(m), whole, int((s - whole) * 1_000_000))
    except (ValueError, TypeError):
        return None
    return datetime.combine(parsed_day, clock, tzinfo=UTC)


def _rational(value: Any) -> float | None:
    """piexif's (numerator, denominator) -> float; None for 0 denominators and junk."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        num, den = value
        if isinstance(num, int) and isinstance(den, int) and den != 0:
            return num / den
        return None
    if isinstance(value, int):
        return float(value)
    return None


def _dms(value: Any) -> float | None:
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        return None
    parts = [_rational(v) for v in value]
    if any(p is None or p < 0 for p in parts):
        return None
    parts += [0.0] * (3 - len(parts))
    degrees, minutes, seconds = parts
    if minutes >= 60 or seconds >= 60:
        return None
    return degrees + minutes / 60 + seconds / 3600


def _location(gps: dict[int, Any], warnings: list[str]) -> GeoPoint | None:
    if _G.GPSLatitude not in gps and _G.GPSLongitude not in gps:
        return None
    lat, lon = _dms(gps.get(_G.GPSLatitude)), _dms(gps.get(_G.GPSLongitude))
    lat_ref, lon_ref = _text(gps.get(_G.GPSLatitudeRef)), _text(gps.get(_G.GPSLongitudeRef))
    if lat is None or lon is None:
        warnings.append("EXIF GPS position is malformed (missing part or zero denominator); "
                        "ignored")
        return None
    if lat_ref not in ("N", "S", None) or lon_ref not in ("E", "W", None):
        warnings.append(f"EXIF GPS references {lat_ref!r}/{lon_ref!r} are not N/S and E/W; "
                        "ignored")
        return None
    if lat_ref is None or lon_ref is None:
        warnings.append("EXIF GPS has no hemisphere reference; assumed N/E")
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        warnings.append(f"EXIF GPS position {lat:.5f}, {lon:.5f} is off the globe; ignored")
        return None
    if lat == 0 and lon == 0:
        warnings.append("EXIF GPS position is 0, 0 (a receiver without a fix); ignored")
        return None
    return GeoPoint(lat, lon, accuracy_m=_accuracy(gps, warnings),
                    altitude_m=_altitude(gps, warnings))


def _altitude(gps: dict[int, Any], warnings: list[str]) -> float | None:
    if _G.GPSAltitude not in gps:
        return None
    value = _rational(gps[_G.GPSAltitude])
    if value is None or not -1000 <= value <= 20000:
        warnings.append("EXIF GPS altitude is malformed or implausible; ignored")
        return None
    ref = gps.get(_G.GPSAltitudeRef, 0)
    if isinstance(ref, bytes):
        ref = ref[0] if ref else 0
    return -abs(value) if ref == 1 else value


def _accuracy(gps: dict[int, Any], warnings: list[str]) -> float | None:
    if _TAG_H_ERROR not in gps:
        return None
    value = _rational(gps[_TAG_H_ERROR])
    if value is None or not 0 <= value < 100_000:
        warnings.append("EXIF GPSHPositioningError is malformed; ignored")
        return None
    return value


# --- writing -----------------------------------------------------------------------------------


def write_exif(jpeg: bytes, captured_at: datetime, location: GeoPoint | None,
               orientation: int = 1, tz: str | None = None) -> bytes:
    """Return ``jpeg`` with fresh EXIF: time (local + offset), GPS, orientation.

    The local time is ``captured_at`` in its own zone, or converted to ``tz`` when given, as a
    phone would write it. Existing EXIF is replaced. Used by the demo and the tests.
    """
    if captured_at.tzinfo is None:
        raise ValueError("write_exif needs a timezone-aware captured_at")
    if not 1 <= orientation <= 8:
        raise ValueError(f"orientation must be 1..8, got {orientation}")
    if tz is not None:
        zone = resolve_zone(tz)
        if zone is None:
            raise ValueError(f"unknown time zone {tz!r}")
        captured_at = captured_at.astimezone(zone)
    offset = captured_at.utcoffset() or timedelta(0)
    stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S").encode()
    offset_text = _format_offset(offset).encode()
    ifd0 = {_TAG_ORIENTATION: orientation, _TAG_DATETIME: stamp}
    exif: dict[int, Any] = {
        _TAG_DT_ORIGINAL: stamp,
        piexif.ExifIFD.DateTimeDigitized: stamp,
        _TAG_OFFSET_ORIGINAL: offset_text,
        _TAG_OFFSET: offset_text,
    }
    if captured_at.microsecond:
        exif[_TAG_SUBSEC_ORIGINAL] = f"{captured_at.microsecond:06d}".rstrip("0").encode()
    gps = _gps_tags(captured_at.astimezone(UTC), location) if location is not None else {}
    block = piexif.dump({"0th": ifd0, "Exif": exif, "GPS": gps})
    out = io.BytesIO()
    piexif.insert(block, jpeg, out)
    return out.getvalue()


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _to_rational(value: float, den: int = 10_000) -> tuple[int, int]:
    frac = Fraction(value).limit_denominator(den)
    return frac.numerator, frac.denominator


def _to_dms(value: float) -> tuple[tuple[int, int], ...]:
    """Degrees, minutes, seconds (to 1/10000 s), counted in whole units so a value such as
    37.4 (23.999... minutes) never becomes 23' 60.0000" (malformed: the reader refuses it)."""
    total = round(abs(value) * 3600 * 10_000)
    degrees, rest = divmod(total, 3600 * 10_000)
    minutes, seconds = divmod(rest, 60 * 10_000)
    return (degrees, 1), (minutes, 1), (seconds, 10_000)


def _gps_tags(utc: datetime, location: GeoPoint) -> dict[int, Any]:
    tags: dict[int, Any] = {
        _G.GPSVersionID: (2, 3, 0, 0),
        _G.GPSLatitudeRef: b"S" if location.lat < 0 else b"N",
        _G.GPSLatitude: _to_dms(location.lat),
        _G.GPSLongitudeRef: b"W" if location.lon < 0 else b"E",
        _G.GPSLongitude: _to_dms(location.lon),
        _G.GPSDateStamp: utc.strftime("%Y:%m:%d").encode(),
        _G.GPSTimeStamp: ((utc.hour, 1), (utc.minute, 1),
                          (utc.second * 1000 + utc.microsecond // 1000, 1000)),
    }
    if location.altitude_m is not None:
        tags[_G.GPSAltitudeRef] = 1 if location.altitude_m < 0 else 0
        tags[_G.GPSAltitude] = _to_rational(abs(location.altitude_m), 100)
    if location.accuracy_m is not None:
        tags[_TAG_H_ERROR] = _to_rational(location.accuracy_m, 100)
    return tags
