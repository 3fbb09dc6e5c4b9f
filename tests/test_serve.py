"""`gotcha serve`: a real server on a free loopback port, real models, real Korean photos."""

from __future__ import annotations

import base64
import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from conftest import shared_path
from typer.testing import CliRunner

from edge_agent.cli import serve as serve_cmd
from edge_agent.config import GotchaConfig
from edge_agent.io.exif import write_exif
from edge_agent.io.photo import decode_photo
from edge_agent.results import GeoPoint
from edge_agent.service.http import GotchaHTTPServer, create_server

REPO = Path(__file__).resolve().parent.parent
PHOTO = "000424-20190130010598-2.jpg"  # 700x525 street photo; small, so the test stays quick
OTHER_SCENE = "scenes/misc/street_kivenyangming.jpg"


def _config(models_dir: Path) -> GotchaConfig:
    # the PP-OCRv4 recogniser ships with a dev dependency; the Korean one is not needed here
    return GotchaConfig.model_validate({"models": {
        "dir": models_dir, "plate_reader": "ppocrv4-rec", "providers": ["cpu"]}})


@pytest.fixture(scope="module")
def server(models_dir: Path) -> Iterator[GotchaHTTPServer]:
    srv = create_server(_config(models_dir), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, name="gotcha-serve-test", daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    return (shared_path("data/scenes/korea-a") / PHOTO).read_bytes()


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_names_the_models(server: GotchaHTTPServer) -> None:
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
        body = json.loads(response.read())
    assert response.status == 200 and body["status"] == "ok"
    assert body["models"]["vehicle_detector"] == "yolov8n-coco"
    assert body["models"]["scene_embedder"] == "mobilenetv2-imagenet"


def test_process_metadata_gives_exif_time_place_and_the_pipeline_result(
        server: GotchaHTTPServer, photo_bytes: bytes) -> None:
    taken = datetime(2025, 3, 14, 1, 2, 3, tzinfo=UTC)
    place = GeoPoint(37.5665, 126.9780, altitude_m=38.0)
    data = write_exif(photo_bytes, taken, place, tz="Asia/Seoul")
    status, body = _post(server.url + "/process_metadata?name=raw-1.jpg", data, "image/jpeg")
    assert status == 200, body
    meta = body["meta"]
    assert datetime.fromisoformat(meta["captured_at"]) == taken
    assert meta["time_source"] == "exif" and meta["location_source"] == "exif"
    assert meta["location"]["lat"] == pytest.approx(place.lat, abs=1e-5)
    assert meta["location"]["lon"] == pytest.approx(place.lon, abs=1e-5)
    assert meta["source_id"] == "raw-1.jpg"
    assert body["image_size"] == [700, 525]

    labels = {row["file"]: row for row in csv.DictReader(
        (REPO / "tests" / "data" / "korea_a_labels.csv").open(encoding="utf-8"))}
    if labels[PHOTO]["shows_vehicle"] == "1":
        assert body["vehicles"], "a photo labelled as showing a vehicle came back empty"
    # the service is the pipeline: the same photo through the library gives the same answer
    direct = server.service.pipeline.process(decode_photo(data, server.service.config)).to_dict()
    assert body["vehicles"] == direct["vehicles"]
    assert [p["box"] for p in body["plates"]] == [p["box"] for p in direct["plates"]]


@pytest.mark.parametrize(("body", "needle"), [
    (b"", "empty file"),
    (b"hello, this is not a photo at all " * 10, "photo"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 400, "photo"),
])
def test_bad_photos_get_400_with_the_reason(server: GotchaHTTPServer, body: bytes,
                                            needle: str) -> None:
    status, answer = _post(server.url + "/process_metadata", body, "image/jpeg")
    assert status == 400
    assert needle in answer["error"] and "\n" not in answer["error"]


def test_truncated_photo_is_400(server: GotchaHTTPServer, photo_bytes: bytes) -> None:
    status, answer = _post(server.url + "/process_metadata", photo_bytes[: len(photo_bytes) // 2],
                           "image/jpeg")
    assert status == 400 and answer["error"]


def test_too_large_is_refused_before_reading(server: GotchaHTTPServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/process_metadata")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(server.service.max_photo_bytes + 1))
    conn.endheaders()  # no body sent: the server must answer from the header alone
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "over the limit" in body["error"]


def test_body_shorter_than_its_length_is_400(server: GotchaHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(b"POST /process_metadata HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                     b"Content-Type: image/jpeg\r\n\r\n" + b"\xff\xd8" * 5)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert "body ended after 10 of 1000 bytes" in json.loads(body)["error"]


def test_unknown_path_and_wrong_method(server: GotchaHTTPServer) -> None:
    status, body = _post(server.url + "/nope", b"x", "image/jpeg")
    assert status == 404 and "no endpoint" in body["error"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "/process_metadata", timeout=10)
    assert info.value.code == 405


def _json_pair(a: bytes, b: bytes, **extra: object) -> bytes:
    return json.dumps({"image_a": base64.b64encode(a).decode(),
                       "image_b": base64.b64encode(b).decode(), **extra}).encode()


def test_compare_background_same_photo_and_another_scene(server: GotchaHTTPServer,
                                                         photo_bytes: bytes) -> None:
    width, height = 700, 525
    box = [width * 0.3, height * 0.4, width * 0.7, height * 0.9]
    status, body = _post(server.url + "/compare_background",
                         _json_pair(photo_bytes, photo_bytes, box_a=box, box_b=box),
                         "application/json")
    assert status == 200, body
    assert body["match"]["same_scene"] is True and body["match"]["vehicle_moved"] is False
    assert body["model_id"] == "mobilenetv2-imagenet"

    other = shared_path("data/" + OTHER_SCENE).read_bytes()
    status, body = _post(server.url + "/compare_background", _json_pair(photo_bytes, other),
                         "application/json")
    assert status == 200, body
    assert body["match"]["same_scene"] is False and body["match"]["vehicle_moved"] is None


def test_compare_background_multipart(server: GotchaHTTPServer, photo_bytes: bytes) -> None:
    boundary = uuid.uuid4().hex
    parts = []
    for name, payload, ctype in (("image_a", photo_bytes, "image/jpeg"),
                                 ("image_b", photo_bytes, "image/jpeg")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{name}.jpg"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
                     + payload + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="box_a"\r\n\r\n'
                 f'[10, 20, 300, 400]\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, answer = _post(server.url + "/compare_background", body,
                           f"multipart/form-data; boundary={boundary}")
    assert status == 200, answer
    assert answer["match"]["same_scene"] is True
    assert [image["sha256"] for image in answer["images"]] == [answer["images"][0]["sha256"]] * 2


@pytest.mark.parametrize(("payload", "ctype", "status", "needle"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "JSON object"),
    (json.dumps({"image_a": "aGVsbG8="}).encode(), "application/json", 400, "image_b: missing"),
    (json.dumps({"image_a": "%%%", "image_b": "aGVsbG8="}).encode(), "application/json", 400,
     "image_a: not valid base64"),
    (b"abc", "text/plain", 415, "multipart/form-data"),
    (b"--x--", "multipart/form-data", 400, "boundary"),
])
def test_compare_background_bad_requests(server: GotchaHTTPServer, payload: bytes, ctype: str,
                                         status: int, needle: str) -> None:
    got, body = _post(server.url + "/compare_background", payload, ctype)
    assert got == status and needle in body["error"], body


@pytest.mark.parametrize(("box", "needle"), [
    ([10, 10, 5, 5], "not inside"),
    ([0, 0, 9999, 10], "not inside"),
    ("a box", "not JSON"),
    ([1, 2, 3], "expected [x1, y1, x2, y2]"),
])
def test_compare_background_bad_boxes(server: GotchaHTTPServer, photo_bytes: bytes,
                                      box: object, needle: str) -> None:
    status, body = _post(server.url + "/compare_background",
                         _json_pair(photo_bytes, photo_bytes, box_a=box), "application/json")
    assert status == 400 and needle in body["error"] and body["error"].startswith("box_a")


def test_serve_with_a_missing_model_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(f'[models]\ndir = "{tmp_path}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOTCHA_")}
    app = typer.Typer()
    serve_cmd.register(app)
    app.command("noop", help="Placeholder so `serve` stays a subcommand.")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "0"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: model ") and result.stderr.count("\n") == 1


def test_gotcha_serve_command_serves_and_stops(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(f'[models]\ndir = "{models_dir}"\nplate_reader = "ppocrv4-rec"\n',
                      encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOTCHA_")}
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "serve", "--config",
                             str(config), "--port", "0"], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        seen = []
        for _ in range(50):  # log warnings from model loading may come first
            line = proc.stderr.readline() if proc.stderr else ""
            seen.append(line)
            if not line or "listening on" in line:
                break
        assert "listening on http://127.0.0.1:" in line, "".join(seen)
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
