"""`gotcha doctor` against the real things: models, a real store, real Mosquitto, moto's S3
server, a read-only mount, a disk threshold. Each broken thing gives exactly its one line and
exit 1; a healthy device exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import IN_CI, free_port, shared_path
from typer.testing import CliRunner

from edge_agent.cli.main import app
from edge_agent.config import load_config
from edge_agent.doctor.local import check_clock, check_providers
from edge_agent.store.store import Store

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A healthy device: models from ../shared, CPU, a store in tmp_path, local uploads."""
    env = {"GOTCHA_MODEL_DIR": str(shared_path("models")),
           "GOTCHA_MODELS__PROVIDERS": '["cpu"]',
           "GOTCHA_STORE__PATH": str(tmp_path / "var" / "gotcha.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "var" / "photos"),
           "GOTCHA_UPLOAD__LOCAL_DIR": str(tmp_path / "outbox"),
           "GOTCHA_STORE__MIN_FREE_MB": "1"}
    return env | extra


def _doctor(env: dict[str, str], *args: str):
    clean = {k: v for k, v in os.environ.items()  # keeps conftest's model twins
             if not k.startswith("GOTCHA_") or k.startswith("GOTCHA_MODELS__")}
    result = CliRunner().invoke(app, ["doctor", *args], env=clean | env)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines


def _one_problem(env: dict[str, str], pattern: str, *args: str) -> str:
    code, lines = _doctor(env, *args)
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert re.fullmatch(pattern, lines[0]), lines[0]
    return lines[0]


def _mqtt(host_port: tuple[str, int]) -> dict[str, str]:
    host, port = host_port
    return {"GOTCHA_MQTT__ENABLED": "true", "GOTCHA_MQTT__HOST": host,
            "GOTCHA_MQTT__PORT": str(port)}


def _s3(moto_s3, bucket: str) -> dict[str, str]:
    return {"GOTCHA_UPLOAD__BACKEND": "s3", "GOTCHA_UPLOAD__BUCKET": bucket,
            "GOTCHA_UPLOAD__ENDPOINT_URL": moto_s3.endpoint_url,
            "GOTCHA_UPLOAD__REGION": "us-east-1"}


def test_a_healthy_device_exits_0_with_a_short_summary(tmp_path: Path, mqtt_broker,
                                                       moto_s3) -> None:
    moto_s3.client().create_bucket(Bucket="gotcha-doctor")
    watched = tmp_path / "incoming"
    watched.mkdir()
    env = _env(tmp_path) | _mqtt(mqtt_broker) | _s3(moto_s3, "gotcha-doctor")
    with Store.open(load_config(None, environ=env).store):
        pass  # a store in use, not only a new device
    code, lines = _doctor(env, "--watch", str(watched))
    assert code == 0, lines
    assert lines[0].startswith("all good: ")
    text = "\n".join(lines)
    for fact in ("sha256 ok", "models run on cpu", "writable", "MB free", "watch folder",
                 "bucket gotcha-doctor reachable", "accepts the device"):
        assert fact in text, fact
    code, out = _doctor(env, "--watch", str(watched), "--json")
    doc = json.loads("\n".join(out))
    assert code == 0 and doc["ok"] is True and doc["problems"] == []
    assert {c["check"] for c in doc["checks"]} >= {"models", "providers", "store", "disk",
                                                   "source", "s3", "mqtt", "clock"}


def _models_but_the_detector(tmp_path: Path) -> tuple[Path, Any]:
    """A model folder with every shared model linked in but the configured vehicle
    detector's file, and that detector's catalog entry."""
    from edge_agent.inference.catalog import load_catalog

    folder = tmp_path / "models"
    folder.mkdir()
    config = load_config(None, environ=_env(tmp_path))
    spec = load_catalog(config.models.catalog)[config.models.vehicle_detector]
    for item in shared_path("models").iterdir():
        if item.name != spec.file:
            (folder / item.name).symlink_to(item)
    return folder, spec


def test_a_missing_model_file(tmp_path: Path) -> None:
    partial, spec = _models_but_the_detector(tmp_path)
    line = _one_problem(_env(tmp_path, GOTCHA_MODEL_DIR=str(partial)),
                        rf"models: model {re.escape(spec.id)}: file {re.escape(spec.file)} not "
                        r"found in .*; copy it there or set GOTCHA_MODEL_DIR")
    assert spec.file in line
    code, out = _doctor(_env(tmp_path, GOTCHA_MODEL_DIR=str(partial)), "--json")
    doc = json.loads("\n".join(out))
    assert code == 1 and doc["ok"] is False and doc["problems"] == [line]


def test_a_model_file_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    models = shared_path("models")
    swapped, spec = _models_but_the_detector(tmp_path)
    assert (models / spec.file).is_file(), "the detector is expected in ../shared/models"
    data = bytearray((models / spec.file).read_bytes())
    data[-1] ^= 0xFF
    (swapped / spec.file).write_bytes(bytes(data))
    _one_problem(_env(tmp_path, GOTCHA_MODEL_DIR=str(swapped)),
                 rf"models: .*{re.escape(spec.id)}.*sha256.*")


def test_a_store_on_a_read_only_folder(tmp_path: Path) -> None:
    """A real read-only folder: chmod for an ordinary user; root writes through modes, so
    as root the folder is bind-mounted read-only in a mount namespace of the doctor's own."""
    folder = tmp_path / "ro"
    env = _env(tmp_path, GOTCHA_STORE__PATH=str(folder / "gotcha.db"))
    with Store.open(load_config(None, environ=env).store):
        pass
    pattern = (rf"store: {re.escape(str(folder))} \(store\.path\) is not writable \(.*\); "
               r"make it writable for the gotcha user or point store\.path at a writable disk")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            _one_problem(env, pattern)
        finally:
            folder.chmod(0o755)
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root without unshare(1): cannot make a read-only folder")
    clean = {k: v for k, v in os.environ.items()  # keeps conftest's model twins
             if not k.startswith("GOTCHA_") or k.startswith("GOTCHA_MODELS__")}
    script = (f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" '
              f'&& exec "{sys.executable}" -m edge_agent.cli.main doctor')
    done = subprocess.run([unshare, "-m", "sh", "-c", script], capture_output=True, text=True,
                          env=clean | env | {"PYTHONPATH": str(ROOT)}, cwd=tmp_path, timeout=120)
    if "mount" in done.stderr and done.returncode not in (0, 1):
        if IN_CI:
            pytest.fail(f"cannot make a read-only mount as root: {done.stderr.strip()}")
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, (lines, done.stderr)
    assert re.fullmatch(pattern, lines[0]), lines[0]


def test_a_nearly_full_disk(tmp_path: Path) -> None:
    _one_problem(_env(tmp_path, GOTCHA_STORE__MIN_FREE_MB="1e12"),
                 r"disk: only \d+ MB free at .* \(store\.min_free_mb = 1000000000000\); free "
                 r"space there or lower store\.max_photo_bytes")


def test_a_dead_mqtt_port(tmp_path: Path, mqtt_broker) -> None:
    port = free_port()
    _one_problem(_env(tmp_path) | _mqtt(("127.0.0.1", port)),
                 rf"mqtt: broker 127\.0\.0\.1:{port} unreachable \(.*refused.*\); start the "
                 r"broker or fix mqtt\.host / mqtt\.port and the network")


def test_s3_bucket_missing_and_endpoint_dead(tmp_path: Path, moto_s3) -> None:
    _one_problem(_env(tmp_path) | _s3(moto_s3, "no-such-bucket"),
                 rf"s3: bucket no-such-bucket does not exist at "
                 rf"{re.escape(moto_s3.endpoint_url)}; create it or fix upload\.bucket")
    dead = {**_s3(moto_s3, "gotcha-doctor"),
            "GOTCHA_UPLOAD__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    _one_problem(_env(tmp_path) | dead,
                 r"s3: s3://gotcha-doctor/: EndpointConnectionError: .*; check the network "
                 r"and upload\.endpoint_url / upload\.region")


def test_a_watch_folder_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    _one_problem(_env(tmp_path), rf"source: watch folder {re.escape(str(missing))} does not "
                 r"exist; create it or pass the folder the photos are copied into",
                 "--watch", str(missing))


def test_a_clock_reset_or_behind_the_files_it_wrote(tmp_path: Path) -> None:
    config = load_config(None, environ=_env(tmp_path))
    with Store.open(config.store):
        pass
    assert check_clock(config, datetime.now(UTC))[0].ok
    reset = check_clock(config, datetime(2000, 1, 1, tzinfo=UTC))[0]
    assert not reset.ok and "before 2025" in reset.detail and "set-ntp" in reset.detail
    behind = check_clock(config, datetime.now(UTC) - timedelta(days=3))[0]
    assert not behind.ok and "was written at" in behind.detail


def test_providers_configured_but_not_in_this_onnxruntime(tmp_path: Path) -> None:
    config = load_config(None, environ=_env(tmp_path,
                                            GOTCHA_MODELS__PROVIDERS='["tensorrt", "cpu"]'))
    only_cpu = check_providers(config, ["CPUExecutionProvider"])[0]
    assert not only_cpu.ok and "prefers tensorrt" in only_cpu.detail
    assert 'models.providers = ["cpu"]' in only_cpu.detail
    assert check_providers(config, ["TensorrtExecutionProvider", "CPUExecutionProvider"])[0].ok
