"""Value checkers shared by the S3 layout and the manifest: each returns the value or raises.

Why one place: the key layout and the manifest check the same device ids, UUIDs and times, and
every checker words its ManifestError the same way (one line naming the field).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gotcha_contracts.errors import ManifestError
from gotcha_contracts.rules import finite_or_none

MAX_EMBEDDING_DIM = 4096
MAX_BOX_COORD = 100_000.0

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Box4 = tuple[float, float, float, float]


def check_device_id(device_id: object) -> str:
    if not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id) or \
            device_id in (".", ".."):
        raise ManifestError(f"device_id {device_id!r} must be 1-64 of A-Z a-z 0-9 _ . - "
                            "(and not . or ..)")
    return device_id


def check_uuid(report_id: object) -> str:
    try:
        canonical = str(uuid.UUID(str(report_id)))
    except ValueError:
        canonical = None
    if not isinstance(report_id, str) or canonical != report_id:
        raise ManifestError(f"report_id {report_id!r} is not a lowercase hyphenated UUID")
    return report_id


def aware_utc(t: datetime, name: str) -> datetime:
    """``t`` in UTC; ManifestError for anything but a timezone-aware datetime."""
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ManifestError(f"{name} must be a timezone-aware datetime, got {t!r}")
    return t.astimezone(UTC)


def check_fields(obj: object, name: str, expected: Sequence[str]) -> dict[str, Any]:
    """``obj`` as an object holding exactly the ``expected`` fields."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{name} must be an object, got {json_type(obj)}")
    missing = [f for f in expected if f not in obj]
    if missing:
        raise ManifestError(f"{name} is missing field(s) {', '.join(missing)}")
    extra = sorted(str(f) for f in obj if f not in expected)
    if extra:
        raise ManifestError(f"{name} has unknown field(s) {', '.join(extra)}")
    return obj


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number"}.get(type(value), type(value).__name__)


def check_number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{name} must be a number, got {json_type(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise ManifestError(f"{name} is out of range [{low:g}, {high:g}]") from None
    if not math.isfinite(value) or not (low <= value <= high):
        raise ManifestError(f"{name} {value} is out of range [{low:g}, {high:g}]")
    return value


def check_string(value: object, name: str, max_len: int = 200) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{name} must be a string, got {json_type(value)}")
    if not value or len(value) > max_len:
        raise ManifestError(f"{name} must be 1-{max_len} characters, got {len(value)}")
    if has_lone_surrogate(value):
        raise ManifestError(f"{name} holds a lone UTF-16 surrogate, which is not text")
    return value


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a UTF-16 half (JSON ``"\\ud800"``), which no UTF-8 can store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_box(value: object, name: str) -> Box4:
    if not isinstance(value, list) or len(value) != 4:
        raise ManifestError(f"{name} must be [x1, y1, x2, y2], got {short_json(value)}")
    x1, y1, x2, y2 = (check_number(v, f"{name}[{i}]", 0.0, MAX_BOX_COORD)
                      for i, v in enumerate(value))
    if not (x1 < x2 and y1 < y2):
        raise ManifestError(f"{name} {[x1, y1, x2, y2]} needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


def short_json(value: object) -> str:
    """A value as JSON, cut to 60 characters, for messages."""
    text = json.dumps(value, ensure_ascii=False, default=str) if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


def check_embedding(value: object, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ManifestError(f"{name} must be a non-empty array of numbers or null, got "
                            f"{json_type(value)}")
    if len(value) > MAX_EMBEDDING_DIM:
        raise ManifestError(f"{name} has {len(value)} values; at most {MAX_EMBEDDING_DIM}")
    out = []
    for i, v in enumerate(value):
        finite = finite_or_none(v)
        if finite is None:
            raise ManifestError(f"{name}[{i}] must be a finite number, got {short_json(v)}")
        out.append(finite)
    return tuple(out)
