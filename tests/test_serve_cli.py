"""`gotcha serve` as a command: starts, answers, stops on Ctrl-C; refuses what it must refuse;
writes its OpenAPI document; fetches photos by S3 reference from allowed buckets only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import typer
from conftest import shared_path
from serve_helpers import KEY, call_json, service_config
from typer.testing import CliRunner

from edge_agent.cli import serve as serve_cmd

REPO = Path(__file__).resolve().parent.parent


def _app() -> typer.Typer:
    app = typer.Typer()
    serve_cmd.register(app)
    app.command("noop", help="Placeholder so `serve` stays a subcommand.")(lambda: None)
    return app


def _clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GOTCHA_")}, **extra}


def _runner_env() -> dict[str, str | None]:
    """For CliRunner, which only adds to os.environ: None unsets every GOTCHA_ variable."""
    return {k: None for k in os.environ if k.startswith("GOTCHA_")}


def test_serve_with_a_damaged_model_exits_2_with_one_line(tmp_path: Path,
                                                          models_dir: Path) -> None:
    """A damaged model stops the start (an absent one is left out with a warning)."""
    data = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    (tmp_path / "yolox-nano-coco.onnx").write_bytes(data[: len(data) // 2])  # the default's twin
    config = tmp_path / "g.toml"
    config.write_text(f'[models]\ndir = "{tmp_path}"\n', encoding="utf-8")
    result = CliRunner().invoke(_app(), ["serve", "--config", str(config), "--port", "0"],
                                env=_runner_env())
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: model yolox-nano-coco: ")
    assert "sha256" in errors[0] and result.stderr.endswith(errors[0] + "\n")


def test_serve_refuses_a_public_address_without_a_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["serve", "--host", "0.0.0.0", "--port", "0"],
                                env=_runner_env())
    assert result.exit_code == 2 and "without an API key" in result.stderr
    assert result.stderr.count("\n") == 1


def test_write_openapi_matches_the_checked_in_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = CliRunner().invoke(_app(), ["serve", "--write-openapi", str(target)],
                                env=_runner_env())
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == (REPO / "docs" / "openapi.json").read_text(
        encoding="utf-8")
    assert json.loads(target.read_text(encoding="utf-8"))["openapi"].startswith("3.")


def test_gotcha_serve_command_serves_and_stops(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(f'[models]\ndir = "{models_dir}"\n', encoding="utf-8")
    env = _clean_env(GOTCHA_SERVICE__API_KEYS=json.dumps([KEY]))
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "serve", "--config",
                             str(config), "--port", "0"], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        seen = []
        for _ in range(100):  # log lines from model loading may come first
            line = proc.stderr.readline() if proc.stderr else ""
            seen.append(line)
            if not line or "listening on" in line:
                break
        assert "listening on http://127.0.0.1:" in line, "".join(seen)
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
            assert json.loads(response.read())["ready"] is True
        assert call_json(url + "/metrics", key=None)[0] == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_metadata_by_s3_reference(models_dir: Path, moto_s3) -> None:
    from edge_agent.service.server import create_server

    s3 = moto_s3.client()
    s3.create_bucket(Bucket="gotcha-raw")
    s3.create_bucket(Bucket="someone-else")
    photo = shared_path("data/scenes/e2e-dev/부산31바6697.jpg").read_bytes()
    for bucket in ("gotcha-raw", "someone-else"):
        s3.put_object(Bucket=bucket, Key="raw/cam-1/a.jpg", Body=photo)
    config = service_config(models_dir, s3_buckets=["gotcha-raw"],
                            s3_endpoint_url=moto_s3.endpoint_url, s3_region="us-east-1")
    server = create_server(config, "127.0.0.1", 0).start()
    try:
        def ref(bucket: str, key: str, **extra: object) -> tuple[int, dict]:
            body = json.dumps({"s3": {"bucket": bucket, "key": key}, **extra}).encode()
            return call_json(server.url + "/process_metadata", body, "application/json")

        status, body = ref("gotcha-raw", "raw/cam-1/a.jpg", device_id="cam-1",
                           captured_at="2026-11-25T09:00:00+09:00",
                           location={"lat": 37.5, "lon": 127.0, "accuracy_m": 5})
        assert status == 200, body
        assert body["name"] == "s3://gotcha-raw/raw/cam-1/a.jpg"
        assert [s["plate"] for s in body["sightings"]] == ["부산31바6697"]
        assert body["meta"]["location_source"] == "request" and body["device_id"] == "cam-1"
        status, body = ref("someone-else", "raw/cam-1/a.jpg")
        assert status == 400 and "service.s3_buckets" in body["error"]
        status, body = ref("gotcha-raw", "raw/cam-1/missing.jpg")
        assert status == 400 and "does not exist" in body["error"]
        status, body = ref("gotcha-raw", "k", location={"lat": 100, "lon": 0})
        assert status == 422 and "location.lat" in body["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_addresses_need_no_key(host: str) -> None:
    from edge_agent.config import GotchaConfig
    from edge_agent.service.server import check_exposure

    check_exposure(GotchaConfig(), host)


def test_readyz_says_when_the_models_are_not_loaded() -> None:
    import asyncio

    from edge_agent.config import GotchaConfig
    from edge_agent.service.app import create_app
    from edge_agent.service.core import VisionService

    app = create_app(VisionService(GotchaConfig(), None, None))
    route = next(r for r in app.routes if getattr(r, "path", "") == "/readyz")
    answer = asyncio.run(route.endpoint())
    assert answer.status_code == 503 and b"models not loaded" in answer.body
