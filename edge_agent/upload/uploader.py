"""Works through the outbox: photos first, the manifest last, each report exactly once.

Why this shape: the cloud ingests a report when its manifest appears, so the manifest must
never be there before both photos. Keys are deterministic and every object carries its sha256,
so after a crash or a dead network the next pass skips what already arrived intact and
overwrites the rest; the outbox row is marked done only after the manifest is stored. A
network failure never escapes a pass: the report is rescheduled with exponential backoff and
full jitter, and a circuit breaker stops hammering an endpoint that is down. Only a permanent
fault (no such bucket, bad credentials) raises UploadError, since retrying cannot fix it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from edge_agent.errors import BadInputError, StoreError, UploadError
from edge_agent.results import Box, GeoPoint
from edge_agent.upload.object_store import ObjectStore, TransientStoreError, sha256_hex
from edge_agent.upload.privacy import upload_copy
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.manifest_build import build_manifest, manifest_bytes
from gotcha_contracts.rules import DEFAULT_RULES, Rules
from gotcha_contracts.s3_layout import MANIFEST_NAME, PHOTO_NAMES, report_prefix

log = logging.getLogger(__name__)

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


# ---------------------------------------------------------------------------- retry policy

def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**attempt)] (attempt counts from 0).

    Why full jitter: many devices coming back after the same outage must not retry in step.
    """
    cap = min(max_s, base_s * (2 ** min(attempt, 30)))
    return rng.uniform(0.0, cap)


class BreakerOpenError(TransientStoreError):
    """The circuit breaker is open: the endpoint failed repeatedly; not calling it now."""


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (cooldown) -> half_open -> one trial call:
    success closes it, failure opens it again for another cooldown."""

    def __init__(self, failure_threshold: int, cooldown_s: float,
                 clock: Clock = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def remaining_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def allow_peek(self) -> bool:
        """Whether a call could go out now, without taking the half-open trial slot."""
        return self.state != "open"

    def allow(self) -> bool:
        """Whether a call may go out now (in half_open, only one trial at a time)."""
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half_open" and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            if self.opened_at is not None:
                log.info("upload endpoint is back: circuit breaker closed")
            self.failures = 0
            self.opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            trial = self._trial_running
            self._trial_running = False
            if trial or (self.opened_at is None and self.failures >= self.failure_threshold):
                if self.opened_at is None or trial:
                    log.warning("upload endpoint failing (%d in a row): circuit breaker open "
                                "for %.1f s", self.failures, self.cooldown_s)
                self.opened_at = self.clock()


# ---------------------------------------------------------------------------- what is uploaded

@dataclass(frozen=True)
class UploadPhoto:
    """One evidence photo as stored on the device, and what the manifest says about it."""

    data: bytes
    captured_at: datetime
    plate_box: Box
    location: GeoPoint  # where this photo was taken
    vehicle_box: Box | None = None
    scene_embedding: Sequence[float] | None = None
    # what to blur, as recorded with the sighting; None: not recorded (see upload_copy)
    people_boxes: Sequence[Box] | None = ()
    other_plate_boxes: Sequence[Box] | None = ()


@dataclass(frozen=True)
class ReportUpload:
    """Everything needed to upload one confirmed report (see build_manifest for the fields)."""

    report_id: str
    device_id: str
    plate: str
    plate_confidence: float
    plate_char_confidences: Sequence[float]
    zone: str
    first_seen_at: datetime
    confirmed_at: datetime
    distance_m: float
    photos: tuple[UploadPhoto, UploadPhoto]
    scene_score: float
    models: Mapping[str, str | None]
    rules: Rules = DEFAULT_RULES  # the rules in force on the device, named in the manifest

    @property
    def prefix(self) -> str:
        return report_prefix(self.device_id, self.confirmed_at, self.report_id)


class OutboxEntry(Protocol):
    report_id: str


class OutboxSource(Protocol):
    """What the uploader needs from the device store (edge_agent.store.Store via StoreOutbox)."""

    def pending(self, limit: int) -> Sequence[OutboxEntry]: ...

    def load(self, report_id: str) -> ReportUpload: ...

    def mark_uploaded(self, report_id: str) -> None: ...

    def mark_failed(self, report_id: str, error: str, retry_at: datetime) -> None: ...


class StoreOutbox:
    """OutboxSource over the lifecycle's Store; the report's content comes from
    ``edge_agent.store.bundle.report_bundle``, the same function `gotcha reports export` uses,
    so what is uploaded is exactly what an export shows (before redaction)."""

    def __init__(self, store: Any, rules: Rules = DEFAULT_RULES) -> None:
        self.store = store
        self.rules = rules

    def pending(self, limit: int) -> Sequence[OutboxEntry]:
        return self.store.pending(limit)

    def mark_uploaded(self, report_id: str) -> None:
        self.store.mark_uploaded(report_id)

    def mark_failed(self, report_id: str, error: str, retry_at: datetime) -> None:
        self.store.mark_failed(report_id, error, retry_at)

    def load(self, report_id: str) -> ReportUpload:
        from edge_agent.store.bundle import report_bundle

        bundle = report_bundle(self.store, report_id, self.rules)
        report, doc = bundle.report, bundle.manifest
        assert report.confirmed_at is not None  # report_bundle checked it
        photos = []
        for i, s in enumerate(bundle.sightings):
            where = doc["photos"][i]["location"]
            photos.append(UploadPhoto(
                data=bundle.photo_bytes(i), captured_at=s.captured_at, plate_box=s.plate_box,
                location=GeoPoint(where["lat"], where["lon"], where["accuracy_m"]),
                vehicle_box=s.vehicle_box, scene_embedding=doc["photos"][i]["scene_embedding"],
                people_boxes=s.people_boxes, other_plate_boxes=s.other_plate_boxes))
        return ReportUpload(
            report_id=report.report_id, device_id=report.device_id, plate=doc["plate"],
            plate_confidence=doc["plate_confidence"],
            plate_char_confidences=doc["plate_char_confidences"], zone=doc["zone"],
            first_seen_at=report.first_seen_at, confirmed_at=report.confirmed_at,
            distance_m=doc["distance_m"], photos=(photos[0], photos[1]),
            scene_score=doc["scene_score"], models=doc["models"], rules=self.rules)


# ---------------------------------------------------------------------------- the uploader

@dataclass
class UploadSettings:
    """The uploader's knobs (from UploadConfig: ``UploadSettings.from_config(cfg.upload)``)."""

    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    blur_people: bool = True
    blur_other_plates: bool = True

    @classmethod
    def from_config(cls, upload: Any) -> UploadSettings:
        return cls(max_attempts=upload.max_attempts, backoff_base_s=upload.backoff_base_s,
                   backoff_max_s=upload.backoff_max_s, breaker_failures=upload.breaker_failures,
                   breaker_cooldown_s=upload.breaker_cooldown_s,
                   blur_people=upload.blur_people,
                   blur_other_plates=upload.blur_other_plates)


@dataclass
class PassResult:
    """What one pass over the outbox did."""

    uploaded: list[str] = field(default_factory=list)  # report ids now complete in the store
    failed: dict[str, str] = field(default_factory=dict)  # report id -> error, rescheduled
    objects_put: int = 0
    objects_skipped: int = 0  # already present with the same sha256
    breaker: BreakerState = "closed"
    stopped_early: bool = False  # the breaker opened; remaining reports wait for the next pass

    def to_dict(self) -> dict[str, object]:
        return {"uploaded": self.uploaded, "failed": self.failed,
                "objects_put": self.objects_put, "objects_skipped": self.objects_skipped,
                "breaker": self.breaker, "stopped_early": self.stopped_early}


class Uploader:
    """One verb: :meth:`run_pass`. :meth:`run` loops it until a stop event is set."""

    def __init__(self, objects: ObjectStore, source: OutboxSource,
                 settings: UploadSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Clock = time.monotonic) -> None:
        self.objects = objects
        self.source = source
        self.settings = settings or UploadSettings()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.now = now
        self.breaker = CircuitBreaker(self.settings.breaker_failures,
                                      self.settings.breaker_cooldown_s, monotonic)

    @classmethod
    def from_config(cls, config: Any, store: Any) -> Uploader:
        """The configured uploader over the device store: object store from ``upload`` and
        retry/breaker/blur settings. No model loads: the blur uses the boxes the pipeline
        stored with each sighting."""
        from edge_agent.agent import rules_from_config
        from edge_agent.upload.object_store import object_store_from_config

        return cls(object_store_from_config(config.upload),
                   StoreOutbox(store, rules_from_config(config)),
                   UploadSettings.from_config(config.upload))

    # -- calls with retry and breaker
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        s = self.settings
        for attempt in range(s.max_attempts):
            if not self.breaker.allow():
                raise BreakerOpenError(f"{what}: endpoint down, circuit breaker open for "
                                       f"{self.breaker.remaining_s():.1f} s more")
            try:
                result = fn()
            except TransientStoreError as exc:
                self.breaker.record_failure()
                if attempt + 1 >= s.max_attempts or self.breaker.state != "closed":
                    raise
                delay = backoff_delay(attempt, s.backoff_base_s, s.backoff_max_s, self.rng)
                log.debug("%s failed (%s); retry %d in %.2f s", what, exc, attempt + 1, delay)
                self.sleep(delay)
                continue
            self.breaker.record_success()
            return result
        raise AssertionError("unreachable: max_attempts >= 1")

    def _ensure(self, key: str, data: bytes, metadata: Mapping[str, str],
                result: PassResult) -> None:
        """Put ``data`` at ``key`` unless an object with the same sha256 is already there."""
        sha = sha256_hex(data)
        info = self._call(f"head {key}", lambda: self.objects.head(key))
        if info is not None and info.sha256 == sha:
            result.objects_skipped += 1
            return
        if info is not None:
            log.warning("%s exists with sha256 %s, not %s: overwriting", key,
                        (info.sha256 or "none")[:12], sha[:12])
        self._call(f"put {key}", lambda: self.objects.put(key, data, metadata))
        result.objects_put += 1

    # -- one report
    def upload_report(self, report: ReportUpload, result: PassResult | None = None) -> None:
        """Upload one report: both photos, then the manifest naming their sha256."""
        result = result if result is not None else PassResult()
        prefix = report.prefix
        entries = []
        # both copies first: a photo that cannot be blurred stops the report before any put
        copies = [upload_copy(photo.data, photo.plate_box, photo.people_boxes,
                              photo.other_plate_boxes, self.settings.blur_people,
                              self.settings.blur_other_plates,
                              f"{name} of report {report.report_id}")
                  for name, photo in zip(PHOTO_NAMES, report.photos, strict=True)]
        for name, photo, data in zip(PHOTO_NAMES, report.photos, copies, strict=True):
            key = prefix + name
            self._ensure(key, data, {"report-id": report.report_id}, result)
            entries.append({"sha256": sha256_hex(data), "captured_at": photo.captured_at,
                            "location": photo.location, "vehicle_box": photo.vehicle_box,
                            "plate_box": photo.plate_box,
                            "scene_embedding": photo.scene_embedding})
        manifest = build_manifest(
            report_id=report.report_id, device_id=report.device_id, plate=report.plate,
            plate_confidence=report.plate_confidence,
            plate_char_confidences=report.plate_char_confidences, zone=report.zone,
            first_seen_at=report.first_seen_at, confirmed_at=report.confirmed_at,
            distance_m=report.distance_m, photos=entries, scene_score=report.scene_score,
            rules=report.rules, models=report.models)
        self._ensure(prefix + MANIFEST_NAME, manifest_bytes(manifest),
                     {"report-id": report.report_id}, result)

    def _retry_at(self, attempts: int) -> datetime:
        s = self.settings
        delay = backoff_delay(attempts, s.backoff_base_s, s.backoff_max_s, self.rng)
        delay = max(delay, self.breaker.remaining_s())
        return self.now() + timedelta(seconds=delay)

    # -- one pass
    def run_pass(self, limit: int = 50) -> PassResult:
        """Upload what is due in the outbox. Network trouble reschedules reports and returns;
        UploadError (bad bucket, credentials) is raised because retrying cannot fix it."""
        result = PassResult()
        for item in self.source.pending(limit):
            report_id = item.report_id
            attempts = int(getattr(item, "attempts", 0) or 0)
            if not self.breaker.allow_peek():
                result.stopped_early = True
                break
            try:
                report = self.source.load(report_id)
                self.upload_report(report, result)
            except TransientStoreError as exc:
                result.failed[report_id] = str(exc)
                self.source.mark_failed(report_id, str(exc), self._retry_at(attempts))
                if self.breaker.state != "closed":
                    result.stopped_early = True
                    break
                continue
            except (StoreError, BadInputError, ManifestError) as exc:
                # this report's own data is broken (photo lost, manifest invalid): keep it,
                # retry much later, tell the operator, and go on with the others
                message = f"cannot upload report {report_id}: {exc}"
                log.error(message)
                result.failed[report_id] = message
                self.source.mark_failed(report_id, message,
                                        self.now() + timedelta(hours=1))
                continue
            except UploadError:
                raise
            self.source.mark_uploaded(report_id)
            result.uploaded.append(report_id)
            log.info("report %s uploaded", report_id)
        result.breaker = self.breaker.state
        return result
