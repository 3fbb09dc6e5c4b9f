"""Shared by the service tests: a real server on a free loopback port, and plain HTTP calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from edge_agent.config import GotchaConfig

KEY = "test-key-0123456789"
OTHER_KEY = "second-key-abcdefgh"


def service_config(models_dir: Path, **service: Any) -> GotchaConfig:
    return GotchaConfig.model_validate({
        "models": {"dir": models_dir, "providers": ["cpu"]},
        "service": {"api_keys": [KEY, OTHER_KEY], **service}})


def call(url: str, data: bytes | None = None, content_type: str = "image/jpeg",
         key: str | None = KEY, method: str | None = None, timeout: float = 120
         ) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    headers = {"Content-Type": content_type, **({"X-API-Key": key} if key else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def call_json(url: str, data: bytes | None = None, content_type: str = "image/jpeg",
              key: str | None = KEY, method: str | None = None) -> tuple[int, dict]:
    status, _, body = call(url, data, content_type, key, method)
    return status, json.loads(body)


def png_bomb(width: int, height: int) -> bytes:
    """A real, valid RGBA PNG of ``width`` x ``height`` zero pixels: tiny on disk, huge decoded.

    Streamed through zlib row by row, so making it never holds the pixels.
    """
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 4)  # filter byte + RGBA
    parts = [compressor.compress(row) for _ in range(height)]
    data = b"".join(parts) + compressor.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))
