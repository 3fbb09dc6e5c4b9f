"""`gotcha models list|verify|fetch` against the real test models and a real local HTTP server.

The server (http.server in a thread on a free loopback port) serves real model files from
../shared/models, honours Range requests, and can drop the connection mid-file, so the
download path is exercised the way a patchy mobile link exercises it on a device.
"""

from __future__ import annotations

import fcntl
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from conftest import free_port
from typer.testing import CliRunner

from edge_agent.cli import models_cmd
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import BUNDLED_DIR, file_sha256, load_catalog
from edge_agent.inference.fetch import lock_path, need_space

# the `models` group alone, so another group's half-finished module cannot break these tests
app = typer.Typer()
models_cmd.register(app)

MODEL_ID = "mobilenetv2-imagenet"  # its sha256 in models.toml is the one of the shared file


class ModelServer:
    """Serves ``files`` (url path -> bytes); ``cut_after`` drops the next response mid-body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.ignore_range = False
        self.requests: list[dict[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not server.ignore_range:
                    match = re.fullmatch(r"bytes=(\d+)-", wanted)
                    assert match, wanted
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[:server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="model-server",
                                       daemon=True)

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture()
def model_bytes(models_dir: Path) -> bytes:
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    return (models_dir / spec.file).read_bytes()


@pytest.fixture()
def config_file(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GOTCHA_MODEL_DIR", "GOTCHA_MODELS__DIR", "GOTCHA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "gotcha.toml"
    path.write_text(f'[models]\ndir = "{models_dir}"\nproviders = ["cpu"]\n'
                    f'[store]\npath = "{tmp_path / "var" / "gotcha.db"}"\n', encoding="utf-8")
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _fetch(config_file: Path, dest: Path, url: str, model_id: str = MODEL_ID) -> tuple[int, str,
                                                                                        str]:
    return _run("models", "fetch", model_id, "--config", str(config_file), "--dest", str(dest),
                "--url", url, "--timeout", "5")


def test_full_download_is_verified_and_installed(server: ModelServer, model_bytes: bytes,
                                                 config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    dest = tmp_path / "dest"
    code, out, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0, err
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    target = dest / spec.file
    assert file_sha256(target) == spec.sha256
    assert not (dest / (spec.file + ".part")).exists()
    assert "downloaded" in out and "sha256 ok" in out
    code, out, _ = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0 and "already present" in out
    assert len(server.requests) == 1  # nothing fetched the second time


def test_interrupted_download_resumes_with_range(server: ModelServer, model_bytes: bytes,
                                                 config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    server.cut_after = 1_000_000
    dest = tmp_path / "dest"
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    part = dest / (spec.file + ".part")
    code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 1
    assert "interrupted" in err and "run the command again to resume" in err
    assert err.count("\n") == 1
    assert part.stat().st_size == 1_000_000
    assert not (dest / spec.file).exists()

    code, out, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0, err
    assert server.requests[-1]["range"] == "bytes=1000000-"
    assert "resumed after 1.0 MB" in out
    assert file_sha256(dest / spec.file) == spec.sha256
    assert not part.exists()


def test_server_that_ignores_range_still_gives_a_whole_file(
        server: ModelServer, model_bytes: bytes, config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    server.ignore_range = True
    dest = tmp_path / "dest"
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    dest.mkdir()
    (dest / (spec.file + ".part")).write_bytes(model_bytes[:5000])
    code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0, err
    assert file_sha256(dest / spec.file) == spec.sha256


def test_complete_part_file_is_finished_without_downloading(
        server: ModelServer, model_bytes: bytes, config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    dest = tmp_path / "dest"
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    dest.mkdir()
    (dest / (spec.file + ".part")).write_bytes(model_bytes)
    code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0, err
    assert file_sha256(dest / spec.file) == spec.sha256


def test_sha256_mismatch_deletes_the_part_and_installs_nothing(
        server: ModelServer, models_dir: Path, config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    dest = tmp_path / "dest"
    code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 1
    assert "sha256" in err and "deleted it, nothing was installed" in err
    assert list(dest.iterdir()) == []


def test_http_404_is_one_clear_line(server: ModelServer, config_file: Path,
                                    tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    code, _, err = _fetch(config_file, dest, server.base + "/gone.onnx")
    assert code == 1
    assert "HTTP 404" in err and "fix url in models.toml" in err
    assert err.count("\n") == 1
    assert list(dest.iterdir()) == []


def test_dead_port_says_cannot_reach(config_file: Path, tmp_path: Path) -> None:
    port = free_port()
    dest = tmp_path / "dest"
    code, _, err = _fetch(config_file, dest, f"http://127.0.0.1:{port}/m.onnx")
    assert code == 1
    assert f"cannot reach 127.0.0.1:{port}" in err
    assert "copy the file manually into" in err and "try again" in err
    assert err.count("\n") == 1


def test_model_without_url_or_from_a_package_gives_a_clear_error(config_file: Path,
                                                                tmp_path: Path) -> None:
    code, _, err = _run("models", "fetch", "yolox-nano-coco", "--config", str(config_file),
                        "--dest", str(tmp_path))
    assert code == 1 and "no pinned download url" in err and "copy yolox-nano-coco.onnx" in err
    code, _, err = _run("models", "fetch", "ppocrv4-rec", "--config", str(config_file),
                        "--dest", str(tmp_path))
    assert code == 1 and "ships inside the Python package 'rapidocr_onnxruntime'" in err
    code, _, err = _run("models", "fetch", "no-such-model", "--config", str(config_file))
    assert code == 2 and "not in models.toml" in err


def test_a_second_concurrent_download_is_refused(server: ModelServer, model_bytes: bytes,
                                                 config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    dest = tmp_path / "dest"
    dest.mkdir()
    spec = load_catalog(BUNDLED_DIR / "models.toml")[MODEL_ID]
    with lock_path(dest / spec.file).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 1 and "another download of" in err
    assert server.requests == []
    code, _, err = _fetch(config_file, dest, server.base + "/m.onnx")
    assert code == 0, err
    assert sorted(p.name for p in dest.iterdir()) == [spec.file]  # no .part, no .lock left


def test_unusable_destination_is_one_clear_line(server: ModelServer, model_bytes: bytes,
                                                config_file: Path, tmp_path: Path) -> None:
    server.files["/m.onnx"] = model_bytes
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = _fetch(config_file, blocker / "models", server.base + "/m.onnx")
    assert code == 1 and "cannot create" in err and err.count("\n") == 1
    assert server.requests == []


def test_no_space_is_refused_before_downloading(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not enough disk space"):
        need_space(tmp_path, needed=5_000_000, free=1_000_000)
    need_space(tmp_path, needed=1_000, free=1_000_000)


def test_list_shows_where_each_model_is_and_its_checksum(config_file: Path,
                                                         models_dir: Path) -> None:
    code, out, err = _run("models", "list", "--config", str(config_file), "--json")
    assert code == 0, err
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows["yolov8n-coco"]["found_in"] == "models.dir"
    assert rows["yolov8n-coco"]["sha256"] == "ok"
    assert rows["yolov8n-coco"]["size"] == (models_dir / "yolov8n-coco-int8.onnx").stat().st_size
    assert rows["yolov8n-coco"]["in_use"] is False  # AGPL-3.0: an option, never a default
    assert rows["yolox-nano-coco"]["in_use"] is True  # the default's test twin (conftest)
    assert rows["ppocrv4-rec"]["found_in"] == "package"
    assert rows["ppocrv4-det"]["in_use"] is True  # finds the plates: no plate detector
    for model_id in ("mobilenetv2-zoo-int8", "yolox-nano"):  # downloads (setup.sh fetches)
        fetched = (BUNDLED_DIR / rows[model_id]["file"]).is_file()
        assert rows[model_id]["found_in"] == ("bundled" if fetched else "missing")
    code, out, _ = _run("models", "list", "--config", str(config_file))
    assert code == 0 and "yolox-nano-coco" in out and "Apache-2.0" in out


def test_verify_checks_and_reports_one_line_per_model(config_file: Path, tmp_path: Path,
                                                      models_dir: Path) -> None:
    code, out, err = _run("models", "verify", "yolov8n-coco", "yolox-nano-coco", "--config",
                          str(config_file))
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("ok ") for line in lines)
    assert "[1, 3, 640, 640]" in lines[0]

    broken = tmp_path / "broken"
    broken.mkdir()
    data = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    (broken / "yolox-nano-coco.onnx").write_bytes(data[: len(data) // 2])
    config_file.write_text(config_file.read_text().replace(str(models_dir), str(broken)))
    code, out, _ = _run("models", "verify", "yolox-nano-coco", "yolov8n-coco", "--config",
                        str(config_file))
    assert code == 1
    bad, missing = out.strip().splitlines()
    assert bad.startswith("BAD yolox-nano-coco") and "sha256" in bad
    assert missing.startswith("BAD yolov8n-coco") and "not found" in missing


def test_verify_without_ids_checks_what_the_configuration_uses(config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace(
        "[models]\n", '[models]\nplate_reader = "ppocrv4-rec"\n'), encoding="utf-8")
    code, out, err = _run("models", "verify", "--config", str(config_file), "--json")
    assert code == 0, out + err
    results = {row["id"]: row for row in json.loads(out)}
    assert set(results) == {"yolox-nano-coco", "ppocrv4-rec", "mobilenetv2-imagenet",
                            "ppocrv4-det"}
    assert all(row["ok"] for row in results.values())
