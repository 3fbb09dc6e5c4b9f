"""MQTT as an attacker on the broker sees it, against a real Mosquitto started here: a TLS
listener on a free loopback port with a CA, server and client certificates made by the test
(the AWS IoT Core way: devices known by their certificate). Unsigned, forged, replayed and
expired commands are ignored and signed ones obeyed; with the broker's ACL guarding the
command topic, unsigned commands from the operator are obeyed and nobody else's arrive;
events name plates by a salted hash."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import queue
import shutil
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mqtt_helpers import next_matching
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import DeviceConfig, GotchaConfig, MqttConfig
from edge_agent.errors import ConfigError
from edge_agent.telemetry.command_auth import CommandVerifier, plate_hash, sign_command
from edge_agent.telemetry.mqtt import MqttTelemetry

KEY = "k" * 8 + uuid.uuid4().hex  # the fleet's command key
SALT = "salt-" + uuid.uuid4().hex
DEVICE = "dev-sec"
COMMANDS = f"gotcha/{DEVICE}/commands"
ACL = """\
# devices: the certificate's CN is the MQTT user and the device id
pattern write gotcha/%u/status
pattern write gotcha/%u/events
pattern write gotcha/%u/heartbeat
pattern read gotcha/%u/commands
# the fleet operator alone commands devices
user fleet-operator
topic write gotcha/+/commands
topic read gotcha/#
"""


# --- certificates --------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _issue(folder: Path, cn: str, ca_key: ec.EllipticCurvePrivateKey | None,
           ca_name: x509.Name | None, server: bool = False) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(ca_name or _name(cn)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if ca_key is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                        critical=True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                        critical=True)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(ca_key or key, hashes.SHA256())
    (folder / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(folder / f"{cn}.key", key)
    return key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server (localhost, 127.0.0.1) and client certificates: the device, the fleet
    operator, and an intruder who holds a valid certificate of the same CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _issue(folder, "ca", None, None)
    for cn, server in (("server", True), (DEVICE, False), ("fleet-operator", False),
                       ("intruder", False)):
        _issue(folder, cn, ca_key, _name("ca"), server)
    return folder


@pytest.fixture()
def tls_broker(pki: Path, tmp_path: Path) -> Iterator[Callable[[bool], int]]:
    """Start Mosquitto with a client-certificate TLS listener (and the ACL if asked)."""
    need(shutil.which("mosquitto") is not None, "mosquitto binary is not installed")
    started: list[subprocess.Popen] = []

    def start(with_acl: bool) -> int:
        port = free_port()
        lines = ["per_listener_settings false", "allow_anonymous false", "persistence false",
                 f"listener {port} 127.0.0.1", f"cafile {pki / 'ca.pem'}",
                 f"certfile {pki / 'server.pem'}", f"keyfile {pki / 'server.key'}",
                 "require_certificate true", "use_identity_as_username true"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # else it drops to 'mosquitto' and cannot read pki/
        if with_acl:
            (tmp_path / "acl").write_text(ACL)
            lines.append(f"acl_file {tmp_path / 'acl'}")
        conf = tmp_path / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        started.append(proc)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        assert port_open("127.0.0.1", port), "mosquitto did not start listening"
        return port

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


class Client:
    """A TLS MQTT client with one of the test's certificates (or none)."""

    def __init__(self, pki: Path, port: int, cn: str | None, subscribe: str | None = None
                 ) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"{cn}-{uuid.uuid4().hex[:6]}")
        self.client.tls_set(ca_certs=str(pki / "ca.pem"),
                            certfile=str(pki / f"{cn}.pem") if cn else None,
                            keyfile=str(pki / f"{cn}.key") if cn else None)
        subscribed = threading.Event()

        def on_connect(client: mqtt.Client, *args: Any) -> None:
            if not args[2].is_failure:
                self.connected.set()
                if subscribe:
                    client.subscribe(subscribe, qos=1)
                else:
                    subscribed.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        try:
            self.client.connect("127.0.0.1", port, keepalive=10)
        except OSError:
            return  # the TLS handshake was refused
        self.client.loop_start()
        if cn:
            assert subscribed.wait(10), f"{cn} could not connect and subscribe"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_for(self, leaf: str, match: Callable[[dict[str, Any]], bool],
                 timeout_s: float = 10.0) -> dict[str, Any]:
        def wanted(msg: mqtt.MQTTMessage) -> bool:
            return msg.topic.endswith("/" + leaf) and match(_body(msg))

        msg = next_matching(self.messages, wanted, timeout_s)
        if msg is None:
            raise AssertionError(f"no matching {leaf} message arrived")
        return _body(msg)

    def wait_event(self, kind: str, timeout_s: float = 10.0) -> dict[str, Any]:
        return self.wait_for("events", lambda b: b.get("type") == kind, timeout_s)

    def wait_online(self) -> None:
        """The device publishes "online" after subscribing to its commands, on the same
        connection, so once it arrives here the device hears its commands."""
        self.wait_for("status", lambda b: b.get("state") == "online", 15)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_config(pki: Path, port: int, **mqtt_fields: Any) -> GotchaConfig:
    return GotchaConfig(device=DeviceConfig(id=DEVICE), mqtt=MqttConfig(
        enabled=True, host="127.0.0.1", port=port, tls=True, ca_file=pki / "ca.pem",
        cert_file=pki / f"{DEVICE}.pem", key_file=pki / f"{DEVICE}.key", keepalive_s=5,
        reconnect_max_s=1.0, **mqtt_fields))


def _recorder() -> tuple[queue.Queue[str], dict[str, Callable[[Any], None]]]:
    calls: queue.Queue[str] = queue.Queue()
    return calls, {name: (lambda args, n=name: calls.put(n))
                   for name in ("sync_now", "reload_config")}


def test_only_signed_fresh_commands_are_obeyed(pki: Path, tls_broker) -> None:
    port = tls_broker(False)  # no ACL: anyone with a certificate may publish anywhere
    calls, handlers = _recorder()
    config = device_config(pki, port, command_key=KEY, plate_salt=SALT)
    intruder = Client(pki, port, "intruder")
    operator = Client(pki, port, "fleet-operator", subscribe=f"gotcha/{DEVICE}/#")
    with MqttTelemetry(config, commands=handlers) as device:
        assert device.wait_connected(15), "the device did not connect over TLS"
        operator.wait_online()
        now = time.time()
        recorded = sign_command(KEY, COMMANDS, "sync_now", now)
        for forged in (b"sync_now", json.dumps({"command": "sync_now"}).encode(),
                       sign_command("wrong-key-" + KEY, COMMANDS, "sync_now", now),
                       sign_command(KEY, "gotcha/other-device/commands", "sync_now", now),
                       sign_command(KEY, COMMANDS, "sync_now", now - 120),  # expired
                       sign_command(KEY, COMMANDS, "sync_now", now + 120),  # from the future
                       recorded.replace(b"sync_now", b"reload_config")):  # altered
            intruder.publish(COMMANDS, forged)
        rejected = operator.wait_event("command_rejected")
        assert rejected["reason"].startswith("unsigned") and "payload" not in rejected
        operator.publish(COMMANDS, recorded)
        assert calls.get(timeout=10) == "sync_now"  # the signed one, and only it
        intruder.publish(COMMANDS, recorded)  # replayed inside the window
        operator.publish(COMMANDS, sign_command(KEY, COMMANDS, "reload", time.time()))
        assert calls.get(timeout=10) == "reload_config"  # the alias, signed as sent
        time.sleep(0.5)
        assert calls.empty(), "a forged, expired or replayed command was obeyed"

        device.publish_event("report_confirmed", {"plate": "12가3456", "report_id": "r1"})
        event = operator.wait_event("report_confirmed")
        assert "plate" not in event and "12가3456" not in json.dumps(event, ensure_ascii=False)
        assert event["plate_hash"] == plate_hash(SALT, "12가3456")
    intruder.close()
    operator.close()


def test_a_client_without_a_certificate_cannot_connect(pki: Path, tls_broker) -> None:
    port = tls_broker(False)
    anonymous = Client(pki, port, None)
    assert not anonymous.connected.wait(3)
    anonymous.close()


def test_with_the_acl_unsigned_commands_come_only_from_the_operator(pki: Path,
                                                                    tls_broker) -> None:
    port = tls_broker(True)
    calls, handlers = _recorder()
    config = device_config(pki, port, commands_trusted_by_acl=True, event_plates="clear")
    intruder = Client(pki, port, "intruder")
    operator = Client(pki, port, "fleet-operator", subscribe=f"gotcha/{DEVICE}/#")
    with MqttTelemetry(config, commands=handlers) as device:
        assert device.wait_connected(15)
        operator.wait_online()
        intruder.publish(COMMANDS, b"sync_now")  # the broker's ACL drops it
        operator.publish(COMMANDS, b"reload_config")
        assert calls.get(timeout=10) == "reload_config"
        time.sleep(0.5)
        assert calls.empty(), "the intruder's command reached the device"
        device.publish_event("report_candidate", {"plate": "12가3456"})
        assert operator.wait_event("report_candidate")["plate"] == "12가3456"  # configured
    intruder.close()
    operator.close()


def test_without_a_key_or_an_acl_no_command_is_obeyed(pki: Path, tls_broker) -> None:
    port = tls_broker(False)
    calls, handlers = _recorder()
    operator = Client(pki, port, "fleet-operator", subscribe=f"gotcha/{DEVICE}/#")
    with MqttTelemetry(device_config(pki, port), commands=handlers) as device:
        assert device.wait_connected(15)
        operator.wait_online()
        operator.publish(COMMANDS, sign_command(KEY, COMMANDS, "sync_now"))
        assert "disabled" in operator.wait_event("command_rejected")["reason"]
        device.publish_event("report_candidate", {"plate": "12가3456"})
        event = operator.wait_event("report_candidate")
        assert not any(k.startswith("plate") for k in event)  # no salt: no plate at all
    assert calls.empty()
    operator.close()


def test_nonce_cache_and_window() -> None:
    clock = [1000.0]
    verifier = CommandVerifier(KEY, COMMANDS, 60.0, clock=lambda: clock[0])
    signed = json.loads(sign_command(KEY, COMMANDS, "sync_now", 1000.0, nonce="n" * 16))
    verifier.verify(signed)
    with pytest.raises(Exception, match="replayed"):
        verifier.verify(signed)
    clock[0] = 1059.0  # still inside the window: still remembered
    with pytest.raises(Exception, match="replayed"):
        verifier.verify(signed)
    clock[0] = 1061.0
    with pytest.raises(Exception, match="window"):
        verifier.verify(signed)
    with pytest.raises(Exception, match="nonce must be"):
        verifier.verify(json.loads(sign_command(KEY, COMMANDS, "sync_now", 1061.0,
                                                nonce="short")))
    # a time of NaN is never inside the window (it compares false with everything)
    with pytest.raises(Exception, match="window"):
        verifier.verify(json.loads(sign_command(KEY, COMMANDS, "sync_now", float("nan"),
                                                nonce="m" * 16)))


def test_bad_tls_files_are_a_config_error(pki: Path, tmp_path: Path) -> None:
    config = device_config(pki, 8883)
    config.mqtt.cert_file = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match="mqtt TLS files cannot be loaded"):
        MqttTelemetry(config)


def _body(msg: mqtt.MQTTMessage) -> dict[str, Any]:
    return json.loads(msg.payload) if msg.payload else {}


@pytest.mark.parametrize("payload", [b"[" * 100_000, b'{"command": "x", "a": 1' + b"0" * 5000
                                     + b"}", b"x" * 10_000])
def test_a_hostile_command_payload_is_ignored_not_fatal(payload: bytes) -> None:
    """Parsing runs in paho's network thread: an exception there would end telemetry."""
    from edge_agent.telemetry.mqtt import MqttTelemetry

    assert MqttTelemetry._parse_command(payload) is None
