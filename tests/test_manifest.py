"""The gotcha.report/2 manifest (and /1, still read): keys, building, round trips, and every way
it can be bad."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from edge_agent.results import Box, GeoPoint
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.manifest import (
    MAX_MANIFEST_BYTES,
    SCHEMA,
    SCHEMA_V1,
    ManifestLocation,
    format_time,
    parse_time,
    validate_manifest,
)
from gotcha_contracts.manifest_build import build_manifest, manifest_bytes
from gotcha_contracts.rules import DEFAULT_RULES
from gotcha_contracts.s3_layout import (
    MANIFEST_NAME,
    PHOTO_NAMES,
    manifest_key,
    parse_report_key,
    photo_keys,
    report_prefix,
)

REPORT_ID = "3f2b8c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"
FIRST = datetime(2026, 11, 25, 23, 58, 30, tzinfo=UTC)
CONFIRMED = datetime(2026, 11, 26, 0, 0, 5, 250000, tzinfo=UTC)  # a new UTC day


HERE = GeoPoint(37.5665, 126.978, accuracy_m=8.0)
NEAR = GeoPoint(37.56652, 126.97802, accuracy_m=6.0)  # about 2.8 m from HERE


def good_manifest() -> dict:
    return build_manifest(
        report_id=REPORT_ID, device_id="gotcha-dev-01", plate="서울 12바 3456",
        plate_confidence=0.934, zone="hydrant",
        plate_char_confidences=[0.99, 0.98, 0.97, 0.96, 0.95, 0.934, 0.97, 0.98, 0.99],
        first_seen_at=FIRST, confirmed_at=CONFIRMED,
        photos=[
            {"sha256": "a" * 64, "captured_at": FIRST, "location": HERE,
             "vehicle_box": Box(10, 20, 300, 240),
             "plate_box": Box(100, 180, 160, 200), "scene_embedding": [0.1, -0.25, 0.5]},
            {"sha256": "b" * 64, "captured_at": CONFIRMED, "location": NEAR,
             "vehicle_box": None,
             "plate_box": [101.04, 181, 161, 201.5], "scene_embedding": None},
        ],
        rules=DEFAULT_RULES.with_overrides(radius_m=12.0, min_interval_s={"hydrant": 90}),
        scene_score=0.87, models={"vehicle_detector": "yolov8n-coco",
                                  "plate_reader": "gotcha-kr-plate-crnn",
                                  "scene_embedder": None})


def test_prefix_and_keys_use_the_utc_day_of_confirmation() -> None:
    prefix = report_prefix("gotcha-dev-01", CONFIRMED, REPORT_ID)
    assert prefix == f"reports/gotcha-dev-01/2026/11/26/{REPORT_ID}/"
    kst = CONFIRMED.astimezone(timezone(timedelta(hours=9)))
    assert report_prefix("gotcha-dev-01", kst, REPORT_ID) == prefix
    assert photo_keys("gotcha-dev-01", CONFIRMED, REPORT_ID) == (
        prefix + "photo-1.jpg", prefix + "photo-2.jpg")
    assert manifest_key("gotcha-dev-01", CONFIRMED, REPORT_ID) == prefix + "manifest.json"
    assert PHOTO_NAMES == ("photo-1.jpg", "photo-2.jpg") and MANIFEST_NAME == "manifest.json"


@pytest.mark.parametrize(("device_id", "report_id", "when"), [
    ("..", REPORT_ID, CONFIRMED),
    ("a/b", REPORT_ID, CONFIRMED),
    ("", REPORT_ID, CONFIRMED),
    ("dev", "not-a-uuid", CONFIRMED),
    ("dev", REPORT_ID.upper(), CONFIRMED),
    ("dev", REPORT_ID, datetime(2026, 11, 26)),
])
def test_prefix_refuses_unsafe_parts(device_id: str, report_id: str, when: datetime) -> None:
    with pytest.raises(ManifestError):
        report_prefix(device_id, when, report_id)


def test_parse_report_key() -> None:
    key = manifest_key("dev-7", CONFIRMED, REPORT_ID)
    parsed = parse_report_key(key)
    assert parsed is not None and parsed.is_manifest
    assert (parsed.device_id, parsed.day, parsed.report_id) == ("dev-7", date(2026, 11, 26),
                                                                REPORT_ID)
    assert parsed.prefix + MANIFEST_NAME == key
    assert parse_report_key(photo_keys("dev-7", CONFIRMED, REPORT_ID)[1]).name == "photo-2.jpg"
    for bad in ("raw/dev/x.jpg", key.replace("manifest.json", "other.json"),
                key.replace("/11/", "/13/"), key.replace("dev-7", ".."), "", None):
        assert parse_report_key(bad) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("t", "text"), [
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
    (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2026-01-02T03:04:05.12Z"),
    (datetime(2026, 1, 2, 12, 4, 5, tzinfo=timezone(timedelta(hours=9))),
     "2026-01-02T03:04:05Z"),
])
def test_time_round_trip(t: datetime, text: str) -> None:
    assert format_time(t) == text
    assert parse_time(text) == t


def test_build_normalises_and_validates() -> None:
    doc = good_manifest()
    assert doc["schema"] == SCHEMA
    assert doc["plate"] == "서울12바3456"
    assert doc["confirmed_at"] == "2026-11-26T00:00:05.25Z"
    assert doc["first_seen_at"] == "2026-11-25T23:58:30Z"
    prefix = f"reports/gotcha-dev-01/2026/11/26/{REPORT_ID}/"
    assert [p["key"] for p in doc["photos"]] == [prefix + "photo-1.jpg", prefix + "photo-2.jpg"]
    assert doc["photos"][0]["vehicle_box"] == [10.0, 20.0, 300.0, 240.0]
    assert doc["photos"][1]["plate_box"] == [101.0, 181.0, 161.0, 201.5]
    manifest = validate_manifest(doc)
    assert manifest.plate == "서울12바3456" and manifest.parsed_plate.use == "commercial"
    assert manifest.location.accuracy_m == 8.0  # the first photo's
    assert manifest.photos[1].location == ManifestLocation(37.56652, 126.97802, 6.0)
    assert manifest.distance_m == pytest.approx(manifest.photo_distance_m, abs=0.01)
    assert 2.0 < manifest.photo_distance_m < 3.5
    assert manifest.rules.radius_m == 12.0 and manifest.rules.min_interval("hydrant") == 90
    assert doc["rules"] == {"version": 1, "overrides": {"min_interval_s": {"hydrant": 90.0},
                                                        "radius_m": 12.0}}
    assert manifest.plate_char_confidences[5] == 0.934
    assert manifest.interval_s == pytest.approx(95.25)
    assert manifest.key == prefix + "manifest.json"
    assert manifest.photos[0].scene_embedding == (0.1, -0.25, 0.5)
    assert manifest.models["scene_embedder"] is None


def test_bytes_round_trip_is_canonical() -> None:
    doc = good_manifest()
    data = manifest_bytes(doc)
    manifest = validate_manifest(data)
    assert manifest_bytes(manifest.to_dict()) == data
    assert validate_manifest(data.decode("utf-8")) == manifest
    # same report, same bytes: a retry uploads an identical object
    assert manifest_bytes(good_manifest()) == data
    assert "서울".encode() in data


def test_build_refuses_a_bad_plate() -> None:
    with pytest.raises(ManifestError, match="does not parse"):
        build_manifest(**{**_build_args(), "plate": "12흐3456"})


def test_build_refuses_one_photo() -> None:
    args = _build_args()
    args["photos"] = args["photos"][:1]
    with pytest.raises(ManifestError, match="exactly 2 photos"):
        build_manifest(**args)


def _build_args() -> dict:
    return {"report_id": str(uuid.uuid4()), "device_id": "d1", "plate": "12가3456",
            "plate_confidence": 0.9, "zone": "sidewalk",
            "first_seen_at": FIRST, "confirmed_at": CONFIRMED,
            "photos": [{"sha256": "1" * 64, "captured_at": FIRST, "plate_box": (1, 2, 3, 4),
                        "location": {"lat": 37.5, "lon": 127.0, "accuracy_m": None}},
                       {"sha256": "2" * 64, "captured_at": CONFIRMED, "plate_box": (1, 2, 3, 4),
                        "location": {"lat": 37.5, "lon": 127.0, "accuracy_m": None}}],
            "scene_score": 0.8, "models": {"plate_reader": "crnn"}}


def test_build_accepts_minimal_inputs() -> None:
    doc = build_manifest(**_build_args())
    assert doc["models"] == {"vehicle_detector": None, "plate_reader": "crnn",
                             "scene_embedder": None}
    assert doc["photos"][0]["vehicle_box"] is None
    assert doc["rules"] == {"version": 1, "overrides": {}}
    assert doc["distance_m"] == 0.0 and doc["plate_char_confidences"] == [0.9] * 7


def test_build_refuses_a_photo_without_its_location() -> None:
    args = _build_args()
    del args["photos"][1]["location"]
    with pytest.raises(ManifestError, match=r"photos\[1\].location is missing"):
        build_manifest(**args)


def _set(path: str, value: object):
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return mutate


_DELETE = object()
OTHER_PREFIX = f"reports/gotcha-dev-01/2026/11/25/{REPORT_ID}/"

# mutation, fragment of the reason
BAD = [
    (_set("schema", "gotcha.report/3"), "is not one this code reads"),
    (_set("schema", _DELETE), "missing field schema"),
    (_set("report_id", "1234"), "UUID"),
    (_set("report_id", REPORT_ID.upper()), "UUID"),
    (_set("report_id", 7), "UUID"),
    (_set("device_id", "../etc"), "device_id"),
    (_set("device_id", None), "device_id"),
    (_set("plate", "12흐3456"), "does not parse"),
    (_set("plate", "서울 12바 3456"), "not normalised"),
    (_set("plate", 123), "plate must be a string"),
    (_set("plate_confidence", 1.5), "plate_confidence"),
    (_set("plate_confidence", True), "must be a number"),
    (_set("plate_confidence", "0.9"), "must be a number"),
    (_set("zone", "moon"), "zone"),
    (_set("photos.0.location.lat", 200), "photos[0].location.lat"),
    (_set("photos.1.location.lon", -181), "photos[1].location.lon"),
    (_set("photos.0.location.accuracy_m", -3), "photos[0].location.accuracy_m"),
    (_set("photos.0.location.accuracy_m", _DELETE),
     "photos[0].location is missing field(s) accuracy_m"),
    (_set("photos.0.location", [37.5, 127.0]), "photos[0].location must be an object"),
    (_set("photos.0.location", _DELETE), "photos[0] is missing field(s) location"),
    (_set("location", {"lat": 37.5, "lon": 127.0, "accuracy_m": 1}), "unknown field(s) location"),
    (_set("photos.1.location.lat", 37.5685), "is not the"),  # 220 m away, distance unchanged
    (_set("distance_m", 0.0), "distance_m 0 is not the"),
    (_set("distance_m", -1), "distance_m"),
    (_set("distance_m", "3"), "distance_m must be a number"),
    (_set("plate_char_confidences", [0.9] * 3), "one number per character"),
    (_set("plate_char_confidences", None), "plate_char_confidences must be an array"),
    (_set("plate_char_confidences.0", 1.5), "plate_char_confidences[0]"),
    (_set("rules.version", 2), "rules.version 2 is not a rules version"),
    (_set("rules.version", "1"), "rules.version"),
    (_set("rules.overrides.radius_m", "big"), "rules.overrides.radius_m must be a number"),
    (_set("rules.overrides.radius_m", 1e9), "rules.overrides.radius_m"),
    (_set("rules.overrides.tolerance", 3), "rules.overrides has unknown field(s) tolerance"),
    (_set("rules.overrides.min_interval_s.moon", 60), "unknown zone(s) moon"),
    (_set("rules.overrides.max_interval_s", 30), "not usable rules"),
    (_set("rules", _DELETE), "missing field(s) rules"),
    (_set("photos.0.captured_at", "2026-11-25T23:58:31Z"), "is not first_seen_at"),
    (_set("photos.0.captured_at", "2001-11-25T23:58:30Z"), "is not first_seen_at"),
    (_set("photos.1.captured_at", "2026-11-26T00:00:05Z"), "is not confirmed_at"),
    (_set("first_seen_at", "2026-11-25 23:58:30"), "first_seen_at"),
    (_set("first_seen_at", "2026-11-25T23:58:30+09:00"), "ISO 8601 UTC"),
    (_set("first_seen_at", "2026-02-30T00:00:00Z"), "not a real date"),
    (_set("confirmed_at", "2026-11-25T23:00:00Z"), "before first_seen_at"),
    (_set("confirmed_at", 1764115205), "confirmed_at"),
    (_set("photos", []), "exactly 2 photos"),
    (_set("photos", {"a": 1}), "exactly 2 photos"),
    (_set("photos.0", "photo-1.jpg"), "photos[0] must be an object"),
    (_set("photos.0.key", OTHER_PREFIX + "photo-1.jpg"), "report prefix"),
    (_set("photos.1.key", f"reports/gotcha-dev-01/2026/11/26/{REPORT_ID}/photo-1.jpg"),
     "report prefix"),
    (_set("photos.1.key", "../../photo-2.jpg"), "report prefix"),
    (_set("photos.0.sha256", "A" * 64), "sha256"),
    (_set("photos.0.sha256", "a" * 63), "sha256"),
    (_set("photos.1.sha256", "a" * 64), "same sha256"),
    (_set("photos.0.captured_at", "yesterday"), "photos[0].captured_at"),
    (_set("photos.1.captured_at", "2026-11-25T00:00:00Z"), "before photos[0]"),
    (_set("photos.0.vehicle_box", [1, 2, 3]), "vehicle_box"),
    (_set("photos.0.vehicle_box", [5, 5, 1, 1]), "x1 < x2"),
    (_set("photos.0.vehicle_box", [0, 0, 1e9, 10]), "out of range"),
    (_set("photos.0.plate_box", None), "plate_box"),
    (_set("photos.0.plate_box", [0, 0, "10", 10]), "plate_box[2]"),
    (_set("photos.0.scene_embedding", []), "scene_embedding"),
    (_set("photos.0.scene_embedding", [0.1] * 5000), "at most"),
    (_set("photos.0.scene_embedding", [0.1, "x"]), "scene_embedding[1]"),
    (_set("photos.0.extra", 1), "unknown field(s) extra"),
    (_set("photos.0.sha256", _DELETE), "missing field(s) sha256"),
    (_set("scene_score", -0.1), "scene_score"),
    (_set("scene_score", None), "scene_score must be a number"),
    (_set("models.plate_reader", None), "models.plate_reader"),
    (_set("models.tracker", "x"), "unknown field(s) tracker"),
    (_set("models.vehicle_detector", "x" * 500), "models.vehicle_detector"),
    (_set("owner", "me"), "unknown field(s) owner"),
    (_set("zone", _DELETE), "missing field(s) zone"),
    (_set("plate_confidence", 10 ** 400), "out of range"),
    (_set("photos.0.location.lat", -10 ** 400), "out of range"),
    (_set("photos.0.plate_box", [0, 0, 10 ** 400, 10]), "plate_box[2]"),
    (_set("photos.0.scene_embedding", [0.1, 10 ** 400]), "scene_embedding[1]"),
    (_set("photos.0.scene_embedding", [True]), "scene_embedding[0]"),
    (_set("photos.0.scene_embedding", "0.1,0.2"), "scene_embedding"),
    (_set("first_seen_at", "2026-11-25T23:59:60Z"), "not a real date"),
    (_set("first_seen_at", "2026-11-25T23:58:30.1234567Z"), "ISO 8601 UTC"),
    (_set("first_seen_at", "2026-11-25t23:58:30z"), "ISO 8601 UTC"),
    (_set("photos.0.key", None), "photos[0].key must be a string"),
    (_set("models", None), "models must be an object"),
    (_set("models.scene_embedder", ""), "models.scene_embedder"),
    (_set("plate", "외교 001-075"), "not normalised"),
    (_set("plate", ""), "plate must be 1-32"),
    (_set("device_id", "dev 01"), "device_id"),
    (_set("report_id", "3f2b8c1e5a4d4e8f9b7a1c2d3e4f5a6b"), "UUID"),
    (_set("report_id", "{3f2b8c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b}"), "UUID"),
]


@pytest.mark.parametrize(("mutate", "fragment"), BAD)
def test_bad_manifests_are_rejected_with_a_reason(mutate, fragment: str) -> None:
    doc = copy.deepcopy(good_manifest())
    mutate(doc)
    with pytest.raises(ManifestError) as err:
        validate_manifest(doc)
    assert fragment in err.value.reason
    assert "\n" not in err.value.reason
    # the same reason when the manifest arrives as bytes from S3
    with pytest.raises(ManifestError) as err_bytes:
        validate_manifest(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    assert err_bytes.value.reason == err.value.reason


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"gotcha.report/1"', "must be a JSON object"),
    (b'{"schema": "gotcha.report/1", "schema": "gotcha.report/1"}', "appears twice"),
    (b'{"schema": "gotcha.report/1", "scene_score": NaN}', "not strict JSON"),
    (b"[" * 100_000, "not JSON"),
    (b"\xef\xbb\xbf{}", "not JSON"),  # a byte-order mark
    (b"null", "must be a JSON object"),
    (b'{"schema": "gotcha.report/1"} trailing', "not JSON"),
    (b'{"schema": "gotcha.report/1", "plate_confidence": Infinity}', "not strict JSON"),
    (b'{"schema": "gotcha.report/1", "pad": "' + b"x" * MAX_MANIFEST_BYTES + b'"}', "limit"),
])
def test_bad_bytes(data: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        validate_manifest(data)


def test_oversized_object_and_wrong_types() -> None:
    doc = good_manifest()
    # the largest embeddings allowed still fit under the size cap
    doc["photos"][0]["scene_embedding"] = [-0.12345678901234567] * 4096
    doc["photos"][1]["scene_embedding"] = [-0.12345678901234567] * 4096
    validate_manifest(manifest_bytes(doc))
    # the size is checked before anything else
    with pytest.raises(ManifestError, match="limit"):
        validate_manifest({**doc, "pad": "x" * MAX_MANIFEST_BYTES})
    with pytest.raises(ManifestError, match="JSON bytes or an object"):
        validate_manifest(42)  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="not JSON-serialisable"):
        validate_manifest({"schema": SCHEMA, "when": datetime.now(UTC)})


@pytest.mark.parametrize("plate", ["12가3456", "123하4567", "80배1234", "외교001075",
                                   "경기71아1234", "12국3456"])
def test_every_plate_format_fits_a_manifest(plate: str) -> None:
    doc = build_manifest(**{**_build_args(), "plate": plate})
    assert validate_manifest(doc).plate == plate


def _as_schema_1(doc: dict) -> dict:
    """The same report as a device before schema 2 wrote it: one location, no rules."""
    old = {k: v for k, v in doc.items()
           if k not in ("plate_char_confidences", "distance_m", "rules")}
    old["schema"] = SCHEMA_V1
    old["location"] = old["photos"][0]["location"]
    old["photos"] = [{k: v for k, v in p.items() if k != "location"} for p in doc["photos"]]
    return old


def test_schema_1_is_still_read() -> None:
    old = _as_schema_1(good_manifest())
    manifest = validate_manifest(manifest_bytes(old))
    assert manifest.schema == SCHEMA_V1 and manifest.location.accuracy_m == 8.0
    assert manifest.distance_m is None and manifest.photo_distance_m is None
    assert manifest.rules == DEFAULT_RULES and manifest.plate_char_confidences is None
    assert manifest_bytes(manifest.to_dict()) == manifest_bytes(old)
    # the photos' times are checked in schema 1 too
    old["photos"][0]["captured_at"] = old["confirmed_at"]
    with pytest.raises(ManifestError, match="is not first_seen_at"):
        validate_manifest(old)


@pytest.mark.parametrize(("data", "fragment"), [
    (b'{"schema": "gotcha.report/2", "plate_confidence": 1' + b"1" * 5000 + b"}",
     "not JSON this code can read"),
    (b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, "nested too deeply"),
    (b'{"schema": "gotcha.report/2", "models": {"plate_reader": "\\ud800"}}', "missing"),
])
def test_hostile_json_is_a_manifest_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        validate_manifest(data)


def test_lone_surrogate_in_a_string_is_refused() -> None:
    doc = good_manifest()
    doc["models"]["plate_reader"] = "crnn\ud800"
    with pytest.raises(ManifestError, match="lone UTF-16 surrogate"):
        validate_manifest(json.dumps(doc).encode())
