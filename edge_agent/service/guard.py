"""The door of the service: key, size, room and time are checked before a request costs anything.

An ASGI middleware in front of the FastAPI app, in this order:

1. ``X-API-Key`` on every protected path (constant-time comparison against each key) -> 401;
2. a declared ``Content-Length`` over the route's limit -> 413, before a byte of body is read;
3. admission: at most ``workers + queue`` photo requests are inside at once; the next one
   gets 503 with Retry-After at once, instead of waiting in a queue without end;
4. the body is read with a size limit (a chunked body too) and a deadline for the whole body
   (a client dripping bytes gets 408), then handed to the app in one piece;
5. a client that goes away mid-body is logged on one line, no traceback, nothing answered.

Every refusal is JSON (``{"error": ..., "status": ...}``) and counted in the metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from edge_agent.service.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLIENT_GONE = 499  # nginx's code for "client closed the request", for the metrics only


class _Refused(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class _ClientGone(Exception):
    pass


@dataclass
class GuardSettings:
    api_keys: tuple[bytes, ...]  # empty: no key needed (loopback only, see server.py)
    protected: frozenset[str]  # paths that need a key
    body_limits: dict[str, int]  # POST path -> most bytes its body may have
    capacity: int  # photo requests inside at once (workers + queue)
    retry_after_s: int
    body_timeout_s: float


async def send_json(send: Send, status: int, payload: dict[str, object],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def key_matches(given: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether ``given`` is one of ``keys``; every key is compared, each in constant time."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


class RequestGuard:
    """ASGI middleware; see the module docstring for what it checks and in which order."""

    def __init__(self, app: ASGIApp, settings: GuardSettings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.inside = 0  # photo requests admitted and not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = CLIENT_GONE
        started = time.perf_counter()
        self.metrics.started()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, sending)
        except _Refused as exc:
            self.metrics.shed(exc.reason)
            extra = [(b"connection", b"close")]  # the unread body must not start a request
            if exc.status == 503:
                extra.append((b"retry-after", str(self.settings.retry_after_s).encode()))
            await send_json(sending, exc.status, {"error": str(exc), "status": exc.status},
                            extra)
        except _ClientGone:
            client = scope.get("client") or ("?", 0)
            log.info("%s:%s went away before sending its whole body (%s %s)", client[0],
                     client[1], scope["method"], scope["path"])
        finally:
            self.metrics.finished(scope["method"], scope["path"], status,
                                  time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        settings = self.settings
        if settings.api_keys and path in settings.protected:
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not key_matches(given, settings.api_keys):
                raise _Refused(401, "missing or wrong X-API-Key header", "unauthorized")
        limit = settings.body_limits.get(path) if method == "POST" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            raise _Refused(413, f"body of {declared} bytes is over the limit of {limit} bytes",
                           "too_large")
        if self.inside >= settings.capacity:
            raise _Refused(503, f"busy: {self.inside} photo requests in progress; retry after "
                           f"{settings.retry_after_s} s", "overloaded")
        self.inside += 1
        try:
            body = await self._read_body(receive, limit)
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.inside -= 1

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                raise _Refused(408, f"body not received within {self.settings.body_timeout_s:g}"
                               f" s ({size} bytes came)", "slow_body") from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"body is over the limit of {limit} bytes", "too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    raw = dict(scope["headers"]).get(b"content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise _Refused(400, f"bad Content-Length {raw[:40]!r}", "bad_request")
    return int(raw)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; after it, the real channel (for disconnects)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
