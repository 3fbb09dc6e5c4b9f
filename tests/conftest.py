"""Fixtures shared by the whole suite: paths into ../shared, and the real local services.

Under CI (CI=true) a missing model, data folder or service is a failure, never a skip: the
suite must prove the real thing works. Elsewhere a test skips with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GOTCHA_SHARED_DIR", REPO.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# The shipped defaults (edge_agent/config.py ModelsConfig) are downloads that are not here; the
# suite runs their test twins from ../shared, which take the same input and give the same
# output: yolox-nano-coco for yolox-nano (another export of YOLOX-Nano), mobilenetv2-imagenet
# for mobilenetv2-zoo-int8 (the same ONNX Model Zoo network). No plate detector, as shipped.
# One place: the config's defaults are set for this process and, through GOTCHA_MODELS__*,
# for every `gotcha` subprocess. A test about a specific model names it itself (as an attribute
# or in its own environ: a test's TOML naming these keys loses to GOTCHA_MODELS__*).
TEST_TWINS: dict[str, str | None] = {"vehicle_detector": "yolox-nano-coco",
                                     "plate_detector": None,
                                     "scene_embedder": "mobilenetv2-imagenet"}


def _use_test_twins() -> dict[str, object]:
    """Swap the model defaults for their twins; returns the shipped defaults."""
    from edge_agent.config import GotchaConfig, ModelsConfig

    fields = ModelsConfig.model_fields
    shipped = {role: fields[role].default for role in TEST_TWINS}
    for role, twin in TEST_TWINS.items():
        fields[role].default = twin
        if twin is not None:  # (none is the shipped default too: an empty value would differ)
            os.environ[f"GOTCHA_MODELS__{role.upper()}"] = twin
    ModelsConfig.model_rebuild(force=True)
    GotchaConfig.model_rebuild(force=True)
    return shipped


SHIPPED_MODELS = _use_test_twins()


def need_rapidocr() -> None:
    """The PP-OCRv4 models ship in the rapidocr-onnxruntime wheel, installed without its
    dependencies (scripts/setup.sh), so its code may not import: look for the package only."""
    need(importlib.util.find_spec("rapidocr_onnxruntime") is not None,
         "rapidocr-onnxruntime is not installed (scripts/setup.sh installs it)")


def need(condition: bool, reason: str) -> None:
    """Skip with ``reason`` when ``condition`` is false; under CI, fail loudly instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def shared_path(relative: str) -> Path:
    path = SHARED / relative
    need(path.exists(), f"{path} is missing (the ../shared test models and data)")
    return path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return shared_path("models")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_path("data")


@pytest.fixture(scope="session")
def mariadb_server() -> dict[str, object]:
    """Connection settings of the local MariaDB (RDS stand-in)."""
    host = os.environ.get("GOTCHA_TEST_DB_HOST", "127.0.0.1")
    port = int(os.environ.get("GOTCHA_TEST_DB_PORT", "3306"))
    need(port_open(host, port), f"MariaDB is not running on {host}:{port}")
    return {"host": host, "port": port, "user": os.environ.get("GOTCHA_TEST_DB_USER", "root"),
            "password": os.environ.get("GOTCHA_TEST_DB_PASSWORD", "")}


@pytest.fixture()
def mysql_database(mariadb_server: dict[str, object]) -> Iterator[dict[str, object]]:
    """A fresh, empty database for one test, dropped afterwards."""
    import pymysql

    name = f"gotcha_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=mariadb_server["host"], port=mariadb_server["port"],
                           user=mariadb_server["user"], password=mariadb_server["password"],
                           autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield {**mariadb_server, "database": name}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    host = os.environ.get("GOTCHA_TEST_MQTT_HOST", "127.0.0.1")
    port = int(os.environ.get("GOTCHA_TEST_MQTT_PORT", "1883"))
    need(port_open(host, port), f"Mosquitto is not running on {host}:{port}")
    return host, port


class MotoS3:
    """moto's S3 server on a free loopback port; stop() and start() simulate a dead network."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture()
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """A fresh moto S3 server per test, emptied at the start; stop()/start() keep the objects."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        need(False, "moto[server] is not installed (pip install -e '.[dev]')")
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    server = MotoS3()
    server.start()
    # moto keeps its state in process memory, across stop()/start() and across servers:
    # start each test from an empty S3 (a stop()/start() inside a test keeps the objects).
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{server.endpoint_url}/moto-api/reset",
                                                  method="POST"), timeout=10).close()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def s3(moto_s3: MotoS3):
    """A boto3 S3 client on a fresh moto server, with the reports bucket created."""
    from cloud_helpers import BUCKET

    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture()
def conn(mysql_database: dict[str, object]) -> Iterator[object]:
    """A connection to a fresh test database with the schema, zones and views applied."""
    from cloud_helpers import fresh_db

    connection = fresh_db(mysql_database)
    yield connection
    connection.close()
