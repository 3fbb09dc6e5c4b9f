"""`gotcha reports list|show|export` on a store holding a report confirmed from real photos
(the real scene matcher with the MobileNetV2 embedder compares them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
import typer
from conftest import shared_path
from pair_helpers import photo_pair, result_for
from typer.testing import CliRunner

from edge_agent.agent import Agent
from edge_agent.cli import reports
from edge_agent.config import load_config
from edge_agent.results import Box
from edge_agent.store.photos import sha256_hex
from gotcha_contracts.manifest import validate_manifest

app = typer.Typer()  # only this command group: others' commands cannot break these tests
reports.register(app)


@pytest.fixture(scope="module")
def confirmed_store(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    root = tmp_path_factory.mktemp("reports")
    env = {"GOTCHA_STORE__PATH": str(root / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(root / "photos"),
           "GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_DEVICE__ID": "dev-cli"}
    config = load_config(None, environ=env)
    source = shared_path("data/scenes/korea-a/4vehicles.jpg")
    first_at = datetime.now(UTC) - timedelta(minutes=10)
    a, b = photo_pair(source, config, first_at, 75)
    w, h = a.size
    vehicle = Box(w * 0.35, h * 0.45, w * 0.65, h * 0.85)
    with Agent.open(config) as agent:
        assert agent.matcher.model_id is not None  # the real embedder took part
        first = agent.handle(a, result_for(a, "12가3456", vehicle))
        second = agent.handle(b, result_for(b, "12가3456", vehicle, dx=4, dy=3))
    assert [d.action for d in first + second] == ["candidate", "confirmed"], second
    return env, first[0].report_id, (a, b)


def run(env: dict[str, str], *args: str):
    result = CliRunner().invoke(app, list(args), env=env)
    return result


def test_list_and_filter_by_state(confirmed_store) -> None:
    env, report_id, _ = confirmed_store
    out = run(env, "reports", "list", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [(r["report_id"], r["state"], r["plate"]) for r in rows] == \
        [(report_id, "confirmed", "12가3456")]
    assert json.loads(run(env, "reports", "list", "--state", "expired", "--json").output) == []
    table = run(env, "reports", "list")
    assert report_id[:8] in table.output and "confirmed" in table.output
    bad = run(env, "reports", "list", "--state", "nonsense")
    assert bad.exit_code == 2 and "unknown report state" in bad.output


def test_show_by_prefix(confirmed_store) -> None:
    env, report_id, _ = confirmed_store
    out = run(env, "reports", "show", report_id[:8], "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["report_id"] == report_id
    assert [s["role"] for s in doc["sightings"]] == ["first", "confirming"]
    assert doc["outbox"]["state"] == "pending"
    assert doc["models"]["scene_embedder"] == "mobilenetv2-imagenet"
    assert "both photos read 12가3456" in doc["plate_evidence"]
    table = run(env, "reports", "show", report_id[:8])
    assert table.exit_code == 0, table.output
    assert "plate evidence:" in table.output and "both photos read 12가3456" in table.output
    assert "weakest character" in table.output and "never recorded" in table.output
    missing = run(env, "reports", "show", "ffffffff")
    assert missing.exit_code == 2 and "no report" in missing.output


def test_export_writes_photos_manifest_and_contact_sheet(confirmed_store,
                                                         tmp_path: Path) -> None:
    env, report_id, (a, b) = confirmed_store
    out = run(env, "reports", "export", report_id, str(tmp_path / "out"))
    assert out.exit_code == 0, out.output
    folder = tmp_path / "out"
    assert (folder / "photo-1.jpg").read_bytes() == a.data
    assert (folder / "photo-2.jpg").read_bytes() == b.data
    manifest = validate_manifest((folder / "manifest.json").read_bytes())
    assert manifest.report_id == report_id and manifest.plate == "12가3456"
    assert [p.sha256 for p in manifest.photos] == [sha256_hex(a.data), sha256_hex(b.data)]
    assert manifest.interval_s == pytest.approx(75, abs=1)
    sheet = cv2.imread(str(folder / "contact-sheet.png"))
    assert sheet is not None and sheet.shape[1] > sheet.shape[0]
    # the plate box is drawn in red on photo 1
    red = (sheet[:, :, 2] > 200) & (sheet[:, :, 1] < 60) & (sheet[:, :, 0] < 60)
    assert red.sum() > 100


def test_export_of_a_candidate_is_refused(confirmed_store, tmp_path: Path) -> None:
    env, _, _ = confirmed_store
    out = run(env, "reports", "export", "0000", str(tmp_path))
    assert out.exit_code == 2 and "error:" in out.output


def test_every_reports_command_has_help() -> None:
    for command in ("list", "show", "export"):
        out = CliRunner().invoke(app, ["reports", command, "--help"])
        assert out.exit_code == 0 and len(out.output) > 100


def _sighting(plate: str, role: str, confs: tuple[float, ...]):
    from edge_agent.store.records import Sighting

    return Sighting(device_id="d", photo_sha256="a" * 64, captured_at=datetime.now(UTC),
                    plate=plate, plate_raw=plate, char_confidences=confs,
                    plate_box=Box(0, 0, 10, 5), location=None, role=role)  # type: ignore[arg-type]


def _report(plate: str, state: str):
    from edge_agent.store.records import Report

    now = datetime.now(UTC)
    return Report(report_id="r" * 32, device_id="d", plate=plate, zone="sidewalk",
                  state=state, lat=37.5, lon=127.0, first_sighting_id=1,  # type: ignore[arg-type]
                  first_seen_at=now, expires_at=now, updated_at=now)


def test_plate_evidence_of_a_candidate_and_of_a_one_character_pair() -> None:
    from edge_agent.cli.reports import plate_evidence_lines

    first = _sighting("12가3458", "first", (0.9,) * 6 + (0.41,))
    lines = plate_evidence_lines(_report("12가3458", "candidate"), [first])
    assert lines[0] == "first       read 12가3458 (weakest character 8 at 0.41)"
    assert lines[1].startswith("one photo so far: a second sure read")
    second = _sighting("12가3456", "confirming", (0.93,) * 7)
    lines = plate_evidence_lines(_report("12가3456", "confirmed"), [first, second])
    assert "the photos read 12가3458 and 12가3456, one character apart" in lines[2]
    assert lines[2].endswith("the report keeps the sure read 12가3456")
