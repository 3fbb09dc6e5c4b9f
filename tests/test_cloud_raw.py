"""The raw-photo path's lean parts: EXIF in the cloud, plate identity, the embedding scene
score, and the service client's retries, against a stub HTTP server on a free loopback port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from cloud_helpers import photo_bytes

from cloud_sync.errors import CloudConfigError, PhotoRefusedError, ServiceUnavailableError
from cloud_sync.exif import read_raw_exif
from cloud_sync.pairing import judge_identity, scene_score
from cloud_sync.service_client import ServiceClient, ServiceSettings, service_settings_from_env
from edge_agent.io.exif import write_exif
from edge_agent.results import GeoPoint


def test_exif_time_with_its_offset_and_gps_with_its_refs() -> None:
    taken = datetime(2026, 11, 25, 0, 1, 2, tzinfo=UTC)
    south_west = GeoPoint(-33.8688, -151.2093, accuracy_m=7.0)
    exif = read_raw_exif(write_exif(photo_bytes("x"), taken, south_west, tz="Asia/Seoul"))
    assert exif.captured_at == taken
    assert exif.lat == pytest.approx(-33.8688, abs=1e-5)
    assert exif.lon == pytest.approx(-151.2093, abs=1e-5)
    new_york = write_exif(photo_bytes("y"), taken.astimezone(timezone(timedelta(hours=-5))),
                          GeoPoint(40.7, -74.0))
    assert read_raw_exif(new_york).captured_at == taken


@pytest.mark.parametrize("data", [photo_bytes("plain"), b"\x89PNG\r\n\x1a\n", b"", b"junk"])
def test_no_exif_is_a_warning_not_an_error(data: bytes) -> None:
    exif = read_raw_exif(data)
    assert exif.captured_at is None and exif.lat is None and exif.warnings


def test_an_implausible_exif_time_is_dropped() -> None:
    old = write_exif(photo_bytes("z"), datetime(1999, 1, 1, tzinfo=UTC), None)
    exif = read_raw_exif(old)
    assert exif.captured_at is None and any("implausible" in w for w in exif.warnings)


def test_plate_identity_is_the_devices() -> None:
    sure, unsure = [0.95] * 8, [0.95] * 7 + [0.3]
    same = judge_identity
    assert same("12가3456", sure[:7], "12가3456", sure[:7]) == ("12가3456", "12가3456")
    assert same("123가4567", sure, "123가4568", unsure) == ("123가4567", "123가4568")
    assert same("123가4568", unsure, "123가4567", sure) == ("123가4567", "123가4568")
    assert same("123가4567", sure, "123가4568", sure) is None  # two sure reads differ
    assert same("123가4567", sure, "123나4568", unsure) is None  # two positions
    assert same("12가3456", sure[:7], "123가4567", sure) is None
    # confidences that do not line up count as unsure everywhere, as on the device
    assert same("123가4567", sure, "123가4568", [0.3]) == ("123가4567", "123가4568")
    assert same("123가4567", [0.3], "123가4568", [0.3]) is None


def test_scene_score_from_embeddings() -> None:
    a = [1.0, 0.0, 0.0]
    assert scene_score(a, [0.99, 0.1, 0.0]) > 0.9
    assert scene_score(a, [0.7, 0.7, 0.1]) < 0.1
    assert scene_score(a, None) is None and scene_score(a, [1.0, 0.0]) is None
    assert scene_score([0.0] * 3, a) is None


class _Stub(BaseHTTPRequestHandler):
    script: ClassVar[list[tuple[int, dict[str, str], dict]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        status, headers, body = type(self).script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Stub", (_Stub,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _client(url: str, sleeps: list[float], attempts: int = 4) -> ServiceClient:
    return ServiceClient(ServiceSettings(url=url, api_key="k", attempts=attempts, timeout_s=5),
                         sleep=sleeps.append)


def test_client_retries_a_busy_service_honouring_retry_after(stub) -> None:
    url, handler = stub
    handler.script = [(503, {"Retry-After": "3"}, {"error": "busy", "status": 503}),
                      (500, {}, {"error": "boom", "status": 500}),
                      (200, {}, {"sightings": []})]
    sleeps: list[float] = []
    answer = _client(url, sleeps).process_photo(b"\xff\xd8x", {"name": "raw/a/b.jpg", "lat": None})
    assert answer == {"sightings": []} and len(sleeps) == 2 and sleeps[0] >= 3
    path, headers = handler.seen[0]
    assert path == "/process_metadata?name=raw%2Fa%2Fb.jpg" and headers["x-api-key"] == "k"
    assert headers["content-type"] == "image/jpeg"


def test_client_gives_up_after_its_attempts_with_the_last_reason(stub) -> None:
    url, handler = stub
    handler.script = [(503, {}, {"error": "busy"})] * 3
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailableError, match=r"3 attempt.*HTTP 503: busy"):
        _client(url, sleeps, attempts=3).process_photo(b"x", {})
    assert len(sleeps) == 2 and sleeps[1] >= sleeps[0] * 0.9  # backs off


def test_client_does_not_retry_a_refused_photo(stub) -> None:
    url, handler = stub
    handler.script = [(400, {}, {"error": "photo: not an image", "status": 400})]
    with pytest.raises(PhotoRefusedError, match="not an image") as info:
        _client(url, []).process_photo(b"x", {})
    assert info.value.status == 400 and handler.script == []


def test_client_on_a_closed_port_fails_after_retries() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailableError, match=r"refused|URLError"):
        _client(f"http://127.0.0.1:{port}", sleeps, attempts=3).process_photo(b"x", {})
    assert len(sleeps) == 2


def test_service_settings_from_env() -> None:
    with pytest.raises(CloudConfigError, match="GOTCHA_SERVICE_URL"):
        service_settings_from_env({})
    settings = service_settings_from_env({"GOTCHA_SERVICE_URL": "http://10.0.0.5:8080/",
                                          "GOTCHA_SERVICE_API_KEY": "secret",
                                          "GOTCHA_SERVICE_ATTEMPTS": "6"})
    assert (settings.url, settings.attempts) == ("http://10.0.0.5:8080", 6)
    assert "secret" not in repr(settings)
    with pytest.raises(CloudConfigError, match="ATTEMPTS"):
        service_settings_from_env({"GOTCHA_SERVICE_URL": "http://x", "GOTCHA_SERVICE_ATTEMPTS":
                                   "zero"})


def test_a_bad_record_beside_a_raw_photo_is_recorded_and_the_photo_still_processed(
        s3, conn, monkeypatch) -> None:
    """An event mixing a record that is not S3's with a real raw photo: the bad one lands in
    rejected_events with its reason, the photo is still recorded (nothing is dropped)."""
    from cloud_helpers import BUCKET, photo_bytes, query

    from cloud_sync import raw
    from cloud_sync.events import s3_event_record

    s3.put_object(Bucket=BUCKET, Key="raw/cam-9/a.jpg", Body=photo_bytes("r"))
    good = s3_event_record(BUCKET, "raw/cam-9/a.jpg", size=10, etag="e")
    event = {"Records": [{"eventSource": "not-s3", "junk": 1}, good]}

    class NoService:
        def process_photo(self, data, params):
            raise raw.ServiceUnavailableError("the vision service is down")

    summary = raw.handle_event(event, conn, s3, NoService(), raise_on_failure=False)
    assert summary["rejected"] == 1 and summary["failed"] == 1
    assert query(conn, "SELECT COUNT(*) AS n FROM rejected_events")[0]["n"] == 1
