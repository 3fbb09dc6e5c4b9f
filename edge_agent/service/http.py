"""The vision pipeline as a small HTTP service, for devices without the agent (`gotcha serve`).

Raw photos from phones and dash cams land in S3 under ``raw/``; the cloud sends each one here:

- ``POST /process_metadata``: body = the photo (JPEG/PNG/HEIC bytes); answers EXIF time and
  place, vehicles and plates (``PhotoResult.to_dict()``).
- ``POST /compare_background``: two photos plus optional vehicle boxes, as JSON
  (``{"image_a": base64, "image_b": base64, "box_a": [x1,y1,x2,y2], "box_b": ...}``) or as
  multipart/form-data (files ``image_a``, ``image_b``; fields ``box_a``, ``box_b`` as JSON);
  answers the scene match. Boxes are in pixels of the upright (EXIF-rotated) photo.
- ``GET /healthz``: the models loaded.

Why the standard library's ThreadingHTTPServer: a handful of requests a minute from one Lambda
does not justify a web framework on the device image. Every bad request gets a JSON error and a
4xx code, with the library's one-line message; models are loaded once, before the port opens.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edge_agent import __version__
from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError, GotchaError
from edge_agent.results import Box

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0  # a client that stops sending mid-body frees its thread after this


class HttpError(Exception):
    """A request the service refuses: status code and a one-line message for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class VisionService:
    """The models and the request logic, independent of the HTTP plumbing.

    ``pipeline`` and ``matcher`` keep small per-call state (timing clocks, OpenCV feature
    objects), so each is used by one request at a time; /healthz never waits for them.
    """

    config: GotchaConfig
    pipeline: Any  # edge_agent.vision.pipeline.VisionPipeline
    matcher: Any  # edge_agent.vision.scene.SceneMatcher
    started: float = field(default_factory=time.time)
    _pipeline_lock: threading.Lock = field(default_factory=threading.Lock)
    _matcher_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: GotchaConfig) -> VisionService:
        """Load every model now (ConfigError / ModelError), so a broken model stops the start."""
        from edge_agent.vision.pipeline import VisionPipeline
        from edge_agent.vision.scene import SceneMatcher

        return cls(config, VisionPipeline.from_config(config), SceneMatcher.from_config(config))

    @property
    def max_photo_bytes(self) -> int:
        return self.config.vision.max_file_bytes

    @property
    def max_body_bytes(self) -> dict[str, int]:
        """Per endpoint: one photo, or two photos base64-encoded plus some JSON."""
        return {"/process_metadata": self.max_photo_bytes,
                "/compare_background": self.max_photo_bytes * 3 + 65_536}

    def health(self) -> dict[str, object]:
        models = self.config.models
        return {"status": "ok", "version": __version__,
                "uptime_s": round(time.time() - self.started, 1),
                "models": {"vehicle_detector": models.vehicle_detector,
                           "plate_detector": models.plate_detector,
                           "plate_reader": models.plate_reader,
                           "scene_embedder": self.matcher.model_id}}

    def _decode(self, data: bytes, name: str) -> Any:
        from edge_agent.io.photo import decode_photo

        return decode_photo(data, self.config, name=name)

    def process_metadata(self, data: bytes, name: str) -> dict[str, object]:
        """Time, place, vehicles and plates of one photo."""
        photo = self._decode(data, name)
        with self._pipeline_lock:
            result = self.pipeline.process(photo)
        return {"name": name, "sha256": photo.sha256, **result.to_dict()}

    def compare_background(self, image_a: bytes, image_b: bytes, box_a: object,
                           box_b: object) -> dict[str, object]:
        """Scene match of two photos (vehicle boxes optional, one per photo)."""
        photo_a = self._decode(image_a, "image_a")
        photo_b = self._decode(image_b, "image_b")
        boxes = (parse_box(box_a, "box_a", photo_a.size), parse_box(box_b, "box_b", photo_b.size))
        with self._matcher_lock:
            sig_a = self.matcher.signature(photo_a.image, boxes[0])
            sig_b = self.matcher.signature(photo_b.image, boxes[1])
            match = self.matcher.compare(sig_a, sig_b)
        return {"match": match.to_dict(), "model_id": self.matcher.model_id,
                "images": [{"name": "image_a", "sha256": photo_a.sha256,
                            "size": list(photo_a.size)},
                           {"name": "image_b", "sha256": photo_b.sha256,
                            "size": list(photo_b.size)}]}


def parse_box(value: object, name: str, size: tuple[int, int]) -> Box | None:
    """``[x1, y1, x2, y2]`` in pixels of the upright photo, or None; BadInputError otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError:
            raise BadInputError(f"{name}: not JSON; send [x1, y1, x2, y2]") from None
        if value is None:
            return None
    if not (isinstance(value, list) and len(value) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value)):
        raise BadInputError(f"{name}: expected [x1, y1, x2, y2] in pixels, got {value!r}")
    x1, y1, x2, y2 = (float(v) for v in value)
    width, height = size
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise BadInputError(f"{name}: box {value} is not inside the {width}x{height} photo "
                            f"(x1<x2, y1<y2, upright pixel coordinates)")
    return Box(x1, y1, x2, y2)


def _b64(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadInputError(f"{name}: missing; send the photo base64-encoded")
    try:
        return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value,
                                validate=True)
    except (binascii.Error, ValueError):
        raise BadInputError(f"{name}: not valid base64") from None


def compare_request(content_type: str, body: bytes) -> tuple[bytes, bytes, object, object]:
    """(image_a, image_b, box_a, box_b) from a JSON or multipart/form-data body."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        parts = _multipart(content_type, body)
        images = []
        for name in ("image_a", "image_b"):
            data = parts.get(name)
            if not data:
                raise BadInputError(f"{name}: missing; send it as a file part of the form")
            images.append(data)
        boxes = [parts[n].decode("utf-8", "replace") if n in parts else None
                 for n in ("box_a", "box_b")]
        return images[0], images[1], boxes[0], boxes[1]
    if kind not in ("application/json", ""):
        raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                        f"send application/json or multipart/form-data, not {kind}")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInputError("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadInputError("body must be a JSON object with image_a and image_b")
    return (_b64(payload.get("image_a"), "image_a"), _b64(payload.get("image_b"), "image_b"),
            payload.get("box_a"), payload.get("box_b"))


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """Form parts by name (the email package parses MIME; cgi is gone from Python 3.13)."""
    if "boundary=" not in content_type:
        raise BadInputError("multipart body without a boundary in Content-Type")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadInputError("multipart body could not be parsed")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            parts[name] = part.get_payload(decode=True) or b""
    return parts


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's VisionService; every answer is JSON."""

    server: GotchaHTTPServer
    server_version = f"gotcha/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, payload: dict[str, object]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, {"error": message, "status": int(status)})

    def _body(self, limit: int) -> bytes:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required")
        if not raw.strip().isdigit():
            raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw!r}")
        length = int(raw)
        if length > limit:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"body of {length} bytes is over the limit of {limit} bytes")
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"body not received within "
                            f"{REQUEST_TIMEOUT_S:.0f} s") from None
        if len(data) != length:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body ended after {len(data)} of {length} "
                            f"bytes")
        return data

    def _dispatch(self, route: Callable[[], dict[str, object]]) -> None:
        try:
            self._send(HTTPStatus.OK, route())
        except HttpError as exc:
            self._error(exc.status, str(exc))
        except BadInputError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except GotchaError as exc:  # a model failing on this input: the service's problem
            log.error("request failed: %s", exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        except Exception:
            log.exception("unexpected error in %s", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the service log")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._dispatch(self.server.service.health)
        elif path in self.server.service.max_body_bytes:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see GET /healthz")

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        service = self.server.service
        limit = service.max_body_bytes.get(parts.path)
        if limit is None:
            self._error(HTTPStatus.NOT_FOUND, f"no endpoint {parts.path}")
            return

        def route() -> dict[str, object]:
            body = self._body(limit)
            if parts.path == "/process_metadata":
                name = parse_qs(parts.query).get("name", ["photo"])[0][:200]
                return service.process_metadata(body, name)
            content_type = self.headers.get("Content-Type", "")
            return service.compare_background(*compare_request(content_type, body))

        self._dispatch(route)


class GotchaHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the VisionService its handlers use."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: VisionService) -> None:
        self.service = service
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def create_server(config: GotchaConfig, host: str = "127.0.0.1", port: int = 8080,
                  service: VisionService | None = None) -> GotchaHTTPServer:
    """Load the models (unless ``service`` is given) and bind; port 0 picks a free port."""
    service = service or VisionService.from_config(config)
    try:
        return GotchaHTTPServer((host, port), service)
    except OSError as exc:
        raise GotchaError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose "
                          f"another --port or stop what uses it") from None
