"""MQTT telemetry against real Mosquitto brokers: the shared one on 1883, and private ones this
test starts and kills to play a broker that is down, comes up late, or refuses the device."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import free_port, need, port_open
from mqtt_helpers import next_matching
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import DeviceConfig, GotchaConfig, MqttConfig
from edge_agent.telemetry.base import NullTelemetry, Telemetry, make_telemetry
from edge_agent.telemetry.mqtt import MqttTelemetry


class Listener:
    """A plain MQTT subscriber that records what arrives."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"listener-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect(host, port, keepalive=10)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5), "listener could not subscribe"

    def wait_for(self, match: Callable[[mqtt.MQTTMessage], bool],
                 timeout_s: float = 10.0) -> mqtt.MQTTMessage:
        msg = next_matching(self.messages, match, timeout_s)
        if msg is None:
            raise AssertionError("expected MQTT message did not arrive")
        return msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def body(msg: mqtt.MQTTMessage) -> dict[str, Any]:
    return json.loads(msg.payload) if msg.payload else {}


def is_status(state: str, retained: bool | None = None) -> Callable[[mqtt.MQTTMessage], bool]:
    def match(msg: mqtt.MQTTMessage) -> bool:
        return (msg.topic.endswith("/status") and body(msg).get("state") == state
                and (retained is None or msg.retain == retained))
    return match


def make_config(port: int, **mqtt_fields: Any) -> GotchaConfig:
    """The shared anonymous test broker: commands trusted as if an ACL guarded them, plates
    in clear (test_mqtt_security.py tests the signed commands and hashed plates)."""
    device_id = f"test-{uuid.uuid4().hex[:10]}"
    fields = {"enabled": True, "port": port, "keepalive_s": 5, "reconnect_max_s": 1.0,
              "commands_trusted_by_acl": True, "event_plates": "clear", **mqtt_fields}
    return GotchaConfig(device=DeviceConfig(id=device_id), mqtt=MqttConfig(**fields))


def forget_device(host: str, port: int, device_id: str) -> None:
    """Clear the retained status and the persistent session a test left on the shared broker."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gotcha-{device_id}",
                         clean_session=True)
    client.connect(host, port)
    client.loop_start()
    client.publish(f"gotcha/{device_id}/status", b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture()
def telemetry_factory(mqtt_broker: tuple[str, int]) -> Iterator[Callable[..., MqttTelemetry]]:
    made: list[MqttTelemetry] = []

    def build(**kwargs: Any) -> MqttTelemetry:
        host, port = mqtt_broker
        config = make_config(port, host=host)
        item = MqttTelemetry(config, **kwargs)
        made.append(item)
        return item

    yield build
    for item in made:
        item.stop()
        forget_device(*mqtt_broker, item.device_id)


@pytest.fixture()
def private_broker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start extra mosquitto processes on chosen ports; all are killed afterwards."""
    need(shutil.which("mosquitto") is not None, "mosquitto binary is not installed")
    started: list[subprocess.Popen] = []

    def start(port: int, allow_anonymous: bool = True) -> subprocess.Popen:
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\n"
                        f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
                        "persistence false\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None, "mosquitto exited at start"
            time.sleep(0.05)
        assert port_open("127.0.0.1", port), "mosquitto did not start listening"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_status_is_retained_online_then_offline_after_stop(
        telemetry_factory: Callable[..., MqttTelemetry], mqtt_broker: tuple[str, int]) -> None:
    telemetry = telemetry_factory()
    early = Listener(*mqtt_broker, telemetry.topics["status"])
    telemetry.start()
    assert telemetry.wait_connected(10)
    early.wait_for(is_status("online"))  # the broker has it now
    early.close()
    late = Listener(*mqtt_broker, telemetry.topics["status"])  # joins after the fact
    try:
        msg = late.wait_for(is_status("online", retained=True))
        assert body(msg)["device_id"] == telemetry.device_id
    finally:
        late.close()
    telemetry.stop()
    assert not telemetry.connected
    later = Listener(*mqtt_broker, telemetry.topics["status"])
    try:
        assert body(later.wait_for(is_status("offline", retained=True)))["reason"] == "stopped"
    finally:
        later.close()


def test_last_will_on_unclean_disconnect_then_reconnect_delivers_queued_event(
        telemetry_factory: Callable[..., MqttTelemetry], mqtt_broker: tuple[str, int]) -> None:
    telemetry = telemetry_factory()
    telemetry.start()
    assert telemetry.wait_connected(10)
    listener = Listener(*mqtt_broker, f"gotcha/{telemetry.device_id}/#")
    try:
        listener.wait_for(is_status("online"))
        telemetry._client.socket().shutdown(socket.SHUT_RDWR)  # the link dies, no DISCONNECT
        assert telemetry.publish_event("report_confirmed", {"plate": "12가3456"})
        will = listener.wait_for(is_status("offline"))
        assert body(will)["reason"] == "connection lost"
        listener.wait_for(is_status("online"))  # reconnected by itself
        event = listener.wait_for(lambda m: m.topic.endswith("/events"))
        assert body(event)["type"] == "report_confirmed"
        assert body(event)["plate"] == "12가3456"
        deadline = time.monotonic() + 5
        while not telemetry.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert telemetry.connected
    finally:
        listener.close()


def test_events_and_heartbeats_reach_a_subscriber(
        telemetry_factory: Callable[..., MqttTelemetry], mqtt_broker: tuple[str, int]) -> None:
    stats = {"counters": {"photos": 12, "reports_confirmed": 2}, "queue_depth": 3,
             "model_latency_ms": {"vehicle": 41.5, "plate": 9.0}}
    telemetry = telemetry_factory(stats=lambda: stats)
    listener = Listener(*mqtt_broker, f"gotcha/{telemetry.device_id}/+")
    try:
        telemetry.start()
        assert telemetry.wait_connected(10)
        assert telemetry.publish_event("candidate_created", {"report_id": "r-1", "zone": "hydrant"})
        event = body(listener.wait_for(lambda m: m.topic.endswith("/events")))
        assert (event["type"], event["report_id"], event["zone"]) == ("candidate_created", "r-1",
                                                                      "hydrant")
        assert event["device_id"] == telemetry.device_id and event["at"].endswith("Z")
        assert telemetry.publish_heartbeat()
        beat = body(listener.wait_for(lambda m: m.topic.endswith("/heartbeat")))
        assert beat["queue_depth"] == 3 and beat["counters"]["photos"] == 12
        assert beat["model_latency_ms"]["vehicle"] == 41.5 and beat["uptime_s"] >= 0
    finally:
        listener.close()


def test_heartbeat_thread_publishes_on_its_period(mqtt_broker: tuple[str, int]) -> None:
    config = make_config(mqtt_broker[1], host=mqtt_broker[0], heartbeat_s=0.2)
    telemetry = MqttTelemetry(config, stats=lambda: {"queue_depth": 0})
    listener = Listener(*mqtt_broker, telemetry.topics["heartbeat"])
    try:
        telemetry.start()
        assert telemetry.wait_connected(10)
        for _ in range(3):
            listener.wait_for(lambda m: body(m).get("queue_depth") == 0, timeout_s=5)
        assert [t.name for t in threading.enumerate() if t.name == "gotcha-mqtt-heartbeat"]
    finally:
        listener.close()
        telemetry.stop()
        forget_device(*mqtt_broker, telemetry.device_id)
    assert not [t for t in threading.enumerate() if t.name.startswith("gotcha-mqtt")]


def test_commands_invoke_callbacks(telemetry_factory: Callable[..., MqttTelemetry],
                                   mqtt_broker: tuple[str, int]) -> None:
    calls: queue.Queue[tuple[str, dict]] = queue.Queue()

    def sync_now(args: dict) -> None:
        calls.put(("sync_now", dict(args)))

    def reload_config(args: dict) -> None:
        raise RuntimeError("gotcha.toml: bad value for 'mqtt.port'")

    telemetry = telemetry_factory(commands={"sync_now": sync_now, "reload_config": reload_config})
    telemetry.start()
    assert telemetry.wait_connected(10)
    listener = Listener(*mqtt_broker, telemetry.topics["events"])
    sender = Listener(*mqtt_broker, "unused/#")
    try:
        topic = telemetry.topics["commands"]
        sender.client.publish(topic, json.dumps({"command": "sync_now", "reason": "ops"}), qos=1)
        assert calls.get(timeout=10) == ("sync_now", {"command": "sync_now", "reason": "ops"})
        assert body(listener.wait_for(lambda m: body(m)["type"] == "command_done"))[
            "command"] == "sync_now"
        sender.client.publish(topic, "sync", qos=1)  # bare alias
        assert calls.get(timeout=10)[0] == "sync_now"
        sender.client.publish(topic, "reload", qos=1)  # handler fails: reported, loop goes on
        failed = body(listener.wait_for(lambda m: body(m)["type"] == "command_failed"))
        assert failed["command"] == "reload_config" and "mqtt.port" in failed["error"]
        sender.client.publish(topic, "self_destruct", qos=1)
        rejected = body(listener.wait_for(lambda m: body(m)["type"] == "command_rejected"))
        assert rejected["command"] == "self_destruct"
        sender.client.publish(topic, json.dumps([1, 2]), qos=1)
        listener.wait_for(lambda m: body(m).get("reason") == "payload is not a command")
        sender.client.publish(topic, "sync_now", qos=1)
        assert calls.get(timeout=10)[0] == "sync_now"
    finally:
        listener.close()
        sender.close()


def test_dead_broker_does_not_block_and_connects_when_it_comes_up(
        private_broker: Callable[..., subprocess.Popen]) -> None:
    port = free_port()
    telemetry = MqttTelemetry(make_config(port))
    try:
        began = time.monotonic()
        telemetry.start()
        assert telemetry.publish_event("sighting", {"n": 1})  # queued for later
        assert not telemetry.publish_heartbeat()  # a stale heartbeat is not queued
        assert time.monotonic() - began < 2, "start/publish blocked on a dead broker"
        time.sleep(1.5)
        assert not telemetry.connected
        broker = private_broker(port)
        assert telemetry.wait_connected(15), "did not reconnect once the broker came up"
        listener = Listener("127.0.0.1", port, telemetry.topics["status"])
        try:  # retained, or live if the listener beat the status to the broker
            listener.wait_for(is_status("online"))
        finally:
            listener.close()
        broker.kill()
        broker.wait(timeout=10)
        deadline = time.monotonic() + 15
        while telemetry.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not telemetry.connected, "still claims to be connected to a dead broker"
    finally:
        began = time.monotonic()
        telemetry.stop()
        assert time.monotonic() - began < 5


def test_refused_connection_is_never_reported_as_connected(
        private_broker: Callable[..., subprocess.Popen]) -> None:
    port = free_port()
    private_broker(port, allow_anonymous=False)
    telemetry = MqttTelemetry(make_config(port))
    try:
        telemetry.start()
        assert not telemetry.wait_connected(3)
        assert not telemetry.connected
    finally:
        telemetry.stop()


def test_null_telemetry_and_factory() -> None:
    off = make_telemetry(GotchaConfig())
    assert isinstance(off, NullTelemetry) and isinstance(off, Telemetry)
    with off:
        assert not off.connected
        assert off.publish_event("report_confirmed", {"plate": "12가3456"}) is False
        assert off.publish_heartbeat({"queue_depth": 1}) is False
    on = make_telemetry(make_config(free_port()))
    assert isinstance(on, MqttTelemetry) and isinstance(on, Telemetry)
    assert not on.connected  # built, not started


def test_restart_after_stop(telemetry_factory: Callable[..., MqttTelemetry],
                            mqtt_broker: tuple[str, int]) -> None:
    calls: queue.Queue[str] = queue.Queue()
    telemetry = telemetry_factory(commands={"sync_now": lambda args: calls.put(args["command"])})
    telemetry.start()
    assert telemetry.wait_connected(10)
    telemetry.stop()
    telemetry.start()
    assert telemetry.wait_connected(10)
    sender = Listener(*mqtt_broker, "unused/#")
    try:
        sender.client.publish(telemetry.topics["commands"], "sync_now", qos=1)
        assert calls.get(timeout=10) == "sync_now"
    finally:
        sender.close()
