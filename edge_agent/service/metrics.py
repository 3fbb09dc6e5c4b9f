"""The service's counters in the Prometheus text format (GET /metrics), without a client library.

Three families are enough to see load and trouble: requests by route and status, latency
histograms (per route, and per pipeline stage), and how many requests are in flight now.
Routes are the service's own paths, anything else counts as ``other``, so a scanner probing
random paths cannot grow the label set.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative-bucket histogram of seconds (Prometheus semantics)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.total += seconds

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*BUCKETS_S, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {running}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe: the event loop and the worker threads both record."""

    def __init__(self, routes: tuple[str, ...]) -> None:
        self.routes = routes
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, Histogram] = defaultdict(Histogram)
        self._stages: dict[str, Histogram] = defaultdict(Histogram)
        self._in_flight = 0
        self._rejected: dict[str, int] = defaultdict(int)

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, method: str, path: str, status: int, seconds: float) -> None:
        route = self.route(path)
        with self._lock:
            self._in_flight -= 1
            self._requests[(route, method, status)] += 1
            self._latency[route].observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._stages[name].observe(seconds)

    def shed(self, reason: str) -> None:
        """A request refused before the work (overload, body too large or too slow)."""
        with self._lock:
            self._rejected[reason] += 1

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP gotcha_http_requests_total Requests answered, by route and status.",
                     "# TYPE gotcha_http_requests_total counter"]
            for (route, method, status), count in sorted(self._requests.items()):
                lines.append(f'gotcha_http_requests_total{{route="{_escape(route)}",'
                             f'method="{_escape(method)}",status="{status}"}} {count}')
            lines += ["# HELP gotcha_http_request_seconds Request latency, by route.",
                      "# TYPE gotcha_http_request_seconds histogram"]
            for route, hist in sorted(self._latency.items()):
                lines += hist.lines("gotcha_http_request_seconds", f'route="{_escape(route)}"')
            lines += ["# HELP gotcha_stage_seconds Time in each stage of processing a photo.",
                      "# TYPE gotcha_stage_seconds histogram"]
            for stage, hist in sorted(self._stages.items()):
                lines += hist.lines("gotcha_stage_seconds", f'stage="{_escape(stage)}"')
            lines += ["# HELP gotcha_http_in_flight Requests being handled now.",
                      "# TYPE gotcha_http_in_flight gauge",
                      f"gotcha_http_in_flight {self._in_flight}",
                      "# HELP gotcha_http_shed_total Requests refused before any work, by "
                      "reason.", "# TYPE gotcha_http_shed_total counter"]
            for reason, count in sorted(self._rejected.items()):
                lines.append(f'gotcha_http_shed_total{{reason="{_escape(reason)}"}} {count}')
        return "\n".join(lines) + "\n"
