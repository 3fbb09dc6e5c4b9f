"""MQTT telemetry (paho-mqtt 2.x): retained status with a last will, events, heartbeats, and
commands from the fleet.

Topics, QoS 1 throughout:
  gotcha/{device_id}/status     retained; "online" on connect, last will "offline"
  gotcha/{device_id}/events     report state changes (JSON)
  gotcha/{device_id}/heartbeat  counters, queue depth, model latency (JSON)
  gotcha/{device_id}/commands   subscribed: sync_now, reload_config

Security (README, "MQTT commands"): TLS with the broker's CA and, for brokers that
authenticate devices by certificate (AWS IoT Core), a client certificate and key. A command is
obeyed only when signed with the fleet's command key (``command_auth``), or unsigned when the
configuration says the broker's ACL already restricts the command topic. Events name plates by
a salted hash unless ``mqtt.event_plates = "clear"``.

Why it is built this way: the broker is optional and often unreachable from a patrol car, so
nothing here may block or fail the agent. paho's own network thread connects in the background
and reconnects with backoff; events published while offline wait in paho's bounded queue and
go out after the reconnect. ``connected`` is set only by a successful CONNACK and cleared on any
disconnect, so the device never claims a connection it does not have. Command handlers run on
their own named thread, so a slow "sync now" never stalls the network loop.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_agent.config import GotchaConfig, MqttConfig
from edge_agent.errors import ConfigError
from edge_agent.printable import printable
from edge_agent.telemetry.base import (
    COMMAND_ALIASES,
    CommandHandler,
    StatsProvider,
    topic,
)
from edge_agent.telemetry.command_auth import CommandRejected, CommandVerifier, mask_plates

log = logging.getLogger(__name__)
MAX_COMMAND_BYTES = 4096  # a command is a few hundred bytes; more is refused unread
QOS = 1
REJECTION_EVENT_EVERY_S = 10.0  # at most one command_rejected event this often (a flood)
_SIGNING_FIELDS = ("ts", "nonce", "sig")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _path(value: object) -> str | None:
    return None if value is None else str(value)


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def secure_client(client: mqtt.Client, settings: MqttConfig) -> None:
    """The broker login and TLS files of ``settings`` on ``client`` (telemetry and `gotcha
    doctor` connect the same way); unreadable TLS files are a ConfigError."""
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        try:
            client.tls_set(ca_certs=_path(settings.ca_file), certfile=_path(settings.cert_file),
                           keyfile=_path(settings.key_file))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"mqtt TLS files cannot be loaded ({exc}); check "
                              "mqtt.ca_file, mqtt.cert_file and mqtt.key_file") from exc


class MqttTelemetry:
    """Telemetry over MQTT. ``start()`` returns at once; the connection comes when it can."""

    def __init__(self, config: GotchaConfig, commands: Mapping[str, CommandHandler] | None = None,
                 stats: StatsProvider | None = None) -> None:
        self.device_id = config.device.id
        self._settings = config.mqtt
        self._commands = dict(commands or {})
        self._stats = stats
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._inbox: queue.Queue[Mapping[str, Any] | None] = queue.Queue(maxsize=100)
        self._threads: list[threading.Thread] = []
        self._started_at = time.monotonic()
        self.topics = {leaf: topic(self.device_id, leaf)
                       for leaf in ("status", "events", "heartbeat", "commands")}
        settings = config.mqtt
        self._verifier = (CommandVerifier(settings.command_key, self.topics["commands"],
                                          settings.command_window_s)
                          if settings.command_key else None)
        self._last_rejection_event = float("-inf")
        self._rejected = 0
        self._client = self._make_client()

    # --- lifecycle ------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        settings = self._settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gotcha-{self.device_id}",
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.enable_logger(logging.getLogger("paho.mqtt"))
        secure_client(client, settings)
        client.will_set(self.topics["status"], _json({"state": "offline",
                                                      "device_id": self.device_id,
                                                      "reason": "connection lost"}),
                        qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(settings.reconnect_max_s)))
        client.max_queued_messages_set(settings.max_queued)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Begin connecting in the background; never blocks, never raises on a dead broker."""
        if self._threads:
            return
        self._stop.clear()
        self._inbox = queue.Queue(maxsize=100)  # a fresh one: a restart must not see stop's None
        self._client.connect_async(self._settings.host, self._settings.port,
                                   keepalive=self._settings.keepalive_s)
        self._client.loop_start()
        settings = self._settings
        if not settings.command_key and not settings.commands_trusted_by_acl:
            log.warning("telemetry: commands are ignored: set GOTCHA_MQTT__COMMAND_KEY, or "
                        "mqtt.commands_trusted_by_acl when the broker's ACL guards the topic")
        if settings.event_plates == "hash" and not settings.plate_salt:
            log.warning("telemetry: events carry no plate (no GOTCHA_MQTT__PLATE_SALT to hash "
                        "it with)")
        for name, target in (("gotcha-mqtt-commands", self._run_commands),
                             ("gotcha-mqtt-heartbeat", self._run_heartbeat)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("telemetry: connecting to %s:%s as %s", self._settings.host,
                 self._settings.port, self.device_id)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Say goodbye (retained offline status) if connected, then close everything."""
        if self._connected.is_set():
            info = self._client.publish(self.topics["status"],
                                        _json({"state": "offline", "device_id": self.device_id,
                                               "reason": "stopped", "at": _now()}),
                                        qos=QOS, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):
                log.warning("telemetry: offline status not confirmed before disconnect")
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._inbox.put(None)
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def __enter__(self) -> MqttTelemetry:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for a broker connection; for tools and tests."""
        return self._connected.wait(timeout_s)

    # --- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._connected.clear()
            log.warning("telemetry: broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.topics["commands"], qos=QOS)
        client.publish(self.topics["status"],
                       _json({"state": "online", "device_id": self.device_id, "at": _now()}),
                       qos=QOS, retain=True)
        self._connected.set()
        log.info("telemetry: connected to %s:%s", self._settings.host, self._settings.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stop.is_set():
            log.warning("telemetry: disconnected (%s); reconnecting in the background",
                        reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        command = self._parse_command(message.payload)
        try:
            if command is None:
                raise CommandRejected("payload is not a command")
            self._authorise(command)
        except CommandRejected as exc:
            self._reject(str(exc), None if command is None else command["command"])
            return
        name = command["command"].strip()
        args = {k: v for k, v in command.items() if k not in _SIGNING_FIELDS}
        try:
            self._inbox.put_nowait({**args, "command": COMMAND_ALIASES.get(name, name)})
        except queue.Full:
            log.warning("telemetry: command %s dropped, too many pending", command["command"])

    def _authorise(self, command: Mapping[str, Any]) -> None:
        """Signed with the command key, or unsigned on a topic the broker's ACL guards."""
        if self._verifier is not None:
            self._verifier.verify(command)
        elif not self._settings.commands_trusted_by_acl:
            raise CommandRejected("commands are disabled on this device (no command key)")

    def _reject(self, reason: str, name: str | None) -> None:
        """Log and publish a refused command, at most once per REJECTION_EVENT_EVERY_S (a
        flood of forged commands must not flood the log or the broker)."""
        self._rejected += 1
        now = time.monotonic()
        if now - self._last_rejection_event < REJECTION_EVENT_EVERY_S:
            return
        self._last_rejection_event = now
        shown = None if name is None else printable(name)[:64]
        log.warning("telemetry: command %s ignored: %s (%d ignored so far)", shown or "(none)",
                    reason, self._rejected)
        self.publish_event("command_rejected", {"reason": reason, "command": shown,
                                                "ignored_total": self._rejected})

    @staticmethod
    def _parse_command(payload: bytes) -> dict[str, Any] | None:
        """``{"command": "sync_now", ...}`` or a bare ``sync_now``, as sent (it is what the
        signature covers); the alias is resolved once the command is authorised."""
        if len(payload) > MAX_COMMAND_BYTES:
            return None
        text = payload.decode("utf-8", "replace").strip()
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = {"command": text}
        except (ValueError, RecursionError):  # a 5000-digit number, nesting 100 000 deep
            return None
        if isinstance(body, str):
            body = {"command": body}
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            return None
        if not body["command"].strip():
            return None
        return body

    # --- worker threads ------------------------------------------------------------------------

    def _run_commands(self) -> None:
        while not self._stop.is_set():
            command = self._inbox.get()
            if command is None:
                return
            name = command["command"]
            handler = self._commands.get(name)
            if handler is None:
                log.warning("telemetry: unknown command %r", name)
                self.publish_event("command_rejected", {"command": name,
                                                        "reason": "unknown command"})
                continue
            try:
                handler(command)
            except Exception as exc:  # a failing handler is reported, and the loop goes on
                log.exception("telemetry: command %s failed", name)
                self.publish_event("command_failed", {"command": name, "error": str(exc)})
            else:
                self.publish_event("command_done", {"command": name})

    def _run_heartbeat(self) -> None:
        while not self._stop.wait(self._settings.heartbeat_s):
            self.publish_heartbeat()

    # --- publishing ----------------------------------------------------------------------------

    def publish_event(self, kind: str, data: Mapping[str, Any] | None = None) -> bool:
        """Queue an event; it is sent now or after the next reconnect. False if dropped."""
        fields = mask_plates(data or {}, self._settings.event_plates, self._settings.plate_salt)
        body = {"type": kind, "device_id": self.device_id, "at": _now(), **fields}
        return self._publish("events", body)

    def publish_heartbeat(self, stats: Mapping[str, Any] | None = None) -> bool:
        """Publish a heartbeat now (``stats``, else the stats provider); only when connected."""
        if not self._connected.is_set():
            return False
        if stats is None and self._stats is not None:
            try:
                stats = self._stats()
            except Exception:  # telemetry must never take the agent down; the log says why
                log.exception("telemetry: stats provider failed")
                stats = {"stats_error": True}
        body = {"device_id": self.device_id, "at": _now(),
                "uptime_s": round(time.monotonic() - self._started_at, 1), **(stats or {})}
        return self._publish("heartbeat", body)

    def _publish(self, leaf: str, body: Mapping[str, Any]) -> bool:
        info = self._client.publish(self.topics[leaf], _json(body), qos=QOS)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            log.warning("telemetry: %s message dropped, offline queue is full", leaf)
            return False
        return info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)
