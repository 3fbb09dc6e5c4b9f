"""EXIF round trips through piexif, and absurd EXIF dropped with a warning instead of a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import piexif
import pytest
from conftest import shared_path

from edge_agent.io.exif import read_exif, write_exif
from edge_agent.results import GeoPoint

KST = timezone(timedelta(hours=9))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scene_jpeg() -> bytes:
    return (shared_path("data/scenes/korea-a") / "802.jpg").read_bytes()


def with_tags(jpeg: bytes, exif: dict | None = None, gps: dict | None = None,
              ifd0: dict | None = None) -> bytes:
    """The JPEG with exactly these raw EXIF tags (piexif.insert writes to a buffer)."""
    import io

    block = piexif.dump({"0th": ifd0 or {}, "Exif": exif or {}, "GPS": gps or {}})
    out = io.BytesIO()
    piexif.insert(block, jpeg, out)
    return out.getvalue()


@pytest.mark.parametrize("captured_at", [
    datetime(2025, 3, 4, 10, 20, 30, tzinfo=KST),
    datetime(2025, 3, 4, 23, 59, 59, 250000, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2024, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
])
def test_time_with_offset_round_trips_to_utc(scene_jpeg: bytes, captured_at: datetime) -> None:
    info = read_exif(write_exif(scene_jpeg, captured_at, None), now=NOW)
    assert info.captured_at == captured_at.astimezone(UTC)
    assert info.captured_at.utcoffset() == timedelta(0)
    assert info.location is None
    assert info.warnings == ()


def test_write_converts_to_requested_zone(scene_jpeg: bytes) -> None:
    utc = datetime(2025, 7, 1, 3, 0, tzinfo=UTC)
    data = write_exif(scene_jpeg, utc, None, tz="Asia/Seoul")
    raw = piexif.load(data)["Exif"]
    assert raw[piexif.ExifIFD.DateTimeOriginal] == b"2025:07:01 12:00:00"
    assert raw[piexif.ExifIFD.OffsetTimeOriginal] == b"+09:00"
    assert read_exif(data).captured_at == utc


@pytest.mark.parametrize("point", [
    GeoPoint(37.566535, 126.977969, accuracy_m=4.0, altitude_m=38.5),    # Seoul City Hall
    GeoPoint(-33.856784, 151.215297, accuracy_m=12.5, altitude_m=3.0),   # south
    GeoPoint(40.689247, -74.044502),                                      # west
    GeoPoint(-22.951916, -43.210487, altitude_m=None, accuracy_m=65.0),   # south-west
    GeoPoint(31.559, 35.473, altitude_m=-430.5),                          # Dead Sea, below sea
])
def test_gps_round_trip_with_hemispheres_and_altitude(scene_jpeg: bytes, point: GeoPoint) -> None:
    when = datetime(2025, 5, 5, 14, 0, tzinfo=KST)
    info = read_exif(write_exif(scene_jpeg, when, point), now=NOW)
    assert info.location is not None
    assert info.location.lat == pytest.approx(point.lat, abs=1e-6)
    assert info.location.lon == pytest.approx(point.lon, abs=1e-6)
    if point.altitude_m is None:
        assert info.location.altitude_m is None
    else:
        assert info.location.altitude_m == pytest.approx(point.altitude_m, abs=0.01)
    assert info.location.accuracy_m == point.accuracy_m
    raw = piexif.load(write_exif(scene_jpeg, when, point))["GPS"]
    assert raw[piexif.GPSIFD.GPSLatitudeRef] == (b"S" if point.lat < 0 else b"N")
    assert raw[piexif.GPSIFD.GPSLongitudeRef] == (b"W" if point.lon < 0 else b"E")
    if point.altitude_m is not None:
        assert raw[piexif.GPSIFD.GPSAltitudeRef] == (1 if point.altitude_m < 0 else 0)
    assert raw[piexif.GPSIFD.GPSDateStamp] == b"2025:05:05"  # 14:00 KST = 05:00 UTC
    assert raw[piexif.GPSIFD.GPSTimeStamp][0] == (5, 1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_round_trip(scene_jpeg: bytes, orientation: int) -> None:
    data = write_exif(scene_jpeg, datetime(2025, 1, 1, tzinfo=KST), None, orientation=orientation)
    assert read_exif(data, now=NOW).orientation == orientation


def test_time_without_offset_uses_default_zone(scene_jpeg: bytes) -> None:
    data = with_tags(scene_jpeg, exif={piexif.ExifIFD.DateTimeOriginal: b"2025:08:15 09:30:00"})
    assert read_exif(data, now=NOW).captured_at == datetime(2025, 8, 15, 0, 30, tzinfo=UTC)
    ny = read_exif(data, default_tz="America/New_York", now=NOW).captured_at
    assert ny == datetime(2025, 8, 15, 13, 30, tzinfo=UTC)  # EDT is UTC-4 in August


def test_offset_time_is_the_fallback_for_offset_time_original(scene_jpeg: bytes) -> None:
    data = with_tags(scene_jpeg, exif={piexif.ExifIFD.DateTimeOriginal: b"2025:08:15 09:30:00",
                                       piexif.ExifIFD.SubSecTimeOriginal: b"25",
                                       piexif.ExifIFD.OffsetTime: b"+02:00"})
    assert read_exif(data, now=NOW).captured_at == datetime(2025, 8, 15, 7, 30, 0, 250000,
                                                            tzinfo=UTC)


def test_gps_time_is_used_when_no_camera_time(scene_jpeg: bytes) -> None:
    data = with_tags(scene_jpeg, gps={piexif.GPSIFD.GPSDateStamp: b"2025:02:03",
                                      piexif.GPSIFD.GPSTimeStamp: ((4, 1), (5, 1), (6, 1))})
    info = read_exif(data, now=NOW)
    assert info.captured_at == datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert any("using its GPS time" in w for w in info.warnings)


def test_camera_datetime_is_a_fallback_with_a_warning(scene_jpeg: bytes) -> None:
    data = with_tags(scene_jpeg, ifd0={piexif.ImageIFD.DateTime: b"2025:02:03 10:00:00"},
                     exif={piexif.ExifIFD.OffsetTime: b"+09:00"})
    info = read_exif(data, now=NOW)
    assert info.captured_at == datetime(2025, 2, 3, 1, 0, tzinfo=UTC)
    assert any("may be when the photo was edited" in w for w in info.warnings)


def test_real_photo_exif_time_is_read(data_dir: Path) -> None:
    data = (data_dir / "scenes/korea-a/mounted2-1.jpg").read_bytes()
    stamp = piexif.load(data)["Exif"][piexif.ExifIFD.DateTimeOriginal].decode()
    local = datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S").replace(tzinfo=KST)
    info = read_exif(data)
    assert info.captured_at == local.astimezone(UTC)
    assert info.orientation == 1


def test_photo_without_exif_reads_as_empty(scene_jpeg: bytes) -> None:
    import io

    out = io.BytesIO()
    piexif.remove(scene_jpeg, out)
    info = read_exif(out.getvalue())
    assert (info.captured_at, info.location, info.orientation, info.warnings) == (None, None, 1, ())


def _dms(value: float) -> tuple[tuple[int, int], ...]:
    return ((int(value), 1), (0, 1), (0, 1))


SEOUL_GPS = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: _dms(37),
             piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: _dms(127)}


@pytest.mark.parametrize(("label", "exif", "gps", "ifd0", "field", "warning"), [
    ("latitude 200", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLatitude: _dms(200)}, {},
     "location", "off the globe"),
    ("longitude 500 west", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLongitudeRef: b"W",
                                piexif.GPSIFD.GPSLongitude: _dms(500)}, {},
     "location", "off the globe"),
    ("zero denominator", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLatitude: ((37, 0), (0, 1), (0, 1))},
     {}, "location", "zero denominator"),
    ("minutes 75", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLatitude: ((37, 1), (75, 1), (0, 1))},
     {}, "location", "malformed"),
    ("bad hemisphere", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLatitudeRef: b"Q"}, {},
     "location", "not N/S"),
    ("null island", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSLatitude: _dms(0),
                         piexif.GPSIFD.GPSLongitude: _dms(0)}, {}, "location", "0, 0"),
    ("date 1970", {piexif.ExifIFD.DateTimeOriginal: b"1970:01:01 09:00:00"}, {}, {},
     "captured_at", "before 2000"),
    ("date in the future", {piexif.ExifIFD.DateTimeOriginal: b"2031:01:01 00:00:00"}, {}, {},
     "captured_at", "future"),
    ("garbage date", {piexif.ExifIFD.DateTimeOriginal: b"\xff\xfe not a date"}, {}, {},
     "captured_at", "not a date"),
    ("impossible date", {piexif.ExifIFD.DateTimeOriginal: b"2025:02:30 25:61:00"}, {}, {},
     "captured_at", "not a date"),
    ("garbage offset", {piexif.ExifIFD.DateTimeOriginal: b"2025:02:03 10:00:00",
                        piexif.ExifIFD.OffsetTimeOriginal: b"+99:99"}, {}, {},
     None, "not ±HH:MM"),
    ("orientation 9", {}, {}, {piexif.ImageIFD.Orientation: 9}, None, "not 1..8"),
    ("altitude zero denominator", {}, {**SEOUL_GPS, piexif.GPSIFD.GPSAltitude: (10, 0)}, {},
     None, "altitude"),
])
def test_absurd_exif_is_ignored_with_a_warning(scene_jpeg: bytes, label: str, exif: dict,
                                               gps: dict, ifd0: dict, field: str | None,
                                               warning: str) -> None:
    info = read_exif(with_tags(scene_jpeg, exif, gps, ifd0), now=NOW)
    if field is not None:
        assert getattr(info, field) is None, label
    assert any(warning in w for w in info.warnings), (label, info.warnings)
    assert info.orientation in range(1, 9)


def test_unparseable_exif_block_is_a_warning(scene_jpeg: bytes) -> None:
    # An APP1 'Exif' segment whose TIFF header points far past the end of the block.
    payload = b"Exif\x00\x00MM\x00*\x7f\xff\xff\xff" + b"\x00" * 8
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    info = read_exif(scene_jpeg[:2] + app1 + scene_jpeg[2:])
    assert info.captured_at is None and info.location is None
    assert any("unreadable" in w for w in info.warnings)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n",
                                  b"\xff\xd8\xff", b"II*\x00\xff\xff\xff\x7f"])
def test_read_exif_never_raises_on_junk(data: bytes) -> None:
    info = read_exif(data)
    assert info.captured_at is None and info.location is None


def test_write_exif_refuses_naive_time(scene_jpeg: bytes) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        write_exif(scene_jpeg, datetime(2025, 1, 1), None)


@pytest.mark.parametrize("lat, lon", [(37.4, 126.903), (37.5665, 126.978), (35.0, 129.0),
                                      (-33.8688, 151.2093), (37.999999999, 127.0)])
def test_written_gps_reads_back(scene_jpeg: bytes, lat: float, lon: float) -> None:
    """37.4° is 37° 23.999...' in binary floating point: once written as 23' 60.0000" (which
    the reader rightly refuses), so a device at such a place lost the GPS of its own frames."""
    written = write_exif(scene_jpeg, datetime(2025, 6, 1, 9, 0, tzinfo=UTC),
                         GeoPoint(lat, lon, 5.0))
    info = read_exif(written)
    assert info.location is not None, info.warnings
    assert abs(info.location.lat - lat) < 1e-6 and abs(info.location.lon - lon) < 1e-6
