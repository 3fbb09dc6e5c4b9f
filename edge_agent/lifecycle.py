"""The report lifecycle: sighting -> candidate -> confirmed | expired, duplicates.

The states and why they exist: docs/design.md, section "Lifecycle".

Every sighting is decided in one SQLite transaction together with its consequences (a new
candidate, a confirmation and its outbox row, a duplicate count), so a SIGKILL or power cut
at any instant leaves either the whole step or none of it. Recording the same photo again
(a retry after a crash) finds the existing sighting and changes nothing.

Choices (documented in the report of issue 4):

* Lifecycle is per device: a report belongs to one device_id; another device's photos never
  confirm it (the cloud de-duplicates across devices).
* Out-of-order photos: the interval is |t2 - t1| between the two photos' capture times; the
  earlier photo becomes photo 1 (first_seen_at), the later one the confirming photo
  (confirmed_at), so the evidence times stay honest. check_evidence (gotcha_contracts.rules) is
  the last gate: never less than min_interval, never more than max_interval.
* Clock jumps: a capture time in the future (beyond rules.future_tolerance_s of this device's
  clock) or before 2015 (a camera whose clock was reset) makes the sighting ``unmatched``:
  it is kept, but never starts or confirms a report. A jump that stays within those bounds
  yields an interval over max_interval, which never confirms.
* One character off: two reads are the same plate only if both are grammar-valid, have the
  same length, differ in exactly one position, and at that position one read is unsure
  (confidence < ``low_char_confidence``) while the other is sure (>= ``high_char_confidence``;
  config plates.one_char_unsure / plates.one_char_sure). Each character has its own
  confidence, derived by the reader (edge_agent.plates.text): both characters of a region name
  share the region token's.
  The report keeps the sure read as its plate and the other in plate_alt for the reviewer.
  Two confident different reads are different plates: separate candidates, never one report.
  The rule itself is gotcha_contracts.plate_identity.same_plate, shared with the cloud.
* Vehicle moved (scene says vehicle_moved): the old candidate expires ("vehicle moved") and
  the sighting starts a new candidate. A scene mismatch without movement leaves the old
  candidate open and starts a new one.
* A sighting of P near a candidate before min_interval has passed is attached to it as a
  duplicate; near a confirmed/uploaded report within the dedup window, likewise.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from edge_agent.config import PlatesConfig
from edge_agent.store.records import Sighting
from edge_agent.store.store import Clock, Store, utc_now
from gotcha_contracts.plate_identity import same_plate
from gotcha_contracts.rules import Rules, haversine_m, reporting_deadline

log = logging.getLogger(__name__)

EARLIEST_SANE_TIME = datetime(2015, 1, 1, tzinfo=UTC)

Action = Literal["candidate", "confirmed", "duplicate", "unmatched", "already_recorded"]


@dataclass(frozen=True)
class SceneVerdict:
    """What the scene matcher says about two photos of one spot."""

    score: float
    same_scene: bool
    vehicle_moved: bool | None
    reason: str


class SceneComparer(Protocol):
    """Compares two stored scene signatures (``SceneSignature.to_bytes()``)."""

    def compare_bytes(self, a: bytes | None, b: bytes | None) -> SceneVerdict: ...


@dataclass(frozen=True)
class Decision:
    """What recording one sighting did."""

    action: Action
    sighting_id: int
    report_id: str | None
    plate: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"action": self.action, "sighting_id": self.sighting_id,
                "report_id": self.report_id, "plate": self.plate, "reason": self.reason}


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["confirm", "too_early", "moved", "mismatch", "evidence"]
    report_id: str
    reason: str
    first: Sighting | None = None
    score: float = 0.0
    distance_m: float = 0.0
    plate: str = ""
    plate_alt: str | None = None


_PREFERENCE = {"confirm": 0, "too_early": 1, "evidence": 2, "mismatch": 3, "moved": 4}


_PLATES = PlatesConfig()  # the one-character-off defaults, from the config's [plates]


def plate_char_confidences(s: Sighting) -> list[float]:
    """Per-character confidence of the normalised plate, as stored with the sighting.

    A row recorded before sightings stored one confidence per character (it has one per
    recogniser token, and a region name is one token) gives every character the weakest, and
    so does a read the grammar repaired (its raw text is not the plate): a value that cannot
    be placed on a character with certainty must not make that character look sure.
    """
    if (len(s.char_confidences) == len(s.plate)
            and unicodedata.normalize("NFC", s.plate_raw) == s.plate):
        return list(s.char_confidences)
    return [s.plate_confidence] * len(s.plate)


def one_char_match(a: Sighting, b: Sighting, low: float,
                   high: float) -> tuple[str, str] | None:
    """(plate to keep, the other read) when ``a`` and ``b`` are one unsure character apart."""
    return same_plate(a.plate, plate_char_confidences(a), b.plate, plate_char_confidences(b),
                      low, high)


class Lifecycle:
    """Decides each sighting against this device's open reports; one transaction per sighting."""

    def __init__(self, store: Store, rules: Rules, zone: str, scene: SceneComparer,
                 clock: Clock = utc_now,
                 low_char_confidence: float = _PLATES.one_char_unsure,
                 high_char_confidence: float = _PLATES.one_char_sure,
                 models: dict[str, str | None] | None = None) -> None:
        rules.min_interval(zone)  # raises ValueError for an unknown zone, at start
        self.store = store
        self.rules = rules
        self.zone = zone
        self.scene = scene
        self.clock = clock
        self.low = low_char_confidence
        self.high = high_char_confidence
        self.models = models or {}  # model ids recorded with each confirmed report

    # ------------------------------------------------------------------ public
    def record(self, s: Sighting) -> Decision:
        """Record one sighting (its photo file must already be in the store) and decide it."""
        with self.store.transaction():
            existing = self.store.find_sighting(s.device_id, s.photo_sha256, s.plate)
            if existing is not None and existing.id is not None:
                return Decision("already_recorded", existing.id, existing.report_id, s.plate,
                                "this photo's plate was recorded before; nothing changed")
            insane = self._time_problem(s)
            if insane:
                sid = self.store.insert_sighting(s, "unmatched", note=insane)
                return Decision("unmatched", sid, None, s.plate, insane)
            if s.location is None:
                note = "photo has no location (no GPS and no device.lat/lon)"
                sid = self.store.insert_sighting(s, "unmatched", note=note)
                return Decision("unmatched", sid, None, s.plate, note)
            self.store.expire_due(s.captured_at, s.device_id)
            return self._decide(s)

    # ------------------------------------------------------------------ internals
    def _time_problem(self, s: Sighting) -> str | None:
        now = self.clock()
        if s.captured_at > now + timedelta(seconds=self.rules.future_tolerance_s):
            return (f"capture time {s.captured_at.isoformat()} is in the future of this device "
                    f"({now.isoformat()}); clock jump? not used as evidence")
        if s.captured_at < EARLIEST_SANE_TIME:
            return (f"capture time {s.captured_at.isoformat()} is before 2015 (camera clock "
                    "reset?); not used as evidence")
        return None

    def _decide(self, s: Sighting) -> Decision:
        assert s.location is not None
        # older reports can neither be confirmed by s nor absorb it as a duplicate
        since = s.ts - self.rules.max_interval_s - self.rules.dedup_window_s - 1.0
        plates = [s.plate, *self._near_plates(s.plate, s.device_id, since)]
        reports = self.store.reports_for(s.device_id, plates,
                                         ("candidate", "confirmed", "uploaded"), since)
        outcomes: list[_Outcome] = []
        for report in reports:
            distance = haversine_m((report.lat, report.lon), s.location)
            if not self.rules.same_spot(distance):
                continue
            first = self.store.sighting(report.first_sighting_id)
            match = one_char_match(first, s, self.low, self.high)
            if match is None:
                continue
            if report.state in ("confirmed", "uploaded"):
                assert report.confirmed_at is not None
                inside = report.first_seen_at <= s.captured_at <= report.confirmed_at
                if inside or self.rules.is_duplicate(report.confirmed_at, s.captured_at,
                                                     distance):
                    sid = self.store.insert_sighting(s, "duplicate", report.report_id)
                    self.store.add_duplicate(report.report_id)
                    return Decision("duplicate", sid, report.report_id, match[0],
                                    f"report {report.state} for this plate here already")
                continue
            outcomes.append(self._against_candidate(report.report_id, first, s, distance,
                                                    match))
        outcomes.sort(key=lambda o: _PREFERENCE[o.kind])
        best = outcomes[0] if outcomes else None
        if best is not None and best.kind == "confirm":
            return self._confirm(s, best)
        if best is not None and best.kind == "too_early":
            sid = self.store.insert_sighting(s, "duplicate", best.report_id, note=best.reason)
            self.store.add_duplicate(best.report_id)
            return Decision("duplicate", sid, best.report_id, s.plate, best.reason)
        for outcome in outcomes:
            if outcome.kind == "moved":
                self.store.expire(outcome.report_id, "vehicle moved: " + outcome.reason)
        sid = self.store.insert_sighting(s, "first")
        expires = min(s.captured_at + timedelta(seconds=self.rules.max_interval_s),
                      reporting_deadline(s.captured_at))
        report_id = self.store.create_candidate(s, sid, self.zone, expires)
        why = "; ".join(f"{o.report_id[:8]}: {o.reason}" for o in outcomes) or "first sighting"
        return Decision("candidate", sid, report_id, s.plate, why)

    def _near_plates(self, plate: str, device_id: str, since_ts: float) -> list[str]:
        """Plates of this device's recent reports exactly one character away from ``plate``."""
        near = []
        for other in self.store.candidate_plates(device_id, len(plate), since_ts):
            if other != plate and sum(x != y for x, y in zip(plate, other, strict=True)) == 1:
                near.append(other)
        return near

    def _against_candidate(self, report_id: str, first: Sighting, s: Sighting, distance: float,
                           match: tuple[str, str]) -> _Outcome:
        earlier, later = (first, s) if first.ts <= s.ts else (s, first)
        interval = later.ts - earlier.ts
        if interval > self.rules.max_interval_s:
            return _Outcome("evidence", report_id, f"{interval:.0f} s apart, over the "
                            f"{self.rules.max_interval_s:.0f} s maximum")
        needed = self.rules.min_interval(self.zone, earlier.captured_at)
        if interval < needed:
            return _Outcome("too_early", report_id, f"seen again after {interval:.0f} s, "
                            f"before the {needed:.0f} s minimum")
        verdict = self.scene.compare_bytes(first.scene_signature, s.scene_signature)
        if verdict.vehicle_moved:
            return _Outcome("moved", report_id, verdict.reason, score=verdict.score)
        if not verdict.same_scene or not self.rules.scene_matches(verdict.score):
            return _Outcome("mismatch", report_id, f"scene differs (score {verdict.score:.2f}: "
                            f"{verdict.reason})", score=verdict.score)
        reasons = self.rules.check_evidence(earlier.captured_at, later.captured_at, distance,
                                            verdict.score, self.zone, now=self.clock())
        if reasons:
            return _Outcome("evidence", report_id, "; ".join(reasons), score=verdict.score)
        keep, other = match
        return _Outcome("confirm", report_id, verdict.reason, first=first, score=verdict.score,
                        distance_m=distance, plate=keep,
                        plate_alt=other if other != keep else None)

    def _confirm(self, s: Sighting, outcome: _Outcome) -> Decision:
        assert outcome.first is not None
        sid = self.store.insert_sighting(s, "confirming", outcome.report_id)
        stored = self.store.sighting(sid)
        earlier, later = ((outcome.first, stored) if outcome.first.ts <= stored.ts
                          else (stored, outcome.first))
        self.store.confirm(outcome.report_id, earlier, later, outcome.plate, outcome.plate_alt,
                           reporting_deadline(earlier.captured_at), outcome.score,
                           outcome.reason, outcome.distance_m, self.models)
        gap = later.ts - earlier.ts
        log.info("report %s confirmed: %s, %.0f s apart, scene %.2f", outcome.report_id,
                 outcome.plate, gap, outcome.score)
        return Decision("confirmed", sid, outcome.report_id, outcome.plate,
                        f"{gap:.0f} s apart, {outcome.distance_m:.1f} m, scene "
                        f"{outcome.score:.2f}")
