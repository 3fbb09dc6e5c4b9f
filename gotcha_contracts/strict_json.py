"""Strict JSON for manifests: a size cap, UTF-8, no NaN, no repeated keys, no runaway input.

Why its own module: a manifest arrives from a device the cloud does not trust, so loading it
must turn every malformed input (huge numbers, deep nesting, duplicate keys, a byte-order mark)
into a one-line ManifestError, never into another exception that would crash the handler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gotcha_contracts.errors import ManifestError


def _reject_constant(name: str) -> float:
    raise ManifestError(f"not strict JSON: {name} is not a number JSON allows")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ManifestError(f"field {key!r} appears twice")
        obj[key] = value
    return obj


def _parse(text: str) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicate_keys)
    except ManifestError:
        raise
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest is not JSON: {exc.msg} at line {exc.lineno} column "
                            f"{exc.colno}") from None
    except RecursionError:
        raise ManifestError("manifest is not JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ManifestError(f"manifest is not JSON this code can read: "
                            f"{str(exc).split(';')[0][:120]}") from None


def load_object(obj: object, max_bytes: int) -> dict[str, Any]:
    """Bytes/str/mapping -> a plain dict, enforcing ``max_bytes`` and strict JSON."""
    if isinstance(obj, Mapping):
        try:
            size = len(json.dumps(obj, ensure_ascii=False).encode("utf-8"))
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise ManifestError(f"manifest is not JSON-serialisable: "
                                f"{str(exc)[:120]}") from None
        if size > max_bytes:
            raise ManifestError(f"manifest is {size} bytes; the limit is {max_bytes}")
        return dict(obj)
    if isinstance(obj, str):
        try:
            obj = obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ManifestError(f"manifest text is not valid Unicode (character "
                                f"{exc.start})") from None
    if not isinstance(obj, bytes | bytearray | memoryview):
        raise ManifestError(f"manifest must be JSON bytes or an object, got {type(obj).__name__}")
    data = bytes(obj)
    if len(data) > max_bytes:
        raise ManifestError(f"manifest is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise ManifestError("manifest is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not UTF-8 text (byte {exc.start})") from None
    loaded = _parse(text)
    if not isinstance(loaded, dict):
        raise ManifestError(f"manifest must be a JSON object, got {type(loaded).__name__}")
    return loaded

