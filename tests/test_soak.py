"""The soak in short (scripts/soak.py --photos 200): the agent on real photos with its broker
and S3 restarted under it and one SIGKILL; nothing lost, nothing doubled, nothing growing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, need, shared_path


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_short_soak(tmp_path: Path, models_dir: Path) -> None:
    need(shutil.which("mosquitto") is not None, "mosquitto binary is not installed")
    scenes = shared_path("data/scenes")
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--photos", "200",
         "--workdir", str(tmp_path / "work"), "--models", str(models_dir),
         "--scenes", str(scenes), "--json-out", str(out)],
        capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["problems"] == []
    assert summary["store"]["confirmed"] == summary["expected"]["confirmed"] > 20
    assert summary["store"]["uploaded"] == summary["store"]["confirmed"]
    # nothing grows without bound: open files and threads stay flat, memory settles
    assert summary["max_open_files"] < 64 and summary["max_threads"] < 40
    assert summary["rss_growth_mib"] is not None and summary["rss_growth_mib"] < 60
