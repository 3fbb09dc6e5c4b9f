"""Calling the vision service from a Lambda: urllib only, retries with backoff, clear failures.

Settings come from the environment: GOTCHA_SERVICE_URL (e.g. http://10.0.1.5:8080),
GOTCHA_SERVICE_API_KEY, and optionally GOTCHA_SERVICE_ATTEMPTS (4), GOTCHA_SERVICE_TIMEOUT_S
(60), GOTCHA_SERVICE_BACKOFF_S (1: first retry delay, doubling up to 20 s). A connection
failure, a timeout, 408, 429 and any 5xx are retried (a 503's Retry-After is honoured, within
the same cap); another 4xx is the photo's fault and raises PhotoRefusedError at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cloud_sync.errors import CloudConfigError, PhotoRefusedError, ServiceUnavailableError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 8_000_000


@dataclass(frozen=True)
class ServiceSettings:
    url: str
    api_key: str
    attempts: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    backoff_max_s: float = 20.0

    def __repr__(self) -> str:  # the key stays out of logs
        return f"ServiceSettings(url={self.url!r}, attempts={self.attempts})"


def _number(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise CloudConfigError(f"{name} must be a number, got {text!r}") from None
    if not value >= low:
        raise CloudConfigError(f"{name} must be at least {low:g}, got {text!r}")
    return value


def service_settings_from_env(env: Mapping[str, str]) -> ServiceSettings:
    url = env.get("GOTCHA_SERVICE_URL", "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CloudConfigError("GOTCHA_SERVICE_URL is not set to the vision service's http(s) "
                               "address (gotcha serve)")
    return ServiceSettings(
        url=url, api_key=env.get("GOTCHA_SERVICE_API_KEY", ""),
        attempts=int(_number(env, "GOTCHA_SERVICE_ATTEMPTS", 4, 1)),
        timeout_s=_number(env, "GOTCHA_SERVICE_TIMEOUT_S", 60.0, 0.1),
        backoff_s=_number(env, "GOTCHA_SERVICE_BACKOFF_S", 1.0, 0.0))


def _content_type(data: bytes) -> str:
    if data[:2] == b"\xff\xd8":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[4:8] == b"ftyp":
        return "image/heic"
    return "application/octet-stream"


class ServiceClient:
    """POST /process_metadata with retries; ``sleep`` is injectable for tests."""

    def __init__(self, settings: ServiceSettings,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.sleep = sleep

    def process_photo(self, data: bytes, params: Mapping[str, object]) -> dict[str, Any]:
        """The service's answer for one photo; ServiceUnavailableError after the last try,
        PhotoRefusedError when the service says the photo itself is unusable."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(
            f"{self.settings.url}/process_metadata?{query}", data=data, method="POST",
            headers={"Content-Type": _content_type(data), "X-API-Key": self.settings.api_key,
                     "Accept": "application/json"})
        last = "no attempt made"
        for attempt in range(1, self.settings.attempts + 1):
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as answer:
                    return json.loads(answer.read(MAX_ANSWER_BYTES))
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUSES:
                    raise PhotoRefusedError(exc.code, message) from None
                last = f"HTTP {exc.code}: {message}"
                retry_after = _seconds(exc.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except ValueError as exc:  # an answer that is not JSON
                last = f"answer is not JSON ({exc})"
            if attempt < self.settings.attempts:
                delay = min(self.settings.backoff_s * 2 ** (attempt - 1),
                            self.settings.backoff_max_s) * random.uniform(0.5, 1.0)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.settings.backoff_max_s))
                log.info("vision service attempt %d/%d failed (%s); retrying in %.1f s",
                         attempt, self.settings.attempts, last, delay)
                self.sleep(delay)
        raise ServiceUnavailableError(f"vision service at {self.settings.url} failed "
                                      f"{self.settings.attempts} attempt(s); last: {last}"[:900])


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(65_536) or b"{}")
        return str(body.get("error") or body)[:500] if isinstance(body, dict) else str(body)
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else "no message"


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
