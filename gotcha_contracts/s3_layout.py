"""Where a report lives in S3: deterministic keys, built by the device and parsed by the cloud.

Why deterministic (docs/design.md, section "S3 layout and manifest"): a retry overwrites the
same objects, ``reports/{device_id}/{yyyy}/{mm}/{dd}/{report_id}/photo-1.jpg|photo-2.jpg|
manifest.json``, with the date in UTC of ``confirmed_at``; the manifest is written last, so its
arrival is what the cloud reacts to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from gotcha_contracts._checks import aware_utc, check_device_id, check_uuid
from gotcha_contracts.errors import ManifestError

PHOTO_NAMES: tuple[str, str] = ("photo-1.jpg", "photo-2.jpg")
MANIFEST_NAME = "manifest.json"

_KEY_RE = re.compile(r"^reports/(?P<device>[A-Za-z0-9_.-]{1,64})/(?P<y>\d{4})/(?P<m>\d{2})/"
                     r"(?P<d>\d{2})/(?P<report>[0-9a-f-]{36})/(?P<name>[a-z0-9.-]+)$")


def report_prefix(device_id: str, confirmed_at: datetime, report_id: str) -> str:
    """``reports/{device_id}/{yyyy}/{mm}/{dd}/{report_id}/``, the date in UTC of confirmed_at."""
    check_device_id(device_id)
    check_uuid(report_id)
    day = aware_utc(confirmed_at, "confirmed_at")
    return f"reports/{device_id}/{day:%Y/%m/%d}/{report_id}/"


def photo_keys(device_id: str, confirmed_at: datetime, report_id: str) -> tuple[str, str]:
    prefix = report_prefix(device_id, confirmed_at, report_id)
    return (prefix + PHOTO_NAMES[0], prefix + PHOTO_NAMES[1])


def manifest_key(device_id: str, confirmed_at: datetime, report_id: str) -> str:
    return report_prefix(device_id, confirmed_at, report_id) + MANIFEST_NAME


@dataclass(frozen=True, slots=True)
class ReportKey:
    """The parts of an object key under ``reports/``."""

    device_id: str
    day: date
    report_id: str
    name: str  # photo-1.jpg, photo-2.jpg or manifest.json

    @property
    def prefix(self) -> str:
        return f"reports/{self.device_id}/{self.day:%Y/%m/%d}/{self.report_id}/"

    @property
    def is_manifest(self) -> bool:
        return self.name == MANIFEST_NAME


def parse_report_key(key: str) -> ReportKey | None:
    """Split an S3 key of the report layout (URL-decoded); None for any other key."""
    match = _KEY_RE.match(key) if isinstance(key, str) else None
    if match is None or match["name"] not in (*PHOTO_NAMES, MANIFEST_NAME):
        return None
    try:
        check_device_id(match["device"])
        check_uuid(match["report"])
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except (ManifestError, ValueError):
        return None
    return ReportKey(match["device"], day, match["report"], match["name"])
