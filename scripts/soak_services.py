"""What a soak runs around the agent: a private Mosquitto, a moto S3 server, a heartbeat
listener, and the agent itself as a process that can be killed and started again."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class _Outage:
    """A service the soak starts, stops and restarts (an outage of ``pause_s``)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, pause_s: float) -> None:
        self.stop()
        time.sleep(pause_s)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Broker(_Outage):
    """A private Mosquitto on a free loopback port, anonymous, no persistence."""

    def __init__(self, work: Path) -> None:
        if shutil.which("mosquitto") is None:
            raise SystemExit("soak: mosquitto is not on PATH")
        self.port = free_port()
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "persistence false\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class S3Server(_Outage):
    """moto's S3 in this process: stop() and start() are an outage; the objects stay."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_port(self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def get(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


class HeartbeatListener:
    """The device's heartbeats; paho reconnects by itself when the broker comes back."""

    def __init__(self, port: int, device: str) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._count = 0
        self._at = time.monotonic()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}")
        self.client.on_connect = lambda c, *_a: c.subscribe(f"gotcha/{device}/heartbeat", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            self._last = body
            self._count += 1
            self._at = time.monotonic()

    def last(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._last) if self._last else None

    def processed(self) -> int:
        """Photos the current run has finished (processed or refused), per its heartbeat."""
        last = self.last() or {}
        return int(last.get("photos_processed", 0)) + int(last.get("photos_failed", 0))

    def silent_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._at

    def reset_run(self) -> None:
        """A new agent process: its counters start again from zero."""
        time.sleep(0.5)
        with self._lock:
            self._last = None
            self._count = 0
            self._at = time.monotonic()

    def wait_heartbeat(self, after: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._count > after:
                    return
            time.sleep(0.1)
        raise RuntimeError("soak: no heartbeat from the agent (see the agent-*.log files)")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AgentProcess:
    """``gotcha run --watch`` as a child process, its output in agent-N.log."""

    def __init__(self, config: Path, work: Path, repo: Path) -> None:
        self.config = config
        self.work = work
        self.repo = repo
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.runs += 1
        env = {**os.environ, "GOTCHA_CONFIG": str(self.config), "PYTHONPATH": str(self.repo),
               "GOTCHA_MQTT__PLATE_SALT": "soak-salt-0123456789"}
        log = (self.work / f"agent-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli.main", "run", "--watch",
             str(self.work / "watch"), "--existing", "--interval", "0.2", "--settle", "0.3",
             "--upload-every", "2"], stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=self.work)
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        time.sleep(1.0)  # the last heartbeat and the offline status
        return code
