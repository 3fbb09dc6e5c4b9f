"""The HTTP face of the vision service (FastAPI): routes, errors as JSON, the worker pool.

Raw photos from phones and plain cameras land in S3 under ``raw/``; the cloud's raw handler
sends each one here (docs/integrator.md):

- ``POST /process_metadata``: the photo as the body (or, as JSON, an S3 reference), with the
  caller's device, time and place as parameters; answers time, place, vehicles, plates and
  the evidence sightings with their scene embeddings;
- ``POST /compare_background``: two photos, JSON (base64) or multipart; the scene match;
- ``GET /healthz`` (alive), ``GET /readyz`` (models loaded), ``GET /metrics`` (Prometheus).

Photo work runs in a bounded thread pool (``service.workers``) behind the admission of
:mod:`edge_agent.service.guard`; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from pydantic import AwareDatetime, ValidationError
from starlette.exceptions import HTTPException

from edge_agent import __version__
from edge_agent.errors import BadInputError, GotchaError
from edge_agent.service import openapi
from edge_agent.service.budget import DecodeBudgetError
from edge_agent.service.core import Hints, VisionService
from edge_agent.service.guard import GuardSettings, RequestGuard, key_matches
from edge_agent.service.metrics import Metrics
from edge_agent.service.models import (
    CompareAnswer,
    CompareJson,
    DeviceId,
    ErrorAnswer,
    HealthAnswer,
    Latitude,
    Longitude,
    ProcessAnswer,
    ProcessReference,
    ReadyAnswer,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
ROUTES = ("/process_metadata", "/compare_background", "/healthz", "/readyz", "/metrics",
          "/openapi.json", "/docs")
PHOTO_TYPES = ("image/jpeg", "image/png", "image/heic", "image/heif", "application/octet-stream")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text} for code, text in (
        (400, "bad photo or body"), (401, "missing or wrong X-API-Key"),
        (408, "body too slow"), (413, "body or decoded photo too large"),
        (415, "unsupported Content-Type"), (422, "invalid fields"),
        (503, "busy: retry after Retry-After seconds"))}

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="One of service.api_keys.")


def create_app(service: VisionService) -> FastAPI:
    """The app; serve ``app.state.guard`` (the app behind its guard). ``service`` holds the
    loaded models and the configuration (models are not needed to write the document)."""
    settings = service.config.service
    app = FastAPI(title="Gotcha vision service", version=__version__,
                  description="Vehicle and Korean plate reading for raw photos, and the scene "
                  "check of two photos. See docs/integrator.md.",
                  docs_url="/docs", redoc_url=None)
    metrics = Metrics(ROUTES)
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="gotcha-work")
    keys = tuple(k.get_secret_value().encode("utf-8") for k in settings.api_keys)
    app.state.service, app.state.metrics, app.state.pool = service, metrics, pool

    async def require_key(key: Annotated[str | None, Depends(api_key_header)] = None) -> None:
        if keys and not key_matches((key or "").encode("utf-8"), keys):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    async def in_pool(work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, work)

    _error_handlers(app)
    secured = [Depends(require_key)]

    @app.get("/healthz", response_model=HealthAnswer, tags=["health"])
    async def healthz() -> dict[str, object]:
        """Liveness: the process answers."""
        return service.health()

    @app.get("/readyz", response_model=ReadyAnswer, tags=["health"],
             responses={503: {"model": ReadyAnswer}})
    async def readyz() -> JSONResponse:
        """Readiness: the models are loaded."""
        if service.pipeline is None or service.matcher is None:
            return JSONResponse({"ready": False, "reason": "models not loaded"},
                                status_code=503)
        return JSONResponse({"ready": True, "reason": None})

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=secured,
             tags=["health"], responses={401: {
                 "description": ERRORS[401]["description"], "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}}})
    async def get_metrics() -> PlainTextResponse:
        """Prometheus text: requests by route and status, latencies, stages, in flight."""
        return PlainTextResponse(metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/process_metadata", response_model=ProcessAnswer, dependencies=secured,
              responses=ERRORS, tags=["photos"],
              openapi_extra=openapi.process_body())
    async def process_metadata(
        request: Request,
        name: Annotated[str, Query(max_length=200, description="Label of the photo "
                                   "(its S3 key, say); becomes the source id.")] = "photo",
        device_id: Annotated[DeviceId | None, Query(description="The camera or phone.")]
        = None,
        captured_at: Annotated[AwareDatetime | None, Query(description="Capture time with "
                                                           "its offset; replaces EXIF.")]
        = None,
        lat: Annotated[Latitude | None, Query(description="Latitude; replaces EXIF GPS.")]
        = None,
        lon: Annotated[Longitude | None, Query(description="Longitude; with lat.")] = None,
        accuracy_m: Annotated[float | None, Query(gt=0, le=100_000, allow_inf_nan=False)]
        = None,
    ) -> dict[str, object]:
        """Vehicles, plates and evidence sightings of one photo (upload or S3 reference)."""
        body = await request.body()
        kind = _media_type(request)
        if kind == "application/json":
            reference = _validated(ProcessReference, body)
            place = reference.location
            hints = Hints(reference.device_id or device_id, reference.captured_at or captured_at,
                          place.lat if place else lat, place.lon if place else lon,
                          place.accuracy_m if place else accuracy_m)
            label = reference.name or f"s3://{reference.s3.bucket}/{reference.s3.key}"
            s3 = reference.s3
            fetch: Callable[[], bytes] = lambda: service.fetch_s3(s3.bucket, s3.key)  # noqa: E731
        elif kind in PHOTO_TYPES or kind == "":
            hints, label = Hints(device_id, captured_at, lat, lon, accuracy_m), name
            fetch = lambda: body  # noqa: E731
        else:
            raise HTTPException(415, f"send the photo as image/jpeg, image/png, image/heic or "
                                f"application/octet-stream, or an S3 reference as "
                                f"application/json; not {kind}")
        if (hints.lat is None) != (hints.lon is None):
            raise HTTPException(422, "lat and lon go together: give both or neither")
        timings: dict[str, float] = {}
        answer = await in_pool(lambda: service.process_metadata(fetch(), label, hints, timings))
        for stage, seconds in timings.items():
            metrics.stage(stage, seconds)
        return answer

    @app.post("/compare_background", response_model=CompareAnswer, dependencies=secured,
              responses=ERRORS, tags=["photos"], openapi_extra=openapi.compare_body())
    async def compare_background(request: Request) -> dict[str, object]:
        """Same spot and angle, same vehicle still in place? Two photos, optional boxes."""
        image_a, image_b, box_a, box_b = await _compare_request(request, service)
        return await in_pool(lambda: service.compare_background(image_a, image_b, box_a, box_b))

    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    app.state.guard = RequestGuard(app, GuardSettings(
        api_keys=keys, protected=frozenset({"/process_metadata", "/compare_background",
                                            "/metrics"}),
        body_limits={"/process_metadata": settings.max_photo_bytes + 65_536,
                     "/compare_background": settings.max_photo_bytes * 3 + 65_536},
        capacity=settings.workers + settings.queue, retry_after_s=settings.retry_after_s,
        body_timeout_s=settings.body_timeout_s), metrics)
    return app


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _validated(model: type[T], body: bytes) -> T:
    """The body as ``model``; 400 for a body that is not JSON, 422 for wrong fields."""
    try:
        return model.model_validate_json(body)  # type: ignore[attr-defined,no-any-return]
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise HTTPException(400, f"body is not valid JSON ({first['msg'][:120]})") from None
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg'][:200]}") from None


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value,
                                validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"{name}: not valid base64") from None


async def _compare_request(request: Request, service: VisionService
                           ) -> tuple[bytes, bytes, list[float] | None, list[float] | None]:
    kind = _media_type(request)
    if kind == "multipart/form-data":
        limit = service.config.service.max_photo_bytes
        try:
            form = await request.form(max_files=2, max_fields=4, max_part_size=limit)
        except (AssertionError, ValueError, HTTPException) as exc:  # python-multipart's refusals
            raise HTTPException(400, f"multipart body could not be parsed: {exc}"[:300]
                                ) from None
        images = []
        for name in ("image_a", "image_b"):
            part = form.get(name)
            if part is None or isinstance(part, str):
                raise HTTPException(400, f"{name}: missing; send it as a file part of the form")
            images.append(await part.read())
        fields = {n: form.get(n) for n in ("box_a", "box_b")}
        payload = {"image_a": "-", "image_b": "-", **{
            n: None if v in (None, "") else _json_field(str(v), n) for n, v in fields.items()}}
        try:
            boxes = CompareJson.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HTTPException(422, f"{where}: {first['msg'][:200]}") from None
        return images[0], images[1], boxes.box_a, boxes.box_b
    if kind not in ("application/json", ""):
        raise HTTPException(415, f"send application/json or multipart/form-data, not {kind}")
    parsed = _validated(CompareJson, await request.body())
    return (_b64(parsed.image_a, "image_a"), _b64(parsed.image_b, "image_b"), parsed.box_a,
            parsed.box_b)


def _json_field(text: str, name: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise HTTPException(400, f"{name}: not JSON; send [x1, y1, x2, y2]") from None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)


def _error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": one line, "status": code}``; only a bug logs a traceback."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"no endpoint {request.url.path[:100]}; see GET /openapi.json"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path[:100]}"
        return _error(exc.status_code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return _error(400, "body is not valid JSON")
        where = ".".join(str(p) for p in first["loc"]) or "request"
        return _error(422, f"{where}: {str(first['msg'])[:200]}")

    @app.exception_handler(DecodeBudgetError)
    async def too_big(request: Request, exc: DecodeBudgetError) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(BadInputError)
    async def bad_input(request: Request, exc: BadInputError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(GotchaError)
    async def failed(request: Request, exc: GotchaError) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return _error(500, str(exc))
