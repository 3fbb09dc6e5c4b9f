"""Waiting for MQTT messages in tests: the one loop both telemetry test files use."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any


def next_matching(messages: queue.Queue[Any], match: Callable[[Any], bool],
                  timeout_s: float) -> Any | None:
    """The first message from ``messages`` that ``match`` accepts within ``timeout_s``
    (others are dropped), or None."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = messages.get(timeout=left)
        except queue.Empty:
            return None
        if match(msg):
            return msg
    return None
