"""How `gotcha run` is set up, reloaded and counted: its settings, the reload plan, the
device statistics (no photos, no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import GotchaConfig
from edge_agent.errors import ConfigError
from edge_agent.reload import plan_reload
from edge_agent.run_settings import RunnerSettings


@pytest.mark.parametrize("settings, message", [
    ({}, "exactly one"),
    ({"watch_dir": Path("a"), "camera": 0}, "exactly one"),
    ({"watch_dir": Path("a"), "upload_every_s": 0}, "upload_every_s"),
    ({"camera": "rtsp://cam/1", "frame_interval_s": -1}, "frame_interval_s"),
])
def test_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunnerSettings(**settings)


def test_reload_plan_splits_runtime_changes_from_restart_ones() -> None:
    running = GotchaConfig()
    new = running.model_copy(deep=True)
    new.rules.min_interval_s = {"hydrant": 90.0}
    new.upload.backoff_max_s = 10.0
    new.device.zone = "hydrant"
    new.models.plate_reader = "ppocrv4-rec"
    new.mqtt.port = 1884
    plan = plan_reload(running, new)
    assert plan.applied == ("device.zone", "rules.min_interval_s", "upload.backoff_max_s")
    assert plan.needs_restart == ("models.plate_reader", "mqtt.port")
    assert plan_reload(running, running.model_copy(deep=True)).to_dict() == {
        "applied": [], "needs_restart": []}


def test_device_stats_median_latency_and_counters() -> None:
    from edge_agent.device_stats import LATENCY_WINDOW, DeviceStats

    stats = DeviceStats()
    assert stats.snapshot()["model_latency_ms"] == {"median": {}, "photos": 0}
    for total in (10.0, 30.0, 20.0):
        stats.timings({"total": total, "vehicle": total / 2, "decode": 1.0})
    stats.add("confirmed")
    stats.outbox(3, "open")
    snap = stats.snapshot()
    assert snap["model_latency_ms"]["median"] == {"total": 20.0, "vehicle": 10.0}
    assert snap["confirmed"] == 1 and snap["outbox_depth"] == 3
    assert snap["upload_breaker"] == "open"
    for _ in range(LATENCY_WINDOW):
        stats.timings({"total": 5.0})
    assert stats.snapshot()["model_latency_ms"]["median"]["total"] == 5.0  # a moving window
    with pytest.raises(KeyError, match="unknown counter"):
        stats.add("photos")
