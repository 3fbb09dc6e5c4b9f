"""`gotcha serve`: a real uvicorn server on a free loopback port, real models, real photos.

Every bad case answers JSON with a 4xx or a 503: wrong keys, bodies too large or too slow,
malformed JSON, hostile numbers, other methods, decompression bombs, an overload.
"""

from __future__ import annotations

import base64
import csv
import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import shared_path
from serve_helpers import KEY, OTHER_KEY, call, call_json, png_bomb, service_config

from edge_agent.io.exif import write_exif
from edge_agent.io.photo import decode_photo
from edge_agent.results import GeoPoint
from edge_agent.service.server import ServiceServer, create_server

REPO = Path(__file__).resolve().parent.parent
PHOTO = "000424-20190130010598-2.jpg"  # 700x525 street photo; small, so the test stays quick
PLATE_PHOTO = "scenes/e2e-dev/부산31바6697.jpg"  # a plate the Korean reader reads surely
OTHER_SCENE = "scenes/misc/street_kivenyangming.jpg"
MAX_PHOTO = 3_000_000


@pytest.fixture(scope="module")
def server(models_dir: Path) -> Iterator[ServiceServer]:
    config = service_config(models_dir, max_photo_bytes=MAX_PHOTO, workers=1, queue=2,
                            body_timeout_s=2.0, header_timeout_s=2.0)
    srv = create_server(config, "127.0.0.1", 0).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    return (shared_path("data/scenes/korea-a") / PHOTO).read_bytes()


def _service(server: ServiceServer):
    return server.server.config.app.app.state.service


def test_healthz_and_readyz_need_no_key(server: ServiceServer) -> None:
    status, body = call_json(server.url + "/healthz", key=None)
    assert status == 200 and body["status"] == "ok"
    assert body["models"]["vehicle_detector"] == "yolox-nano-coco"  # the default's twin
    assert body["models"]["scene_embedder"] == "mobilenetv2-imagenet"
    assert call_json(server.url + "/readyz", key=None) == (200, {"ready": True, "reason": None})


@pytest.mark.parametrize("key", [None, "", "wrong", KEY[:-1], KEY + "x"])
def test_missing_or_wrong_key_is_401(server: ServiceServer, photo_bytes: bytes,
                                     key: str | None) -> None:
    for path, data in (("/process_metadata", photo_bytes), ("/compare_background", b"{}"),
                       ("/metrics", None)):
        status, body = call_json(server.url + path, data, key=key)
        assert status == 401 and "X-API-Key" in body["error"], (path, body)


def test_process_metadata_gives_time_place_pipeline_result_and_sightings(
        server: ServiceServer, photo_bytes: bytes) -> None:
    taken = datetime(2025, 3, 14, 1, 2, 3, tzinfo=UTC)
    place = GeoPoint(37.5665, 126.9780, altitude_m=38.0)
    data = write_exif(photo_bytes, taken, place, tz="Asia/Seoul")
    status, body = call_json(server.url + "/process_metadata?name=raw-1.jpg", data,
                             key=OTHER_KEY)
    assert status == 200, body
    meta = body["meta"]
    assert datetime.fromisoformat(meta["captured_at"]) == taken
    assert meta["time_source"] == "exif" and meta["location_source"] == "exif"
    assert meta["location"]["lat"] == pytest.approx(place.lat, abs=1e-5)
    assert meta["source_id"] == "raw-1.jpg" and body["image_size"] == [700, 525]
    labels = {row["file"]: row for row in csv.DictReader(
        (REPO / "tests" / "data" / "korea_a_labels.csv").open(encoding="utf-8"))}
    if labels[PHOTO]["shows_vehicle"] == "1":
        assert body["vehicles"], "a photo labelled as showing a vehicle came back empty"
    service = _service(server)
    direct = service.pipeline.process(decode_photo(data, service.config)).to_dict()
    assert body["vehicles"] == direct["vehicles"]
    assert [p["box"] for p in body["plates"]] == [p["box"] for p in direct["plates"]]


def test_sightings_carry_plate_confidences_and_embeddings(server: ServiceServer) -> None:
    data = shared_path("data/" + PLATE_PHOTO).read_bytes()
    status, body = call_json(server.url + "/process_metadata?device_id=cam-7&lat=37.5&lon=127.1"
                             "&captured_at=2026-11-25T09:01:00%2B09:00", data)
    assert status == 200, body
    [sighting] = body["sightings"]
    assert sighting["plate"] == "부산31바6697" and sighting["confidence"] >= 0.6
    assert len(sighting["char_confidences"]) == len(sighting["plate"])
    assert len(sighting["scene_embedding"]) == len(sighting["vehicle_embedding"]) > 100
    assert sighting["scene_model_id"] == "mobilenetv2-imagenet"
    assert body["device_id"] == "cam-7" and body["meta"]["time_source"] == "request"
    assert body["meta"]["captured_at"] == "2026-11-25T09:01:00+09:00"
    assert body["meta"]["location"]["lat"] == 37.5


@pytest.mark.parametrize(("query", "needle"), [
    ("lat=37.5", "lat and lon"), ("lat=91&lon=1", "lat"), ("captured_at=yesterday", "captured_at"),
    ("captured_at=2026-11-25T09:01:00", "captured_at"), ("device_id=a%20b", "device_id"),
    ("lat=nan&lon=1", "lat"), ("accuracy_m=inf", "accuracy_m")])
def test_bad_parameters_are_422(server: ServiceServer, photo_bytes: bytes, query: str,
                                needle: str) -> None:
    status, body = call_json(server.url + "/process_metadata?" + query, photo_bytes)
    assert status == 422 and needle in body["error"], body


@pytest.mark.parametrize(("body", "needle"), [
    (b"", "empty file"), (b"hello, this is not a photo at all " * 10, "photo"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 400, "photo")])
def test_bad_photos_get_400_with_the_reason(server: ServiceServer, body: bytes,
                                            needle: str) -> None:
    status, answer = call_json(server.url + "/process_metadata", body)
    assert status == 400 and needle in answer["error"] and "\n" not in answer["error"]


def test_truncated_photo_is_400(server: ServiceServer, photo_bytes: bytes) -> None:
    status, answer = call_json(server.url + "/process_metadata",
                               photo_bytes[: len(photo_bytes) // 2])
    assert status == 400 and "truncated" in answer["error"]


def test_other_content_type_is_415(server: ServiceServer, photo_bytes: bytes) -> None:
    status, answer = call_json(server.url + "/process_metadata", photo_bytes, "text/plain")
    assert status == 415 and "image/jpeg" in answer["error"]


def test_too_large_is_refused_from_the_header_alone(server: ServiceServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=10)
    conn.putrequest("POST", "/process_metadata")
    conn.putheader("X-API-Key", KEY)
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(MAX_PHOTO * 10))
    conn.endheaders()  # no body sent: the server must answer from the header alone
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "over the limit" in body["error"]


def test_chunked_body_over_the_limit_is_413(server: ServiceServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\xff" * 100_000

    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("POST", "/process_metadata", body=chunks(), encode_chunked=True,
                     headers={"X-API-Key": KEY, "Content-Type": "image/jpeg"})
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["status"] == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close while the client still sends; checked below either way
    finally:
        conn.close()
    assert call_json(server.url + "/healthz", key=None)[0] == 200  # refused, not crashed
    metrics = call(server.url + "/metrics")[2].decode()
    assert 'route="/process_metadata",method="POST",status="413"' in metrics


def test_decompression_bomb_png_is_refused_before_decoding(server: ServiceServer) -> None:
    """Two concurrent 9000x9000 RGBA PNGs once took the process to 8.1 GB."""
    bomb = png_bomb(9000, 9000)
    assert len(bomb) < MAX_PHOTO
    answers: list[tuple[int, dict]] = []
    threads = [threading.Thread(target=lambda: answers.append(call_json(
        server.url + "/process_metadata", bomb, "image/png"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a[0] for a in answers] == [413, 413], answers
    assert "max_decoded_bytes" in answers[0][1]["error"]


@pytest.mark.parametrize(("payload", "needle"), [
    (b"[" * 100_000, "not valid JSON"), (b"{" * 100_000, "not valid JSON"),
    (b"{not json", "not valid JSON"), (b'{"s3": {"bucket": "b"', "not valid JSON"),
    (b"[1, 2]", "body"), (b'{"s3": {"bucket": "gotcha", "key": "k"}, "x": 1}', "x")])
def test_malformed_json_bodies_are_4xx(server: ServiceServer, payload: bytes,
                                       needle: str) -> None:
    for path in ("/process_metadata", "/compare_background"):
        status, body = call_json(server.url + path, payload, "application/json")
        assert status in (400, 422) and body["status"] == status, (path, body)
        assert path == "/compare_background" or needle in body["error"], body


@pytest.mark.parametrize("box", [
    "[" + "9" * 5000 + ", 0, 1, 1]", "[1e999, 0, 1, 1]", "[-1, 0, 1, 1]",
    "[" + "9" * 4000 + ", 0, 1, 1]", "[1, 2, 3]", '"a box"', "[[[[1]]]], 0, 1, 1]"])
def test_hostile_boxes_are_4xx(server: ServiceServer, box: str) -> None:
    body = ('{"image_a": "aGVsbG8=", "image_b": "aGVsbG8=", "box_a": ' + box + "}").encode()
    status, answer = call_json(server.url + "/compare_background", body, "application/json")
    assert status in (400, 422) and answer["error"], answer


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_json_405(server: ServiceServer, method: str) -> None:
    for path in ("/process_metadata", "/healthz"):
        status, body = call_json(server.url + path, b"", method=method)
        assert status == 405 and method in body["error"]
    status, headers, body = call(server.url + "/process_metadata", method="HEAD")
    assert status == 405 and headers["content-type"].startswith("application/json")


def test_unknown_path_is_json_404(server: ServiceServer) -> None:
    status, body = call_json(server.url + "/nope", b"x")
    assert status == 404 and "no endpoint" in body["error"]


def test_fifty_parallel_uploads_get_200_or_503_never_a_reset(server: ServiceServer,
                                                             photo_bytes: bytes) -> None:
    answers: list[tuple[int, dict[str, str], bytes]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def upload() -> None:
        try:
            barrier.wait()
            answers.append(call(server.url + "/process_metadata", photo_bytes))
        except BaseException as exc:  # a reset or refused connection lands here
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors[:3]
    statuses = sorted(a[0] for a in answers)
    assert len(statuses) == 50 and set(statuses) <= {200, 503}, statuses
    assert 1 <= statuses.count(200) <= 10  # one worker + two waiting; the rest are shed
    busy = [a for a in answers if a[0] == 503]
    assert busy and all(a[1]["retry-after"] == "2" and json.loads(a[2])["status"] == 503
                        for a in busy)


def _port(server: ServiceServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_a_dripping_body_gets_408_and_blocks_no_one(server: ServiceServer) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=20) as sock:
        sock.sendall(f"POST /process_metadata HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
                     "Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n".encode())
        started = time.monotonic()
        assert call_json(server.url + "/healthz")[0] == 200  # the drip holds nothing
        answer = b""
        try:
            for _ in range(10):
                sock.sendall(b"\xff")
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"status": 408' in answer and time.monotonic() - started < 8


def test_dripping_headers_are_cut_off(server: ServiceServer) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=20) as sock:
        started = time.monotonic()
        closed = False
        try:
            for byte in b"POST /process_metadata HTTP/1.1\r\nHost: x\r\n":
                sock.sendall(bytes([byte]))
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            closed = sock.recv(1024) == b""
    assert closed and time.monotonic() - started < 12


def test_a_client_that_goes_away_leaves_no_traceback(server: ServiceServer, photo_bytes: bytes,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for cut in (10, len(photo_bytes) // 2):
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
            sock.sendall(f"POST /process_metadata HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
                         f"Content-Type: image/jpeg\r\nContent-Length: {len(photo_bytes)}\r\n\r\n"
                         .encode() + photo_bytes[:cut])
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
        sock.sendall(f"POST /process_metadata HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
                     f"Content-Type: image/jpeg\r\nContent-Length: {len(photo_bytes)}\r\n\r\n"
                     .encode() + photo_bytes)  # whole body, then gone before the answer
    time.sleep(3)
    assert call_json(server.url + "/healthz")[0] == 200
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text
    assert "went away" in caplog.text


def _json_pair(a: bytes, b: bytes, **extra: object) -> bytes:
    return json.dumps({"image_a": base64.b64encode(a).decode(),
                       "image_b": base64.b64encode(b).decode(), **extra}).encode()


def test_compare_background_same_photo_and_another_scene(server: ServiceServer,
                                                         photo_bytes: bytes) -> None:
    box = [700 * 0.3, 525 * 0.4, 700 * 0.7, 525 * 0.9]
    status, body = call_json(server.url + "/compare_background",
                             _json_pair(photo_bytes, photo_bytes, box_a=box, box_b=box),
                             "application/json")
    assert status == 200, body
    assert body["match"]["same_scene"] is True and body["match"]["vehicle_moved"] is False
    other = shared_path("data/" + OTHER_SCENE).read_bytes()
    status, body = call_json(server.url + "/compare_background", _json_pair(photo_bytes, other),
                             "application/json")
    assert status == 200 and body["match"]["same_scene"] is False


def test_compare_background_multipart(server: ServiceServer, photo_bytes: bytes) -> None:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename='
             f'"{name}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode() + photo_bytes + b"\r\n"
             for name in ("image_a", "image_b")]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="box_a"\r\n\r\n'
                 f'[10, 20, 300, 400]\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, answer = call_json(server.url + "/compare_background", body,
                               f"multipart/form-data; boundary={boundary}")
    assert status == 200, answer
    assert answer["match"]["same_scene"] is True


@pytest.mark.parametrize(("payload", "ctype", "status", "needle"), [
    (json.dumps({"image_a": "aGVsbG8="}).encode(), "application/json", 422, "image_b"),
    (json.dumps({"image_a": "%%%", "image_b": "aGVsbG8="}).encode(), "application/json", 400,
     "image_a: not valid base64"),
    (b"abc", "text/plain", 415, "multipart/form-data"),
    (b"--x--", "multipart/form-data", 400, "multipart"),
    (_json_pair(b"x", b"y", box_a=[10, 10, 5, 5]), "application/json", 400, "photo"),
])
def test_compare_background_bad_requests(server: ServiceServer, payload: bytes, ctype: str,
                                         status: int, needle: str) -> None:
    got, body = call_json(server.url + "/compare_background", payload, ctype)
    assert got == status and needle in body["error"], body


def test_box_outside_the_photo_is_400(server: ServiceServer, photo_bytes: bytes) -> None:
    status, body = call_json(server.url + "/compare_background",
                             _json_pair(photo_bytes, photo_bytes, box_a=[0, 0, 9999, 10]),
                             "application/json")
    assert status == 400 and body["error"].startswith("box_a") and "not inside" in body["error"]


def test_metrics_count_routes_statuses_stages(server: ServiceServer, photo_bytes: bytes) -> None:
    call(server.url + "/process_metadata", photo_bytes)
    call(server.url + "/nope/" + uuid.uuid4().hex)
    status, headers, body = call(server.url + "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'gotcha_http_requests_total{route="/process_metadata",method="POST",status="200"}' \
        in text
    assert 'route="other",method="GET",status="404"' in text and "/nope" not in text
    assert 'gotcha_stage_seconds_bucket{stage="vehicle",le="+Inf"}' in text
    assert 'gotcha_http_request_seconds_count{route="/process_metadata"}' in text
    assert "gotcha_http_in_flight 1" in text  # this very request


def test_stopping_ends_the_worker_threads(models_dir: Path) -> None:
    before = set(threading.enumerate())
    server = create_server(service_config(models_dir), "127.0.0.1", 0).start()
    photo = (shared_path("data/scenes/korea-a") / PHOTO).read_bytes()
    assert call(server.url + "/process_metadata", photo)[0] == 200
    server.stop()
    assert not [t for t in set(threading.enumerate()) - before
                if t.name.startswith("gotcha-")], "threads outlived the server"


def test_openapi_document_is_served_and_checked_in(server: ServiceServer) -> None:
    from edge_agent.service import openapi

    status, served = call_json(server.url + "/openapi.json", key=None)
    assert status == 200
    assert set(served["paths"]) == {"/process_metadata", "/compare_background", "/healthz",
                                    "/readyz", "/metrics"}
    assert served["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    checked_in = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == openapi.render(served), (
        "docs/openapi.json is stale: run gotcha serve --write-openapi docs/openapi.json")
