"""`gotcha demo` on a fresh machine, and the whole device path (real models) on its photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.demo import DEMO_PLATE, demo_config, run_demo, write_demo_photos
from edge_agent.vision.pipeline import VisionPipeline
from gotcha_contracts.manifest import validate_manifest

GOTCHA = Path(sys.executable).with_name("gotcha")


def test_demo_with_nothing_but_the_package(tmp_path: Path) -> None:
    """Empty HOME and cwd, no GOTCHA_* variables, no ../shared: only the bundled models."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOTCHA_")}
    env["HOME"] = str(home)
    proc = subprocess.run([str(GOTCHA), "demo"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "confirmed" in proc.stdout and DEMO_PLATE in proc.stdout
    reports = list((work / "gotcha-demo" / "reports").iterdir())
    assert len(reports) == 1
    manifest = validate_manifest((reports[0] / "manifest.json").read_bytes())
    assert manifest.plate == DEMO_PLATE
    assert 69 <= manifest.interval_s <= 71
    assert (reports[0] / "contact-sheet.png").stat().st_size > 10_000
    shown = subprocess.run(
        [str(GOTCHA), "reports", "list", "--json"], cwd=work, capture_output=True, text=True,
        env={**env, "GOTCHA_STORE__PATH": str(work / "gotcha-demo" / "gotcha.db"),
             "GOTCHA_STORE__PHOTO_DIR": str(work / "gotcha-demo" / "photos")}, timeout=120)
    assert [r["state"] for r in json.loads(shown.stdout)] == ["confirmed"], shown.stderr


def _full_config(tmp_path: Path, models_dir: Path):
    return load_config(None, environ={"GOTCHA_MODEL_DIR": str(models_dir),
                                      "GOTCHA_DEVICE__ID": "dev-demo"})


def test_demo_with_every_model(tmp_path: Path, models_dir: Path) -> None:
    run = run_demo(_full_config(tmp_path, models_dir), tmp_path / "demo")
    assert run.notes == []  # vehicle detector, plate detector and embedder all took part
    assert run.report is not None and run.report.state == "confirmed", run.decisions
    assert run.report.models["scene_embedder"] == "mobilenetv2-imagenet"
    assert run.report.plate == DEMO_PLATE


def test_vehicle_moved_between_the_photos_is_not_confirmed(tmp_path: Path,
                                                           models_dir: Path) -> None:
    config, _ = demo_config(_full_config(tmp_path, models_dir), tmp_path / "moved")
    first_at = datetime.now(UTC) - timedelta(minutes=5)
    paths = write_demo_photos(tmp_path / "moved" / "input", first_at, moved_px=250)
    pipeline = VisionPipeline.from_config(config)
    with Agent.open(config) as agent:
        decisions = [agent.handle(*pipeline.process_path(p)) for p in paths]
        actions = [d.action for ds in decisions for d in ds if d.plate == DEMO_PLATE]
        assert actions == ["candidate", "candidate"], decisions
        first = agent.store.report(decisions[0][0].report_id)  # type: ignore[arg-type]
        assert first.state == "expired" and "moved" in (first.expired_reason or "")
        assert agent.store.db["outbox"].count == 0


def test_process_command_records_sightings_in_capture_order(tmp_path: Path,
                                                            models_dir: Path) -> None:
    """`gotcha process` given the later photo first still files one confirmed report."""
    import typer
    from typer.testing import CliRunner

    from edge_agent.cli import process

    app = typer.Typer()
    process.register(app)
    app.command("unused", hidden=True)(lambda: None)  # keep "process" a sub-command
    first_at = datetime.now(UTC) - timedelta(minutes=5)
    paths = write_demo_photos(tmp_path / "in", first_at)
    env = {"GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos")}
    out = CliRunner().invoke(app, ["process", "--json", str(paths[1]), str(paths[0])], env=env)
    assert out.exit_code == 0, out.output
    docs = json.loads(out.output)
    assert [Path(d["file"]).name for d in docs] == ["demo-1.jpg", "demo-2.jpg"]
    actions = [a["action"] for d in docs for a in d["lifecycle"] if a["plate"] == DEMO_PLATE]
    assert actions == ["candidate", "confirmed"], docs
    again = CliRunner().invoke(app, ["process", str(paths[0]), str(paths[1])], env=env)
    assert again.exit_code == 0 and "already_recorded" in again.output, again.output
    bare = CliRunner().invoke(app, ["process", "--no-lifecycle", str(paths[0])],
                              env={**env, "GOTCHA_STORE__PATH": str(tmp_path / "none.db")})
    assert bare.exit_code == 0 and "->" not in bare.output
    assert not (tmp_path / "none.db").exists()
