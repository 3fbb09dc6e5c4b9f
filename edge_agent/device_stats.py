"""Counters of a running device, as the MQTT heartbeat carries them.

Why a separate, lock-guarded object: the capture, upload and maintenance workers update it
from their own threads, and the telemetry heartbeat thread reads it. Reading never touches
SQLite (the outbox depth is the value the workers last saw), so a heartbeat can never block
on, or interleave with, a store transaction.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

LATENCY_WINDOW = 100  # photos whose timings make up the median
LATENCY_STAGES = ("total", "vehicle", "plate_locate", "plate_read")
COUNTERS = ("photos_processed", "photos_failed", "sightings", "candidates", "confirmed",
            "duplicates", "unmatched", "expired", "uploaded", "upload_failures")


class DeviceStats:
    """Thread-safe counters, the last outbox depth, and a window of pipeline timings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._latency: dict[str, deque[float]] = {
            stage: deque(maxlen=LATENCY_WINDOW) for stage in LATENCY_STAGES}
        self._outbox_depth: int | None = None
        self._last_error: str | None = None
        self._breaker = "closed"

    def add(self, counter: str, n: int = 1) -> None:
        if counter not in self._counts:
            raise KeyError(f"unknown counter {counter!r}; one of {', '.join(COUNTERS)}")
        with self._lock:
            self._counts[counter] += n

    def count(self, counter: str) -> int:
        with self._lock:
            return self._counts[counter]

    def timings(self, timings_ms: Mapping[str, float]) -> None:
        """Record one photo's pipeline timings (PhotoResult.timings_ms)."""
        with self._lock:
            for stage, window in self._latency.items():
                if stage in timings_ms:
                    window.append(float(timings_ms[stage]))

    def outbox(self, depth: int, breaker: str | None = None) -> None:
        with self._lock:
            self._outbox_depth = depth
            if breaker is not None:
                self._breaker = breaker

    def error(self, message: str | None) -> None:
        with self._lock:
            self._last_error = message

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat body: counters, outbox depth, median latency per stage (ms)."""
        with self._lock:
            latency = {stage: round(statistics.median(window), 1)
                       for stage, window in self._latency.items() if window}
            return {**self._counts, "outbox_depth": self._outbox_depth,
                    "upload_breaker": self._breaker,
                    "model_latency_ms": {"median": latency,
                                         "photos": len(self._latency["total"])},
                    "last_error": self._last_error}
