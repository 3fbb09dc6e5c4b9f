"""The telemetry seam: one small interface, a do-nothing implementation, and the factory.

Why a null implementation rather than ``if telemetry:`` checks everywhere: most devices run
without a broker (mqtt.enabled = false), and the agent's code should read the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from edge_agent.config import GotchaConfig

CommandHandler = Callable[[Mapping[str, Any]], None]
"""Called with the command's JSON arguments, e.g. ``{"command": "sync_now"}``."""
StatsProvider = Callable[[], Mapping[str, Any]]
"""Returns the heartbeat body: counters, queue depth, model latency (JSON-ready values)."""

COMMANDS = ("sync_now", "reload_config")
"""Commands the device understands on ``gotcha/{device_id}/commands``."""
COMMAND_ALIASES = {"sync": "sync_now", "reload": "reload_config"}


def topic(device_id: str, leaf: str) -> str:
    """``gotcha/{device_id}/{leaf}`` for leaf in status, events, heartbeat, commands."""
    return f"gotcha/{device_id}/{leaf}"


@runtime_checkable
class Telemetry(Protocol):
    """What the agent needs from telemetry. Publishing never blocks and never raises."""

    @property
    def connected(self) -> bool:
        """True only while a broker has accepted the connection (CONNACK success)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def publish_event(self, kind: str, data: Mapping[str, Any] | None = None) -> bool:
        """Report a state change (e.g. ``report_confirmed``); False if it was dropped."""
        ...

    def publish_heartbeat(self, stats: Mapping[str, Any] | None = None) -> bool:
        """Publish counters now; False when not connected (a stale heartbeat is useless)."""
        ...


class NullTelemetry:
    """Telemetry switched off: accepts everything, sends nothing, is never connected."""

    def __init__(self, config: GotchaConfig | None = None,
                 commands: Mapping[str, CommandHandler] | None = None,
                 stats: StatsProvider | None = None) -> None:
        self.events: int = 0  # how many events were offered, for tests and `status` output

    @property
    def connected(self) -> bool:
        return False

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def publish_event(self, kind: str, data: Mapping[str, Any] | None = None) -> bool:
        self.events += 1
        return False

    def publish_heartbeat(self, stats: Mapping[str, Any] | None = None) -> bool:
        return False

    def __enter__(self) -> NullTelemetry:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def make_telemetry(config: GotchaConfig, commands: Mapping[str, CommandHandler] | None = None,
                   stats: StatsProvider | None = None) -> Telemetry:
    """MQTT telemetry when ``mqtt.enabled``, else the null one. Not started yet."""
    if not config.mqtt.enabled:
        return NullTelemetry(config, commands, stats)
    from edge_agent.telemetry.mqtt import MqttTelemetry

    return MqttTelemetry(config, commands, stats)
