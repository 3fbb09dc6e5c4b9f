"""Running the service: uvicorn on a socket bound here, with a deadline for request headers.

Why bind the socket ourselves: port 0 gives a free port whose number is known before the
first request (tests, `gotcha serve --port 0`), and a port already in use is a one-line error
before anything starts. Why a protocol subclass: uvicorn closes idle keep-alive connections,
but a connection that opens and drips its request headers a byte at a time was never timed
out; here it is closed after ``service.header_timeout_s``. The body has its own deadline in
the guard (:mod:`edge_agent.service.guard`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_agent.config import GotchaConfig
from edge_agent.errors import ConfigError, GotchaError

log = logging.getLogger(__name__)

BACKLOG = 2048  # 50 parallel uploads must queue in the kernel, never be reset


class HeaderDeadlineProtocol(H11Protocol):
    """H11Protocol that closes a connection whose request headers do not come in time."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._awaited_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._awaited_cycle:
            self._disarm()  # a request's headers arrived

    def on_response_complete(self) -> None:
        completed = self.cycle
        super().on_response_complete()
        if self.cycle is completed and not self.transport.is_closing():
            self._arm()  # waiting for the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expired(self) -> None:
        self._header_timer = None
        if self.cycle is self._awaited_cycle and not self.transport.is_closing():
            log.info("closing %s: no request headers within %g s", self.client,
                     self.header_timeout_s)
            self.transport.close()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(config: GotchaConfig, host: str) -> None:
    """ConfigError for a service reachable from other machines that would ask for no key."""
    if not config.service.api_keys and not is_loopback(host):
        raise ConfigError(f"refusing to serve on {host} without an API key: set "
                          "GOTCHA_SERVICE__API_KEYS='[\"...\"]' (service.api_keys), or listen "
                          "on 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one); GotchaError with the reason otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(BACKLOG)
    except OSError as exc:
        raise GotchaError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose "
                          "another --port or stop what uses it") from None
    sock.setblocking(False)
    return sock


class ServiceServer:
    """uvicorn serving ``asgi`` on ``sock``; run() in this thread or start() in another."""

    def __init__(self, asgi: Any, config: GotchaConfig, sock: socket.socket,
                 on_stop: Callable[[], None] | None = None) -> None:
        settings = config.service
        self.on_stop = on_stop  # e.g. the worker pool's shutdown
        protocol = type("GotchaH11Protocol", (HeaderDeadlineProtocol,),
                        {"header_timeout_s": settings.header_timeout_s})
        capacity = settings.workers + settings.queue
        self.sock = sock
        self.server = uvicorn.Server(uvicorn.Config(
            asgi, http=protocol, lifespan="off", log_config=None, access_log=False,
            backlog=BACKLOG, timeout_keep_alive=settings.keep_alive_s,
            limit_concurrency=max(256, 16 * capacity), timeout_graceful_shutdown=30))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn re-raises the signal after a clean stop)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self._release()

    def _release(self) -> None:
        self.sock.close()
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None

    def start(self) -> ServiceServer:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="gotcha-serve", daemon=True)
        self._thread.start()
        for _ in range(500):
            if self.server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._release()


def create_server(config: GotchaConfig, host: str = "127.0.0.1", port: int = 8080,
                  service: Any = None) -> ServiceServer:
    """Check exposure, load the models (unless ``service`` is given), bind; not yet serving."""
    from edge_agent.service.app import create_app
    from edge_agent.service.core import VisionService

    check_exposure(config, host)
    service = service or VisionService.from_config(config)
    app = create_app(service)
    return ServiceServer(app.state.guard, config, bind(host, port),
                         on_stop=lambda: app.state.pool.shutdown(wait=True))
