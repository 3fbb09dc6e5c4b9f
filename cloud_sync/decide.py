"""What the promoter decides for each pending row: final, duplicate or rejected, and why.

Pure (no database): promote.py claims a batch of rows and the finals that could match them,
this module decides every row in memory, and promote.py writes all the decisions back in a few
statements. Why the split: the decisions are where the evidence rule, the cloud's limits and
plate identity meet, and they are tested here without MySQL; the batching is what makes the
promoter fast.

* Rules: each row is checked against the rules its manifest names (gotcha_contracts.rules_diff;
  DEFAULT_RULES for schema 1), which must lie within the cloud's limits (cloud_sync.limits).
* Evidence: interval and distance come from the photos' own times and locations (ingest holds
  the report's times to its photos' and recomputes the distance from their locations).
* Duplicates: the earliest final within the radius and the dedup window whose plate is the
  same plate by gotcha_contracts.plate_identity.same_plate (with the per-character
  confidences), so device and cloud agree on plates read one character apart.
* One row that cannot be checked (a value no check foresaw) is rejected with the error as its
  reason; it never stops the batch.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cloud_sync.limits import CloudLimits
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.plate_grammar import explain_reject
from gotcha_contracts.plate_identity import match_keys, plate_key, same_plate
from gotcha_contracts.rules import DEFAULT_RULES, Rules, haversine_m
from gotcha_contracts.rules_diff import parse_rules_block

log = logging.getLogger(__name__)

MAX_REASON = 1000
DATETIME_MIN, DATETIME_MAX = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
Status = Literal["final", "duplicate", "rejected"]
# What a row's values can make the checks raise; the row is rejected with it, never the batch.
ROW_ERRORS = (ValueError, ArithmeticError, TypeError, KeyError)


@dataclass
class Candidate:
    """A final a pending row may duplicate: one already in `final`, or one made this batch.

    ``stored_confidences`` is what `final` holds (a JSON array of per-character confidences,
    or the plate's one confidence for a schema 1 report), or the confidences themselves, or
    a function that reads them: they are needed only when a comparison gets that far (most
    candidates are turned away by time or place first, and equal plates need none).
    """

    plate: str
    stored_confidences: str | float | Sequence[float] | Callable[[], object] | None
    lat: float
    lon: float
    confirmed_at: datetime
    id: int | None = None  # None for a final made in this batch, until it is inserted
    temporary_id: int | None = None

    @functools.cached_property
    def confidences(self) -> tuple[float, ...]:
        stored = self.stored_confidences
        return char_confidences(self.plate, stored() if callable(stored) else stored)


@dataclass(frozen=True)
class Decision:
    """The verdict on one row; ``final`` is the matched final (duplicate) or the new one."""

    row_id: int
    status: Status
    reason: str | None = None
    final: Candidate | None = None


@dataclass
class FinalIndex:
    """Finals by plate match key, so a row meets only the finals that could be its plate."""

    by_key: dict[str, list[Candidate]] = field(default_factory=dict)

    @classmethod
    def of(cls, finals: Iterable[Candidate]) -> FinalIndex:
        index = cls()
        for final in finals:
            index.add(final)
        return index

    def add(self, final: Candidate) -> None:
        for key in match_keys(final.plate):
            self.by_key.setdefault(key, []).append(final)

    def match(self, plate: str, confidences: Sequence[float], lat: float, lon: float,
              confirmed_at: datetime, rules: Rules) -> tuple[Candidate, float, float] | None:
        """The earliest final that is this plate, within the radius and the dedup window.

        Returns (final, distance m, time gap s).
        """
        window = rules.dedup_window_s
        seen: set[int] = set()
        best: tuple[Candidate, float, float] | None = None
        for key in match_keys(plate):
            for final in self.by_key.get(key, ()):
                if id(final) in seen:
                    continue
                seen.add(id(final))
                gap = abs((final.confirmed_at - confirmed_at).total_seconds())
                if gap > window:
                    continue
                distance = haversine_m((lat, lon), (final.lat, final.lon))
                if not rules.same_spot(distance) or (final.plate != plate and same_plate(
                        final.plate, final.confidences, plate, confidences) is None):
                    continue
                order = (final.confirmed_at, final.id or 0)
                if best is None or order < (best[0].confirmed_at, best[0].id or 0):
                    best = (final, distance, gap)
        return best


@functools.lru_cache(maxsize=512)
def rules_for(text: str | None, limits: CloudLimits) -> tuple[Rules, tuple[str, ...]]:
    """The rules a row's manifest named, and why they are not acceptable (() when they are)."""
    if text is None:
        return DEFAULT_RULES, tuple(limits.rules_failures(DEFAULT_RULES))
    try:
        rules, _ = parse_rules_block(json.loads(text))
    except (ManifestError, ValueError, RecursionError) as exc:
        return DEFAULT_RULES, (f"the rules the device named cannot be read: {exc}",)
    return rules, tuple(limits.rules_failures(rules))


def char_confidences(plate: str, stored: object) -> tuple[float, ...]:
    """One confidence per character of ``plate`` from what a row stores: a JSON array (or a
    sequence) of them, else one number for the whole plate (schema 1), repeated."""
    values: object = json.loads(stored) if isinstance(stored, str) else stored
    if isinstance(values, list | tuple) and len(values) == len(plate):
        return tuple(float(v) for v in values)
    number = values if isinstance(values, int | float) and not isinstance(values, bool) else 0.0
    return (float(number),) * len(plate)


def row_confidences(row: Mapping[str, Any]) -> tuple[float, ...]:
    """One confidence per character of the row's plate; each the plate's own when not known."""
    return char_confidences(row.get("plate") or "", row.get("plate_char_confidences")
                            or row.get("plate_confidence"))


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def rule_failures(row: Mapping[str, Any], rules: Rules) -> list[str]:
    """Why a temporary row fails the shared evidence rule and plate grammar ([] = it passes)."""
    reasons: list[str] = []
    plate = row.get("plate")
    if not plate or plate_key(plate) is None:
        reasons.append(f"plate {plate!r} is not a Korean plate: {explain_reject(plate or '')}")
    first, confirmed = _aware(row.get("first_seen_at")), _aware(row.get("confirmed_at"))
    if first is None or confirmed is None:
        reasons.append("first_seen_at or confirmed_at is missing")
        return reasons
    if row.get("lat") is None or row.get("lon") is None:
        reasons.append("the report has no location")
    # Filed when it reached S3: a promoter running late must not push it past the deadline.
    reasons += rules.check_evidence(first, confirmed, row.get("photo_distance_m"),
                                    row.get("scene_score"), row.get("zone") or "",
                                    now=_aware(row["received_at"]))
    return reasons


def _decide_row(row: Mapping[str, Any], index: FinalIndex, limits: CloudLimits) -> Decision:
    rules, looser = rules_for(row.get("rules"), limits)
    reasons = [*looser, *rule_failures(row, rules)]
    if reasons:
        return Decision(row["id"], "rejected", "; ".join(reasons)[:MAX_REASON])
    plate = plate_key(row["plate"])
    assert plate is not None  # rule_failures checked that it parses
    confidences = row_confidences(row)
    match = index.match(plate, confidences, row["lat"], row["lon"], row["confirmed_at"], rules)
    if match is not None:
        final, distance, gap = match
        read = "same plate" if final.plate == plate else \
            f"plate {final.plate} (read {plate}, one unsure character)"
        return Decision(row["id"], "duplicate", f"{read} {distance:.1f} m and {gap:.0f} s away",
                        final)
    new = Candidate(plate, confidences, row["lat"], row["lon"], row["confirmed_at"],
                    temporary_id=row["id"])
    index.add(new)
    return Decision(row["id"], "final", None, new)


def decide_batch(rows: Sequence[Mapping[str, Any]], finals: Iterable[Candidate],
                 limits: CloudLimits) -> list[Decision]:
    """Decide every row, earlier violations first (so within a batch the earlier one wins).

    A duplicate's reason says how it matched; the final's id is added when it is known.
    """
    index = FinalIndex.of(finals)
    decisions = []
    for row in sorted(rows, key=lambda r: (r["confirmed_at"] or datetime.min, r["id"])):
        try:
            decisions.append(_decide_row(row, index, limits))
        except ROW_ERRORS as exc:
            log.exception("pending row %s cannot be checked; rejected", row.get("id"))
            decisions.append(Decision(row["id"], "rejected", (
                f"the promoter could not check this report: {type(exc).__name__}: "
                f"{exc}")[:MAX_REASON]))
    return decisions


def search_window(rows: Iterable[Mapping[str, Any]], limits: CloudLimits
                  ) -> tuple[datetime, datetime] | None:
    """The confirmed_at range of `final` the batch's duplicate look-up must read."""
    times = [r["confirmed_at"] for r in rows if r.get("confirmed_at") is not None]
    if not times:
        return None
    widest = max((rules_for(r.get("rules"), limits)[0].dedup_window_s for r in rows),
                 default=DEFAULT_RULES.dedup_window_s)
    window = timedelta(seconds=min(widest, 366 * 86_400.0))
    try:
        return min(times) - window, max(times) + window
    except OverflowError:  # times at the ends of the calendar: read everything there is
        return DATETIME_MIN, DATETIME_MAX
